"""Manifests: the truth of every dataset.

A manifest is a CSV with at least a `path` column (and usually `label`, `split`). On disk,
relative paths are relative to the manifest's own folder, so a dataset folder can move;
in memory (`read_manifest`) paths are absolute. The provenance columns `source_path` and
`origin_path` (where a copied, edited or pseudo-labeled image came from) follow the same rule, so a
manifest's bytes do not depend on where the project is checked out. `label` holds canonical class names (see
`syntfer.core.labels`) or is empty for unlabeled images.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from syntfer.core import labels as L
from syntfer.core.images import split_fragment
from syntfer.core.storage import atomic_path


class ManifestError(ValueError):
    """A manifest that is missing columns or holds values outside the contract."""


PATH_COLUMNS: tuple[str, ...] = ("path", "source_path", "origin_path")


def absolute_path(p: str, base: Path) -> str:
    """A stored path (relative to `base`, or absolute) as an absolute, normalised one; fragments kept."""
    file, frag = split_fragment(p)
    fp = Path(file)
    full = fp if fp.is_absolute() else (base / fp)
    return os.path.normpath(str(full)) + frag


def relative_path(p: str, base: Path) -> str:
    """An absolute path as stored: relative to `base` (``#row=`` / ``#box=`` fragments kept)."""
    file, frag = split_fragment(p)
    fp = Path(file)
    rel = os.path.relpath(fp, base) if fp.is_absolute() else str(fp)
    return rel + frag


def read_manifest(file: str | os.PathLike, required: Sequence[str] = ("path",),
                  check_labels: bool = True) -> pd.DataFrame:
    """Read a manifest; paths become absolute; labels (if present) are checked canonical.

    Raises ManifestError naming the file, the missing columns, or the row (file line) of a bad label.
    """
    file = Path(file)
    if not file.exists():
        raise ManifestError(f"{file}: manifest not found")
    df = pd.read_csv(file, dtype={"path": str, "label": str, "split": str}, keep_default_na=False)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ManifestError(f"{file}: missing column(s) {missing}; has {list(df.columns)}")
    if "path" in df.columns:
        empty = df.index[df["path"].str.len() == 0]
        if len(empty):
            raise ManifestError(f"{file} line {empty[0] + 2}: empty path")
    base = file.parent.resolve()
    for col in PATH_COLUMNS:
        if col in df.columns:
            vals = df[col].astype(str)
            df[col] = [absolute_path(p, base) if p else p for p in vals]
    if check_labels and "label" in df.columns:
        bad = ~df["label"].isin(L.CLASSES + (L.CONTEMPT, ""))
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            raise ManifestError(f"{file} line {i + 2}: label {df['label'].iloc[i]!r} is not a canonical class "
                                f"{list(L.CLASSES)} (or {L.CONTEMPT!r} for AffectNet-8, or empty for unlabeled)")
    return df


def write_manifest(df: pd.DataFrame, file: str | os.PathLike,
                   path_columns: Sequence[str] = PATH_COLUMNS) -> Path:
    """Write atomically; absolute paths (in `path_columns`) are stored relative to the manifest's folder.

    Any table of per-image results can be written this way, naming its other path columns, so that its bytes
    do not depend on where the project is checked out.
    """
    file = Path(file)
    if "path" not in df.columns:
        raise ManifestError(f"{file}: refusing to write a manifest without a 'path' column")
    out = df.copy()
    base = file.parent.resolve()
    for col in path_columns:
        if col in out.columns:
            out[col] = [relative_path(p, base) if isinstance(p, str) and p else p for p in out[col]]
    with atomic_path(file) as tmp:
        out.to_csv(tmp, index=False)
    return file


def labeled(df: pd.DataFrame) -> pd.DataFrame:
    """Rows with a non-empty label."""
    return df[df["label"].astype(str).str.len() > 0] if "label" in df.columns else df.iloc[0:0]
