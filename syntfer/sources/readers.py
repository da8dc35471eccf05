"""Readers for FER datasets in their native on-disk formats (docs/method.md §2), producing manifests.

Every reader returns a `ReadResult` whose frame has columns ``path,label,split`` (absolute paths,
canonical labels, empty label for unlabeled images) plus format-specific extras. Bad input raises
`ReaderError` naming the file and line/row and what was expected — unless ``skip_bad=True``, in
which case each bad row is recorded in ``ReadResult.skipped`` (never dropped silently).

Formats
- ``rafdb``: ``EmoLabel/list_patition_label.txt`` (``train_00001.jpg 5``, RAF-DB 1-based codes) and
  ``Image/aligned/<stem>_aligned.jpg``; splits train/test by name prefix. The root may also be the folder
  holding the official download's ``basic/`` tree (``basic/EmoLabel/...`` + ``basic/Image/aligned/``).
- ``affectnet``: ``training.csv`` (split train) / ``validation.csv`` (split val) with face boxes; images
  under ``Manually_Annotated_Images/``. Paths carry the face box (``img.jpg#box=x,y,w,h``) so the loader
  crops it. Codes 7–10 are outside the 7-class space: they are excluded and counted in ``excluded``
  (with ``affectnet_classes=8`` code 7 is kept as 'contempt'). Community copies: a ``name label`` list
  file (``list_file=``, AffectNet codes) or class folders (use format ``folder``).
- ``fer2013``: ``fer2013.csv`` (``emotion,pixels,Usage``); splits train/val/test = Training/PublicTest/
  PrivateTest; each row's path is ``fer2013.csv#row=N``. Kaggle folders ``train/<class>/``, ``test/<class>/``
  are read when no CSV is present.
- ``folder``: ``<root>[/<split>]/<class>/*.{jpg,png,...}``; class names through the alias table.
- ``truth``: ``truth.csv`` (``path,expression,split`` + identity columns) of a procedural-world domain, read
  as labelled: a reference domain's renders with their true expression (the study's oracle sets — the perfect
  generator of a look). Identity columns ``id_gender,id_age,id_skin_tone`` come along as
  ``gender,age,skin_tone``.
- ``unlabeled``: every image below root (identity folders such as DigiFace/DCFace, or flat folders such
  as EmoNet-Face/FFHQ); ``identity`` = the image's folder relative to root ('' when flat). Files without an
  image suffix (a LICENSE.txt, the world's truth.csv) are listed in ``ignored``, never read; a root with no
  image at all raises.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from syntfer.core import labels as L
from syntfer.core.images import ImageError, box_path, csv_row_path, load_image, pixels_to_array, split_fragment
from syntfer.core.manifest import write_manifest

FORMATS = ("rafdb", "affectnet", "fer2013", "folder", "truth", "unlabeled")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
RAFDB_LABEL_FILE = Path("EmoLabel") / "list_patition_label.txt"
RAFDB_IMAGES = Path("Image") / "aligned"
RAFDB_NESTED = "basic"  # the official download nests the tree: basic/EmoLabel/..., basic/Image/aligned/
AFFECTNET_COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
                     "facial_landmarks", "expression", "valence", "arousal")
AFFECTNET_FILES = {"train": "training.csv", "val": "validation.csv"}
FER2013_USAGE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}


class ReaderError(ValueError):
    """Bad dataset input; the message names the file and line/row and what was expected."""


@dataclasses.dataclass
class ReadResult:
    """A manifest frame plus what was skipped (bad rows, with skip_bad), excluded (by design) or ignored (files
    below an unlabeled root that are not images)."""

    frame: pd.DataFrame
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    excluded: dict[str, int] = dataclasses.field(default_factory=dict)
    ignored: list[str] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        lines = [f"{len(self.frame)} images"]
        if "label" in self.frame.columns and (self.frame["label"] != "").any():
            counts = self.frame["label"].value_counts()
            lines.append("per class: " + ", ".join(f"{c} {int(counts.get(c, 0))}"
                                                   for c in (*L.CLASSES, L.CONTEMPT) if c in counts or c in L.CLASSES))
        for reason, n in sorted(self.excluded.items()):
            lines.append(f"excluded by design: {n} ({reason})")
        if self.ignored:
            lines.append(f"ignored {len(self.ignored)} file(s) that are not images, e.g. {self.ignored[0]}")
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} bad row(s):")
            lines += [f"  {where}: {why}" for where, why in self.skipped[:20]]
            if len(self.skipped) > 20:
                lines.append(f"  ... and {len(self.skipped) - 20} more")
        return "\n".join(lines)


class _Rows:
    """Collects rows; `bad()` raises or records according to skip_bad."""

    def __init__(self, skip_bad: bool):
        self.skip_bad = skip_bad
        self.rows: list[dict] = []
        self.skipped: list[tuple[str, str]] = []
        self.excluded: dict[str, int] = {}
        self.ignored: list[str] = []

    def bad(self, where: str, why: str) -> None:
        if not self.skip_bad:
            raise ReaderError(f"{where}: {why}")
        self.skipped.append((where, why))

    def exclude(self, reason: str) -> None:
        self.excluded[reason] = self.excluded.get(reason, 0) + 1

    def result(self, columns: Iterable[str] = ("path", "label", "split")) -> ReadResult:
        frame = pd.DataFrame(self.rows) if self.rows else pd.DataFrame(columns=list(columns))
        return ReadResult(frame.reset_index(drop=True), self.skipped, self.excluded, self.ignored)


def _numbered_lines(file: Path) -> Iterable[tuple[str, str]]:
    """(where, line) for every non-blank line of a text file; `where` is 'file line N' for error messages."""
    with open(file, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if line.strip():
                yield f"{file} line {lineno}", line


def _check_split(split: str | None, allowed: Iterable[str], fmt: str) -> None:
    allowed = tuple(allowed)
    if split is not None and split not in allowed:
        raise ReaderError(f"{fmt}: split {split!r} is not available; expected one of {allowed}")


# --- RAF-DB ---------------------------------------------------------------------------------
def read_rafdb(root: Path, split: str | None, rows: _Rows) -> None:
    _check_split(split, ("train", "test"), "rafdb")
    if not (root / RAFDB_LABEL_FILE).is_file() and (root / RAFDB_NESTED / RAFDB_LABEL_FILE).is_file():
        root = root / RAFDB_NESTED  # the official download's basic/ tree
    label_file = root / RAFDB_LABEL_FILE
    if not label_file.is_file():
        raise ReaderError(f"{label_file}: RAF-DB label file not found (expected <root>/{RAFDB_LABEL_FILE} and "
                          f"<root>/{RAFDB_IMAGES}/, or the official <root>/{RAFDB_NESTED}/{RAFDB_LABEL_FILE} tree)")
    if not (root / RAFDB_IMAGES).is_dir():
        raise ReaderError(f"{root / RAFDB_IMAGES}: RAF-DB image folder not found (expected the aligned images "
                          f"<stem>_aligned.jpg in <root>/{RAFDB_IMAGES}/, next to {RAFDB_LABEL_FILE})")
    for where, line in _numbered_lines(label_file):
        parts = line.split()
        if len(parts) != 2:
            rows.bad(where, f"expected 'train_00001.jpg <code 1..7>', got {line.strip()!r}")
            continue
        name, code = parts
        prefix = name.split("_", 1)[0]
        if prefix not in ("train", "test"):
            rows.bad(where, f"image name {name!r} does not start with train_ or test_")
            continue
        try:
            label = L.from_native("rafdb", code)
        except L.LabelError as e:
            rows.bad(where, str(e))
            continue
        if split is not None and prefix != split:
            continue
        stem = Path(name).stem
        image = root / RAFDB_IMAGES / f"{stem}_aligned.jpg"
        rows.rows.append({"path": str(image.resolve()), "label": label, "split": prefix,
                          "source": "rafdb", "_where": where})


# --- AffectNet ------------------------------------------------------------------------------
def _affectnet_label(code: str, where: str, rows: _Rows, classes: int) -> str | None:
    try:
        label = L.from_native("affectnet", code, keep_contempt=classes == 8)
    except L.LabelError as e:
        rows.bad(where, str(e))
        return None
    if label is None:
        rows.exclude(f"AffectNet code {int(code)} ({L.AFFECTNET_EXTRA[int(code)]}) outside the {classes}-class space")
    return label


def read_affectnet(root: Path, split: str | None, rows: _Rows, classes: int = 7,
                   list_file: str | None = None) -> None:
    if classes not in (7, 8):
        raise ReaderError(f"affectnet: classes must be 7 or 8, got {classes}")
    if list_file is not None:
        return _read_list_file(root, Path(list_file), split or "train", rows, classes)
    _check_split(split, AFFECTNET_FILES, "affectnet")
    for sp in ([split] if split else list(AFFECTNET_FILES)):
        csv = root / AFFECTNET_FILES[sp]
        if not csv.exists():
            raise ReaderError(f"{csv}: AffectNet annotation file not found (expected <root>/{AFFECTNET_FILES[sp]})")
        df = pd.read_csv(csv, dtype=str, keep_default_na=False)
        missing = [c for c in AFFECTNET_COLUMNS if c not in df.columns]
        if missing:
            raise ReaderError(f"{csv}: missing column(s) {missing}; expected {list(AFFECTNET_COLUMNS)}")
        images = root / "Manually_Annotated_Images"
        for i, rec in enumerate(df.itertuples(index=False)):
            where = f"{csv} row {i + 2}"
            label = _affectnet_label(rec.expression, where, rows, classes)
            if label is None:
                continue
            raw = [getattr(rec, k) for k in ("face_x", "face_y", "face_width", "face_height")]
            try:
                box = [int(float(v)) for v in raw]
            except ValueError:
                rows.bad(where, f"face_x/face_y/face_width/face_height must be numbers, got {raw}")
                continue
            if box[2] <= 0 or box[3] <= 0:
                rows.bad(where, f"face box {box} has non-positive width or height")
                continue
            image = (images / rec.subDirectory_filePath).resolve()
            rows.rows.append({"path": box_path(image, *box), "label": label, "split": sp, "source": "affectnet",
                              "valence": rec.valence, "arousal": rec.arousal, "_where": where})


def _read_list_file(root: Path, list_file: Path, split: str, rows: _Rows, classes: int) -> None:
    lf = list_file if list_file.is_absolute() else root / list_file
    if not lf.exists():
        raise ReaderError(f"{lf}: list file not found")
    for where, line in _numbered_lines(lf):
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2:
            rows.bad(where, f"expected '<relative/path.jpg> <AffectNet code>', got {line.strip()!r}")
            continue
        label = _affectnet_label(parts[1], where, rows, classes)
        if label is None:
            continue
        rows.rows.append({"path": str((root / parts[0]).resolve()), "label": label, "split": split,
                          "source": "affectnet", "_where": where})


# --- FER2013 --------------------------------------------------------------------------------
def read_fer2013(root: Path, split: str | None, rows: _Rows) -> None:
    csv = root / "fer2013.csv"
    if not csv.exists():
        if (root / "train").is_dir() or (root / "test").is_dir():
            _check_split(split, ("train", "test"), "fer2013 (Kaggle folders)")
            for sp in ([split] if split else ["train", "test"]):
                read_folder(root / sp, None, rows, split_name=sp, source="fer2013")
            return
        raise ReaderError(f"{csv}: not found, and no Kaggle train/ or test/ folders under {root}")
    _check_split(split, FER2013_USAGE, "fer2013")
    df = pd.read_csv(csv, dtype=str, keep_default_na=False)
    missing = [c for c in ("emotion", "pixels", "Usage") if c not in df.columns]
    if missing:
        raise ReaderError(f"{csv}: missing column(s) {missing}; expected emotion, pixels, Usage "
                          f"(Kaggle's fer2013.csv header), has {list(df.columns)}")
    usage_to_split = {v: k for k, v in FER2013_USAGE.items()}
    csv_abs = csv.resolve()
    for i, (code, pixels, usage) in enumerate(zip(df["emotion"], df["pixels"], df["Usage"])):
        where = f"{csv} line {i + 2}"
        if usage not in usage_to_split:
            rows.bad(where, f"Usage {usage!r} is not one of {list(usage_to_split)}")
            continue
        sp = usage_to_split[usage]
        if split is not None and sp != split:
            continue
        try:
            label = L.from_native("fer2013", code)
            pixels_to_array(pixels, where=where)
        except (L.LabelError, ImageError) as e:
            rows.bad(where, str(e).removeprefix(f"{where}: "))
            continue
        rows.rows.append({"path": csv_row_path(csv_abs, i), "label": label, "split": sp, "source": "fer2013",
                          "_where": where, "_decoded": True})


# --- class folders and unlabeled collections ------------------------------------------------
def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_folder(root: Path, split: str | None, rows: _Rows, split_name: str | None = None,
                source: str = "folder") -> None:
    base = root / split if split else root
    if not base.is_dir():
        raise ReaderError(f"{base}: class-folder root not found")
    for sub in sorted(p for p in base.iterdir() if p.is_dir()):
        try:
            label = L.canonical(sub.name)
        except L.LabelError as e:
            rows.bad(str(sub), f"folder name is not an expression class ({e})")
            continue
        for image in _images_in(sub):
            rows.rows.append({"path": str(image.resolve()), "label": label, "split": split_name or split or "",
                              "source": source, "_where": str(image)})


def read_unlabeled(root: Path, split: str | None, rows: _Rows) -> None:
    if not root.is_dir():
        raise ReaderError(f"{root}: image folder not found")
    source = root.name
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        d = Path(dirpath)
        identity = "" if d == root else str(d.relative_to(root))
        for f in sorted(filenames):
            p = d / f
            if p.suffix.lower() not in IMAGE_SUFFIXES:  # not a candidate image: listed, never read
                rows.ignored.append(str(p))
                continue
            rows.rows.append({"path": str(p.resolve()), "label": "", "split": split or "",
                              "source": source, "identity": identity, "_where": str(p)})
    if not rows.rows:
        found = f"{len(rows.ignored)} other file(s), e.g. {rows.ignored[0]}" if rows.ignored else "nothing"
        raise ReaderError(f"{root}: no image files below it (expected {', '.join(IMAGE_SUFFIXES)} files, flat or "
                          f"in identity folders; found {found})")


TRUTH_COLUMNS = ("path", "expression", "split")


def read_truth(root: Path, split: str | None, rows: _Rows) -> None:
    file = root / "truth.csv"
    if not file.is_file():
        raise ReaderError(f"{file}: no truth file (format 'truth' reads a procedural-world domain's truth.csv)")
    t = pd.read_csv(file, keep_default_na=False, dtype=str)
    missing = [c for c in TRUTH_COLUMNS if c not in t.columns]
    if missing:
        raise ReaderError(f"{file}: lacks column(s) {missing}; has {list(t.columns)}")
    if split:
        t = t[t["split"] == split]
        if t.empty:
            raise ReaderError(f"{file}: no rows with split {split!r}")
    extra = {"id_gender": "gender", "id_age": "age", "id_skin_tone": "skin_tone"}
    for i, r in enumerate(t.to_dict("records")):
        where = f"{file} row {i + 2}"
        try:
            label = L.canonical(r["expression"])
        except L.LabelError as e:
            rows.bad(where, f"expression is not a class ({e})")
            continue
        rows.rows.append({"path": str((root / r["path"]).resolve()), "label": label, "split": r["split"],
                          "source": root.name, **{v: r[k] for k, v in extra.items() if k in r}, "_where": where})


LAYOUTS: dict[str, str] = {  # what each format's root holds, for messages
    "rafdb": f"{RAFDB_LABEL_FILE} + {RAFDB_IMAGES}/, or {RAFDB_NESTED}/{RAFDB_LABEL_FILE} + {RAFDB_NESTED}/{RAFDB_IMAGES}/",
    "affectnet": "training.csv, validation.csv, Manually_Annotated_Images/",
    "fer2013": "fer2013.csv, or Kaggle train/ and test/ class folders",
    "folder": "<class>/ folders of images (optionally under <split>/)",
    "truth": "truth.csv and the images it lists",
    "unlabeled": "images, flat or in identity folders",
}
READERS: dict[str, Callable[..., None]] = {
    "rafdb": read_rafdb, "affectnet": read_affectnet, "fer2013": read_fer2013,
    "folder": read_folder, "truth": read_truth, "unlabeled": read_unlabeled,
}


def _verify_images(rows: _Rows, check: str, workers: int) -> None:
    """Check every row's image (existence, or a full decode) and apply the bad-row policy."""
    if check == "none":
        return
    if check not in ("exists", "decode"):
        raise ReaderError(f"check must be 'decode', 'exists' or 'none', got {check!r}")

    def probe(row: dict) -> str | None:
        if row.get("_decoded"):
            return None
        if check == "exists":
            file = row["path"].split("#", 1)[0]
            return None if os.path.isfile(file) else f"image file not found: {file}"
        try:
            load_image(row["path"])
        except ImageError as e:
            return str(e)
        return None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        problems = list(pool.map(probe, rows.rows))
    # a folder row's `where` is its image, which the problem already names first
    bad = [(row, problem.removeprefix(f"{row['_where']}: ")) for row, problem in zip(rows.rows, problems)
           if problem is not None]
    if bad and not rows.skip_bad:
        row, problem = bad[0]
        missing = sum(not os.path.isfile(split_fragment(r["path"])[0]) for r, _ in bad)
        raise ReaderError(f"{row['_where']}: {problem} ({missing} of the {len(rows.rows)} listed images are missing"
                          f", {len(bad) - missing} unreadable; --skip-bad skips and lists them)")
    for row, problem in bad:
        rows.bad(row["_where"], problem)
    rows.rows = [row for row, problem in zip(rows.rows, problems) if problem is None]


def read_dataset(fmt: str, root: str | os.PathLike, split: str | None = None, *, skip_bad: bool = False,
                 check: str = "decode", workers: int = 4, **options) -> ReadResult:
    """Read a dataset in native format `fmt` (one of FORMATS) into a manifest frame.

    `check` = 'decode' (load every image fully: catches truncated files), 'exists' or 'none'.
    Options: ``classes`` (7|8) and ``list_file`` for affectnet.
    """
    if fmt not in READERS:
        raise ReaderError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    root = Path(root)
    if not root.exists():
        raise ReaderError(f"{root}: dataset root not found (expected the {fmt} folder: {LAYOUTS[fmt]})")
    rows = _Rows(skip_bad)
    READERS[fmt](root, split, rows, **options)
    _verify_images(rows, check, workers)
    result = rows.result()
    result.frame = result.frame.drop(columns=[c for c in result.frame.columns if c.startswith("_")])
    return result


# --- CLI: syntfer manifest ------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--root", required=True, type=Path, help="dataset root folder")
    parser.add_argument("--split", default=None, help="train|val|test (what the format has); default all")
    parser.add_argument("--out", required=True, type=Path, help="manifest CSV to write")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip bad rows (counted and listed) instead of stopping at the first")
    parser.add_argument("--check", default="decode", choices=("decode", "exists", "none"),
                        help="how to check images (default: decode every image fully)")
    parser.add_argument("--affectnet-classes", type=int, default=7, choices=(7, 8))
    parser.add_argument("--list-file", default=None, help="affectnet: a 'path code' list file instead of the CSVs")


def run(args: argparse.Namespace) -> int:
    options = {}
    if args.format == "affectnet":
        options = {"classes": args.affectnet_classes, "list_file": args.list_file}
    try:
        result = read_dataset(args.format, args.root, args.split, skip_bad=args.skip_bad, check=args.check,
                              **options)
    except (ReaderError, ImageError) as e:
        print(f"syntfer manifest: error: {e}", file=sys.stderr)
        return 1
    write_manifest(result.frame, args.out)
    print(f"wrote {args.out}: {result.summary()}")
    return 0
