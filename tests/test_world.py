"""Tests of the procedural face world: renderer, identities, expressions, domains, presets, native formats."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from syntfer.core import labels as L
from syntfer.core.seeding import derive_seed
from syntfer.sources.world import (AU_NAMES, DOMAINS, EXPRESSION_AUS, class_counts, face_geometry,
                                   identity_from_prompt_attributes, make_sample, plan_domain, render_face, render_world,
                                   sample_expression, sample_identity, validate_aus)
from syntfer.sources.world.domains import with_render
from syntfer.sources.world.identity import RACE_SKIN_TONES, TRAIT_ATTRIBUTES, SHAPE_PARAMS
from syntfer.sources.world.presets import PRESETS, get_preset
from syntfer.sources.world.writers import DOMAIN_NAMES, REFERENCE_NAMES

SEED = 7


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("world")
    summary = render_world(out, preset="smoke", seed=SEED, workers=2, progress=False)
    assert summary["images"] == sum(len(plan_domain(d, PRESETS["smoke"], SEED)) for d in DOMAIN_NAMES + REFERENCE_NAMES)
    assert summary["images"] == PRESETS["smoke"].total()
    return out


def _files(root: Path) -> dict[str, bytes]:
    # every file, the resume markers and world.json included: nothing the render writes may hold a timing
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---- renderer --------------------------------------------------------------------------------------------
def test_render_face_shape_dtype_and_determinism():
    idt = sample_identity(np.random.default_rng(1))
    a = render_face(idt, EXPRESSION_AUS["happy"], size=40, yaw=10, roll=5, rng=np.random.default_rng(3))
    b = render_face(idt, EXPRESSION_AUS["happy"], size=40, yaw=10, roll=5, rng=np.random.default_rng(3))
    assert a.shape == (40, 40, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    c = render_face(idt, EXPRESSION_AUS["happy"], size=40, yaw=-10, roll=5, rng=np.random.default_rng(3))
    assert not np.array_equal(a, c)


def test_rerender_same_identity_changes_only_the_face():
    idt = sample_identity(np.random.default_rng(11), hair_style="short", headwear="none", clothing="tshirt")
    kw = dict(size=96, yaw=8.0, light=None, background="gradient", ss=2, face_scale=0.8)
    imgs = {c: render_face(idt, EXPRESSION_AUS[c], rng=np.random.default_rng(5), **kw) for c in L.CLASSES}
    # the identity (and its shape vector) is untouched by rendering; pixels differ, but only on the face
    assert np.array_equal(idt.shape_vector(), dataclasses.replace(idt).shape_vector())
    x0 = y0 = 10 ** 9
    x1 = y1 = -1
    for c in L.CLASSES:
        bx, by, bw, bh = face_geometry(idt, size=96, yaw=8.0, face_scale=0.8, aus=EXPRESSION_AUS[c]).box
        x0, y0, x1, y1 = min(x0, bx), min(y0, by), max(x1, bx + bw), max(y1, by + bh)
    outside = np.ones((96, 96), bool)
    outside[max(0, y0 - 2):y1 + 3, max(0, x0 - 2):x1 + 3] = False
    for c in L.CLASSES:
        if c == "neutral":
            continue
        diff = np.abs(imgs[c].astype(int) - imgs["neutral"].astype(int)).sum(-1)
        assert diff[~outside].sum() > 500, c
        assert diff[outside].max() == 0, f"{c}: pixels outside the face box changed"


def test_identity_sampling_fixed_attributes_and_errors():
    rng = np.random.default_rng(0)
    idt = sample_identity(rng, gender="female", age="old", skin_tone=6, glasses="large")
    assert (idt.gender, idt.age, idt.skin_tone, idt.glasses) == ("female", "old", 6, "large")
    assert idt.facial_hair == "none"
    assert len(idt.shape_vector()) == len(SHAPE_PARAMS)
    with pytest.raises(ValueError, match="unknown identity attribute"):
        sample_identity(rng, hat="yes")
    with pytest.raises(ValueError, match="gender"):
        sample_identity(rng, gender="robot")
    with pytest.raises(ValueError, match="skin_tone"):
        sample_identity(rng, skin_tone=9)


def test_identity_from_prompt_attributes_maps_words():
    rng = np.random.default_rng(4)
    for race, (lo, hi) in RACE_SKIN_TONES.items():
        tones = {identity_from_prompt_attributes("male", "adult", race, None, rng).skin_tone for _ in range(40)}
        assert tones <= set(range(lo, hi + 1)) and len(tones) > 1, race
    idt = identity_from_prompt_attributes("male", "old", "asian", "bald with white beard", rng)
    assert (idt.hair_style, idt.facial_hair, idt.hair_colour, idt.age) == ("bald", "full_beard", "white", "old")
    assert identity_from_prompt_attributes("female", "young", "latino", "wearing glasses", rng).glasses == "thin"
    with pytest.raises(ValueError, match="race word"):
        identity_from_prompt_attributes("male", "adult", "martian", None, rng)
    with pytest.raises(ValueError, match="identity trait"):
        identity_from_prompt_attributes("male", "adult", "white", "wearing a crown", rng)
    assert len(TRAIT_ATTRIBUTES) >= 70


def test_sample_expression_ranges_and_prototypes():
    rng = np.random.default_rng(2)
    for c in L.CLASSES:
        draws = [sample_expression(c, rng) for _ in range(200)]
        assert all(set(d) == set(AU_NAMES) and all(0 <= v <= 5 for v in d.values()) for d in draws)
        mean = {a: np.mean([d[a] for d in draws]) for a in AU_NAMES}
        for au, v in EXPRESSION_AUS[c].items():
            if v >= 2.0:  # the prototype's main AUs dominate on average
                assert mean[au] > 0.5 * v, (c, au, mean[au])
    assert sample_expression("neutral", np.random.default_rng(0), faint_share=0, blend_share=0)["AU12"] < 0.4
    with pytest.raises(L.LabelError):
        sample_expression("bored", rng)
    with pytest.raises(ValueError, match="unknown action unit"):
        validate_aus({"AU99": 1.0})
    with pytest.raises(ValueError, match="outside"):
        validate_aus({"AU12": 7.0})


def test_class_counts_exact_and_minimum():
    ref = L.REAL_TRAIN_COUNTS["rafdb"]
    got = class_counts(ref, 3000, minimum=20)
    assert sum(got.values()) == 3000 and min(got.values()) >= 20
    shares = L.shares(ref)
    for c in L.CLASSES:
        assert abs(got[c] / 3000 - shares[c]) < 0.005
    small = class_counts(ref, 14, minimum=2)
    assert small == {c: 2 for c in L.CLASSES}
    with pytest.raises(ValueError):
        class_counts(ref, 10, minimum=2)


def test_default_plan_class_shares_match_real_datasets():
    pre = get_preset("default")
    for name, key, split in (("rafdb", "rafdb", "train"), ("rafdb", "rafdb_test", "test"),
                             ("fer2013", "fer2013", "Training"), ("affectnet", "affectnet", "train")):
        tasks = [t for t in plan_domain(name, pre, 0) if t.split == split and t.label in L.CLASSES]
        got = L.shares(L.counts(t.label for t in tasks))
        real = L.shares(L.REAL_TRAIN_COUNTS[key])
        for c in L.CLASSES:
            assert abs(got[c] - real[c]) < 0.01, (name, split, c, got[c], real[c])
    val = L.counts(t.label for t in plan_domain("affectnet", pre, 0) if t.split == "validation")
    assert set(val.values()) == {pre.affectnet_val_per_class}


# ---- the rendered smoke world ----------------------------------------------------------------------------
def test_world_formats_read_back_with_intended_counts(world):
    from syntfer.sources import readers
    pre = PRESETS["smoke"]
    raf = readers.read_dataset("rafdb", world / "rafdb").frame
    assert (raf["split"] == "train").sum() == pre.rafdb_train and (raf["split"] == "test").sum() == pre.rafdb_test
    planned = L.counts(t.label for t in plan_domain("rafdb", pre, SEED))
    assert L.counts(raf["label"]) == planned
    aff = readers.read_dataset("affectnet", world / "affectnet")
    assert sum(aff.excluded.values()) == pre.affectnet_extra
    assert (aff.frame["split"] == "val").sum() == 7 * pre.affectnet_val_per_class
    fer = readers.read_dataset("fer2013", world / "fer2013").frame
    assert fer["split"].value_counts().to_dict() == {"train": pre.fer2013_train, "val": pre.fer2013_public,
                                                     "test": pre.fer2013_private}
    for d, n in (("digiface", pre.digiface_ids * pre.digiface_per_id), ("dcface", pre.dcface_ids * pre.dcface_per_id),
                 ("emonet_face", pre.emonet_face), ("ffhq", pre.ffhq), ("web", pre.web)):
        assert len(readers.read_dataset("unlabeled", world / d).frame) == n, d


def test_world_native_files_parse(world):
    pre = PRESETS["smoke"]
    lines = (world / "rafdb/EmoLabel/list_patition_label.txt").read_text().splitlines()
    assert len(lines) == pre.rafdb_train + pre.rafdb_test
    for line in lines:
        m = re.fullmatch(r"(train|test)_(\d{5})\.jpg ([1-7])", line)
        assert m, line
        img = Image.open(world / "rafdb/Image/aligned" / f"{m[1]}_{m[2]}_aligned.jpg")
        assert (img.size, img.mode, img.format) == ((100, 100), "RGB", "JPEG")
    tr = pd.read_csv(world / "affectnet/training.csv")
    assert list(tr.columns) == ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
                                "facial_landmarks", "expression", "valence", "arousal"]
    assert set(tr["expression"]) >= {7, 8, 9, 10} and tr["expression"].between(0, 10).all()
    for _, r in tr.iterrows():
        w, h = Image.open(world / "affectnet/Manually_Annotated_Images" / r.subDirectory_filePath).size
        assert w > r.face_width and h > r.face_height and r.face_x >= 0 and r.face_x + r.face_width <= w
        assert len(r.facial_landmarks.split(";")) == 10
    va = pd.read_csv(world / "affectnet/validation.csv")
    assert va["expression"].value_counts().to_dict() == {c: pre.affectnet_val_per_class for c in range(7)}
    fer = pd.read_csv(world / "fer2013/fer2013.csv")
    assert list(fer.columns) == ["emotion", "pixels", "Usage"]
    assert set(fer["Usage"]) == {"Training", "PublicTest", "PrivateTest"}
    px = np.array(fer["pixels"].iloc[0].split(), dtype=int)
    assert px.size == 48 * 48 and px.min() >= 0 and px.max() <= 255
    ids = sorted(p.name for p in (world / "digiface").iterdir() if p.is_dir())
    assert ids == sorted(str(k) for k in range(pre.digiface_ids))
    assert Image.open(world / "dcface/0/0.png").size == (112, 112)
    assert Image.open(world / "ffhq/00000.png").size == (128, 128)
    boxes = pd.read_csv(world / "ffhq/boxes.csv")
    assert list(boxes.columns) == ["path", "face_x", "face_y", "face_width", "face_height"]
    assert "expression" not in boxes.columns
    cap = pd.read_csv(world / "web/captions.csv", keep_default_na=False)
    assert {"path", "caption", "gender", "age", "race", *AU_NAMES} <= set(cap.columns)
    assert (cap["caption"].str.len() > 5).all() and len(cap) == pre.web


def test_world_truth_files_complete(world):
    for d in DOMAIN_NAMES:
        t = pd.read_csv(world / d / "truth.csv", keep_default_na=False)
        assert len(t) == len(plan_domain(d, PRESETS["smoke"], SEED)), d
        assert {"path", "expression", "identity", "render_seed", *AU_NAMES, "id_gender", "id_age",
                "id_skin_tone", "yaw"} <= set(t.columns)
        assert t[list(AU_NAMES)].apply(lambda s: s.between(0, 5)).all().all()
        assert t["render_seed"].tolist() == [derive_seed(SEED, d, int(i)) for i in t["index"]]
        if d != "fer2013":
            on_disk = {str(p.relative_to(world / d)) for p in (world / d).rglob("*")
                       if p.suffix in (".jpg", ".png")}
            assert on_disk == set(t["path"]), d
    dig = pd.read_csv(world / "digiface/truth.csv", keep_default_na=False)
    per_folder = dig.assign(folder=dig["path"].str.split("/").str[0]).groupby("folder")["identity"].nunique()
    assert (per_folder == 1).all()  # one identity per folder


def test_world_image_regenerates_from_truth_row(world):
    t = pd.read_csv(world / "emonet_face/truth.csv", keep_default_na=False).iloc[3]
    spec = with_render(DOMAINS["emonet_face"], PRESETS["smoke"].max_render, PRESETS["smoke"].ss)
    pil, row = make_sample(spec, SEED, int(t["index"]), t["expression"])
    assert np.array_equal(np.asarray(pil), np.asarray(Image.open(world / "emonet_face" / t["path"])))
    assert row["render_seed"] == t["render_seed"]


def test_world_is_deterministic_and_seed_sensitive(world, tmp_path):
    doms = ["rafdb", "fer2013", "digiface"]
    render_world(tmp_path / "a", preset="smoke", seed=SEED, workers=1, domains=doms, progress=False)
    for d in doms:
        assert _files(tmp_path / "a" / d) == _files(world / d), d
    render_world(tmp_path / "b", preset="smoke", seed=SEED + 1, workers=1, domains=["fer2013"], progress=False)
    assert _files(tmp_path / "b" / "fer2013") != _files(world / "fer2013")


def test_render_world_resumes_and_validates(tmp_path):
    out = tmp_path / "w"
    s1 = render_world(out, preset="smoke", seed=1, workers=1, domains=["ffhq"], progress=False)
    first = _files(out)
    s2 = render_world(out, preset="smoke", seed=1, workers=1, domains=["ffhq"], progress=False)
    assert s2["domains"]["ffhq"].get("skipped") and s2["images"] == s1["images"]
    assert "seconds" in s1 and "seconds" in s1["domains"]["ffhq"]  # timings are reported ...
    assert _files(out) == first  # ... but a resumed render leaves every file (world.json too) byte-identical
    with pytest.raises(ValueError, match="unknown world preset"):
        render_world(out, preset="huge")
    with pytest.raises(ValueError, match="unknown world domain"):
        render_world(out, preset="smoke", domains=["celeba"])


def test_cli_world_subcommand(tmp_path):
    from syntfer.cli import main
    assert main(["world", "--preset", "smoke", "--seed", "3", "--out", str(tmp_path), "--workers", "1",
                 "--domains", "ffhq", "--quiet"]) == 0
    assert len(list((tmp_path / "ffhq").glob("*.png"))) == PRESETS["smoke"].ffhq


def test_report_tables_and_probe_on_smoke_world(world):
    from syntfer.sources.world import report as R
    from syntfer.sources.world.probe import DEFAULT_TESTS, cross_domain_probe

    shares = R.class_share_table(world)
    assert len(shares) == 4 * 7 and np.allclose(shares.groupby("dataset")["world"].sum(), 1.0)
    raf_train = shares[shares["dataset"] == "rafdb/train"].set_index("class")["world_n"].to_dict()
    assert raf_train == class_counts(L.REAL_TRAIN_COUNTS["rafdb"], PRESETS["smoke"].rafdb_train,
                                     PRESETS["smoke"].min_per_class)
    assert R.au_prototype_table().shape == (7, len(AU_NAMES))
    att = R.attribute_table(world, "id_gender")
    assert list(att.index) == list(DOMAIN_NAMES) and np.allclose(att.sum(axis=1), 1.0)
    grid, rows, cols = R.domain_expression_grid(world, cell=16)
    assert grid.shape == (16 * len(DOMAIN_NAMES), 16 * 7, 3)
    probe = cross_domain_probe(world, ("rafdb", "train"), DEFAULT_TESTS, size=24, epochs=1, test_limit=10,
                               threads=1)
    assert len(probe) == len(DEFAULT_TESTS) and probe["in_domain"].sum() == 1
    # each row is a count over the test_limit images it was given: k/10 exactly, balanced accuracy from the
    # same predictions (at most 1/k_min of any class's recall away from the plain one is not guaranteed; only
    # that both are fractions of real counts)
    assert (probe["n"] == 10).all(), probe
    assert np.allclose(probe["accuracy"] * 10, np.round(probe["accuracy"] * 10)), probe
    assert probe.loc[probe["in_domain"], "test"].tolist() == ["rafdb/test"]


def test_probe_learns_a_separable_task_and_evaluate_counts_correctly():
    """The probe the world notebook trains (`train_probe`) learns what is learnable, and `evaluate` reports what
    the predictions were (a model that always answers 'happy' scores its share of happy images)."""
    import torch

    from syntfer.sources.world.probe import ProbeNet, evaluate, train_probe

    g = torch.Generator().manual_seed(0)
    y = torch.arange(140) % 7
    x = torch.rand(140, 1, 28, 28, generator=g) * 0.5  # grey, as the probe reads the world
    for c in range(7):  # each class lights its own horizontal band (the probe's flips keep it)
        x[y == c, :, 4 * c:4 * c + 4, :] += 1.0
    net = train_probe(x[:105], y[:105], epochs=20, batch_size=16, lr=5e-3, seed=0)
    held = evaluate(net, x[105:], y[105:])
    assert held["n"] == 35 and held["accuracy"] > 0.9 and held["balanced_accuracy"] > 0.9, held

    class Always(ProbeNet):
        def forward(self, inputs):
            out = torch.zeros(len(inputs), 7)
            out[:, 3] = 1.0
            return out

    const = evaluate(Always(), x, y)
    assert const["accuracy"] == pytest.approx(20 / 140) and const["balanced_accuracy"] == pytest.approx(1 / 7)
