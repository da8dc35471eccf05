"""Step 1 of pseudo-labeling: the teacher's probabilities for every image, scored resumably.

`score_images` runs batched teacher inference over a manifest's images and writes the scores incrementally as
atomic CSV shards (``scores/<key>/part-NNNNN.csv``, one per `shard_size` images in manifest order, probabilities
in canonical order). ``key`` hashes the teacher's weights/preprocessing and the image list (each path and file
content, `images_fingerprint`), so a rerun after an interruption reuses finished shards and computes only the
rest (same batches, same numbers); a different teacher or image set gets a new key. `read_scores` reads the
``OUT/scores.csv`` the pipeline writes from them.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from syntfer.core import labels as L
from syntfer.core.images import ImageError, load_image, split_fragment
from syntfer.core.manifest import absolute_path, read_manifest, relative_path, write_manifest
from syntfer.core.storage import remove_stale_temporaries, write_json
from syntfer.strategies.pseudolabel.teachers import Teacher

PROB_COLUMNS: tuple[str, ...] = tuple(f"p_{c}" for c in L.CLASSES)
SCORE_FORMAT = 2  # bump when the shard layout changes (2: paths relative to the shard, content-keyed)


class PseudolabelError(ValueError):
    """Bad input to pseudo-labeling (threshold, K, shards that do not match); the message says what."""


def images_fingerprint(paths: Sequence[str], base: str | os.PathLike) -> str:
    """Hash of the ordered image list: each path relative to `base` and each file's content.

    A re-rendered image changes it; two checkouts of the same files agree (their absolute paths and mtimes
    differ, and the fingerprint names the score folder, which is part of a DVC-tracked output).
    """
    base = Path(base).resolve()
    h = hashlib.sha256()
    digests: dict[str, str] = {}
    for p in paths:
        file, frag = split_fragment(p)
        if file not in digests:
            try:
                with open(file, "rb") as fh:
                    digests[file] = hashlib.file_digest(fh, "sha256").hexdigest()
            except FileNotFoundError:
                digests[file] = "missing"
        h.update(f"{relative_path(os.path.abspath(file) + frag, base)}\x1f{digests[file]}\x1e".encode())
    return h.hexdigest()


@dataclasses.dataclass
class ScoreReport:
    """All images' canonical-order probabilities (NaN + `error` for unreadable ones) and how they were got."""

    frame: pd.DataFrame  # index, path, p_*, error
    directory: Path
    computed: int  # images scored in this call
    reused: int  # images whose scores came from finished shards
    failed: list[tuple[str, str]]  # (path, reason) of unreadable images (skip_bad only)

    def summary(self) -> str:
        return (f"{len(self.frame)} images: {self.computed} scored now, {self.reused} reused from "
                f"{self.directory}, {len(self.failed)} unreadable")


def _read_shard(file: Path, start: int, paths: Sequence[str]) -> pd.DataFrame:
    df = pd.read_csv(file, dtype={"path": str, "error": str}, keep_default_na=False,
                     na_values={c: ["", "nan", "NaN"] for c in PROB_COLUMNS})
    if "path" in df.columns:  # stored relative to the shard's folder (write_manifest), like a manifest
        base = file.parent.resolve()
        df["path"] = [absolute_path(p, base) for p in df["path"]]
    expected = [os.path.normpath(p) for p in paths[start:start + len(df)]]
    if (list(df.columns) != ["index", "path", *PROB_COLUMNS, "error"] or len(expected) != len(df)
            or df["index"].tolist() != list(range(start, start + len(df))) or df["path"].tolist() != expected):
        raise PseudolabelError(f"{file}: shard does not match the image list it was keyed to "
                               f"(rows {start}..{start + len(df) - 1}); delete {file.parent} to rescore")
    return df


def score_images(teacher: Teacher, paths: Sequence[str], scores_dir: str | os.PathLike, *,
                 batch_size: int = 64, shard_size: int = 1024, skip_bad: bool = False,
                 progress: bool = True) -> ScoreReport:
    """Score every image (absolute paths, manifest order) with `teacher`, resumably.

    Unreadable images raise `ImageError` naming the file, unless `skip_bad`: then they get NaN
    probabilities and an `error` text, and are listed in `ScoreReport.failed`.
    """
    if batch_size < 1 or shard_size < 1:
        raise PseudolabelError(f"batch_size ({batch_size}) and shard_size ({shard_size}) must be >= 1")
    paths = [str(p) for p in paths]
    if len(set(paths)) != len(paths):
        dup = pd.Series(paths)[pd.Series(paths).duplicated()].iloc[0]
        raise PseudolabelError(f"image list has duplicate paths, e.g. {dup}")
    fp_teacher = teacher.fingerprint()
    fp_images = images_fingerprint(paths, scores_dir)
    key = hashlib.sha256(f"{SCORE_FORMAT}|{fp_teacher}|{fp_images}|{shard_size}|{skip_bad}".encode()).hexdigest()[:16]
    directory = Path(scores_dir) / key
    directory.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(directory)  # what a killed run left half-written
    meta = {"format": SCORE_FORMAT, "teacher": teacher.describe(), "images_fingerprint": fp_images,
            "n_images": len(paths), "shard_size": shard_size, "skip_bad": skip_bad,
            "columns": ["index", "path", *PROB_COLUMNS, "error"]}
    if not (directory / "meta.json").exists():
        write_json(directory / "meta.json", meta)
    parts, computed, reused = [], 0, 0
    starts = range(0, len(paths), shard_size)
    bar = tqdm(total=len(paths), desc=f"scoring ({teacher.spec})", unit="img", disable=not progress)
    for shard_no, start in enumerate(starts):
        file = directory / f"part-{shard_no:05d}.csv"
        chunk = paths[start:start + shard_size]
        if file.exists():
            df = _read_shard(file, start, paths)
            if len(df) != len(chunk):
                raise PseudolabelError(f"{file}: {len(df)} rows, expected {len(chunk)}")
            reused += len(df)
            bar.update(len(df))
        else:
            df = _score_chunk(teacher, chunk, start, batch_size, skip_bad, bar)
            write_manifest(df, file)  # paths relative to the shard: the same bytes in every checkout
            computed += len(df)
        parts.append(df)
    bar.close()
    frame = (pd.concat(parts, ignore_index=True) if parts
             else pd.DataFrame(columns=["index", "path", *PROB_COLUMNS, "error"]))
    failed = [(p, e) for p, e in zip(frame["path"], frame["error"]) if e]
    return ScoreReport(frame=frame, directory=directory, computed=computed, reused=reused, failed=failed)


def _score_chunk(teacher: Teacher, chunk: Sequence[str], start: int, batch_size: int, skip_bad: bool,
                 bar: tqdm) -> pd.DataFrame:
    probs = np.full((len(chunk), L.NUM_CLASSES), np.nan)
    errors = [""] * len(chunk)
    for b in range(0, len(chunk), batch_size):
        images, rows = [], []
        for i in range(b, min(b + batch_size, len(chunk))):
            try:
                images.append(load_image(chunk[i], "RGB"))
                rows.append(i)
            except ImageError as e:
                if not skip_bad:
                    raise
                errors[i] = str(e)
        if images:
            probs[rows] = teacher.predict_proba(images)
        bar.update(min(batch_size, len(chunk) - b))
    df = pd.DataFrame(probs, columns=list(PROB_COLUMNS))
    df.insert(0, "path", list(chunk))
    df.insert(0, "index", np.arange(start, start + len(chunk)))
    df["error"] = errors
    return df



def read_scores(file: str | os.PathLike) -> pd.DataFrame:
    """An ``OUT/scores.csv`` (absolute paths, probabilities as written)."""
    df = read_manifest(file, check_labels=False)
    missing = [c for c in PROB_COLUMNS if c not in df.columns]
    if missing:
        raise PseudolabelError(f"{file}: missing probability column(s) {missing}")
    for c in PROB_COLUMNS:
        df[c] = pd.to_numeric(df[c].replace("", np.nan), errors="raise")
    return df

