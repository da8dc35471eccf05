"""The study's verdicts (syntfer.study.report): paired bootstrap effects and verdicts decided by the interval alone."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from syntfer.engine import evaluation as E
from syntfer.core import labels as L
from syntfer.study import report as R


def _write_runs(root, name, y, accuracy_by_seed, rng, recall=None):
    for seed, acc in accuracy_by_seed.items():
        right = rng.random(len(y)) < acc
        if recall:  # force a class's recall
            for c, r in recall.items():
                m = y == L.index(c)
                right[m] = rng.random(m.sum()) < r
        pred = np.where(right, y, (y + 1 + rng.integers(0, 6, len(y))) % 7)
        for test in ("rafdb", "affectnet", "fer2013"):
            f = root / name / f"s{seed}" / f"confusion_{test}.csv"
            f.parent.mkdir(parents=True, exist_ok=True)
            E.confusion_rows(y, pred).to_csv(f, index=False)


@pytest.fixture
def runs(tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(7), [60, 20, 30, 200, 120, 80, 90])
    _write_runs(tmp_path, "real_rafdb", y, {0: 0.70, 1: 0.72, 2: 0.69}, rng, {"fear": 0.2})
    _write_runs(tmp_path, "gan_f", y, {0: 0.30, 1: 0.28, 2: 0.31}, rng)
    _write_runs(tmp_path, "hybrid_mixed_syn", y, {0: 0.71, 1: 0.70, 2: 0.72}, rng, {"fear": 0.7})
    _write_runs(tmp_path, "real_rafdb_matched", y, {0: 0.50, 1: 0.52, 2: 0.49}, rng)
    _write_runs(tmp_path, "oracle_ffhq", y, {0: 0.45, 1: 0.47, 2: 0.46}, rng)
    for name, n, steps in (("gan_f", 1400, 480), ("real_rafdb_matched", 1400, 480), ("real_rafdb", 3000, 1008),
                           ("hybrid_mixed_syn", 4421, 990)):
        (tmp_path / name / "metrics.json").write_text(
            f'{{"train_images": {n}, "s0_optimizer_steps": {steps}, "s1_optimizer_steps": {steps}}}')
    return tmp_path


def test_verdicts_follow_the_interval():
    assert R.verdict(0.01, 0.2, ">") == "supported" and R.verdict(-0.2, -0.01, ">") == "contradicted"
    assert R.verdict(-0.1, 0.1, ">") == "inconclusive" and R.verdict(-0.2, -0.01, "<") == "supported"
    assert R.verdict(np.nan, 0.1, ">") == "inconclusive"
    with pytest.raises(R.ReportError):
        R.verdict(0, 1, "=")


def test_training_findings(runs):
    f = R.training_findings(runs, ["gan_f", "hybrid_mixed_syn"], draws=500)
    assert list(f.columns) == list(R.FINDING_COLUMNS)
    row = f.set_index(["set_a", "metric", "test_set"])
    syn = row.loc[("gan_f", "balanced_accuracy", "rafdb")]
    assert syn["verdict"] == "supported" and syn["effect"] < -0.2 and syn["ci_high"] < 0 and syn["n_seeds"] == 3
    assert syn["set_b"] == "real_rafdb" and "unequal size" in syn["claim"]  # no matched real split given
    fear = row.loc[("hybrid_mixed_syn", "recall_fear", "rafdb")]
    assert fear["verdict"] == "supported" and 0.3 < fear["effect"] < 0.7
    overall = row.loc[("hybrid_mixed_syn", "balanced_accuracy", "rafdb")]
    assert overall["ci_low"] <= overall["effect"] <= overall["ci_high"]
    assert set(f["verdict"]) <= set(R.VERDICTS)
    # a set against itself: zero effect, an inconclusive verdict
    same = R.paired_effect(R.load_predictions(runs, "gan_f", "rafdb"), R.load_predictions(runs, "gan_f", "rafdb"),
                           R.balanced_accuracy, draws=200)
    assert same[0] == 0 and R.verdict(same[1], same[2], ">") == "inconclusive"
    with pytest.raises(R.ReportError, match="no s<seed>/confusion_rafdb.csv"):
        R.load_predictions(runs, "diffusion_embedded", "rafdb")


def test_training_findings_on_equal_terms(runs):
    """With a size-matched real split and the sets' looks: synthetic vs real at equal size (n and steps on each
    side), synthetic vs its oracle, the oracle vs real, the hybrid vs the whole real split at its steps."""
    f = R.training_findings(runs, ["gan_f", "oracle_ffhq", "hybrid_mixed_syn", "real_rafdb_matched"],
                            matched_real="real_rafdb_matched", set_domains={"gan_": "ref_ffhq"}, draws=400)
    row = f.set_index(["kind", "set_a"])
    eq = row.loc[("synthetic vs real, equal size", "gan_f")]
    assert eq["set_b"] == "real_rafdb_matched" and eq["verdict"] == "supported" and -0.3 < eq["effect"] < -0.1
    assert (eq["n_a"], eq["steps_a"], eq["n_b"], eq["steps_b"]) == (1400, 480, 1400, 480)
    vs_oracle = row.loc[("synthetic vs oracle", "gan_f")]  # 0.30 vs 0.46: short of the perfect generator
    assert vs_oracle["set_b"] == "oracle_ffhq" and vs_oracle["verdict"] == "supported"
    look = row.loc[("oracle vs real, equal size", "oracle_ffhq")]
    assert look["set_b"] == "real_rafdb_matched" and look["effect"] < 0
    hyb = row.loc[("hybrid vs real", "hybrid_mixed_syn")]
    assert (hyb["steps_a"], hyb["steps_b"]) == (990, 1008) and "equal steps" in hyb["claim"]
    assert ("synthetic vs real, equal size", "real_rafdb_matched") not in row.index  # the matched split itself


def test_bootstrap_p_and_holm():
    assert R.bootstrap_p(np.full(999, 0.5)) == pytest.approx(2 / 1000)
    assert R.bootstrap_p(np.r_[np.full(500, -1.0), np.full(500, 1.0)]) == 1.0
    assert np.isnan(R.bootstrap_p(np.array([np.nan])))
    adj = R.holm([0.01, 0.04, 0.03, np.nan])
    assert adj[0] == pytest.approx(0.03) and adj[2] == pytest.approx(0.06) and adj[1] == pytest.approx(0.06)
    assert np.isnan(adj[3])
    f = pd.DataFrame({"effect": [-0.2, 0.1, 0.3], "expected": ["<", ">", "<"], "p_value": [0.001, 0.04, 0.002]})
    out = R.adjust(f, alpha=0.05)  # Holm: 0.003, 0.04, 0.004 -> the second survives too (0.04 <= 0.05)
    assert list(out["verdict_holm"]) == ["supported", "supported", "contradicted"]
    assert list(R.adjust(f, alpha=0.01)["verdict_holm"]) == ["supported", "inconclusive", "contradicted"]
    with pytest.raises(R.ReportError, match="alpha"):
        R.adjust(f, alpha=0)


def test_scaling_curves_and_exchange_rates(tmp_path):
    """A real curve rising with size and a synthetic one needing about twice the images for the same accuracy:
    the exchange rate says so, and a level the synthetic curve never reaches is 'not reached'."""
    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(7), 60)
    for source, acc in (("real_rafdb", {100: 0.4, 200: 0.5, 400: 0.6, 800: 0.7}),
                        ("gan_f", {100: 0.3, 200: 0.4, 400: 0.5, 800: 0.6})):
        for n, a in acc.items():
            _write_runs(tmp_path / source, f"n{n}", y, {0: a, 1: a, 2: a}, rng)
    curves = {s: R.scaling_predictions(tmp_path, s, "rafdb") for s in ("real_rafdb", "gan_f")}
    assert sorted(curves["gan_f"]) == [100, 200, 400, 800]
    boot = R.bootstrap_curves(curves, draws=300)
    table = R.curve_table(boot)
    assert len(table) == 8 and (table["ci_low"] <= table["balanced_accuracy"]).all()
    rates = R.exchange_rates(boot, "real_rafdb").set_index("real_images")
    assert 300 < rates.loc[200, "equivalent_images"] < 600  # real 200 (0.5) ~ synthetic 400
    assert rates.loc[200, "ci_low"] <= rates.loc[200, "equivalent_images"] <= rates.loc[200, "ci_high"]
    assert not np.isfinite(rates.loc[800, "equivalent_images"]) and rates.loc[800, "share_not_reached"] > 0.5
    assert rates.loc[100, "smallest_measured"] == 100 and rates.loc[100, "share_at_smallest"] < 0.5  # 0.3 < 0.4
    assert R.size_for(0.1, np.array([100.0, 200.0]), np.array([0.3, 0.4])) == 100
    assert R.size_for(0.35, np.array([100.0, 400.0]), np.array([0.3, 0.4])) == pytest.approx(200)
    with pytest.raises(R.ReportError, match="no curve for the real source"):
        R.exchange_rates(boot, "real_affectnet")


def test_conclusions_quote_the_findings():
    f = pd.DataFrame({"claim": ["A falls short", "B improves"], "kind": ["k1", "k2"], "effect": [-0.2, 0.01],
                      "ci_low": [-0.3, -0.02], "ci_high": [-0.1, 0.03], "verdict_holm": ["supported", "inconclusive"],
                      "n_a": [1400, np.nan], "n_b": [1400, np.nan], "steps_a": [480, np.nan],
                      "steps_b": [480, np.nan]})
    lines = R.conclusions(f, "world")
    assert "Holds: A falls short — effect -0.200 [-0.300, -0.100], n 1400 vs 1400, 480 vs 480 steps." in lines[0]
    assert "0 supported, 0 contradicted, 1 inconclusive" in lines[1] and "procedural world" in lines[-1]


def test_pseudolabel_and_demographic_findings():
    rng = np.random.default_rng(1)
    n = 600
    truth = rng.integers(0, 7, n)
    conf = rng.uniform(0.15, 1.0, n)
    right = rng.random(n) < conf  # more confident -> more often right
    pred = np.where(right, truth, (truth + 1) % 7)
    probs = np.full((n, 7), 0.0)
    probs[np.arange(n), pred] = conf
    probs += (1 - conf)[:, None] / 7
    scores = pd.DataFrame(probs, columns=[f"p_{c}" for c in L.CLASSES])
    scores.insert(0, "path", [f"img{i}.png" for i in range(n)])
    scores["truth"] = [L.CLASSES[t] for t in truth]
    f = R.pseudolabel_finding(scores, "toy", draws=300)
    assert len(f) == 1 and f.iloc[0]["verdict"] == "supported" and f.iloc[0]["p_value"] < 0.05
    assert f.iloc[0]["n_a"] < f.iloc[0]["n_b"]  # kept at the strict threshold vs the loose one: a fact, not a claim
    gen = pd.DataFrame({"gender": ["male", "female"] * 100})
    real = pd.DataFrame({"gender": ["male"] * 180 + ["female"] * 20})
    d = R.demographic_finding(gen, real, "diffusion_embedded", "real_rafdb", {"gender": ("male", "female")}, draws=300)
    assert d.iloc[0]["verdict"] == "supported" and d.iloc[0]["effect"] == pytest.approx(1 - R.normalized_entropy(
        real["gender"].to_numpy(), ("male", "female"), np.ones((1, 200)))[0])


def test_strategy_names():
    assert R.strategy_of("diffusion_embedded_au").family == "synthetic"
    assert R.pretty("hybrid_mixed_syn") == "Mixed-SYN + real RAF-DB"
    assert R.pretty("real_affectnet") == "AffectNet"
    with pytest.raises(R.ReportError, match="no strategy has its prefix"):
        R.strategy_of("weird_set")


def test_family_label():
    assert R.family_label("real_rafdb") == "real"
    assert R.family_label("gan_f") == R.FAMILY_LABELS["synthetic"]
    assert R.family_label("hybrid_gan_f") == "hybrid (synthetic + real)"
    with pytest.raises(R.ReportError, match="'weird_set'"):
        R.family_label("weird_set")


def _eval_table():
    rows = [("real_rafdb", "rafdb", "macro_f1", 0.6, 0.01), ("real_rafdb", "fer2013", "macro_f1", 0.3, np.nan),
            ("gan_f", "rafdb", "macro_f1", 0.4, 0.02), ("gan_f", "rafdb", "accuracy", 0.5, 0.03)]
    return pd.DataFrame(rows, columns=["train_set", "test_set", "metric", "mean", "sd"])


def test_metric_matrix_in_the_given_order_nan_where_no_result():
    m = R.metric_matrix(_eval_table(), "macro_f1", ["gan_f", "real_rafdb"], ["rafdb", "fer2013"])
    assert list(m.index) == ["gan_f", "real_rafdb"] and list(m.columns) == ["rafdb", "fer2013"]
    assert m.loc["gan_f", "rafdb"] == 0.4 and m.loc["real_rafdb", "fer2013"] == 0.3
    assert np.isnan(m.loc["gan_f", "fer2013"])  # gan_f was not tested on fer2013
    sd = R.metric_matrix(_eval_table(), "macro_f1", ["gan_f", "real_rafdb"], ["rafdb", "fer2013"], "sd")
    assert sd.loc["real_rafdb", "rafdb"] == 0.01 and np.isnan(sd.loc["real_rafdb", "fer2013"])


def test_metric_matrix_refuses_unknown_metric_duplicates_and_missing_columns():
    t = _eval_table()
    with pytest.raises(R.ReportError, match=r"no rows for metric 'balanced_accuracy'; metrics: \['accuracy', 'macro_f1'\]"):
        R.metric_matrix(t, "balanced_accuracy", ["gan_f"], ["rafdb"])
    two_models = pd.concat([t, t.iloc[[2]]], ignore_index=True)
    with pytest.raises(R.ReportError, match=r"several rows for training set × test set \('gan_f', 'rafdb'\)"):
        R.metric_matrix(two_models, "macro_f1", ["gan_f"], ["rafdb"])
    with pytest.raises(R.ReportError, match=r"lacks column\(s\) \['sd'\]"):
        R.metric_matrix(t.drop(columns="sd"), "macro_f1", ["gan_f"], ["rafdb"], "sd")


def test_mean_sd_text_omits_the_sd_of_a_single_seed():
    mean = pd.DataFrame([[0.61234, 0.5], [0.25, 1.0]])
    sd = pd.DataFrame([[0.03149, np.nan], [0.0, np.nan]])
    text = R.mean_sd_text(mean, sd)
    assert text.shape == (2, 2) and text.dtype == object
    assert text.tolist() == [["0.612\n± 0.031", "0.500"], ["0.250\n± 0.000", "1.000"]]
    assert R.mean_sd_text(mean, sd, digits=1)[0, 0] == "0.6\n± 0.0"
    with pytest.raises(R.ReportError, match="differ in shape"):
        R.mean_sd_text(mean, sd.iloc[:1])


def test_sections_record_what_was_shown_and_say_what_was_not(tmp_path, capsys):
    sections = R.Sections()
    assert sections.table().columns.tolist() == ["section", "status", "input", "note"] and sections.table().empty
    assert sections.record("headline table", tmp_path / "headline.csv", True) is True
    assert sections.record("findings", "outputs/train", 0, "no training set of this run is a claim's subject") is False
    (tmp_path / "synthetic.csv").write_text("set,metric,value\n")
    assert sections.optional(tmp_path / "synthetic.csv", "synthetic-set measurements") == tmp_path / "synthetic.csv"
    assert sections.optional(tmp_path / "privacy_summary.csv", "privacy check") is None
    printed = capsys.readouterr().out.splitlines()
    assert printed == ["[findings] not produced by this run: no training set of this run is a claim's subject",
                       f"[privacy check] not produced by this run: {tmp_path / 'privacy_summary.csv'} does not exist"]
    t = sections.table()
    assert t["section"].tolist() == ["headline table", "findings", "synthetic-set measurements", "privacy check"]
    assert t["status"].tolist() == ["shown", "not produced by this run", "shown", "not produced by this run"]
    assert t["input"].tolist()[1] == "outputs/train" and t["note"].tolist()[0] == ""


def _package(root, name, members):
    pkg = root / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for sub, body in members.items():
        (pkg / sub).mkdir()
        (pkg / sub / "__init__.py").write_text(body)
    (pkg / "plain.py").write_text("STRATEGY = 'a module, not a package: ignored'\n")
    return pkg


def test_strategies_are_found_by_their_declaration_in_the_paper_order(tmp_path, monkeypatch):
    assert [s.prefix for s in R.STRATEGIES] == ["real_", "pseudolabel_", "diffusion_", "gan_", "mixed_syn",
                                                "hybrid_", "oracle_"]
    monkeypatch.syspath_prepend(str(tmp_path))
    decl = "from syntfer.core.strategy import Strategy\nSTRATEGY = Strategy({!r}, {!r}, 'synthetic', 'test', order={})\n"
    pkg = _package(tmp_path, "fakepkg", {"morph": decl.format("morph_", "morphing", 5),
                                         "blend": decl.format("blend_", "blending", 4), "tools": "X = 1\n"})
    found = R.discover_strategies(pkg, "fakepkg")
    assert [s.prefix for s in found] == ["blend_", "morph_"]
    bad = _package(tmp_path, "badpkg", {"morph": decl.format("morph_", "m", 1),
                                        "morph2": decl.format("morph_x", "m2", 2)})
    with pytest.raises(R.ReportError, match="collides"):
        R.discover_strategies(bad, "badpkg")
    odd = _package(tmp_path, "oddpkg", {"thing": "STRATEGY = 'gan_'\n"})
    with pytest.raises(R.ReportError, match="oddpkg.thing.STRATEGY"):
        R.discover_strategies(odd, "oddpkg")


def test_a_strategy_prefix_and_family_are_checked():
    from syntfer.core.strategy import Strategy

    with pytest.raises(ValueError, match="prefix"):
        Strategy("Morph-", "m", "synthetic", "d")
    with pytest.raises(ValueError, match="family"):
        Strategy("morph_", "m", "invented", "d")


def test_order_sets_groups_by_strategy_with_the_reference_first():
    names = ["mixed_syn", "gan_v", "real_fer2013", "hybrid_mixed_syn", "real_rafdb", "gan_f", "pseudolabel_x"]
    assert R.order_sets(names, first="real_rafdb") == ["real_rafdb", "real_fer2013", "pseudolabel_x", "gan_f",
                                                       "gan_v", "mixed_syn", "hybrid_mixed_syn"]
    with pytest.raises(R.ReportError, match="weird"):
        R.order_sets(["weird"])


def test_headline_table_has_mean_sd_seeds_and_provenance_per_cell_and_names_a_missing_one():
    rows = []
    for s, base in (("real_rafdb", 0.8), ("gan_f", 0.2)):
        for t in ("rafdb", "fer2013"):
            for metric, off in (("accuracy", 0.0), ("balanced_accuracy", -0.05), ("macro_f1", -0.1), ("loss", 9)):
                rows.append({"train_set": s, "test_set": t, "metric": metric, "mean": base + off, "sd": 0.01,
                             "n_seeds": 3 if s == "gan_f" or t == "rafdb" else 2})
    ev = pd.DataFrame(rows)
    h = R.headline_table(ev, ["real_rafdb", "gan_f"], ["rafdb", "fer2013"], model="cnn_tiny", data_kind="world")
    assert h.columns.tolist() == ["train_set", "strategy", "test_set", "acc", "acc_sd", "balanced_acc",
                                  "balanced_acc_sd", "macro_f1", "macro_f1_sd", "n_seeds", "model", "data_kind"]
    assert h[["train_set", "test_set"]].values.tolist() == [["real_rafdb", "rafdb"], ["real_rafdb", "fer2013"],
                                                            ["gan_f", "rafdb"], ["gan_f", "fer2013"]]
    assert h.loc[2, "strategy"] == "GAN editing" and h.loc[2, "balanced_acc"] == pytest.approx(0.15)
    assert h["n_seeds"].tolist() == [3, 2, 3, 3] and set(h["model"]) == {"cnn_tiny"}
    with pytest.raises(R.ReportError, match="'gan_f' on test set 'affectnet'"):
        R.headline_table(ev, ["gan_f"], ["affectnet"], model="m", data_kind="world")


def test_distance_rows_reads_fd_and_kid_columns_by_space():
    wide = pd.DataFrame({"fd_judge": [1.0, np.nan], "kid_identity": [0.1, 0.2], "kid_identity_sd": [0.01, 0.02],
                         "expression_fidelity": [0.5, 0.6], "fd_judge_domain": [3.0, 4.0]},
                        index=pd.Index(["a", "b"], name="set"))
    d = R.distance_rows(wide)
    assert d.columns.tolist() == ["set", "space", "measure", "value"]
    got = {(r.set, r.space, r.measure): r.value for r in d.itertuples()}
    assert got == {("a", "judge", "fd"): 1.0, ("a", "identity", "kid"): 0.1, ("b", "identity", "kid"): 0.2,
                   ("a", "identity", "kid_sd"): 0.01, ("b", "identity", "kid_sd"): 0.02,
                   ("a", "judge", "fd_domain"): 3.0, ("b", "judge", "fd_domain"): 4.0}
    assert R.distance_rows(wide[["expression_fidelity"]]).empty


def test_findings_metrics_carry_holm_verdicts_and_budgets(runs):
    f = R.adjust(R.training_findings(runs, ["gan_f", "hybrid_mixed_syn"], matched_real="real_rafdb_matched",
                                     draws=300), 0.05)
    m = R.findings_metrics(f)
    key = "gan_f_vs_real_rafdb_matched_balanced_accuracy_rafdb"
    assert m[f"{key}.verdict"] == 1 and m[f"{key}.n_a"] == 1400 and m[f"{key}.steps_b"] == 480
    assert 0 < m[f"{key}.p_holm"] <= 0.05
    assert m["supported_holm"] == int((f["verdict_holm"] == "supported").sum())


def test_scaling_metrics_flat_keys_and_null_for_never_reached():
    curve = pd.DataFrame([{"source": "gan_f", "size": 280, "balanced_accuracy": 0.3, "ci_low": 0.25, "ci_high": 0.35}])
    rates = pd.DataFrame([{"source": "gan_f", "real_images": 1400, "equivalent_images": np.inf, "ci_low": 900.0,
                           "ci_high": np.inf, "share_not_reached": 0.8}])
    m = R.scaling_metrics(curve, rates)
    assert m["scaling.gan_f.n280.balanced_accuracy"] == 0.3
    assert m["exchange.gan_f.real1400.equivalent_images"] is None and m["exchange.gan_f.real1400.ci_low"] == 900.0
    assert m["exchange.gan_f.real1400.share_not_reached"] == 0.8


def test_a_claim_this_run_cannot_test_is_a_row_with_its_reason():
    """Skipped claims are rows (verdict `skipped`, a reason), kept out of Holm's family and out of the effects."""
    tested = pd.DataFrame([R._row("a beats b", "k", (0.1, 0.05, 0.15, 2, 100, 0.001), ">", "balanced_accuracy", "rafdb",
                                  "a", "b")], columns=list(R.FINDING_COLUMNS))
    skipped = R.skipped_finding(R.pseudolabel_claim("digiface", 0.3, 0.9), "pseudo-label threshold",
                                "precision_vs_truth", "pseudolabel_digiface", "pseudolabel_digiface", "no truth")
    both = R.adjust(pd.concat([tested, skipped], ignore_index=True))
    assert list(both["verdict_holm"]) == ["supported", "skipped"] and list(both["reason"]) == ["", "no truth"]
    assert both.loc[0, "p_holm"] == pytest.approx(0.001)  # one claim in the family: the skipped one does not count
    m = R.findings_metrics(both)
    assert m["skipped"] == 1 and m["supported"] == 1 and not any("pseudolabel_digiface" in k for k in m)
    assert "1 not tested by this run (no truth)" in " ".join(R.conclusions(skipped.assign(verdict_holm="skipped"),
                                                                          "real"))
    with pytest.raises(R.ReportError, match="a reason is required"):
        R.skipped_finding("c", "k", "m", "a", "b", "")
