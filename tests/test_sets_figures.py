"""The set-measurement notebook's figures (syntfer.study.sets_figures): each draws what its table holds — panels,
labels, titles and values checked on small frames the tests make."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from syntfer.core import labels as L
from syntfer.study import sets_figures as SFIG

pytestmark = pytest.mark.usefixtures("close_figures")  # Agg, every figure closed (tests/conftest.py)


def test_fidelity_per_class_annotates_every_cell():
    wide = pd.DataFrame([[0.5] * 7 + [0.5], [1.0] * 7 + [1.0]], index=["gan_f", "gan_v"], columns=[*L.CLASSES, "all"])
    fig = SFIG.fidelity_per_class(wide, "judge_cnn", "procedural world")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["0.50"] * 8 + ["1.00"] * 8
    assert [t.get_text() for t in ax.get_yticklabels()] == ["gan_f", "gan_v"]
    assert ax.get_title() == "expression fidelity per class, judge = judge_cnn — procedural world"
    assert fig.get_size_inches() == pytest.approx((9, 0.45 * 2 + 1.5))


def test_distances_one_panel_per_space_and_statistic():
    table = pd.DataFrame([{"set": s, "space": sp, "fd": fd, "kid": fd / 10}
                          for sp in ("judge", "identity") for s, fd in (("gan_f", 2.0), ("gan_v", 4.0))])
    g = SFIG.distances(table, "ffhq", "real data")
    titles = [ax.get_title() for ax in g.axes.flat]
    assert titles == ["judge space · fd", "judge space · kid", "identity space · fd", "identity space · kid"]
    widths = [[p.get_width() for p in ax.patches] for ax in g.axes.flat]
    assert widths[0] == pytest.approx([2.0, 4.0]) and widths[3] == pytest.approx([0.2, 0.4])
    assert g.figure.get_suptitle() == "distance to ffhq (lower = closer) — real data"


def test_identity_similarity_one_box_group_per_class():
    idsim = pd.DataFrame({"set": ["gan_f"] * 4, "label": ["happy", "happy", "sad", "fear"],
                          "similarity": [0.9, 0.8, 0.7, 0.6]})
    g = SFIG.identity_similarity(idsim, "w")
    ax = g.axes.flat[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(L.CLASSES)
    assert ax.get_ylabel() == "cosine similarity edit ↔ source"
    assert g.figure.get_suptitle() == "identity preservation of expression edits — w"


def test_privacy_draws_the_threshold():
    table = pd.DataFrame({"set": ["a"] * 5 + ["b"] * 5, "similarity": np.linspace(0.1, 0.9, 10)})
    g = SFIG.privacy(table, 0.7, "w")
    ax = g.axes.flat[0]
    assert [tuple(line.get_xdata()) for line in ax.lines if line.get_linestyle() == "--"] == [(0.7, 0.7)]
    assert g.figure.get_suptitle() == "similarity to the nearest real training face — w"


def test_demographics_one_bar_group_per_set_and_basis():
    demo = pd.DataFrame([{"set": s, "basis": b, "label": "all", "attribute": "gender", "value": v, "share": sh}
                         for s, b in (("gan_f", "world truth"), ("mixed_syn", "prompt"))
                         for v, sh in (("female", 0.4), ("male", 0.6))])
    g = SFIG.demographics(demo, "gender", "w")
    ax = g.axes.flat[0]
    labels = ax.get_xticklabels()
    assert [t.get_text() for t in labels] == ["gan_f · world truth", "mixed_syn · prompt"]
    assert labels[0].get_rotation() == 30 and labels[0].get_ha() == "right"
    assert sorted(round(p.get_height(), 2) for p in ax.patches if p.get_height() > 0) == [0.4, 0.4, 0.6, 0.6]
    assert g.figure.get_suptitle() == "gender by set · basis — w"
