"""The embedded model's training data: a captioned domain's images (resized, or aligned face crops), captions and
AU intensities in memory."""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm.auto import tqdm

from syntfer.core.alignment import align_face, parse_landmarks
from syntfer.strategies.diffusion.text import EmbeddedModelError
from syntfer.core.images import load_image
from syntfer.strategies.diffusion.prompts import FINEFACE_AUS


@dataclasses.dataclass
class CaptionedImages:
    """Training data in memory: uint8 images (N,3,S,S), captions, optional AU matrix (N, n_aus)."""

    images: torch.Tensor
    captions: list[str]
    aus: np.ndarray | None
    au_names: tuple[str, ...]
    frame: pd.DataFrame


def load_captioned(captions_csv: str | Path, size: int, au_names: Sequence[str] = FINEFACE_AUS,
                   limit: int | None = None, align: bool = False) -> CaptionedImages:
    """Read `captions.csv` (path, caption, AU columns) of a captioned domain; images resized to `size`.

    Paths are relative to the CSV's folder. Missing AU columns are an error naming them (AUs are then
    simply not used by a text-only model: pass ``au_names=()``). With `align`, every image becomes an aligned
    `size`-px face crop (`syntfer.core.alignment`) from its ``landmarks`` column (the world's captions carry them; for
    a real captioned corpus, a face detector's 5 or 68 points) — the framing of RAF-DB's aligned faces, where
    the expression is legible at small sizes.
    """
    captions_csv = Path(captions_csv)
    df = pd.read_csv(captions_csv, keep_default_na=False)
    for col in ("path", "caption"):
        if col not in df.columns:
            raise EmbeddedModelError(f"{captions_csv}: missing column {col!r}; has {list(df.columns)}")
    missing = [a for a in au_names if a not in df.columns]
    if missing:
        raise EmbeddedModelError(f"{captions_csv}: missing AU column(s) {missing}")
    if limit is not None:
        df = df.iloc[:limit]
    base = captions_csv.parent
    arr = np.empty((len(df), size, size, 3), dtype=np.uint8)
    if align:
        if "landmarks" not in df.columns:
            raise EmbeddedModelError(f"{captions_csv}: align needs a 'landmarks' column; has {list(df.columns)}")
    for i, p in enumerate(tqdm(df["path"], desc="load captioned images", leave=False, mininterval=10)):
        im = load_image(base / p, "RGB")
        if align:
            arr[i] = align_face(np.asarray(im), parse_landmarks(df["landmarks"].iloc[i]), size)
        else:
            arr[i] = np.asarray(im.resize((size, size), Image.Resampling.LANCZOS if im.width > size
                                          else Image.Resampling.BICUBIC))
    aus = df[list(au_names)].to_numpy(np.float32) if au_names else None
    return CaptionedImages(torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous(), df["caption"].astype(str).tolist(),
                           aus, tuple(au_names), df)
