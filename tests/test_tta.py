"""augspec.TTA with a PyTorch nn.Module and a Keras model."""

from __future__ import annotations

import numpy as np
import pytest

from augspec.core.errors import InputError, SpecError, SpecTypeError
from augspec.tta import TTA

ALL = ["identity", "hflip", "vflip", TTA.shift(1, -2), TTA.shift(-3, 0)]


# ------------------------------------------------------------------- torch

torch = pytest.importorskip("torch")
nn = torch.nn


class Counting(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls, self.sizes = inner, 0, []

    def forward(self, x):
        self.calls += 1
        self.sizes.append(int(x.shape[0]))
        return self.inner(x)


def torch_classifier(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 3),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(20, 7)).eval()


def test_torch_identity_only_equals_model():
    m = torch_classifier()
    x = torch.rand(3, 3, 10, 12)
    with torch.no_grad():
        ref = m(x)
    torch.testing.assert_close(TTA(m, ["identity"])(x), ref)
    probs = nn.Sequential(m, nn.Softmax(dim=1))
    torch.testing.assert_close(TTA(probs, ["identity", "identity"], reduce="gmean")(x), ref.softmax(1))


def test_torch_flip_equivariant_model_unchanged():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 2, 3, padding=1)
    with torch.no_grad():  # kernels symmetric left-right and top-bottom: the conv commutes with both flips
        w = conv.weight
        w.copy_((w + w.flip(-1)) / 2)
        w.copy_((w + w.flip(-2)) / 2)
    x = torch.rand(2, 3, 9, 11)
    with torch.no_grad():
        ref = conv(x)
    out = TTA(conv, ["identity", "hflip", "vflip"])(x)  # dense: inverted, then averaged
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-5)
    pooled = nn.Sequential(conv, nn.AdaptiveAvgPool2d(1), nn.Flatten())  # flip-invariant classifier
    with torch.no_grad():
        ref_p = pooled(x)
    torch.testing.assert_close(TTA(pooled, ["identity", "hflip", "vflip"])(x), ref_p, atol=1e-6, rtol=1e-5)


def test_torch_dense_inversion_recovers_geometry():
    x = torch.rand(2, 3, 8, 10)
    tta = TTA(nn.Identity(), ALL)
    torch.testing.assert_close(tta(x), x)  # every branch mapped back exactly
    for t in ALL:
        y = tta.forward_transform(x, tta.transforms[ALL.index(t)])
        torch.testing.assert_close(tta.inverse_transform(y, tta.transforms[ALL.index(t)], (8, 10)), x)
    assert not torch.equal(tta.forward_transform(x, TTA.shift(1, -2)), x)
    # a non-equivariant dense model: each branch is the model's answer moved back
    m = nn.Conv2d(3, 1, 3, padding=1)
    with torch.no_grad():
        expect = (m(x) + m(x.flip(-1)).flip(-1)) / 2
    torch.testing.assert_close(TTA(m, ["identity", "hflip"])(x), expect)
    smooth = torch.linspace(0, 1, 16).view(1, 1, 1, 16).expand(1, 1, 16, 16).contiguous()
    back = TTA(nn.Identity(), [TTA.scale(2.0)])(smooth)  # scale: resized back, approximate
    assert back.shape == smooth.shape and float((back - smooth)[..., 2:-2].abs().max()) < 1e-5


def test_torch_one_forward_pass_and_chunks():
    inner = torch_classifier()
    m = Counting(inner)
    x = torch.rand(4, 3, 10, 12)
    full = TTA(m, ALL)(x)
    assert m.calls == 1 and m.sizes == [20]
    m.calls, m.sizes = 0, []
    chunked = TTA(m, ALL, max_batch=6)(x)
    assert m.sizes == [6, 6, 6, 2]
    torch.testing.assert_close(chunked, full, atol=1e-6, rtol=1e-5)
    m.calls = 0
    TTA(m, ["identity", TTA.scale(1.5), "hflip"])(x)  # a second input size: one more pass
    assert m.calls == 2


def test_torch_gmean_of_probabilities():
    m = nn.Sequential(torch_classifier(), nn.Softmax(dim=1))
    x = torch.rand(2, 3, 10, 12)
    with torch.no_grad():
        a, b = m(x), m(x.flip(-1))
    torch.testing.assert_close(TTA(m, ["identity", "hflip"], reduce="gmean")(x), (a * b).sqrt(), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(TTA(m, ["identity", "hflip"])(x), (a + b) / 2)


def test_errors():
    m = torch_classifier()
    with pytest.raises(SpecError):
        TTA(m, ["rotate"])
    with pytest.raises(SpecError):
        TTA(m, reduce="median")
    with pytest.raises(SpecTypeError):
        TTA(m, [TTA.shift(0.5, 0)])  # type: ignore[arg-type]
    with pytest.raises(SpecError):
        TTA(m, [], reduce="mean")
    with pytest.raises(SpecError):
        TTA(m, max_batch=0)
    with pytest.raises(InputError):
        TTA(m)(torch.rand(3, 10, 12))
    with pytest.raises(SpecTypeError):
        TTA("not a model")  # type: ignore[arg-type]


def test_torch_nhwc_layout():
    x = torch.rand(2, 6, 7, 3)
    out = TTA(nn.Identity(), ALL, layout="NHWC")(x)
    torch.testing.assert_close(out, x)


# ------------------------------------------------------------------- keras


@pytest.fixture(scope="module")
def keras():
    tf = pytest.importorskip("tensorflow")
    import keras as k

    tf.random.set_seed(0)
    return k


def test_keras_identity_flip_and_inversion(keras):
    tf = pytest.importorskip("tensorflow")
    x = np.random.default_rng(0).random((3, 10, 12, 3)).astype(np.float32)
    clf = keras.Sequential([keras.Input((10, 12, 3)), keras.layers.Conv2D(4, 3, padding="same"),
                            keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(5, activation="softmax")])
    ref = clf(x, training=False).numpy()
    np.testing.assert_allclose(TTA(clf, ["identity"])(x).numpy(), ref, rtol=1e-6)
    a, b = ref, clf(x[:, :, ::-1], training=False).numpy()
    np.testing.assert_allclose(TTA(clf, ["identity", "hflip"])(x).numpy(), (a + b) / 2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(TTA(clf, ["identity", "hflip"], reduce="gmean")(x).numpy(), np.sqrt(a * b),
                               rtol=1e-5, atol=1e-6)
    ident = keras.Sequential([keras.Input((10, 12, 3)), keras.layers.Identity()])
    np.testing.assert_allclose(TTA(ident, ALL)(x).numpy(), x)
    np.testing.assert_allclose(TTA(ident, ALL, max_batch=4)(tf.constant(x)).numpy(), x)
    # flip-equivariant dense keras model: symmetric kernels
    conv = keras.layers.Conv2D(2, 3, padding="same")
    dense = keras.Sequential([keras.Input((10, 12, 3)), conv])
    k, bias = conv.get_weights()
    k = (k + k[::-1]) / 2
    k = (k + k[:, ::-1]) / 2
    conv.set_weights([k, bias])
    np.testing.assert_allclose(TTA(dense, ["identity", "hflip", "vflip"])(x).numpy(), dense(x).numpy(),
                               rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------- detection
def _toy_detector(w_img):
    """A detector that finds the brightest column band: one box per image, from the pixels."""
    torch = pytest.importorskip("torch")

    class Detector(torch.nn.Module):
        def forward(self, x):
            return model(x)

    def model(x):
        out = []
        for img in x:
            cols = torch.nonzero(img[0].amax(0) > 0.5).flatten()
            rows = torch.nonzero(img[0].amax(1) > 0.5).flatten()
            box = torch.tensor([[cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]], dtype=torch.float32)
            out.append({"boxes": box, "scores": torch.tensor([0.9]), "labels": torch.tensor([1])})
        return out

    return Detector()


@pytest.mark.parametrize("merge", ["wbf", "nms"])
def test_detect_maps_boxes_back_and_merges_them(merge):
    torch = pytest.importorskip("torch")
    x = torch.zeros(2, 1, 10, 16)
    x[0, :, 2:5, 3:9] = 1.0
    x[1, :, 6:10, 10:16] = 1.0
    tta = TTA(_toy_detector(16), transforms=["identity", "hflip", "vflip", TTA.shift(1, 2)])
    out = tta.detect(x, merge=merge)
    assert len(out) == 2
    np.testing.assert_allclose(out[0]["boxes"], [[3, 2, 9, 5]], atol=1e-5)
    assert out[0]["labels"].tolist() == [1]
    np.testing.assert_allclose(out[0]["scores"], [0.9], atol=1e-6)  # every view found it: full score (WBF), the best (NMS)
    # the shifted view of image 1 wraps its band around: clipped back, it is a smaller box of IoU < 0.55
    assert len(out[1]["boxes"]) >= 1
    np.testing.assert_allclose(out[1]["boxes"][0], [10, 6, 16, 10], atol=1.0)


def test_detect_names_bad_model_output():
    torch = pytest.importorskip("torch")
    tta = TTA(torch.nn.Identity(), transforms=["identity"])
    with pytest.raises(InputError, match="one dict"):
        tta.detect(torch.zeros(2, 1, 4, 4))
    with pytest.raises(SpecError, match="merge"):
        tta.detect(torch.zeros(2, 1, 4, 4), merge="mean")
