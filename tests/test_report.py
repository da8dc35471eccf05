"""The study's verdicts (syntfer.report): paired bootstrap effects and verdicts decided by the interval alone."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from syntfer import evaluation as E
from syntfer import labels as L
from syntfer import report as R


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
    assert f.iloc[0]["verdict"] == "supported" and f.iloc[1]["verdict"] == "supported" and f.iloc[1]["effect"] < 0
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
