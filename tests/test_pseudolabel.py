"""Pseudo-labeling: threshold and top-K rules, resumable scoring, the labeled dataset, analyses, CLI."""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

from syntfer import cli
from syntfer.core import labels as L
from syntfer.strategies import pseudolabel as P
from syntfer.core.images import ImageError
from syntfer.core.manifest import read_manifest, write_manifest
from syntfer.strategies.pseudolabel.teachers import Teacher

# Native order of the table teacher below (not canonical, so every test also exercises the mapping).
NATIVE = ["happy", "sad", "surprise", "anger", "neutral", "disgust", "fear"]


class TableTeacher(Teacher):
    """Reads the image's red value v at (0, 0) and returns the native-order probability row TABLE[v]."""

    def __init__(self, table: np.ndarray, fail_after: int | None = None):
        self.spec = "table:test"
        self.outputs = "probs"
        self.table = table
        self.calls = 0
        self.seen = 0
        self.fail_after = fail_after
        self._set_labels(NATIVE)

    def native_scores(self, images):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.calls += 1
        self.seen += len(images)
        return self.table[[im.getpixel((0, 0))[0] for im in images]]

    def _fingerprint(self) -> str:
        return "table-" + hashlib.sha256(self.table.tobytes()).hexdigest()


def canonical_row(**p: float) -> np.ndarray:
    """A native-order row from canonical {class: p}; the rest spread evenly."""
    rest = (1.0 - sum(p.values())) / (7 - len(p))
    return np.array([p.get(n, rest) for n in NATIVE])


def make_images(folder: Path, rows: list[np.ndarray], ident: bool = True) -> tuple[Path, np.ndarray]:
    """One 4x4 PNG per row (red value = row index) in identity folders, and a manifest."""
    paths = []
    for i in range(len(rows)):
        sub = folder / (f"id_{i % 3}" if ident else "")
        sub.mkdir(parents=True, exist_ok=True)
        p = sub / f"img_{i:02d}.png"
        Image.new("RGB", (4, 4), (i, 7, 9)).save(p)
        paths.append(str(p))
    manifest = folder / "manifest.csv"
    write_manifest(pd.DataFrame({"path": paths, "label": "", "split": "", "source": "toyface",
                                 "identity": [f"id_{i % 3}" for i in range(len(rows))],
                                 "score": np.arange(len(rows)) * 10}), manifest)
    return manifest, np.stack(rows)


def scores_frame(probs_canonical: np.ndarray, paths: list[str]) -> pd.DataFrame:
    df = pd.DataFrame(probs_canonical, columns=list(P.PROB_COLUMNS))
    df.insert(0, "path", paths)
    return df


# --- the selection rule ------------------------------------------------------------------------
def test_select_threshold_is_strict_label_is_argmax_topk_ties_by_path():
    rows = {
        "e.png": dict(happy=0.9), "d.png": dict(happy=0.9), "c.png": dict(happy=0.5),  # d/e tie: path order
        "b.png": dict(sad=0.3),  # exactly tau: dropped (strict >)
        "a.png": dict(sad=0.31), "f.png": dict(fear=0.6), "g.png": dict(happy=0.8),
    }
    paths = list(rows)
    canon = np.stack([canonical_row(**rows[p])[L.permutation_to_canonical(NATIVE)] for p in paths])
    sel = P.select(scores_frame(canon, paths), threshold=0.3, per_class=2)
    assert list(zip(sel.frame["path"], sel.frame["label"])) == [
        ("f.png", "fear"), ("d.png", "happy"), ("e.png", "happy"), ("a.png", "sad")]
    np.testing.assert_allclose(sel.frame["score"], [0.6, 0.9, 0.9, 0.31])
    c = sel.counts
    assert c["argmax"] == {"anger": 0, "disgust": 0, "fear": 1, "happy": 4, "neutral": 0, "sad": 2, "surprise": 0}
    assert c["above_threshold"]["sad"] == 1 and c["above_threshold"]["happy"] == 4
    assert c["selected"] == {"anger": 0, "disgust": 0, "fear": 1, "happy": 2, "neutral": 0, "sad": 1, "surprise": 0}
    assert c["short_classes"] == ["anger", "disgust", "fear", "neutral", "sad", "surprise"]
    assert c["shortfall"] == {"anger": 2, "disgust": 2, "fear": 1, "neutral": 2, "sad": 1, "surprise": 2}
    assert (c["n_images"], c["n_scored"], c["n_above_threshold"], c["n_selected"]) == (7, 7, 6, 4)
    no_cap = P.select(scores_frame(canon, paths), threshold=0.3, per_class=None)
    assert no_cap.counts["n_selected"] == 6 and no_cap.short_classes == []
    # row order of the input does not matter
    shuffled = scores_frame(canon, paths).iloc[[6, 3, 0, 5, 1, 4, 2]]
    pd.testing.assert_frame_equal(P.select(shuffled, 0.3, 2).frame, sel.frame)


def test_select_rejects_bad_rules_and_counts_unreadable():
    df = scores_frame(np.full((2, 7), 1 / 7), ["a", "b"])
    df.loc[1, list(P.PROB_COLUMNS)] = np.nan
    sel = P.select(df, 0.1, 5)
    assert (sel.counts["n_unreadable"], sel.counts["n_scored"], sel.counts["n_selected"]) == (1, 1, 1)
    assert sel.frame["label"].tolist() == ["anger"]  # a 7-way tie goes to the first canonical class
    for bad in (-0.1, 1.0):
        with pytest.raises(P.PseudolabelError, match="threshold"):
            P.select(df, bad, 5)
    with pytest.raises(P.PseudolabelError, match="per_class"):
        P.select(df, 0.3, 0)
    with pytest.raises(P.PseudolabelError, match="lack column"):
        P.select(df.drop(columns=["p_fear"]), 0.3, 5)


# --- scoring and resume ----------------------------------------------------------------------------
def toy_rows(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.dirichlet(np.full(7, 0.4)) for _ in range(n)]


def test_scores_are_canonical_and_resume_after_interruption_gives_identical_result(tmp_path):
    manifest, table = make_images(tmp_path / "imgs", toy_rows(11))
    paths = read_manifest(manifest)["path"].tolist()
    full = P.score_images(TableTeacher(table), paths, tmp_path / "s_full", batch_size=2, shard_size=4,
                          progress=False)
    assert (full.computed, full.reused, len(full.frame)) == (11, 0, 11)
    expected = (table / table.sum(axis=1, keepdims=True))[:, L.permutation_to_canonical(NATIVE)]
    np.testing.assert_array_equal(full.frame[list(P.PROB_COLUMNS)].to_numpy(), expected)  # exact CSV round trip
    assert full.frame["index"].tolist() == list(range(11)) and full.frame["path"].tolist() == paths

    dying = TableTeacher(table, fail_after=5)  # shard 0 (2 calls) and shard 1 (2 calls) done, dies in shard 2
    with pytest.raises(KeyboardInterrupt):
        P.score_images(dying, paths, tmp_path / "s", batch_size=2, shard_size=4, progress=False)
    key_dir = next((tmp_path / "s").iterdir())
    assert sorted(p.name for p in key_dir.glob("part-*.csv")) == ["part-00000.csv", "part-00001.csv"]
    assert not list(key_dir.glob(".*tmp"))  # no half-written shard
    again = TableTeacher(table)
    resumed = P.score_images(again, paths, tmp_path / "s", batch_size=2, shard_size=4, progress=False)
    assert (resumed.computed, resumed.reused, again.seen) == (3, 8, 3)
    pd.testing.assert_frame_equal(resumed.frame, full.frame, check_exact=True)
    third = TableTeacher(table)
    P.score_images(third, paths, tmp_path / "s", batch_size=2, shard_size=4, progress=False)
    assert third.seen == 0  # all done: nothing rescored

    # the key follows file contents, not mtimes (which differ between two checkouts of the same files) ...
    os.utime(paths[0], ns=(1, 1))
    touched = TableTeacher(table)
    P.score_images(touched, paths, tmp_path / "s", batch_size=2, shard_size=4, progress=False)
    assert touched.seen == 0 and len(list((tmp_path / "s").iterdir())) == 1
    # ... so a re-rendered image changes the key: everything is rescored into a new folder
    Image.new("RGB", (4, 4), (0, 8, 9)).save(paths[0])
    fresh = TableTeacher(table)
    P.score_images(fresh, paths, tmp_path / "s", batch_size=2, shard_size=4, progress=False)
    assert fresh.seen == 11 and len(list((tmp_path / "s").iterdir())) == 2


def test_unreadable_images_raise_or_are_recorded(tmp_path):
    manifest, table = make_images(tmp_path / "imgs", toy_rows(4))
    paths = read_manifest(manifest)["path"].tolist()
    Path(paths[2]).write_bytes(b"\x89PNG broken")
    with pytest.raises(ImageError, match="img_02.png"):
        P.score_images(TableTeacher(table), paths, tmp_path / "s", progress=False)
    rep = P.score_images(TableTeacher(table), paths, tmp_path / "s2", skip_bad=True, progress=False)
    assert [Path(p).name for p, _ in rep.failed] == ["img_02.png"]
    assert np.isnan(rep.frame.loc[2, list(P.PROB_COLUMNS)].to_numpy(dtype=float)).all()
    assert "unreadable" in rep.frame.loc[2, "error"]
    reread = P.score_images(TableTeacher(table), paths, tmp_path / "s2", skip_bad=True, progress=False)
    assert reread.reused == 4 and len(reread.failed) == 1
    with pytest.raises(P.PseudolabelError, match="duplicate"):
        P.score_images(TableTeacher(table), paths + paths[:1], tmp_path / "s3", progress=False)


# --- the labeled dataset -----------------------------------------------------------------------------
def test_pseudolabel_writes_copied_images_manifest_and_counts(tmp_path):
    rows = [canonical_row(happy=0.9), canonical_row(happy=0.7), canonical_row(happy=0.95), canonical_row(sad=0.6),
            canonical_row(fear=0.2), canonical_row(surprise=0.4)]
    manifest, table = make_images(tmp_path / "toyface", rows)
    out = tmp_path / "out"
    res = P.pseudolabel(TableTeacher(table), manifest, out, threshold=0.3, per_class=2, progress=False)
    m = read_manifest(out / "manifest.csv")
    assert list(m.columns[:6]) == ["path", "label", "score", "source_path", "source", "teacher"]
    assert list(m.columns[6:13]) == list(P.PROB_COLUMNS) and "identity" in m.columns
    assert m["label"].tolist() == ["happy", "happy", "sad", "surprise"]
    assert [Path(s).name for s in m["source_path"]] == ["img_02.png", "img_00.png", "img_03.png", "img_05.png"]
    assert m["identity"].tolist() == ["id_2", "id_0", "id_0", "id_2"]
    assert m["input_score"].tolist() == [20, 0, 30, 50]  # an input column named like an output one is kept apart
    assert set(m["source"]) == {"toyface"} and set(m["teacher"]) == {"table:test"}
    for path, src, label in zip(m["path"], m["source_path"], m["label"]):
        assert Path(path).parent == (out / "images" / label).resolve()
        assert Path(path).read_bytes() == (out / src).resolve().read_bytes()  # a copy, source_path relative
        assert not Path(path).is_symlink()
    assert Path(m["path"][0]).name == "id_2__img_02.png"
    counts = json.loads((out / "counts.json").read_text())
    assert counts["selected"]["happy"] == 2 and counts["above_threshold"]["happy"] == 3
    assert counts["short_classes"] == ["anger", "disgust", "fear", "neutral", "sad", "surprise"]
    assert counts["link"] == "copy" and counts["source"] == "toyface"
    scores = P.read_scores(out / "scores.csv")
    assert len(scores) == 6 and res.selection.counts["n_selected"] == 4
    # rerun with a stricter threshold: scores reused, stale images removed
    teacher = TableTeacher(table)
    P.pseudolabel(teacher, manifest, out, threshold=0.8, per_class=2, progress=False)
    assert teacher.seen == 0
    assert sorted(p.name for p in (out / "images").rglob("*.png")) == ["id_0__img_00.png", "id_2__img_02.png"]
    assert read_manifest(out / "manifest.csv")["label"].tolist() == ["happy", "happy"]


@pytest.mark.parametrize("link", ["hardlink", "symlink", "none"])
def test_link_modes(tmp_path, link):
    manifest, table = make_images(tmp_path / "flat", [canonical_row(anger=0.9), canonical_row(fear=0.8)],
                                  ident=False)
    P.pseudolabel(TableTeacher(table), manifest, tmp_path / "o", threshold=0.3, per_class=5, link=link,
                  progress=False)
    m = read_manifest(tmp_path / "o" / "manifest.csv")
    srcs = [str((tmp_path / "o" / s).resolve()) for s in m["source_path"]]
    if link == "none":
        assert m["path"].tolist() == srcs and not (tmp_path / "o" / "images").exists()
    elif link == "hardlink":
        assert all(os.path.samefile(p, s) for p, s in zip(m["path"], srcs))
    else:
        assert all(Path(p).is_symlink() and os.path.samefile(p, s) for p, s in zip(m["path"], srcs))


def test_csv_row_sources_are_materialised_as_png(tmp_path):
    csv = tmp_path / "fer2013.csv"
    pix = [" ".join(str(v) for v in [i] * 16) for i in range(3)]
    pd.DataFrame({"emotion": [0, 3, 6], "pixels": pix, "Usage": "Training"}).to_csv(csv, index=False)
    paths = [f"{csv}#row={i}" for i in range(3)]
    write_manifest(pd.DataFrame({"path": paths, "label": ["anger", "happy", "neutral"]}), tmp_path / "m.csv")
    table = np.stack([canonical_row(sad=0.5), canonical_row(happy=0.6), canonical_row(neutral=0.1)])
    P.pseudolabel(TableTeacher(table), tmp_path / "m.csv", tmp_path / "o", threshold=0.3, per_class=3,
                  progress=False)
    m = read_manifest(tmp_path / "o" / "manifest.csv")
    assert [Path(p).name for p in m["path"]] == ["fer2013_row1.png", "fer2013_row0.png"]
    # on disk relative to the manifest's folder (the output can move with its inputs), in memory absolute
    assert pd.read_csv(tmp_path / "o" / "manifest.csv")["source_path"].tolist() == ["../fer2013.csv#row=1",
                                                                                    "../fer2013.csv#row=0"]
    assert m["source_path"].tolist() == [f"{csv}#row=1", f"{csv}#row=0"]
    assert m["input_label"].tolist() == ["happy", "anger"]  # input labels kept apart, never used
    assert np.asarray(Image.open(m["path"][0])).max() == 1


# --- analyses ------------------------------------------------------------------------------------------
def test_precision_recall_and_reliability_exact_values(tmp_path):
    # canonical probabilities; truth chosen so the numbers are easy to check by hand
    probs = np.zeros((5, 7))
    probs[0, L.index("happy")], probs[0, L.index("sad")] = 0.95, 0.05  # happy, right, conf 0.95
    probs[1, L.index("happy")], probs[1, L.index("sad")] = 0.55, 0.45  # happy, wrong (sad), conf 0.55
    probs[2, L.index("sad")], probs[2, L.index("fear")] = 0.85, 0.15  # sad, right, conf 0.85
    probs[3, L.index("fear")], probs[3, L.index("sad")] = 0.35, 0.65  # sad, wrong (fear), conf 0.65
    probs[4, L.index("fear")], probs[4, L.index("anger")] = 0.25, 0.75  # anger, wrong (fear), conf 0.75
    df = scores_frame(probs, [f"{i}.png" for i in range(5)])
    truth_dir = tmp_path
    pd.DataFrame({"path": df["path"], "expression": ["happy", "sad", "sad", "fear", "fear"]}).to_csv(
        truth_dir / "truth.csv", index=False)
    df["path"] = [str((tmp_path / p).resolve()) for p in df["path"]]
    t = P.attach_truth(df, truth_dir / "truth.csv")
    pr = P.precision_recall(t, [0.5, 0.8]).set_index(["threshold", "label"])
    assert pr.loc[(0.5, "happy"), ["selected", "correct", "true_total"]].tolist() == [2, 1, 1]
    assert pr.loc[(0.5, "happy"), "precision"] == 0.5 and pr.loc[(0.5, "happy"), "recall"] == 1.0
    assert pr.loc[(0.5, "sad"), "precision"] == 0.5 and pr.loc[(0.5, "sad"), "recall"] == 0.5
    assert pr.loc[(0.5, "fear"), "selected"] == 0 and np.isnan(pr.loc[(0.5, "fear"), "precision"])
    assert pr.loc[(0.5, "fear"), "recall"] == 0.0 and np.isnan(pr.loc[(0.5, "neutral"), "recall"])
    assert pr.loc[(0.8, "all"), ["selected", "correct"]].tolist() == [2, 2]
    assert pr.loc[(0.5, "all"), "precision"] == 0.4
    table, ece = P.reliability(t, bins=4)  # bins (0,.25] (.25,.5] (.5,.75] (.75,1]
    assert table["n"].tolist() == [0, 0, 3, 2]
    np.testing.assert_allclose(table.loc[2, ["confidence", "accuracy"]].astype(float), [(0.55 + 0.65 + 0.75) / 3, 0.0])
    np.testing.assert_allclose(table.loc[3, ["confidence", "accuracy"]].astype(float), [0.9, 1.0])
    assert ece == pytest.approx((3 * 0.65 + 2 * 0.1) / 5)
    m = P.world_metrics(P.precision_recall(t, [0.5]), 0.5, ece)
    assert m["world_precision_happy"] == 0.5 and m["world_recall_all"] == 0.4
    assert m["world_precision_fear"] is None and json.loads(json.dumps(m)) == m  # JSON null, not NaN
    surv = P.survivors(t, [0.5, 0.8]).set_index(["threshold", "label"])["n"]
    assert surv[(0.5, "happy")] == 2 and surv[(0.8, "happy")] == 1 and surv[(0.8, "sad")] == 1
    with pytest.raises(P.PseudolabelError, match="no truth"):
        P.attach_truth(df.assign(path=df["path"] + "x"), truth_dir / "truth.csv")


# --- CLI with an ONNX teacher --------------------------------------------------------------------------
class _RedIsHappy(nn.Module):
    """Logits from the mean colour: red -> native 2, green -> native 0 (so labels decide the class)."""

    def forward(self, x):
        m = x.mean(dim=(2, 3))
        zero = m[:, :1] * 0
        return torch.cat([m[:, 1:2] * 10, zero, m[:, 0:1] * 10, zero, zero, zero, zero], dim=1)


def test_cli_with_an_onnx_teacher(tmp_path, capsys):
    folder = tmp_path / "faces"
    folder.mkdir()
    colours = [(255, 0, 0), (250, 0, 0), (0, 255, 0), (0, 0, 255)]
    for i, c in enumerate(colours):
        Image.new("RGB", (8, 8), c).save(folder / f"{i}.png")
    write_manifest(pd.DataFrame({"path": [str(folder / f"{i}.png") for i in range(4)]}), folder / "m.csv")
    onnx_file = tmp_path / "red.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(_RedIsHappy(), (torch.zeros(1, 3, 8, 8),), str(onnx_file), dynamo=False,
                          input_names=["x"], dynamic_axes={"x": {0: "n"}})
    # native order: 0 surprise, 1 neutral, 2 happy, ...
    rc = cli.main(["pseudolabel", "--teacher", f"onnx:{onnx_file}", "--images", str(folder / "m.csv"),
                   "--threshold", "0.5", "--per-class", "1", "--out", str(tmp_path / "out"), "--no-progress",
                   "--teacher-labels", ",".join(["surprise", "neutral", "happy", "anger", "sad", "fear", "disgust"]),
                   "--teacher-input-size", "8", "8"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "2 of 4 images kept" in text and "short of K=1" in text
    m = read_manifest(tmp_path / "out" / "manifest.csv")
    assert m["label"].tolist() == ["happy", "surprise"]
    assert [Path(s).name for s in m["source_path"]] == ["0.png", "2.png"]  # red 255 beats red 250
    assert m["source"].tolist() == ["faces", "faces"] and m["teacher"][0] == f"onnx:{onnx_file}"
    rc = cli.main(["pseudolabel", "--teacher", f"onnx:{onnx_file}", "--images", str(folder / "m.csv"),
                   "--out", str(tmp_path / "o2"), "--no-progress"])
    assert rc == 1 and "label order is required" in capsys.readouterr().err


def test_score_cache_is_the_same_in_two_checkouts(tmp_path):
    """The score folder's key and its shards do not depend on where the project lives (a DVC-tracked output)."""
    dirs = []
    for where in ("a", "b/deeper"):
        manifest, table = make_images(tmp_path / where / "imgs", toy_rows(6))
        paths = read_manifest(manifest)["path"].tolist()
        dirs.append(P.score_images(TableTeacher(table), paths, tmp_path / where / "scores", batch_size=2,
                                   shard_size=4, progress=False).directory)
    assert dirs[0].name == dirs[1].name
    assert sorted(p.name for p in dirs[0].iterdir()) == ["meta.json", "part-00000.csv", "part-00001.csv"]
    for f in dirs[0].iterdir():
        assert f.read_bytes() == (dirs[1] / f.name).read_bytes(), f.name
