"""Pseudo-labeling end to end (`pseudolabel`): score a manifest's images, select, write the labeled set
and ``OUT/scores.csv`` (every image's probabilities)."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pandas as pd

from syntfer.core.manifest import read_manifest, write_manifest
from syntfer.strategies.pseudolabel.dataset import write_selection
from syntfer.strategies.pseudolabel.scoring import PseudolabelError, ScoreReport, score_images
from syntfer.strategies.pseudolabel.selection import Selection, check_rule, select
from syntfer.core.storage import remove_stale_temporaries
from syntfer.strategies.pseudolabel.teachers import Teacher, load_teacher


@dataclasses.dataclass
class PseudolabelResult:
    """What `pseudolabel` produced."""

    manifest: Path
    selection: Selection
    scores: ScoreReport
    source: str


def source_name(frame: pd.DataFrame, manifest: Path) -> str:
    """The input's `source` column when it has one value, else the manifest's folder name."""
    if "source" in frame.columns:
        values = frame["source"].astype(str).unique()
        if len(values) == 1 and values[0]:
            return str(values[0])
    return manifest.resolve().parent.name


def pseudolabel(teacher: Teacher | str, images: str | os.PathLike, out: str | os.PathLike, *,
                threshold: float = 0.3, per_class: int | None = 10_000, source: str | None = None,
                link: str = "copy", scores_dir: str | os.PathLike | None = None, batch_size: int = 64,
                shard_size: int = 1024, skip_bad: bool = False, progress: bool = True,
                teacher_options: dict[str, Any] | None = None) -> PseudolabelResult:
    """Score a manifest's images with a teacher, select confident top-K per class, write the labeled set.

    `images` is any manifest with a `path` column (labels are ignored; kept as `input_label`).
    Scores go to `scores_dir` (default ``OUT/scores``), resumably; ``OUT/scores.csv`` has them all.
    """
    check_rule(threshold, per_class)
    images = Path(images)
    frame = read_manifest(images, check_labels=False)
    if len(frame) == 0:
        raise PseudolabelError(f"{images}: manifest has no images")
    if isinstance(teacher, str):
        teacher = load_teacher(teacher, **(teacher_options or {}))
    source = source or source_name(frame, images)
    out = Path(out)
    remove_stale_temporaries(out)  # what a killed run left half-written
    report = score_images(teacher, frame["path"].tolist(), scores_dir or out / "scores", batch_size=batch_size,
                          shard_size=shard_size, skip_bad=skip_bad, progress=progress)
    scores = report.frame.drop(columns=["index"])
    write_manifest(scores, out / "scores.csv")
    selection = select(scores.drop(columns=["error"]), threshold, per_class)
    extra = frame.drop(columns=[c for c in ("path", "split", "source", "label") if c in frame.columns])
    if "label" in frame.columns and (frame["label"].astype(str) != "").any():
        extra["input_label"] = frame["label"].to_numpy()
    extra.index = frame["path"].to_numpy()
    selection.counts["unreadable"] = [f"{p}: {e}" for p, e in report.failed]
    manifest = write_selection(selection, out, source=source, teacher=teacher.spec, link=link, extra=extra,
                               progress=progress)
    return PseudolabelResult(manifest=manifest, selection=selection, scores=report, source=source)
