"""Strategy (iii): GANmut-style editor, control values, paste-back geometry, recipes, resume, official keys."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

from syntfer.core import labels as L
from syntfer.strategies.gan import controls as C
from syntfer.strategies.gan.editing import (DegradeConfig, EditError, band_mask, clip_box, crop_resize, degrade, edit_images,
                                            paste, CodeFormerRestorer)
from syntfer.strategies.gan.measurements import intensity_curve, seam_contrast
from syntfer.strategies.gan.networks import (CheckpointError, Discriminator, EditorConfig, Generator, load_generator,
                                             load_official_generator, save_generator)
from syntfer.strategies.gan.sets import RecipeError, draw_per_class, plan_recipe, render_edit_set
from syntfer.strategies.gan.training import (CANON_TO_CODE, EditorTrainer, TrainConfig, select_per_class, square_box,
                                             train_editor)

torch.set_num_threads(1)
TINY = dict(image_size=16, conv_dim=4, repeat_num=1, d_conv_dim=4, d_repeat_num=2)


# ---- networks -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("control", ["linear", "gaussian"])
def test_shapes(control):
    cfg = EditorConfig(control=control, **TINY)
    g, d = Generator(cfg), Discriminator(cfg)
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    y = g(x, torch.zeros(3, 2))
    assert y.shape == (3, 3, 16, 16) and y.abs().max() <= 1
    src, cls, code = d(y)
    assert src.shape == (3, 1, 4, 4) and cls.shape == (3, 7) and code.shape == (3, 2)
    with pytest.raises(ValueError, match="codes of shape"):
        g(x, torch.zeros(2, 2))


def test_generator_code_is_tiled_as_two_input_channels():
    g = Generator(EditorConfig(**TINY))
    assert g.main[0].weight.shape == (4, 5, 7, 7)
    x = torch.zeros(1, 3, 16, 16)
    assert not torch.allclose(g(x, torch.tensor([[1.0, 0.0]])), g(x, torch.tensor([[-1.0, 0.5]])))


def test_linear_control_model_axes_and_neutral_origin():
    g = Generator(EditorConfig(control="linear", **TINY))
    with torch.no_grad():
        g.axes.weight.copy_(torch.tensor([[3.0, 0.0], [0.0, 2.0], [-1.0, 0.0], [0.0, -5.0], [1.0, 1.0], [-2.0, 2.0]]))
    ax = g.unit_axes()
    assert torch.allclose(ax[0], torch.zeros(2))
    assert torch.allclose(ax[1:].norm(dim=1), torch.ones(6))
    code = g.class_code(torch.tensor([1, 2, 0]), torch.tensor([0.5, 2.0, 1.0]))
    assert torch.allclose(code, torch.tensor([[0.5, 0.0], [0.0, 2.0], [0.0, 0.0]]))
    space = g.control_space()
    assert space.angles["happy"] == pytest.approx(0.0) and space.angles["sad"] == pytest.approx(math.pi / 2)
    assert space.angles["disgust"] == pytest.approx(math.pi / 4)  # GANMUT_ORDER row 5 = disgust
    f = space.fixed("sad")
    assert (f.x, f.y) == pytest.approx((0.0, C.OWN_FIXED_RHO), abs=1e-6) and space.fixed("neutral").rho == 0.0


def test_gaussian_control_model_centres_and_mahalanobis():
    g = Generator(EditorConfig(control="gaussian", **TINY))
    with torch.no_grad():
        g.mu.weight.copy_(torch.arange(14, dtype=torch.float32).view(7, 2) / 20)
        g.covariance_axes.weight.fill_(1.0)  # identity covariance: Mahalanobis = squared Euclidean
        g.covariance_angles.weight.fill_(0.3)
    centres = g.centres().detach()
    assert torch.allclose(centres, torch.tanh(g.mu.weight))
    code = torch.tensor([[0.1, -0.2]])
    assert torch.allclose(g.mahalanobis(code), ((code - centres) ** 2).sum(1)[None] if False else
                          ((code[:, None] - centres[None]) ** 2).sum(-1), atol=1e-5)
    space = g.control_space()
    assert space.fixed("happy").x == pytest.approx(float(centres[1, 0]))


# ---- paper control values ---------------------------------------------------------------------------------
def test_paper_F_table_exact():
    space = C.paper_space("gaussian")
    expected = {"neutral": (-0.2812, -0.4329), "happy": (0.3152, -0.1149), "sad": (-1.0, -0.6416),
                "surprise": (0.9617, -0.4510), "fear": (-0.1805, -1.0), "disgust": (-0.9823, -0.9984),
                "anger": (0.8572, -0.9997)}
    for c, (x, y) in expected.items():
        v = space.fixed(c)
        assert (v.x, v.y) == (x, y) and v.variant == "F"


def test_paper_V_sampling_ranges():
    space = C.paper_space("linear")
    deg = {"happy": 7.3, "sad": -178.4, "surprise": 97.8, "fear": 133.3, "disgust": -135.5, "anger": -102.7}
    rng = np.random.default_rng(0)
    for c in L.CLASSES:
        vals = [space.variable(c, rng) for _ in range(200)]
        rho = np.array([v.rho for v in vals])
        if c == "neutral":
            assert rho.min() >= 0 and rho.max() <= 0.1
            th = np.array([v.theta for v in vals])
            assert th.min() < -2 and th.max() > 2  # θ ~ U(−π, π)
        else:
            assert rho.min() >= 0.5 and rho.max() <= 1.2 and rho.max() - rho.min() > 0.5
            assert all(math.degrees(v.theta) == pytest.approx(deg[c], abs=1e-9) for v in vals)
    # per-sample generators make V reproducible
    a = C.variable_codes(["fear", "happy"], space, [5, 6])
    b = C.variable_codes(["fear", "happy"], space, [5, 6])
    assert a == b


def test_control_space_rejects_missing_classes():
    with pytest.raises(C.ControlError, match="lacks angles"):
        C.ControlSpace("linear", {"happy": 0.0})


# ---- official checkpoints by key name ------------------------------------------------------------------------
class _RefRes(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.main = nn.Sequential(nn.Conv2d(d, d, 3, 1, 1, bias=False), nn.InstanceNorm2d(d, affine=True, track_running_stats=True),
                                  nn.ReLU(inplace=True), nn.Conv2d(d, d, 3, 1, 1, bias=False),
                                  nn.InstanceNorm2d(d, affine=True, track_running_stats=True))

    def forward(self, x):
        return x + self.main(x)


class _RefGANmutLinear(nn.Module):
    """Independent re-statement of GANmut's linear generator layout (names: main.N.*, axes.*)."""

    def __init__(self, conv_dim=8, repeat=2):
        super().__init__()
        self.axes = nn.Linear(2, 6)
        IN = lambda c: nn.InstanceNorm2d(c, affine=True, track_running_stats=True)  # noqa: E731
        d = conv_dim
        layers = [nn.Conv2d(5, d, 7, 1, 3, bias=False), IN(d), nn.ReLU(inplace=True)]
        for _ in range(2):
            layers += [nn.Conv2d(d, 2 * d, 4, 2, 1, bias=False), IN(2 * d), nn.ReLU(inplace=True)]
            d *= 2
        layers += [_RefRes(d) for _ in range(repeat)]
        for _ in range(2):
            layers += [nn.ConvTranspose2d(d, d // 2, 4, 2, 1, bias=False), IN(d // 2), nn.ReLU(inplace=True)]
            d //= 2
        layers += [nn.Conv2d(d, 3, 7, 1, 3, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, x, code):
        return self.main(torch.cat([x, code[:, :, None, None].expand(-1, -1, *x.shape[2:])], 1))


def test_official_linear_checkpoint_loads_by_key_names_and_matches(tmp_path):
    torch.manual_seed(0)
    ref = _RefGANmutLinear(conv_dim=8, repeat=2)
    for m in ref.modules():  # non-trivial norm parameters and running stats (which must be ignored)
        if isinstance(m, nn.InstanceNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)
            m.running_mean.fill_(3.0)
            m.running_var.fill_(7.0)
    path = tmp_path / "200000-G.ckpt"
    torch.save(ref.state_dict(), path)
    g = load_official_generator(path, image_size=32)
    assert g.cfg.control == "linear" and g.cfg.conv_dim == 8 and g.cfg.repeat_num == 2
    assert g.cfg.channel_order == "BGR" and g.cfg.source == "official"
    assert g.control_space().source == "paper"
    rgb = torch.rand(2, 3, 32, 32)
    code = torch.tensor([[0.3, -0.4], [0.0, 0.9]])
    ref.train()  # the official inference never calls eval(): instance statistics
    with torch.no_grad():
        expected = ((ref(rgb.flip(1) * 2 - 1, code).flip(1) + 1) / 2).clamp(0, 1)
        got = g.edit_rgb01(rgb, code)
    assert torch.allclose(got, expected, atol=1e-5)


def test_official_gaussian_checkpoint_and_bad_keys(tmp_path):
    cfg = EditorConfig(control="gaussian", image_size=32, conv_dim=8, repeat_num=3, d_conv_dim=8, d_repeat_num=2)
    state = Generator(cfg).state_dict()
    assert {"mu.weight", "covariance_angles.weight", "covariance_axes.weight", "main.9.main.0.weight"} <= set(state)
    g = load_official_generator({"module." + k: v for k, v in state.items()}, image_size=32)
    assert g.cfg.control == "gaussian" and g.cfg.repeat_num == 3
    assert g.control_space().fixed("fear").x == -0.1805
    broken = dict(state)
    broken.pop("main.4.weight")
    with pytest.raises(CheckpointError, match=r"missing.*main\.4\.weight"):
        load_official_generator(broken, image_size=32)
    with pytest.raises(CheckpointError, match="neither 'axes.weight'"):
        load_official_generator({k: v for k, v in state.items() if not k.startswith(("mu", "cov"))}, image_size=32)


def test_own_generator_roundtrip(tmp_path):
    g = Generator(EditorConfig(**TINY))
    save_generator(tmp_path, g)
    g2 = load_generator(tmp_path)
    x, c = torch.rand(1, 3, 16, 16), torch.tensor([[0.2, 0.1]])
    assert torch.equal(g.edit_rgb01(x, c), g2.edit_rgb01(x, c))


# ---- box maths and paste-back ---------------------------------------------------------------------------
def test_box_maths():
    assert square_box(10, 20, 30, 40) == (5, 20, 40, 40)
    assert clip_box((-5, -5, 20, 30), 16, 16) == (0, 0, 15, 16)
    with pytest.raises(EditError, match="expected at least 4x4"):
        clip_box((30, 30, 10, 10), 32, 32, where="img.png")
    mask = band_mask((40, 40), (10, 10, 20, 20), band=4)
    assert mask.sum() == 24 * 24 - 16 * 16  # a 2-px frame on each side of the border
    assert mask[10, 10] and mask[8, 8] and not mask[20, 20] and not mask[7, 7]


def test_paste_of_unedited_crop_reproduces_source():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    box = (20, 10, 32, 32)
    out = paste(img, crop_resize(img, box, 32), box)
    inside = np.zeros(img.shape[:2], bool)
    inside[10:42, 20:52] = True
    assert np.array_equal(out[~inside], img[~inside])
    assert np.array_equal(out, img)  # same size: exact round trip


def _identity_generator(size: int) -> Generator:
    g = Generator(EditorConfig(image_size=size, conv_dim=4, repeat_num=1, d_conv_dim=4, d_repeat_num=2))

    class _Id(nn.Module):
        def forward(self, x):
            return x[:, :3]
    g.main = _Id()
    return g


def test_edit_pipeline_geometry_and_degradation_band():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    box = (24, 20, 48, 48)
    g = _identity_generator(32)
    res = edit_images([img], [box], [C.ControlValue("happy", 0.5, 0.0, "V")], g, None, None,
                      [np.random.default_rng(0)])
    outside = np.ones((96, 96), bool)
    outside[20:68, 24:72] = False
    assert np.array_equal(res.pasted[0][outside], img[outside])
    assert np.abs(res.pasted[0][~outside].astype(int) - img[~outside]).mean() > 1  # resized through 32 px
    # degradation with no global step touches only the band
    cfg = DegradeConfig(global_blur_kernel=1, global_blur_sigma=0.0, global_noise=0.0, reference_size=96)
    deg = degrade(img, box, cfg, np.random.default_rng(0))
    band = band_mask((96, 96), box, 30)
    assert np.array_equal(deg[~band], img[~band]) and not np.array_equal(deg[band], img[band])
    assert cfg.scaled(96)["band_k"] % 2 == 1 and DegradeConfig().scaled(128)["band"] == 15


def test_codeformer_adapter_pre_and_post_processing():
    class _Echo(nn.Module):
        def forward(self, x, w=0.5, adain=True):
            assert x.shape == (1, 3, 64, 64) and x.min() >= -1 and x.max() <= 1 and w == 0.5 and adain
            return (x, None)
    r = CodeFormerRestorer(arch_factory=_Echo, size=64)
    img = np.full((80, 80, 3), 100, np.uint8)
    out = r(img, (20, 20, 40, 40))
    assert out.shape == img.shape and np.abs(out.astype(int) - 100).max() <= 1
    with pytest.raises(ValueError, match="needs `weights`"):
        CodeFormerRestorer()


def test_seam_contrast_sees_a_pasted_box():
    img = np.full((64, 64, 3), 100, np.uint8)
    img += (np.indices((64, 64)).sum(0) % 2 * 4).astype(np.uint8)[..., None]  # texture everywhere
    pasted = img.copy()
    pasted[16:48, 16:48] += 40
    assert seam_contrast(pasted, (16, 16, 32, 32)) > 3 * seam_contrast(img, (16, 16, 32, 32))


# ---- recipes and the writer ---------------------------------------------------------------------------
def _pool(n_ids: int, per_id: int) -> pd.DataFrame:
    rows = [{"source_path": f"/x/{i}_{j}.png", "identity": f"id{i}", "face_x": 8, "face_y": 8, "face_width": 16,
             "face_height": 16} for i in range(n_ids) for j in range(per_id)]
    return pd.DataFrame(rows)


def test_recipe_10_has_disjoint_identities_per_class():
    plan = plan_recipe(_pool(30, 2), "10", per_class=4, seed=3)
    assert plan.rows["label"].value_counts().to_dict() == {c: 4 for c in L.CLASSES}
    owners = plan.rows.groupby("identity")["label"].nunique()
    assert (owners == 1).all()
    short = plan_recipe(_pool(5, 2), "10", per_class=4, seed=0)
    assert sum(short.shortfall.values()) == 28 - 10 and len(short.rows) == 10


def test_recipe_70_and_raf():
    p70 = plan_recipe(_pool(3, 1), "70")
    assert len(p70.rows) == 21 and (p70.rows.groupby("source_path")["label"].nunique() == 7).all()
    raf = plan_recipe(_pool(100, 1), "RAF", total=100, seed=0)
    counts = raf.rows["label"].value_counts().to_dict()
    assert sum(counts.values()) == 100 and raf.rows["source_path"].is_unique
    assert counts["happy"] == max(counts.values()) and counts["fear"] == min(counts.values())  # RAF-DB: fear is rarest
    assert counts == {c: n for c, n in raf.requested.items()}
    with pytest.raises(RecipeError, match="pool has 100 faces"):
        plan_recipe(_pool(100, 1), "RAF", total=101)


def test_draw_per_class_is_balanced_seeded_and_refuses_a_short_class():
    p70 = plan_recipe(_pool(10, 1), "70")
    d = draw_per_class(p70, 4, seed=0)
    assert d.rows["label"].value_counts().to_dict() == {c: 4 for c in L.CLASSES}
    assert d.rows.merge(p70.rows, how="left", indicator=True)["_merge"].eq("both").all()  # rows of the plan, unchanged
    assert d.rows.equals(draw_per_class(p70, 4, seed=0).rows)  # seeded
    assert not d.rows.equals(draw_per_class(p70, 4, seed=1).rows)
    for c, g in d.rows.groupby("label"):  # in the plan's order within each class
        assert list(g["source_path"]) == sorted(g["source_path"])
    with pytest.raises(RecipeError, match="has 10 for 'anger'"):
        draw_per_class(p70, 11, seed=0)


def test_render_edit_set_is_resumable_and_seeded(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "src"
    src.mkdir()
    rows = []
    for i in range(4):
        p = src / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(p)
        rows.append({"source_path": str(p), "identity": f"id{i}", "face_x": 12, "face_y": 10, "face_width": 24,
                     "face_height": 28})
    rows.append({"source_path": str(src / "missing.png"), "identity": "idx", "face_x": 1, "face_y": 1,
                 "face_width": 8, "face_height": 8})
    plan = plan_recipe(pd.DataFrame(rows), "70")
    g = Generator(EditorConfig(**TINY))
    out = tmp_path / "set"
    from syntfer.strategies.gan.editing import DenoiseRestorer
    m1 = render_edit_set(plan, g, out, variant="V", seed=7, restorer=DenoiseRestorer(), progress=False)
    assert len(m1) == 28  # the missing source's 7 rows are skipped and counted
    import json
    assert json.loads((out / "summary.json").read_text())["n_skipped"] == 7
    assert {"path", "label", "source_path", "identity", "control_x", "control_y", "rho", "theta", "variant",
            "seed"} <= set(m1.columns)
    first = m1["path"].iloc[5]
    data = open(first, "rb").read()
    import os
    os.remove(first)
    m2 = render_edit_set(plan, g, out, variant="V", seed=7, restorer=DenoiseRestorer(), progress=False)
    pd.testing.assert_frame_equal(m1, m2)
    assert open(first, "rb").read() == data  # regenerated bit-identically from its row's seed
    v = m1[m1["label"] != "neutral"]
    assert v["rho"].between(0.5, 1.2).all()


def test_render_edit_set_manifest_reads_back_from_a_relative_out_dir(tmp_path, monkeypatch):
    from syntfer.strategies.gan.editing import DenoiseRestorer
    from syntfer.core.manifest import read_manifest

    p = tmp_path / "src.png"
    Image.fromarray(np.zeros((48, 48, 3), dtype=np.uint8)).save(p)
    plan = plan_recipe(pd.DataFrame([{"source_path": str(p), "identity": "id0", "face_x": 12, "face_y": 10,
                                      "face_width": 24, "face_height": 28}]), "70")
    monkeypatch.chdir(tmp_path)
    render_edit_set(plan, Generator(EditorConfig(**TINY)), Path("outputs/set"), variant="F", seed=0,
                    restorer=DenoiseRestorer(), progress=False)
    back = read_manifest(tmp_path / "outputs/set/manifest.csv")
    assert back["path"].map(lambda q: Path(q).is_file()).all() and len(back) == 7


# ---- training: resume equals an uninterrupted run -----------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("control", ["linear", "gaussian", "flow"])
def test_training_resume_matches_uninterrupted(tmp_path, control):
    cfg = (EditorConfig(control="linear", flow_grid=4, **TINY) if control == "flow"
           else EditorConfig(control=control, **TINY))
    crops = torch.randint(0, 256, (21, 3, 16, 16), dtype=torch.uint8)
    labels = torch.arange(21) % 7
    kw = dict(batch_size=8, n_critic=2, d_warmup_steps=2, log_every=2, ckpt_every=3, n_random=2)
    if control == "flow":
        kw.update(lambda_flow_tv=1.0, lambda_fold=1.0)
    full = train_editor(crops, labels, tmp_path / "full", cfg, TrainConfig(steps=6, **kw), progress=False)
    train_editor(crops, labels, tmp_path / "part", cfg, TrainConfig(steps=3, **kw), progress=False)
    part = train_editor(crops, labels, tmp_path / "part", cfg, TrainConfig(steps=6, **kw), progress=False)
    assert full.step == part.step == 6
    # exactly, and everything: generator, critic, both optimisers, the RNG state (tests/test_faults.py kills
    # the CLI run with SIGKILL; this is the in-process version)
    for f in ("generator.pt", "state.pt"):
        assert (tmp_path / "full" / f).read_bytes() == (tmp_path / "part" / f).read_bytes(), f
    assert list(part.log["step"]) == [2, 4, 6]


def test_select_per_class_keeps_file_order():
    df = pd.DataFrame({"path": list("abcdefg"), "label": ["happy", "sad", "happy", "happy", "sad", "fear", "happy"]})
    out = select_per_class(df, 2)
    assert list(out["path"]) == ["a", "b", "c", "e", "f"]


def test_intensity_table():
    probs = np.eye(7)[[3, 3, 5, 0]]
    curve = intensity_curve(probs, ["happy", "sad", "sad", "anger"], [0.5, 0.5, 1.0, 1.0])
    assert len(curve) == 4 and curve["n"].sum() == 4


def test_residual_generator_starts_at_identity_and_keeps_official_keys():
    cfg = EditorConfig(residual=True, **TINY)
    g = Generator(cfg)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert torch.equal(g(x, torch.randn(2, 2)), x)
    assert set(g.state_dict()) == set(Generator(EditorConfig(**TINY)).state_dict())


def test_flow_editor_starts_at_identity_warps_by_its_flow_and_penalises_folds():
    from syntfer.strategies.gan.training import flow_regularisers

    g = Generator(EditorConfig(flow_grid=4, **TINY))
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    torch.testing.assert_close(g(x, torch.randn(2, 2)), x, atol=1e-5, rtol=0)  # zero-initialised: no warp
    assert g.flow(x, torch.randn(2, 2)).shape == (2, 2, 4, 4)
    shift = torch.zeros(2, 2, 4, 4)
    shift[:, 0] = 2 * 2 / 16  # two pixels along x, in grid_sample units
    moved = Generator.warp(x, shift)
    torch.testing.assert_close(moved[..., :, :-2], x[..., :, 2:], atol=1e-5, rtol=0)  # sampled 2 px to the right
    tv, fold = flow_regularisers(shift)
    assert tv.item() == 0 and fold.item() == 0  # a translation is smooth and folds nothing
    p = torch.linspace(-1, 1, 4)
    mirror = torch.stack([-2 * p[None, :].expand(4, 4), torch.zeros(4, 4)])[None]  # x -> -x: the face folds over
    tv, fold = flow_regularisers(mirror)
    assert tv.item() > 0 and fold.item() == pytest.approx(0.3 - (-1.0))
    with pytest.raises(ValueError, match="exclude each other"):
        EditorConfig(flow_grid=4, residual=True, **TINY)
    with pytest.raises(ValueError, match="flow_grid"):
        EditorConfig(flow_grid=40, **TINY)
    with pytest.raises(ValueError, match="flow editor"):
        Generator(EditorConfig(**TINY)).flow(x, torch.randn(2, 2))


def test_interpolated_intensity_runs_from_the_neutral_flow_to_the_full_class(tmp_path):
    torch.manual_seed(0)
    learned = Generator(EditorConfig(flow_grid=4, **TINY))
    for prm in learned.parameters():  # away from the zero-initialised identity map, so flows differ by code
        prm.data.add_(0.3 * torch.randn_like(prm))
    save_generator(tmp_path / "ed", learned, {})
    assert "intensity" not in json.loads((tmp_path / "ed" / "editor.json").read_text())["config"]  # old files unchanged
    interp = load_generator(tmp_path / "ed", intensity="interpolate")
    assert interp.cfg.intensity == "interpolate" and load_generator(tmp_path / "ed").cfg.intensity == "learned"
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    unit = torch.nn.functional.normalize(torch.randn(3, 2), dim=1)
    with torch.no_grad():
        zero, full = learned.flow(x, torch.zeros(3, 2)), learned.flow(x, unit)
        torch.testing.assert_close(interp.flow(x, unit), full, atol=1e-6, rtol=0)  # rho 1: the learned class flow
        torch.testing.assert_close(interp.flow(x, 0.0 * unit), zero, atol=1e-6, rtol=0)  # rho 0: neutral
        torch.testing.assert_close(interp.flow(x, 0.25 * unit), zero + 0.25 * (full - zero), atol=1e-6, rtol=0)
        assert not torch.allclose(learned.flow(x, 0.25 * unit), interp.flow(x, 0.25 * unit))
    with pytest.raises(ValueError, match="intensity"):
        EditorConfig(intensity="interpolate", **TINY)  # not a flow editor
    with pytest.raises(ValueError, match="intensity"):
        EditorConfig(flow_grid=4, control="gaussian", intensity="interpolate", **TINY)
    with pytest.raises(ValueError, match="intensity"):
        EditorConfig(flow_grid=4, intensity="loud", **TINY)
    save_generator(tmp_path / "plain", Generator(EditorConfig(**TINY)), {})
    with pytest.raises(CheckpointError, match="linear flow editor"):
        load_generator(tmp_path / "plain", intensity="interpolate")


def test_identity_mapping_loss_pulls_a_face_edited_toward_its_own_expression_back_to_itself(tmp_path):
    """`lambda_id`: |G(x, own code) − x| joins the generator loss; it is logged as g_id and, trained on (the other
    losses off), it undoes a warp the editor applies to faces edited toward their own expression."""
    torch.manual_seed(0)
    cfg = EditorConfig(flow_grid=4, **TINY)
    crops = torch.randint(0, 256, (14, 3, 16, 16), dtype=torch.uint8)
    labels = torch.arange(14) % 7
    base = Generator(cfg)
    for prm in base.parameters():  # a warp at every code, the own code included
        prm.data.add_(0.3 * torch.randn_like(prm))
    kw = dict(batch_size=8, n_critic=1, d_warmup_steps=0, log_every=1, ckpt_every=100, n_random=0, g_lr=2e-3,
              lambda_cls=0.0, lambda_rec=0.0, lambda_info=0.0, lambda_strength=0.0)

    def trained(lambda_id: float, steps: int) -> tuple[EditorTrainer, list[float]]:
        tr = EditorTrainer(cfg, TrainConfig(lambda_id=lambda_id, **kw), crops, labels)
        tr.G.load_state_dict(base.state_dict())
        rows = [tr.step() for _ in range(steps)]
        return tr, [r["g_id"] for r in rows if "g_id" in r]

    def own_change(tr: EditorTrainer) -> float:
        x = crops.float() / 127.5 - 1
        with torch.no_grad():
            own = tr._source_code(x, CANON_TO_CODE[labels])
            return (tr.G(x, own) - x).abs().mean().item()

    untrained = own_change(trained(0.0, 0)[0])
    assert untrained > 0.01  # the perturbed editor moves faces edited toward their own expression
    off, logged = trained(0.0, 30)
    assert logged == []  # off by default: no term, no column
    on, logged = trained(50.0, 30)
    assert len(logged) == 30 and logged[-1] < logged[0]
    assert own_change(on) < 0.5 * min(untrained, own_change(off))


def test_edit_seeds_do_not_depend_on_where_the_sources_live(tmp_path):
    """Two checkouts of the same world must write the same GAN set (seeds come from the pool-relative path)."""
    import shutil

    from syntfer.strategies.gan.editing import DenoiseRestorer
    from syntfer.strategies.gan.sets import source_pool_from_boxes

    rng = np.random.default_rng(3)
    a = tmp_path / "a" / "ffhq"
    a.mkdir(parents=True)
    rows = []
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(a / f"{i:05d}.png")
        rows.append({"path": f"{i:05d}.png", "face_x": 12, "face_y": 10, "face_width": 24, "face_height": 28})
    pd.DataFrame(rows).to_csv(a / "boxes.csv", index=False)
    b = tmp_path / "elsewhere" / "deeper" / "ffhq"
    shutil.copytree(a, b)
    g = Generator(EditorConfig(**TINY))
    made = []
    for root, out in ((a, tmp_path / "set_a"), (b, tmp_path / "set_b")):
        pool = source_pool_from_boxes(root / "boxes.csv")
        assert pool["source_key"].tolist() == ["00000.png", "00001.png", "00002.png"]
        m = render_edit_set(plan_recipe(pool, "70"), g, out, variant="V", seed=5, restorer=DenoiseRestorer(),
                            progress=False)
        made.append(m)
    ma, mb = made
    assert ma["seed"].tolist() == mb["seed"].tolist() and ma["rho"].tolist() == mb["rho"].tolist()
    for pa, pb in zip(ma["path"], mb["path"]):
        assert open(pa, "rb").read() == open(pb, "rb").read()


def test_nested_pool_sources_with_one_stem_get_their_own_outputs(tmp_path):
    """a/1.png and b/1.png once both became images/<label>/1_<label>_V.png: the second overwrote the first and the
    manifest listed one file twice. Names now keep the folders below the pool."""
    from syntfer.strategies.gan.editing import DenoiseRestorer
    from syntfer.strategies.gan.sets import source_pool_from_boxes
    from syntfer.core.manifest import read_manifest

    rng = np.random.default_rng(4)
    root = tmp_path / "pool"
    rows = []
    for sub in ("a", "b"):
        (root / sub).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(root / sub / "1.png")
        rows.append({"path": f"{sub}/1.png", "face_x": 12, "face_y": 10, "face_width": 24, "face_height": 28})
    pd.DataFrame(rows).to_csv(root / "boxes.csv", index=False)
    pool = source_pool_from_boxes(root / "boxes.csv")
    out = tmp_path / "set"
    g = Generator(EditorConfig(**TINY))
    m = render_edit_set(plan_recipe(pool, "70"), g, out, variant="V", seed=1,
                        restorer=DenoiseRestorer(), progress=False)
    assert len(m) == 14 and m["path"].is_unique
    happy = sorted(Path(p).relative_to(out).as_posix() for p in m.loc[m["label"] == "happy", "path"])
    assert happy == ["images/happy/a/1_happy_V.png", "images/happy/b/1_happy_V.png"]
    files = sorted(p for p in (out / "images").rglob("*.png"))
    assert len(files) == 14  # nothing overwritten
    back = read_manifest(out / "manifest.csv")
    assert back["path"].is_unique and back["path"].map(lambda q: Path(q).is_file()).all()
    # each output is the edit of its own source: re-rendering b alone writes b's files byte-identically
    only_b = plan_recipe(pool[pool["source_key"] == "b/1.png"], "70")
    mb = render_edit_set(only_b, g, tmp_path / "set_b", variant="V", seed=1,
                         restorer=DenoiseRestorer(), progress=False)
    for p in mb["path"]:
        rel = Path(p).relative_to(tmp_path / "set_b")
        assert (out / rel).read_bytes() == Path(p).read_bytes()
    # a flat pool keeps its old names (the default pipeline's outputs do not change)
    flat = plan_recipe(pool.assign(source_key=["1.png", "2.png"]), "70")
    mf = render_edit_set(flat, g, tmp_path / "flat", variant="F", seed=1,
                         restorer=DenoiseRestorer(), progress=False)
    assert "images/sad/2_sad_F.png" in {Path(p).relative_to(tmp_path / "flat").as_posix() for p in mf["path"]}


def test_sources_that_would_share_an_output_are_refused(tmp_path):
    from syntfer.strategies.gan.editing import DenoiseRestorer
    from syntfer.strategies.gan.sets import output_name

    src = tmp_path / "src"
    src.mkdir()
    rows = []
    for name in ("1.png", "1.jpg"):  # same stem, one folder: both would be images/<label>/1_<label>_F.png
        Image.fromarray(np.zeros((48, 48, 3), dtype=np.uint8)).save(src / name)
        rows.append({"source_path": str(src / name), "identity": name, "face_x": 12, "face_y": 10,
                     "face_width": 24, "face_height": 28})
    out = tmp_path / "set"
    with pytest.raises(RecipeError, match=r"same file 'images/anger/1_anger_F.png'.*1\.png.*1\.jpg"):
        render_edit_set(plan_recipe(pd.DataFrame(rows), "70"), Generator(EditorConfig(**TINY)), out,
                        variant="F", seed=0, restorer=DenoiseRestorer(), progress=False)
    assert not (out / "images").exists()  # refused before anything is written
    with pytest.raises(RecipeError, match=r"'\.\./x\.png'.*relative"):
        output_name("../x.png", "happy", "F")  # would write outside the set's folder


def _aux_editor_setup(tmp_path: Path) -> tuple[EditorConfig, torch.Tensor, torch.Tensor]:
    """An untrained cnn_tiny aux classifier at tmp_path/aux, a tiny editor config, 14 random crops, 2 per class."""
    from syntfer.engine.models import create_model
    from syntfer.engine.models.checkpoint import save_checkpoint

    save_checkpoint(create_model("cnn_tiny", img_size=32), tmp_path / "aux", epoch=0)
    crops = torch.randint(0, 256, (14, 3, 16, 16), dtype=torch.uint8)
    return EditorConfig(**TINY), crops, torch.arange(14) % 7


def test_auxiliary_classifier_is_frozen_and_joins_the_generator_loss(tmp_path):
    cfg, crops, labels = _aux_editor_setup(tmp_path)
    kw = dict(batch_size=8, n_critic=1, d_warmup_steps=1, log_every=1, ckpt_every=100, n_random=2)
    r = train_editor(crops, labels, tmp_path / "ed", cfg,
                     TrainConfig(steps=3, aux_classifier=str(tmp_path / "aux"), lambda_aux=1.0, **kw), progress=False)
    assert r.log["g_aux"].notna().sum() == 2 and r.log["aux_acc_fake_trg"].dropna().between(0, 1).all()
    trainer = EditorTrainer(cfg, TrainConfig(aux_classifier=str(tmp_path / "aux"), lambda_aux=1.0, **kw),
                            crops, labels)
    assert not any(p.requires_grad for p in trainer.aux.parameters())
    x = torch.rand(2, 3, 16, 16) * 2 - 1  # logits equal the classifier's own on its normalisation, resized
    m = trainer.aux.model
    want = m((torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear", antialias=True) + 1) / 2 / 0.5 - 1)
    assert torch.allclose(trainer.aux(x), want, atol=1e-5)
    # without lambda_aux nothing is loaded; a missing folder is a clear error
    assert EditorTrainer(cfg, TrainConfig(**kw), crops, labels).aux is None
    with pytest.raises(FileNotFoundError, match="aux_classifier"):
        EditorTrainer(cfg, TrainConfig(aux_classifier=str(tmp_path / "nope"), lambda_aux=1.0, **kw), crops, labels)


def test_intensity_target_blends_the_target_with_the_source_reading_by_rho():
    from syntfer.strategies.gan.training import intensity_target

    p_src = torch.softmax(torch.randn(4, 7), 1)
    trg = torch.tensor([L.CLASS_TO_INDEX[c] for c in ("happy", "fear", "neutral", "sad")])
    q = intensity_target(trg, torch.tensor([1.0, 0.0, 0.3, 1.7]), p_src)
    assert torch.allclose(q.sum(1), torch.ones(4))
    assert q[0, trg[0]] == 1 and torch.allclose(q[1], p_src[1])  # rho 1: the class; rho 0: the source as it is
    assert q[2, trg[2]] == 1  # neutral at the origin: asked for in full whatever its rho
    assert q[3, trg[3]] == 1  # rho above 1 is clipped
    q = intensity_target(trg[:1], torch.tensor([0.25]), p_src[:1])
    assert torch.allclose(q, 0.25 * torch.nn.functional.one_hot(trg[:1], 7) + 0.75 * p_src[:1])


def test_fine_tuning_starts_from_another_editor_and_intensity_needs_the_aux_loss(tmp_path):
    cfg, crops, labels = _aux_editor_setup(tmp_path)
    kw = dict(batch_size=8, n_critic=1, d_warmup_steps=2, log_every=1, ckpt_every=100, n_random=2)
    train_editor(crops, labels, tmp_path / "base", cfg, TrainConfig(steps=3, **kw), progress=False)
    base = torch.load(tmp_path / "base" / "state.pt", weights_only=True)
    aux = dict(aux_classifier=str(tmp_path / "aux"), lambda_aux=1.0)
    tuned = EditorTrainer(cfg, TrainConfig(init_from=str(tmp_path / "base"), aux_intensity=True, **aux, **kw),
                          crops, labels)
    assert all(torch.equal(v, tuned.G.state_dict()[k]) for k, v in base["G"].items())
    assert all(torch.equal(v, tuned.D.state_dict()[k]) for k, v in base["D"].items())
    row = tuned.step()  # no critic warm-up when starting from a trained editor: the GAN game from step one
    assert "d_wdist" in row and tuned.step_no == 1
    r = train_editor(crops, labels, tmp_path / "tuned", cfg,
                     TrainConfig(steps=2, init_from=str(tmp_path / "base"), aux_intensity=True, **aux, **kw),
                     progress=False)
    assert r.log["g_aux"].notna().all()
    with pytest.raises(ValueError, match="aux_intensity needs an aux classifier"):
        EditorTrainer(cfg, TrainConfig(aux_intensity=True, **kw), crops, labels)
    with pytest.raises(ValueError, match="differs from this run"):
        EditorTrainer(EditorConfig(**{**TINY, "conv_dim": TINY["conv_dim"] * 2}),
                      TrainConfig(init_from=str(tmp_path / "base"), **kw), crops, labels)
    with pytest.raises(FileNotFoundError, match="init_from"):
        EditorTrainer(cfg, TrainConfig(init_from=str(tmp_path / "nope"), **kw), crops, labels)


@pytest.mark.slow
def test_editor_classifier_trains_on_editor_framed_crops_and_serves_as_the_aux_loss(tmp_path):
    from syntfer.cli import main
    from syntfer.engine.models import Ensemble
    from syntfer.sources.world.writers import render_world

    render_world(tmp_path / "w", "smoke", seed=0, workers=1, progress=False, domains=["affectnet"])
    out = tmp_path / "cls"
    assert main(["gan", "classifier", "--data", str(tmp_path / "w" / "affectnet"), "--per-class-cap", "12",
                 "--size", "16", "--epochs", "1", "--members", "2", "--out", str(out)]) == 0
    from syntfer.core.manifest import read_manifest

    manifest = read_manifest(out / "crops" / "manifest.csv")
    with Image.open(manifest["path"].iloc[0]) as im:
        assert im.size == (16, 16)  # the editor's framing and size
    assert manifest["label"].value_counts().max() <= 12
    trainer = EditorTrainer(EditorConfig(**TINY), TrainConfig(aux_classifier=str(out / "checkpoint"), lambda_aux=1.0),
                            torch.randint(0, 256, (7, 3, 16, 16), dtype=torch.uint8), torch.arange(7))
    assert isinstance(trainer.aux.model, Ensemble) and trainer.aux.model.mirror


def test_intensity_gamma_reshapes_the_interpolated_strength_and_needs_interpolate(tmp_path):
    torch.manual_seed(0)
    learned = Generator(EditorConfig(flow_grid=4, **TINY))
    for prm in learned.parameters():
        prm.data.add_(0.3 * torch.randn_like(prm))
    save_generator(tmp_path / "ed", learned, {})
    sq = load_generator(tmp_path / "ed", intensity="interpolate", intensity_gamma=0.5)
    assert sq.cfg.intensity_gamma == 0.5 and "intensity_gamma" not in learned.cfg.to_dict()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    unit = torch.nn.functional.normalize(torch.randn(2, 2), dim=1)
    with torch.no_grad():
        zero, full = learned.flow(x, torch.zeros(2, 2)), learned.flow(x, unit)
        torch.testing.assert_close(sq.flow(x, 0.25 * unit), zero + 0.5 * (full - zero), atol=1e-6, rtol=0)
        torch.testing.assert_close(sq.flow(x, unit), full, atol=1e-6, rtol=0)  # ρ = 1 is the full class either way
    with pytest.raises(ValueError, match="intensity_gamma"):
        EditorConfig(flow_grid=4, intensity_gamma=0.5, **TINY)  # learned intensity: γ would be ignored
    with pytest.raises(ValueError, match="intensity_gamma"):
        EditorConfig(flow_grid=4, intensity="interpolate", intensity_gamma=0.0, **TINY)
    with pytest.raises(CheckpointError, match="intensity_gamma"):
        load_generator(tmp_path / "ed", intensity_gamma=0.5)


def test_edits_along_rho_are_class_then_rho_then_face_and_interpolate_from_the_source(tmp_path):
    from syntfer.strategies.gan.measurements import edits_along_rho

    rng = np.random.default_rng(4)
    rows = []
    for i in range(2):
        p = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(p)
        rows.append({"source_path": str(p), "face_x": 12, "face_y": 10, "face_width": 24, "face_height": 28})
    torch.manual_seed(0)
    g = Generator(EditorConfig(flow_grid=4, intensity="interpolate", **TINY))
    for prm in g.parameters():
        prm.data.add_(0.3 * torch.randn_like(prm))
    crops, targets, rhos = edits_along_rho(g, g.control_space(), pd.DataFrame(rows), ["happy", "sad"], [0.0, 1.0], 0)
    assert crops.shape == (8, 48, 48, 3) and crops.dtype == np.uint8
    assert targets == ["happy"] * 4 + ["sad"] * 4 and rhos == [0.0, 0.0, 1.0, 1.0] * 2
    # rho 0 is the neutral flow for every class; at rho 1 the classes differ
    assert np.array_equal(crops[0], crops[4]) and not np.array_equal(crops[2], crops[6])


def test_seam_table_measures_each_variant_and_the_sources_against_the_reference():
    from syntfer.strategies.gan.measurements import seam_metrics, seam_table

    rng = np.random.default_rng(0)
    ref = rng.normal(size=(64, 3))
    near, far = rng.normal(size=(64, 3)), rng.normal(loc=3.0, size=(64, 3))
    spaces = {"judge": lambda x: x, "identity": lambda x: 2 * x}
    seam = seam_table({"paste": {"context": far, "seam": np.array([2.0, np.nan, 4.0])},
                       "degrade only": {"context": near, "seam": np.array([1.0, 1.0])}}, near, ref, spaces)
    assert seam.columns.tolist() == ["variant", "fd_judge", "fd_identity", "seam_contrast"]
    assert seam["variant"].tolist() == ["paste", "degrade only", "sources (no edit)"]
    assert seam.loc[0, "fd_judge"] > 10 * seam.loc[1, "fd_judge"]  # a shifted set is far, a like one near
    assert seam.loc[0, "fd_identity"] == pytest.approx(4 * seam.loc[0, "fd_judge"])  # FD scales with the square
    assert seam.loc[0, "seam_contrast"] == 3.0 and np.isnan(seam.loc[2, "seam_contrast"])
    m = seam_metrics(seam)
    assert m["fd_judge_degrade_only"] == seam.loc[1, "fd_judge"] and "seam_contrast_sources_no_edit" in m


def test_truth_crops_names_a_source_the_world_truth_does_not_list(tmp_path):
    from syntfer.strategies.gan.measurements import truth_crops

    edits = pd.DataFrame([{"source_path": str((tmp_path / "x.png").resolve()), "label": "happy", "face_x": 1,
                           "face_y": 1, "face_width": 8, "face_height": 8}])
    truth = pd.DataFrame({"path": ["y.png"], "index": [0]})
    with pytest.raises(KeyError, match="x.png"):
        truth_crops(edits, truth, tmp_path, 0, 16)
