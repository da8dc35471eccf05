"""A quick audit probe of a rendered world: can a small CNN learn the expressions, and how much does it lose
on the other domains (the cross-dataset gap the world must show)?

This reads truth files (true expressions of every domain, unlabeled ones included) — it is an audit of the
world, never part of a training pipeline. Results are *world* results.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from syntfer.core import labels as L
from syntfer.core.images import box_path, load_image
from syntfer.core.seeding import seed_everything
from syntfer.sources.world.report import annotated_label, read_truth

DEFAULT_TESTS: tuple[tuple[str, str], ...] = (
    ("rafdb", "test"), ("affectnet", "validation"), ("fer2013", "PrivateTest"), ("digiface", ""),
    ("dcface", ""), ("emonet_face", ""), ("ffhq", ""), ("web", ""))


def load_split(world_dir: str | os.PathLike, domain: str, split: str, size: int = 48,
               limit: int | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Grey `size`² images (N,1,H,W float in [0,1]) and canonical label indices of one domain split.

    AffectNet images are cropped to their face box; rows outside the 7 classes are left out (and counted by
    the caller through the returned length). `limit` takes a seeded random subset."""
    t = read_truth(world_dir, domain)
    t = t.assign(label=annotated_label(t))  # what the dataset's files say, as a user of it would train on
    t = t[(t["split"] == split) & t["label"].isin(L.CLASSES)]
    if limit is not None and len(t) > limit:
        t = t.sample(n=limit, random_state=seed)
    xs = []
    for _, r in t.iterrows():
        path = r["abs_path"]
        if domain == "affectnet":
            path = box_path(path, r["face_x"], r["face_y"], r["face_width"], r["face_height"])
        img = load_image(path, "L").resize((size, size))
        xs.append(np.asarray(img, dtype=np.uint8))
    x = torch.from_numpy(np.stack(xs)).float().div_(255.0).unsqueeze(1)
    y = torch.tensor([L.CLASS_TO_INDEX[c] for c in t["label"]], dtype=torch.long)
    return x, y


class ProbeNet(nn.Module):
    """A strided stem and three conv blocks, global average pooling, linear head (≈100k parameters)."""

    def __init__(self, num_classes: int = 7, width: int = 16):
        super().__init__()
        chans = [width, 2 * width, 4 * width, 8 * width]
        blocks = [nn.Conv2d(1, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width),
                  nn.ReLU(inplace=True)]
        for a, b in zip(chans[:-1], chans[1:]):
            blocks += [nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(chans[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


def _standardise(x: torch.Tensor) -> torch.Tensor:
    m = x.mean((1, 2, 3), keepdim=True)
    s = x.std((1, 2, 3), keepdim=True).clamp_min(1e-3)
    return (x - m) / s


def train_probe(x: torch.Tensor, y: torch.Tensor, epochs: int = 4, batch_size: int = 64, lr: float = 2e-3,
                seed: int = 0) -> ProbeNet:
    """Train a `ProbeNet` (Adam, horizontal flips, per-image standardisation)."""
    seed_everything(seed)
    net = ProbeNet()
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-4)
    g = torch.Generator().manual_seed(seed)
    xs = _standardise(x)
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(len(xs), generator=g)
        for i in range(0, len(xs), batch_size):
            idx = perm[i:i + batch_size]
            xb = xs[idx]
            flip = torch.rand(len(idx), generator=g) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
            loss = nn.functional.cross_entropy(net(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


@torch.no_grad()
def evaluate(net: ProbeNet, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Accuracy and balanced (mean-class) accuracy over the classes present."""
    pred = torch.cat([net(_standardise(x[i:i + 256])).argmax(1) for i in range(0, len(x), 256)])
    acc = float((pred == y).float().mean())
    recalls = [float((pred[y == c] == c).float().mean()) for c in range(L.NUM_CLASSES) if (y == c).any()]
    return {"accuracy": acc, "balanced_accuracy": float(np.mean(recalls)), "n": int(len(y))}


def cross_domain_probe(world_dir: str | os.PathLike, train: tuple[str, str] = ("rafdb", "train"),
                       tests: Sequence[tuple[str, str]] = DEFAULT_TESTS, size: int = 48, epochs: int = 4,
                       test_limit: int | None = 700, seed: int = 0, threads: int = 2) -> pd.DataFrame:
    """Train a probe on one world split and test it on held-out splits of every domain (true labels)."""
    torch.set_num_threads(threads)
    x, y = load_split(world_dir, *train, size=size, seed=seed)
    net = train_probe(x, y, epochs=epochs, seed=seed)
    rows = []
    for dom, split in tests:
        xt, yt = load_split(world_dir, dom, split, size=size, limit=test_limit, seed=seed)
        rows.append({"train": f"{train[0]}/{train[1]}", "test": f"{dom}/{split or 'all'}",
                     "in_domain": dom == train[0], **evaluate(net, xt, yt)})
    return pd.DataFrame(rows)
