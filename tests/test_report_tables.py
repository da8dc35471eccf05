"""The report notebook's tables (syntfer.study.report_tables): each function on a small frame or folder the test
makes, its values checked (not only its shape), and its failures naming what is wrong."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from syntfer.core import labels as L
from syntfer.engine import evaluation as EV
from syntfer.study import report as REP
from syntfer.study import report_tables as RTAB


# ---- small inputs ------------------------------------------------------------------------------------------------
def _eval(rows: dict[tuple[str, str, str], tuple[float, float, int]], model: str = "cnn") -> pd.DataFrame:
    """eval.csv rows from {(train_set, test_set, metric): (mean, sd, n_seeds)}."""
    return pd.DataFrame([{"train_set": s, "model": model, "test_set": t, "metric": m, "mean": v[0], "sd": v[1],
                          "n_seeds": v[2]} for (s, t, m), v in rows.items()])


def _cross(values: dict[tuple[str, int, str, str], float], model: str = "cnn") -> pd.DataFrame:
    """cross_dataset.csv rows from {(train_set, seed, test_set, metric): value}."""
    return pd.DataFrame([{"train_set": s, "model": model, "seed": seed, "test_set": t, "metric": m, "value": v}
                         for (s, seed, t, m), v in values.items()], columns=list(EV.CROSS_COLUMNS))


def _finding(**kw) -> dict:
    row = dict.fromkeys(REP.FINDING_COLUMNS, np.nan)
    row.update(claim="c", kind="alone vs real, equal size", verdict="supported", verdict_holm="supported",
               metric="balanced_accuracy", test_set="rafdb", set_a="gan_f", set_b="real_rafdb_matched", reason="",
               effect=0.1, ci_low=0.05, ci_high=0.15, p_value=0.01, n_seeds=3, expected=">")
    row.update(kw)
    return row


def _summary_dir(tmp_path: Path, metrics: dict) -> Path:
    d = tmp_path / "summary"
    d.mkdir()
    (d / "metrics.json").write_text(json.dumps(metrics))
    cross = _cross({("real_rafdb", 0, "rafdb", "accuracy"): 0.6, ("real_rafdb", 1, "rafdb", "accuracy"): 0.8})
    cross.to_csv(d / "cross_dataset.csv", index=False)
    _eval({("real_rafdb", "rafdb", "accuracy"): (0.7, 0.1414, 2)}).to_csv(d / "eval.csv", index=False)
    return d


GOOD_METRICS = {"data_kind": "world", "inputs": {"world": {"kind": "world", "path": "outputs/world"}},
                "eval": {}, "skipped": {"diffusion": {"demographic_fidelity": "no attribute reader"}}}


# ---- the summary and the grid ------------------------------------------------------------------------------------
def test_parse_classes_canonical_and_empty_raises():
    assert RTAB.parse_classes("disgust,fear,anger") == ["disgust", "fear", "anger"]
    assert RTAB.parse_classes("fear,,") == ["fear"]
    with pytest.raises(ValueError, match="minority_classes is empty"):
        RTAB.parse_classes(" , ")


def test_read_summary_reads_and_says_what_is_missing(tmp_path):
    s = RTAB.read_summary(_summary_dir(tmp_path, GOOD_METRICS))
    assert s.data_kind == "world" and s.models == ["cnn"]
    assert s.skipped == {"diffusion": {"demographic_fidelity": "no attribute reader"}}
    assert s.eval_all["mean"].tolist() == [0.7] and len(s.cross_all) == 2
    assert s.metrics_path == tmp_path / "summary" / "metrics.json"


@pytest.mark.parametrize("broken,says", [({"data_kind": "imagined"}, "no inputs/data_kind"),
                                         ({"inputs": None}, "no inputs/data_kind"),
                                         ({"eval": None}, "no 'eval' section")])
def test_read_summary_refuses_a_summary_without_provenance(tmp_path, broken, says):
    metrics = {k: v for k, v in {**GOOD_METRICS, **broken}.items() if v is not None}
    with pytest.raises(ValueError, match=says):
        RTAB.read_summary(_summary_dir(tmp_path, metrics))


def test_read_summary_names_a_missing_table(tmp_path):
    d = _summary_dir(tmp_path, GOOD_METRICS)
    (d / "eval.csv").unlink()
    with pytest.raises(FileNotFoundError, match="eval.csv: aggregated cross-dataset table"):
        RTAB.read_summary(d)


def test_choose_model(tmp_path):
    s = RTAB.read_summary(_summary_dir(tmp_path, GOOD_METRICS))
    assert RTAB.choose_model(s, "") == "cnn" and RTAB.choose_model(s, "cnn") == "cnn"
    with pytest.raises(ValueError, match="no results for model 'vit'"):
        RTAB.choose_model(s, "vit")
    s.eval_all = pd.concat([s.eval_all, s.eval_all.assign(model="vit")])
    with pytest.raises(ValueError, match="several models"):
        RTAB.choose_model(s, "")


def test_model_rows_and_grid():
    ev = pd.concat([_eval({(s, t, "accuracy"): (0.5, 0.0, 1) for s in ("gan_f", "real_affectnet", "real_rafdb")
                           for t in ("affectnet", "rafdb")}), _eval({("gan_f", "rafdb", "accuracy"): (0.1, 0, 1)},
                                                                    model="vit")])
    rows = RTAB.model_rows(ev, "cnn")
    assert len(rows) == 6 and set(rows["model"]) == {"cnn"}
    assert dict(zip(rows["train_set"], rows["strategy"]))["gan_f"] == "GAN editing"
    assert dict(zip(rows["train_set"], rows["family"]))["gan_f"] == "synthetic (one source)"
    train, tests, families = RTAB.grid(rows, primary_test="rafdb", reference_set="real_rafdb", source="eval.csv")
    assert train == ["real_rafdb", "real_affectnet", "gan_f"]
    assert tests == ["rafdb", "affectnet"] and families == ["real", "synthetic (one source)"]
    with pytest.raises(ValueError, match="eval.csv: primary_test 'fer2013' has no results"):
        RTAB.grid(rows, primary_test="fer2013", reference_set="real_rafdb", source="eval.csv")
    with pytest.raises(ValueError, match="reference_set 'real_fer2013' has no results"):
        RTAB.grid(rows, primary_test="rafdb", reference_set="real_fer2013", source="eval.csv")


# ---- §0 findings -------------------------------------------------------------------------------------------------
def test_trained_sets(tmp_path):
    for name, run in (("b_set", True), ("a_set", True), ("untrained", False)):
        (tmp_path / name).mkdir()
        if run:
            (tmp_path / name / "cross_dataset.csv").write_text("x\n")
    assert RTAB.trained_sets(tmp_path) == ["a_set", "b_set"]


def test_pseudolabel_findings_without_truth_is_a_skipped_row(tmp_path):
    d = tmp_path / "pseudolabel_dcface"
    d.mkdir()
    (d / "scores.csv").write_text("path\n")
    (d / "metrics.json").write_text(json.dumps({"truth_csv": "", "skipped": {"precision": "real data: no truth"}}))
    (parts,) = RTAB.pseudolabel_findings(tmp_path, tau_low=0.3, tau_high=0.9, per_class=200, draws=10)
    assert parts["verdict"].tolist() == [REP.SKIPPED] and parts["reason"].tolist() == ["real data: no truth"]
    assert parts["set_a"].tolist() == ["pseudolabel_dcface"] and "τ 0.9 vs 0.3" in parts["claim"].iloc[0]
    assert RTAB.pseudolabel_findings(tmp_path / "nothing_here", tau_low=0.3, tau_high=0.9, per_class=0,
                                     draws=10) == []


def test_demographic_findings_skipped_without_real_reads(tmp_path):
    parts = RTAB.demographic_findings(tmp_path, ["diffusion_embedded", "gan_f"], "real_rafdb",
                                      {"diffusion": {"demographic_fidelity": "no attribute reader"}}, draws=10)
    rows = pd.concat(parts)
    assert len(rows) == 3 and set(rows["set_a"]) == {"diffusion_embedded"}  # one row per attribute; gan_f is no diffusion set
    assert set(rows["reason"]) == {"no attribute reader"} and set(rows["verdict"]) == {REP.SKIPPED}
    why = pd.concat(RTAB.demographic_findings(tmp_path, ["diffusion_embedded"], "real_rafdb", {}, draws=10))["reason"]
    assert set(why) == {f"{tmp_path / 'attributes_real_train.csv'} not written"}


def test_demographic_findings_measures_each_backend(tmp_path):
    rng = np.random.default_rng(0)
    real = pd.DataFrame({"gender": ["male"] * 40, "age": ["adult"] * 40, "skin_tone": ["2"] * 40})
    real.to_csv(tmp_path / "attributes_real_train.csv", index=False)
    gen = pd.DataFrame({"gender": rng.choice(["male", "female"], 40), "age": rng.choice(["young", "adult"], 40),
                        "skin_tone": rng.choice(["1", "2", "5"], 40)})
    gen.to_csv(tmp_path / "attributes_embedded-au.csv", index=False)
    rows = pd.concat(RTAB.demographic_findings(tmp_path, [], "real_rafdb", {}, draws=50))
    assert set(rows["set_a"]) == {"diffusion_embedded_au"} and len(rows) == 3
    assert (rows["effect"] > 0).all()  # a mix is more balanced than one value


def test_collect_findings_adjusts_and_handles_none():
    empty = RTAB.collect_findings([pd.DataFrame(columns=list(REP.FINDING_COLUMNS))], 0.05)
    assert empty.empty and list(empty.columns)[:3] == ["claim", "kind", "effect"]
    two = RTAB.collect_findings([pd.DataFrame([_finding(p_value=0.01)]), pd.DataFrame([_finding(p_value=0.04)])],
                                0.05)
    assert np.allclose(two["p_holm"], [0.02, 0.04]) and two["verdict_holm"].tolist() == ["supported", "supported"]


def test_training_claims_verdict_summary_and_shown_table():
    findings = pd.DataFrame([
        _finding(), _finding(metric="recall_fear", verdict="inconclusive", verdict_holm="inconclusive"),
        _finding(metric="precision_vs_truth", verdict="contradicted", verdict_holm="inconclusive", n_seeds=0),
        _finding(metric="normalized_entropy_age", verdict=REP.SKIPPED, verdict_holm=REP.SKIPPED, p_value=np.nan,
                 reason="no reader")])
    assert RTAB.training_claims(findings)["metric"].tolist() == ["balanced_accuracy", "recall_fear"]
    assert RTAB.verdict_summary(findings, "world") == (
        "**1 supported, 1 contradicted, 1 inconclusive** by the raw intervals; after Holm over 3 claims: 1 supported, "
        "0 contradicted, 2 inconclusive; 1 claims not tested by this run (their rows say why) (world; 3 seeds per "
        "training set)")
    shown = RTAB.findings_shown(findings)
    assert shown["interval"].iloc[0] == "[+0.050, +0.150]" and shown.columns[-1] == "reason"
    assert "reason" not in RTAB.findings_shown(findings.iloc[:3]).columns
    assert RTAB.verdict_summary(findings.iloc[:0], "world").endswith("(world; 0 seeds per training set)")


# ---- §1 provenance -----------------------------------------------------------------------------------------------
def test_provenance_banner_by_kind():
    inputs = {"world": {"kind": "world", "path": "outputs/world"}}
    world = RTAB.provenance_banner("world", inputs)
    assert world.startswith("> ⚠️ **Every number in this report comes from procedural-world stand-ins**")
    assert world.endswith("> | input | kind | path |\n> |---|---|---|\n> | world | world | `outputs/world` |")
    assert RTAB.provenance_banner("real", inputs).startswith("> **Every input of this run is the user's own data**")
    assert "part world stand-ins, part real data" in RTAB.provenance_banner("mixed", inputs)


def test_skipped_table():
    t = RTAB.skipped_table({"diffusion": {"a": "why a", "b": "why b"}, "sets": {}})
    assert t.values.tolist() == [["diffusion", "a", "why a"], ["diffusion", "b", "why b"]]
    assert list(RTAB.skipped_table({}).columns) == ["stage", "measurement", "reason"]


def test_inputs_table(tmp_path):
    s = RTAB.read_summary(_summary_dir(tmp_path, GOOD_METRICS))
    t = RTAB.inputs_table(s, s.cross_all, runs_glob="train/*.csv", primary_test="rafdb", train_sets_dir="sets",
                          n_train_sets=4, sets_dir=str(tmp_path / "no_such_dir")).set_index("what")["detail"]
    assert t["per-seed results"] == "2 rows; seeds per cell 2–2"
    assert t["mean ± sd over seeds"] == "1 rows, models ['cnn']"
    assert t["training-set manifests"] == "4 sets" and t["per-run confusion matrices"] == "confusion_rafdb.csv per run"
    assert t["summary metrics"] == "sections ['data_kind', 'eval', 'inputs', 'skipped']"
    assert t["synthetic-set measurements (optional)"].startswith("folder does not exist")


# ---- §2 composition ----------------------------------------------------------------------------------------------
def _manifest(folder: Path, counts: list[int]) -> None:
    folder.mkdir(parents=True)
    labels = np.repeat(L.CLASSES, counts)
    pd.DataFrame({"path": [f"{i}.png" for i in range(len(labels))], "label": labels,
                  "split": "train"}).to_csv(folder / "manifest.csv", index=False)


def test_composition_and_untrained_sets(tmp_path):
    _manifest(tmp_path / "real_rafdb", [4, 1, 2, 8, 6, 5, 3])
    _manifest(tmp_path / "gan_f", [2] * 7)
    (tmp_path / "pseudolabel_x").mkdir()
    c = RTAB.composition(tmp_path, ["real_rafdb", "gan_f"])
    assert c.index.tolist() == ["real_rafdb", "gan_f"] and c.columns[0] == "strategy"
    assert c.loc["real_rafdb", "happy"] == 8 and c.loc["real_rafdb", "total"] == 29
    assert c.loc["real_rafdb", "imbalance"] == 8.0 and c.loc["gan_f", "imbalance"] == 1.0
    assert c.loc["gan_f", "strategy"] == "GAN editing"
    assert RTAB.untrained_sets(tmp_path, ["real_rafdb", "gan_f"]) == ["pseudolabel_x"]
    with pytest.raises(FileNotFoundError, match="manifest of training set 'gan_v'"):
        RTAB.composition(tmp_path, ["gan_v"])


# ---- §4 recall and gains -----------------------------------------------------------------------------------------
def _recall_ev() -> pd.DataFrame:
    rows = {}
    for s, base in (("real_rafdb", 0.5), ("gan_f", 0.6), ("hybrid_gan_f", 0.7)):
        for i, c in enumerate(L.CLASSES):
            rows[(s, "rafdb", f"recall_{c}")] = (base + 0.01 * i, 0.02, 2)
            rows[(s, "affectnet", f"recall_{c}")] = (0.1, 0.0, 2)
        rows[(s, "rafdb", "balanced_accuracy")] = (base, 0.0, 2)
    return RTAB.model_rows(_eval(rows), "cnn")


def test_per_class_recall_and_minority_gains():
    ev = _recall_ev()
    tidy, matrix = RTAB.per_class_recall(ev, "rafdb", ["real_rafdb", "gan_f", "hybrid_gan_f"])
    assert list(tidy.columns) == ["train_set", "strategy", "class", "recall", "sd", "n_seeds"] and len(tidy) == 21
    assert matrix.shape == (3, 7) and list(matrix.columns) == list(L.CLASSES)
    assert matrix.loc["gan_f", "fear"] == pytest.approx(0.62)
    candidates = RTAB.gain_candidates(["real_rafdb", "real_rafdb_matched", "gan_f", "hybrid_gan_f"])
    assert candidates == ["gan_f", "hybrid_gan_f"]
    gains, long = RTAB.minority_gains(matrix, candidates, ["disgust", "fear"], "real_rafdb")
    assert gains.index.name == "train_set" and np.allclose(gains.to_numpy(), [[0.1, 0.1], [0.2, 0.2]])
    assert long.columns.tolist() == ["train_set", "class", "recall_gain", "reference_set"] and len(long) == 4
    assert set(long["reference_set"]) == {"real_rafdb"}


# ---- §5 families, confusion, ratios, scaling ---------------------------------------------------------------------
def test_family_means_and_matrix():
    ev = RTAB.model_rows(_eval({("real_rafdb", "rafdb", "balanced_accuracy"): (0.8, 0, 1),
                                ("gan_f", "rafdb", "balanced_accuracy"): (0.4, 0, 1),
                                ("gan_v", "rafdb", "balanced_accuracy"): (0.6, 0, 1),
                                ("gan_v", "rafdb", "accuracy"): (0.9, 0, 1)}), "cnn")
    means = RTAB.family_means(ev).set_index("family")
    assert means.loc["synthetic (one source)", "balanced_acc"] == pytest.approx(0.5)
    assert means.loc["synthetic (one source)", "n_sets"] == 2 and means.loc["real", "n_sets"] == 1
    m = RTAB.family_matrix(means.reset_index(), ["real", "synthetic (one source)", "hybrid (synthetic + real)"],
                           ["rafdb", "fer2013"])
    assert m.loc["real", "rafdb"] == 0.8 and m.isna().sum().sum() == 4  # hybrid row, fer2013 column


def _run(root: Path, name: str, seeds: dict[int, tuple[list, list]], model: str = "cnn") -> None:
    tidy = []
    for seed, (y, pred) in seeds.items():
        (root / name / f"s{seed}").mkdir(parents=True)
        EV.confusion_rows(y, pred).to_csv(root / name / f"s{seed}" / "confusion_rafdb.csv", index=False)
        tidy.append(EV.tidy_rows(name, model, seed, {"rafdb": EV.compute_metrics(y, pred)}))
    pd.concat(tidy).to_csv(root / name / "cross_dataset.csv", index=False)


def test_read_runs_summed_confusion_and_its_check(tmp_path):
    y = [0, 0, 1, 1, 3, 3]
    _run(tmp_path, "real_rafdb", {0: (y, [0, 1, 1, 1, 3, 3]), 1: (y, [0, 0, 1, 0, 3, 3])})
    _run(tmp_path, "gan_f", {0: (y, [3, 3, 3, 3, 3, 3])})
    runs, confusion = RTAB.read_runs(str(tmp_path / "*" / "cross_dataset.csv"), "cnn", "rafdb")
    assert sorted(confusion) == [("gan_f", 0), ("real_rafdb", 0), ("real_rafdb", 1)]
    assert set(runs["train_set"]) == {"gan_f", "real_rafdb"}
    rate, n = RTAB.summed_confusion(confusion, "real_rafdb", model="cnn", runs_glob="g")
    assert n == 2 and rate.loc["anger", "anger"] == 0.75 and rate.loc["disgust", "disgust"] == 0.75
    assert rate.loc["happy", "happy"] == 1.0 and rate.loc["fear"].isna().all()  # no fear image: NaN, not 0
    with pytest.raises(FileNotFoundError, match=r"no run of training set 'gan_v' \(model cnn\) matches runs_glob='g'"):
        RTAB.summed_confusion(confusion, "gan_v", model="cnn", runs_glob="g")
    check = RTAB.confusion_against_runs(confusion, runs, "cnn", "rafdb")
    assert np.allclose(check["confusion"], check["run"])
    assert check.loc[check["quantity"] == "n", "run"].tolist() == [6, 6, 6]
    assert "recall_fear" not in set(check["quantity"])  # no fear image in the test set: nothing to compare
    broken = runs.copy()
    broken.loc[(broken["train_set"] == "gan_f") & (broken["metric"] == "recall_happy"), "value"] = 0.5
    bad = RTAB.confusion_against_runs(confusion, broken, "cnn", "rafdb")
    assert bad.loc[~np.isclose(bad["confusion"], bad["run"]), ["train_set", "quantity"]].values.tolist() == [
        ["gan_f", "recall_happy"]]
    with pytest.raises(FileNotFoundError, match="no file matches runs_glob"):
        RTAB.read_runs(str(tmp_path / "none" / "*.csv"), "cnn", "rafdb")


def test_ratio_table():
    metrics = {"synthetic": {"gan_f": {"n_images": 1400, "oracle_ratio": 0.9, "real_ratio": 0.5},
                             "gan_v": {"n_images": 1400}},  # no real_ratio: left out
               "oracle": {"oracle_ffhq": {"real_ratio": 0.55}}}
    t = RTAB.ratio_table(metrics)
    assert t.index.tolist() == ["gan_f", "oracle_ffhq"] and t.loc["gan_f", "oracle_ratio"] == 0.9
    assert t.loc["oracle_ffhq", "family"] == "oracle (truth-labelled renders of a look)"
    assert np.isnan(t.loc["oracle_ffhq", "n_images"])
    assert RTAB.ratio_table({"synthetic": {"gan_v": {}}}) is None


def test_scaling_sources_and_curves(tmp_path):
    y = [0, 1, 2, 3, 4, 5, 6]
    for n in (100, 200):
        f = tmp_path / "scaling" / "real_rafdb" / f"n{n}" / "s0" / "confusion_rafdb.csv"
        f.parent.mkdir(parents=True)
        EV.confusion_rows(y, y).to_csv(f, index=False)
    (tmp_path / "scaling" / "notes.txt").write_text("")
    _run(tmp_path / "train", "real_rafdb", {0: (y, y)})  # the whole split; no matched split trained
    assert RTAB.scaling_sources(tmp_path / "scaling") == ["real_rafdb"]
    assert RTAB.scaling_sources(tmp_path / "absent") == []
    curves = RTAB.scaling_curves(tmp_path / "scaling", ["real_rafdb"], test="rafdb", train_dir=tmp_path / "train",
                                 reference_set="real_rafdb", matched_real="real_rafdb_matched",
                                 sizes=pd.Series({"real_rafdb": 3000, "real_rafdb_matched": 1400}))
    assert sorted(curves["real_rafdb"]) == [100, 200, 3000]
    assert np.array_equal(curves["real_rafdb"][3000][0][1], y)


def test_exchange_shown():
    rates = pd.DataFrame({"source": ["gan_f"] * 4, "real_images": [100, 200, 400, 800],
                          "equivalent_images": [50.0, 812.4, 900.0, np.inf], "ci_low": [50, 640.2, 700, 1000],
                          "ci_high": [80, 1100.0, np.inf, np.inf], "smallest_measured": [100] * 4,
                          "largest_measured": [1400] * 4})
    shown = RTAB.exchange_shown(rates)
    assert shown.loc["gan_f"].tolist() == ["≤ 100", "812 [640, 1100]", "900 [700, ∞]", "> 1400 (not reached)"]


# ---- §6–7 the synthetic sets -------------------------------------------------------------------------------------
def test_read_synthetic_and_duplicates(tmp_path):
    f = tmp_path / "synthetic.csv"
    pd.DataFrame({"set": ["gan_f", "gan_f", "gan_v"], "metric": ["fd_base", "kid_base", "fd_base"],
                  "value": [1.0, 0.1, 2.0]}).to_csv(f, index=False)
    syn, wide = RTAB.read_synthetic(f)
    assert len(syn) == 3 and wide.loc["gan_v", "fd_base"] == 2.0 and np.isnan(wide.loc["gan_v", "kid_base"])
    pd.DataFrame({"set": ["gan_f", "gan_f"], "metric": ["fd_base"] * 2, "value": [1.0, 2.0]}).to_csv(f, index=False)
    with pytest.raises(ValueError, match="duplicate rows, e.g. {'set': 'gan_f', 'metric': 'fd_base'}"):
        RTAB.read_synthetic(f)


def test_distance_table_joins_the_detail_and_checks_it(tmp_path):
    wide = pd.DataFrame({"fd_base": [10.0, 20.0], "kid_base": [0.1, 0.2]}, index=["gan_f", "gan_v"])
    dist = REP.distance_rows(wide)
    detail = tmp_path / "distances.csv"
    assert RTAB.distance_table(dist, detail, "syn.csv").loc[("gan_f", "base"), "fd"] == 10.0  # no detail: no join
    pd.DataFrame({"set": ["gan_f", "gan_v"], "space": "base", "fd": [10.0, 20.0], "kid": [0.1, 0.2], "n": [5, 6],
                  "kid_sd": 0.01}).to_csv(detail, index=False)
    t = RTAB.distance_table(dist, detail, "syn.csv")
    assert list(t.columns) == ["fd", "kid", "n", "kid_sd"] and t.loc[("gan_v", "base"), "n"] == 6
    pd.DataFrame({"set": ["gan_f"], "space": "base", "fd": [11.0], "kid": [0.1]}).to_csv(detail, index=False)
    with pytest.raises(REP.ReportError, match="distances.csv and syn.csv disagree on fd"):
        RTAB.distance_table(dist, detail, "syn.csv")


def test_fidelity_and_identity_tables(tmp_path):
    wide = pd.DataFrame({"n_images": [10.0, 20.0, 30.0], "expression_fidelity": [0.12345, np.nan, 0.5],
                         "identity_similarity": [0.81234, 0.7, np.nan], "fd_base": [1.0, 2.0, 3.0]},
                        index=["gan_f", "gan_v", "diffusion_embedded"])
    fid = RTAB.fidelity_table(wide)
    assert fid.index.tolist() == ["gan_f", "diffusion_embedded"] and fid.loc["gan_f", "expression_fidelity"] == 0.123
    assert "fd_base" not in fid.columns
    ident = RTAB.identity_table(wide)
    assert ident.index.tolist() == ["gan_f", "gan_v"] and ident["strategy"].tolist() == ["GAN editing"] * 2
    assert RTAB.identity_table(None).empty and RTAB.identity_table(wide[["n_images"]]).empty
    f = tmp_path / "fpc.csv"
    pd.DataFrame({"set": "gan_f", "class": ["Anger", "all"], "fidelity": [0.2, 0.4], "n": 3}).to_csv(f, index=False)
    assert RTAB.read_fidelity_per_class(f)["class"].tolist() == ["anger", "all"]
    fpc = pd.DataFrame({"set": ["gan_f"] * 3 + ["other"], "class": ["anger", "fear", "all", "anger"],
                        "fidelity": [0.1, 0.3, 0.9, 0.5]})
    both = RTAB.fidelity_against_sets(fpc, wide)
    assert both.index.tolist() == ["gan_f"] and both.loc["gan_f", "mean_of_classes"] == pytest.approx(0.2)


def test_demographics(tmp_path):
    f = tmp_path / "demographics.csv"
    assert RTAB.read_demographics(f) is None
    rows = [{"set": "gan_f", "basis": "world truth", "label": lab, "attribute": "gender", "value": v, "count": c,
             "share": s, "n_unmatched": u} for lab, u in (("all", 2), ("anger", 0))
            for v, c, s in (("male", 3, 0.75), ("female", 1, 0.25))]
    rows += [{"set": "gan_v", "basis": "prompt", "label": "all", "attribute": "race", "value": "NA", "count": 1,
              "share": 1.0, "n_unmatched": 0}]
    pd.DataFrame(rows).to_csv(f, index=False)
    demo = RTAB.read_demographics(f)
    assert "NA" in set(demo["value"])  # a value, not a missing one
    shares = RTAB.demographic_shares(demo)
    assert shares.loc[("gan_f", "world truth"), ("gender", "male")] == 0.75 and len(shares) == 2
    assert RTAB.unmatched(demo) == {"gan_f": 2}
    assert RTAB.unmatched(demo.assign(n_unmatched=0)) == {} and RTAB.unmatched(demo.drop(columns="n_unmatched")) == {}
    totals = RTAB.share_totals(demo)
    assert np.allclose(totals, 1.0) and len(totals) == 3
    assert not np.allclose(RTAB.share_totals(demo.iloc[1:]), 1.0)


def test_headline_shown():
    head = pd.DataFrame({"train_set": ["a"], "strategy": ["real"], "test_set": ["rafdb"], "acc": [0.61234],
                         "acc_sd": [0.0312], "balanced_acc": [0.5], "balanced_acc_sd": [np.nan], "n_seeds": [2],
                         "model": ["cnn"]})
    shown = RTAB.headline_shown(head, {"accuracy": "acc", "balanced_accuracy": "balanced_acc"})
    assert shown.columns.tolist() == ["train_set", "strategy", "test_set", "acc", "balanced_acc", "n_seeds"]
    assert shown.iloc[0].tolist() == ["a", "real", "rafdb", "0.612 ± 0.031", "0.500", 2]


# ---- the closing checks' inputs ----------------------------------------------------------------------------------
def test_eval_against_cross_and_runs_against_summary():
    cross = _cross({("real_rafdb", 0, "rafdb", "accuracy"): 0.6, ("real_rafdb", 1, "rafdb", "accuracy"): 0.8})
    ev = _eval({("real_rafdb", "rafdb", "accuracy"): (0.7, 0.1414, 2)})
    again = RTAB.eval_against_cross(cross, ev)
    assert (again["_merge"] == "both").all() and np.allclose(again["mean"], again["mean_csv"])
    stale = RTAB.eval_against_cross(cross, _eval({("real_rafdb", "rafdb", "accuracy"): (0.65, 0.1, 2)}))
    assert not np.allclose(stale["mean"], stale["mean_csv"])
    both = RTAB.runs_against_summary(cross, cross.iloc[:1])
    assert both["_merge"].tolist() == ["both", "left_only"]


def test_json_against_headline():
    head = pd.DataFrame({"train_set": ["a", "a"], "test_set": ["rafdb", "fer2013"], "acc": [0.5, 0.6]})
    metrics = {"eval": {"a": {"rafdb": {"acc": 0.5}, "fer2013": {"acc": 0.9}}}}
    t = RTAB.json_against_headline(metrics, "cnn", head, ["acc"])
    assert t[["json", "table"]].values.tolist() == [[0.5, 0.5], [0.9, 0.6]]
    by_model = {**metrics, "eval_by_model": {"cnn": {"a": {"rafdb": {"acc": 0.5}, "fer2013": {"acc": 0.6}}}}}
    t = RTAB.json_against_headline(by_model, "cnn", head, ["acc"])
    assert np.allclose(t["json"], t["table"])
    with pytest.raises(KeyError):
        RTAB.json_against_headline({"eval": {}}, "cnn", head, ["acc"])


def test_synthetic_against_metrics():
    syn = pd.DataFrame({"set": ["gan_f", "gan_f", "gan_v"], "metric": ["fd_base", "identity_similarity", "fd_base"],
                        "value": [1.0, 0.8, 2.0]})
    metrics = {"synthetic": {"gan_f": {"fd_base": 1.0}}, "identity_similarity": {"gan_f": 0.7}}
    t = RTAB.synthetic_against_metrics(syn, metrics)
    assert t.values.tolist() == [["gan_f", "fd_base", 1.0, 1.0], ["gan_f", "identity_similarity", 0.8, 0.7]]


def test_privacy_against_summary(tmp_path):
    priv = pd.DataFrame({"set": ["gan_f"], "space": ["pixel"], "similarity_mean": [0.3], "n_flagged": [0],
                         "share_flagged": [0.0]})
    priv.assign(similarity_mean=0.4).to_csv(tmp_path / "privacy.csv", index=False)
    m = RTAB.privacy_against_summary(priv, tmp_path / "privacy.csv")
    assert m[["similarity_mean", "similarity_mean_summary"]].values.tolist() == [[0.3, 0.4]]


def test_off_size_sets_and_unequal_size_findings():
    comp = pd.DataFrame({"total": [3000, 1400, 1400, 1390, 1420, 1300, 1000]},
                        index=["real_rafdb", "real_rafdb_matched", "gan_f", "gan_v", "mixed_syn", "hybrid_gan_f",
                               "pseudolabel_dcface"])
    off = RTAB.off_size_sets(comp, list(comp.index), matched_real="real_rafdb_matched", set_size=1400)
    assert off == {"gan_v": 1390, "pseudolabel_dcface": 1000}  # Mixed-SYN within 2 %; real and hybrid not compared
    findings = pd.DataFrame([_finding(set_a="gan_f", n_a=1400, n_b=1400),
                             _finding(set_a="gan_v", n_a=1390, n_b=1400),  # named above: allowed
                             _finding(set_a="mixed_syn", n_a=1420, n_b=1400),  # within 2 %
                             _finding(set_a="oracle_ffhq", n_a=1000, n_b=1400),  # not named: the fault
                             _finding(set_a="hybrid_gan_f", kind="hybrid vs real", n_a=4400, n_b=3000),
                             _finding(set_a="x", n_a=np.nan, n_b=1400)])
    assert RTAB.unequal_size_findings(findings, off)["set_a"].tolist() == ["oracle_ffhq"]
    assert RTAB.unequal_size_findings(findings.iloc[:3], off).empty
