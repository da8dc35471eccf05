"""Bad *real* input (issue #26): what a researcher sees when params.yaml points at a licensed dataset, an unlabeled
collection or a weight file that is not what the stage expects.

Each row of `ROWS` is one bad input: which params key (or command option) it reaches the pipeline through, what is
wrong with it, the stage that reads it (and so stops), and a fragment of the message. Every row has a test below
that builds the tiny native-format input in tmp_path, runs the code the stage runs (the stage's command as a real
process where it has one: exit status 1, one ``syntfer CMD: error:`` line, no traceback) and asserts the error
type, the file named and the fragment (`says`). The "When real input is wrong" table of docs/real-data.md is these
rows (README.md's section of that name, right before its licences, points to it: the README is kept under 200 lines,
tests/test_docs.py); `test_the_table_is_these_rows` keeps the two equal and checks every row is asserted by a test.
"""
from __future__ import annotations

import dataclasses
import inspect
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from faults import TALLY, cli, job_env
from test_readers import make_affectnet, make_fer2013, make_rafdb

from syntfer.core.images import ImageError
from syntfer.engine.models import create_model, load_pretrained, save_checkpoint
from syntfer.engine.models.checkpoint import CheckpointError
from syntfer.sources.readers import ReaderError, read_dataset

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Row:
    """One bad input: the README table's cells (Markdown) and the message fragment a test asserts."""

    id: str
    input: str
    fault: str
    stage: str
    fragment: str


MANIFEST = "`manifests@{0}` (`syntfer manifest`)"
ROWS: list[Row] = [
    Row("rafdb-root-missing", "`datasets.labeled.rafdb.root`", "points at nothing", MANIFEST.format("rafdb"),
        "dataset root not found (expected the rafdb folder: EmoLabel/list_patition_label.txt + Image/aligned/"),
    Row("rafdb-no-label-file", "`datasets.labeled.rafdb.root`", "a folder without `EmoLabel/list_patition_label.txt`"
        " (nor `basic/EmoLabel/...`)", MANIFEST.format("rafdb"),
        "RAF-DB label file not found (expected <root>/EmoLabel/list_patition_label.txt"),
    Row("rafdb-no-image-folder", "`datasets.labeled.rafdb.root`", "label file present, `Image/aligned/` absent",
        MANIFEST.format("rafdb"), "RAF-DB image folder not found (expected the aligned images"),
    Row("rafdb-missing-images", "`datasets.labeled.rafdb.root`", "the partition file lists images that are absent "
        "(`--skip-bad`: skipped and listed)", MANIFEST.format("rafdb"), "listed images are missing"),
    Row("affectnet-no-csv", "`datasets.labeled.affectnet.root`", "no `training.csv` / `validation.csv`",
        MANIFEST.format("affectnet"), "AffectNet annotation file not found (expected <root>/training.csv)"),
    Row("fer2013-no-csv", "`datasets.labeled.fer2013.root`", "no `fer2013.csv` and no `train/` / `test/` folders",
        MANIFEST.format("fer2013"), "fer2013.csv: not found, and no Kaggle train/ or test/ folders"),
    Row("fer2013-wrong-header", "`datasets.labeled.fer2013.root`", "`fer2013.csv` header `label,pixels,split`",
        MANIFEST.format("fer2013"), "missing column(s) ['emotion', 'Usage']; expected emotion, pixels, Usage"),
    Row("unlabeled-other-files", "`pseudolabel.sources.<name>.images`", "files that are not images (`.txt`, `.csv`)"
        " among the faces", "none: listed in the summary, never read", "file(s) that are not images, e.g."),
    Row("unlabeled-corrupt-image", "`pseudolabel.sources.<name>.images`", "a corrupt `.png`",
        "`syntfer manifest`, `syntfer pseudolabel`; the `pseudolabel@<name>` stage skips and counts it "
        "(`n_unreadable`)", "unreadable or truncated image"),
    Row("unlabeled-no-images", "`pseudolabel.sources.<name>.images`", "a folder with no image at all",
        "`pseudolabel@<name>` (`syntfer pseudolabel`)", "no image files below it (expected .jpg, .jpeg, .png, .bmp, .webp files"),
    Row("pretrained-other-model", "`train.pretrained`", "an `ir50.pth` state dict given to POSTER",
        "`train@<set>` (`syntfer train`)", "no tensor matches poster_small (Poster) by name and shape: 0 of its"),
    Row("pretrained-partial", "`train.pretrained`", "weights filling under half of the model's tensors",
        "`train@<set>` (`syntfer train`)", "tensors of ir_tiny (IRClassifier) match by name and shape"),
    Row("pretrained-bare-tensor", "`train.pretrained`", "a file holding one random tensor",
        "`train@<set>` (`syntfer train`)", "holds a Tensor, not a mapping of names to tensors; expected"),
    Row("pretrained-not-torch", "`train.pretrained`", "not a torch file (text)", "`train@<set>` (`syntfer train`)",
        "weight file is not a readable torch file"),
    Row("teacher-incomplete", "`instruments.teacher`", "checkpoint folder without `config.json` / `weights.pt`",
        "`pseudolabel@<name>` (`syntfer pseudolabel`)", "not a syntfer checkpoint folder, weights.pt missing"),
    Row("gan-not-ganmut", "`gan.official_checkpoint`", "a weight file that is not a GANmut generator",
        "`gan` (`syntfer gan edit --official`)",
        "not a StarGAN/GANmut generator state dict; expected an official GANmut generator *-G.ckpt"),
    Row("sd-no-model-index", "`diffusion.sd_model`", "a folder without `model_index.json`",
        "`diffusion` (`syntfer diffusion generate`)",
        "no model_index.json in this folder; expected a diffusers Stable Diffusion folder"),
]
BY_ID = {r.id: r for r in ROWS}


def says(row_id: str, message: str) -> None:
    """The message holds the row's fragment (what was expected)."""
    fragment = BY_ID[row_id].fragment
    assert fragment in message, f"{row_id}: {fragment!r} not in {message!r}"
    TALLY["bad inputs tried"] += 1


def run_cli(*args: object, code: int = 1) -> subprocess.CompletedProcess:
    """`python -m syntfer ARGS` as DVC runs it: the exit status, and on error exactly one error line, no traceback."""
    done = subprocess.run(cli(*args), env=job_env(), capture_output=True, text=True, timeout=300)
    both = done.stdout + done.stderr
    assert "Traceback" not in both, both[-3000:]
    assert done.returncode == code, (done.returncode, both[-3000:])
    if code == 1:
        errors = [ln for ln in done.stderr.splitlines() if ln.startswith("syntfer ")]
        assert len(errors) == 1 and errors[0].startswith(f"syntfer {args[0]}: error: "), done.stderr[-3000:]
    return done


def manifest_cli(fmt: str, root: Path, out: Path, *extra: str, code: int = 1) -> subprocess.CompletedProcess:
    return run_cli("manifest", "--format", fmt, "--root", root, "--split", "train", "--out", out, *extra, code=code)


def _png(path: Path, value: int = 100, size: int = 20) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)
    return path


def _error(kind: type[BaseException], fn) -> str:
    """The message of the error `fn` raises, which must be exactly a `kind`."""
    with pytest.raises(kind) as e:
        fn()
    assert type(e.value) is kind, f"expected {kind.__name__}, got {type(e.value).__name__}: {e.value}"
    return str(e.value)


# --------------------------------------------------------------------------- labeled datasets: the manifests stage
def test_rafdb_root_missing(tmp_path):
    root = tmp_path / "data" / "raf-db"  # a typo'd path: nothing there
    msg = _error(ReaderError, lambda: read_dataset("rafdb", root, "train"))
    assert msg.startswith(f"{root}: ")
    says("rafdb-root-missing", msg)
    err = manifest_cli("rafdb", root, tmp_path / "m.csv").stderr
    assert str(root) in err
    says("rafdb-root-missing", err)
    assert not (tmp_path / "m.csv").exists()


def test_rafdb_folder_without_label_file(tmp_path):
    make_rafdb(tmp_path / "raf", [1, 4], [5])
    shutil.move(tmp_path / "raf" / "EmoLabel", tmp_path / "raf" / "labels")  # misnamed
    msg = _error(ReaderError, lambda: read_dataset("rafdb", tmp_path / "raf", "train"))
    assert msg.startswith(f"{tmp_path / 'raf' / 'EmoLabel' / 'list_patition_label.txt'}: ")
    assert "basic/EmoLabel/list_patition_label.txt" in msg  # the official nested layout is named too
    says("rafdb-no-label-file", msg)
    says("rafdb-no-label-file", manifest_cli("rafdb", tmp_path / "raf", tmp_path / "m.csv").stderr)


def test_rafdb_official_basic_tree_is_read(tmp_path):
    """The official download unpacks to basic/EmoLabel/list_patition_label.txt + basic/Image/aligned/: a root
    pointing at the folder above basic/ reads the same rows as one pointing at basic/."""
    make_rafdb(tmp_path / "RAF-DB" / "basic", [1, 4, 4, 7], [6])
    (tmp_path / "RAF-DB" / "basic" / "Image" / "original").mkdir()  # the unaligned images beside: not read
    nested = read_dataset("rafdb", tmp_path / "RAF-DB", "train").frame
    direct = read_dataset("rafdb", tmp_path / "RAF-DB" / "basic", "train").frame
    assert nested.equals(direct) and list(nested["label"]) == ["surprise", "happy", "happy", "neutral"]
    assert all("/basic/Image/aligned/" in p for p in nested["path"])
    out = manifest_cli("rafdb", tmp_path / "RAF-DB", tmp_path / "m.csv", code=0).stdout
    assert "4 images" in out


def test_rafdb_without_aligned_images(tmp_path):
    make_rafdb(tmp_path / "raf", [1, 2], [])
    shutil.move(tmp_path / "raf" / "Image" / "aligned", tmp_path / "raf" / "Image" / "Aligned_100")
    msg = _error(ReaderError, lambda: read_dataset("rafdb", tmp_path / "raf", "train"))
    assert msg.startswith(f"{tmp_path / 'raf' / 'Image' / 'aligned'}: ")
    says("rafdb-no-image-folder", msg)
    says("rafdb-no-image-folder", manifest_cli("rafdb", tmp_path / "raf", tmp_path / "m.csv").stderr)


def test_rafdb_partition_lists_absent_images(tmp_path):
    make_rafdb(tmp_path / "raf", [1, 2, 3, 4], [5])
    for n in (2, 4):
        (tmp_path / "raf" / "Image" / "aligned" / f"train_0000{n}_aligned.jpg").unlink()
    label_file = tmp_path / "raf" / "EmoLabel" / "list_patition_label.txt"
    msg = _error(ReaderError, lambda: read_dataset("rafdb", tmp_path / "raf", "train"))
    assert msg.startswith(f"{label_file} line 2: ")  # the file and line of the first absent image
    assert "train_00002_aligned.jpg" in msg and "2 of the 4 listed images are missing" in msg
    says("rafdb-missing-images", msg)
    err = manifest_cli("rafdb", tmp_path / "raf", tmp_path / "m.csv").stderr
    assert f"{label_file} line 2" in err and "2 of the 4" in err
    says("rafdb-missing-images", err)
    # --skip-bad: the absent images are skipped, counted and each listed with its line
    res = read_dataset("rafdb", tmp_path / "raf", "train", skip_bad=True)
    assert list(res.frame["label"]) == ["surprise", "disgust"]  # codes 1 and 3: lines 1 and 3 kept
    assert [w for w, _ in res.skipped] == [f"{label_file} line 2", f"{label_file} line 4"]
    out = manifest_cli("rafdb", tmp_path / "raf", tmp_path / "m.csv", "--skip-bad", code=0).stdout
    assert "2 images" in out and "skipped 2 bad row(s)" in out and f"{label_file} line 4" in out


def test_affectnet_folder_without_csvs(tmp_path):
    make_affectnet(tmp_path / "an", [0, 1], [2])
    for f in ("training.csv", "validation.csv"):
        (tmp_path / "an" / f).rename(tmp_path / "an" / f.replace(".csv", "_set.csv"))
    msg = _error(ReaderError, lambda: read_dataset("affectnet", tmp_path / "an", "train"))
    assert msg.startswith(f"{tmp_path / 'an' / 'training.csv'}: ")
    says("affectnet-no-csv", msg)
    says("affectnet-no-csv", manifest_cli("affectnet", tmp_path / "an", tmp_path / "m.csv").stderr)


def test_fer2013_root_without_csv_or_folders(tmp_path):
    (tmp_path / "fer").mkdir()
    (tmp_path / "fer" / "icml_face_data.csv").write_text("emotion, Usage, pixels\n")  # another release's name
    msg = _error(ReaderError, lambda: read_dataset("fer2013", tmp_path / "fer", "train"))
    assert msg.startswith(f"{tmp_path / 'fer' / 'fer2013.csv'}: ") and str(tmp_path / "fer") in msg
    says("fer2013-no-csv", msg)
    says("fer2013-no-csv", manifest_cli("fer2013", tmp_path / "fer", tmp_path / "m.csv").stderr)


def test_fer2013_csv_with_wrong_header(tmp_path):
    make_fer2013(tmp_path / "fer", [(0, "Training", 5), (3, "PublicTest", 7)])
    csv = tmp_path / "fer" / "fer2013.csv"
    pd.read_csv(csv).rename(columns={"emotion": "label", "Usage": "split"}).to_csv(csv, index=False)
    msg = _error(ReaderError, lambda: read_dataset("fer2013", tmp_path / "fer", "train"))
    assert msg.startswith(f"{csv}: ") and "has ['label', 'pixels', 'split']" in msg
    says("fer2013-wrong-header", msg)
    says("fer2013-wrong-header", manifest_cli("fer2013", tmp_path / "fer", tmp_path / "m.csv").stderr)


# --------------------------------------------------------------------------- unlabeled collections: pseudolabel
@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    """A tiny untrained checkpoint folder (config.json + weights.pt), as `syntfer train` writes best/."""
    torch.manual_seed(0)
    return save_checkpoint(create_model("cnn_tiny", img_size=16), tmp_path_factory.mktemp("teacher") / "best")


def _collection(folder: Path) -> Path:
    """Identity folders of faces, a LICENSE.txt and the world's kind of truth.csv beside them."""
    for ident in ("id_0", "id_1"):
        for i in range(2):
            _png(folder / ident / f"{i}.png", value=40 * i + 20)
    (folder / "LICENSE.txt").write_text("terms\n")
    (folder / "truth.csv").write_text("path,expression\n")
    return folder


def test_unlabeled_files_that_are_not_images_are_listed_not_read(tmp_path):
    res = read_dataset("unlabeled", _collection(tmp_path / "digi"))
    assert len(res.frame) == 4 and not res.skipped and not res.excluded
    assert res.ignored == [str(tmp_path / "digi" / "LICENSE.txt"), str(tmp_path / "digi" / "truth.csv")]
    says("unlabeled-other-files", res.summary())
    out = run_cli("manifest", "--format", "unlabeled", "--root", tmp_path / "digi", "--out", tmp_path / "m.csv",
                  code=0).stdout
    assert "4 images" in out and "ignored 2 file(s)" in out and "LICENSE.txt" in out
    says("unlabeled-other-files", out)


def test_unlabeled_corrupt_image(tmp_path, teacher):
    folder = _collection(tmp_path / "digi")
    bad = folder / "id_1" / "2.png"
    bad.write_bytes(_png(tmp_path / "ok.png").read_bytes()[:40])  # a cut-off PNG
    # syntfer manifest decodes every image: it stops at the file, or (--skip-bad) skips and lists it
    msg = _error(ReaderError, lambda: read_dataset("unlabeled", folder))
    assert msg.startswith(f"{bad}: ") and f"{bad}: {bad}" not in msg and "0 of the 5 listed images are missing, 1 " \
        "unreadable" in msg
    says("unlabeled-corrupt-image", msg)
    says("unlabeled-corrupt-image", run_cli("manifest", "--format", "unlabeled", "--root", folder, "--out",
                                            tmp_path / "m.csv").stderr)
    res = read_dataset("unlabeled", folder, skip_bad=True)
    assert len(res.frame) == 4 and [w for w, _ in res.skipped] == [str(bad)]
    # the pseudolabel stage reads the folder with check="exists" and scores with skip_bad: the image is counted
    # as unreadable; `syntfer pseudolabel` without --skip-bad stops at it
    err = run_cli("pseudolabel", "--teacher", teacher, "--images", folder, "--out", tmp_path / "pl",
                  "--no-progress").stderr
    assert str(bad) in err
    says("unlabeled-corrupt-image", err)
    out = run_cli("pseudolabel", "--teacher", teacher, "--images", folder, "--out", tmp_path / "pl2",
                  "--no-progress", "--skip-bad", code=0).stdout
    assert "ignored 2 file(s)" in out and "1 unreadable image(s) skipped" in out and str(bad) in out
    scores = pd.read_csv(tmp_path / "pl2" / "scores.csv", keep_default_na=False)
    assert len(scores) == 5 and (scores["error"] != "").sum() == 1


def test_unlabeled_folder_without_images(tmp_path, teacher):
    (tmp_path / "emonet").mkdir()
    (tmp_path / "emonet" / "README.txt").write_text("download the images with the script\n")
    msg = _error(ReaderError, lambda: read_dataset("unlabeled", tmp_path / "emonet", skip_bad=True, check="exists"))
    assert msg.startswith(f"{tmp_path / 'emonet'}: ") and "README.txt" in msg
    says("unlabeled-no-images", msg)
    err = run_cli("pseudolabel", "--teacher", teacher, "--images", tmp_path / "emonet", "--out", tmp_path / "pl",
                  "--no-progress", "--skip-bad").stderr
    says("unlabeled-no-images", err)
    (tmp_path / "empty").mkdir()
    says("unlabeled-no-images", _error(ReaderError, lambda: read_dataset("unlabeled", tmp_path / "empty")))


def test_teacher_folder_missing_its_files(tmp_path, teacher):
    from syntfer.strategies.pseudolabel.teachers import TeacherError, load_teacher

    half = tmp_path / "teacher"
    half.mkdir()
    shutil.copy(teacher / "config.json", half / "config.json")  # weights.pt not copied
    msg = _error(TeacherError, lambda: load_teacher(str(half)))
    assert msg.startswith(f"{half}: ") and "expected config.json + weights.pt" in msg
    says("teacher-incomplete", msg)
    (half / "config.json").unlink()
    assert "config.json and weights.pt missing" in _error(TeacherError, lambda: load_teacher(str(half)))
    _png(tmp_path / "faces" / "a.png")
    err = run_cli("pseudolabel", "--teacher", half, "--images", tmp_path / "faces", "--out", tmp_path / "pl",
                  "--no-progress").stderr
    assert str(half) in err and "config.json and weights.pt missing" in err


# --------------------------------------------------------------------------- weights
@pytest.fixture(scope="module")
def ir50_file(tmp_path_factory) -> Path:
    """A face-recognition IR-50 state dict with face.evoLVe names, like POSTER's ir50.pth (random values)."""
    from syntfer.engine.models.ir import IR50_STAGES, IRBackbone

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "ir50.pth"
    torch.save(IRBackbone(IR50_STAGES + ((512, 3),), 64, keep_output_layer=True).state_dict(), path)
    return path


def test_pretrained_of_another_architecture(ir50_file):
    msg = _error(CheckpointError, lambda: create_model("poster_small", pretrained=str(ir50_file)))
    assert msg.startswith(f"{ir50_file}: ") and "expected poster_small (Poster) weights" in msg
    says("pretrained-other-model", msg)


def test_pretrained_that_fills_a_small_part_of_the_model(tmp_path, ir50_file):
    """ir50.pth into ir_tiny: 13 of its 60 tensors have the same names and shapes. That used to load silently
    (the rest random); now it stops, unless a partial load is asked for."""
    msg = _error(CheckpointError, lambda: create_model("ir_tiny", pretrained=str(ir50_file)))
    assert msg.startswith(f"{ir50_file}: only 13 of the 60 tensors") and "min_loaded=0" in msg
    says("pretrained-partial", msg)
    report = load_pretrained(create_model("ir_tiny"), ir50_file, min_loaded=0)  # explicitly allowed
    assert len(report.matched) == 13
    # weights of the same architecture still load when only the head differs (58 of 60 tensors)
    torch.save(create_model("ir_tiny", num_classes=8).state_dict(), tmp_path / "ir_tiny8.pth")
    assert len(load_pretrained(create_model("ir_tiny"), tmp_path / "ir_tiny8.pth").matched) == 58


def test_pretrained_that_is_not_a_state_dict(tmp_path):
    torch.save(torch.randn(64, 3, 3, 3), tmp_path / "random.pt")
    msg = _error(CheckpointError, lambda: create_model("cnn_tiny", pretrained=str(tmp_path / "random.pt")))
    assert msg.startswith(f"{tmp_path / 'random.pt'}: ") and "cnn_tiny (PlainCNN) weights" in msg
    says("pretrained-bare-tensor", msg)
    for name, data in (("notes.pth", b"trained on RAF-DB, 40 epochs\n"), ("face.pth", _png(tmp_path / "f.png")
                                                                         .read_bytes())):
        (tmp_path / name).write_bytes(data)
        msg = _error(CheckpointError, lambda: create_model("cnn_tiny", pretrained=str(tmp_path / name)))
        assert msg.startswith(f"{tmp_path / name}: ") and "expected cnn_tiny (PlainCNN) weights" in msg
        says("pretrained-not-torch", msg)
    # the train stage's command: one line, status 1
    frame = pd.DataFrame({"path": [str(_png(tmp_path / "i" / f"{c}{k}.png", 30 * i)) for i, c in
                                   enumerate(("anger", "happy", "sad")) for k in range(4)],
                          "label": [c for c in ("anger", "happy", "sad") for _ in range(4)]})
    frame.to_csv(tmp_path / "train.csv", index=False)
    err = run_cli("train", "--train", tmp_path / "train.csv", "--out", tmp_path / "run", "--model", "cnn_tiny",
                  "--model-kwargs", '{"img_size": 16}', "--epochs", "1", "--pretrained", tmp_path / "notes.pth").stderr
    assert str(tmp_path / "notes.pth") in err
    says("pretrained-not-torch", err)


def test_gan_official_checkpoint_that_is_not_ganmut(tmp_path, ir50_file):
    from syntfer.strategies.gan.networks import CheckpointError as GanCheckpointError
    from syntfer.strategies.gan.networks import load_official_generator

    msg = _error(GanCheckpointError, lambda: load_official_generator(ir50_file))
    assert msg.startswith(f"{ir50_file}: ")
    says("gan-not-ganmut", msg)
    (tmp_path / "G.ckpt").write_text("not weights")
    assert "not a readable torch file" in _error(GanCheckpointError, lambda: load_official_generator(tmp_path / "G.ckpt"))
    assert "is a folder" in _error(GanCheckpointError, lambda: load_official_generator(tmp_path))
    err = run_cli("gan", "edit", "--official", ir50_file, "--boxes", tmp_path / "boxes.csv", "--out",
                  tmp_path / "o").stderr
    assert str(ir50_file) in err
    says("gan-not-ganmut", err)


def test_sd_model_folder_without_model_index(tmp_path):
    from syntfer.strategies.diffusion import prompts as P
    from syntfer.strategies.diffusion.backends import BackendError, create_backend

    folder = tmp_path / "realistic-vision"
    (folder / "unet").mkdir(parents=True)
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    msg = _error(BackendError, lambda: create_backend("sd", str(folder), device="cpu"))
    assert msg.startswith(f"{folder}: ") and "text_encoder/, tokenizer/ and scheduler/" in msg
    says("sd-no-model-index", msg)
    assert "needs a model" in _error(BackendError, lambda: create_backend("sd", "", device="cpu"))
    (tmp_path / "rv51.safetensors").write_bytes(b"")
    assert "is a single file" in _error(BackendError, lambda: create_backend("sd", str(tmp_path / "rv51.safetensors")))
    P.write_grid(tmp_path / "prompts.csv", P.stratified_subset(P.prompt_grid(), 1))
    err = run_cli("diffusion", "generate", "--prompts", tmp_path / "prompts.csv", "--backend", "sd", "--model",
                  folder, "--out", tmp_path / "gen").stderr
    assert str(folder) in err
    says("sd-no-model-index", err)


# --------------------------------------------------------------------------- the table in the documents
SECTION = "## When real input is wrong"


def table_rows(text: str) -> list[tuple[str, str, str, str]]:
    """(input, fault, stage, fragment) of each body row of the table in the document's `SECTION`."""
    section = text.split(SECTION + "\n", 1)[1].split("\n## ", 1)[0]
    cells = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in section.splitlines()
             if ln.startswith("|")]
    assert cells[0] == ["input", "what is wrong", "which stage stops", "the message (abridged)"], cells[0]
    out = []
    for c in cells[2:]:
        m = re.fullmatch(r"…`([^`]+)`…", c[3])
        assert m, f"message cell {c[3]!r} is not …`fragment`…"
        out.append((c[0], c[1], c[2], m.group(1)))
    return out


def test_the_table_is_these_rows():
    assert table_rows((ROOT / "docs" / "real-data.md").read_text()) == [
        (r.input, r.fault, r.stage, r.fragment) for r in ROWS]
    # README's "Run the paper's setting" points at the table
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Run the paper's setting\n", 1)[1].split("\n## ", 1)[0]
    assert "(docs/real-data.md#when-real-input-is-wrong)" in section
    # every row is asserted by a test of this file
    tests = [obj for name, obj in globals().items() if name.startswith("test_") and callable(obj)]
    asserted = {m for t in tests for m in re.findall(r'says\("([a-z0-9-]+)"', inspect.getsource(t))}
    assert asserted == set(BY_ID), f"rows without a test: {set(BY_ID) - asserted}; unknown: {asserted - set(BY_ID)}"
    assert len(BY_ID) == len(ROWS)
