"""The ``augspec`` command: ``list``, ``demo``, ``preview CONFIG``, ``bench``.

Exit codes: 0 success, 1 a run that failed (e.g. no backend could run the
pipeline), 2 bad usage or a bad config (with the message pointing at the key).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .core.errors import AugspecError, ConfigError, ConfigTypeError, SpecError, SpecTypeError


def _err(msg: str) -> int:
    print(f"augspec: error: {msg}", file=sys.stderr)
    return 2


# ------------------------------------------------------------------ list


def cmd_list(args: argparse.Namespace) -> int:
    from .core.registry import list_backends, list_generators, list_ops, plugin_errors

    ops = list_ops()
    print(f"ops ({len(ops)}):")
    w = max(len(o.name) for o in ops)
    for o in ops:
        print(f"  {o.name:<{w}}  {o.family:<10}  {o.registrant}")
    bks = list_backends()
    print(f"\nbackends ({len(bks)}):")
    w = max(len(b.name) for b in bks)
    for b in bks:
        status = "available  " if b.available else "unavailable"
        hint = "" if b.available else f"  install: {b.install}"
        print(f"  {b.name:<{w}}  {status}  {b.registrant}{hint}")
    gens = list_generators()
    print(f"\ngenerators ({len(gens)}):")
    if gens:
        w = max(len(g.name) for g in gens)
        for g in gens:
            print(f"  {g.name:<{w}}  {g.registrant}")
    errs = plugin_errors()
    if errs:
        print("\nplugins that failed to load:")
        for name, msg in errs:
            print(f"  {name}: {msg}")
    return 0


# ------------------------------------------------------------------ demo


def _print_rows(result: object) -> int:
    from .core.registry import list_backends
    from .demo import summary_line

    rows = result.rows  # type: ignore[attr-defined]
    print(f"wrote {Path(result.path).resolve()}")  # type: ignore[attr-defined]
    for r in rows:
        print("  " + summary_line(r))
    shown = {r.backend for r in rows}
    missing = [b for b in list_backends() if not b.available and b.name not in shown]
    if missing:
        print("  not installed: " + "; ".join(f"{b.name} ({b.install})" for b in missing))
    return 0 if any(r.error is None for r in rows) else 1


def _backends(arg: str | None) -> list[str] | None:
    if not arg:
        return None
    return [b.strip() for b in arg.split(",") if b.strip()]


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import demo

    try:
        result = demo(args.out, images_dir=args.images, seed=args.seed, backends=_backends(args.backend),
                      size=args.size, copies=args.copies)
    except AugspecError as e:
        return _err(str(e))
    return _print_rows(result)


# --------------------------------------------------------------- preview


def load_config(path: str | Path) -> object:
    """The pipeline of a YAML or JSON file (by suffix; otherwise YAML, which reads JSON too)."""
    from .core.pipeline import Pipeline
    from .core.serialize import from_json, from_yaml

    p = Path(path)
    text = p.read_text(encoding="utf-8")
    op = from_json(text) if p.suffix.lower() == ".json" else from_yaml(text)
    if not isinstance(op, Pipeline):
        op = Pipeline([op], seed=0)
    return op


def cmd_preview(args: argparse.Namespace) -> int:
    from .demo import demo

    try:
        pipe = load_config(args.config)
    except FileNotFoundError:
        return _err(f"{args.config}: no such file")
    except (OSError, UnicodeDecodeError) as e:
        return _err(f"{args.config}: cannot read it ({e})")
    except (ConfigError, ConfigTypeError, SpecError, SpecTypeError) as e:
        return _err(f"{args.config}: {e}")
    out = args.out or f"{Path(args.config).stem}-preview.png"
    try:
        result = demo(out, images_dir=args.images, seed=args.seed, backends=_backends(args.backend),
                      size=args.size, copies=args.copies, pipeline=pipe,  # type: ignore[arg-type]
                      title=f"augspec preview · {Path(args.config).name} · seed {{seed}}")
    except AugspecError as e:
        return _err(str(e))
    return _print_rows(result)


# ----------------------------------------------------------------- bench


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import main as bench_main

    return bench_main(args)


# ------------------------------------------------------------------ main


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="augspec", description="augspec: the regularizers of vision training, "
                                "one registry of specs compiled for NumPy, PyTorch, TensorFlow or albumentations.")
    p.add_argument("--version", action="version", version=f"augspec {__version__}")
    sub = p.add_subparsers(dest="command", metavar="{list,demo,preview,bench}")

    s = sub.add_parser("list", help="every op (family, registrant) and every backend (availability, install hint)")
    s.set_defaults(func=cmd_list)

    def grid_args(s: argparse.ArgumentParser, out_help: str) -> None:
        s.add_argument("--images", metavar="DIR", help="use the images of DIR (one class each) instead of "
                       "scikit-image's photographs")
        s.add_argument("--out", metavar="PNG", help=out_help)
        s.add_argument("--backend", metavar="NAME[,NAME]", help="backends to run (default: every available one; "
                       "numpy always runs as the reference)")
        s.add_argument("--size", type=int, default=160, help="side of each image in pixels (default 160)")
        s.add_argument("--copies", type=int, default=2, help="times each image appears in the batch (default 2)")

    s = sub.add_parser("demo", help="run the default R2-like pipeline on every backend and write a PNG grid")
    grid_args(s, "where to write the grid (default augspec-demo.png)")
    s.add_argument("--seed", type=int, default=0, help="the pipeline's seed (default 0)")
    s.set_defaults(func=cmd_demo, out="augspec-demo.png")

    s = sub.add_parser("preview", help="the same grid for a pipeline written as YAML or JSON")
    s.add_argument("config", metavar="CONFIG", help="a .yaml/.yml or .json pipeline (augspec.to_yaml / to_json)")
    grid_args(s, "where to write the grid (default CONFIG-preview.png)")
    s.add_argument("--seed", type=int, default=None, help="override the config's seed (default: its seed, else 0)")
    s.set_defaults(func=cmd_preview)

    s = sub.add_parser("bench", help="time recipes R2 and R1 (R3 with --recipe R3) on every backend and installed peer library")
    from .bench import add_arguments

    add_arguments(s)
    s.set_defaults(func=cmd_bench)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``augspec`` console script; returns the exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    for name in ("size", "copies"):
        if getattr(args, name, 1) is not None and getattr(args, name, 1) < 1:
            return _err(f"--{name} must be >= 1")
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
