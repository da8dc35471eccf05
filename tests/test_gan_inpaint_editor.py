"""The inpainting editor as the pipeline runs it (syntfer.strategies.gan.inpaint, .landmarks, .editors): faces aligned
by a landmark predictor in their boxes, pixels outside the warped-back mask unchanged, the registry picking the kind
from editor.json, the paper's crop path with its seam repair, a whole edit set written with a manifest, and bad
folders, landmark cells and predictors named."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from syntfer.core import labels as L
from syntfer.strategies.gan import landmarks as LM
from syntfer.strategies.gan.controls import ControlValue
from syntfer.strategies.gan.editing import DegradeConfig, DenoiseRestorer, edit_images, edit_path
from syntfer.strategies.gan.editors import editor_kind, load_editor
from syntfer.strategies.gan.inpaint import (TEMPLATE, InpaintConfig, InpaintEditor, InpaintError, Inpainter,
                                            condition, face_ellipse, inner_mask, load_inpaint_editor,
                                            save_inpaint_editor)
from syntfer.strategies.gan.networks import Generator
from syntfer.strategies.gan.sets import plan_recipe, render_edit_set

LM96 = TEMPLATE * 1.2 + 8  # a face's 5 points in a 96-px image: the template scaled 1.2 and shifted 8 px


def _editor(channels: int = 8, mask=(1.0, 1.0, 1.0, 0.35)) -> InpaintEditor:
    torch.manual_seed(0)
    return InpaintEditor(Inpainter(channels), InpaintConfig(channels=channels, mask=mask), 7,
                         landmarks=lambda image, frame: LM96)


def test_an_edit_changes_only_the_warped_back_mask_and_grows_with_its_size():
    img = (np.random.default_rng(0).random((96, 96, 3)) * 255).astype(np.uint8)
    codes = [ControlValue.from_polar("surprise", 1.0, 0.0, "F")]
    sizes = []
    for mask in ((1.0, 1.0, 1.0, 0.35), (1.35, 1.2, 1.15, 0.25)):
        res = edit_images([img], [(0, 0, 96, 96)], codes, _editor(mask=mask), None, None, [None])
        changed = (res.pasted[0] != img).any(2)
        e = face_ellipse((96, 96), LM96, *mask[:3])
        assert res.path == "full" and changed.any() and not changed[e > 1.02].any()
        assert res.crops[0].shape == (64, 64, 3)
        sizes.append(int(changed.sum()))
    assert sizes[1] > 1.3 * sizes[0]  # the larger mask (brows and an open mouth inside it) draws more


def test_the_crop_path_pastes_the_whole_square_and_repairs_its_seam():
    img = (np.random.default_rng(1).random((96, 96, 3)) * 255).astype(np.uint8)
    code = [ControlValue.from_polar("anger", 1.0, 0.0, "F")]
    ed = _editor()
    assert edit_path(ed, "crop") == "crop" and edit_path(ed, "full") == "full"
    full = edit_images([img], [(8, 8, 80, 80)], code, ed, None, None, [None])
    crop = edit_images([img], [(8, 8, 80, 80)], code, ed, DenoiseRestorer(), DegradeConfig(),
                       [np.random.default_rng(0)], resolution="crop")
    assert crop.path == "crop" and (crop.pasted[0] != img).any(2).sum() > (full.pasted[0] != img).any(2).sum()
    assert not np.array_equal(crop.repaired[0], crop.pasted[0])  # the seam repair ran on the crop path only
    assert np.array_equal(full.repaired[0], full.pasted[0])


def test_rho_blends_the_condition_from_neutral_and_neutral_is_one_hot():
    assert torch.equal(condition("happy", 0.0), condition("neutral"))
    c = condition("fear", 0.25)[0]
    assert c[L.CLASS_TO_INDEX["fear"]] == 0.25 and c[L.CLASS_TO_INDEX["neutral"]] == 0.75
    ed = _editor()
    crops = np.zeros((2, 64, 64, 3), np.uint8)
    a = ed.draw(crops, [ControlValue.from_polar("happy", 0.0, 0.0, "V"), ControlValue("neutral", 0.05, 0.0, "V")])
    assert np.allclose(a[0], a[1])  # ρ = 0 of any class draws what neutral draws; a V neutral is neutral
    with pytest.raises(InpaintError, match="label 'contempt' is not one of"):
        condition("contempt")


def test_save_load_and_the_registry(tmp_path):
    ed = _editor(mask=(1.35, 1.2, 1.15, 0.25))
    save_inpaint_editor(tmp_path / "e", ed.g, ed.cfg, ed.step, {"trained_on": "test"})
    meta = json.loads((tmp_path / "e" / "editor.json").read_text())
    assert meta["kind"] == "inpaint" and meta["trained_on"] == "test"
    assert editor_kind(tmp_path / "e") == "inpaint"
    back = load_editor(tmp_path / "e")
    assert isinstance(back, InpaintEditor) and back.cfg == ed.cfg and back.step == 7 and back.landmarks is None
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    m = torch.from_numpy(inner_mask(64, *ed.cfg.mask))[None, None]
    with torch.no_grad():
        assert torch.allclose(ed.g(x, m, condition("sad")), back.g(x, m, condition("sad")), atol=2e-2)
    img = np.zeros((96, 96, 3), np.uint8)
    with pytest.raises(InpaintError, match="no landmark predictor"):
        edit_images([img], [(0, 0, 96, 96)], [ControlValue("sad", 1.0, 0.0, "F")], back, None, None, [None])
    with pytest.raises(LM.LandmarkError, match="nope.dat: landmark predictor not found"):
        load_editor(tmp_path / "e", landmarks=tmp_path / "nope.dat")
    # a folder of the other kind still loads as a generator
    from syntfer.strategies.gan.networks import EditorConfig, save_generator
    save_generator(tmp_path / "g", Generator(EditorConfig(image_size=32, conv_dim=8, repeat_num=1)))
    assert editor_kind(tmp_path / "g") == "generator" and isinstance(load_editor(tmp_path / "g"), Generator)
    # bad folders are named
    (tmp_path / "e" / "editor.json").write_text(json.dumps({**meta, "config": {**meta["config"], "channels": 16}}))
    with pytest.raises(InpaintError, match="8 channels, .*editor.json says 16"):
        load_inpaint_editor(tmp_path / "e")
    (tmp_path / "e" / "editor.json").write_text(json.dumps({**meta, "config": {**meta["config"], "wings": 2}}))
    with pytest.raises(InpaintError, match=r"unknown inpainting-editor field\(s\) \['wings'\]"):
        load_inpaint_editor(tmp_path / "e")
    with pytest.raises(InpaintError, match="mask"):
        InpaintConfig(mask=(1.0, 1.0, 0.0, 0.3))


def test_render_edit_set_writes_inpainted_sets_with_a_manifest(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(2)
    rows = []
    for i in range(4):
        p = tmp_path / f"{i}.png"
        Image.fromarray((rng.random((96, 96, 3)) * 255).astype(np.uint8)).save(p)
        rows.append({"source_path": str(p), "identity": f"id{i}", "face_x": 10, "face_y": 8, "face_width": 76,
                     "face_height": 80})
    plan = plan_recipe(pd.DataFrame(rows), "70")
    m = render_edit_set(plan, _editor(), tmp_path / "set", variant="V", seed=0, restorer=None, progress=False)
    assert len(m) == 28 and (m["restorer"] == "none (inner face drawn (full resolution))").all()
    assert ((m["rho"] >= 0.5) & (m["rho"] <= 1.2) | (m["label"] == "neutral")).all()
    summary = json.loads((tmp_path / "set" / "summary.json").read_text())
    assert summary["generator"]["kind"] == "inpaint" and summary["edit_path"] == "full"


def test_five_points_from_68_and_bad_cells():
    p68 = np.arange(136, dtype=float).reshape(68, 2)
    five = LM.five_points(";".join(str(v) for v in p68.ravel()))
    assert np.allclose(five[0], p68[36:42].mean(0)) and np.allclose(five[2], p68[30]) and np.allclose(five[4], p68[54])
    with pytest.raises(LM.LandmarkError, match=r"training.csv, line 3: 6 landmark numbers; expected 10"):
        LM.five_points("1;2;3;4;5;6", "training.csv, line 3")
    with pytest.raises(LM.LandmarkError, match="are not numbers"):
        LM.five_points("1;x;3", "here")


def _dots(rng, n):
    """n 64-px images: a grey face disc in a box that moves and scales, 5 dark dots jittered around the template."""
    images, boxes, points = [], [], []
    for _ in range(n):
        img = np.full((80, 80, 3), 200, np.uint8)
        s = rng.uniform(44, 56)
        x0, y0 = rng.uniform(4, 80 - s - 4, 2)
        cv2.ellipse(img, (int(x0 + s / 2), int(y0 + s / 2)), (int(s / 2), int(s / 2)), 0, 0, 360, (120, 120, 120), -1)
        pts = np.array([x0, y0]) + (TEMPLATE / 64.0) * s + rng.uniform(-3, 3, (5, 2)) * s / 64
        for x, y in pts:
            cv2.circle(img, (int(round(x)), int(round(y))), 2, (10, 10, 10), -1)
        images.append(img)
        boxes.append((x0, y0, s, s))
        points.append(pts)
    return images, boxes, points


def test_a_trained_predictor_finds_the_points_better_than_the_box_alone(tmp_path):
    rng = np.random.default_rng(0)
    images, boxes, points = _dots(rng, 160)
    path = LM.train_predictor(images[:120], boxes[:120], points[:120], tmp_path / "p.dat", trees=30, cascade=6,
                              oversampling=5, threads=1)
    pred = LM.LandmarkPredictor(path)
    found = np.stack([pred(im, b) for im, b in zip(images[120:], boxes[120:])])
    template = np.stack([np.array(b[:2]) + TEMPLATE / 64.0 * b[2] for b in boxes[120:]])
    err, base = LM.errors(found, np.stack(points[120:])), LM.errors(template, np.stack(points[120:]))
    assert err["nme"].mean() < 0.6 * base["nme"].mean()
    with pytest.raises(LM.LandmarkError, match="not a dlib shape predictor"):
        (tmp_path / "bad.dat").write_bytes(b"not a model")
        LM.LandmarkPredictor(tmp_path / "bad.dat")
    with pytest.raises(LM.LandmarkError, match="expected equal, non-zero counts"):
        LM.train_predictor(images[:2], boxes[:1], points[:2], tmp_path / "q.dat")


def test_gamma_maps_rho_to_strength_as_the_pipeline_asks(tmp_path):
    ed = _editor()
    save_inpaint_editor(tmp_path / "e", ed.g, ed.cfg, ed.step)
    half = load_editor(tmp_path / "e", "interpolate", 0.5)
    assert half.gamma == 0.5 and load_editor(tmp_path / "e", "learned", 0.5).gamma == 1.0
    crops = (np.random.default_rng(3).random((1, 64, 64, 3)) * 255).astype(np.uint8)
    a = half.draw(crops, [ControlValue.from_polar("fear", 0.25, 0.0, "V")])  # strength 0.25 ** 0.5 = 0.5
    b = load_editor(tmp_path / "e").draw(crops, [ControlValue.from_polar("fear", 0.5, 0.0, "V")])
    assert np.allclose(a, b, atol=1e-3)
    with pytest.raises(InpaintError, match="intensity gamma 0"):
        InpaintEditor(ed.g, ed.cfg, gamma=0)
