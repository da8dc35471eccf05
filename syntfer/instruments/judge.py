"""The project's one judge: every expression-fidelity, judge-space FD and teacher-score number goes through here.

A `Judge` is a syntfer classifier checkpoint (`syntfer.engine.models.checkpoint`: state_dict + JSON config) plus the
temperature it was calibrated with (stored in the checkpoint's meta, 1.0 when absent). It has exactly one way
to see an image — the model's own eval transform (`syntfer.engine.data.eval_transform`: resize to the model's input
size, its normalisation) on the decoded image — and it reports in the canonical class order (`syntfer.core.labels`)
whatever order the model was trained in. One forward pass gives the calibrated probabilities and the
penultimate features (the classifier layer's input, captured by a hook), so fidelity and FD-in-judge-space
come from the same pass over the same pixels.

- `Judge.load(dir)` / `Judge(model, temperature)`; `judge.outputs(images)` -> `JudgeOutputs` (probs,
  features, logits) for file paths, PIL images or uint8 arrays (N,H,W,C) / tensors (N,C,H,W);
- `fidelity_table(probs, labels)`: per class and overall, the share judged as the asked-for class
  (``class, n, fidelity, p_label``) — the one schema of every fidelity table; `judge_ceiling(ceilings, domain)`:
  the judge's ceiling for a domain, read from the table `syntfer.instruments.build.measure_ceiling` writes;
- `calibrate_temperature(logits, y)`: the temperature minimising held-out NLL (Guo et al. 2017) and
  `reliability(probs, y)`: the reliability table and expected calibration error — the project's one ECE (the
  instruments' calibration and the pseudo-label teacher's against the world's truth);
- probabilities are ``softmax(logits / temperature)`` by `syntfer.engine.models.softmax.probabilities`, the one
  softmax;
- `judge.loss_module()`: the frozen model as a differentiable module on images in [-1, 1] at any size, for
  training losses of *other* models (a generator's task loss). The measuring judge is never used this way.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from syntfer.core import labels as L
from syntfer.engine.data import eval_transform, image_mode, pil_to_uint8
from syntfer.core.images import load_image
from syntfer.engine.models.checkpoint import load_checkpoint, read_checkpoint_config
from syntfer.engine.models.softmax import probabilities

TEMPERATURE_KEY = "temperature"


class JudgeError(ValueError):
    """Inputs a judge cannot score (no images, labels outside the classes, a model without a classifier layer)."""


@dataclasses.dataclass
class JudgeOutputs:
    """Per image: calibrated probabilities and raw logits (canonical class order) and penultimate features."""

    probs: np.ndarray
    logits: np.ndarray
    features: np.ndarray

    @property
    def predicted(self) -> np.ndarray:
        return self.probs.argmax(1)


def classifier_layer(model: nn.Module) -> nn.Module:
    """The layer that maps penultimate features to logits: ``get_classifier()`` (timm) or the last nn.Linear."""
    if hasattr(model, "get_classifier"):
        head = model.get_classifier()
        if isinstance(head, nn.Module) and not isinstance(head, nn.Identity):
            return head
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise JudgeError(f"{type(model).__name__} has no nn.Linear classifier layer to take features from")
    return linears[-1]


def forward_with_features(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, penultimate features) of a normalised batch from one forward pass: the features are the input
    of the model's classifier layer, captured by a pre-hook."""
    captured: list[torch.Tensor] = []
    handle = classifier_layer(model).register_forward_pre_hook(lambda _m, inputs: captured.append(inputs[0]))
    try:
        logits = model(x)
    finally:
        handle.remove()
    if len(captured) != 1:
        raise JudgeError(f"{type(model).__name__}: its classifier layer ran {len(captured)} times in one pass")
    return logits, captured[0].flatten(1)


def penultimate_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(B, D) input of the model's classifier layer for a normalised batch."""
    return forward_with_features(model, x)[1]


def _as_uint8_batch(images: Any) -> list[torch.Tensor]:
    """Decoded images as uint8 (C,H,W) tensors: from paths, PIL images, (N,H,W,C) arrays or (N,C,H,W) tensors."""
    if isinstance(images, torch.Tensor):
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise JudgeError(f"image tensor must be uint8 (N,C,H,W); got {images.dtype} {tuple(images.shape)}")
        return list(images)
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8 or images.ndim != 4:
            raise JudgeError(f"image array must be uint8 (N,H,W,C); got {images.dtype} {images.shape}")
        return list(torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2))
    return [pil_to_uint8(im) for im in images]


class Judge:
    """A calibrated classifier that scores images in one fixed way (module docstring)."""

    def __init__(self, model: nn.Module, temperature: float = 1.0, name: str = "judge",
                 info: dict[str, Any] | None = None):
        if not hasattr(model, "cfg"):
            raise JudgeError(f"{type(model).__name__} has no ModelConfig (.cfg): not a syntfer classifier")
        if not temperature > 0:
            raise JudgeError(f"temperature {temperature!r}: expected > 0")
        self.model = model.eval().to(memory_format=torch.channels_last)  # faster CPU conv/pool, same numbers
        self.cfg = model.cfg
        self.temperature = float(temperature)
        self.name = name
        self.info = dict(info or {})
        self.mode = image_mode(self.cfg)
        self.transform = eval_transform(self.cfg)
        self.perm = L.permutation_to_canonical(self.cfg.labels)
        self.size = tuple(self.cfg.input_size[1:])
        classifier_layer(model)  # fail now, not on the first batch

    @classmethod
    def load(cls, directory: str | os.PathLike, name: str | None = None) -> "Judge":
        """A judge from a syntfer checkpoint directory; its meta's `temperature` (1.0 if absent) is applied."""
        directory = Path(directory)
        _, meta = read_checkpoint_config(directory)
        model = load_checkpoint(directory)
        return cls(model, float(meta.get(TEMPERATURE_KEY, 1.0)), name or directory.name,
                   {"checkpoint": str(directory), **{k: meta[k] for k in ("epoch", "val_score") if k in meta}})

    # ---- scoring
    @torch.no_grad()
    def _forward(self, batch: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.transform(torch.stack(batch)).contiguous(memory_format=torch.channels_last)
        logits, feats = forward_with_features(self.model, x)
        return logits.float(), feats.float()

    def outputs(self, images: Sequence[str | os.PathLike | Image.Image] | np.ndarray | torch.Tensor, *,
                batch_size: int = 256, workers: int = 2) -> JudgeOutputs:
        """Probabilities (calibrated), logits and features for every image; paths are decoded in a thread pool."""
        n = len(images)
        if n == 0:
            raise JudgeError("no images to judge")
        probs = logits_out = feats_out = None
        paths = isinstance(images, (list, tuple)) and isinstance(images[0], (str, os.PathLike))

        def decode(p) -> torch.Tensor:
            return pil_to_uint8(load_image(p, self.mode))

        pool = ThreadPoolExecutor(max_workers=max(1, workers)) if paths else None
        try:
            for start in range(0, n, batch_size):
                chunk = images[start:start + batch_size]
                decoded = list(pool.map(decode, chunk)) if pool else _as_uint8_batch(
                    [im.convert(self.mode) for im in chunk] if not isinstance(chunk, (np.ndarray, torch.Tensor))
                    else chunk)
                if self.mode == "L" and decoded[0].shape[0] == 3:
                    decoded = [im.float().mean(0, keepdim=True).round().to(torch.uint8) for im in decoded]
                groups: dict[tuple[int, ...], list[int]] = {}
                for i, im in enumerate(decoded):
                    groups.setdefault(tuple(im.shape), []).append(i)
                for idx in groups.values():
                    logits, feats = self._forward([decoded[i] for i in idx])
                    if probs is None:
                        probs = np.empty((n, L.NUM_CLASSES), np.float32)
                        logits_out = np.empty((n, L.NUM_CLASSES), np.float32)
                        feats_out = np.empty((n, feats.shape[1]), np.float32)
                    rows = np.asarray(idx) + start
                    lg = logits[:, self.perm]
                    logits_out[rows] = lg.numpy()
                    probs[rows] = probabilities(lg, self.temperature).numpy()
                    feats_out[rows] = feats.numpy()
        finally:
            if pool is not None:
                pool.shutdown()
        return JudgeOutputs(probs=probs, logits=logits_out, features=feats_out)

    def probs(self, images, **kw) -> np.ndarray:
        """Calibrated (N, 7) probabilities in canonical order."""
        return self.outputs(images, **kw).probs

    def describe(self) -> dict[str, Any]:
        """What produced a number: model, input, temperature, checkpoint."""
        return {"judge": self.name, "model": self.cfg.name, "input_size": list(self.cfg.input_size),
                "temperature": round(self.temperature, 4), **self.info}

    def loss_module(self) -> nn.Module:
        """The frozen classifier as a differentiable module on images in [-1, 1] (N,3,H,W) of any size -> logits
        (canonical order). For another model's training loss; never the judge that measures that model."""
        return _JudgeLoss(self.model, self.cfg, self.perm)


class _JudgeLoss(nn.Module):
    def __init__(self, model: nn.Module, cfg, perm: np.ndarray):
        super().__init__()
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.size = tuple(cfg.input_size[1:])
        self.grey = cfg.input_size[0] == 1
        self.register_buffer("mean", torch.tensor(cfg.mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(cfg.std, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("perm", torch.as_tensor(perm, dtype=torch.long))

    def train(self, mode: bool = True) -> "_JudgeLoss":  # stays in eval mode (BN statistics frozen)
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * 0.5 + 0.5
        if tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", antialias=True, align_corners=False)
        if self.grey:
            x = x.mean(1, keepdim=True)
        return self.model((x - self.mean) / self.std)[:, self.perm]


# ---- tables ------------------------------------------------------------------------------------------
def label_indices(labels: Sequence[str], where: str = "labels") -> np.ndarray:
    """Canonical indices; an empty or unknown label raises naming `where` and the value."""
    out = []
    for i, v in enumerate(labels):
        try:
            out.append(L.index(str(v)))
        except L.LabelError as e:
            raise JudgeError(f"{where}: row {i} has label {v!r} outside the 7 classes") from e
    return np.array(out, np.int64)


def fidelity_table(probs: np.ndarray, labels: Sequence[str], where: str = "set") -> pd.DataFrame:
    """Per canonical class and 'all': ``class, n, fidelity, p_label`` — the share of images the judge classifies
    as their asked-for label, and the mean probability it gives that label. 'all' is over images; the
    mean-class fidelity is the mean of the class rows (`mean_class_fidelity`)."""
    y = label_indices(labels, where)
    if len(y) != len(probs):
        raise JudgeError(f"{where}: {len(probs)} predictions for {len(y)} labels")
    pred = np.asarray(probs).argmax(1)
    rows = []
    for i, c in enumerate(L.CLASSES):
        m = y == i
        rows.append({"class": c, "n": int(m.sum()),
                     "fidelity": float((pred[m] == i).mean()) if m.any() else float("nan"),
                     "p_label": float(np.asarray(probs)[m, i].mean()) if m.any() else float("nan")})
    rows.append({"class": "all", "n": int(len(y)), "fidelity": float((pred == y).mean()) if len(y) else float("nan"),
                 "p_label": float(np.asarray(probs)[np.arange(len(y)), y].mean()) if len(y) else float("nan")})
    return pd.DataFrame(rows)


def mean_class_fidelity(table: pd.DataFrame) -> float:
    """Mean of the per-class fidelity rows of a `fidelity_table` (classes with no images left out)."""
    return float(table.loc[table["class"] != "all", "fidelity"].mean())


def judge_ceiling(ceilings: pd.DataFrame | str | os.PathLike, domain: str) -> float:
    """The judge ceiling of `domain`: the ``mean_class`` fidelity of its rows in a ceiling table (written by
    `syntfer.instruments.build.measure_ceiling`; the pipeline's ``outputs/instruments/judge/ceiling.csv``), given as
    the table or its CSV file. The one lookup of a ceiling. Raises `JudgeError` naming the file and the domains
    it has when `domain` has no ``mean_class`` row (or several), or its value is not a number in [0, 1]."""
    where = "ceiling table" if isinstance(ceilings, pd.DataFrame) else str(ceilings)
    table = ceilings if isinstance(ceilings, pd.DataFrame) else pd.read_csv(ceilings)
    absent = [c for c in ("domain", "class", "fidelity") if c not in table.columns]
    if absent:
        raise JudgeError(f"{where}: no column(s) {absent}; a ceiling table has domain, class, n, fidelity, p_label")
    rows = table[(table["domain"] == domain) & (table["class"] == "mean_class")]
    if len(rows) != 1:
        raise JudgeError(f"{where}: {len(rows)} mean_class rows for domain {domain!r} (expected 1); domains "
                         f"there: {sorted(map(str, table['domain'].unique()))}")
    value = float(rows["fidelity"].iloc[0])
    if not 0.0 <= value <= 1.0:
        raise JudgeError(f"{where}: the ceiling of domain {domain!r} is {value!r}, not a fidelity in [0, 1]")
    return value


# ---- calibration -------------------------------------------------------------------------------------
def calibrate_temperature(logits: np.ndarray, y: np.ndarray, *, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The temperature T minimising the mean NLL of softmax(logits / T) on held-out labels `y` (a 1-D convex
    problem in log T, solved by bounded scalar minimisation)."""
    from scipy.optimize import minimize_scalar

    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    t = torch.as_tensor(np.asarray(y), dtype=torch.long)
    if len(z) == 0 or len(z) != len(t):
        raise JudgeError(f"calibration needs labelled logits; got {len(z)} logits and {len(t)} labels")

    def nll(log_t: float) -> float:
        return float(F.cross_entropy(z / np.exp(log_t), t))

    res = minimize_scalar(nll, bounds=tuple(np.log(bounds)), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(res.x))


RELIABILITY_COLUMNS = ("bin_low", "bin_high", "n", "confidence", "accuracy")


def reliability(probs: np.ndarray, y: np.ndarray, bins: int = 10) -> tuple[pd.DataFrame, float]:
    """The project's one reliability table and expected calibration error (ECE).

    Confidence = max probability, correct = argmax equals `y` (canonical indices; any other value, e.g. -2 for a
    truth outside the classes, is never correct). `bins` equal-width bins of confidence: the first is [0, 1/bins],
    the others (low, high]. Table columns `RELIABILITY_COLUMNS` (an empty bin: n 0, NaN means); ECE = the
    bin-size weighted mean of |accuracy - mean confidence| (NaN without rows)."""
    if bins < 1:
        raise JudgeError(f"bins {bins}: expected >= 1")
    probs = np.asarray(probs)
    if probs.ndim != 2 or len(probs) != len(np.asarray(y)):
        raise JudgeError(f"reliability needs (N, classes) probabilities and N labels; got {probs.shape} and "
                         f"{len(np.asarray(y))}")
    conf = probs.max(1)
    correct = probs.argmax(1) == np.asarray(y)
    edges = np.linspace(0, 1, bins + 1)
    rows, ece = [], 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi) if lo > 0 else (conf >= lo) & (conf <= hi)
        n = int(m.sum())
        acc = float(correct[m].mean()) if n else float("nan")
        mc = float(conf[m].mean()) if n else float("nan")
        if n:
            ece += n / len(conf) * abs(acc - mc)
        rows.append({"bin_low": float(lo), "bin_high": float(hi), "n": n, "confidence": mc, "accuracy": acc})
    return pd.DataFrame(rows, columns=list(RELIABILITY_COLUMNS)), float(ece) if len(conf) else float("nan")
