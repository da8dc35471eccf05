"""Measurements of GAN edits on the face world: expression fidelity, identity preservation, seam.

- Fidelity: a judge classifier's accuracy on edited crops against the target class, per class and vs ρ.
  The judge is the project's baseline when given; otherwise `train_judge` fits a torchvision ResNet-18 at
  48 px on the world's labeled crops (said so in the notebook).
- Identity: cosine similarity in the world identity encoder's space between source and edit, and between
  the edit and the hidden truth (the same identity re-rendered by the world with the target expression).
- Seam: a distribution distance (Fréchet distance in a named feature space, `syntfer.distances`) between
  edited images and the untouched ffhq stand-in, before and after the domain-adaptation step, plus a direct
  seam-contrast statistic on the box border.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from syntfer import labels as L
from syntfer.evaluation import target_accuracy_table


# ---- judge -------------------------------------------------------------------------------------------------
def make_judge(num_classes: int = L.NUM_CLASSES) -> nn.Module:
    """torchvision ResNet-18 (random init, standard stem: cheap enough for 2 CPU cores at 48 px)."""
    import torchvision

    return torchvision.models.resnet18(num_classes=num_classes)


@dataclasses.dataclass
class JudgeResult:
    model: nn.Module
    log: pd.DataFrame
    val_accuracy: float
    val_balanced_accuracy: float


def _norm(x: torch.Tensor) -> torch.Tensor:
    return (x.float() / 255.0 - 0.5) / 0.25


def train_judge(crops: torch.Tensor, labels: torch.Tensor, *, epochs: int = 6, batch_size: int = 64,
                lr: float = 2e-3, val_fraction: float = 0.15, seed: int = 0, threads: int = 1,
                size: int = 48, progress: bool = True) -> JudgeResult:
    """Fit a ResNet-18 judge on uint8 crops (class-balanced sampling, flips); validate on a held-out split."""
    torch.set_num_threads(max(1, threads))
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    if crops.shape[-1] != size:
        crops = F.interpolate(crops.float(), size=(size, size), mode="bilinear", antialias=True).round().byte()
    n = crops.shape[0]
    perm = torch.randperm(n, generator=gen)
    n_val = max(L.NUM_CLASSES, int(n * val_fraction))
    val_idx, tr_idx = perm[:n_val], perm[n_val:]
    counts = torch.bincount(labels[tr_idx], minlength=L.NUM_CLASSES).float().clamp(min=1)
    weights = (1.0 / counts)[labels[tr_idx]]
    model = make_judge()
    steps = max(1, epochs * len(tr_idx) // batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.2)
    rows, t0 = [], time.time()
    model.train()
    for step in tqdm(range(1, steps + 1), desc="judge", disable=not progress, mininterval=2.0):
        b = tr_idx[torch.multinomial(weights, batch_size, replacement=True, generator=gen)]
        x = _norm(crops[b])
        flip = torch.rand(batch_size, generator=gen) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        loss = F.cross_entropy(model(x), labels[b], label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % max(1, steps // 20) == 0 or step == steps:
            rows.append({"step": step, "epoch": step * batch_size / len(tr_idx), "loss": loss.item(),
                         "seconds": time.time() - t0})
    model.eval()
    pred = predict(model, crops[val_idx]).argmax(1)
    y = labels[val_idx].numpy()
    from sklearn.metrics import balanced_accuracy_score

    return JudgeResult(model, pd.DataFrame(rows), float((pred == y).mean()), float(balanced_accuracy_score(y, pred)))


class ClassifierJudge(nn.Module):
    """A syntfer classifier (e.g. notebook 01's baseline checkpoint) behind this module's judge interface.

    `predict`/`judge_features` feed ``(x/255 - 0.5)/0.25``; this undoes that, applies the classifier's own
    normalisation, and exposes ``fc`` (a module over the classifier's penultimate features) so
    `judge_features` gives those features.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        from syntfer.distances import _classifier_head

        self.model = model.eval()
        self.fc = _classifier_head(model)
        self.register_buffer("mean", torch.tensor(model.cfg.mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(model.cfg.std, dtype=torch.float32).view(1, -1, 1, 1))
        self.size = int(model.cfg.input_size[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from syntfer.distances import penultimate_features

        x = (x * 0.25 + 0.5 - self.mean) / self.std
        if self.model.cfg.input_size[0] == 1:
            x = x.mean(1, keepdim=True)
        return self.fc(penultimate_features(self.model, x))


@torch.no_grad()
def predict(model: nn.Module, crops: torch.Tensor | np.ndarray, batch_size: int = 256, size: int = 48) -> np.ndarray:
    """Softmax probabilities (N, 7) for uint8 crops (N, 3, H, W) or (N, H, W, 3), canonical order."""
    t = torch.as_tensor(crops)
    if t.shape[-1] == 3 and t.shape[1] != 3:
        t = t.permute(0, 3, 1, 2)
    model.eval()
    out = []
    for i in range(0, t.shape[0], batch_size):
        x = t[i:i + batch_size]
        if x.shape[-1] != size:
            x = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True)
        out.append(F.softmax(model(_norm(x)), 1))
    return torch.cat(out).numpy() if out else np.zeros((0, L.NUM_CLASSES), np.float32)


@torch.no_grad()
def judge_features(model: nn.Module, crops: torch.Tensor | np.ndarray, size: int = 48) -> np.ndarray:
    """The judge's penultimate (512-d pooled) features, for 'FD-judge' distances."""
    t = torch.as_tensor(crops)
    if t.shape[-1] == 3 and t.shape[1] != 3:
        t = t.permute(0, 3, 1, 2)
    fc = model.fc
    model.fc = nn.Identity()
    try:
        feats = []
        for i in range(0, t.shape[0], 256):
            x = t[i:i + 256]
            if x.shape[-1] != size:
                x = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True)
            feats.append(model(_norm(x)))
    finally:
        model.fc = fc
    return torch.cat(feats).numpy()


# ---- fidelity tables ---------------------------------------------------------------------------------------
def fidelity_table(probs: np.ndarray, targets: Sequence[str]) -> pd.DataFrame:
    """Per target class: n, accuracy (judge argmax == target), mean target probability."""
    y = np.array([L.CLASS_TO_INDEX[t] for t in targets])
    return target_accuracy_table(probs, y).rename(columns={"class": "target"})


def intensity_curve(probs: np.ndarray, targets: Sequence[str], rho: Sequence[float]) -> pd.DataFrame:
    """Judge accuracy and target probability per (target class, ρ) — one row per distinct ρ value."""
    y = np.array([L.CLASS_TO_INDEX[t] for t in targets])
    df = pd.DataFrame({"target": list(targets), "rho": np.round(np.asarray(rho, dtype=float), 3),
                       "correct": probs.argmax(1) == y, "p_target": probs[np.arange(len(y)), y]})
    return (df.groupby(["target", "rho"], as_index=False)
              .agg(n=("correct", "size"), accuracy=("correct", "mean"), p_target=("p_target", "mean")))


def confusion_rows(probs: np.ndarray, targets: Sequence[str]) -> pd.DataFrame:
    """{actual, predicted} rows (DVC confusion template): actual = edit target, predicted = judge."""
    return pd.DataFrame({"actual": list(targets), "predicted": [L.CLASSES[i] for i in probs.argmax(1)]})


# ---- seam ------------------------------------------------------------------------------------------------
def seam_contrast(image: np.ndarray, box: Sequence[int], offset: int = 3) -> float:
    """Mean absolute intensity step across the box border divided by the same step measured `offset`
    px inside the box (≈1 when the border is invisible, >1 for a visible seam)."""
    g = image.astype(np.float32).mean(2) if image.ndim == 3 else image.astype(np.float32)
    x, y, w, h = (int(v) for v in box)
    H, W = g.shape

    def steps(x0: int, y0: int, x1: int, y1: int) -> list[np.ndarray]:
        out = []
        if 1 <= x0 < W:
            out.append(np.abs(g[max(0, y0):min(H, y1), x0] - g[max(0, y0):min(H, y1), x0 - 1]))
        if 1 <= x1 < W:
            out.append(np.abs(g[max(0, y0):min(H, y1), x1] - g[max(0, y0):min(H, y1), x1 - 1]))
        if 1 <= y0 < H:
            out.append(np.abs(g[y0, max(0, x0):min(W, x1)] - g[y0 - 1, max(0, x0):min(W, x1)]))
        if 1 <= y1 < H:
            out.append(np.abs(g[y1, max(0, x0):min(W, x1)] - g[y1 - 1, max(0, x0):min(W, x1)]))
        return out

    border = steps(x, y, x + w, y + h)
    inner = steps(x + offset, y + offset, x + w - offset, y + h - offset)
    if not border or not inner:
        return float("nan")
    b = float(np.mean(np.concatenate(border)))
    i = float(np.mean(np.concatenate(inner)))
    return b / max(i, 1e-6)


# ---- hidden truth on the world -------------------------------------------------------------------------
def truth_rerender(index: int, target: str, seed: int, *, max_render: int | None = None, ss: int = 2,
                   expression: dict | None = None) -> tuple[np.ndarray, dict]:
    """The world's ffhq image `index` re-rendered with expression `target`: same identity, pose, light and
    background (the scene is drawn before the expression from the same per-image seed).

    `expression` overrides the domain's expression-sampling options (default: the world's standard
    intensities rather than ffhq's faint ones, so the truth shows the class clearly).
    """
    from syntfer.world import DOMAINS, make_sample
    from syntfer.world.domains import with_render

    spec = with_render(DOMAINS["ffhq"], max_render, ss)
    spec = dataclasses.replace(spec, expression=dict(expression or {"faint_share": 0.0, "blend_share": 0.0}))
    pil, row = make_sample(spec, seed, int(index), target)
    return np.asarray(pil.convert("RGB")), row


def manifest_crops(frame: pd.DataFrame, size: int, path_column: str = "path") -> torch.Tensor:
    """Square face crops (uint8, N×3×size×size) of the images in `path_column` at the frame's face boxes."""
    from syntfer.gan.training import load_crops

    return load_crops(frame.assign(path=frame[path_column]), size, desc="face crops")


def identity_rows(sim_edit: np.ndarray, sim_truth: np.ndarray | None, labels: Sequence[str]) -> pd.DataFrame:
    """Per target class mean ± sd of identity similarities (source↔edit, and truth↔edit where given)."""
    df = pd.DataFrame({"target": list(labels), "sim_source_edit": sim_edit})
    if sim_truth is not None:
        df["sim_truth_edit"] = sim_truth
    agg = df.groupby("target").agg(["mean", "std", "size"])
    agg.columns = [f"{a}_{b}" for a, b in agg.columns]
    return agg.reset_index()
