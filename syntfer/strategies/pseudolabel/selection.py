"""Step 2 of pseudo-labeling: the selection rule.

`select` keeps an image when its top probability is strictly above ``threshold`` (paper: 0.3); its label is the
argmax (ties between classes go to the first in canonical order). Within each class it ranks by that
probability, ties broken by path (ascending), and keeps the top ``per_class`` (paper: 10,000). Counts
before/after per class are recorded; a class with fewer than K is flagged short.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from syntfer.core import labels as L
from syntfer.strategies.pseudolabel.scoring import PROB_COLUMNS, PseudolabelError


@dataclasses.dataclass
class Selection:
    """The kept images (label, score, probabilities) and the per-class counts before and after."""

    frame: pd.DataFrame  # path, label, score, p_* (+ any other columns of the scores), sorted by label, -score, path
    counts: dict[str, Any]

    @property
    def short_classes(self) -> list[str]:
        return list(self.counts["short_classes"])


def check_rule(threshold: float, per_class: int | None) -> None:
    """Validate the selection rule's parameters."""
    if not 0.0 <= float(threshold) < 1.0:
        raise PseudolabelError(f"threshold {threshold!r}: expected 0 <= threshold < 1 (paper: 0.3)")
    if per_class is not None and (int(per_class) != per_class or per_class < 1):
        raise PseudolabelError(f"per_class {per_class!r}: expected a positive integer K (or None for no cap)")


def top_label(scores: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(argmax class index, max probability) per row; NaN rows (unreadable images) give (-1, NaN)."""
    p = scores[list(PROB_COLUMNS)].to_numpy(dtype=np.float64)
    ok = ~np.isnan(p).any(axis=1)
    idx = np.full(len(p), -1, dtype=np.int64)
    conf = np.full(len(p), np.nan)
    if ok.any():
        idx[ok] = p[ok].argmax(axis=1)  # ties -> first class in canonical order
        conf[ok] = p[ok].max(axis=1)
    return idx, conf


def select(scores: pd.DataFrame, threshold: float = 0.3, per_class: int | None = 10_000) -> Selection:
    """Keep max p > threshold, label = argmax; per class the top `per_class` by p (ties by path)."""
    check_rule(threshold, per_class)
    missing = [c for c in ("path", *PROB_COLUMNS) if c not in scores.columns]
    if missing:
        raise PseudolabelError(f"scores lack column(s) {missing}")
    idx, conf = top_label(scores)
    valid = idx >= 0
    keep = valid & (conf > threshold)
    df = scores.loc[keep].copy()
    df.insert(1, "label", np.asarray(L.CLASSES, dtype=object)[idx[keep]])
    df.insert(2, "score", conf[keep])
    order = np.lexsort((df["path"].to_numpy(), -df["score"].to_numpy(), idx[keep]))
    df = df.iloc[order]
    if per_class is not None:
        df = df.groupby("label", sort=False).head(int(per_class))
    df = df.reset_index(drop=True)

    def by_class(labels: np.ndarray) -> dict[str, int]:
        return {c: int((labels == i).sum()) for i, c in enumerate(L.CLASSES)}

    selected = {c: int((df["label"] == c).sum()) for c in L.CLASSES}
    short = [c for c in L.CLASSES if per_class is not None and selected[c] < per_class]
    counts = {
        "threshold": float(threshold), "per_class": None if per_class is None else int(per_class),
        "n_images": int(len(scores)), "n_unreadable": int((~valid).sum()), "n_scored": int(valid.sum()),
        "n_above_threshold": int(keep.sum()), "n_selected": int(len(df)),
        "argmax": by_class(idx[valid]), "above_threshold": by_class(idx[keep]), "selected": selected,
        "short_classes": short,
        "shortfall": {c: int(per_class - selected[c]) for c in short} if per_class is not None else {},
    }
    return Selection(frame=df, counts=counts)

