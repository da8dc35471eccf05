"""Notebook analyses of pseudo-labeling: survivors per class as the threshold varies and, against the world's
hidden truth (`attach_truth`), precision/recall per class, a reliability table with its ECE, and flat metrics."""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from syntfer.core import labels as L
from syntfer.core.manifest import read_manifest
from syntfer.instruments.judge import reliability as judge_reliability
from syntfer.strategies.pseudolabel.scoring import PROB_COLUMNS, PseudolabelError
from syntfer.strategies.pseudolabel.selection import select, top_label


def attach_truth(scores: pd.DataFrame, truth_csv: str | os.PathLike, column: str = "expression") -> pd.DataFrame:
    """Add a `truth` column (canonical names) from a world ``truth.csv`` (paths relative to its folder).

    Every scored image must have a truth row; a missing one raises naming the image.
    """
    truth = read_manifest(truth_csv, required=("path", column), check_labels=False)
    names = [L.canonical(v) for v in truth[column]]
    table = dict(zip(truth["path"], names))
    missing = [p for p in scores["path"] if p not in table]
    if missing:
        raise PseudolabelError(f"{truth_csv}: no truth for {len(missing)} scored image(s), e.g. {missing[0]}")
    out = scores.copy()
    out["truth"] = [table[p] for p in out["path"]]
    return out


def survivors(scores: pd.DataFrame, thresholds: Sequence[float], per_class: int | None = None) -> pd.DataFrame:
    """Selected images per class at each threshold (long table: threshold, label, n)."""
    rows = []
    for t in thresholds:
        counts = select(scores, t, per_class).counts["selected"]
        rows += [{"threshold": float(t), "label": c, "n": counts[c]} for c in L.CLASSES]
    return pd.DataFrame(rows)


def precision_recall(scores: pd.DataFrame, thresholds: Sequence[float],
                     per_class: int | None = None) -> pd.DataFrame:
    """Per class and threshold: selected, correct, precision = correct/selected, recall = correct/true total.

    Needs a `truth` column (`attach_truth`). Recall counts every readable image of that true class.
    Precision is NaN where nothing was selected. One extra row per threshold has label 'all'.
    """
    if "truth" not in scores.columns:
        raise PseudolabelError("precision_recall needs a 'truth' column (see attach_truth)")
    idx, _ = top_label(scores)
    valid = scores.loc[idx >= 0]
    true_total = valid["truth"].value_counts()
    rows = []
    for t in thresholds:
        sel = select(scores, t, per_class).frame  # keeps the truth column
        ok = sel["label"] == sel["truth"]
        for c in L.CLASSES:
            m = sel["label"] == c
            n, k, tot = int(m.sum()), int((ok & m).sum()), int(true_total.get(c, 0))
            rows.append({"threshold": float(t), "label": c, "selected": n, "correct": k, "true_total": tot,
                         "precision": k / n if n else np.nan, "recall": k / tot if tot else np.nan})
        n, k = len(sel), int(ok.sum())
        rows.append({"threshold": float(t), "label": "all", "selected": n, "correct": k,
                     "true_total": int(len(valid)), "precision": k / n if n else np.nan,
                     "recall": k / len(valid) if len(valid) else np.nan})
    return pd.DataFrame(rows)


def reliability(scores: pd.DataFrame, bins: int = 10) -> tuple[pd.DataFrame, float]:
    """The teacher's reliability table and ECE against the world's truth: the instruments' one
    `syntfer.instruments.judge.reliability` (its bins and columns ``bin_low, bin_high, n, confidence, accuracy``)
    on the readable images' probabilities, correct = argmax equals `truth`. Needs a `truth` column (`attach_truth`).
    """
    if "truth" not in scores.columns:
        raise PseudolabelError("reliability needs a 'truth' column (see attach_truth)")
    if bins < 1:
        raise PseudolabelError(f"bins {bins}: expected >= 1")
    idx, _ = top_label(scores)
    ok = idx >= 0
    probs = scores[list(PROB_COLUMNS)].to_numpy(dtype=np.float64)[ok]
    truth_idx = np.array([L.CLASS_TO_INDEX.get(t, -2) for t in scores["truth"]], dtype=np.int64)[ok]
    return judge_reliability(probs, truth_idx, bins)


def world_metrics(pr: pd.DataFrame, threshold: float, ece: float) -> dict[str, float | None]:
    """Flat metrics at one threshold from a `precision_recall` table (keys world_precision_<class> …).

    Undefined values (precision of a class with nothing selected) are None, i.e. JSON null, never NaN.
    """
    at = pr[np.isclose(pr["threshold"], threshold)]
    if at.empty:
        raise PseudolabelError(f"threshold {threshold} is not in the precision/recall table")

    def finite(x: float) -> float | None:
        return float(x) if np.isfinite(x) else None

    out: dict[str, float | None] = {"world_ece": finite(ece)}
    for _, r in at.iterrows():
        out[f"world_precision_{r['label']}"] = finite(r["precision"])
        out[f"world_recall_{r['label']}"] = finite(r["recall"])
    return out
