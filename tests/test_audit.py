"""Demographic shares from world truth / prompts / a model hook; nearest-neighbour privacy check."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from syntfer.instruments import audit as A


def _png(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8)).save(path)
    return str(path.resolve())


@pytest.fixture
def world(tmp_path):
    root = tmp_path / "world"
    rows = []
    spec = [("happy", "female", "young", "2", "p1"), ("happy", "male", "old", "5", "p2"),
            ("happy", "female", "adult", "2", "p3"), ("sad", "male", "child", "6", "p4")]
    for i, (expr, g, a, s, ident) in enumerate(spec):
        rows.append({"path": f"Image/aligned/train_{i:05d}_aligned.jpg", "expression": expr, "gender": g, "age": a,
                     "skin_tone": s, "identity": ident})
    (root / "rafdb").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(root / "rafdb" / "truth.csv", index=False)
    (root / "ffhq").mkdir()
    pd.DataFrame([{"path": "00001.png", "expression": "neutral", "gender": "male", "age": "adult", "skin_tone": "3",
                   "identity": "f1"}]).to_csv(root / "ffhq" / "truth.csv", index=False)
    return root


def test_read_world_truth_makes_paths_absolute(world):
    t = A.read_world_truth(world)
    assert list(t["domain"]) == ["ffhq"] + ["rafdb"] * 4
    assert t.loc[0, "path"] == str((world / "ffhq" / "00001.png").resolve())
    with pytest.raises(A.AuditError, match="truth file not found"):
        A.read_world_truth(world, domains=["web"])


def test_attach_truth_by_path_origin_and_fragment(world):
    truth = A.read_world_truth(world)
    raf = world.resolve() / "rafdb" / "Image" / "aligned"
    frame = pd.DataFrame({
        "path": [str(raf / "train_00000_aligned.jpg"), "/mix/train/happy/x.jpg", "/mix/train/sad/y.jpg",
                 str(world.resolve() / "ffhq" / "00001.png") + "#box=1,2,3,4", "/elsewhere/z.png"],
        "origin_path": ["", str(raf / "train_00001_aligned.jpg"), str(raf / "train_00003_aligned.jpg"), "", ""],
        "label": ["happy", "happy", "sad", "neutral", "fear"]})
    out = A.attach_truth(frame, truth)
    assert list(out["truth_match"]) == ["path", "origin_path", "origin_path", "path-file", ""]
    assert list(out["gender"]) == ["female", "male", "male", "male", "unknown"]
    assert list(out["identity"]) == ["p1", "p2", "p4", "f1", "unknown"]
    with pytest.raises(A.AuditError, match="no column"):
        A.attach_truth(frame, truth.drop(columns=["skin_tone"]))


def test_demographic_shares(world):
    truth = A.read_world_truth(world, domains=["rafdb"])
    frame = truth.assign(label=truth["expression"])
    extra = pd.DataFrame({"path": ["/nowhere.png"], "label": ["happy"]})
    t = A.demographic_table(A.attach_truth(pd.concat([frame[["path", "label"]], extra]), truth), "real_rafdb",
                            "world truth")
    assert set(t.columns) == {"set", "basis", "label", "attribute", "value", "count", "share"}
    g = t[(t["attribute"] == "gender")].set_index(["label", "value"])
    assert g.loc[("happy", "female"), "count"] == 2 and g.loc[("happy", "female"), "share"] == pytest.approx(0.5)
    assert g.loc[("happy", "male"), "share"] == pytest.approx(0.25)
    assert g.loc[("happy", "unknown"), "share"] == pytest.approx(0.25)
    assert g.loc[("sad", "male"), "share"] == pytest.approx(1.0)
    assert g.loc[("all", "male"), "count"] == 2 and g.loc[("all", "male"), "share"] == pytest.approx(0.4)
    # shares of one attribute sum to 1 within each class
    sums = t.groupby(["label", "attribute"])["share"].sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0)
    assert set(t["label"]) == {"happy", "sad", "all"}
    tone = t[(t["attribute"] == "skin_tone") & (t["label"] == "all")].set_index("value")["count"].to_dict()
    assert tone == {"2": 2, "5": 1, "6": 1, "unknown": 1}


def test_prompt_basis_uses_race_word_column():
    frame = pd.DataFrame({"path": ["a", "b", "c"], "label": ["sad", "sad", "fear"],
                          "race": ["asian", "black", "asian"], "gender": ["male", "female", "female"]})
    t = A.demographic_table(frame, "diffusion_sd", "prompt", attributes=("gender", "race", "age"))
    r = t[(t["attribute"] == "race") & (t["label"] == "sad")].set_index("value")["share"]
    assert r.to_dict() == {"asian": 0.5, "black": 0.5}
    assert (t.loc[t["attribute"] == "age", "value"] == "unknown").all()


def test_attribute_model_hook(tmp_path):
    paths = [_png(tmp_path / f"{i}.png", np.full((4, 4, 3), v)) for i, v in enumerate([10, 200, 220])]
    calls = []

    def model(images):
        calls.append(len(images))
        return [{"gender": "female" if np.asarray(im).mean() > 100 else "male", "age": "adult"} for im in images]

    out = A.predict_attributes(pd.DataFrame({"path": paths, "label": ["happy"] * 3}), model, batch_size=2)
    assert calls == [2, 1]
    assert list(out["gender"]) == ["male", "female", "female"]
    assert list(out["skin_tone"]) == ["unknown"] * 3
    with pytest.raises(A.AuditError, match="returned 1 results for 2"):
        A.predict_attributes(pd.DataFrame({"path": paths[:2]}), lambda ims: [{}])


def test_nearest_neighbours_and_threshold():
    ref = np.eye(3, dtype=np.float32)
    q = np.array([[1, 0, 0], [0.6, 0.8, 0], [0, 0, -1]], dtype=np.float32)
    idx, sim = A.nearest_neighbours(q, ref, chunk=2)
    assert list(idx) == [0, 1, 0]  # ties: first reference index
    np.testing.assert_allclose(sim, [1.0, 0.8, 0.0], atol=1e-6)
    idx2, sim2 = A.nearest_neighbours(ref, ref, exclude_self=True)
    np.testing.assert_allclose(sim2, 0.0)
    with pytest.raises(A.AuditError, match="not L2-normalised"):
        A.nearest_neighbours(q * 2, ref)
    hold = np.array([[1, 0, 0], [0.6, 0.8, 0], [0.8, 0.6, 0], [0, 0.6, 0.8]], dtype=np.float32)
    assert A.holdout_threshold(hold, ref, quantile=0.5) == pytest.approx(0.8)


def test_privacy_check_flags_copies(tmp_path):
    rng = np.random.default_rng(0)
    real = [_png(tmp_path / "real" / f"{i}.png", rng.integers(0, 255, (20, 20, 3))) for i in range(6)]
    copy = _png(tmp_path / "syn" / "copy.png", np.asarray(Image.open(real[2])))
    fresh = [_png(tmp_path / "syn" / f"new{i}.png", rng.integers(0, 255, (20, 20, 3))) for i in range(3)]
    res = A.privacy_check({"gan_f": [copy, *fresh], "gan_v": fresh}, real, A.pixel_embedding(), space="pixel",
                          threshold=0.9, identities={"gan_f": ["p2", "x", "y", "unknown"]},
                          real_identities=["p0", "p1", "p2"], cache_dir=tmp_path / "cache")
    t = res.table
    first = t[(t["set"] == "gan_f")].iloc[0]
    assert first["nn_path"] == real[2] and first["similarity"] == pytest.approx(1.0, abs=1e-5) and first["flagged"]
    assert not t.iloc[1:]["flagged"].any()
    s = res.summary.set_index("set")
    assert s.loc["gan_f", "n"] == 4 and s.loc["gan_f", "n_flagged"] == 1
    assert s.loc["gan_f", "share_flagged"] == pytest.approx(0.25)
    assert s.loc["gan_v", "n_flagged"] == 0 and s.loc["gan_f", "space"] == "pixel"
    assert s.loc["gan_f", "n_true_identity_overlap"] == 1
    assert np.isnan(s.loc["gan_v", "n_true_identity_overlap"])
    assert s.loc["gan_f", "similarity_max"] == pytest.approx(1.0, abs=1e-5)
    assert (tmp_path / "cache" / "pixel__real_train.npz").is_file()


def test_audit_sets_mixes_prompt_and_truth_bases(world):
    truth = A.read_world_truth(world)
    raf = world.resolve() / "rafdb" / "Image" / "aligned"
    mix = pd.DataFrame({
        "path": ["/m/1.png", "/m/2.png", "/m/3.png", "/m/4.png"],
        "origin_path": [str(raf / "train_00000_aligned.jpg"), str(raf / "train_00003_aligned.jpg"), "", "/x.png"],
        "label": ["happy", "sad", "sad", "sad"],
        "gender": ["", "", "female", ""], "age": ["", "", "old", ""], "race": ["", "", "latino", ""]})
    t = A.audit_sets({"mixed_syn": mix}, truth)
    assert set(t["basis"]) == {"world truth", "prompt"}
    p = t[t["basis"] == "prompt"]
    assert set(p["attribute"]) == {"gender", "age", "race"}
    assert p[(p["attribute"] == "race") & (p["label"] == "sad")]["value"].tolist() == ["latino"]
    w = t[(t["basis"] == "world truth") & (t["label"] == "all") & (t["attribute"] == "gender")]
    assert w.set_index("value")["count"].to_dict() == {"female": 1, "male": 1, "unknown": 1}
    assert (t.loc[t["basis"] == "world truth", "n_unmatched"] == 1).all()
    with pytest.raises(A.AuditError, match="no prompt attributes"):
        A.audit_sets({"x": mix.drop(columns=["race"])})


def test_audit_cli_writes_demographics_and_privacy(world, tmp_path):
    import argparse

    from syntfer.core.manifest import write_manifest

    rng = np.random.default_rng(1)
    real = [_png(tmp_path / "real" / f"{i}.png", rng.integers(0, 255, (16, 16, 3))) for i in range(4)]
    syn = [_png(tmp_path / "syn" / "c.png", np.asarray(Image.open(real[0]))),
           _png(tmp_path / "syn" / "d.png", rng.integers(0, 255, (16, 16, 3)))]
    write_manifest(pd.DataFrame({"path": real, "label": ["happy"] * 4}), tmp_path / "real.csv")
    write_manifest(pd.DataFrame({"path": syn, "label": ["sad", "fear"], "gender": ["male", "female"],
                                 "age": ["old", "child"], "race": ["asian", "white"]}), tmp_path / "syn.csv")
    parser = argparse.ArgumentParser()
    A.add_arguments(parser)
    args = parser.parse_args(["--set", f"diffusion_sd={tmp_path / 'syn.csv'}", "--world", str(world),
                              "--real", str(tmp_path / "real.csv"), "--threshold", "0.9", "--out", str(tmp_path / "o")])
    assert A.run(args) == 0
    demo = pd.read_csv(tmp_path / "o" / "demographics.csv")
    assert set(demo["basis"]) == {"prompt"} and len(demo[demo["label"] == "all"]) == 6
    priv = pd.read_csv(tmp_path / "o" / "privacy.csv")
    assert priv.loc[0, "n_flagged"] == 1 and priv.loc[0, "space"] == "pixel"
    images = pd.read_csv(tmp_path / "o" / "privacy_images.csv")
    assert images["flagged"].tolist() == [True, False]


def test_identity_embedding_adapter(tmp_path):
    import torch

    from syntfer.instruments import identity_encoder
    torch.manual_seed(0)
    enc = identity_encoder.IdentityEncoder(identity_encoder.IdentityConfig(image_size=16, width=4, embed_dim=8))
    identity_encoder.save_identity_encoder(tmp_path / "enc", enc)
    embed = A.identity_embedding(tmp_path / "enc")
    rng = np.random.default_rng(2)
    ims = [Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)) for _ in range(3)]
    v = embed(ims)
    assert v.shape == (3, 8)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    small = np.stack([np.asarray(im.resize((16, 16), Image.Resampling.BILINEAR)) for im in ims])
    direct = identity_encoder.embed(identity_encoder.load_identity_encoder(tmp_path / "enc"), small)
    np.testing.assert_allclose(v, direct, rtol=1e-5, atol=1e-6)
    name, _ = A.embedding_from_spec(f"identity:{tmp_path / 'enc'}")
    assert name == "identity"


def test_embed_set_caches_where_privacy_check_reads(tmp_path):
    rng = np.random.default_rng(1)
    real = [_png(tmp_path / "real" / f"{i}.png", rng.integers(0, 255, (20, 20, 3))) for i in range(4)]
    syn = [_png(tmp_path / "syn" / f"{i}.png", rng.integers(0, 255, (20, 20, 3))) for i in range(3)]
    pixel = A.pixel_embedding()
    seen = []

    def embed(images):  # the pixel embedding, counting the images it is asked to embed
        seen.append(len(images))
        return pixel(images)

    embed.fingerprint = pixel.fingerprint
    cache = tmp_path / "features"
    assert A.feature_cache(cache, "pixel", "gan_f") == cache / "pixel__gan_f.npz"
    f_syn = A.embed_set(embed, syn, space="pixel", name="gan_f", cache_dir=cache, batch_size=2)
    f_real = A.embed_set(embed, real, space="pixel", name=A.REAL_TRAIN, cache_dir=cache)
    assert f_syn.shape == (3, 256) and sum(seen) == 7
    assert sorted(p.name for p in cache.iterdir()) == ["pixel__gan_f.npz", "pixel__real_train.npz"]
    np.testing.assert_array_equal(A.embed_set(embed, syn, space="pixel"), f_syn)  # no cache: same features
    seen.clear()
    res = A.privacy_check({"gan_f": syn}, real, embed, space="pixel", threshold=0.9, cache_dir=cache)
    assert seen == []  # every feature came from the cache embed_set wrote
    _, sim = A.nearest_neighbours(f_syn, f_real)
    np.testing.assert_allclose(res.table["similarity"], sim)
    A.embed_set(embed, syn[:2], space="pixel", name="gan_f", cache_dir=cache)  # other images: embedded again
    assert seen == [2]


def test_embed_set_needs_a_name_to_cache_and_plain_names(tmp_path):
    with pytest.raises(A.AuditError, match="needs the set's name"):
        A.embed_set(A.pixel_embedding(), ["x.png"], space="pixel", cache_dir=tmp_path)
    with pytest.raises(A.AuditError, match="file-name parts"):
        A.feature_cache(tmp_path, "pixel", "../escape")


def test_leave_one_out_threshold_is_the_quantile_of_each_face_to_its_nearest_other():
    from syntfer.instruments.audit import AuditError, leave_one_out_threshold

    v = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]], np.float32)
    # nearest other: 0 -> 1 (0.8), 1 -> 0 or 2 (0.8 / 0.6 -> 0.8), 2 -> 1 (0.6)
    assert leave_one_out_threshold(v, 1.0) == pytest.approx(0.8)
    assert leave_one_out_threshold(v, 0.5) == pytest.approx(0.8)
    assert leave_one_out_threshold(v, 1e-9) == pytest.approx(0.6)
    with pytest.raises(AuditError, match="quantile"):
        leave_one_out_threshold(v, 0.0)
    with pytest.raises(AuditError, match="at least 2"):
        leave_one_out_threshold(v[:1], 0.9)
