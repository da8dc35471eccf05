"""Step 3 of pseudo-labeling: the selected images written as a labeled dataset.

`write_selection` writes ``OUT/images/<label>/<name>`` (copied by default; ``link`` = hardlink, symlink or none —
none points the manifest at the source files), ``OUT/manifest.csv`` with
``path,label,score,source_path,source,teacher,p_anger..p_surprise`` (+ the input's extra columns) and
``OUT/counts.json``.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from syntfer.core import labels as L
from syntfer.core.images import load_image, split_fragment
from syntfer.core.manifest import write_manifest
from syntfer.strategies.pseudolabel.scoring import PROB_COLUMNS, PseudolabelError
from syntfer.strategies.pseudolabel.selection import Selection
from syntfer.core.storage import atomic_path, save_image, write_json

LINK_MODES = ("copy", "hardlink", "symlink", "none")


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
