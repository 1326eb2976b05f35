"""Every branch of the policies against torchvision v2 with the same op and magnitude injected:
within one level of 255 on uint8 (interior pixels for the warps). Also the policy tables: the
magnitude augspec draws for each op equals torchvision's table entry. Needs torchvision
(the separate environment of the README's fidelity section); skips without it."""

from __future__ import annotations

import numpy as np
import pytest

import augspec as aug
from augspec.core.ops import policy as P

torch = pytest.importorskip("torch")
v2 = pytest.importorskip("torchvision.transforms.v2", reason="torchvision is not installed (see README: fidelity)")
from torchvision.transforms import InterpolationMode  # noqa: E402

H, W = 48, 64


def _image(n: int = 1, seed: int = 0) -> np.ndarray:
    try:
        from skimage.data import chelsea

        img = chelsea()[40:40 + 3 * H:3, 100:100 + 3 * W:3]
        out = np.stack([np.roll(img, 7 * i, axis=1) for i in range(n)])
    except ImportError:
        out = np.random.default_rng(seed).integers(0, 256, (n, H, W, 3), dtype=np.uint8)
    return np.ascontiguousarray(out)


def _ours(op, names, name: str, value: float | None, x: np.ndarray) -> np.ndarray:
    """Our policy ``op`` (one layer) with the branch of ``name`` chosen for every sample and
    its parameter set to ``value`` (the signed magnitude; None: an op without one)."""
    run = aug.Pipeline([op]).compile("numpy")
    ps = {k: np.asarray(v).copy() for k, v in run.sample(len(x), x.shape[1:]).items()}
    k = [nm for nm in names if nm != "Identity"].index(name)
    ps["0.0/choice"][:] = k
    for lf in run.plan.leaves:
        if lf.path.startswith(f"0.0.{k}."):
            for key in lf.op.draws():
                if value is not None:
                    ps[f"{lf.path}/{key}"][:] = value
            if f"{lf.path}/apply" in ps:
                ps[f"{lf.path}/apply"][:] = True
    return run.apply(x, None, ps)


def _tv(t, name: str, magnitude: float, x: np.ndarray) -> np.ndarray:
    img = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    out = t._apply_image_or_video_transform(img, name, magnitude, interpolation=t.interpolation, fill=t._fill)
    return out.permute(0, 2, 3, 1).numpy()


GEOMETRIC = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")


def _compare(name: str, got: np.ndarray, want: np.ndarray, x: np.ndarray, ours_white: np.ndarray | None = None,
             tv_white: np.ndarray | None = None) -> None:
    d = np.abs(got.astype(int) - want.astype(int))
    if name in GEOMETRIC:
        inside = (ours_white == 255).all(-1) & (tv_white == 255).all(-1)
        assert inside.mean() > 0.3, name
        d = d[inside]
    # torchvision's uint8 blends floor the grey image (Color, Contrast) and truncate the result:
    # up to two levels below the once-rounded value; on float images they agree to 1/255 (below)
    tol = 2 if name in TRUNCATING else 1
    assert d.max() <= tol, f"{name}: {int(d.max())} levels off ({np.mean(d > 1):.4f} of the values)"


TRUNCATING = ("Color", "Contrast")


@pytest.mark.parametrize("name", ["Brightness", "Color", "Contrast", "Sharpness"])
@pytest.mark.parametrize("factor", [0.1, 0.73, 1.9])
def test_enhance_ops_on_float_images_within_a_level(name, factor):
    x = _image(2)
    xf = x.astype(np.float32) / 255
    t = v2.RandAugment(interpolation=InterpolationMode.BILINEAR)
    got = _ours(aug.RandAugment(num_ops=1), P._TV_RAND, name, factor, xf)
    want = _tv(t, name, factor - 1.0, xf)
    assert np.abs(got - want).max() <= 1 / 255, name


TABLES = [
    ("rand", lambda m, interp: aug.RandAugment(num_ops=1, magnitude=m, interpolation=interp),
     lambda interp: v2.RandAugment(interpolation=interp), P._TV_RAND, 31),
    ("trivial", lambda m, interp: aug.TrivialAugmentWide(interpolation=interp),
     lambda interp: v2.TrivialAugmentWide(interpolation=interp), P._TV_TRIVIAL, 31),
]


@pytest.mark.parametrize("table", TABLES, ids=[t[0] for t in TABLES])
@pytest.mark.parametrize("bin_", [3, 9, 30])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_each_branch_agrees_with_torchvision(table, bin_, sign):
    _, make, make_tv, names, bins = table
    x = _image(2)
    white = np.full_like(x, 255)
    interp = "bilinear"
    t = make_tv(InterpolationMode.BILINEAR)
    space = t._AUGMENTATION_SPACE
    for name in names:
        if name == "Identity":
            continue
        fn, signed = space[name]
        mags = fn(bins, H, W)
        mag = 0.0 if mags is None else float(mags[bin_]) * (sign if signed else 1.0)
        op = make(bin_, interp)
        e = names[name]
        value = None
        if e is not None:
            low, high, sgn, offset = e
            value = offset + (low + (high - low) * bin_ / (bins - 1)) * (sign if sgn else 1.0)
            if name in ("Posterize",):
                assert int(mag) == int(np.floor(value + 0.5)), (name, mag, value)
            elif name not in ("TranslateX", "TranslateY") or names is P._TV_TRIVIAL:
                want = mag + (1.0 if offset else 0.0)
                assert value == pytest.approx(want, rel=1e-5, abs=1e-6), (name, value, want)
        got = _ours(op, names, name, value, x)
        want = _tv(t, name, mag, x)
        if name in GEOMETRIC:
            ours_white = _ours(op, names, name, value, white)
            _compare(name, got, want, x, ours_white, _tv(t, name, mag, white))
        else:
            _compare(name, got, want, x)


def test_rand_augment_draws_torchvisions_table_entry():
    """Our sampled magnitude for each op equals torchvision's ``magnitudes[9]`` (up to sign)."""
    x = _image(1)
    t = v2.RandAugment()
    run = aug.Pipeline([aug.RandAugment(num_ops=1, magnitude=9)]).compile("numpy")
    ps = {k: np.asarray(v) for k, v in run.sample(512, x.shape[1:]).items()}
    branches = [nm for nm in P._TV_RAND if nm != "Identity"]
    for lf in run.plan.leaves:
        k = int(lf.path.split(".")[2])
        name = branches[k]
        fn, signed = t._AUGMENTATION_SPACE[name]
        mags = fn(31, H, W)
        if mags is None:
            continue
        for key in lf.op.draws():
            v = ps[f"{lf.path}/{key}"]
            if name in ("Brightness", "Color", "Contrast", "Sharpness"):
                v = v - 1.0
            if name in ("TranslateX", "TranslateY"):
                v = np.trunc(v * (W if name == "TranslateX" else H))
                want = int(float(mags[9]))
            elif name == "Posterize":
                v = np.floor(v + 0.5)
                want = int(mags[9])
            else:
                want = float(mags[9])
            if signed:
                assert set(np.sign(v[v != 0]).tolist()) == {-1.0, 1.0}
                v = np.abs(v)
            np.testing.assert_allclose(v, want, rtol=1e-5, err_msg=name)


@pytest.mark.parametrize("policy", ["imagenet", "cifar10", "svhn"])
def test_auto_augment_tables_match_torchvision(policy):
    from torchvision.transforms import AutoAugmentPolicy

    t = v2.AutoAugment(policy=AutoAugmentPolicy(policy))
    assert tuple(tuple(s) for s in t._policies) == P._AUTO_POLICIES[policy]


# ---------------------------------------------------------------------- timm
@pytest.mark.parametrize("increasing", [False, True])
@pytest.mark.parametrize("level", [3.0, 9.0])
def test_timm_branches_agree_with_timm(increasing, level, monkeypatch):
    """Each op of timm's RandAugment (its PIL code) at a fixed level, sign +, against ours."""
    ta = pytest.importorskip("timm.data.auto_augment")
    from PIL import Image

    monkeypatch.setattr(ta.random, "random", lambda: 0.0)  # _randomly_negate keeps the sign
    x = _image(1)
    white = np.full_like(x, 255)
    fill = (124, 116, 104)
    names = P._TIMM_RAND_INCREASING if increasing else P._TIMM_RAND
    op = aug.RandAugment(num_ops=1, magnitude=level, timm_compat=True, increasing=increasing,
                         interpolation="bilinear", fill=tuple(v / 255 for v in fill))
    hp = dict(ta._HPARAMS_DEFAULT, img_mean=fill, interpolation=Image.BILINEAR)
    for name in names:
        aop = ta.AugmentOp(name, prob=1.0, magnitude=level, hparams=hp)
        args = aop.level_fn(level, aop.hparams) if aop.level_fn is not None else ()
        kw = dict(fillcolor=fill, resample=Image.BILINEAR)

        def timm(img: np.ndarray, aop=aop, args=args, kw=kw) -> np.ndarray:
            return np.asarray(aop.aug_fn(Image.fromarray(img[0]), *args, **kw))[None]

        value = None
        if args:
            m = P._TIMM_ARGS[name]
            value = m.get("offset", 0.0) + m.get("scale", 1.0) * (
                (np.floor if m.get("floor") else float)(m["low"] + (m["high"] - m["low"]) * level / 10.0))
            value = max(value, m.get("minimum", -np.inf))
            if name in ("Solarize", "SolarizeIncreasing", "SolarizeAdd"):
                assert round(value * 255) == args[0], (name, value, args)
            elif name.startswith("TranslateXRel") or name.startswith("TranslateYRel"):
                assert value == pytest.approx(args[0]), name
                value = -value  # PIL's transform reads x + pixels: content moves by -pixels
            else:
                assert value == pytest.approx(args[0], rel=1e-6), (name, value, args)
        key = name.replace("Increasing", "").replace("Rel", "")
        got = _ours(op, {k: None for k in (nm.replace("Increasing", "").replace("Rel", "") for nm in names)},
                    key, value, x)
        want = timm(x)
        d = np.abs(got.astype(int) - want.astype(int))
        if key in GEOMETRIC:
            inside = (_ours(op, {k: None for k in (nm.replace("Increasing", "").replace("Rel", "")
                                                   for nm in names)}, key, value, white) == 255).all(-1) \
                & (timm(white) == 255).all(-1)
            d = d[inside]
        tol = 2 if key in ("Color", "Contrast", "Brightness", "Sharpness") else 1  # PIL's blends truncate
        assert d.max() <= tol, f"{name}: {int(d.max())} levels off"
