"""Transfer learning from few examples, with and without augmentation.

    python examples/transfer_learning.py --framework torch     # or tensorflow; a few minutes on 2 CPU cores
    python examples/transfer_learning.py --tiny --out /tmp/tl  # a smoke test

The classic small-data recipe on scikit-learn's digits (16x16, the same split as
``scarce_data.py``): pretrain the small CNN on digits 0-4 (the whole training half
of them, no augmentation), then learn digits 5-9 from ``--shots`` examples per
class three ways:

    scratch      a fresh CNN trained on the few examples
    linear head  the pretrained features frozen, a new linear head trained
    fine-tune    the pretrained network with a new head; the last conv layer,
                 the hidden dense layer and the head are trained

each without augmentation and with augspec's geometric + pixel augmentation and
CutOut (drawn afresh at every step, also in front of frozen features), on three
seeds (each seed: its own pretraining, its own few examples). Scored on the test
half's digits 5-9. Writes a markdown table to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

import augspec as aug

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scarce_data as sd  # noqa: E402  (the data, the model and the augmenter are shared)

METHODS = (("scratch", "all"), ("linear head", "head"), ("fine-tune", "last"))


def aug_ops() -> list[aug.Op]:
    return sd.geo_pixel() + [aug.CutOut(holes=1, size=(0.2, 0.4))]


def clone(framework: str, model: Any, seed: int) -> Any:
    """A copy of the pretrained model (features and head)."""
    if framework == "torch":
        new = sd.TorchModel(5, 0.0, seed)
        new.net.load_state_dict(model.net.state_dict())
        return new
    new = sd.KerasModel(5, 0.0, seed)
    new.features.set_weights(model.features.get_weights())
    return new


def accuracy(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    return float((model.predict(model.to_input(x)).argmax(1) == y).mean())


def run_seed(framework: str, seed: int, data: tuple, shots: int, pre_steps: int, steps: int, batch: int,
             lr: float) -> list[dict[str, Any]]:
    x_tr, y_tr, x_te, y_te = data
    old_tr, old_te = y_tr < 5, y_te < 5
    new_tr, new_te = ~old_tr, ~old_te
    pre = sd.make_model(framework, 5, 0.0, seed)
    plain, _ = sd.augmenter(framework, pre, [], 5, seed)
    pre.fit(pre.to_input(x_tr[old_tr]), plain, y_tr[old_tr], pre_steps, batch, lr, seed)
    out = [{"method": "pretrained on 0-4 (test on 0-4)", "aug": "-", "seed": seed,
            "acc": accuracy(pre, x_te[old_te], y_te[old_te])}]
    xn, yn = x_tr[new_tr], y_tr[new_tr] - 5
    idx = sd.stratified_subset(yn, per_class=shots, seed=seed)
    xs, ys = xn[idx], yn[idx]
    for method, part in METHODS:
        for with_aug in (False, True):
            if method == "scratch":
                model = sd.make_model(framework, 5, 0.0, seed + 1000)
            else:
                model = clone(framework, pre, seed)
                model.new_head(5, seed + 2000)
            fn, backend = sd.augmenter(framework, model, aug_ops() if with_aug else [], 5, seed)
            model.fit(model.to_input(xs), fn, ys, steps, batch, lr, seed,
                      part=part)
            out.append({"method": method, "aug": backend if with_aug else "none", "seed": seed,
                        "acc": accuracy(model, x_te[new_te], y_te[new_te] - 5)})
    return out


def markdown(results: list[dict[str, Any]], args: argparse.Namespace, n_test: int) -> str:
    lines = [f"Digits (scikit-learn), {sd.SIDE}x{sd.SIDE}: CNN pretrained on digits 0-4 ({args.pre_steps} steps), "
             f"then digits 5-9 learnt from {args.shots} examples per class ({args.steps} steps), tested on {n_test} "
             f"test images of 5-9; framework {args.framework}; accuracy, mean ± std over seeds "
             f"{', '.join(map(str, args.seed_list))}. Augmentation: affine, brightness/contrast, noise, CutOut.", "",
             "| method | no augmentation | with augmentation |", "|---|---:|---:|"]

    def cell(method: str, with_aug: bool) -> str:
        a = np.array([r["acc"] for r in results if r["method"] == method and (r["aug"] != "none") == with_aug])
        return f"{a.mean():.3f} ± {a.std():.3f}" if a.size else "-"

    for method, _ in METHODS:
        lines.append(f"| {method} | {cell(method, False)} | {cell(method, True)} |")
    pre = np.array([r["acc"] for r in results if r["method"].startswith("pretrained")])
    lines += ["", f"The pretrained network scores {pre.mean():.3f} ± {pre.std():.3f} on the test digits 0-4. "
              f"Chance on 5-9 is 0.200."]
    return "\n".join(lines) + "\n"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = sd.example_parser(__doc__, steps=300, batch=32, lr=2e-3, steps_help="few-shot training steps")
    p.add_argument("--shots", type=int, default=5, help="examples per new class (default 5)")
    p.add_argument("--pre-steps", type=int, default=600, help="pretraining steps (default 600)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    p.add_argument("--tiny", action="store_true", help="smoke test: 1 seed, 10 + 10 steps")
    args = sd.parse_args(p, argv)
    if args.tiny:
        args.seed_list, args.pre_steps, args.steps, args.batch = args.seed_list[:1], 10, 10, 16
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    sd.one_thread(args.framework)
    x, y = sd.load_digits_images()
    x_tr, x_te, y_tr, y_te = sd.split(x, y)
    results = []
    for s in args.seed_list:
        rs = run_seed(args.framework, s, (x_tr, y_tr, x_te, y_te), args.shots, args.pre_steps, args.steps,
                      args.batch, args.lr)
        for r in rs:
            print(f"  seed {s}: {r['method']:<32} aug {r['aug']:<10} accuracy {r['acc']:.3f}", flush=True)
        results += rs
    text = markdown(results, args, int((y_te >= 5).sum()))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"transfer_learning_{args.framework}.md"
    path.write_text(text)
    print()
    print(text)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
