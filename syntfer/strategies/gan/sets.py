"""GAN-edited training sets: the paper's recipes and a resumable, seeded writer with a manifest per image.

Recipes (docs/method.md §5), over a pool of source faces (path, identity, face box):
- ``_10``: K faces per class, identities disjoint across classes (paper: K = 10,000 → 70K);
- ``_70``: every face in all seven expressions (paper: 490K);
- ``_RAF``: RAF-DB's class distribution (train + test, 15,339 in the paper), each face used once.
Sizes are scaled by the caller (presets); shortfalls are recorded, never hidden.

Every output row is reproducible from its manifest row: the control value and the degradation noise come
from generators seeded with `derive_seed(seed, 'gan-edit', source_key, label, variant)`, where `source_key` is
the source's path relative to its pool's folder (pools built here carry it), so the same sources give the same
edits wherever the project is checked out. A pool without `source_key` falls back to `source_path`.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from syntfer.core import labels as L
from syntfer.strategies.gan.controls import ControlSpace, ControlValue
from syntfer.strategies.gan.editing import (BOX_NAMES, DegradeConfig, EditError, Restorer, clip_box, edit_images,
                                            edit_path, full_path_name)
from syntfer.strategies.gan.networks import Generator
from syntfer.strategies.gan.training import face_frame
from syntfer.core.images import load_array
from syntfer.core.manifest import write_manifest
from syntfer.core.seeding import derive_seed, numpy_rng
from syntfer.core.storage import remove_stale_temporaries, save_image, write_json
from syntfer.sources.world.presets import class_counts

RECIPES = ("10", "70", "RAF")
FULL_WARP = "none (full-resolution warp)"  # the manifest's `restorer` for a flow editor's full-resolution edits: nothing
# to repair (an inpainting editor's: "none (inner face drawn (full resolution))", `editing.full_path_name`)
MANIFEST_COLUMNS = ("path", "label", "source_path", "identity", "control_x", "control_y", "rho", "theta",
                    "variant", "seed", "restorer", "face_x", "face_y", "face_width", "face_height")


class RecipeError(ValueError):
    """A recipe that cannot be filled from the given source pool."""


@dataclasses.dataclass
class Plan:
    """Rows to edit (source_path, identity, box, label) and the recipe's bookkeeping."""

    rows: pd.DataFrame
    recipe: str
    requested: dict[str, int]
    shortfall: dict[str, int]


def _check_pool(pool: pd.DataFrame) -> None:
    need = ["source_path", "identity", *BOX_NAMES]
    missing = [c for c in need if c not in pool.columns]
    if missing:
        raise RecipeError(f"source pool lacks column(s) {missing}; has {list(pool.columns)}")
    if pool.empty:
        raise RecipeError("the source pool is empty (0 faces); expected face images with boxes (a boxes.csv with "
                          "rows, or --images where dlib finds faces)")
    if pool["source_path"].duplicated().any():
        dup = pool.loc[pool["source_path"].duplicated(), "source_path"].iloc[0]
        raise RecipeError(f"source pool lists {dup!r} twice")


def plan_recipe(pool: pd.DataFrame, recipe: str, *, per_class: int = 0, total: int = 0, seed: int = 0) -> Plan:
    """Choose (source face, target class) pairs for a recipe.

    - '10': `per_class` faces per class; identities are shuffled (seeded) and dealt to classes in turn, so
      no identity appears under two classes; a class gets fewer if its identities run out (recorded).
    - '70': every face × 7 classes (`per_class`/`total` ignored).
    - 'RAF': `total` faces split by RAF-DB's train+test class shares (largest remainder), each face once.
    """
    _check_pool(pool)
    rng = numpy_rng(seed, "gan-recipe", recipe)
    pool = pool.reset_index(drop=True)
    if recipe == "70":
        rows = pool.loc[np.repeat(pool.index.to_numpy(), L.NUM_CLASSES)].reset_index(drop=True)
        rows["label"] = list(L.CLASSES) * len(pool)
        req = {c: len(pool) for c in L.CLASSES}
        return Plan(rows, recipe, req, {c: 0 for c in L.CLASSES})
    if recipe == "10":
        if per_class <= 0:
            raise RecipeError(f"recipe '10' needs per_class > 0; got {per_class}")
        ids = pool["identity"].astype(str).unique()
        ids = ids[rng.permutation(len(ids))]
        by_id = {i: g.index.to_list() for i, g in pool.groupby(pool["identity"].astype(str), sort=False)}
        chosen: dict[str, list[int]] = {c: [] for c in L.CLASSES}
        k = 0
        for ident in ids:  # deal whole identities round-robin to classes that still need faces
            open_classes = [c for c in L.CLASSES if len(chosen[c]) < per_class]
            if not open_classes:
                break
            c = open_classes[k % len(open_classes)]
            chosen[c].extend(by_id[ident][: per_class - len(chosen[c])])
            k += 1
        parts = [pool.loc[idx].assign(label=c) for c, idx in chosen.items() if idx]
        rows = pd.concat(parts, ignore_index=True) if parts else pool.iloc[0:0].assign(label=[])
        req = {c: per_class for c in L.CLASSES}
        return Plan(rows, recipe, req, {c: per_class - len(chosen[c]) for c in L.CLASSES})
    if recipe == "RAF":
        ref = {c: L.REAL_TRAIN_COUNTS["rafdb"][c] + L.REAL_TRAIN_COUNTS["rafdb_test"][c] for c in L.CLASSES}
        if total <= 0:
            raise RecipeError(f"recipe 'RAF' needs total > 0; got {total}")
        if total > len(pool):
            raise RecipeError(f"recipe 'RAF' asks for {total} edits but the pool has {len(pool)} faces "
                              "(each face is used once)")
        req = class_counts(ref, total, minimum=1)
        order = rng.permutation(len(pool))[:total]
        labels = [c for c in L.CLASSES for _ in range(req[c])]
        rows = pool.loc[order].reset_index(drop=True)
        rows["label"] = labels
        return Plan(rows, recipe, req, {c: 0 for c in L.CLASSES})
    raise RecipeError(f"unknown recipe {recipe!r}; expected one of {list(RECIPES)}")


def draw_per_class(plan: Plan, per_class: int, seed: int) -> Plan:
    """A seeded class-balanced draw of `per_class` rows per class from a plan, in the plan's order — e.g. from recipe
    '70' (every face × 7 classes) a set of `per_class` (face, class) pairs per class, to compare editors or a GAN set
    with `per_class` truth-labelled faces at equal size. A class with fewer rows is an error, not a shortfall."""
    if per_class <= 0:
        raise RecipeError(f"draw of {per_class} rows per class; expected > 0")
    rng = numpy_rng(seed, "gan-draw", per_class)
    parts = []
    for c in L.CLASSES:
        sub = plan.rows[plan.rows["label"] == c]
        if len(sub) < per_class:
            raise RecipeError(f"draw of {per_class} rows per class: recipe {plan.recipe!r} has {len(sub)} for {c!r}")
        parts.append(sub.iloc[np.sort(rng.choice(len(sub), per_class, replace=False))])
    return Plan(pd.concat(parts, ignore_index=True), plan.recipe, {c: per_class for c in L.CLASSES},
                {c: 0 for c in L.CLASSES})


def control_for(space: ControlSpace, label: str, variant: str, seed: int) -> ControlValue:
    """The control value of one output image (V draws from its own generator)."""
    if variant == "F":
        return space.fixed(label)
    if variant == "V":
        return space.variable(label, np.random.default_rng(derive_seed(seed, "control")))
    raise ValueError(f"variant {variant!r}; expected 'F' or 'V'")


def output_name(source_key: str, label: str, variant: str) -> str:
    """``images/<label>/<folders of source_key>/<stem>_<label>_<variant>.png``.

    `source_key` is the source's path relative to its pool (see `output_keys`): a flat pool gives
    ``images/<label>/<stem>_<label>_<variant>.png``; ``a/1.png`` and ``b/1.png`` keep their folders, so they
    cannot land on the same output.
    """
    key = PurePosixPath(str(source_key).replace(os.sep, "/"))
    if key.is_absolute() or ".." in key.parts or not key.name:
        raise RecipeError(f"source key {source_key!r}: expected a path relative to the pool's folder, "
                          "without '..'")
    folders = "/".join(key.parent.parts)
    return f"images/{label}/{folders + '/' if folders else ''}{key.stem}_{label}_{variant}.png"


def output_keys(rows: pd.DataFrame) -> list[str]:
    """Each row's path relative to its pool: `source_key` where it is relative, else the path below the common
    folder of the rows' (absolute) source paths."""
    keys = (rows["source_key"] if "source_key" in rows.columns else rows["source_path"]).astype(str).tolist()
    absolute = [i for i, k in enumerate(keys) if os.path.isabs(k)]
    if absolute:
        root = os.path.commonpath([os.path.dirname(os.path.abspath(keys[i])) for i in absolute])
        for i in absolute:
            keys[i] = os.path.relpath(os.path.abspath(keys[i]), root)
    return [k.replace(os.sep, "/") for k in keys]


def _refuse_duplicate_outputs(paths: Sequence[str], rows: pd.DataFrame) -> None:
    seen: dict[str, int] = {}
    for i, p in enumerate(paths):
        if p in seen:
            j = seen[p]
            raise RecipeError(
                f"two planned edits write the same file {p!r}: source {rows['source_path'].iloc[j]!r} "
                f"and source {rows['source_path'].iloc[i]!r} (label {rows['label'].iloc[i]!r}); expected one "
                "output per (source, label) - give the sources distinct paths (stems) below the pool's folder")
        seen[p] = i


def render_edit_set(plan: Plan, generator: Generator, out: str | os.PathLike, *, variant: str, seed: int,
                    restorer: Restorer | None, degrade_cfg: DegradeConfig | None = None, batch_size: int = 32,
                    progress: bool = True, resolution: str = "full") -> pd.DataFrame:
    """Edit every planned row, write PNGs under `out/images/<label>/` and `out/manifest.csv`; resumable.

    `resolution` as in `edit_images`: a flow editor's 'full' edits warp the source at its own resolution inside a
    soft face mask and run no seam repair (the manifest's `restorer` column then reads 'none (full-resolution
    warp)'); 'crop' pastes the editor-resolution crop back and repairs the seam with `restorer`.

    Rows whose image exists are not re-edited (their control values are recomputed from the seed, so the
    manifest is identical). Sources that fail to load or whose box is unusable are counted in
    `out/summary.json` (`skipped`) and left out of the manifest.
    """
    out = Path(out)
    remove_stale_temporaries(out)  # what a killed run left half-written
    space = generator.control_space()
    path = edit_path(generator, resolution)
    repair = f"none ({full_path_name(generator)})" if path == "full" else (restorer.name if restorer is not None
                                                                          else "paste")
    rows = plan.rows.reset_index(drop=True)
    records: list[dict] = []
    skipped: list[dict] = []
    todo: list[tuple[int, dict]] = []
    keys = rows["source_key"] if "source_key" in rows.columns else rows["source_path"]
    names = [output_name(k, lab, variant) for k, lab in zip(output_keys(rows), rows["label"])]
    _refuse_duplicate_outputs(names, rows)
    for i, r in rows.iterrows():
        s = derive_seed(seed, "gan-edit", str(keys[i]), r["label"], variant)
        cv = control_for(space, r["label"], variant, s)
        rec = {"path": str(out / names[i]), "label": r["label"],
               "source_path": r["source_path"], "identity": r["identity"], **cv.as_row(), "seed": s,
               "restorer": repair, **{k: r[k] for k in BOX_NAMES}}
        records.append(rec)
        if not Path(rec["path"]).exists():
            todo.append((i, rec))
    bad_rows: set[int] = set()
    bar = tqdm(total=len(todo), desc=f"gan edits {plan.recipe}/{variant}", disable=not progress, mininterval=2.0)
    for start in range(0, len(todo), batch_size):
        chunk = todo[start:start + batch_size]
        images, boxes, faces, codes, rngs, keep = [], [], [], [], [], []
        for i, rec in chunk:
            try:
                img = load_array(rec["source_path"], "RGB")
                box = clip_box(face_frame([rec[k] for k in BOX_NAMES], img.shape[1], img.shape[0]),
                               img.shape[1], img.shape[0], where=rec["source_path"])
            except (OSError, EditError) as e:
                skipped.append({"source_path": rec["source_path"], "label": rec["label"], "reason": str(e)})
                bad_rows.add(i)
                continue
            images.append(img)
            boxes.append(box)
            faces.append([float(rec[k]) for k in BOX_NAMES])
            codes.append(ControlValue(rec["label"], rec["control_x"], rec["control_y"], rec["variant"]))
            rngs.append(np.random.default_rng(derive_seed(rec["seed"], "degrade")))
            keep.append(rec)
        res = edit_images(images, boxes, codes, generator, restorer, degrade_cfg, rngs, faces=faces,
                          resolution=resolution)
        for rec, arr in zip(keep, res.repaired):
            save_image(rec["path"], Image.fromarray(arr))
        bar.update(len(chunk))
    bar.close()
    manifest = pd.DataFrame([r for i, r in enumerate(records) if i not in bad_rows], columns=list(MANIFEST_COLUMNS))
    # paths are stored relative to the manifest: resolve them first (`out` may be relative to the cwd)
    write_manifest(manifest.assign(path=[str(Path(p).resolve()) for p in manifest["path"]]), out / "manifest.csv")
    write_json(out / "summary.json", {
        "recipe": plan.recipe, "variant": variant, "seed": seed, "images": int(len(manifest)),
        "requested_per_class": plan.requested, "shortfall_per_class": plan.shortfall,
        "counts": L.counts(manifest["label"]), "skipped": skipped, "n_skipped": len(skipped),
        "control_space": space.to_dict(), "generator": generator.cfg.to_dict(),
        "restorer": repair, "edit_path": path,
        "degrade": dataclasses.asdict(degrade_cfg or DegradeConfig())})
    return manifest


def source_pool_from_boxes(boxes_csv: str | os.PathLike, truth_csv: str | os.PathLike | None = None) -> pd.DataFrame:
    """The world's ffhq stand-in as a source pool: `boxes.csv` (path + face box) and identities from truth.csv.

    Without truth.csv (real FFHQ has one face per identity) each image is its own identity.
    """
    boxes_csv = Path(boxes_csv)
    if not boxes_csv.exists():
        raise FileNotFoundError(f"{boxes_csv}: face box file not found")
    df = pd.read_csv(boxes_csv)
    need = ["path", *BOX_NAMES]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise RecipeError(f"{boxes_csv}: missing column(s) {missing}; has {list(df.columns)}")
    base = boxes_csv.parent.resolve()
    df["source_path"] = [str(base / p) for p in df["path"]]
    df["source_key"] = df["path"].astype(str)  # location-independent: seeds the edit (render_edit_set)
    if truth_csv is not None:
        truth = pd.read_csv(truth_csv, usecols=["path", "identity"])
        df = df.merge(truth, on="path", how="left", validate="one_to_one")
        if df["identity"].isna().any():
            raise RecipeError(f"{truth_csv}: no identity for {df.loc[df['identity'].isna(), 'path'].iloc[0]!r}")
    else:
        df["identity"] = df["path"]
    return df[["source_path", "source_key", "identity", *BOX_NAMES]]


def detect_pool(paths: Sequence[str], detector) -> tuple[pd.DataFrame, list[dict]]:
    """A source pool for real photos: dlib-detected boxes; images without a face are returned as skipped."""
    rows, skipped = [], []
    for p in tqdm(paths, desc="detect faces", mininterval=2.0):
        box = detector(load_array(p, "RGB"))
        if box is None:
            skipped.append({"source_path": p, "reason": "no face detected"})
            continue
        rows.append({"source_path": p, "identity": p, **dict(zip(BOX_NAMES, box))})
    pool = pd.DataFrame(rows, columns=["source_path", "identity", *BOX_NAMES])
    if len(pool):  # seeds follow the path below the photos' common folder, not where that folder is
        root = os.path.commonpath([str(Path(p).resolve().parent) for p in pool["source_path"]])
        pool.insert(1, "source_key", [os.path.relpath(Path(p).resolve(), root) for p in pool["source_path"]])
    else:
        pool.insert(1, "source_key", pd.Series(dtype=str))
    return pool, skipped
