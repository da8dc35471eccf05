"""Curated training sets built from other sets (docs/method.md §6): Mixed-SYN and hybrids.

- **Mixed-SYN** (`mix_sources`): N sources × 7 classes × (n_train + n_val) images, sampled per
  (source, class) with a generator seeded by ``derive_seed(seed, "mixed_syn", source, class)`` over the
  class's rows sorted by path — so the draw does not depend on row order, and changing one source's
  size never changes another's draw. A source with fewer rows than requested in a class gives all it has
  (split train/val in the requested proportion) and the shortfall is reported in the counts table; with
  ``strict=True`` any shortfall raises. Nothing is padded or duplicated.
- **Sized draws** (`sized_set`): one source at a fixed total N — class-balanced (N/7 per class, the synthetic
  sets, oracles) or stratified (the source's own class shares by largest remainder, a real training split) —
  so every set a verdict compares has the same size. Draws of several sizes from one source with one seed are
  nested (each class's draw is a prefix of one seeded permutation): a data-scaling curve adds images, never
  swaps them. A source short of a requested class count raises.
- **Hybrids** (`hybrid_set`): a synthetic set ∪ a real set's *train* split (the real frame must not hold
  any other split: test images must never leak into training).

Guards shared by both: every label goes through `syntfer.core.labels.canonical` (so class folders named
``angry`` and ``anger`` give one class, and an unknown name raises naming the source and row); output file
names are ``<source>__<path below the source's root, '/' -> '__'>`` and must be unique over the whole set
(a duplicate raises naming both inputs), so two sources can never collide.

`materialize` writes ``<out>/<split>/<class>/<name>`` plus ``manifest.csv`` (the set's truth; paths
relative to it), ``counts.csv`` and ``summary.json``. Link modes: ``hardlink`` (default; falls back to a
copy across filesystems: a real file, no extra space, and a snapshot — regenerating a source replaces its
files atomically, i.e. new inodes, and never changes the mix), ``copy``, ``symlink`` (absolute targets;
breaks if sources move), ``none`` (manifest only, pointing at the source files). Rows whose path is a
FER2013 CSV row or a face box (``#row=``/``#box=``) are written as PNG crops via `syntfer.core.images.load_image`.
Re-running is cheap and resumable: files already in place are kept, stale files in the class folders
(from an earlier, different mix) are removed and counted.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from syntfer.core import labels as L
from syntfer.core.images import load_image, split_fragment
from syntfer.core.manifest import read_manifest, write_manifest
from syntfer.sources.readers import read_dataset
from syntfer.core.seeding import derive_seed
from syntfer.core.storage import atomic_path, remove_stale_temporaries, save_image, write_json

SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")
LINK_MODES = ("hardlink", "copy", "symlink", "none")
SEP = "__"
RESERVED = ("path", "label", "split", "source", "source_path", "origin_path", "name")


class MixingError(ValueError):
    """A mix that cannot be built as asked (bad labels, collisions, leaked splits, strict shortfalls)."""


@dataclasses.dataclass
class MixResult:
    """A combined set: `frame` (one row per image, absolute paths) and `counts` (tidy per source and class)."""

    frame: pd.DataFrame
    counts: pd.DataFrame
    kind: str
    params: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def shortfalls(self) -> pd.DataFrame:
        """Rows of `counts` where a source had fewer images in a class than requested."""
        return self.counts[self.counts["shortfall"] > 0].reset_index(drop=True)

    def class_counts(self) -> dict[str, dict[str, int]]:
        """{split: {class: n}} over the whole combined set (every class present, zeros included)."""
        return {split: L.counts(g["label"]) for split, g in self.frame.groupby("split", sort=True)}


def check_source_name(name: str) -> str:
    if not SOURCE_NAME.match(name) or SEP in name:
        raise MixingError(f"source name {name!r} must match {SOURCE_NAME.pattern} without '{SEP}'")
    return name


def canonicalize_labels(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Copy of `frame` with every label mapped through `labels.canonical`; empty/unknown labels raise."""
    if "label" not in frame.columns or "path" not in frame.columns:
        raise MixingError(f"source {source!r}: needs 'path' and 'label' columns, has {list(frame.columns)}")
    out = frame.copy()
    mapped = []
    for i, (path, lab) in enumerate(zip(out["path"], out["label"])):
        if pd.isna(lab) or str(lab).strip() == "":
            raise MixingError(f"source {source!r} row {i} ({path}): empty label; mixes take labeled images only")
        try:
            mapped.append(L.canonical(str(lab)))
        except L.LabelError as e:
            raise MixingError(f"source {source!r} row {i} ({path}): {e}") from e
    out["label"] = mapped
    return out


def _fragment_suffix(fragment: str) -> str:
    key, _, value = fragment.lstrip("#").partition("=")
    return f"_{key}{re.sub(r'[^0-9A-Za-z]+', '-', value)}"


def output_names(paths: Sequence[str], source: str) -> list[str]:
    """``<source>__<path below the common root of these paths, '/' -> '__'>`` for each path.

    Fragment paths (``x.csv#row=3``, ``x.jpg#box=…``) become ``…x_row3.png`` / ``…x_box1-2-3-4.png``.
    """
    check_source_name(source)
    files = [split_fragment(p) for p in paths]
    dirs = [os.path.dirname(os.path.abspath(f)) for f, _ in files]
    root = os.path.commonpath(dirs) if dirs else ""
    names = []
    for (file, frag) in files:
        rel = os.path.relpath(os.path.abspath(file), root)
        parts = Path(rel).parts
        if frag:
            stem = Path(parts[-1]).stem + _fragment_suffix(frag) + ".png"
            parts = (*parts[:-1], stem)
        names.append(SEP.join((source, *parts)))
    return names


def _origin(frame: pd.DataFrame) -> pd.Series:
    for col in ("origin_path", "source_path"):
        if col in frame.columns:
            s = frame[col].astype(str)
            return s.where(s.str.len() > 0, frame["path"].astype(str))
    return frame["path"].astype(str)


def _tag(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Rows of one source with source/source_path/origin_path/name set (labels already canonical)."""
    out = frame.copy()
    out["origin_path"] = _origin(frame).to_numpy()
    out["source_path"] = frame["path"].astype(str).to_numpy()
    out["source"] = source
    out["name"] = output_names(out["path"].astype(str).tolist(), source)
    return out


def _assert_unique_names(frame: pd.DataFrame) -> None:
    dup = frame["name"].duplicated(keep=False)
    if dup.any():
        first = frame.loc[dup, ["name", "source_path"]].sort_values("name").head(4)
        pairs = "; ".join(f"{r.name} <- {r.source_path}" for r in first.itertuples())
        raise MixingError(f"{int(dup.sum())} rows share an output file name (duplicates or colliding paths): {pairs}")


def _assert_label_space(frame: pd.DataFrame) -> None:
    extra = sorted(set(frame["label"]) - set(L.CLASSES))
    if extra:
        raise MixingError(f"labels outside the 7 canonical classes after mapping: {extra}")


def sample_class(paths: Sequence[str], n_train: int, n_val: int, seed: int, source: str,
                 label: str) -> tuple[list[str], list[str]]:
    """Seeded draw of up to n_train + n_val paths (sorted first, so row order never matters).

    Short classes give everything they have, split in the requested proportion (val rounded down).
    """
    pool = sorted(paths)
    rng = np.random.default_rng(derive_seed(seed, "mixed_syn", source, label))
    order = rng.permutation(len(pool))
    want = n_train + n_val
    if len(pool) >= want:
        n_t, n_v = n_train, n_val
    else:
        n_v = min(n_val, (len(pool) * n_val) // want) if want else 0
        n_t = len(pool) - n_v
    picked = [pool[i] for i in order[: n_t + n_v]]
    return picked[:n_t], picked[n_t:]


def mix_sources(sources: Mapping[str, pd.DataFrame], n_train: int, n_val: int, seed: int, *,
                strict: bool = False) -> MixResult:
    """Mixed-SYN: for each source and class draw n_train + n_val images (see module docstring)."""
    if n_train < 0 or n_val < 0 or n_train + n_val == 0:
        raise MixingError(f"n_train={n_train}, n_val={n_val}: need non-negative sizes, not both zero")
    if not sources:
        raise MixingError("no sources to mix")
    parts, count_rows = [], []
    for source, frame in sources.items():
        check_source_name(source)
        frame = canonicalize_labels(frame, source)
        if not frame["path"].is_unique:
            dup = frame.loc[frame["path"].duplicated(), "path"].iloc[0]
            raise MixingError(f"source {source!r}: {int(frame['path'].duplicated().sum())} duplicate paths, "
                              f"e.g. {dup}")
        by_path = _tag(frame, source).set_index("path", drop=False)
        for label in L.CLASSES:
            pool = by_path.loc[by_path["label"] == label, "path"].tolist()
            train, val = sample_class(pool, n_train, n_val, seed, source, label)
            for split, picked in (("train", train), ("val", val)):
                if picked:
                    rows = by_path.loc[picked].reset_index(drop=True)
                    rows["split"] = split
                    parts.append(rows)
            count_rows.append({"source": source, "label": label, "available": len(pool),
                               "requested_train": n_train, "requested_val": n_val, "train": len(train),
                               "val": len(val), "shortfall": n_train + n_val - len(train) - len(val)})
    counts = pd.DataFrame(count_rows)
    if strict and (counts["shortfall"] > 0).any():
        short = counts[counts["shortfall"] > 0]
        raise MixingError("sources short of the requested per-class size (strict):\n" + short.to_string(index=False))
    frame = _finish(parts)
    return MixResult(frame=frame, counts=counts, kind="mixed_syn",
                     params={"n_train": n_train, "n_val": n_val, "seed": seed, "sources": list(sources)})


def sized_counts(labels: Sequence[str], n_total: int, stratified: bool) -> dict[str, int]:
    """Per-class counts of a draw of `n_total` images: N/7 per class (balanced; N must divide by 7), or the
    class shares of `labels` by largest remainder, each class the source has keeping one image (stratified)."""
    if n_total <= 0:
        raise MixingError(f"set size {n_total}: expected a positive number of images")
    if not stratified:
        if n_total % L.NUM_CLASSES:
            raise MixingError(f"set size {n_total}: a class-balanced set needs a multiple of {L.NUM_CLASSES}")
        return {c: n_total // L.NUM_CLASSES for c in L.CLASSES}
    have = L.counts(labels)
    if sum(have.values()) < n_total:
        raise MixingError(f"set size {n_total}: the source holds only {sum(have.values())} images")
    # every class the source has keeps at least one image; a class it lacks stays empty
    return L.split_total(have, n_total, minimum=1 if all(have.values()) else 0)


def sized_set(frame: pd.DataFrame, source: str, n_total: int, seed: int, *, stratified: bool = False) -> MixResult:
    """One source drawn at exactly `n_total` images (`sized_counts`), every row's split 'train' (the trainer holds
    out its own validation part, as for a real split). Each class's draw is the prefix of one permutation seeded
    by (seed, source, class) over the class's rows sorted by path: sizes drawn with one seed are nested. A class
    with fewer rows than its count raises naming the source, the class and both numbers."""
    check_source_name(source)
    frame = canonicalize_labels(frame, source)
    want = sized_counts(frame["label"].tolist(), n_total, stratified)
    by_path = _tag(frame, source).set_index("path", drop=False)
    parts, count_rows = [], []
    for label in L.CLASSES:
        pool = by_path.loc[by_path["label"] == label, "path"].tolist()
        if len(pool) < want[label]:
            raise MixingError(f"source {source!r}: {len(pool)} {label} image(s), {want[label]} needed for a "
                              f"{'stratified' if stratified else 'class-balanced'} set of {n_total}")
        picked, _ = sample_class(pool, want[label], 0, seed, source, label)
        if picked:
            parts.append(by_path.loc[picked].reset_index(drop=True).assign(split="train"))
        count_rows.append({"source": source, "label": label, "available": len(pool), "requested_train": want[label],
                           "requested_val": 0, "train": len(picked), "val": 0, "shortfall": 0})
    return MixResult(frame=_finish(parts), counts=pd.DataFrame(count_rows), kind="sized",
                     params={"source": source, "n_total": n_total, "seed": seed, "stratified": stratified})


def hybrid_set(synthetic: pd.DataFrame, real: pd.DataFrame, synthetic_name: str,
               real_name: str = "rafdb") -> MixResult:
    """A synthetic set ∪ a real train split. Synthetic rows keep their split ('train' when absent/empty)."""
    if "split" in real.columns:
        splits = sorted(set(real["split"].astype(str)) - {"train"})
        if splits:
            raise MixingError(f"hybrid: the real set {real_name!r} must hold its train split only; "
                              f"found split(s) {splits} (test images must never enter training)")
    if synthetic_name == real_name:
        raise MixingError(f"hybrid: synthetic and real source names are both {real_name!r}")
    parts, count_rows = [], []
    for source, frame in ((synthetic_name, synthetic), (real_name, real)):
        tagged, counts = _tag_whole(frame, source)
        parts.append(tagged)
        count_rows += counts
    frame = _finish(parts)
    return MixResult(frame=frame, counts=pd.DataFrame(count_rows), kind="hybrid",
                     params={"synthetic": synthetic_name, "real": real_name})


def _tag_whole(frame: pd.DataFrame, source: str) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Every row of one source, tagged, its split kept ('train' when absent/empty), and its per-class counts."""
    check_source_name(source)
    tagged = _tag(canonicalize_labels(frame, source), source)
    split = tagged["split"].astype(str) if "split" in tagged.columns else pd.Series("", index=tagged.index)
    tagged["split"] = split.where(split.str.len() > 0, "train")
    per_class = L.counts(tagged["label"])
    rows = []
    for label in L.CLASSES:
        n_tr = int(((tagged["label"] == label) & (tagged["split"] == "train")).sum())
        rows.append({"source": source, "label": label, "available": per_class[label],
                     "requested_train": per_class[label], "requested_val": 0, "train": n_tr,
                     "val": per_class[label] - n_tr, "shortfall": 0})
    return tagged, rows


def whole_set(frame: pd.DataFrame, name: str) -> MixResult:
    """One source taken whole, as a training set of its own (every row; its split kept, 'train' when absent).

    This is how a strategy's output (a curated diffusion set, a GAN-edited set) becomes ``outputs/sets/<name>``
    with the same guards, names and manifest columns as Mixed-SYN and hybrids."""
    tagged, rows = _tag_whole(frame, name)
    return MixResult(frame=_finish([tagged]), counts=pd.DataFrame(rows), kind="whole", params={"source": name})


def _finish(parts: list[pd.DataFrame]) -> pd.DataFrame:
    if not parts:
        raise MixingError("the combined set is empty")
    frame = pd.concat(parts, ignore_index=True)
    _assert_label_space(frame)
    _assert_unique_names(frame)
    front = ["path", "label", "split", "source", "name", "source_path", "origin_path"]
    frame = frame[front + [c for c in frame.columns if c not in front]]
    for c in frame.columns:
        if frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c]):
            frame[c] = frame[c].fillna("")
    return frame.sort_values(["split", "label", "name"], kind="stable").reset_index(drop=True)


def _place(src: str, dest: Path, link: str) -> bool:
    """Put `src` at `dest`; returns True when something was written (False: already in place)."""
    file, frag = split_fragment(src)
    if frag:
        if dest.exists():
            return False
        save_image(dest, load_image(src, "RGB"))
        return True
    if not os.path.isfile(file):
        raise MixingError(f"{file}: source image not found")
    if dest.is_symlink() or dest.exists():
        if link == "symlink" and dest.is_symlink() and os.readlink(dest) == os.path.abspath(file):
            return False
        if link == "hardlink" and not dest.is_symlink() and os.path.samefile(dest, file):
            return False
        if link == "copy" and not dest.is_symlink() and dest.stat().st_size == os.path.getsize(file):
            return False
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    if link == "symlink":
        os.symlink(os.path.abspath(file), dest)
        return True
    if link == "hardlink":
        try:
            os.link(file, dest)
            return True
        except OSError:  # cross-device or unsupported: a copy is the documented fallback
            pass
    with atomic_path(dest) as tmp:
        shutil.copyfile(file, tmp)
    return True


def materialize(result: MixResult, out_dir: str | os.PathLike, link: str = "hardlink",
                progress: bool = True) -> MixResult:
    """Write the set under `out_dir` (see module docstring); returns the result with paths in `out_dir`.

    With ``link='none'`` only manifest.csv/counts.csv/summary.json are written and paths stay at the sources.
    """
    if link not in LINK_MODES:
        raise MixingError(f"link mode {link!r}: expected one of {LINK_MODES}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)  # what a killed run left half-written (its manifest's temporary, a copy's)
    frame = result.frame.copy()
    written = 0
    if link != "none":
        dests = [out / split / label / name for split, label, name in
                 zip(frame["split"], frame["label"], frame["name"])]
        for src, dest in tqdm(list(zip(frame["source_path"], dests)), desc=f"materialize[{result.kind}]",
                              disable=not progress, leave=False):
            written += _place(src, dest, link)
        frame["path"] = [str(d.resolve()) if link != "symlink" else str(d.absolute()) for d in dests]
        keep = {str(d) for d in dests}
        stale = [p for split in frame["split"].unique() for p in (out / split).glob("*/*")
                 if str(p) not in keep and (p.is_file() or p.is_symlink())]
        for p in stale:
            p.unlink()
    else:
        stale = []
    write_manifest(frame, out / "manifest.csv")
    with atomic_path(out / "counts.csv") as tmp:
        result.counts.to_csv(tmp, index=False)
    summary = {"kind": result.kind, "params": result.params, "link": link, "n_images": int(len(frame)),
               "per_split_class": result.class_counts(),
               "shortfalls": result.shortfalls.to_dict(orient="records"), "files_written": int(written),
               "stale_removed": len(stale)}
    write_json(out / "summary.json", summary)
    return MixResult(frame=frame, counts=result.counts, kind=result.kind, params=result.params)


def load_source(spec: str | os.PathLike) -> pd.DataFrame:
    """A source as a frame: a manifest CSV, or a class-folder tree (read with ``readers.read_dataset('folder')``)."""
    p = Path(spec)
    if p.is_dir():
        res = read_dataset("folder", p)
        if res.skipped:
            raise MixingError(f"{p}: {len(res.skipped)} entries could not be read, e.g. {res.skipped[0]}")
        return res.frame
    return read_manifest(p, required=("path", "label"), check_labels=False)


# --- CLI: syntfer mix ------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", action="append", default=[], metavar="NAME=MANIFEST_OR_FOLDER",
                        help="a synthetic source (repeatable; for --real and --whole, exactly one)")
    parser.add_argument("--sets", default="", metavar="NAME,NAME,…",
                        help="sources by set name, each <sets-dir>/<NAME>/manifest.csv (comma-separated; for DVC)")
    parser.add_argument("--sets-dir", default="outputs/sets", help="where --sets names live")
    parser.add_argument("--whole", action="store_true", help="copy one source whole (all rows) as a set")
    parser.add_argument("--real", metavar="NAME=MANIFEST", help="build a hybrid with this real train split")
    parser.add_argument("--n-train", type=int, default=1250, help="Mixed-SYN images per source and class (train)")
    parser.add_argument("--n-val", type=int, default=125, help="Mixed-SYN images per source and class (val)")
    parser.add_argument("--n-total", type=int, default=0, metavar="N",
                        help="one source drawn at exactly N images (class-balanced, N/7 per class; see --stratify)")
    parser.add_argument("--stratify", default="", metavar="NAME,NAME,…",
                        help="with --n-total: these sources keep their own class shares (real training splits)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strict", action="store_true", help="raise when a source is short in a class")
    parser.add_argument("--link", choices=LINK_MODES, default="hardlink")
    parser.add_argument("--out", required=True)


def _spec(s: str) -> tuple[str, pd.DataFrame]:
    name, sep, where = s.partition("=")
    if not sep or not name or not where:
        raise MixingError(f"expected NAME=MANIFEST_OR_FOLDER, got {s!r}")
    return check_source_name(name), load_source(where)


def run(args: argparse.Namespace) -> int:
    specs = list(args.source) + [f"{n}={Path(args.sets_dir) / n / 'manifest.csv'}"
                                 for n in (x.strip() for x in args.sets.split(",")) if n]
    if not specs:
        raise MixingError("no sources: give --source NAME=MANIFEST and/or --sets NAME,NAME")
    sources = dict(_spec(s) for s in specs)
    if len(sources) != len(specs):
        raise MixingError(f"a source name is given twice in {specs}")
    if args.n_total:
        if args.whole or args.real or len(sources) != 1:
            raise MixingError(f"--n-total draws one source (no --whole, no --real); got {len(sources)}")
        (name, frame), = sources.items()
        stratified = name in {x.strip() for x in args.stratify.split(",") if x.strip()}
        result = sized_set(frame, name, args.n_total, args.seed, stratified=stratified)
    elif args.whole:
        if args.real or len(sources) != 1:
            raise MixingError(f"--whole copies exactly one source (no --real); got {len(sources)}")
        (name, frame), = sources.items()
        result = whole_set(frame, name)
    elif args.real:
        if len(sources) != 1:
            raise MixingError(f"--real builds one hybrid: give exactly one --source, got {len(sources)}")
        real_name, real = _spec(args.real)
        (syn_name, syn), = sources.items()
        result = hybrid_set(syn, real, syn_name, real_name)
    else:
        result = mix_sources(sources, args.n_train, args.n_val, args.seed, strict=args.strict)
    result = materialize(result, args.out, link=args.link)
    print(f"{result.kind}: {len(result.frame)} images -> {args.out}")
    if len(result.shortfalls):
        print("shortfalls (source had fewer images than requested):")
        print(result.shortfalls.to_string(index=False))
    return 0
