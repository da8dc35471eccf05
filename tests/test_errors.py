"""Every bad input the readers, the image loader, manifests and the CLIs reject, and what the message says.

One table: each case builds a small bad input, runs it, and requires the error message to name where the
problem is (file, line or row) and what was wrong (the offending value). `test_every_raise_has_a_case` reads
the sources and fails when a `raise` (or a reader's bad-row report) in readers.py, images.py, manifest.py or
a CLI entry point has no case here, so a new error path arrives with its test.
"""
from __future__ import annotations

import ast
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from faults import TALLY
from syntfer import cli
from syntfer.core.images import ImageError, load_image, pixels_to_array
from syntfer.core.manifest import ManifestError, read_manifest, write_manifest
from syntfer.sources.readers import ReaderError, read_dataset

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class Case:
    """A bad input: `run(tmp)` returns the error text; `expect(tmp)` the fragments it must contain.
    `covers`: the (module, function, source snippet) of the raise statements it exercises."""

    id: str
    covers: list[tuple[str, str, str]]
    run: Callable[[Path], str]
    expect: Callable[[Path], list[str]]


def _error(kind: type[BaseException], fn: Callable[[], object]) -> str:
    """The message of the error `fn` raises, which must be a `kind` (exactly that class or a subclass)."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - any other type is a failure that names it
        assert isinstance(e, kind), f"expected {kind.__name__}, got {type(e).__name__}: {e}"
        return str(e)
    except SystemExit as e:
        assert issubclass(kind, SystemExit), f"expected {kind.__name__}, got SystemExit: {e}"
        return str(e)
    raise AssertionError(f"no error raised (expected {kind.__name__})")


def _cli(args: list[str], capsys, code: int = 1) -> str:
    """Run the command in-process; exit status 1 means one error line on stderr and nothing else there."""
    rc = cli.main([str(a) for a in args])
    out = capsys.readouterr()
    assert rc == code, (rc, out.out, out.err)
    if code == 1:
        lines = out.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"syntfer {args[0]}: error: "), out.err
    return out.out + out.err


# --------------------------------------------------------------------------- small valid datasets to break
def _jpg(path: Path, size: int = 20) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), 120, np.uint8)).save(path)
    return path


def rafdb(tmp: Path, lines: list[str]) -> Path:
    root = tmp / "rafdb"
    for name in ("train_00001", "train_00002", "test_00001"):
        _jpg(root / "Image" / "aligned" / f"{name}_aligned.jpg")
    (root / "EmoLabel").mkdir(parents=True, exist_ok=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(["train_00001.jpg 4", *lines]) + "\n")
    return root


def lf(tmp: Path) -> Path:
    return tmp / "rafdb" / "EmoLabel" / "list_patition_label.txt"


def affectnet(tmp: Path, **second_row) -> Path:
    root = tmp / "affectnet"
    _jpg(root / "Manually_Annotated_Images" / "1" / "a.jpg", 40)
    good = {"subDirectory_filePath": "1/a.jpg", "face_x": 2, "face_y": 2, "face_width": 30, "face_height": 30,
            "facial_landmarks": "", "expression": 1, "valence": 0.5, "arousal": 0.1}
    pd.DataFrame([good, {**good, **second_row}]).to_csv(root / "training.csv", index=False)
    return root


def fer(tmp: Path, row: dict | None = None, drop: str | None = None) -> Path:
    root = tmp / "fer2013"
    root.mkdir(parents=True, exist_ok=True)
    good = {"emotion": 3, "pixels": " ".join(["7"] * 16), "Usage": "Training"}
    df = pd.DataFrame([good, {**good, **(row or {})}])
    df.drop(columns=[drop] if drop else []).to_csv(root / "fer2013.csv", index=False)
    return root


def _truth(tmp: Path, drop: str | None = None, expression: str = "happy") -> Path:
    """A procedural-world domain folder: one image and its truth.csv (`drop` leaves a column out)."""
    root = tmp / "w"
    _jpg(root / "images" / "0.jpg")
    row = {"path": "images/0.jpg", "expression": expression, "split": "train"}
    pd.DataFrame([row]).drop(columns=[drop] if drop else []).to_csv(root / "truth.csv", index=False)
    return root


def _json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj))
    return path


def manifest(tmp: Path, text: str) -> Path:
    (tmp / "m.csv").write_text(text)
    return tmp / "m.csv"


R, I, M = "readers", "images", "manifest"
CASES: list[Case] = [
    # --- readers: RAF-DB
    Case("rafdb-bad-line", [(R, "bad", "{where}: {why}"), (R, "read_rafdb", "expected 'train_00001.jpg")],
         lambda t: _error(ReaderError, lambda: read_dataset("rafdb", rafdb(t, ["train_00002.jpg"]))),
         lambda t: [f"{lf(t)} line 2", "'train_00002.jpg'"]),
    Case("rafdb-bad-prefix", [(R, "read_rafdb", "does not start with train_")],
         lambda t: _error(ReaderError, lambda: read_dataset("rafdb", rafdb(t, ["val_00001.jpg 3"]))),
         lambda t: [f"{lf(t)} line 2", "'val_00001.jpg'"]),
    Case("rafdb-bad-code", [(R, "read_rafdb", "str(e)")],
         lambda t: _error(ReaderError, lambda: read_dataset("rafdb", rafdb(t, ["train_00002.jpg 9"]))),
         lambda t: [f"{lf(t)} line 2", "code 9"]),
    Case("rafdb-wrong-split", [(R, "_check_split", "is not available")],
         lambda t: _error(ReaderError, lambda: read_dataset("rafdb", rafdb(t, []), "val")),
         lambda t: ["rafdb", "'val'", "'train', 'test'"]),
    Case("rafdb-no-label-file", [(R, "read_rafdb", "RAF-DB label file not found")],
         lambda t: _error(ReaderError, lambda: (t / "empty").mkdir() or read_dataset("rafdb", t / "empty")),
         lambda t: [str(t / "empty" / "EmoLabel" / "list_patition_label.txt"), "not found"]),
    Case("rafdb-no-image-folder", [(R, "read_rafdb", "RAF-DB image folder not found")],
         lambda t: _error(ReaderError, lambda: [__import__("shutil").rmtree(rafdb(t, []) / "Image"),
                                   read_dataset("rafdb", t / "rafdb")]),
         lambda t: [str(t / "rafdb" / "Image" / "aligned"), "not found", "_aligned.jpg"]),
    Case("rafdb-missing-image", [(R, "_verify_images", "row[\"_where\"]"),
                                 (R, "_verify_images", "listed images are missing")],
         lambda t: _error(ReaderError, lambda: read_dataset("rafdb", rafdb(t, ["train_00003.jpg 2"]), check="exists")),
         lambda t: [f"{lf(t)} line 2", str(t / "rafdb" / "Image" / "aligned" / "train_00003_aligned.jpg"),
                    "1 of the 2 listed images are missing"]),
    Case("rafdb-truncated-image", [(R, "_verify_images", "row[\"_where\"]")],
         lambda t: _error(ReaderError, lambda: [(rafdb(t, ["train_00002.jpg 2"]) / "Image/aligned/train_00002_aligned.jpg")
                                   .write_bytes(b"\xff\xd8\xff\xe0 truncated"), read_dataset("rafdb", t / "rafdb")]),
         lambda t: [f"{lf(t)} line 2", "train_00002_aligned.jpg", "unreadable or truncated"]),
    # --- readers: AffectNet
    Case("affectnet-bad-code", [(R, "_affectnet_label", "str(e)")],
         lambda t: _error(ReaderError, lambda: read_dataset("affectnet", affectnet(t, expression="x"), "train")),
         lambda t: [f"{t / 'affectnet' / 'training.csv'} row 3", "'x'"]),
    Case("affectnet-box-not-numbers", [(R, "read_affectnet", "must be numbers")],
         lambda t: _error(ReaderError, lambda: read_dataset("affectnet", affectnet(t, face_x="left"), "train")),
         lambda t: [f"{t / 'affectnet' / 'training.csv'} row 3", "'left'"]),
    Case("affectnet-box-empty", [(R, "read_affectnet", "non-positive width or height")],
         lambda t: _error(ReaderError, lambda: read_dataset("affectnet", affectnet(t, face_width=0), "train")),
         lambda t: [f"{t / 'affectnet' / 'training.csv'} row 3", "[2, 2, 0, 30]"]),
    Case("affectnet-missing-csv", [(R, "read_affectnet", "AffectNet annotation file not found")],
         lambda t: _error(ReaderError, lambda: read_dataset("affectnet", affectnet(t), "val")),
         lambda t: [str(t / "affectnet" / "validation.csv"), "not found"]),
    Case("affectnet-missing-column", [(R, "read_affectnet", "missing column(s)")],
         lambda t: _error(ReaderError, lambda: [pd.read_csv(affectnet(t) / "training.csv").drop(columns="arousal")
                                   .to_csv(t / "affectnet" / "training.csv", index=False),
                                   read_dataset("affectnet", t / "affectnet", "train")]),
         lambda t: [str(t / "affectnet" / "training.csv"), "['arousal']"]),
    Case("affectnet-classes", [(R, "read_affectnet", "classes must be 7 or 8")],
         lambda t: _error(ReaderError, lambda: read_dataset("affectnet", affectnet(t), "train", classes=6)),
         lambda t: ["classes must be 7 or 8", "got 6"]),
    Case("affectnet-wrong-split", [(R, "_check_split", "is not available")],
         lambda t: _error(ReaderError, lambda: read_dataset("affectnet", affectnet(t), "test")),
         lambda t: ["affectnet", "'test'"]),
    Case("affectnet-list-file-missing", [(R, "_read_list_file", "list file not found")],
         lambda t: _error(ReaderError, lambda: read_dataset("affectnet", affectnet(t), list_file="labels.txt")),
         lambda t: [str(t / "affectnet" / "labels.txt"), "not found"]),
    Case("affectnet-list-file-bad-line", [(R, "_read_list_file", "expected '<relative/path.jpg>")],
         lambda t: _error(ReaderError, lambda: [(affectnet(t) / "labels.txt").write_text("1/a.jpg 1\nonly_a_path\n"),
                                   read_dataset("affectnet", t / "affectnet", list_file="labels.txt")]),
         lambda t: [f"{t / 'affectnet' / 'labels.txt'} line 2", "'only_a_path'"]),
    Case("affectnet-list-file-bad-code", [(R, "_affectnet_label", "str(e)")],
         lambda t: _error(ReaderError, lambda: [(affectnet(t) / "labels.txt").write_text("1/a.jpg 11\n"),
                                   read_dataset("affectnet", t / "affectnet", list_file="labels.txt")]),
         lambda t: [f"{t / 'affectnet' / 'labels.txt'} line 1", "11"]),
    # --- readers: FER2013
    Case("fer-bad-usage", [(R, "read_fer2013", "is not one of")],
         lambda t: _error(ReaderError, lambda: read_dataset("fer2013", fer(t, {"Usage": "Train"}))),
         lambda t: [f"{t / 'fer2013' / 'fer2013.csv'} line 3", "'Train'"]),
    Case("fer-bad-emotion", [(R, "read_fer2013", "removeprefix")],
         lambda t: _error(ReaderError, lambda: read_dataset("fer2013", fer(t, {"emotion": 7}))),
         lambda t: [f"{t / 'fer2013' / 'fer2013.csv'} line 3", "code 7"]),
    Case("fer-pixels-not-integers",
         [(R, "read_fer2013", "removeprefix"), (I, "pixels_to_array", "not space-separated")],
         lambda t: _error(ReaderError, lambda: read_dataset("fer2013", fer(t, {"pixels": "1 2 3 x"}))),
         lambda t: [f"{t / 'fer2013' / 'fer2013.csv'} line 3", "'x'"]),
    Case("fer-pixels-not-square", [(I, "pixels_to_array", "square count")],
         lambda t: _error(ReaderError, lambda: read_dataset("fer2013", fer(t, {"pixels": "1 2 3"}))),
         lambda t: [f"{t / 'fer2013' / 'fer2013.csv'} line 3", "3 values"]),
    Case("fer-pixels-out-of-range", [(I, "pixels_to_array", "outside 0..255")],
         lambda t: _error(ReaderError, lambda: read_dataset("fer2013", fer(t, {"pixels": "1 2 3 300"}))),
         lambda t: [f"{t / 'fer2013' / 'fer2013.csv'} line 3", "max 300"]),
    Case("fer-missing-column", [(R, "read_fer2013", "missing column(s)")],
         lambda t: _error(ReaderError, lambda: read_dataset("fer2013", fer(t, drop="Usage"))),
         lambda t: [str(t / "fer2013" / "fer2013.csv"), "['Usage']"]),
    Case("fer-missing-csv", [(R, "read_fer2013", "no Kaggle train/ or test/ folders")],
         lambda t: _error(ReaderError, lambda: (t / "fer").mkdir() or read_dataset("fer2013", t / "fer")),
         lambda t: [str(t / "fer" / "fer2013.csv"), "not found"]),
    Case("fer-wrong-split", [(R, "_check_split", "is not available")],
         lambda t: _error(ReaderError, lambda: read_dataset("fer2013", fer(t), "dev")),
         lambda t: ["fer2013", "'dev'", "'val'"]),
    # --- readers: folders, unlabeled, dispatch
    Case("folder-not-a-class", [(R, "read_folder", "folder name is not an expression class")],
         lambda t: _error(ReaderError, lambda: _jpg(t / "f" / "smiling" / "a.jpg") and read_dataset("folder", t / "f")),
         lambda t: [str(t / "f" / "smiling"), "'smiling'"]),
    Case("folder-no-split-folder", [(R, "read_folder", "class-folder root not found")],
         lambda t: _error(ReaderError, lambda: _jpg(t / "f" / "happy" / "a.jpg") and read_dataset("folder", t / "f", "train")),
         lambda t: [str(t / "f" / "train"), "not found"]),
    Case("unlabeled-root-is-a-file", [(R, "read_unlabeled", "image folder not found")],
         lambda t: _error(ReaderError, lambda: read_dataset("unlabeled", _jpg(t / "one.jpg"))),
         lambda t: [str(t / "one.jpg"), "not found"]),
    Case("unlabeled-no-images", [(R, "read_unlabeled", "no image files below it")],
         lambda t: _error(ReaderError, lambda: [(t / "u").mkdir(), (t / "u" / "notes.txt").write_text("x"),
                                   read_dataset("unlabeled", t / "u")]),
         lambda t: [str(t / "u"), "no image files", str(t / "u" / "notes.txt")]),
    Case("truth-no-file", [(R, "read_truth", "no truth file")],
         lambda t: _error(ReaderError, lambda: (t / "w").mkdir() or read_dataset("truth", t / "w")),
         lambda t: [str(t / "w" / "truth.csv"), "no truth file"]),
    Case("truth-no-expression", [(R, "read_truth", "lacks column(s)")],
         lambda t: _error(ReaderError, lambda: _truth(t, drop="expression") and read_dataset("truth", t / "w")),
         lambda t: [str(t / "w" / "truth.csv"), "['expression']"]),
    Case("truth-no-split", [(R, "read_truth", "no rows with split")],
         lambda t: _error(ReaderError, lambda: _truth(t) and read_dataset("truth", t / "w", "val")),
         lambda t: [str(t / "w" / "truth.csv"), "'val'"]),
    Case("truth-bad-expression", [(R, "read_truth", "expression is not a class")],
         lambda t: _error(ReaderError, lambda: _truth(t, expression="smirk") and read_dataset("truth", t / "w")),
         lambda t: [f"{t / 'w' / 'truth.csv'} row 2", "'smirk'"]),
    Case("bad-check", [(R, "_verify_images", "check must be")],
         lambda t: _error(ReaderError, lambda: read_dataset("rafdb", rafdb(t, []), check="full")),
         lambda t: ["'full'", "'decode', 'exists' or 'none'"]),
    Case("unknown-format", [(R, "read_dataset", "unknown format")],
         lambda t: _error(ReaderError, lambda: read_dataset("kdef", t)),
         lambda t: ["'kdef'", "rafdb"]),
    Case("missing-root", [(R, "read_dataset", "dataset root not found")],
         lambda t: _error(ReaderError, lambda: read_dataset("rafdb", t / "nowhere")),
         lambda t: [str(t / "nowhere"), "not found"]),
    # --- the image loader
    Case("row-fragment-not-int", [(I, "split_csv_row", "is not an integer")],
         lambda t: _error(ImageError, lambda: load_image(f"{t}/f.csv#row=two")),
         lambda t: [f"{t}/f.csv#row=two", "'two'"]),
    Case("box-fragment-not-four-ints", [(I, "split_box", "is not four integers")],
         lambda t: _error(ImageError, lambda: load_image(f"{t}/a.jpg#box=1,2,3")),
         lambda t: [f"{t}/a.jpg#box=1,2,3", "'1,2,3'"]),
    Case("box-fragment-empty", [(I, "split_box", "must be positive")],
         lambda t: _error(ImageError, lambda: load_image(f"{t}/a.jpg#box=1,2,0,5")),
         lambda t: [f"{t}/a.jpg#box=1,2,0,5", "0x5"]),
    Case("box-outside-image", [(I, "load_image", "lies outside the")],
         lambda t: _error(ImageError, lambda: load_image(f"{_jpg(t / 'a.jpg')}#box=30,30,5,5")),
         lambda t: [str(t / "a.jpg"), "(30, 30, 5, 5)", "20x20"]),
    Case("row-csv-missing", [(I, "load_image", "CSV file not found")],
         lambda t: _error(ImageError, lambda: load_image(f"{t}/none.csv#row=0")),
         lambda t: [str(t / "none.csv"), "not found"]),
    Case("row-csv-no-pixels", [(I, "load_image", "cannot read a 'pixels' column")],
         lambda t: _error(ImageError, lambda: [(t / "p.csv").write_text("a,b\n1,2\n"), load_image(f"{t}/p.csv#row=0")]),
         lambda t: [str(t / "p.csv"), "'pixels'"]),
    Case("row-out-of-range", [(I, "load_image", "out of range")],
         lambda t: _error(ImageError, lambda: load_image(f"{fer(t) / 'fer2013.csv'}#row=5")),
         lambda t: [str(t / "fer2013" / "fer2013.csv"), "row 5", "2 data rows"]),
    Case("image-missing", [(I, "load_image", "image file not found")],
         lambda t: _error(ImageError, lambda: load_image(t / "gone.png")),
         lambda t: [str(t / "gone.png"), "not found"]),
    Case("image-unreadable", [(I, "load_image", "unreadable or truncated image")],
         lambda t: _error(ImageError, lambda: [(t / "x.png").write_bytes(b"not an image"), load_image(t / "x.png")]),
         lambda t: [str(t / "x.png"), "unreadable or truncated"]),
    Case("pixels-direct", [(I, "pixels_to_array", "not space-separated")],
         lambda t: _error(ImageError, lambda: pixels_to_array("1 2 3 -", where="my.csv line 9")),
         lambda t: ["my.csv line 9", "'-'"]),
    # --- manifests
    Case("manifest-missing", [(M, "read_manifest", "manifest not found")],
         lambda t: _error(ManifestError, lambda: read_manifest(t / "none.csv")),
         lambda t: [str(t / "none.csv"), "not found"]),
    Case("manifest-missing-column", [(M, "read_manifest", "missing column(s)")],
         lambda t: _error(ManifestError, lambda: read_manifest(manifest(t, "path\na.png\n"), required=("path", "label"))),
         lambda t: [str(t / "m.csv"), "['label']"]),
    Case("manifest-empty-path", [(M, "read_manifest", "empty path")],
         lambda t: _error(ManifestError, lambda: read_manifest(manifest(t, "path,label\na.png,happy\n,sad\n"))),
         lambda t: [f"{t / 'm.csv'} line 3", "empty path"]),
    Case("manifest-bad-label", [(M, "read_manifest", "is not a canonical class")],
         lambda t: _error(ManifestError, lambda: read_manifest(manifest(t, "path,label\na.png,angry\n"))),
         lambda t: [f"{t / 'm.csv'} line 2", "'angry'"]),
    Case("manifest-write-without-path", [(M, "write_manifest", "refusing to write")],
         lambda t: _error(ManifestError, lambda: write_manifest(pd.DataFrame({"file": ["a.png"]}), t / "w.csv")),
         lambda t: [str(t / "w.csv"), "'path'"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_named_in_the_error(tmp_path, case):
    message = case.run(tmp_path)
    missing = [f for f in case.expect(tmp_path) if f not in message]
    assert not missing, f"{case.id}: {message!r} does not name {missing}"
    TALLY["bad inputs tried"] += 1


# --------------------------------------------------------------------------- the command line
def _tiny_checkpoint(tmp: Path) -> Path:
    import torch

    from syntfer.engine.models import create_model
    from syntfer.engine.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    return save_checkpoint(create_model("cnn_tiny", img_size=16), tmp / "ckpt")


def _tiny_editor(tmp: Path) -> Path:
    from syntfer.strategies.gan.networks import EditorConfig, Generator, save_generator

    save_generator(tmp / "editor", Generator(EditorConfig(image_size=16, conv_dim=4, repeat_num=1)), {"step": 0})
    return tmp / "editor"


def _good_manifest(tmp: Path) -> Path:
    return write_manifest(pd.DataFrame({"path": [str(_jpg(tmp / "i" / "a.jpg"))], "label": ["happy"]}),
                          tmp / "good.csv")


CLI_CASES: list[Case] = [
    Case("cli-unknown-command", [("cli", "main", "unknown command")],
         lambda t, c: _cli(["annotate"], c, code=2), lambda t: ["'annotate'", "manifest"]),
    Case("cli-manifest-bad-row", [("readers", "run", "syntfer manifest: error")],
         lambda t, c: _cli(["manifest", "--format", "rafdb", "--root", rafdb(t, ["train_00002.jpg 9"]),
                            "--out", t / "o.csv"], c),
         lambda t: ["syntfer manifest: error", f"{lf(t)} line 2", "code 9"]),
    Case("cli-manifest-skip-bad-lists-every-row", [],
         lambda t, c: _cli(["manifest", "--format", "rafdb", "--root", rafdb(t, ["train_00002.jpg 9", "x.jpg 1"]),
                            "--out", t / "o.csv", "--skip-bad"], c, code=0),
         lambda t: ["skipped 2 bad row(s)", f"{lf(t)} line 2", f"{lf(t)} line 3", "'x.jpg'"]),
    Case("cli-pseudolabel-threshold", [("pseudolabel.cli", "run", "syntfer pseudolabel: error")],
         lambda t, c: _cli(["pseudolabel", "--teacher", t, "--images", _good_manifest(t), "--out", t / "o",
                            "--threshold", "1.5"], c),
         lambda t: ["syntfer pseudolabel: error", "threshold 1.5"]),
    Case("cli-notebook-unknown-parameter", [("notebook", "run", "syntfer notebook: error")],
         lambda t, c: _cli(["notebook", ROOT / "notebooks" / "08_report.py", "--out", t / "nb", "-p", "colour", "red"],
                           c),
         lambda t: ["syntfer notebook: error", "['colour']", "08_report.py"]),
    Case("cli-notebook-param-twice", [("notebook", "run", "given both by -p and by -P")],
         lambda t, c: _cli(["notebook", ROOT / "notebooks" / "02_baseline.py", "--out", t / "nb", "-p", "seeds", "[0]",
                            "-P", "seeds", "train.seeds"], c),
         lambda t: ["syntfer notebook: error", "'seeds'", "train.seeds"]),
    Case("cli-train-config-unknown-field", [("training", "run", "unknown TrainConfig field(s)")],
         lambda t, c: _cli(["train", "--train", str(_good_manifest(t)), "--out", str(t / "o"),
                                               "--config", str(_json(t / "cfg.json", {"colour": "red"}))], c),
         lambda t: [str(t / "cfg.json"), "['colour']"]),
    Case("cli-train-config-other-recipe", [("training", "run", "contradicts")],
         lambda t, c: _cli(["train", "--train", str(_good_manifest(t)), "--out", str(t / "o"),
                                               "--recipe", "poster",
                                               "--config", str(_json(t / "cfg.json", {"recipe": "fast"}))], c),
         lambda t: ["--recipe poster", str(t / "cfg.json"), "'fast'"]),
    Case("cli-train-model-kwargs", [],  # raised by syntfer.engine.models.model_options (tests/test_model_options.py)
         lambda t, c: _cli(["train", "--train", str(_good_manifest(t)), "--out", str(t / "o"),
                                               "--model-kwargs", "[16]"], c),
         lambda t: ["--model-kwargs", "'[16]'", "not a JSON object"]),
    Case("cli-train-model-kwargs-other-model", [],
         lambda t, c: _cli(["train", "--train", str(_good_manifest(t)), "--out", str(t / "o"), "--model", "ir50",
                            "--model-kwargs", '{"img_size": 48, "head": "flatten"}'], c),
         lambda t: ["--model-kwargs", "model 'ir50'", "['head']"]),
    Case("cli-mix-no-sources", [("mixing", "run", "no sources")],
         lambda t, c: _cli(["mix", "--out", str(t / "o")], c), lambda t: ["--source", "--sets"]),
    Case("cli-mix-bad-spec", [("mixing", "_spec", "expected NAME=MANIFEST_OR_FOLDER")],
         lambda t, c: _cli(["mix", "--source", "gan_f", "--out", str(t / "o")], c),
         lambda t: ["NAME=MANIFEST_OR_FOLDER", "'gan_f'"]),
    Case("cli-mix-twice", [("mixing", "run", "given twice")],
         lambda t, c: _cli(["mix", "--source", f"gan_f={_good_manifest(t)}",
                                               "--source", f"gan_f={t / 'good.csv'}", "--out", str(t / "o")], c),
         lambda t: ["given twice", "gan_f="]),
    Case("cli-mix-whole-two", [("mixing", "run", "--whole copies exactly one source")],
         lambda t, c: _cli(["mix", "--whole", "--source", f"gan_f={_good_manifest(t)}",
                                               "--source", f"gan_v={t / 'good.csv'}", "--out", str(t / "o")], c),
         lambda t: ["--whole", "got 2"]),
    Case("cli-mix-n-total-two", [("mixing", "run", "--n-total draws one source")],
         lambda t, c: _cli(["mix", "--n-total", "7", "--source", f"gan_f={_good_manifest(t)}",
                                               "--source", f"gan_v={t / 'good.csv'}", "--out", str(t / "o")], c),
         lambda t: ["--n-total", "got 2"]),
    Case("cli-mix-real-two", [("mixing", "run", "--real builds one hybrid")],
         lambda t, c: _cli(["mix", "--real", f"real_rafdb={_good_manifest(t)}",
                                               "--source", f"gan_f={t / 'good.csv'}",
                                               "--source", f"gan_v={t / 'good.csv'}", "--out", str(t / "o")], c),
         lambda t: ["--real", "got 2"]),
    Case("cli-audit-bad-spec", [("audit", "run", "expected NAME=MANIFEST")],
         lambda t, c: _cli(["audit", "--set", "gan_f", "--out", str(t / "o")], c),
         lambda t: ["NAME=MANIFEST", "'gan_f'"]),
    Case("cli-distance-bad-spec", [("distances", "_named_manifest", "expected NAME=MANIFEST")],
         lambda t, c: _cli(["distance", "--space", "baseline", "--checkpoint",
                                               str(_tiny_checkpoint(t)), "--set", f"a={_good_manifest(t)}",
                                               "--reference", str(t / "ffhq.csv"), "--out", str(t / "o")], c),
         lambda t: ["NAME=MANIFEST", str(t / "ffhq.csv")]),
    Case("cli-evaluate-bad-spec", [("evaluation", "run", "expected NAME=MANIFEST[@SPLIT]")],
         lambda t, c: _cli(["evaluate", "--checkpoint", str(_tiny_checkpoint(t)), "--test",
                                               str(t / "rafdb.csv"), "--out", str(t / "o"), "--train-set", "x",
                                               "--seed", "0"], c),
         lambda t: ["--test", str(t / "rafdb.csv")]),
    Case("cli-gan-edit-no-source", [("gan.cli", "_edit", "give --boxes")],
         lambda t, c: _error(SystemExit, lambda: cli.main(["gan", "edit", "--editor", str(_tiny_editor(t)), "--out",
                                                                str(t / "o")])),
         lambda t: ["--boxes", "--images"]),
    Case("cli-gan-edit-intensity-on-official", [("gan.cli", "_edit", "apply to editors trained here")],
         lambda t, c: _error(SystemExit, lambda: cli.main(["gan", "edit", "--official", str(t / "G.ckpt"),
                                                                "--intensity", "interpolate", "--out", str(t / "o")])),
         lambda t: ["--intensity", "--editor"]),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_cli_rejects_bad_input_and_says_what(tmp_path, case, capsys):
    message = case.run(tmp_path, capsys)
    missing = [f for f in case.expect(tmp_path) if f not in message]
    assert not missing, f"{case.id}: {message!r} does not name {missing}"
    TALLY["bad inputs tried"] += 1


# --------------------------------------------------------------------------- nothing left out
MODULES = {"readers": "syntfer/sources/readers.py", "images": "syntfer/core/images.py", "manifest": "syntfer/core/manifest.py"}
# the CLI entry points (and the helpers they parse arguments with) whose raises must each have a case
CLI_FUNCTIONS = {("cli", "main"): "syntfer/cli.py", ("readers", "run"): "syntfer/sources/readers.py",
                 ("pseudolabel.cli", "run"): "syntfer/strategies/pseudolabel/cli.py", ("notebook", "run"): "syntfer/tools/notebook.py",
                 ("training", "run"): "syntfer/engine/training.py", ("mixing", "run"): "syntfer/study/mixing.py",
                 ("mixing", "_spec"): "syntfer/study/mixing.py", ("audit", "run"): "syntfer/instruments/audit.py",
                 ("distances", "_named_manifest"): "syntfer/instruments/distances.py",
                 ("evaluation", "run"): "syntfer/engine/evaluation.py",
                 ("gan.cli", "_edit"): "syntfer/strategies/gan/cli.py"}


def _error_sites(module: str, path: str, only: str | None = None) -> list[tuple[str, str, str]]:
    """(module, function, statement source) of every raise, `rows.bad(...)` and 'error:' print in a file."""
    src = (ROOT / path).read_text()
    sites = []
    for fn in ast.walk(ast.parse(src)):
        if not isinstance(fn, ast.FunctionDef) or (only and fn.name != only):
            continue
        for node in ast.walk(fn):
            if not isinstance(node, (ast.Raise, ast.Call)):
                continue
            seg = ast.get_source_segment(src, node) or ""
            is_bad = isinstance(node, ast.Call) and seg.startswith("rows.bad(")
            is_print = isinstance(node, ast.Call) and seg.startswith("print(") and ": error" in seg
            is_unknown = isinstance(node, ast.Call) and seg.startswith("print(") and "unknown command" in seg
            is_exit = isinstance(node, ast.Raise) and node.exc is not None and "SystemExit" in seg
            bare = isinstance(node, ast.Raise) and node.exc is None
            if (isinstance(node, ast.Raise) and not bare) or is_bad or is_print or is_unknown or is_exit:
                sites.append((module, fn.name, seg))
    return sites


def test_every_raise_has_a_case():
    sites = [s for m, p in MODULES.items() for s in _error_sites(m, p)]
    sites += [s for (m, f), p in CLI_FUNCTIONS.items() for s in _error_sites(m, p, only=f)]
    covers = [c for case in CASES + CLI_CASES for c in case.covers]
    for module, function, snippet in covers:
        matching = [s for s in sites if s[:2] == (module, function) and snippet in s[2]]
        assert matching, f"case cover {(module, function, snippet)} matches no error site"
    uncovered = [s for s in sites if not any(s[:2] == c[:2] and c[2] in s[2] for c in covers)]
    assert not uncovered, "error sites without a case in tests/test_errors.py:\n" + "\n".join(
        f"  {m}.{f}: {seg.splitlines()[0][:110]}" for m, f, seg in uncovered)
    assert len(sites) >= 45, len(sites)
