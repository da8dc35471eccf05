"""The report notebook's figures (syntfer.study.report_figures): each draws what its table holds — the rows,
labels, titles and values checked on small frames the tests make."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from syntfer.core import labels as L
from syntfer.engine import evaluation as EV
from syntfer.study import report_figures as RFIG
from syntfer.study import report_tables as RTAB

pytestmark = pytest.mark.usefixtures("close_figures")  # Agg, every figure closed (tests/conftest.py)


def test_headline_one_row_per_claim_coloured_by_verdict():
    claims = pd.DataFrame({"effect": [0.1, -0.2], "ci_low": [0.05, -0.3], "ci_high": [0.15, -0.1],
                           "verdict_holm": ["supported", "contradicted"], "set_a": ["gan_f", "mixed_syn"],
                           "set_b": ["real_rafdb_matched", "real_rafdb"], "metric": ["balanced_accuracy", "recall_fear"],
                           "test_set": ["rafdb", "fer2013"]})
    ax = RFIG.headline(claims, "rafdb", "world stand-ins").axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["GAN editing (f) vs RAF-DB (size-matched) · balanced accuracy",
                      "Mixed-SYN vs RAF-DB · recall fear · fer2013"]
    points = [line for line in ax.lines if line.get_marker() == "o"]
    assert [tuple(p.get_xdata()) for p in points] == [(0.1,), (-0.2,)]
    assert [p.get_color() for p in points] == ["tab:green", "tab:red"]
    assert ax.get_title().endswith("(world stand-ins)") and ax.yaxis_inverted()


def test_composition_annotates_counts_and_imbalance():
    table = pd.DataFrame([[4, 1, 2, 8, 6, 5, 3], [2] * 7], columns=list(L.CLASSES), index=["real_rafdb", "gan_f"])
    table["total"] = table.sum(axis=1)
    table["imbalance"] = [8.0, 1.0]
    table.insert(0, "strategy", ["real", "GAN editing"])
    fig = RFIG.composition(table, "k")
    heat, bars = fig.axes[:2]
    assert [t.get_text() for t in heat.texts][:7] == ["4", "1", "2", "8", "6", "5", "3"]
    assert sorted(t.get_text() for t in bars.texts) == ["1.0", "8.0"]
    assert bars.get_xlim() == pytest.approx((0, 8.0 * 1.35))
    assert fig.get_suptitle() == "training-set composition (k)"


def test_cross_dataset_one_panel_per_metric_with_mean_and_sd():
    ev = pd.DataFrame([{"train_set": s, "test_set": t, "metric": m, "mean": 0.5 + 0.1 * i, "sd": 0.01 if s == "a"
                        else np.nan} for i, s in enumerate(("a", "b")) for t in ("rafdb", "fer2013")
                       for m in ("accuracy", "macro_f1")])
    fig = RFIG.cross_dataset(ev, ["a", "b"], ["rafdb", "fer2013"], {"accuracy": "acc", "macro_f1": "f1"}, "cnn", "k")
    assert [ax.get_title() for ax in fig.axes] == ["accuracy", "macro_f1"]
    assert [t.get_text() for t in fig.axes[0].texts] == ["0.500\n± 0.010"] * 2 + ["0.600"] * 2
    assert "cnn" in fig.get_suptitle()


def test_per_class_recall_and_minority_gains():
    recall = pd.DataFrame(np.full((2, 7), 0.25), index=["a", "b"], columns=list(L.CLASSES))
    ax = RFIG.per_class_recall(recall, "rafdb", "k").axes[0]
    assert len(ax.texts) == 14 and ax.texts[0].get_text() == "0.25" and "rafdb" in ax.get_title()
    gains = pd.DataFrame({"train_set": ["g", "g", "h", "h"], "class": ["fear", "anger"] * 2,
                          "recall_gain": [0.1, -0.2, 0.3, 0.0], "reference_set": "real_rafdb"})
    ax = RFIG.minority_gains(gains, ["fear", "anger"], "real_rafdb", "rafdb", "k").axes[0]
    widths = sorted(round(p.get_width(), 3) for p in ax.patches if p.get_height() > 0)
    assert widths == [-0.2, 0.0, 0.1, 0.3]
    assert ax.get_xlabel() == "recall − recall of real_rafdb (rafdb test)"


def test_strategies_is_the_same_figure_twice():
    ev = RTAB.model_rows(pd.DataFrame([{"train_set": s, "model": "m", "test_set": "rafdb", "metric":
                                        "balanced_accuracy", "mean": v} for s, v in
                                       (("real_rafdb", 0.8), ("gan_f", 0.4), ("gan_v", 0.6))]), "m")
    cross = ev.rename(columns={"mean": "value"}).assign(seed=0)
    args = (ev, cross, ["real", "synthetic (one source)"], ["real_rafdb", "gan_f", "gan_v"], ["rafdb"], "k")
    from syntfer.core import plots
    first, second = plots.figure_png(RFIG.strategies(*args)), plots.figure_png(RFIG.strategies(*args))
    assert first == second  # the strip plot's jitter is seeded
    fig = RFIG.strategies(*args)
    heights = sorted(round(p.get_height(), 3) for p in fig.axes[0].patches if p.get_width() > 0)
    assert heights == [0.5, 0.8]  # the family means


def test_confusion_panels_and_seed_counts(tmp_path):
    y = np.array([0, 0, 3, 3])
    confusion = {("a", 0): (EV.confusion_table(y, y), tmp_path), ("a", 1): (EV.confusion_table(y, y), tmp_path),
                 ("b", 0): (EV.confusion_table(y, np.array([3, 3, 3, 3])), tmp_path)}
    fig = RFIG.confusion(confusion, ["a", "b"], primary_test="rafdb", model="m", runs_glob="g", kind_note="k")
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()][:2] == ["a (2 seeds)", "b (1 seed)"]
    with pytest.raises(FileNotFoundError, match="'c'"):
        RFIG.confusion(confusion, ["a", "c"], primary_test="rafdb", model="m", runs_glob="g", kind_note="k")


def test_scaling_lines_and_size_marker():
    curve = pd.DataFrame({"source": ["real_rafdb", "real_rafdb", "gan_f"], "size": [100, 1400, 100],
                          "balanced_accuracy": [0.3, 0.6, 0.2], "ci_low": [0.2, 0.5, 0.1], "ci_high": [0.4, 0.7, 0.3]})
    ax = RFIG.scaling(curve, reference_set="real_rafdb", primary_test="rafdb", set_size=1400, kind_note="k").axes[0]
    lines = {line.get_label(): line for line in ax.lines}
    assert lines["RAF-DB"].get_linewidth() == 2.5 and lines["GAN editing (f)"].get_linewidth() == 1.5
    assert list(lines["RAF-DB"].get_ydata()) == [0.3, 0.6] and ax.get_xscale() == "log"


def test_distances_fidelity_demographics_privacy():
    dist = pd.DataFrame({"set": ["a", "a", "a"], "space": "base", "measure": ["fd", "kid", "fd_domain"],
                         "value": [10.0, 0.1, 5.0]})
    g = RFIG.distances(dist, "k")
    assert [ax.get_title() for ax in g.axes.flat] == ["measure = fd", "measure = kid"]  # fd_domain left out
    fpc = pd.DataFrame({"set": "a", "class": [*L.CLASSES, "all"], "fidelity": np.linspace(0, 1, 8)})
    ax = RFIG.fidelity_per_class(fpc, "k").axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()][-1] == "all" and ax.texts[-1].get_text() == "1.00"
    demo = pd.DataFrame({"set": ["a", "a", "b"], "basis": ["world truth", "world truth", "prompt"], "label": "all",
                         "attribute": "gender", "value": ["male", "female", "male"], "count": 1, "share": [.5, .5, 1.]})
    g = RFIG.demographics(demo, "gender", "k")
    assert g.figure.get_suptitle() == "gender by set (k) — basis: prompt, world truth"
    priv = pd.DataFrame({"set": ["a", "b"], "space": "pixel", "similarity_mean": [0.3, 0.4], "n_flagged": 0,
                         "share_flagged": [0.0, 0.1]})
    g = RFIG.privacy(priv, "k")
    assert [ax.get_title() for ax in g.axes.flat] == ["similarity_mean", "share_flagged"]
