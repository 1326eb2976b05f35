"""Old code vs new code, side by side on this machine: the benchmark scripts of both
checkouts run in fresh processes, old and new alternating, for ``--rounds`` rounds;
one markdown table of medians, new/old, and each side's ratios against the peers.

    git worktree add /work/old 9030b4e          # the code before the change (once)
    .venv/bin/python benchmarks/compare_old_new.py --old /work/old --out /tmp/old_new.md
    .venv/bin/python benchmarks/compare_old_new.py --old /work/old --smoke --rounds 1   # harness check

Benches (each process imports the augspec of its own checkout: ``PYTHONPATH=<side>/src``,
and the harness checks ``augspec.__file__`` of every process):

- torch:  ``bench_torch.py --no-jit --repeats 9``: R2 batch 64 at 224 (augspec torch eager
  and the kornia / torchvision / albumentations + timm peers, round-robin in one process),
  then its scaling table (batch 1 to 256 at 224; 64 and 512 px at batch 64).
- sweep:  ``scaling_sweep.py --batches 32,64,128,256``: ms per image, the flatness target.
- tf:     ``bench_tensorflow.py``'s own ``bench_r2(64, 7, 224)`` and ``bench_r1(32, 30)``,
  called in a fresh process so that the times come back unrounded (its table prints one
  decimal, 0.4 ms for R1); the same functions its ``main`` calls, in the same order.
- alb:    ``bench_albumentations.py --only speed --runs 7 --images 64``.
- jax:    ``bench_jax.py`` (new code only): augspec's JAX R2 beside augspec torch eager.

Within a round every bench runs old then new back to back (new then old in the
even rounds), so both sides of a pair see the same load. A row's value per side is
the median over the rounds of that process's median; a ratio against a peer is
the median over the rounds of peer time / augspec time in the same process
(above 1: augspec is faster). The peer code is the same on both sides, so a peer
row's new/old is the machine's own drift between the paired processes.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
NEW_ROOT = os.path.dirname(HERE)

# Run inside each benchmark process: execute a script (as __main__, or import it
# and call functions of it), then say which augspec the process imported.
WRAPPER = r"""
import atexit, json, runpy, sys
spec = json.loads(sys.argv[1])
def _which():
    m = sys.modules.get("augspec")
    print("@@augspec " + str(getattr(m, "__file__", None)), file=sys.stderr, flush=True)
atexit.register(_which)
if spec.get("calls"):
    g = runpy.run_path(spec["script"], run_name="bench_module")
    out = [g[name](*args) for name, args in spec["calls"]]
    print("@@json " + json.dumps(out), flush=True)
else:
    sys.argv = [spec["script"]] + spec["args"]
    runpy.run_path(spec["script"], run_name="__main__")
"""


@dataclass
class Bench:
    key: str
    script: str
    args: list[str] = field(default_factory=list)
    calls: list | None = None  # [(function name, args)]: import the script and call these
    new_only: bool = False


def benches(smoke: bool, torch_jit: bool) -> list[Bench]:
    if smoke:
        return [
            Bench("torch", "bench_torch.py", ["--quick", "--repeats", "1"]),
            Bench("sweep", "scaling_sweep.py", ["--batches", "32,64", "--size", "32"]),
            Bench("tf", "bench_tensorflow.py", calls=[("bench_r2", [4, 1, 64]), ("bench_r1", [8, 1])]),
            Bench("alb", "bench_albumentations.py", ["--only", "speed", "--runs", "1", "--images", "4", "--size", "64"]),
            Bench("jax", "bench_jax.py", ["--batch", "4", "--size", "64", "--repeats", "1", "--warmup", "1"],
                  new_only=True),
        ]
    return [
        Bench("torch", "bench_torch.py", ["--repeats", "9"] + ([] if torch_jit else ["--no-jit"])),
        Bench("sweep", "scaling_sweep.py", ["--batches", "32,64,128,256"]),
        Bench("tf", "bench_tensorflow.py", calls=[("bench_r2", [64, 7, 224]), ("bench_r1", [32, 30])]),
        Bench("alb", "bench_albumentations.py", ["--only", "speed", "--runs", "7", "--images", "64"]),
        Bench("jax", "bench_jax.py", ["--repeats", "9"], new_only=True),
    ]


@dataclass
class Meas:
    section: str
    row: str
    kind: str  # "augspec", "peer", "stand-in" (not the named peer: no ratio), "ref"
    ms: float | None  # per batch
    n: int | None = None  # batch size, where the row is part of a scaling sweep
    note: str = ""


# ------------------------------------------------------------------ parsing


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _num(s: str) -> float | None:
    try:
        return float(s)
    except ValueError:
        return None


def _tables(text: str) -> list[tuple[str, list[str], list[list[str]]]]:
    """(the last ### heading, header cells, row cells) for every markdown table."""
    out, heading, header, rows = [], "", None, []
    for line in text.splitlines() + [""]:
        if line.startswith("###"):
            heading = line.lstrip("#").strip()
        if line.startswith("|"):
            if header is None:
                header = _cells(line)
            elif not set(line.replace("|", "").strip()) <= set("-: "):
                rows.append(_cells(line))
            continue
        if header is not None:
            out.append((heading, header, rows))
            header, rows = None, []
    return out


def parse_torch(text: str) -> list[Meas]:
    out = []
    for heading, _, rows in _tables(text):
        if heading.startswith("R2"):
            sec = "torch R2 " + re.sub(r"^R2,\s*", "", heading.split(", uint8")[0])
            for c in rows:
                ms = _num(c[2])
                kind = "augspec" if c[0].startswith("augspec") else "peer"
                out.append(Meas(sec, c[0], kind, ms, note="" if ms is not None else "not run: " + c[-1]))
        elif heading.startswith("Scaling"):
            for c in rows:
                n, s, ms = int(c[0]), int(c[1]), _num(c[2])
                out.append(Meas("torch sweep (bench_torch)", f"eager, batch {n} @ {s}px", "augspec", ms, n=n))
    return out


def parse_sweep(text: str) -> list[Meas]:
    out = []
    for line in text.splitlines():
        m = re.match(r"R2 (\d+)px, ms per image \|(.*)", line)
        if m:
            for cell in m.group(2).split("|"):
                mm = re.match(r"\s*batch (\d+): ([\d.]+)", cell)
                if mm:
                    n = int(mm.group(1))
                    out.append(Meas("torch sweep (scaling_sweep)", f"eager, batch {n} @ {m.group(1)}px", "augspec",
                                    float(mm.group(2)) * n, n=n))
    return out


def parse_tf(text: str) -> list[Meas]:
    m = re.search(r"^@@json (.*)$", text, re.M)
    if not m:
        return []
    (r2_rows, missing), r1_rows = json.loads(m.group(1))
    out = []
    for sec, rows in (("tf R2", r2_rows), ("tf R1", r1_rows)):
        for name, secs, note in rows:
            kind = "augspec" if name.startswith("augspec") else "peer"
            if "jit_compile=True" in name and kind == "peer":
                kind = "peer (no ratio)"  # fails here: ImageProjectiveTransformV3 has no XLA kernel
            out.append(Meas(sec, name, kind, None if secs is None else secs * 1e3,
                            note="" if secs is not None else "not run: " + note))
    if missing:
        out.append(Meas("tf R2", "Keras 3 layers missing from this Keras", "ref", None, note=", ".join(missing)))
    return out


def parse_alb(text: str) -> list[Meas]:
    out = []
    for _, header, rows in _tables(text):
        if not header or header[0] != "row":
            continue
        for c in rows:
            hand, ours = _num(c[2]), _num(c[3])
            if c[0].startswith("per-image"):
                sec = "alb R2 per-image part"
                out.append(Meas(sec, 'augspec compile("albumentations")', "augspec", ours))
                out.append(Meas(sec, "hand-written albumentations", "peer", hand))
            elif c[0].startswith("full R2"):
                sec = "alb R2 full (+ collate, MixUp/CutMix, smoothing)"
                peer = c[0].split(" vs ", 1)[-1]
                out.append(Meas(sec, 'augspec compile("albumentations")', "augspec", ours))
                if "timm" in peer:
                    out.append(Meas(sec, peer, "peer", hand))
                else:
                    out.append(Meas(sec, peer + " (the script's stand-in: timm not importable)", "stand-in", hand))
    m = re.search(r"OpenCV kernels alone .*?: ([\d.]+) ms", text)
    if m:
        out.append(Meas("alb R2 per-image part", "OpenCV kernels alone (floor)", "ref", float(m.group(1))))
    return out


def parse_jax(text: str) -> list[Meas]:
    out = []
    for heading, _, rows in _tables(text):
        if not heading.startswith("R2 JAX"):
            continue
        for c in rows:
            ms = _num(c[2])
            kind = "ref" if "torch" in c[0] else "augspec"
            first = re.search(r"first call .*?([\d.]+ s)", c[-1])
            note = c[-1] if ms is None else f"first call {first.group(1)}" if first else ""
            out.append(Meas("jax R2 batch " + heading.split(", batch ", 1)[-1].split(", uint8")[0] + " (new code only)",
                            c[0], kind, ms, note=note))
    return out


PARSERS = {"torch": parse_torch, "sweep": parse_sweep, "tf": parse_tf, "alb": parse_alb, "jax": parse_jax}


# ------------------------------------------------------------------ running


def run_one(b: Bench, root: str, python: str, timeout: float, raw_dir: str | None, tag: str) -> dict:
    spec = {"script": os.path.join(root, "benchmarks", b.script), "args": b.args, "calls": b.calls}
    env = dict(os.environ, PYTHONPATH=os.path.join(root, "src"), PYTHONDONTWRITEBYTECODE="1",
               TF_CPP_MIN_LOG_LEVEL="3", NO_ALBUMENTATIONS_UPDATE="1")
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    try:
        p = subprocess.run([python, "-c", WRAPPER, json.dumps(spec)], cwd=root, env=env, capture_output=True,
                           text=True, timeout=timeout)
        stdout, stderr, rc = p.stdout, p.stderr, p.returncode
    except subprocess.TimeoutExpired as e:
        stdout = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        stderr = (e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")) + "\n[timeout]"
        rc = -1
    wall = time.perf_counter() - t0
    if raw_dir:
        with open(os.path.join(raw_dir, f"{tag}.out"), "w") as fh:
            fh.write(stdout + "\n---- stderr ----\n" + stderr)
    m = re.search(r"^@@augspec (.*)$", stderr, re.M)
    which = m.group(1).strip() if m else None
    which = os.path.realpath(which) if which and which != "None" else which
    meas = []
    err = None
    if rc != 0:
        err = f"exit {rc}: " + " ".join(stderr.strip().splitlines()[-3:])[:300]
    try:
        meas = PARSERS[b.key](stdout)
    except Exception as e:  # a parse failure is a failed run, the others go on
        err = (err or "") + f" parse: {type(e).__name__}: {e}"
    if not meas and err is None:
        err = "no rows parsed"
    expect = os.path.realpath(os.path.join(root, "src"))
    wrong = which is not None and which != "None" and not os.path.realpath(which).startswith(expect + os.sep)
    return {"meas": meas, "err": err, "which": which, "wrong_augspec": wrong, "wall": wall, "load": load}


def git_state(root: str) -> str:
    def g(*a: str) -> str:
        return subprocess.run(["git", "-C", root, *a], capture_output=True, text=True).stdout.strip()

    dirty = [ln for ln in g("status", "--porcelain", "--untracked-files=all", "--", "src").splitlines() if ln]
    return f"{g('rev-parse', '--short', 'HEAD')}" + (f" + {len(dirty)} uncommitted file(s) in src/" if dirty else "")


# ------------------------------------------------------------------ report


def _med(v: list[float]) -> float | None:
    return statistics.median(v) if v else None


def _fmt(v: float | None, d: int = 2) -> str:
    return "-" if v is None else f"{v:.{d}f}"


def report(results: dict, rounds: int, tolerance: float) -> list[str]:
    """results[side][bench key] = list of run dicts (one per round)."""
    order: list[tuple[str, str]] = []
    info: dict[tuple[str, str], Meas] = {}
    vals: dict[str, dict[tuple[str, str], list[float]]] = {"old": {}, "new": {}}
    notes: dict[tuple[str, str], set[str]] = {}
    ratios: dict[str, dict[tuple[tuple[str, str], str], list[float]]] = {"old": {}, "new": {}}
    for side in ("old", "new"):
        for runs in results[side].values():
            for run in runs:
                by_sec: dict[str, list[Meas]] = {}
                for m in run["meas"]:
                    k = (m.section, m.row)
                    if k not in info:
                        order.append(k)
                        info[k] = m
                    if m.ms is not None:
                        vals[side].setdefault(k, []).append(m.ms)
                    if m.note:
                        notes.setdefault(k, set()).add(m.note)
                    by_sec.setdefault(m.section, []).append(m)
                for sec, ms in by_sec.items():
                    peers = [p for p in ms if p.kind == "peer" and p.ms]
                    for a in ms:
                        if a.kind == "augspec" and a.ms:
                            for p in peers:
                                ratios[side].setdefault(((sec, a.row), p.row), []).append(p.ms / a.ms)
    lines = [f"| section | row | kind | old ms / batch (median of {rounds}) | new ms / batch | new / old | "
             "old runs | new runs | x peer, old -> new (peer time / augspec time) | note |",
             "|---|---|---|---:|---:|---:|---|---|---|---|"]
    slower = []
    for k in order:
        m = info[k]
        o, n = _med(vals["old"].get(k, [])), _med(vals["new"].get(k, []))
        q = n / o if (o and n) else None
        qs = _fmt(q)
        if q is not None and m.kind == "augspec" and q > 1 + tolerance:
            qs = f"**{q:.2f}**"
            slower.append(f"{k[0]}: {k[1]} ({q:.2f})")
        rs = []
        for kk, peer in sorted({x for side in ratios.values() for x in side if x[0] == k}):
            ro = _med(ratios["old"].get((kk, peer), []))
            rn = _med(ratios["new"].get((kk, peer), []))
            rs.append(f"{peer}: {_fmt(ro)} -> {_fmt(rn)}")
        runs_o = "/".join(f"{v:.1f}" for v in vals["old"].get(k, [])) or "-"
        runs_n = "/".join(f"{v:.1f}" for v in vals["new"].get(k, [])) or "-"
        note = "; ".join(sorted(notes.get(k, set())))
        lines.append(f"| {k[0]} | {k[1]} | {m.kind} | {_fmt(o)} | {_fmt(n)} | {qs} | {runs_o} | {runs_n} | "
                     f"{'; '.join(rs) or '-'} | {note} |")
    lines += ["", f"- augspec rows slower than old by more than {tolerance:.0%} (median new/old): "
              + ("; ".join(slower) if slower else "none")]
    not_run = sorted({f"{k[1]} ({k[0]}): {n[len('not run: '):]}" for k in order if info[k].kind.startswith("peer")
                      for n in notes.get(k, ()) if n.startswith("not run: ")})
    stand = sorted({k[1] for k in order if info[k].kind == "stand-in"})
    lines += [f"- peer rows not run: {'; '.join(not_run) if not_run else 'none'}"]
    if stand:
        lines += [f"- stand-ins (timed, no ratio, not the named peer): {'; '.join(stand)}"]
    # flatness, from both sweeps: ms per image at each batch, and 256 (largest) over 32 (smallest >= 32)
    for sec in ("torch sweep (scaling_sweep)", "torch sweep (bench_torch)"):
        sizes = sorted({re.sub(r".* @ ", "", k[1]) for k in order if k[0] == sec})
        for size in sizes:
            for side in ("old", "new"):
                pts = []
                for k in order:
                    m = info[k]
                    if k[0] == sec and m.n and m.n >= 32 and k[1].endswith("@ " + size) and k in vals[side]:
                        pts.append((m.n, _med(vals[side][k]) / m.n))
                if len(pts) >= 2:
                    pts.sort()
                    cells = ", ".join(f"{n}: {v:.3f}" for n, v in pts)
                    lines.append(f"- cost per image, {sec}, {size}, {side}: {cells} ms; batch {pts[-1][0]} / batch "
                                 f"{pts[0][0]} = {pts[-1][1] / pts[0][1]:.3f}")
    for k in order:
        if k[0].startswith("jax") and info[k].kind == "augspec":
            tk = next((kk for kk in order if kk[0] == k[0] and info[kk].kind == "ref"), None)
            j, t = _med(vals["new"].get(k, [])), _med(vals["new"].get(tk, [])) if tk else None
            if j and t:
                per = [a / b for a, b in zip(vals["new"][k], vals["new"][tk])]
                lines.append(f"- JAX R2 / torch eager R2 (same process, new code): {_fmt(_med(per))} "
                             f"(rounds {'/'.join(f'{v:.2f}' for v in per)}; target <= 1.5: "
                             f"{'met' if _med(per) <= 1.5 else 'NOT met'})")
            else:
                lines.append("- JAX R2: not timed: " + "; ".join(sorted(notes.get(k, {"no result"}))))
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", default="/work/old", help="checkout of the code before the change (a git worktree)")
    ap.add_argument("--new", default=NEW_ROOT, help="checkout of the new code (default: this repository)")
    ap.add_argument("--python", default=sys.executable, help="interpreter for every benchmark process")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="torch,sweep,tf,alb,jax", help="benches to run, comma separated")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes and repeats: checks the harness, not the code")
    ap.add_argument("--torch-jit", action="store_true", help="keep bench_torch's jit=True row (minutes per process)")
    ap.add_argument("--tolerance", type=float, default=0.05, help="allowed slowdown of an augspec row (default 5 %%)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per benchmark process")
    ap.add_argument("--raw-dir", default=None, help="keep every process's output here (default: a new /tmp folder)")
    ap.add_argument("--out", default=None, help="also write the report to this markdown file")
    a = ap.parse_args()
    sys.path.insert(0, os.path.join(a.new, "src"))
    from augspec.bench import cpu_name

    raw = a.raw_dir or f"/tmp/compare_old_new_{time.strftime('%Y%m%d_%H%M%S')}"
    os.makedirs(raw, exist_ok=True)
    want = {s.strip() for s in a.only.split(",") if s.strip()}
    plan = [b for b in benches(a.smoke, a.torch_jit) if b.key in want]
    roots = {"old": os.path.abspath(a.old), "new": os.path.abspath(a.new)}
    for side, root in roots.items():
        if not os.path.isdir(os.path.join(root, "src", "augspec")):
            print(f"compare_old_new: no src/augspec under {root} ({side})", file=sys.stderr)
            return 2
    started = _dt.datetime.now().astimezone()
    load0 = os.getloadavg()
    t_all = time.perf_counter()
    results: dict[str, dict[str, list[dict]]] = {"old": {}, "new": {}}
    walls: list[str] = []
    problems: list[str] = []
    for r in range(a.rounds):
        for b in plan:
            sides = ["new"] if b.new_only else (["old", "new"] if r % 2 == 0 else ["new", "old"])
            for side in sides:
                print(f"[round {r + 1}/{a.rounds}] {b.key} {side} ...", file=sys.stderr, flush=True)
                res = run_one(b, roots[side], a.python, a.timeout, raw, f"r{r + 1}_{b.key}_{side}")
                results[side].setdefault(b.key, []).append(res)
                walls.append(f"{b.key}/{side}/r{r + 1} {res['wall']:.0f} s (load {res['load']:.1f})")
                print(f"    {res['wall']:.1f} s, {len(res['meas'])} rows, augspec from {res['which']}"
                      + (f", ERROR {res['err']}" if res["err"] else ""), file=sys.stderr, flush=True)
                if res["err"]:
                    problems.append(f"{b.key} {side} round {r + 1}: {res['err']}")
                if res["wrong_augspec"]:
                    problems.append(f"{b.key} {side} round {r + 1}: imported augspec from {res['which']}, "
                                    f"not {roots[side]}/src")
    load1 = os.getloadavg()
    total = time.perf_counter() - t_all
    which = {side: sorted({run["which"] for runs in results[side].values() for run in runs}) for side in results}
    lines = ["# Old vs new code, alternating fresh processes" + (" (SMOKE settings: not a measurement)" if a.smoke else ""),
             "",
             f"- machine: {cpu_name()}, {os.cpu_count()} cores",
             f"- date: {started.strftime('%Y-%m-%d %H:%M:%S %Z')}, total {total / 60:.1f} min",
             f"- load average (1, 5, 15 min) before: {', '.join(f'{v:.2f}' for v in load0)}; "
             f"after: {', '.join(f'{v:.2f}' for v in load1)}",
             f"- old: {roots['old']} ({git_state(roots['old'])}), augspec imported from {which['old']}",
             f"- new: {roots['new']} ({git_state(roots['new'])}), augspec imported from {which['new']}",
             f"- rounds: {a.rounds}; python: {a.python}",
             "- benches: " + "; ".join(f"{b.key}: {b.script} " + (" ".join(b.args) if b.args else
                                       ", ".join(f"{fn}{tuple(args)}" for fn, args in b.calls or []))
                                       + (" (new only)" if b.new_only else "") for b in plan),
             f"- raw outputs: {raw}",
             "- kind: augspec = an augspec row (held to new/old <= 1 + tolerance); peer = another library, same "
             "code on both sides (its new/old is the drift between paired processes); ref = a reference row; "
             "stand-in = not the peer the issue names, no ratio", ""]
    lines += report(results, a.rounds, a.tolerance)
    lines += ["", "Process wall times: " + ", ".join(walls)]
    if problems:
        lines += ["", "Problems:"] + [f"- {p}" for p in problems]
    text = "\n".join(lines)
    print(text)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(text + "\n")
    return 1 if any("imported augspec" in p for p in problems) else 0


if __name__ == "__main__":
    sys.exit(main())
