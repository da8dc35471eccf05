"""Figures and measurement bundles for notebook 05 (GAN editing); each function returns data or a figure."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from syntfer.core import labels as L
from syntfer.strategies.gan.controls import ControlValue
from syntfer.strategies.gan.editing import DegradeConfig, Restorer, degrade, edit_images, full_path_name
from syntfer.strategies.gan.measurements import face_box, seam_contrast
from syntfer.strategies.gan.networks import Generator
from syntfer.strategies.gan.training import crop_square
from syntfer.core.images import load_array


FACE_COLUMNS = ("face_x", "face_y", "face_width", "face_height")


def _face(row: pd.Series) -> list[float]:
    return [float(row[k]) for k in FACE_COLUMNS]


def expression_grid(generator: Generator, row: pd.Series, rhos: Sequence[float], seed: int,
                    truth: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, list[str], list[str]]:
    """One face × 7 classes (columns) × ρ values (rows) of pasted edits (no seam repair), plus a truth row.

    Returns the tiled image and the row/column titles.
    """
    img = load_array(row["source_path"], "RGB")
    box = face_box(row, img)
    space = generator.control_space()
    tiles, row_titles = [], []
    for rho in rhos:
        codes = [space.at(c, rho) if c != "neutral" else ControlValue("neutral", 0.0, 0.0, "manual") for c in L.CLASSES]
        res = edit_images([img] * 7, [box] * 7, codes, generator, None, None, [np.random.default_rng(seed)] * 7,
                          faces=[_face(row)] * 7)
        tiles.append(np.concatenate(res.pasted, 1))
        row_titles.append(f"ρ={rho:g}")
    if truth is not None:
        tiles.append(np.concatenate([truth[c] for c in L.CLASSES], 1))
        row_titles.append("world truth")
    return np.concatenate(tiles, 0), row_titles, list(L.CLASSES)


def seam_examples(generator: Generator, rows: pd.DataFrame, codes: Sequence[ControlValue], restorers: dict[str, Restorer],
                  degrade_cfg: DegradeConfig, seed: int) -> tuple[np.ndarray, list[str]]:
    """Columns: source, pasted edit, degraded, then each restorer's output; one row per example. The paper's seam
    repair acts on the crop path (the editor-resolution crop pasted back), so that is the edit shown here."""
    lines, titles = [], ["source", "pasted", "degraded", *restorers]
    for (_, row), code in zip(rows.iterrows(), codes):
        img = load_array(row["source_path"], "RGB")
        box = face_box(row, img)
        res = edit_images([img], [box], [code], generator, None, None, [np.random.default_rng(seed)],
                          resolution="crop")
        deg = degrade(res.pasted[0], box, degrade_cfg, np.random.default_rng(seed))
        outs = [img, res.pasted[0], deg] + [r(deg, box) for r in restorers.values()]
        lines.append(np.concatenate(outs, 1))
    return np.concatenate(lines, 0), titles


def seam_variants(generator: Generator, rows: pd.DataFrame, codes: Sequence[ControlValue],
                  restorers: dict[str, Restorer | None], degrade_cfg: DegradeConfig, seed: int,
                  size: int, resolution: str = "crop") -> dict[str, dict[str, np.ndarray]]:
    """For each variant ('paste' = no repair, or a restorer): context crops (1.5× box) and face crops.

    `resolution`: the edit path (`edit_images`); 'crop' (default) is the one the paper's seam repair is for, 'full'
    the full-resolution masked warp (pass ``{"full-resolution warp": None}``: it has no seam to repair)."""
    out: dict[str, dict[str, list]] = {k: {"context": [], "face": [], "seam": []} for k in restorers}
    for (_, row), code in zip(rows.iterrows(), codes):
        img = load_array(row["source_path"], "RGB")
        box = face_box(row, img)
        res = edit_images([img], [box], [code], generator, None, None, [np.random.default_rng(seed)],
                          faces=[_face(row)], resolution=resolution)
        for name, restorer in restorers.items():
            if restorer is None:
                final = res.pasted[0]
            else:
                final = restorer(degrade(res.pasted[0], box, degrade_cfg,
                                         np.random.default_rng(int(row.get("seed", seed)) % 2**32)), box)
            x, y, w, h = box
            ctx = (x - w // 4, y - h // 4, w + w // 2, h + h // 2)
            out[name]["context"].append(crop_square(final, ctx, size))
            out[name]["face"].append(crop_square(final, box, size))
            out[name]["seam"].append(seam_contrast(final, box))
    return {k: {kk: np.stack(vv) if kk != "seam" else np.array(vv) for kk, vv in v.items()} for k, v in out.items()}


def sharpness_examples(generator: Generator, rows: pd.DataFrame, codes: Sequence[ControlValue], restorer: Restorer | None,
                       degrade_cfg: DegradeConfig, seed: int) -> tuple[np.ndarray, list[str]]:
    """Full-size (native pixels, no resizing) crops of the face frame: source | old path (48-px edit pasted back,
    then the seam repair with `restorer`) | new path (full-resolution masked warp) | where the new path changed
    pixels (white) — one row per example; all rows are padded to the largest frame. Returns the tiled image and
    the column titles (each row's Laplacian-variance ratios are in `sharpness_rows`)."""
    tiles = []
    for (_, row), code in zip(rows.iterrows(), codes):
        img = load_array(row["source_path"], "RGB")
        box = face_box(row, img)
        rng = [np.random.default_rng(seed)]
        old = edit_images([img], [box], [code], generator, restorer, degrade_cfg, rng, resolution="crop").repaired[0]
        new = edit_images([img], [box], [code], generator, None, None, rng, faces=[_face(row)]).pasted[0]
        changed = np.repeat(((new != img).any(2) * 255).astype(np.uint8)[..., None], 3, 2)
        x, y, w, h = box
        tiles.append([a[y:y + h, x:x + w] for a in (img, old, new, changed)])
    hmax = max(t[0].shape[0] for t in tiles)
    wmax = max(t[0].shape[1] for t in tiles)
    pad = lambda a: np.pad(a, ((0, hmax - a.shape[0]), (0, wmax - a.shape[1]), (0, 0)))  # noqa: E731
    grid = np.concatenate([np.concatenate([pad(a) for a in t], 1) for t in tiles], 0)
    return grid, ["source", f"old: {generator.cfg.image_size} px pasted + {getattr(restorer, 'name', 'no')} repair",
                  f"new: {full_path_name(generator)}",
                  "pixels the new path changed"]


def source_context_crops(rows: pd.DataFrame, size: int) -> np.ndarray:
    """Untouched source images' 1.5× context crops (the reference distribution for the seam distance)."""
    crops = []
    for _, row in rows.iterrows():
        img = load_array(row["source_path"], "RGB")
        x, y, w, h = face_box(row, img)
        crops.append(crop_square(img, (x - w // 4, y - h // 4, w + w // 2, h + h // 2), size))
    return np.stack(crops)


def to_chw(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2)


