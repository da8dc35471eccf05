"""Image files the tests write: noise of given sizes, and a learnable 7-class set (a mean colour per class)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from syntfer.core import labels as L


def noise_images(folder: Path, sizes: list[tuple[int, int]]) -> list[str]:
    """One uniform-noise PNG per (width, height), seeded; returns their paths."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (w, h) in enumerate(sizes):
        p = folder / f"im{i}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    return paths


def colour_set(folder: Path, n_per_class: int = 8, size: int = 20) -> pd.DataFrame:
    """A learnable manifest frame: each class its own mean colour plus noise, `n_per_class` images per class."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for k, c in enumerate(L.CLASSES):
        colour = np.array([(k * 37) % 256, (k * 91) % 256, (k * 53) % 256])
        for i in range(n_per_class):
            p = folder / f"{c}_{i}.png"
            Image.fromarray(np.clip(colour + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)).save(p)
            rows.append({"path": str(p), "label": c})
    return pd.DataFrame(rows)
