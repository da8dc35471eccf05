"""Curation of a generated set: label = prompted emotion, optional filters, de-duplication, balancing.

Steps, in order, each recording what it removed (reason per row, counts per class):
1. ``face``: a face detector finds a face (dlib HOG by default; meant for real photographs — the world's
   32-px drawings are below its 80-px detection window, so the pipeline leaves it off for world sets);
2. ``teacher``: a callable (paths -> class probabilities in canonical order) must agree with the prompted
   label (`require_agreement`) and/or give it at least `min_confidence`;
3. ``duplicate``: 64-bit difference hashes within `dedup_bits` Hamming distance of an earlier kept image;
4. ``balance``: per class down to `per_class` (or to the smallest class with ``per_class="min"``), seeded.
The kept images are copied to ``<out>/<class>/`` with ``<out>/manifest.csv`` (the input columns plus
curation columns); ``<out>/curation.json`` and the returned `removed` table say what went and why.
"""
from __future__ import annotations

import argparse
import dataclasses
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from syntfer.core import labels as L
from syntfer.core.images import load_image
from syntfer.core.manifest import read_manifest, write_manifest
from syntfer.core.seeding import derive_seed
from syntfer.core.storage import atomic_path, remove_stale_temporaries, write_json

Teacher = Callable[[Sequence[str]], np.ndarray]


class CurationError(ValueError):
    """Bad curation input."""


def dhash(paths: Sequence[str], size: int = 8) -> np.ndarray:
    """64-bit difference hashes (uint64) of grey images: sign of horizontal gradients on a 9x8 thumbnail."""
    out = np.empty(len(paths), dtype=np.uint64)
    weights = (1 << np.arange(size * size, dtype=np.uint64)).astype(np.uint64)
    for i, p in enumerate(paths):
        g = np.asarray(load_image(p, "L").resize((size + 1, size), Image.Resampling.BILINEAR), dtype=np.int16)
        bits = (g[:, 1:] > g[:, :-1]).reshape(-1).astype(np.uint64)
        out[i] = np.bitwise_or.reduce(bits * weights)
    return out


def _popcount64(x: np.ndarray) -> np.ndarray:
    return np.unpackbits(x.view(np.uint8).reshape(*x.shape, 8), axis=-1).sum(-1)


def duplicate_mask(hashes: np.ndarray, max_bits: int, chunk: int = 512) -> np.ndarray:
    """True for each image within `max_bits` of an earlier *kept* image (first occurrence wins)."""
    n = len(hashes)
    dup = np.zeros(n, dtype=bool)
    if max_bits < 0 or n == 0:
        return dup
    for s in range(0, n, chunk):
        block = hashes[s:s + chunk]
        d = _popcount64(block[:, None] ^ hashes[None, :s + chunk])  # vs everything up to the block's end
        for j in range(len(block)):
            i = s + j
            earlier = np.nonzero(d[j, :i] <= max_bits)[0]
            if len(earlier) and (~dup[earlier]).any():
                dup[i] = True
    return dup


def face_detector_dlib(upsample: int = 1) -> Callable[[Sequence[str]], np.ndarray]:
    """(paths -> bool) face presence with dlib's HOG frontal face detector."""
    import dlib  # lazy: only the dlib face filter needs it (a native build that not every platform has)

    det = dlib.get_frontal_face_detector()

    def present(paths: Sequence[str]) -> np.ndarray:
        return np.array([len(det(np.asarray(load_image(p, "RGB")), upsample)) > 0 for p in paths], dtype=bool)

    return present


@dataclasses.dataclass
class CurationResult:
    manifest: pd.DataFrame  # kept rows, paths in the curated folder
    removed: pd.DataFrame  # path, label, reason
    report: dict[str, Any]


def curate(frame: pd.DataFrame, out_dir: str | Path | None = None, *,
           face: Callable[[Sequence[str]], np.ndarray] | None = None, teacher: Teacher | None = None,
           require_agreement: bool = False, min_confidence: float = 0.0, dedup_bits: int | None = None,
           per_class: int | str | None = None, seed: int = 0) -> CurationResult:
    """Curate a generated manifest (`path`, `label` = prompted emotion). See the module docstring."""
    for c in ("path", "label"):
        if c not in frame.columns:
            raise CurationError(f"manifest lacks column {c!r}")
    df = frame.reset_index(drop=True).copy()
    df["label"] = [L.canonical(v) for v in df["label"]]
    reason = np.array([""] * len(df), dtype=object)

    def drop(mask: np.ndarray, why: str) -> None:
        reason[(reason == "") & mask] = why

    if face is not None:
        alive = np.nonzero(reason == "")[0]
        ok = np.asarray(face(df["path"].iloc[alive].tolist()), dtype=bool)
        m = np.zeros(len(df), bool)
        m[alive[~ok]] = True
        drop(m, "no_face")
    if teacher is not None:
        alive = np.nonzero(reason == "")[0]
        probs = np.asarray(teacher(df["path"].iloc[alive].tolist()))
        if probs.shape != (len(alive), L.NUM_CLASSES):
            raise CurationError(f"teacher returned shape {probs.shape}; expected ({len(alive)}, {L.NUM_CLASSES})")
        y = np.array([L.index(v) for v in df["label"].iloc[alive]])
        df.loc[alive, "teacher_pred"] = [L.CLASSES[i] for i in probs.argmax(1)]
        df.loc[alive, "teacher_p_label"] = probs[np.arange(len(alive)), y]
        bad = np.zeros(len(df), bool)
        if require_agreement:
            bad[alive[probs.argmax(1) != y]] = True
            drop(bad, "teacher_disagrees")
        low = np.zeros(len(df), bool)
        low[alive[probs[np.arange(len(alive)), y] < min_confidence]] = True
        drop(low, "teacher_low_confidence")
    if dedup_bits is not None:
        alive = np.nonzero(reason == "")[0]
        hashes = dhash(df["path"].iloc[alive].tolist())
        df.loc[alive, "dhash"] = [f"{h:016x}" for h in hashes]
        m = np.zeros(len(df), bool)
        m[alive[duplicate_mask(hashes, dedup_bits)]] = True
        drop(m, "duplicate")
    if per_class is not None:
        alive = pd.Series(reason == "")
        counts = df[alive.to_numpy()].groupby("label").size()
        target = int(counts.min()) if per_class == "min" else int(per_class)
        rng = np.random.default_rng(derive_seed(seed, "curation.balance"))
        m = np.zeros(len(df), bool)
        for lab in L.CLASSES:
            idx = np.nonzero(alive.to_numpy() & (df["label"].to_numpy() == lab))[0]
            if len(idx) > target:
                m[rng.permutation(idx)[target:]] = True
        drop(m, "balance")
    kept = df[reason == ""].copy()
    removed = df.loc[reason != "", ["path", "label"]].assign(reason=reason[reason != ""])
    report = {"input": len(df), "kept": len(kept),
              "removed_by_reason": removed["reason"].value_counts().to_dict(),
              "kept_per_class": L.counts(kept["label"]),
              "removed_per_class_reason": {f"{lab}/{r}": int(n) for (lab, r), n in
                                           removed.groupby(["label", "reason"]).size().items()}}
    if out_dir is not None:
        out = Path(out_dir)
        remove_stale_temporaries(out)  # what a killed run left half-written
        new_paths = []
        for src, lab in zip(kept["path"], kept["label"]):
            dst = out / lab / Path(src).name
            if dst.exists() and dst.stat().st_size == Path(src).stat().st_size:
                new_paths.append(str(dst.resolve()))
                continue
            with atomic_path(dst) as tmp:
                shutil.copyfile(src, tmp)
            new_paths.append(str(dst.resolve()))
        kept["source_path"] = kept["path"]
        kept["path"] = new_paths
        write_manifest(kept, out / "manifest.csv")
        write_manifest(removed, out / "removed.csv")
        write_json(out / "curation.json", report)
    return CurationResult(kept.reset_index(drop=True), removed.reset_index(drop=True), report)


def curate_from_args(args: argparse.Namespace) -> int:
    """`syntfer diffusion curate` entry point (dedup + balance; filters need Python callables)."""
    frame = read_manifest(args.manifest)
    per_class = args.per_class if args.per_class in (None, "min") else int(args.per_class)
    res = curate(frame, args.out, dedup_bits=args.dedup_bits, per_class=per_class, seed=args.seed)
    print(res.report)
    return 0
