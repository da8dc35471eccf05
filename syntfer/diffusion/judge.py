"""Expression fidelity: a classifier's accuracy on generated images against their prompted labels.

The pipeline's judge is the baseline classifier (a syntfer checkpoint from the baseline stage). When none
is given, `train_judge` trains a quick one here on a labelled world stand-in (rafdb/affectnet manifests)
at 32-48 px: a small VGG-style CNN by default (on 2 shared cores a small-input ResNet-18 costs ~0.5 GFLOP
per 32-px image, ~25x more), or torchvision's ResNet-18 with a 3x3 stem (`arch="resnet18"`). Either way
the notebook says which judge it used.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

from syntfer import labels as L
from syntfer.evaluation import target_accuracy_table
from syntfer.images import load_image
from syntfer.seeding import derive_seed

MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)


def quick_resnet18(num_classes: int = L.NUM_CLASSES) -> nn.Module:
    """torchvision ResNet-18 for 32-48 px inputs: 3x3 stride-1 stem and no max-pool."""
    from torchvision.models import resnet18

    m = resnet18(num_classes=num_classes)
    m.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    m.maxpool = nn.Identity()
    return m


def small_cnn(num_classes: int = L.NUM_CLASSES, width: int = 32) -> nn.Module:
    """Four conv stages (w, 2w, 4w, 8w) with BN/ReLU and 2x2 pooling, global average, linear."""
    layers: list[nn.Module] = []
    c_in = 3
    for i in range(4):
        c = width * 2 ** i
        layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                   nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
        layers.append(nn.MaxPool2d(2) if i < 3 else nn.AdaptiveAvgPool2d(1))
        c_in = c
    return nn.Sequential(*layers, nn.Flatten(), nn.Dropout(0.2), nn.Linear(c_in, num_classes))


ARCHS: dict[str, Callable[[], nn.Module]] = {"small-cnn": small_cnn, "tiny-cnn": lambda: small_cnn(width=16),
                                             "resnet18": quick_resnet18}


def load_array(paths: Sequence[str], size: int, progress: bool = False) -> torch.Tensor:
    """Images at `paths` as a float tensor (N,3,size,size), normalised with MEAN/STD."""
    arr = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for i, p in enumerate(tqdm(paths, desc="load images", disable=not progress, leave=False)):
        im = load_image(p, "RGB")
        if im.size != (size, size):
            im = im.resize((size, size), Image.Resampling.BICUBIC)
        arr[i] = np.asarray(im)
    x = torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255.0
    return (x - 0.5) / 0.5


@dataclasses.dataclass
class Judge:
    """A classifier plus the input size and name it reports under."""

    model: nn.Module
    size: int
    name: str
    info: dict

    @torch.no_grad()
    def probs(self, x: torch.Tensor, batch_size: int = 256) -> np.ndarray:
        self.model.eval()
        return torch.cat([self.model(x[i:i + batch_size]).softmax(1) for i in range(0, len(x), batch_size)]).numpy()

    def predict_paths(self, paths: Sequence[str], batch_size: int = 256) -> np.ndarray:
        return self.probs(load_array(paths, self.size), batch_size)


def train_judge(frame: pd.DataFrame, *, size: int = 32, epochs: int = 6, batch_size: int = 64, lr: float = 2e-3,
                seed: int = 0, val_frame: pd.DataFrame | None = None, arch: str = "small-cnn",
                progress: bool = True) -> Judge:
    """Train the quick judge on a labelled manifest frame (path, label) with flips + small shifts."""
    torch.manual_seed(derive_seed(seed, "judge.init"))
    g = torch.Generator().manual_seed(derive_seed(seed, "judge.train"))
    x = load_array(frame["path"].tolist(), size, progress)
    y = torch.tensor([L.index(v) for v in frame["label"]])
    if arch not in ARCHS:
        raise ValueError(f"judge arch {arch!r}; expected one of {list(ARCHS)}")
    model = ARCHS[arch]()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    steps = epochs * int(np.ceil(len(x) / batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    t0 = time.perf_counter()
    model.train()
    bar = tqdm(total=steps, desc="train judge", disable=not progress, leave=False)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for b in range(0, len(x), batch_size):
            idx = perm[b:b + batch_size]
            xb = x[idx]
            flip = torch.rand(len(idx), generator=g) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            dx, dy = (int(v) for v in torch.randint(-2, 3, (2,), generator=g))
            xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
            loss = nn.functional.cross_entropy(model(xb), y[idx], label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
    bar.close()
    info = {"arch": arch, "size": size, "epochs": epochs,
            "train_images": len(x), "train_seconds": round(time.perf_counter() - t0, 1)}
    judge = Judge(model.eval(), size, f"quick-{arch}", info)
    if val_frame is not None:
        p = judge.predict_paths(val_frame["path"].tolist())
        info["val_accuracy"] = float((p.argmax(1) == np.array([L.index(v) for v in val_frame["label"]])).mean())
    return judge


def from_classifier(model: nn.Module, name: str = "baseline") -> Judge:
    """Wrap a syntfer classifier (has `.cfg`) as a judge; inputs go through its own eval transform size."""
    size = int(model.cfg.input_size[-1])

    class _Wrapped(nn.Module):
        def __init__(self, m: nn.Module):
            super().__init__()
            self.m = m
            mean = torch.tensor(m.cfg.mean).view(1, -1, 1, 1)
            std = torch.tensor(m.cfg.std).view(1, -1, 1, 1)
            self.register_buffer("mean", mean)
            self.register_buffer("std", std)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = (x * 0.5 + 0.5 - self.mean) / self.std  # undo the judge normalisation, apply the model's
            if self.m.cfg.input_size[0] == 1:
                x = x.mean(1, keepdim=True)
            return self.m(x)

    return Judge(_Wrapped(model).eval(), size, name, {"arch": model.cfg.name, "size": size})


def fidelity(probs: np.ndarray, labels: Sequence[str]) -> pd.DataFrame:
    """Per-class and overall expression fidelity (judge accuracy vs prompted label) and mean confidence."""
    y = np.array([L.index(v) for v in labels])
    return target_accuracy_table(probs, y).rename(columns={"accuracy": "fidelity", "p_target": "mean_p_prompted"})


def teacher_callable(judge: Judge) -> Callable[[Sequence[str]], np.ndarray]:
    """A (paths -> probs) callable for curation's teacher filter."""
    return judge.predict_paths
