"""scripts/gan_probes.py: the probes of issue #30's downstream gap — a class-balanced selection of edits (by the
source's expression, or by a teacher's probability of the target) and the mouth transplant (a labelled face's mouth
aligned by its corners onto an edit or its source, nothing outside the mouth's ellipse changed)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from syntfer.core import labels as L

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("gan_probes", ROOT / "scripts" / "gan_probes.py")
P = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(P)

LM = np.array([[20, 24], [44, 24], [32, 34], [24, 46], [40, 46]], dtype=float)  # a 64-px face's 5 points


def _cell(lm: np.ndarray) -> str:
    return ";".join(f"{v:.1f}" for v in lm.ravel())


def _donor(scale: float = 2.0, shift=(10, 6)) -> tuple[np.ndarray, np.ndarray]:
    """A flat face twice the size, elsewhere, with a black mouth bar between its corners."""
    img = np.full((160, 160, 3), 150, np.uint8)
    lm = LM * scale + np.array(shift)
    (x0, y), (x1, _) = lm[3], lm[4]
    img[int(y) - 3:int(y) + 4, int(x0):int(x1) + 1] = 0
    return img, lm


def test_transplant_puts_the_donor_mouth_on_the_target_corners_and_nothing_else_changes():
    target = np.full((64, 64, 3), 90, np.uint8)
    target[..., 2] = 120
    donor, dlm = _donor()
    out = P.transplant(target, LM, donor, dlm)
    mid = LM[3:5].mean(0).astype(int)
    assert out[mid[1], mid[0]].mean() < target[mid[1], mid[0]].mean() - 40  # the dark mouth, where the corners are
    assert out[mid[1] - 8, mid[0]].mean() == pytest.approx(target[0, 0].mean(), abs=3)  # skin matched to the target
    outside = P.mouth_ellipse((64, 64), LM[3:5]) >= 1.0
    assert outside.sum() > 3000 and (out[outside] == target[outside]).all()
    with pytest.raises(P.ProbeError, match="mouth landmarks less than a pixel apart"):
        P.transplant(target, np.repeat(LM[:1], 5, 0), donor, dlm)
    with pytest.raises(P.ProbeError, match="region 'nose'"):
        P.transplant(target, LM, donor, dlm, "nose")


def test_the_inner_face_transplant_moves_the_donor_brows_and_mouth_and_keeps_the_outline():
    target = np.full((64, 64, 3), 90, np.uint8)
    donor, dlm = _donor()
    x0, x1 = int(dlm[0, 0]), int(dlm[1, 0])
    y = int(dlm[0, 1] - 10)  # a dark brow bar 5 px (2.5 target px) above the donor's eyes
    donor[y - 2:y + 3, x0:x1 + 1] = 0
    out = P.transplant(target, LM, donor, dlm, "face")
    brow = (LM[0] + LM[1]) / 2 - np.array([0, 5])
    assert out[int(brow[1]), int(brow[0])].mean() < 60  # the donor's brow, where the target's would be
    mid = LM[3:5].mean(0).astype(int)
    assert out[mid[1], mid[0]].mean() < 60
    outside = P.face_ellipse((64, 64), LM) >= 1.0
    assert outside.sum() > 1500 and (out[outside] == target[outside]).all()
    assert not (P.transplant(target, LM, donor, dlm, "mouth")[int(brow[1]), int(brow[0])] < 60).all()


def test_upper_only_keeps_the_edit_above_the_nose_and_the_source_below():
    edit, src = np.full((64, 64, 3), 200, np.uint8), np.full((64, 64, 3), 10, np.uint8)
    out = P.upper_only(edit, src, LM)
    assert (out[:int(LM[2, 1]) + 1] == 200).all() and (out[int(LM[2, 1] + 8) + 1:] == 10).all()


def test_landmarks_are_checked():
    assert P.landmarks(_cell(LM), "x").shape == (5, 2)
    with pytest.raises(P.ProbeError, match=r"t\.csv: landmarks '1;2' have 2 numbers, expected 10"):
        P.landmarks("1;2", "t.csv")
    with pytest.raises(P.ProbeError, match="are not numbers"):
        P.landmarks("a;b", "t.csv")


def _edits(tmp_path: Path, per_source_class: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """An edit set: 6 sources (3 neutral, 3 happy) x 7 classes, and the sources' truth."""
    truth = pd.DataFrame({"path": [f"{i}.png" for i in range(6)], "expression": ["neutral"] * 3 + ["happy"] * 3,
                          "landmarks": [_cell(LM)] * 6})
    truth.to_csv(tmp_path / "truth.csv", index=False)
    rows = [{"path": str(tmp_path / f"e{i}_{c}.png"), "label": c, "source_path": str(tmp_path / f"{i}.png")}
            for i in range(6) for c in L.CLASSES]
    return pd.DataFrame(rows), P.read_truth(tmp_path / "truth.csv")


def test_select_by_the_source_expression_and_by_the_teacher(tmp_path):
    edits, truth = _edits(tmp_path)
    neutral = P.select(edits, 2, 0, source_truth=truth, source_expression="neutral")
    assert neutral["label"].value_counts().to_dict() == {c: 2 for c in L.CLASSES}
    assert set(neutral["source_path"]) <= {str(tmp_path / f"{i}.png") for i in range(3)}
    with pytest.raises(P.ProbeError, match=r"fewer than 4 rows for \{'anger': 3"):
        P.select(edits, 4, 0, source_truth=truth, source_expression="neutral")
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(L.NUM_CLASSES), len(edits))
    scores = pd.DataFrame(probs, columns=[f"p_{c}" for c in L.CLASSES]).assign(path=edits["path"])
    top = P.select(edits, 2, 0, scores=scores)
    for c in L.CLASSES:
        p = probs[(edits["label"] == c).to_numpy(), L.CLASS_TO_INDEX[c]]
        assert sorted(top.loc[top["label"] == c, "p_target"], reverse=True) == sorted(p, reverse=True)[:2]
    with pytest.raises(P.ProbeError, match="without a teacher score"):
        P.select(edits, 2, 0, scores=scores.iloc[1:])


def test_transplant_set_writes_a_manifest_and_resumes(tmp_path):
    edits, truth = _edits(tmp_path)
    for i in range(6):
        Image.fromarray(np.full((64, 64, 3), 100 + i, np.uint8)).save(tmp_path / f"{i}.png")
    for p in edits["path"]:
        Image.fromarray(np.full((64, 64, 3), 60, np.uint8)).save(p)
    donor, dlm = _donor()
    Image.fromarray(donor).save(tmp_path / "d.png")
    bank = pd.DataFrame({"path": ["d.png"] * 7, "split": "train", "expression": L.CLASSES,
                         "landmarks": [_cell(dlm)] * 7})
    bank.to_csv(tmp_path / "bank.csv", index=False)
    bank = P.read_truth(tmp_path / "bank.csv")
    man = P.transplant_set(edits.iloc[:7], tmp_path / "t", bank, truth, onto="sources", seed=0)
    assert len(man) == 7 and (tmp_path / "t" / "manifest.csv").is_file()
    img = np.asarray(Image.open(tmp_path / "t" / man["path"][0]))
    assert img[0, 0].tolist() == [100, 100, 100]  # the source (onto sources), unchanged away from the mouth
    mid = LM[3:5].mean(0).astype(int)
    assert img[mid[1], mid[0]].mean() < 60
    before = (tmp_path / "t" / man["path"][0]).stat().st_mtime_ns
    P.transplant_set(edits.iloc[:7], tmp_path / "t", bank, truth, onto="sources", seed=0)
    assert (tmp_path / "t" / man["path"][0]).stat().st_mtime_ns == before  # kept: a rerun resumes
    with pytest.raises(P.ProbeError, match=r"bank: no training face of class\(es\) \['surprise'\]"):
        P.transplant_set(edits.iloc[:7], tmp_path / "u", bank.iloc[:6], truth)


def test_identity_kept_is_one_for_the_source_itself_and_less_for_another_face(tmp_path):
    import torch

    from syntfer.instruments.identity_encoder import IdentityConfig, IdentityEncoder, save_identity_encoder

    torch.manual_seed(0)
    save_identity_encoder(tmp_path / "enc", IdentityEncoder(IdentityConfig()).eval())
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).save(tmp_path / f"{name}.png")
    a, b = str(tmp_path / "a.png"), str(tmp_path / "b.png")
    boxes = pd.DataFrame({"face_x": [8], "face_y": [6], "face_width": [44], "face_height": [50]}, index=[a])
    same = P.identity_kept(pd.DataFrame({"path": [a], "source_path": [a]}), boxes, tmp_path / "enc")
    other = P.identity_kept(pd.DataFrame({"path": [b], "source_path": [a]}), boxes, tmp_path / "enc")
    assert same == pytest.approx(1.0, abs=1e-5) and other < same
    with pytest.raises(P.ProbeError, match="without a face box"):
        P.identity_kept(pd.DataFrame({"path": [a], "source_path": [b]}), boxes, tmp_path / "enc")


def test_measure_reads_fidelity_over_ceiling_sharpness_and_identity(tmp_path):
    import cv2
    import torch

    from syntfer.instruments.identity_encoder import IdentityConfig, IdentityEncoder, save_identity_encoder
    from syntfer.instruments.judge import JudgeError, JudgeOutputs

    class HappyJudge:  # reads every image as 'happy'
        def outputs(self, images):
            probs = np.full((len(images), L.NUM_CLASSES), 0.01)
            probs[:, L.CLASS_TO_INDEX["happy"]] = 1 - 0.01 * (L.NUM_CLASSES - 1)
            return JudgeOutputs(probs, np.log(probs), np.zeros((len(images), 2)))

    torch.manual_seed(0)
    save_identity_encoder(tmp_path / "enc", IdentityEncoder(IdentityConfig()).eval())
    src = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    Image.fromarray(src).save(tmp_path / "s.png")
    Image.fromarray(cv2.GaussianBlur(src, (0, 0), 1.5)).save(tmp_path / "b.png")
    s, b = str(tmp_path / "s.png"), str(tmp_path / "b.png")
    pd.DataFrame([{"domain": "ref_ffhq", "class": c, "n": 10, "fidelity": 0.8, "p_label": 0.7}
                  for c in (*L.CLASSES, "mean_class")]
                 ).to_csv(tmp_path / "ceiling.csv", index=False)
    boxes = pd.DataFrame({"face_x": [8], "face_y": [6], "face_width": [44], "face_height": [50]}, index=[s])
    m = pd.DataFrame({"path": [s, b, s], "label": ["happy", "happy", "sad"], "source_path": [s, s, s]})
    summary, tab = P.measure(m, boxes, HappyJudge(), tmp_path / "ceiling.csv", "ref_ffhq", tmp_path / "enc")
    assert tab["class"].tolist() == ["happy", "sad"] and tab["fidelity"].tolist() == [1.0, 0.0]
    assert tab["over_ceiling"].tolist() == pytest.approx([1.25, 0.0])
    assert summary["fidelity"] == pytest.approx(0.5) and summary["fidelity_over_ceiling"] == pytest.approx(0.625)
    assert summary["worst_class_over_ceiling"] == 0.0 and summary["images"] == 3
    assert summary["sharpness_ratio"] == pytest.approx(1.0)  # two of three images are the source itself
    blurred, _ = P.measure(m.iloc[[1]], boxes, HappyJudge(), tmp_path / "ceiling.csv", "ref_ffhq", tmp_path / "enc")
    assert blurred["sharpness_ratio"] < 0.5 and blurred["identity"] < summary["identity"] <= 1.0 + 1e-6
    with pytest.raises(JudgeError, match="ref_web"):
        P.measure(m, boxes, HappyJudge(), tmp_path / "ceiling.csv", "ref_web", tmp_path / "enc")
    with pytest.raises(P.ProbeError, match="without a face box"):
        P.measure(m.assign(source_path=b), boxes, HappyJudge(), tmp_path / "ceiling.csv", "ref_ffhq", tmp_path / "enc")
