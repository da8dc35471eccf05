"""Reader tests on tiny fixtures in each native format, with exact per-class counts."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from syntfer import cli
from syntfer.core import labels as L
from syntfer.core.images import ImageError, load_image
from syntfer.core.manifest import ManifestError, read_manifest
from syntfer.sources.readers import ReaderError, read_dataset


def _img(path: Path, size=(100, 100), value=128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size[::-1], 3), value, np.uint8)).save(path)


def make_rafdb(root: Path, train_codes, test_codes) -> None:
    lines = []
    for prefix, codes in (("train", train_codes), ("test", test_codes)):
        for i, code in enumerate(codes, start=1):
            name = f"{prefix}_{i:05d}"
            lines.append(f"{name}.jpg {code}")
            _img(root / "Image" / "aligned" / f"{name}_aligned.jpg", value=10 * code)
    (root / "EmoLabel").mkdir(parents=True, exist_ok=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")


def test_rafdb_counts_and_mapping(tmp_path):
    make_rafdb(tmp_path, [1, 1, 2, 4, 4, 4, 7], [6, 5, 3])
    train = read_dataset("rafdb", tmp_path, "train").frame
    assert len(train) == 7 and set(train["split"]) == {"train"}
    assert L.counts(train["label"]) == {"anger": 0, "disgust": 0, "fear": 1, "happy": 3, "neutral": 1,
                                        "sad": 0, "surprise": 2}
    test = read_dataset("rafdb", tmp_path, "test").frame
    assert list(test["label"]) == ["anger", "sad", "disgust"]
    # the image a row names is the one written for that code
    assert load_image(test["path"][0]).getpixel((0, 0)) == (60, 60, 60)
    assert len(read_dataset("rafdb", tmp_path).frame) == 10


def test_rafdb_bad_line_names_file_and_line(tmp_path):
    make_rafdb(tmp_path, [1, 2], [])
    lf = tmp_path / "EmoLabel" / "list_patition_label.txt"
    lf.write_text(lf.read_text() + "train_00003.jpg 9\n")
    with pytest.raises(ReaderError, match=r"list_patition_label.txt line 3: rafdb label code 9"):
        read_dataset("rafdb", tmp_path)
    res = read_dataset("rafdb", tmp_path, skip_bad=True)
    assert len(res.frame) == 2 and len(res.skipped) == 1 and "line 3" in res.skipped[0][0]


def test_rafdb_missing_and_truncated_images(tmp_path):
    make_rafdb(tmp_path, [1, 2, 3], [])
    (tmp_path / "Image/aligned/train_00002_aligned.jpg").unlink()
    data = (tmp_path / "Image/aligned/train_00003_aligned.jpg").read_bytes()
    (tmp_path / "Image/aligned/train_00003_aligned.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ReaderError, match="line 2: .*train_00002_aligned.jpg: image file not found"):
        read_dataset("rafdb", tmp_path)
    res = read_dataset("rafdb", tmp_path, skip_bad=True)
    assert list(res.frame["label"]) == ["surprise"]
    assert [w.split()[-1] for w, _ in res.skipped] == ["2", "3"]
    assert "truncated" in res.skipped[1][1]


def make_affectnet(root: Path, train_codes, val_codes) -> None:
    for fname, codes in (("training.csv", train_codes), ("validation.csv", val_codes)):
        recs = []
        for i, code in enumerate(codes):
            rel = f"{i % 3}/{fname[:3]}_{i}.jpg"
            _img(root / "Manually_Annotated_Images" / rel, size=(120, 90), value=20 + code)
            recs.append({"subDirectory_filePath": rel, "face_x": 10, "face_y": 5, "face_width": 60,
                         "face_height": 70, "facial_landmarks": "1;2", "expression": code,
                         "valence": 0.1, "arousal": -0.2})
        pd.DataFrame(recs).to_csv(root / fname, index=False)


def test_affectnet_counts_boxes_and_excluded_codes(tmp_path):
    make_affectnet(tmp_path, [0, 1, 1, 6, 7, 8, 9, 10, 5], [0, 1, 2, 3, 4, 5, 6])
    res = read_dataset("affectnet", tmp_path, "train")
    assert L.counts(res.frame["label"]) == {"anger": 1, "disgust": 1, "fear": 0, "happy": 2, "neutral": 1,
                                            "sad": 0, "surprise": 0}
    assert sum(res.excluded.values()) == 4
    im = load_image(res.frame["path"][0])
    assert im.size == (60, 70)  # the face box is cropped at load time
    res8 = read_dataset("affectnet", tmp_path, "train", classes=8)
    assert (res8.frame["label"] == "contempt").sum() == 1 and sum(res8.excluded.values()) == 3
    val = read_dataset("affectnet", tmp_path, "val").frame
    assert L.counts(val["label"]) == {c: 1 for c in L.CLASSES}


def test_affectnet_missing_column_and_list_file(tmp_path):
    make_affectnet(tmp_path, [1, 2], [0])
    df = pd.read_csv(tmp_path / "training.csv").drop(columns=["face_x"])
    df.to_csv(tmp_path / "training.csv", index=False)
    with pytest.raises(ReaderError, match=r"training.csv: missing column\(s\) \['face_x'\]"):
        read_dataset("affectnet", tmp_path, "train")
    (tmp_path / "train_list.txt").write_text("Manually_Annotated_Images/0/tra_0.jpg 6\n"
                                             "Manually_Annotated_Images/1/tra_1.jpg 3\n")
    res = read_dataset("affectnet", tmp_path, "train", list_file="train_list.txt")
    assert list(res.frame["label"]) == ["anger", "surprise"]


def make_fer2013(root: Path, rows) -> None:
    root.mkdir(parents=True, exist_ok=True)
    recs = [{"emotion": code, "pixels": " ".join([str(v)] * 2304), "Usage": usage} for code, usage, v in rows]
    pd.DataFrame(recs).to_csv(root / "fer2013.csv", index=False)


def test_fer2013_csv_rows_become_images(tmp_path):
    make_fer2013(tmp_path, [(0, "Training", 5), (6, "Training", 6), (3, "PublicTest", 7), (5, "PrivateTest", 8),
                            (1, "PrivateTest", 9)])
    train = read_dataset("fer2013", tmp_path, "train").frame
    assert list(train["label"]) == ["anger", "neutral"]
    test = read_dataset("fer2013", tmp_path, "test").frame
    assert list(test["label"]) == ["surprise", "disgust"]
    im = load_image(test["path"][1], mode="L")
    assert im.size == (48, 48) and im.getpixel((3, 3)) == 9
    assert list(read_dataset("fer2013", tmp_path, "val").frame["label"]) == ["happy"]


def test_fer2013_bad_rows(tmp_path):
    make_fer2013(tmp_path, [(0, "Training", 5), (7, "Training", 6), (3, "Somewhere", 7)])
    with pytest.raises(ReaderError, match="fer2013.csv line 3: fer2013 label code 7"):
        read_dataset("fer2013", tmp_path)
    df = pd.read_csv(tmp_path / "fer2013.csv")
    df.loc[0, "pixels"] = "1 2 3"
    df.to_csv(tmp_path / "fer2013.csv", index=False)
    res = read_dataset("fer2013", tmp_path, skip_bad=True)
    assert len(res.frame) == 0 and len(res.skipped) == 3
    assert "2304" in res.skipped[0][1] and "Usage 'Somewhere'" in res.skipped[2][1]


def test_fer2013_kaggle_folders(tmp_path):
    for split, cls, n in (("train", "angry", 2), ("train", "surprise", 1), ("test", "fearful", 3)):
        for i in range(n):
            _img(tmp_path / split / cls / f"{i}.png", size=(48, 48))
    res = read_dataset("fer2013", tmp_path)
    assert L.counts(res.frame.query("split == 'train'")["label"])["anger"] == 2
    assert L.counts(res.frame.query("split == 'test'")["label"])["fear"] == 3


def test_folder_aliases_never_create_extra_classes(tmp_path):
    for cls, n in (("angry", 2), ("anger", 1), ("Happiness", 3), ("sadness", 1)):
        for i in range(n):
            _img(tmp_path / cls / f"{cls}_{i}.jpg")
    res = read_dataset("folder", tmp_path)
    assert L.counts(res.frame["label"]) == {"anger": 3, "disgust": 0, "fear": 0, "happy": 3, "neutral": 0,
                                            "sad": 1, "surprise": 0}
    _img(tmp_path / "contempt" / "x.jpg")
    with pytest.raises(ReaderError, match="contempt: folder name is not an expression class"):
        read_dataset("folder", tmp_path)


def test_unlabeled_identity_folders_and_flat(tmp_path):
    for ident in ("id_001", "id_002"):
        for i in range(3):
            _img(tmp_path / "digi" / ident / f"{i}.png", size=(112, 112))
    res = read_dataset("unlabeled", tmp_path / "digi")
    assert len(res.frame) == 6 and set(res.frame["identity"]) == {"id_001", "id_002"}
    assert set(res.frame["label"]) == {""}
    for i in range(4):
        _img(tmp_path / "ffhq" / f"{i:05d}.png")
    assert set(read_dataset("unlabeled", tmp_path / "ffhq").frame["identity"]) == {""}


def test_cli_manifest_round_trip(tmp_path, capsys):
    make_rafdb(tmp_path / "raf", [4, 4, 1], [7])
    out = tmp_path / "m" / "train.csv"
    assert cli.main(["manifest", "--format", "rafdb", "--root", str(tmp_path / "raf"), "--split", "train",
                     "--out", str(out)]) == 0
    assert "happy 2" in capsys.readouterr().out
    raw = pd.read_csv(out)
    assert list(raw.columns[:3]) == ["path", "label", "split"]
    assert not raw["path"][0].startswith("/")  # stored relative to the manifest's folder
    df = read_manifest(out, required=("path", "label", "split"))
    assert [load_image(p).size for p in df["path"]] == [(100, 100)] * 3
    assert cli.main(["manifest", "--format", "rafdb", "--root", str(tmp_path / "nope"), "--out",
                     str(out)]) == 1


def test_manifest_errors_name_file_and_line(tmp_path):
    f = tmp_path / "m.csv"
    f.write_text("path,label\na.jpg,happy\nb.jpg,angry\n")
    with pytest.raises(ManifestError, match=r"m.csv line 3: label 'angry' is not a canonical class"):
        read_manifest(f)
    f.write_text("label\nhappy\n")
    with pytest.raises(ManifestError, match=r"missing column\(s\) \['path'\]"):
        read_manifest(f)


def test_load_image_errors():
    with pytest.raises(ImageError, match="image file not found"):
        load_image("/nonexistent/x.jpg")
    with pytest.raises(ImageError, match="box fragment"):
        load_image("/nonexistent/x.jpg#box=1,2,3")


def test_manifest_bytes_do_not_depend_on_where_the_project_lives(tmp_path):
    """path, source_path and origin_path are stored relative to the manifest's folder and read back absolute,
    so the same dataset written from two checkouts is byte-identical (DVC hashes it the same)."""
    from syntfer.core.manifest import write_manifest

    written = []
    for root in (tmp_path / "a", tmp_path / "b" / "deeper"):
        (root / "set").mkdir(parents=True)
        frame = pd.DataFrame({"path": [str(root / "set" / "happy" / "x.png")], "label": ["happy"],
                              "source_path": [str(root / "gen" / "x.png")],
                              "origin_path": [str(root / "world" / "ffhq.csv") + "#row=3"],
                              "note": ["kept"]})
        write_manifest(frame, root / "set" / "manifest.csv")
        written.append((root / "set" / "manifest.csv").read_bytes())
        back = read_manifest(root / "set" / "manifest.csv")
        assert back["source_path"].tolist() == [str(root / "gen" / "x.png")]
        assert back["origin_path"].tolist() == [str(root / "world" / "ffhq.csv") + "#row=3"]
    assert written[0] == written[1]
    assert b"../gen/x.png" in written[0] and b"../world/ffhq.csv#row=3" in written[0]
    # empty provenance stays empty (a real image in a mix has no origin)
    f = tmp_path / "e.csv"
    f.write_text("path,label,origin_path\nx.png,happy,\n")
    assert read_manifest(f)["origin_path"].tolist() == [""]


def test_truth_format_reads_a_world_domain_with_its_true_expression(tmp_path):
    from PIL import Image

    (tmp_path / "images").mkdir()
    rows = []
    for i, (expr, split) in enumerate((("happy", "train"), ("angry", "train"), ("fear", "test"))):
        Image.new("RGB", (8, 8), (i, i, i)).save(tmp_path / "images" / f"{i:06d}.png")
        rows.append({"path": f"images/{i:06d}.png", "expression": expr, "split": split, "id_gender": "female",
                     "id_age": "adult", "id_skin_tone": 3})
    pd.DataFrame(rows).to_csv(tmp_path / "truth.csv", index=False)
    train = read_dataset("truth", tmp_path, "train").frame
    assert list(train["label"]) == ["happy", "anger"] and set(train["split"]) == {"train"}
    assert train["path"].map(lambda p: Path(p).is_absolute() and Path(p).is_file()).all()
    assert list(train["gender"]) == ["female", "female"] and list(train["skin_tone"]) == ["3", "3"]
    with pytest.raises(ReaderError, match="no rows with split 'val'"):
        read_dataset("truth", tmp_path, "val")
    pd.DataFrame(rows).drop(columns="expression").to_csv(tmp_path / "truth.csv", index=False)
    with pytest.raises(ReaderError, match=r"truth.csv: lacks column\(s\) \['expression'\]"):
        read_dataset("truth", tmp_path)
    (tmp_path / "truth.csv").unlink()
    with pytest.raises(ReaderError, match="no truth file"):
        read_dataset("truth", tmp_path)
