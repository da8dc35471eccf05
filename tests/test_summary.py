"""The study summary: nested keys, seed means and sds, routing of each input kind, loud failures."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest

from syntfer.study import summary as S

TESTS = ("rafdb", "affectnet", "fer2013")


def _cross(train_set, model, seed, accs, f1=0.5):
    rows = []
    for test, acc in zip(TESTS, accs):
        rows += [{"train_set": train_set, "model": model, "seed": seed, "test_set": test, "metric": "accuracy",
                  "value": acc},
                 {"train_set": train_set, "model": model, "seed": seed, "test_set": test,
                  "metric": "balanced_accuracy", "value": acc - 0.1},
                 {"train_set": train_set, "model": model, "seed": seed, "test_set": test, "metric": "macro_f1",
                  "value": f1},
                 {"train_set": train_set, "model": model, "seed": seed, "test_set": test, "metric": "recall_anger",
                  "value": 0.3}]
    return pd.DataFrame(rows)


@pytest.fixture
def inputs(tmp_path):
    files = []
    for seed, accs in ((0, (0.8, 0.4, 0.3)), (1, (0.7, 0.5, 0.3)), (2, (0.9, 0.6, 0.3))):
        f = tmp_path / "train" / f"real_rafdb-ir_tiny-{seed}" / "cross_dataset.csv"
        f.parent.mkdir(parents=True)
        _cross("real_rafdb", "ir_tiny", seed, accs).to_csv(f, index=False)
        files.append(str(f))
    f = tmp_path / "train" / "gan_f-ir_tiny-0" / "cross_dataset.csv"
    f.parent.mkdir(parents=True)
    _cross("gan_f", "ir_tiny", 0, (0.5, 0.4, 0.2)).to_csv(f, index=False)
    files.append(str(f))
    syn = tmp_path / "syn"
    syn.mkdir()
    (syn / "gan_f.json").write_text(json.dumps({"set": "gan_f", "n_images": 700, "expression_fidelity": 0.81,
                                                "identity_similarity": 0.77}))
    pd.DataFrame([{"set": "gan_f", "space": "baseline", "n": 700, "n_reference": 300, "fd": 12.5, "kid": 0.031,
                   "kid_sd": 0.002, "kid_subset_size": 300, "fd_regularized": False},
                  {"set": "mixed_syn", "space": "baseline", "n": 900, "n_reference": 300, "fd": 3.0, "kid": 0.01,
                   "kid_sd": 0.001, "kid_subset_size": 300, "fd_regularized": False}]).to_csv(
        syn / "distances.csv", index=False)
    (syn / "ident.json").write_text(json.dumps({"mixed_syn": {"n_images": 900}}))
    pl = tmp_path / "pl"
    pl.mkdir()
    (pl / "digiface.json").write_text(json.dumps({"source": "digiface", "n_selected": 1200, "world_precision": 0.66}))
    # as notebook 03 writes it: no 'source' key (folder name), precision only with world truth
    (pl / "dcface").mkdir()
    (pl / "dcface" / "metrics.json").write_text(json.dumps({"n_images": 50, "n_selected": 40,
                                                            "world_precision_all": 0.5}))
    (pl / "real_coll").mkdir()
    (pl / "real_coll" / "metrics.json").write_text(json.dumps({"n_images": 50, "n_selected": 30}))
    priv = tmp_path / "privacy.csv"
    pd.DataFrame([{"set": "gan_f", "space": "pixel", "n": 700, "similarity_mean": 0.41, "similarity_p95": 0.6,
                   "similarity_max": 0.99, "threshold": 0.95, "n_flagged": 3, "share_flagged": 3 / 700}]).to_csv(
        priv, index=False)
    return {"eval": files, "synthetic": [str(syn / "gan_f.json"), str(syn / "distances.csv"), str(syn / "ident.json")],
            "pseudolabel": [str(pl / "digiface.json"), str(pl / "dcface" / "metrics.json"),
                            str(pl / "real_coll" / "metrics.json")], "privacy": [str(priv)]}


def test_collect_nested_keys_means_and_sds(inputs, tmp_path):
    out = tmp_path / "outputs" / "results" / "summary"
    m = S.collect(out, eval_files=inputs["eval"], synthetic_files=inputs["synthetic"],
                  pseudolabel_files=inputs["pseudolabel"], privacy_files=inputs["privacy"])
    assert json.loads((out / "metrics.json").read_text()) == m
    e = m["eval"]["real_rafdb"]
    assert set(e) == set(TESTS)
    assert set(e["rafdb"]) == {"acc", "acc_sd", "balanced_acc", "balanced_acc_sd", "macro_f1", "macro_f1_sd", "n_seeds"}
    assert e["rafdb"]["acc"] == pytest.approx(0.8)
    assert e["rafdb"]["acc_sd"] == pytest.approx(np.std([0.8, 0.7, 0.9], ddof=1))
    assert e["affectnet"]["balanced_acc"] == pytest.approx(0.4)
    assert e["fer2013"]["acc_sd"] == pytest.approx(0.0)
    assert e["rafdb"]["n_seeds"] == 3
    assert m["eval"]["gan_f"]["rafdb"]["acc"] == pytest.approx(0.5)
    assert m["eval"]["gan_f"]["rafdb"]["acc_sd"] is None  # one seed: sd undefined, not 0
    assert "eval_by_model" not in m
    assert m["synthetic"]["gan_f"] == {"n_images": 700, "expression_fidelity": 0.81, "fd_baseline": 12.5,
                                       "kid_baseline": 0.031, "kid_baseline_sd": 0.002}
    assert m["synthetic"]["mixed_syn"]["n_images"] == 900 and m["synthetic"]["mixed_syn"]["fd_baseline"] == 3.0
    assert m["identity_similarity"] == {"gan_f": 0.77}
    assert m["pseudolabel"] == {"digiface": {"kept": 1200, "precision": 0.66},
                                "dcface": {"kept": 40, "precision": 0.5},
                                "real_coll": {"kept": 30, "precision": None}}
    assert m["privacy"]["gan_f"] == {"nn_similarity_mean_pixel": 0.41, "n_flagged_pixel": 3,
                                     "share_flagged_pixel": pytest.approx(3 / 700)}
    ev = pd.read_csv(out / "eval.csv")
    assert {"recall_anger", "accuracy"} <= set(ev["metric"])  # tidy CSV keeps every metric for plots
    assert len(pd.read_csv(out / "cross_dataset.csv")) == 4 * 3 * 4
    for name in ("synthetic", "pseudolabel", "privacy"):
        assert (out / f"{name}.csv").is_file()


def test_several_models_need_a_primary(inputs, tmp_path):
    extra = tmp_path / "x.csv"
    _cross("real_rafdb", "ir50", 0, (0.95, 0.6, 0.5)).to_csv(extra, index=False)
    with pytest.raises(S.SummaryError, match="name the primary"):
        S.collect(tmp_path / "o", eval_files=[*inputs["eval"], str(extra)])
    m = S.collect(tmp_path / "o", eval_files=[*inputs["eval"], str(extra)], primary_model="ir_tiny")
    assert m["eval"]["real_rafdb"]["rafdb"]["acc"] == pytest.approx(0.8)
    assert m["eval_by_model"]["ir50"]["real_rafdb"]["rafdb"]["acc"] == pytest.approx(0.95)
    assert set(m["eval_by_model"]) == {"ir50", "ir_tiny"}


def test_loud_failures(inputs, tmp_path):
    with pytest.raises(S.SummaryError, match="fewer than 3 seeds"):
        S.collect(tmp_path / "o", eval_files=inputs["eval"], min_seeds=3)
    partial = tmp_path / "partial.csv"
    df = _cross("hybrid_gan_f", "ir_tiny", 0, (0.5, 0.5, 0.5))
    df[df["test_set"] != "fer2013"].to_csv(partial, index=False)
    with pytest.raises(S.SummaryError, match="no results on \\['fer2013'\\]"):
        S.collect(tmp_path / "o", eval_files=[*inputs["eval"], str(partial)])
    with pytest.raises(S.SummaryError, match="duplicate"):
        S.collect(tmp_path / "o", eval_files=[inputs["eval"][0], inputs["eval"][0]])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"set": "gan.f", "n_images": 1}))
    with pytest.raises(S.SummaryError, match="cannot be a metrics key"):
        S.collect(tmp_path / "o", synthetic_files=[str(bad)])
    conflict = tmp_path / "conflict.json"
    conflict.write_text(json.dumps({"set": "gan_f", "n_images": 701}))
    with pytest.raises(S.SummaryError, match="conflicting values"):
        S.collect(tmp_path / "o", synthetic_files=[inputs["synthetic"][0], str(conflict)])
    with pytest.raises(S.SummaryError, match="nothing to summarise"):
        S.collect(tmp_path / "o")
    with pytest.raises(S.SummaryError, match="no file matches"):
        S.expand([str(tmp_path / "nope" / "*.csv")])


def _stage_metrics(root, world_dir, real_dir):
    """Two notebooks' metrics: one read a world domain, one the user's folder (and skipped a measurement)."""
    (root / "st" / "gan").mkdir(parents=True)
    (root / "st" / "gan" / "metrics.json").write_text(json.dumps(
        {"fidelity_F": 0.7, "inputs": {"gan_faces": {"path": str(real_dir), "kind": "real"},
                                       "codeformer_weights": {"path": "", "kind": "unused"}},
         "skipped": {"truth": "real data: no truth"}}))
    (root / "st" / "instruments.json").write_text(json.dumps(
        {"inputs": {"reference.ref_web": {"path": str(world_dir), "kind": "world"},
                    "gan_faces": {"path": str(world_dir), "kind": "world"}}, "skipped": {}}))


def test_cli_with_globs(inputs, tmp_path):
    parser = argparse.ArgumentParser()
    S.add_arguments(parser)
    root = tmp_path
    _stage_metrics(root, root / "w", root / "r")
    args = parser.parse_args(["--eval", str(root / "train" / "*" / "cross_dataset.csv"),
                              "--synthetic", str(root / "syn" / "*"), "--pseudolabel", str(root / "pl" / "**" / "*.json"),
                              "--privacy", str(root / "privacy.csv"), "--inputs", str(root / "st" / "**" / "*.json"),
                              "--out", str(root / "summary")])
    assert S.run(args) == 0
    m = json.loads((root / "summary" / "metrics.json").read_text())
    assert sorted(m) == ["data_kind", "eval", "identity_similarity", "inputs", "privacy", "pseudolabel", "skipped",
                         "synthetic"]
    assert m["data_kind"] == "mixed"  # every number says where it came from: here part world, part real
    # one name, two paths: listed per stage, each; unused inputs are not listed; skipped measurements travel with the reason
    assert m["inputs"] == {"gan.gan_faces": {"path": str(root / "r"), "kind": "real"},
                           "instruments.gan_faces": {"path": str(root / "w"), "kind": "world"},
                           "reference.ref_web": {"path": str(root / "w"), "kind": "world"}}
    assert m["skipped"] == {"gan": {"truth": "real data: no truth"}}
    assert sorted(m["eval"]) == ["gan_f", "real_rafdb"]


def test_inputs_are_required_and_data_kind_must_agree(inputs, tmp_path):
    _stage_metrics(tmp_path, tmp_path / "w", tmp_path / "r")
    files = S.expand([str(tmp_path / "st" / "**" / "*.json")])
    with pytest.raises(S.SummaryError, match="given, but the inputs are 'mixed'"):
        S.collect(tmp_path / "o", eval_files=inputs["eval"], input_files=files, data_kind="world")
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps({"fidelity": 0.5}))
    with pytest.raises(S.SummaryError, match=r"bare.json: no 'inputs'"):
        S.collect(tmp_path / "o", eval_files=inputs["eval"], input_files=[str(bare)])


def test_pseudolabel_source_from_set_folder(tmp_path):
    f = tmp_path / "sets" / "pseudolabel_dcface" / "metrics.json"
    f.parent.mkdir(parents=True)
    f.write_text(json.dumps({"n_selected": 12, "world_precision_all": 0.5}))
    assert S.read_pseudolabel(f) == {"source": "dcface", "kept": 12, "precision": 0.5}


def test_oracle_and_real_ratios(tmp_path):
    """synthetic.<set>.real_ratio over the size-matched real split, oracle_ratio over the oracle of its look
    (prefix -> ref_<x> -> oracle_<x>), oracle.<oracle>.real_ratio; a set without results is not given a ratio."""
    cross = pd.concat([_cross(name, "m", s, (acc, 0.3, 0.3)) for name, acc in
                       (("real_rafdb_matched", 0.6), ("gan_f", 0.4), ("oracle_ffhq", 0.5), ("real_rafdb", 0.9))
                       for s in (0, 1)], ignore_index=True)
    syn = pd.DataFrame([{"set": "gan_f", "metric": "n_images", "value": 1400},
                        {"set": "pseudolabel_x", "metric": "n_images", "value": 1400}])
    m, _ = S.build_summary(cross_dataset=cross, synthetic=syn, matched_real="real_rafdb_matched",
                           set_domains={"gan_": "ref_ffhq", "diffusion_": "ref_web"}, ratio_test="rafdb")
    # balanced accuracy = accuracy - 0.1 in _cross: (0.4-0.1)/(0.6-0.1), (0.3)/(0.4), oracle (0.4)/(0.5)
    assert m["synthetic"]["gan_f"]["real_ratio"] == pytest.approx(0.3 / 0.5)
    assert m["synthetic"]["gan_f"]["oracle_ratio"] == pytest.approx(0.3 / 0.4)
    assert m["oracle"]["oracle_ffhq"]["real_ratio"] == pytest.approx(0.4 / 0.5)
    assert "real_ratio" not in m["synthetic"]["pseudolabel_x"]  # not trained in this grid
    assert S.oracle_of("diffusion_embedded_au", {"diffusion_": "ref_web"}) == "oracle_web"
    assert S.oracle_of("mixed_syn", {"diffusion_": "ref_web"}) is None
    with pytest.raises(S.SummaryError, match="'real_rafdb_matched'"):
        S.build_summary(cross_dataset=cross[cross["train_set"] != "real_rafdb_matched"], synthetic=syn,
                        matched_real="real_rafdb_matched", set_domains={})
    assert S.parse_pairs("gan_:ref_ffhq, diffusion_:ref_web", ":") == {"gan_": "ref_ffhq", "diffusion_": "ref_web"}
