"""Issue #30 (experimental): the flow editor's masked appearance residual (`EditorConfig.appearance`).

The residual is zero outside its fixed mask and bounded inside it, the default (warp-only) editor is unchanged byte
for byte, a warp editor's weights start an appearance editor exactly at the warp, and training resumes exactly.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from syntfer.core import labels as L
from syntfer.strategies.gan.editing import edit_images, face_mask
from syntfer.strategies.gan.networks import (APPEARANCE_KINDS, APPEARANCE_PALETTE, APPEARANCE_REGIONS, EditorConfig,
                                             Generator, appearance_mask, appearance_masks, load_generator,
                                             region_mask, save_generator)
from syntfer.strategies.gan.training import EditorTrainer, TrainConfig, train_editor

torch.set_num_threads(1)
TINY = dict(image_size=16, conv_dim=4, repeat_num=1, d_conv_dim=4, d_repeat_num=2, flow_grid=4)
COMMITTED = Path(__file__).resolve().parents[1] / "models" / "gan" / "world_flow48"


def _loud(g: Generator) -> Generator:
    """An appearance editor whose residual head is far from zero (random, large weights): the worst case."""
    with torch.no_grad():
        for p in g.appearance_head.parameters():
            p.normal_(0, 3.0)
        for p in g.main.parameters():
            p.normal_(0, 0.5)
    return g.eval()


# ---- the mask and the bound -----------------------------------------------------------------------------------
@pytest.mark.parametrize("region", sorted(APPEARANCE_REGIONS))
def test_masks_are_soft_inside_their_ellipses_and_exactly_zero_outside(region):
    m = region_mask(region, 48)
    assert m.shape == (48, 48) and float(m.min()) == 0.0 and float(m.max()) == 1.0
    c = (torch.arange(48) + 0.5) / 48
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    inside = torch.zeros(48, 48, dtype=torch.bool)
    for cx, cy, rx, ry in APPEARANCE_REGIONS[region]:
        inside |= ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1
    assert bool((m[~inside] == 0).all()) and bool((m[inside] > 0).all())
    assert m[:15].sum() == 0 and m[:, :6].sum() == 0 and m[44:].sum() == 0  # forehead, sides, chin: never
    assert 0.05 < float((m > 0).float().mean()) < 0.25  # a small share of the crop
    with pytest.raises(ValueError, match="region"):
        region_mask("cheeks", 48)


def test_the_dark_colour_is_for_the_mouth_only_and_the_union_bounds_every_kind():
    dark, light = appearance_masks("mouth_eyes", 48)
    assert dark[:28].sum() == 0 and light[:28].sum() > 0  # no darkening above the mouth: eyes only lighten
    assert torch.equal(dark, region_mask("mouth", 48))
    for kind in APPEARANCE_KINDS:
        d, li = appearance_masks(kind, 48)
        assert torch.equal(appearance_mask(kind, 48), torch.maximum(d, li))
    with pytest.raises(ValueError, match="appearance"):
        appearance_masks("stripes", 48)


def test_mouth_open_reaches_an_opened_jaw_but_not_the_nose_or_the_chin():
    # 'mouth_open' (issue #30, second pass): lower and taller than 'mouth', where the world draws a jaw drop's
    # opening (y 0.77-0.90 of the crop), and still exactly zero on the nose (above y 0.695) and the chin (from 0.925)
    m, mouth = region_mask("mouth_open", 48), region_mask("mouth", 48)
    rows = (torch.arange(48) + 0.5) / 48
    on = rows[(m > 0).any(1)]
    assert float(on.min()) > 0.695 and float(on.max()) < 0.925
    assert float(m[41, 24]) > 0.9 and float(mouth[41, 24]) < 0.5  # y 0.865, the centre column: the lower opening
    assert float(m[42, 24]) > 0.5 and float(mouth[42, 24]) < 0.05  # y 0.885: only the new region reaches it
    dark, light = appearance_masks("mouth_open", 48)
    assert torch.equal(dark, m) and torch.equal(light, m)  # both colours, in that ellipse only
    assert float(m[:, :14].sum()) == 0 and float(m[:, 34:].sum()) == 0  # not the cheeks


@pytest.mark.parametrize("kind", sorted(APPEARANCE_KINDS))
@pytest.mark.parametrize("intensity", ["learned", "interpolate"])
def test_residual_is_zero_outside_the_mask_and_bounded_on_random_inputs(intensity, kind):
    torch.manual_seed(0)
    cfg = EditorConfig(appearance=kind, appearance_max=0.3, intensity=intensity, **TINY)
    g = _loud(Generator(cfg))
    mask = g.app_mask[0, 0]
    for trial in range(4):
        x = torch.rand(5, 3, 16, 16) * 2 - 1
        code = torch.randn(5, 2) * (1 + trial)  # up to ρ ≈ 8: 'interpolate' extrapolates far past the class
        with torch.no_grad():
            flow, res = g.edit_parts(x, code)
            y = g(x, code)
        assert bool((res[:, :, mask == 0] == 0).all())
        assert bool((res.abs() <= cfg.appearance_max * mask + 1e-7).all())
        assert float(res.abs().max()) > 0.05  # the head does change pixels inside
        warped = Generator.warp(x, flow)
        assert torch.equal(y[:, :, mask == 0], warped[:, :, mask == 0])  # outside: the warp alone, exactly
        if APPEARANCE_KINDS[kind][2] == "palette":  # only a blend of the warped pixel toward the dark or light colour
            pal = torch.tensor([APPEARANCE_PALETTE["dark"], APPEARANCE_PALETTE["light"]]) * 2 - 1
            ok = res.abs().amax(1) < 1e-6
            for colour, m in zip(pal, (g.app_mask_dark[0, 0], g.app_mask_light[0, 0])):
                frac = res / (colour[None, :, None, None] - warped)  # the same fraction in all three channels
                spread = frac.amax(1) - frac.amin(1)
                ok |= (spread.abs() < 1e-4) & (frac.mean(1) >= -1e-6) & (frac.mean(1) <= m + 1e-6)
            assert bool(ok.all())
        g.use_appearance = False
        with torch.no_grad():
            assert torch.equal(g(x, code), warped)
            assert bool((g.edit_parts(x, code)[1] == 0).all())
        g.use_appearance = True


def test_config_validation_and_files():
    assert "appearance" not in EditorConfig(**TINY).to_dict()  # warp editors keep their editor.json
    cfg = EditorConfig(appearance="mouth_eyes", appearance_max=0.4, **TINY)
    assert cfg.to_dict()["appearance"] == "mouth_eyes" and EditorConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.without_appearance() == EditorConfig(**TINY)
    with pytest.raises(ValueError, match="needs a flow editor"):
        EditorConfig(appearance="mouth_eyes", **{**TINY, "flow_grid": 0})
    with pytest.raises(ValueError, match="appearance="):
        EditorConfig(appearance="stripes", **TINY)
    with pytest.raises(ValueError, match="appearance_max"):
        EditorConfig(appearance="mouth_eyes", appearance_max=0.0, **TINY)
    with pytest.raises(ValueError, match="appearance editor"):
        Generator(EditorConfig(**TINY)).edit_parts(torch.zeros(1, 3, 16, 16), torch.zeros(1, 2))


def test_appearance_editor_round_trips_through_its_files(tmp_path):
    g = _loud(Generator(EditorConfig(appearance="mouth_eyes", **TINY)))
    save_generator(tmp_path, g)
    back = load_generator(tmp_path)
    assert back.cfg == g.cfg
    x, code = torch.rand(2, 3, 16, 16) * 2 - 1, torch.randn(2, 2)
    with torch.no_grad():
        assert torch.equal(back(x, code), g(x, code))
    assert not any(k.startswith("app_mask") for k in back.state_dict())  # the mask is the config's, not a weight


# ---- the default editor is unchanged ---------------------------------------------------------------------------
@pytest.mark.skipif(not (COMMITTED / "generator.pt").is_file(), reason="the committed editor is not checked out")
def test_committed_warp_editor_files_and_outputs_are_unchanged(tmp_path):
    from syntfer.strategies.gan.controls import GANMUT_ORDER  # noqa: F401  (the control space is written too)

    g = load_generator(COMMITTED)
    assert g.cfg.appearance == "none" and not g.appearance_active
    save_generator(tmp_path, g, {"step": json.loads((COMMITTED / "editor.json").read_text())["step"]})
    assert (tmp_path / "editor.json").read_bytes() == (COMMITTED / "editor.json").read_bytes()
    # the outputs the code before the appearance option gave (recorded from the commit that added it, same inputs)
    g = load_generator(COMMITTED, "interpolate", 0.5)
    x = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    code = torch.tensor([[0.6, -0.8], [-0.3, 0.1]])
    with torch.no_grad():
        f, y = g.flow_rgb01(x, code), g.edit_rgb01(x, code)
    np.testing.assert_allclose(f.flatten()[::37].numpy(), [0.027119435369968414, 0.04884779453277588,
                               -0.08398958295583725, 0.023695018142461777, 0.0793401375412941,
                               -0.05008983984589577, -0.04942210763692856], atol=1e-6)
    assert float(f.double().sum()) == pytest.approx(1.4204598132055253, abs=1e-4)
    assert float(y.double().sum()) == pytest.approx(6953.547819644213, abs=1e-2)
    img = (np.random.default_rng(0).random((96, 80, 3)) * 255).astype(np.uint8)
    space = g.control_space()
    res = edit_images([img] * 2, [(10, 12, 60, 60)] * 2, [space.fixed(c) for c in ("fear", "surprise")], g, None,
                      None, [np.random.default_rng(0)] * 2, faces=[(16, 14, 48, 56)] * 2)
    assert [int(o.astype(np.int64).sum()) for o in res.pasted] == pytest.approx([2933960, 2929609], abs=20)


@pytest.mark.skipif(not (COMMITTED / "state.pt").is_file(), reason="the committed editor is not checked out")
def test_an_appearance_editor_started_from_the_committed_warp_is_that_warp():
    cfg = EditorConfig.from_dict({**load_generator(COMMITTED).cfg.to_dict(), "appearance": "mouth_eyes"})
    crops = torch.randint(0, 256, (14, 3, 48, 48), dtype=torch.uint8)
    t = EditorTrainer(cfg, TrainConfig(init_from=str(COMMITTED), batch_size=4), crops, torch.arange(14) % 7)
    warp = load_generator(COMMITTED)
    x, code = torch.rand(3, 3, 48, 48) * 2 - 1, torch.randn(3, 2)
    with torch.no_grad():
        assert torch.equal(t.G.eval()(x, code), warp(x, code))  # zero-initialised head: the committed warp exactly


# ---- training ---------------------------------------------------------------------------------------------------
def _data():
    torch.manual_seed(0)
    return torch.randint(0, 256, (21, 3, 16, 16), dtype=torch.uint8), torch.arange(21) % 7


KW = dict(batch_size=8, n_critic=2, d_warmup_steps=2, log_every=2, ckpt_every=3, n_random=2, lambda_flow_tv=1.0,
          lambda_fold=1.0, lambda_app_l1=1.0, lambda_app_l2=1.0, lambda_app_tv=1.0)


def test_fine_tuning_a_warp_editor_adds_the_head_and_refuses_other_editors(tmp_path):
    crops, labels = _data()
    warp_cfg = EditorConfig(**TINY)
    train_editor(crops, labels, tmp_path / "warp", warp_cfg, TrainConfig(steps=3, **KW), progress=False)
    base = torch.load(tmp_path / "warp" / "state.pt", weights_only=True)
    cfg = EditorConfig(appearance="mouth_eyes", **TINY)
    t = EditorTrainer(cfg, TrainConfig(init_from=str(tmp_path / "warp"), **KW), crops, labels)
    assert all(torch.equal(v, t.G.state_dict()[k]) for k, v in base["G"].items())
    assert all(torch.equal(v, t.D.state_dict()[k]) for k, v in base["D"].items())
    rows = [t.step() for _ in range(4)]
    g_rows = [r for r in rows if "g_app_l1" in r]
    assert g_rows and all(r["g_app_outside"] == 0.0 for r in g_rows)
    assert float(t.G.appearance_head[-1].weight.detach().abs().sum()) > 0  # the head learns from the first generator step
    frozen = EditorTrainer(cfg, TrainConfig(init_from=str(tmp_path / "warp"), freeze_warp=True, **KW), crops, labels)
    for _ in range(4):
        frozen.step()
    assert all(torch.equal(v, frozen.G.state_dict()[k]) for k, v in base["G"].items())  # the warp as loaded
    assert float(frozen.G.appearance_head[-1].weight.detach().abs().sum()) > 0
    with pytest.raises(ValueError, match="freeze_warp"):
        EditorTrainer(warp_cfg, TrainConfig(freeze_warp=True, **KW), crops, labels)
    with pytest.raises(ValueError, match="besides the appearance residual"):
        EditorTrainer(EditorConfig(appearance="mouth_eyes", **{**TINY, "flow_grid": 8}),
                      TrainConfig(init_from=str(tmp_path / "warp"), **KW), crops, labels)


@pytest.mark.slow
def test_training_an_appearance_editor_resumes_exactly(tmp_path):
    crops, labels = _data()
    cfg = EditorConfig(appearance="mouth_eyes", **TINY)
    full = train_editor(crops, labels, tmp_path / "full", cfg, TrainConfig(steps=6, **KW), progress=False)
    train_editor(crops, labels, tmp_path / "part", cfg, TrainConfig(steps=3, **KW), progress=False)
    part = train_editor(crops, labels, tmp_path / "part", cfg, TrainConfig(steps=6, **KW), progress=False)
    assert full.step == part.step == 6
    for f in ("generator.pt", "state.pt"):
        assert (tmp_path / "full" / f).read_bytes() == (tmp_path / "part" / f).read_bytes(), f
    assert {"g_app_l1", "g_app_tv", "g_app_outside"} <= set(part.log.columns)
    with pytest.raises(ValueError, match="resume state"):  # a warp run cannot resume an appearance run's state
        train_editor(crops, labels, tmp_path / "part", EditorConfig(**TINY), TrainConfig(steps=8, **KW),
                     progress=False)


# ---- editing at full resolution ------------------------------------------------------------------------------
def test_full_resolution_edit_adds_the_residual_only_inside_the_face_mask():
    torch.manual_seed(1)
    g = _loud(Generator(EditorConfig(appearance="mouth_eyes", **TINY)))
    img = (np.random.default_rng(0).random((90, 84, 3)) * 255).astype(np.uint8)
    frame, face = (12, 10, 64, 64), (18, 12, 52, 60)
    codes = [g.control_space().fixed(c) for c in ("fear", "surprise")]
    rngs = [np.random.default_rng(0)] * 2
    both = edit_images([img] * 2, [frame] * 2, codes, g, None, None, rngs, faces=[face] * 2)
    g.use_appearance = False
    warp = edit_images([img] * 2, [frame] * 2, codes, g, None, None, rngs, faces=[face] * 2)
    g.use_appearance = True
    outside = face_mask(img.shape[:2], face) <= 0
    for b, w in zip(both.pasted, warp.pasted):
        assert np.array_equal(b[outside], img[outside]) and np.array_equal(w[outside], img[outside])
        diff = np.abs(b.astype(int) - w.astype(int)).max(2)
        assert diff.max() > 0  # the residual shows
        assert diff.max() <= 0.5 * 255 * g.cfg.appearance_max + 1  # at most the bound (in [-1, 1] units)
        ys, xs = np.nonzero(diff)
        # only where the crop's mask is (rows of the eyes and the mouth: 0.36..0.89 of the frame)
        assert ys.min() >= frame[1] + 0.33 * frame[3] and ys.max() <= frame[1] + 0.92 * frame[3]
        assert xs.min() >= frame[0] + 0.14 * frame[2] and xs.max() <= frame[0] + 0.86 * frame[2]


def test_appearance_preview_shows_source_then_warp_and_appearance_per_class(tmp_path):
    from syntfer.strategies.gan.measurements import appearance_preview

    g = _loud(Generator(EditorConfig(appearance="mouth_eyes", **TINY)))
    arr = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "a.png")
    rows = pd.DataFrame({"source_path": [str(tmp_path / "a.png")] * 2, "face_x": [8, 10], "face_y": [6, 8],
                         "face_width": [44, 40], "face_height": [50, 46]})
    grid = appearance_preview(g, rows, L.CLASSES[:3], seed=0, tile=20)
    assert grid.shape == (2 * 20, (1 + 2 * 3) * 20, 3) and g.use_appearance
    plain = appearance_preview(Generator(EditorConfig(**TINY)).eval(), rows, L.CLASSES[:3], seed=0, tile=20)
    assert plain.shape == (2 * 20, (1 + 3) * 20, 3)  # a warp editor: one tile per class


APP = COMMITTED.parent / "world_flow48_app"


@pytest.mark.skipif(not (APP / "state.pt").is_file(), reason="the experimental appearance editor is not checked out")
def test_committed_appearance_editor_keeps_the_warp_and_changes_only_the_mouth():
    from syntfer.core.storage import load_torch

    g = load_generator(APP)
    assert g.cfg.appearance == "mouth_only" and g.cfg.without_appearance() == load_generator(COMMITTED).cfg
    state, warp = load_torch(APP / "state.pt"), load_torch(COMMITTED / "state.pt")
    # trained with --freeze-warp: the resume state's warp is the committed editor's, bit for bit
    assert all(torch.equal(v, state["G"][k]) for k, v in warp["G"].items())
    x = torch.rand(4, 3, 48, 48, generator=torch.Generator().manual_seed(1)) * 2 - 1
    code = g.class_code(torch.arange(4) + 2, 1.0)
    with torch.no_grad():
        _, res = g.edit_parts(x, code)
    assert bool((res[:, :, g.app_mask[0, 0] == 0] == 0).all()) and float(res.abs().max()) <= g.cfg.appearance_max
    assert g.app_mask[0, 0, :30].sum() == 0  # nothing above the mouth


APP2 = COMMITTED.parent / "world_flow48_app2"


@pytest.mark.skipif(not (APP2 / "generator.pt").is_file(), reason="the second appearance editor is not checked out")
def test_second_appearance_editor_changes_only_its_mouth_open_ellipse():
    g = load_generator(APP2)
    assert g.cfg.appearance == "mouth_open"
    assert g.cfg.without_appearance().to_dict() == load_generator(COMMITTED).cfg.to_dict()  # warp fine-tuned, same shape
    x = torch.rand(4, 3, 48, 48, generator=torch.Generator().manual_seed(1)) * 2 - 1
    code = g.class_code(torch.arange(4) + 2, 1.0)
    with torch.no_grad():
        _, res = g.edit_parts(x, code)
    assert bool((res[:, :, g.app_mask[0, 0] == 0] == 0).all()) and float(res.abs().max()) <= g.cfg.appearance_max
    assert g.app_mask[0, 0, :33].sum() == 0 and g.app_mask[0, 0, 44:].sum() == 0  # not the nose, not the chin


ID30 = COMMITTED.parent / "world_flow48_id30"


@pytest.mark.skipif(not (ID30 / "generator.pt").is_file(), reason="the identity-mapping editor is not checked out")
def test_identity_mapping_editor_is_the_committed_warp_fine_tuned_with_the_identity_term():
    g = load_generator(ID30)
    assert g.cfg.to_dict() == load_generator(COMMITTED).cfg.to_dict()  # same networks, no appearance residual
    t = json.loads((ID30 / "train_config.json").read_text())["train_config"]
    assert t["lambda_id"] == 30 and t["init_from"] == "models/gan/world_flow48" and t["steps"] == 3000
    log = pd.read_csv(ID30 / "log.csv")
    assert log["step"].max() == 3000 and log["g_id"].iloc[-8:].mean() < log["g_id"].iloc[:8].mean()
