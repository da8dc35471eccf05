"""The set-measurement notebook's tables (syntfer.study.sets_tables): each function on small frames, folders and
stand-in instruments the tests make, its values checked (not only its shape), and its failures naming what is
wrong. Notebook 06 end to end: tests/test_sets_notebook.py."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from imagesets import noise_images
from PIL import Image

from syntfer.core import labels as L
from syntfer.core import provenance as PV
from syntfer.core.manifest import ManifestError, write_manifest
from syntfer.instruments import audit as AUDIT
from syntfer.instruments import identity_encoder as IDENT
from syntfer.instruments import setmetrics as SETM
from syntfer.study import sets_tables as STAB

ROOT = Path(__file__).resolve().parents[1]
ENCODER = ROOT / "models" / "identity" / "world32"


def _set(folder: Path, labels: list[str], **columns) -> Path:
    """A set folder with one noise image per label and its manifest.csv; returns the manifest."""
    paths = noise_images(folder / "images", [(12, 12)] * len(labels))
    return write_manifest(pd.DataFrame({"path": paths, "label": labels, **columns}), folder / "manifest.csv")


# ---- inputs ------------------------------------------------------------------------------------------------------
def test_set_names_in_order_and_refused_when_empty_or_twice():
    assert STAB.set_names(" gan_f, gan_v ,,mixed_syn") == ["gan_f", "gan_v", "mixed_syn"]
    with pytest.raises(ValueError, match=r"synthetic=' , ': no set names"):
        STAB.set_names(" , ")
    with pytest.raises(ValueError, match="a set is named twice"):
        STAB.set_names("gan_f,gan_v,gan_f")


def test_manifest_files_lists_every_missing_manifest(tmp_path):
    (tmp_path / "gan_f").mkdir()
    (tmp_path / "gan_f" / "manifest.csv").write_text("path,label\n")
    assert STAB.manifest_files(tmp_path, ["gan_f"]) == {"gan_f": tmp_path / "gan_f" / "manifest.csv"}
    with pytest.raises(FileNotFoundError, match=r"not found: \[.*gan_x/manifest.csv', .*gan_y/manifest.csv'\]"):
        STAB.manifest_files(tmp_path, ["gan_f", "gan_x", "gan_y"])


def test_require_inputs_names_the_first_missing_one(tmp_path):
    STAB.require_inputs(reference=tmp_path, judge=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"^judge='.*nothing' not found$"):
        STAB.require_inputs(reference=tmp_path, judge=str(tmp_path / "nothing"), ceilings=str(tmp_path / "no"))


def test_describe_inputs_reads_each_kind_from_the_data(tmp_path):
    manifest = _set(tmp_path / "real_rafdb", ["happy", "sad"])
    noise_images(tmp_path / "ref", [(8, 8)])
    inputs = STAB.describe_inputs(reference=str(tmp_path / "ref"), identity_dir=str(ENCODER), clip_weights="",
                                  real_train=str(manifest))
    assert {k: v["kind"] for k, v in inputs.items()} == {"reference": "real", "identity_encoder": "world",
                                                         "clip_weights": "unused", "real_train": "real"}
    assert inputs["real_train"]["path"] == str(manifest)
    assert STAB.WHERE[PV.run_kind(inputs)] == "part world, part real inputs"


# ---- the sets ----------------------------------------------------------------------------------------------------
def test_read_sets_subsets_and_counts(tmp_path):
    files = {"gan_f": _set(tmp_path / "gan_f", ["happy", "happy", "sad", "fear", "fear"]),
             "gan_v": _set(tmp_path / "gan_v", ["neutral", "anger"])}
    sets = STAB.read_sets(files, max_images=3, seed=0)
    assert sets.names == ["gan_f", "gan_v"]
    np.testing.assert_array_equal(sets.positions["gan_f"], SETM.subset_positions(5, 3, 0, "gan_f"))
    np.testing.assert_array_equal(sets.positions["gan_v"], [0, 1])
    assert sets.subsets["gan_f"]["path"].tolist() == sets.frames["gan_f"]["path"].iloc[
        sets.positions["gan_f"]].tolist()
    assert list(sets.subsets["gan_f"].index) == [0, 1, 2]
    counts = STAB.counts_table(sets)
    assert list(counts.columns) == [*L.CLASSES, "all", "measured (FD/KID/privacy)"]
    assert counts.loc["gan_f", ["happy", "sad", "fear", "all", "measured (FD/KID/privacy)"]].tolist() == [2, 1, 2, 5, 3]
    assert counts.loc["gan_v", ["neutral", "anger", "happy", "all", "measured (FD/KID/privacy)"]].tolist() == [
        1, 1, 0, 2, 2]


def test_read_sets_refuses_an_empty_set_or_a_bad_label(tmp_path):
    empty = tmp_path / "empty" / "manifest.csv"
    empty.parent.mkdir()
    empty.write_text("path,label\n")
    with pytest.raises(ValueError, match=r"empty/manifest.csv: set 'gan_x' has no images"):
        STAB.read_sets({"gan_x": empty}, max_images=0, seed=0)
    bad = _set(tmp_path / "bad", ["happy", "smirk"])
    with pytest.raises(ManifestError, match="bad/manifest.csv"):
        STAB.read_sets({"bad": bad}, max_images=0, seed=0)


def test_reference_frame_is_the_seeded_reference_subset(tmp_path):
    noise_images(tmp_path / "ffhq", [(8, 8)] * 6)
    ref = STAB.reference_frame(tmp_path / "ffhq", max_images=4, seed=0)
    whole = STAB.reference_frame(tmp_path / "ffhq", max_images=0, seed=0)
    assert len(whole) == 6 and len(ref) == 4
    assert ref["path"].tolist() == whole["path"].iloc[SETM.subset_positions(6, 4, 0, "reference")].tolist()


# ---- expression fidelity -----------------------------------------------------------------------------------------
class _Judge:
    """A stand-in judge: reads every image as its file name's class (``<class>_<i>.png``); features = [i, i]."""

    def __init__(self):
        self.calls = []

    def outputs(self, paths, *, batch_size, workers):
        self.calls.append((len(paths), batch_size, workers))
        probs = np.full((len(paths), L.NUM_CLASSES), 0.02)
        for i, p in enumerate(paths):
            probs[i, L.CLASSES.index(Path(p).name.split("_")[0])] = 0.88
        return SimpleNamespace(probs=probs, features=np.repeat(np.arange(len(paths), dtype=float)[:, None], 2, 1))


def _named_set(name: str, labels: list[str], read_as: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"path": [f"/x/{name}/{r}_{i}.png" for i, r in enumerate(read_as)], "label": labels})


def test_judge_sets_fidelity_features_and_ceilings():
    frames = {"gan_f": _named_set("gan_f", ["happy", "happy", "sad", "sad"], ["happy", "fear", "sad", "sad"]),
              "pseudolabel_x": _named_set("p", ["fear", "anger"], ["fear", "anger"])}
    sets = STAB.Sets(frames, {"gan_f": np.array([1, 3]), "pseudolabel_x": np.array([0, 1])},
                     {n: f for n, f in frames.items()})
    ceilings = pd.DataFrame([{"domain": "ref_ffhq", "class": "mean_class", "n": 70, "fidelity": 0.8, "p_label": 0.5}])
    judge = _Judge()
    out = STAB.judge_sets(judge, sets, ceilings=ceilings, set_domains="diffusion_:ref_web,gan_:ref_ffhq",
                          batch_size=16, workers=2)
    assert judge.calls == [(4, 16, 2), (2, 16, 2)]
    t = out.table.set_index(["set", "class"])
    assert list(out.table.columns) == ["set", "class", "n", "fidelity", "p_label"] and len(out.table) == 16
    assert t.loc[("gan_f", "happy"), "fidelity"] == 0.5 and t.loc[("gan_f", "sad"), "fidelity"] == 1.0
    assert t.loc[("gan_f", "all"), ["n", "fidelity"]].tolist() == [4, 0.75]
    assert np.isnan(t.loc[("gan_f", "fear"), "fidelity"]) and t.loc[("gan_f", "fear"), "n"] == 0
    np.testing.assert_array_equal(out.features["gan_f"], [[1, 1], [3, 3]])
    assert out.ceilings == {"gan_f": ("ref_ffhq", 0.8)}  # a pseudo-labeled set imitates no single domain
    mean_class = STAB.mean_class(out.table)
    assert mean_class.to_dict() == {"gan_f": 0.75, "pseudolabel_x": 1.0}
    wide = STAB.fidelity_wide(out.table, ["pseudolabel_x", "gan_f"])
    assert list(wide.index) == ["pseudolabel_x", "gan_f"] and list(wide.columns) == [*L.CLASSES, "all"]
    assert wide.loc["gan_f", "all"] == 0.75
    against = STAB.against_ceiling(mean_class, out.ceilings, ["gan_f", "pseudolabel_x"])
    assert against["ceiling (domain)"].tolist() == ["0.800 (ref_ffhq)", "—"]
    assert against.loc["gan_f", "fidelity / ceiling"] == pytest.approx(0.75 / 0.8)
    assert np.isnan(against.loc["pseudolabel_x", "fidelity / ceiling"])


def test_set_domain_first_matching_prefix():
    domains = {"diffusion_": "ref_web", "gan_": "ref_ffhq"}
    assert STAB.set_domain("gan_v", domains) == "ref_ffhq" and STAB.set_domain("diffusion_embedded", domains) == \
        "ref_web"
    assert STAB.set_domain("mixed_syn", domains) is None


# ---- FD / KID ----------------------------------------------------------------------------------------------------
def test_feature_spaces_cache_each_sets_identity_features_for_the_privacy_check(tmp_path):
    files = {"gan_f": _set(tmp_path / "gan_f", ["happy"] * 4), "gan_v": _set(tmp_path / "gan_v", ["sad"] * 3)}
    sets = STAB.read_sets(files, max_images=2, seed=0)
    noise_images(tmp_path / "ref", [(10, 10)] * 2)
    ref = STAB.reference_frame(tmp_path / "ref", 2, 0)
    embed = AUDIT.pixel_embedding(4)
    judge_feats = {"gan_f": np.ones((2, 3)), "gan_v": np.zeros((2, 3))}
    spaces = STAB.feature_spaces(judge_feats, np.ones((2, 3)), sets, ref, embed, features_dir=tmp_path / "feat",
                                 batch_size=2)
    assert list(spaces) == ["judge", "identity"]  # no clip without clip_weights
    assert spaces["judge"][0]["gan_f"] is judge_feats["gan_f"]
    ident, ident_ref = spaces["identity"]
    assert {n: f.shape for n, f in ident.items()} == {"gan_f": (2, 16), "gan_v": (2, 16)} and ident_ref.shape == (2, 16)
    assert sorted(p.name for p in (tmp_path / "feat").iterdir()) == ["identity__gan_f.npz", "identity__gan_v.npz"]
    again = AUDIT.embed_set(embed, sets.subsets["gan_f"]["path"].tolist(), space="identity", name="gan_f",
                            cache_dir=tmp_path / "feat")
    np.testing.assert_array_equal(again, ident["gan_f"])


# ---- identity similarity -----------------------------------------------------------------------------------------
def test_identity_similarity_of_edit_sets_and_why_others_are_skipped(tmp_path):
    faces = noise_images(tmp_path / "src", [(32, 32)] * 3)
    copies = []
    for i, f in enumerate(faces):  # an "edit" identical to its source face (similarity 1) …
        copies.append(str(tmp_path / f"copy{i}.png"))
        Image.open(f).save(copies[-1])
    edits = pd.DataFrame({"path": [copies[0], copies[1], faces[2]], "label": ["happy", "sad", "happy"],
                          "source_path": [faces[0], faces[1], faces[0]],  # … and one of another face
                          "control_x": [0.5] * 3, "control_y": [-0.25] * 3})
    pseudo = pd.DataFrame({"path": faces, "label": ["fear"] * 3, "source_path": faces})
    encoder = IDENT.load_identity_encoder(ENCODER)
    idsim, status = STAB.identity_similarity({"pseudolabel_x": pseudo, "gan_f": edits}, encoder)
    assert list(idsim.columns) == STAB.IDSIM_COLUMNS and idsim["set"].tolist() == ["gan_f"] * 3
    assert idsim["source_face"].tolist() == [faces[0], faces[1], faces[0]]
    assert idsim["similarity"].iloc[:2].tolist() == pytest.approx([1.0, 1.0], abs=1e-5)
    assert idsim["similarity"].iloc[2] < 0.99 and idsim["similarity"].dtype == np.float64
    assert status.to_dict("records") == [
        {"set": "pseudolabel_x", "identity_similarity": "skipped", "n": 0,
         "reason": "no control_x / control_y column (not an edit set)"},
        {"set": "gan_f", "identity_similarity": "measured", "n": 3, "reason": ""}]
    by_class = STAB.identity_by_class(idsim)
    assert by_class.loc["sad", ("size", "gan_f")] == 1 and by_class.loc["happy", ("size", "gan_f")] == 2
    assert by_class.loc["happy", ("mean", "gan_f")] == pytest.approx(idsim["similarity"].iloc[[0, 2]].mean())
    none, status = STAB.identity_similarity({"pseudolabel_x": pseudo}, encoder)
    assert none.empty and list(none.columns) == STAB.IDSIM_COLUMNS and status["n"].tolist() == [0]


# ---- privacy -----------------------------------------------------------------------------------------------------
def test_privacy_threshold_given_or_calibrated():
    real = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])  # nearest other face: 0.8, 0.8, 0.6
    assert STAB.privacy_threshold(real, 0.9, 0.99) == (0.9, "given")
    value, basis = STAB.privacy_threshold(real, 0.0, 0.5)
    assert basis == "real leave-one-out q0.5" and value == pytest.approx(0.8)
    assert value == AUDIT.leave_one_out_threshold(real, 0.5)


# ---- demographics ------------------------------------------------------------------------------------------------
def test_demographics_without_world_truth_audits_prompted_rows_only(tmp_path):
    paths = noise_images(tmp_path / "imgs", [(8, 8)] * 4)
    diffusion = pd.DataFrame({"path": paths[:2], "label": ["happy", "sad"], "gender": ["woman", "man"],
                              "age": ["adult", "adult"], "race": ["asian", "black"]})
    mix = pd.DataFrame({"path": paths[2:], "label": ["fear", "fear"], "gender": ["man", ""], "age": ["child", ""],
                        "race": ["white", ""]})
    pseudo = pd.DataFrame({"path": paths[:1], "label": ["happy"]})
    frames = {"diffusion_x": diffusion, "mixed_syn": mix, "pseudolabel_x": pseudo}
    assert {n: len(f) for n, f in STAB.prompted_rows(frames).items()} == {"diffusion_x": 2, "mixed_syn": 1}
    audited = STAB.demographics(frames)
    assert audited.no_truth == f"the sets' source images: {PV.NO_TRUTH}; prompted rows only"
    assert audited.without_basis == ["pseudolabel_x"]
    demo = audited.table
    assert set(demo["basis"]) == {"prompt"} and set(demo["set"]) == {"diffusion_x", "mixed_syn"}
    gender = STAB.attribute_shares(demo, "gender")
    assert gender.loc[("diffusion_x", "prompt"), "woman"] == 0.5 and gender.loc[("mixed_syn", "prompt"), "woman"] == 0
    assert gender.loc[("mixed_syn", "prompt"), "man"] == 1.0
    assert STAB.unmatched_rows(demo)["n_unmatched"].tolist() == [0, 0]
    nothing = STAB.demographics({"pseudolabel_x": pseudo})
    assert nothing.table.empty and list(nothing.table.columns) == STAB.DEMOGRAPHIC_COLUMNS
    assert nothing.without_basis == ["pseudolabel_x"]


def test_unmatched_rows_and_shares_of_an_audit_table():
    demo = pd.DataFrame([
        {"set": "gan_f", "basis": "world truth", "label": "all", "attribute": "age", "value": "adult", "count": 3,
         "share": 0.75, "n_unmatched": 1},
        {"set": "gan_f", "basis": "world truth", "label": "all", "attribute": "age", "value": "unknown", "count": 1,
         "share": 0.25, "n_unmatched": 1},
        {"set": "gan_f", "basis": "world truth", "label": "happy", "attribute": "age", "value": "adult", "count": 1,
         "share": 1.0, "n_unmatched": 1},
        {"set": "mixed_syn", "basis": "prompt", "label": "all", "attribute": "age", "value": "child", "count": 2,
         "share": 1.0, "n_unmatched": 0}])
    assert STAB.unmatched_rows(demo)["n_unmatched"].to_dict() == {("gan_f", "world truth"): 1,
                                                                  ("mixed_syn", "prompt"): 0}
    shares = STAB.attribute_shares(demo, "age")
    assert shares.to_dict("index") == {("gan_f", "world truth"): {"adult": 0.75, "child": 0.0, "unknown": 0.25},
                                       ("mixed_syn", "prompt"): {"adult": 0.0, "child": 1.0, "unknown": 0.0}}


# ---- synthetic.csv and metrics.json ------------------------------------------------------------------------------
def test_synthetic_rows_and_metrics():
    frames = {"gan_f": pd.DataFrame({"label": ["happy"] * 4}), "pseudolabel_x": pd.DataFrame({"label": ["sad"] * 2})}
    mean_class = pd.Series({"gan_f": 0.6, "pseudolabel_x": 0.9})
    distances = pd.DataFrame([{"set": s, "space": sp, "fd": fd, "kid": fd / 100}
                              for s, sp, fd in (("gan_f", "judge", 3.0), ("pseudolabel_x", "judge", 5.0),
                                                ("gan_f", "identity", 7.0), ("pseudolabel_x", "identity", 9.0))])
    idsim = pd.DataFrame({"set": ["gan_f", "gan_f"], "similarity": [0.5, 0.7]})
    syn = STAB.synthetic_rows(["gan_f", "pseudolabel_x"], frames, mean_class, {"gan_f": ("ref_ffhq", 0.8)},
                              distances, idsim)
    assert [tuple(r) for r in syn.itertuples(index=False)] == [
        ("gan_f", "n_images", 4), ("gan_f", "expression_fidelity", 0.6), ("gan_f", "judge_ceiling", 0.8),
        ("gan_f", "fidelity_over_ceiling", pytest.approx(0.75)), ("gan_f", "fd_judge", 3.0),
        ("gan_f", "kid_judge", 0.03), ("gan_f", "fd_identity", 7.0), ("gan_f", "kid_identity", 0.07),
        ("gan_f", "identity_similarity", pytest.approx(0.6)),
        ("pseudolabel_x", "n_images", 2), ("pseudolabel_x", "expression_fidelity", 0.9),
        ("pseudolabel_x", "fd_judge", 5.0), ("pseudolabel_x", "kid_judge", 0.05),
        ("pseudolabel_x", "fd_identity", 9.0), ("pseudolabel_x", "kid_identity", 0.09)]
    privacy = pd.DataFrame({"set": ["gan_f", "pseudolabel_x"], "share_flagged": [0.0, 0.5]})
    metrics = STAB.synthetic_metrics(syn, privacy)
    assert metrics["n_images.gan_f"] == 4 and isinstance(metrics["n_images.gan_f"], int)
    assert metrics["fd_identity.pseudolabel_x"] == 9.0 and metrics["identity_similarity.gan_f"] == pytest.approx(0.6)
    assert metrics["privacy_share_flagged.pseudolabel_x"] == 0.5 and len(metrics) == len(syn) + 2
    status = pd.DataFrame({"set": ["gan_f", "pseudolabel_x"], "identity_similarity": ["measured", "skipped"]})
    run = STAB.run_metrics(data_kind="world", inputs={"reference": {"path": "r", "kind": "world"}}, skipped={},
                           names=["gan_f", "pseudolabel_x"], judge_model="cnn_tiny", max_images=600, n_reference=12,
                           threshold=0.93, idsim_status=status, synthetic=syn, privacy_summary=privacy)
    assert list(run)[:10] == ["data_kind", "inputs", "skipped", "n_sets", "judge_model", "max_images", "n_reference",
                              "privacy_threshold", "identity_similarity_measured", "identity_similarity_skipped"]
    assert [run[k] for k in ("n_sets", "n_reference", "privacy_threshold", "identity_similarity_measured",
                             "identity_similarity_skipped")] == [2, 12, 0.93, 1, 1]
    assert {k: v for k, v in run.items() if "." in k} == metrics
    assert STAB.expected_metrics(["judge", "identity"]) == {"n_images", "expression_fidelity", "fd_judge", "kid_judge",
                                                            "fd_identity", "kid_identity"}
    empty = STAB.synthetic_rows([], {}, mean_class, {}, distances, pd.DataFrame(columns=STAB.IDSIM_COLUMNS))
    assert empty.empty and list(empty.columns) == ["set", "metric", "value"]
