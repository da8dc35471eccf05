"""Rendering whole domains into their native on-disk formats (docs/method.md §2), in parallel and deterministically.

`render_world(out_dir, preset, seed)` writes `out_dir/<domain>/…` for every domain plus `out_dir/world.json`.
Each image is rendered from `derive_seed(seed, domain, index)` alone, so the same seed gives byte-identical
files whatever the number of workers. Files are written atomically; a domain whose `truth.csv` exists with the
same preset and seed (recorded in `<domain>/.world-done.json`) is skipped, so an interrupted run resumes.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from syntfer.core import labels as L
from syntfer.core.seeding import numpy_rng
from syntfer.core.storage import atomic_path, remove_stale_temporaries, save_image, write_json, write_text
from syntfer.sources.world.domains import (DOMAINS, REFERENCE_DOMAINS, VALENCE_AROUSAL, draw_label, make_caption,
                                           make_sample, shown_expression, web_identity, with_render)
from syntfer.sources.world.expression import AU_NAMES
from syntfer.sources.world.presets import Preset, class_counts, get_preset

DOMAIN_NAMES: tuple[str, ...] = ("rafdb", "affectnet", "fer2013", "digiface", "dcface", "emonet_face", "ffhq", "web")
LABELED_DOMAINS: tuple[str, ...] = ("rafdb", "affectnet", "fer2013")  # native label files carry an annotation
REFERENCE_NAMES: tuple[str, ...] = tuple(REFERENCE_DOMAINS)  # measurement data (syntfer.sources.world.domains)
ALL_DOMAINS: dict = {**DOMAINS, **REFERENCE_DOMAINS}
AFFECTNET_EXTRA_CODES: dict[str, int] = {"contempt": 7, "none": 8, "uncertain": 9, "no-face": 10}
FER_USAGE: tuple[str, ...] = ("Training", "PublicTest", "PrivateTest")
WORLD_VERSION = 3  # 2: stronger AU4 (brows, glabella), AU9, AU10 (bared teeth) and AU23 (pressed lips)
                   # 3: annotation noise in the labeled domains (`DomainSpec.label_noise`), truth column `annotation`


@dataclass(frozen=True)
class Task:
    """One image to render: where it goes and what it shows."""

    domain: str
    index: int
    label: str
    split: str
    path: str                       # relative to the domain folder ('' for FER2013 rows)
    identity_key: int | None = None


def _shuffled(labels_by_count: dict[str, int], rng: np.random.Generator) -> list[str]:
    out = [c for c, n in labels_by_count.items() for _ in range(n)]
    return [out[i] for i in rng.permutation(len(out))]


def plan_domain(name: str, preset: Preset, seed: int) -> list[Task]:
    """Every image of a domain with its label, split and native path (deterministic in `seed`)."""
    p = preset
    tasks: list[Task] = []
    order = numpy_rng(seed, name, "order")
    if name == "rafdb":
        i = 0
        for split, key, total in (("train", "rafdb", p.rafdb_train), ("test", "rafdb_test", p.rafdb_test)):
            labs = _shuffled(class_counts(L.REAL_TRAIN_COUNTS[key], total, p.min_per_class), order)
            for k, lab in enumerate(labs, start=1):
                tasks.append(Task(name, i, lab, split, f"Image/aligned/{split}_{k:05d}_aligned.jpg"))
                i += 1
    elif name == "affectnet":
        train = class_counts(L.REAL_TRAIN_COUNTS["affectnet"], p.affectnet_train, p.min_per_class)
        extra = {c: p.affectnet_extra // 4 + (j < p.affectnet_extra % 4)
                 for j, c in enumerate(AFFECTNET_EXTRA_CODES)}
        val = {c: p.affectnet_val_per_class for c in L.CLASSES}
        i = 0
        for split, counts in (("train", {**train, **extra}), ("validation", val)):
            for lab in _shuffled(counts, order):
                h = f"{numpy_rng(seed, name, 'file', i).integers(0, 2**63):016x}"
                tasks.append(Task(name, i, lab, split, f"Manually_Annotated_Images/{1 + i % 97}/{h}.jpg"))
                i += 1
    elif name == "fer2013":
        i = 0
        for usage, total in zip(FER_USAGE, (p.fer2013_train, p.fer2013_public, p.fer2013_private)):
            for lab in _shuffled(class_counts(L.REAL_TRAIN_COUNTS["fer2013"], total, p.min_per_class), order):
                tasks.append(Task(name, i, lab, usage, ""))
                i += 1
    elif name in ("digiface", "dcface"):
        ids, per = ((p.digiface_ids, p.digiface_per_id) if name == "digiface" else (p.dcface_ids, p.dcface_per_id))
        for k in range(ids):
            for j in range(per):
                i = k * per + j
                lab = draw_label(DOMAINS[name], numpy_rng(seed, name, "label", i))
                tasks.append(Task(name, i, lab, "", f"{k}/{j}.png", identity_key=k))
    elif name in ("emonet_face", "ffhq", "web"):
        total = {"emonet_face": p.emonet_face, "ffhq": p.ffhq, "web": p.web}[name]
        for i in range(total):
            lab = draw_label(DOMAINS[name], numpy_rng(seed, name, "label", i))
            path = {"emonet_face": f"{i:06d}.png", "ffhq": f"{i:05d}.png", "web": f"images/{i:06d}.jpg"}[name]
            tasks.append(Task(name, i, lab, "", path))
    elif name in REFERENCE_NAMES:
        i = 0
        for split, n in (("train", p.ref_per_class), ("test", p.ref_test_per_class)):
            for lab in _shuffled({c: n for c in L.CLASSES}, order):
                tasks.append(Task(name, i, lab, split, f"images/{i:06d}.png"))
                i += 1
    else:
        raise ValueError(f"unknown world domain {name!r}; expected one of {list(DOMAIN_NAMES + REFERENCE_NAMES)}")
    return tasks


def _run_task(job: tuple[str, int, int | None, int, Task]) -> dict[str, Any]:
    """Render and save one image (worker side); returns its truth row."""
    out_dir, seed, max_render, ss, t = job
    spec = with_render(ALL_DOMAINS[t.domain], max_render, ss)
    extra: dict[str, Any] = {}
    identity = None
    if t.domain == "ref_web":  # web people: drawn from prompt words, which become attribute labels
        identity, words = web_identity(spec, seed, t.index)
        extra = {"word_gender": words["gender"], "word_age": words["age"], "word_race": words["race"]}
    if t.domain == "web":
        identity, words = web_identity(spec, seed, t.index)
        caption, emo_word = make_caption(t.label, identity, words, numpy_rng(seed, "web", "caption", t.index))
        extra = {"caption": caption, "caption_emotion_word": emo_word, "word_gender": words["gender"],
                 "word_age": words["age"], "word_race": words["race"]}
    shown = shown_expression(spec, seed, t.index, t.label) if t.domain in LABELED_DOMAINS else t.label
    pil, row = make_sample(spec, seed, t.index, shown, identity_key=t.identity_key, identity=identity)
    row["annotation"] = t.label if t.domain in LABELED_DOMAINS else ""
    row.update(extra)
    row["path"] = t.path
    row["split"] = t.split
    if t.domain == "fer2013":
        row["pixels"] = " ".join(map(str, np.asarray(pil, dtype=np.uint8).ravel().tolist()))
    else:
        target = Path(out_dir) / t.domain / t.path
        if target.suffix == ".jpg":
            save_image(target, pil, quality=int(row["jpeg_quality"]))
        else:
            save_image(target, pil, optimize=False)
    return row


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def write_domain_files(name: str, rows: list[dict[str, Any]], domain_dir: Path, seed: int) -> None:
    """Write a domain's native label/metadata files and its truth.csv from the rendered rows."""
    df = pd.DataFrame(rows).sort_values("index", kind="stable").reset_index(drop=True)
    if name == "rafdb":
        lines = [f"{Path(p).name.replace('_aligned', '')} {L.to_native('rafdb', lab)}"
                 for p, lab in zip(df["path"], df["annotation"])]
        write_text(domain_dir / "EmoLabel" / "list_patition_label.txt", "\n".join(lines) + "\n")
    elif name == "affectnet":
        codes = [AFFECTNET_EXTRA_CODES[lab] if lab in AFFECTNET_EXTRA_CODES else L.to_native("affectnet", lab)
                 for lab in df["annotation"]]
        va = []
        for i, lab in zip(df["index"], df["annotation"]):
            v, a = VALENCE_AROUSAL[lab]
            if lab != "no-face":
                r = numpy_rng(seed, name, "va", int(i))
                v, a = (float(np.clip(v + r.normal(0, 0.15), -1, 1)), float(np.clip(a + r.normal(0, 0.15), -1, 1)))
            va.append((round(v, 4), round(a, 4)))
        native = pd.DataFrame({
            "subDirectory_filePath": [p.removeprefix("Manually_Annotated_Images/") for p in df["path"]],
            "face_x": df["face_x"], "face_y": df["face_y"], "face_width": df["face_width"],
            "face_height": df["face_height"], "facial_landmarks": df["landmarks"], "expression": codes,
            "valence": [v for v, _ in va], "arousal": [a for _, a in va]})
        for split, file in (("train", "training.csv"), ("validation", "validation.csv")):
            _write_csv(native[df["split"] == split], domain_dir / file)
    elif name == "fer2013":
        native = pd.DataFrame({"emotion": [L.to_native("fer2013", lab) for lab in df["annotation"]],
                               "pixels": df["pixels"], "Usage": df["split"]})
        _write_csv(native, domain_dir / "fer2013.csv")
        df = df.drop(columns=["pixels"])
        df["path"] = [f"fer2013.csv#row={i}" for i in range(len(df))]
    elif name == "ffhq":
        _write_csv(df[["path", "face_x", "face_y", "face_width", "face_height"]], domain_dir / "boxes.csv")
    elif name == "web":
        cap = df[["path", "caption", *AU_NAMES, "word_gender", "word_age", "word_race", "landmarks"]].rename(
            columns={"word_gender": "gender", "word_age": "age", "word_race": "race"})
        _write_csv(cap, domain_dir / "captions.csv")
    front = ["path", "split", "expression", "annotation", *AU_NAMES, "identity"]
    df = df[front + [c for c in df.columns if c not in front]]
    _write_csv(df, domain_dir / "truth.csv")


def _done_marker(domain_dir: Path) -> Path:
    return domain_dir / ".world-done.json"


def render_world(out_dir: str | os.PathLike, preset: str = "smoke", seed: int = 0, workers: int | None = None,
                 domains: tuple[str, ...] | list[str] | None = None, progress: bool = True) -> dict[str, Any]:
    """Render every domain (or `domains`) of a preset into `out_dir`; returns a summary (counts, seconds).

    workers: processes (None = all usable cores, 1 = in-process). Deterministic in `seed`.
    """
    out = Path(out_dir)
    pre = get_preset(preset)
    names = list(domains) if domains else list(DOMAIN_NAMES) + [r for r in REFERENCE_NAMES if pre.ref_per_class]
    bad = [d for d in names if d not in DOMAIN_NAMES + REFERENCE_NAMES]
    if bad:
        raise ValueError(f"unknown world domain(s) {bad}; expected some of {list(DOMAIN_NAMES + REFERENCE_NAMES)}")
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    summary: dict[str, Any] = {"preset": preset, "seed": seed, "version": WORLD_VERSION, "domains": {}}
    signature = {"preset": preset, "seed": seed, "version": WORLD_VERSION, "counts": pre.__dict__}
    t_all = time.perf_counter()
    remove_stale_temporaries(out)  # what a killed run left half-written, before the workers start
    pool = mp.get_context("fork").Pool(workers) if workers > 1 else None
    try:
        for name in names:
            ddir = out / name
            marker = _done_marker(ddir)
            if marker.exists() and json.loads(marker.read_text()).get("signature") == signature:
                summary["domains"][name] = json.loads(marker.read_text())["summary"] | {"skipped": True}
                continue
            t0 = time.perf_counter()
            tasks = plan_domain(name, pre, seed)
            jobs = [(str(out), seed, pre.max_render, pre.ss, t) for t in tasks]
            it = pool.imap(_run_task, jobs, chunksize=8) if pool else map(_run_task, jobs)
            rows = list(tqdm(it, total=len(jobs), desc=f"world/{name}", disable=not progress, mininterval=2.0))
            write_domain_files(name, rows, ddir, seed)
            counts = pd.Series([r["expression"] for r in rows]).value_counts().sort_index().to_dict()
            dom = {"images": len(rows), "expression_counts": {k: int(v) for k, v in counts.items()},
                   **({"label_counts": {k: int(v) for k, v in pd.Series([r["annotation"] for r in rows])
                                        .value_counts().sort_index().items()}} if name in LABELED_DOMAINS else {}),
                   "splits": pd.Series([r["split"] for r in rows]).value_counts().sort_index().to_dict()}
            write_json(marker, {"signature": signature, "summary": dom})
            summary["domains"][name] = dom | {"seconds": round(time.perf_counter() - t0, 2)}
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    summary["seconds"] = round(time.perf_counter() - t_all, 2)
    summary["images"] = sum(d["images"] for d in summary["domains"].values())
    # world.json (and each domain's marker) hold only what the render determines, so the folder's DVC hash
    # is the same on every machine and run; the timings and resume flags are in the returned summary only
    volatile = {"seconds", "skipped"}
    write_json(out / "world.json", {k: v for k, v in summary.items() if k not in volatile}
               | {"domains": {n: {k: v for k, v in d.items() if k not in volatile}
                              for n, d in summary["domains"].items()}})
    return summary
