"""Does synthetic data help? Elastic variants and fractal pre-training on 10 % of scikit-learn's digits.

    python examples/synthetic_data.py --framework torch        # or tensorflow; a few minutes on 2 CPU cores
    python examples/synthetic_data.py --tiny --out /tmp/syn    # a smoke test (seconds)

The data, the split, the 10 % training subsets, the CNN, the training loop and the
metrics are those of ``scarce_data.py`` (imported from it). Settings, each on three seeds:

    none                  no augmentation
    augment               scarce_data's geo+pixel: Affine (rotate 10, translate 0.1,
                          scale 0.9-1.1, shear 5), brightness / contrast 0.2, noise 0.03
    augment+elastic 0.25  Synthetic("elastic", ratio=0.25) first, then augment: a
                          quarter of each batch (per sample, on average) is replaced by
                          elastic variants (Simard et al. 2003) of real samples of the batch
                          of a drawn class, labelled with those samples' labels
    augment+elastic 0.5   the same with half of each batch
    fractal pre-train     the CNN pre-trained on 10,000 fractal images (IFS, 100 classes,
                          ``aug.synthetic.generate("fractal", ...)``, no augmentation),
                          then a fresh 10-way head and all layers fine-tuned exactly as
                          ``augment`` trains from scratch

The scratch baseline of ``fractal pre-train`` is the ``augment`` row itself (same subset,
same augmentation stream, same steps; trained once). Every setting of a seed shares
that seed's subset, minibatch order and augmentation seed, so the per-seed differences
are paired. Output, in ``--out``: ``synthetic_data_<framework>.md`` (a table of test
accuracy and ECE, mean ± std over seeds, and what the seeds support) and a bar chart.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import augspec as aug

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scarce_data as sd  # noqa: E402  (the data, the model, the training loop and the metrics are shared)

#: the elastic field for 16x16 digits: Simard's alpha 34 / sigma 4 at 28x28, scaled down
#: (a displacement of about 0.66 px rms, 4 % of the side; the digits stay readable)
ELASTIC = {"alpha": 16.0, "sigma": 2.5}
#: the setting that is the from-scratch baseline of the pre-trained one
SCRATCH = "augment"
PRETRAINED = "fractal pre-train"
#: short names for the chart's bars
SHORT = {"augment+elastic 0.25": "+elastic 0.25", "augment+elastic 0.5": "+elastic 0.5", PRETRAINED: "fractal pre"}


def elastic(ratio: float) -> aug.Synthetic:
    return aug.Synthetic("elastic", ratio=ratio, options=dict(ELASTIC))


def settings() -> dict[str, list[aug.Op]]:
    """name -> augspec ops of the digits training (``fractal pre-train`` also pre-trains)."""
    g = sd.geo_pixel
    return {
        "none": [],
        "augment": g(),
        "augment+elastic 0.25": [elastic(0.25)] + g(),
        "augment+elastic 0.5": [elastic(0.5)] + g(),
        PRETRAINED: g(),
    }


# ------------------------------------------------------------ pre-training


def pretrain(framework: str, seed: int, args: argparse.Namespace) -> tuple[Any, float]:
    """The CNN trained on ``args.fractals`` fractal images of ``args.fractal_classes`` classes
    (no augmentation); returns it with a fresh ``sd.CLASSES``-way head, and its accuracy on
    ``args.fractal_test`` held-out fractal images of the same classes."""
    k = args.fractal_classes
    xf, yf = aug.synthetic.generate("fractal", args.fractals, (sd.SIDE, sd.SIDE, 1), num_classes=k, seed=seed)
    xh, yh = aug.synthetic.generate("fractal", args.fractal_test, (sd.SIDE, sd.SIDE, 1), num_classes=k, seed=seed,
                                    start=args.fractals)  # the same classes, images not seen in pre-training
    model = sd.make_model(framework, k, 0.0, seed)
    plain, _ = sd.augmenter(framework, model, [], k, seed)
    model.fit(model.to_input(xf), plain, yf, args.pre_steps, args.pre_batch, args.lr, seed)
    held_out = float((model.predict(model.to_input(xh)).argmax(1) == yh).mean())
    model.new_head(sd.CLASSES, seed + 2000)
    return model, held_out


# ------------------------------------------------------------------ report


def paired(results: list[dict[str, Any]], a: str, b: str, key: str) -> np.ndarray:
    """Per seed: ``b``'s value minus ``a``'s."""
    va = {r["seed"]: r[key] for r in results if r["setting"] == a}
    vb = {r["seed"]: r[key] for r in results if r["setting"] == b}
    return np.array([vb[s] - va[s] for s in sorted(va) if s in vb])


def compare(summary: dict[str, dict[str, float]], results: list[dict[str, Any]], a: str, b: str
            ) -> tuple[str, list[str]]:
    """A sentence on ``b`` against ``a``, and the metrics on which the seeds support a difference:
    the difference of the means exceeds the seed-to-seed spread (the larger std of the two) and
    has the same sign on every seed."""
    parts, supported = [], []
    for key, label in (("acc", "accuracy"), ("ece", "ECE")):
        d = summary[b][key] - summary[a][key]
        per = paired(results, a, b, key)
        spread = max(summary[a][f"{key}_std"], summary[b][f"{key}_std"])
        beyond = abs(d) > spread
        one_sign = per.size > 1 and (bool((per > 0).all()) or bool((per < 0).all()))
        if beyond and one_sign:
            supported.append(f"{label} {'higher' if d > 0 else 'lower'} ({d:+.3f})")
        verdict = ("beyond the seed-to-seed spread" if beyond else "within the seed-to-seed spread") + \
                  (f" (std up to {spread:.3f})") + (", the same sign on every seed" if one_sign else
                                                     ", not the same sign on every seed")
        parts.append(f"{label} {d:+.3f} (per seed {', '.join(f'{p:+.3f}' for p in per)}), {verdict}")
    return f"- **{b}** vs {a}: " + "; ".join(parts) + ".", supported


def markdown(summary: dict[str, dict[str, float]], results: list[dict[str, Any]], args: argparse.Namespace,
             n_test: int) -> str:
    lines = [sd.markdown(summary, args, n_test).rstrip("\n"), ""]
    lines.append(f"Elastic: `aug.Synthetic(\"elastic\", ratio=r, options={{\"alpha\": {ELASTIC['alpha']}, "
                 f"\"sigma\": {ELASTIC['sigma']}}})` placed first, then the `augment` ops (affine, brightness / "
                 "contrast, noise); the replaced samples are elastic variants of real samples of the batch, of a "
                 "class drawn uniformly, with those samples' labels.")
    if PRETRAINED in summary:
        pre = np.array([r["pre_acc"] for r in results if r["setting"] == PRETRAINED])
        pre_s = np.mean([r["pre_seconds"] for r in results if r["setting"] == PRETRAINED])
        lines += ["", f"Fractal pre-training: the same CNN trained on {args.fractals:,} fractal images "
                  f"({args.fractal_classes} IFS classes, `aug.synthetic.generate(\"fractal\", ...)` with the run's "
                  f"seed, no augmentation) for {args.pre_steps} steps of batch {args.pre_batch}, Adam lr {args.lr}; "
                  f"it scores {pre.mean():.3f} ± {pre.std():.3f} on {args.fractal_test:,} held-out fractal images "
                  f"(chance {1 / args.fractal_classes:.3f}). Then a fresh 10-way head, and every layer fine-tuned "
                  f"on the digits exactly as `{SCRATCH}` trains from scratch (same subset, augmentation and "
                  f"steps). The scratch baseline is the `{SCRATCH}` row: it was not trained a second time. Its "
                  f"s / run includes generating the fractals and pre-training ({pre_s:.1f} s of it)."]
    pairs = [(a, b) for a, b in (("none", "augment"), (SCRATCH, "augment+elastic 0.25"),
                                 (SCRATCH, "augment+elastic 0.5"), (SCRATCH, PRETRAINED))
             if a in summary and b in summary]
    if pairs and len(args.seed_list) > 1:
        lines += ["", f"What the {len(args.seed_list)} seeds support (differences of the means; a difference "
                  "counts as supported only if it exceeds the seed-to-seed spread, the larger of the two stds of the "
                  "table, and has the same sign on every seed; lower ECE is better):", ""]
        verdicts = []
        for a, b in pairs:
            sentence, supported = compare(summary, results, a, b)
            lines.append(sentence)
            verdicts.append((a, b, supported))
        lines.append("")
        said = []
        for a, b, supported in verdicts:
            if supported:
                said.append(f"{b} against {a}: {' and '.join(supported)}")
            else:
                said.append(f"{b} against {a}: no difference the seeds can tell from seed-to-seed noise")
        lines.append("In short, " + "; ".join(said) + f". With {len(args.seed_list)} seeds this is a coarse test: "
                     "it can miss small effects and it says nothing beyond this data set, model and budget.")
    elif pairs:
        lines += ["", "One seed only: no seed-to-seed spread to judge the differences against."]
    return "\n".join(lines) + "\n"


def chart(summary: dict[str, dict[str, float]], path: Path) -> Path:
    """Accuracy and ECE bars with their spread over seeds (``scarce_data``'s bar panels)."""
    from PIL import Image, ImageDraw

    names = list(summary)
    labels = [SHORT.get(n, n) for n in names]
    img = Image.new("RGB", (1100, 420), "white")
    d = ImageDraw.Draw(img)
    sd.bar_panel(d, (10, 10, 550, 410), "test accuracy (mean ± std over seeds)", labels,
                 [summary[n]["acc"] for n in names], [summary[n]["acc_std"] for n in names], 1.0)
    ymax = max(0.05, max(summary[n]["ece"] + summary[n]["ece_std"] for n in names) * 1.2)
    sd.bar_panel(d, (560, 10, 1090, 410), "expected calibration error (lower is better)", labels,
                 [summary[n]["ece"] for n in names], [summary[n]["ece_std"] for n in names], ymax,
                 colour=(200, 120, 60))
    img.save(path)
    return path


# -------------------------------------------------------------------- main


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = sd.example_parser(__doc__, steps=500, batch=32, lr=2e-3, steps_help="digits training steps per run")
    p.add_argument("--fractals", type=int, default=10_000, help="fractal images to pre-train on (default 10000)")
    p.add_argument("--fractal-classes", type=int, default=100, help="fractal classes (default 100)")
    p.add_argument("--fractal-test", type=int, default=1000, help="held-out fractal images (default 1000)")
    p.add_argument("--pre-steps", type=int, default=1500, help="pre-training steps (default 1500)")
    p.add_argument("--pre-batch", type=int, default=64)
    p.add_argument("--only", help="comma separated setting names (default: all)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"), help="folder for the table and chart")
    p.add_argument("--tiny", action="store_true", help="smoke test: 1 seed, 15 steps, 500 fractals, 10 pre-steps")
    args = sd.parse_args(p, argv)
    if args.tiny:
        args.seed_list, args.steps, args.batch = args.seed_list[:1], 15, 16
        args.fractals, args.fractal_test, args.pre_steps, args.pre_batch = 500, 100, 10, 16
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    sd.one_thread(args.framework)
    x, y = sd.load_digits_images()
    x_tr, x_te, y_tr, y_te = sd.split(x, y)
    data = (x_tr, y_tr, x_te, y_te)
    table = settings()
    names = sd.chosen_settings(args.only, table)
    if names is None:
        return 2
    t_all = time.perf_counter()
    results = []
    for n in names:
        for s in args.seed_list:
            extra: dict[str, Any] = {}
            model = None
            if n == PRETRAINED:
                t0 = time.perf_counter()
                model, held_out = pretrain(args.framework, s, args)
                extra = {"pre_acc": held_out, "pre_seconds": time.perf_counter() - t0}
                print(f"  {'(pre-training)':<22} seed {s}: held-out fractal accuracy {held_out:.3f}  "
                      f"({extra['pre_seconds']:.1f} s)", flush=True)
            r = sd.run_setting(args.framework, n, table[n], 0.0, data, s, args.steps, args.batch, args.lr, model=model)
            r.update(extra)
            r["seconds"] += extra.get("pre_seconds", 0.0)
            print(f"  {n:<22} seed {s}: accuracy {r['acc']:.3f}  ECE {r['ece']:.3f}  ({r['seconds']:.1f} s, "
                  f"backend {r['backend']})", flush=True)
            results.append(r)
    summary = sd.summarize(results, names)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"synthetic_data_{args.framework}"
    text = markdown(summary, results, args, len(y_te))
    (out / f"{stem}.md").write_text(text)
    png = chart(summary, out / f"{stem}.png")
    print()
    print(text)
    for p in (out / f"{stem}.md", png):
        print(f"wrote {p}")
    print(f"total {time.perf_counter() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
