"""Set measurements: seeded subsets and edit sets (judge outputs and fidelity: tests/test_judge.py)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from syntfer.instruments import distances as D
from syntfer.instruments import setmetrics as S


def test_subset_positions_are_seeded_per_name_and_sorted():
    a = S.subset_positions(100, 10, 0, "gan_f")
    assert len(a) == 10 and len(set(a)) == 10 and (np.diff(a) > 0).all()
    np.testing.assert_array_equal(a, S.subset_positions(100, 10, 0, "gan_f"))
    assert not np.array_equal(a, S.subset_positions(100, 10, 0, "gan_v"))
    assert not np.array_equal(a, S.subset_positions(100, 10, 1, "gan_f"))
    np.testing.assert_array_equal(S.subset_positions(7, 10, 0, "x"), np.arange(7))
    np.testing.assert_array_equal(S.subset_positions(7, 0, 0, "x"), np.arange(7))


def test_edit_sources_only_for_sets_that_are_all_edits():
    gan = pd.DataFrame({"path": ["e1", "e2"], "label": ["happy", "sad"], "source_path": ["s1", "s2"],
                        "control_x": [0.1, 0.2], "control_y": [0.0, 0.3]})
    src, why = S.edit_sources(gan)
    assert list(src) == ["s1", "s2"] and why == ""
    # a copied GAN set (syntfer.study.mixing): source_path is the copied file, origin_path the source face
    copied = gan.assign(path=["c1", "c2"], source_path=["e1", "e2"], origin_path=["s1", "s2"])
    assert list(S.edit_sources(copied)[0]) == ["s1", "s2"]
    pseudo = gan.drop(columns=["control_x", "control_y"])
    assert S.edit_sources(pseudo) == (None, "no control_x / control_y column (not an edit set)")
    mix = gan.astype(object)
    mix.loc[1, ["control_x", "control_y"]] = ""
    assert S.edit_sources(mix) == (None, "only 1 of 2 rows are edits (a mix)")
    with pytest.raises(S.SetMetricsError, match="no source face"):
        S.edit_sources(gan.assign(source_path=["s1", ""]))
    with pytest.raises(S.SetMetricsError, match="the image itself"):
        S.edit_sources(gan.assign(source_path=["e1", "s2"]))


def test_one_kid_evaluation_equals_a_hundred_when_both_sets_are_whole():
    # why the notebook passes n_subsets=1 when a set and the reference have the same size <= subset size
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 8)), rng.normal(0.3, 1.0, size=(50, 8))
    one = D.kernel_distance(x, y, n_subsets=1, subset_size=2000)
    many = D.kernel_distance(x, y, n_subsets=100, subset_size=2000)
    assert one.mean == pytest.approx(many.mean, rel=1e-12, abs=1e-15)


def test_kid_subsets_one_only_when_both_whole():
    assert S.kid_subsets(600, 600) == 1 and S.kid_subsets(2000, 2000) == 1
    assert S.kid_subsets(600, 500) == 100 and S.kid_subsets(2001, 2001) == 100
    assert S.kid_subsets(5, 5, subset_size=4) == 100


def test_distance_table_rows_per_space_and_set_with_the_distances_values():
    rng = np.random.default_rng(0)
    ref_a, ref_b = rng.normal(size=(20, 4)), rng.normal(size=(20, 3))
    spaces = {"judge": ({"gan_f": rng.normal(0.5, 1, (20, 4)), "gan_v": rng.normal(size=(15, 4))}, ref_a),
              "identity": ({"gan_f": rng.normal(size=(20, 3)), "gan_v": rng.normal(size=(15, 3))}, ref_b)}
    table = S.distance_table(spaces, ["gan_v", "gan_f"], seed=3, subset_size=10)
    assert list(table.columns) == S.DISTANCE_COLUMNS
    assert list(zip(table["space"], table["set"])) == [("judge", "gan_v"), ("judge", "gan_f"),
                                                       ("identity", "gan_v"), ("identity", "gan_f")]
    assert table["n"].tolist() == [15, 20, 15, 20] and (table["n_reference"] == 20).all()
    assert table["kid_subsets"].tolist() == [100, 100, 100, 100]  # 20 > subset_size 10: not every subset is whole
    want = D.distribution_distances(spaces["identity"][0]["gan_f"], ref_b, "identity", n_subsets=100, subset_size=10,
                                    seed=3)
    row = table.iloc[3]
    assert (row["fd"], row["kid"], row["kid_sd"], row["kid_subset_size"], row["fd_regularized"]) == (
        want["fd_identity"], want["kid_identity"], want["kid_identity_sd"], want["kid_identity_subset_size"],
        want["fd_identity_regularized"])
    whole = S.distance_table(spaces, ["gan_f"], seed=3)  # 20 = 20 <= 2000: one evaluation
    assert whole["kid_subsets"].tolist() == [1, 1] and whole["kid_subset_size"].tolist() == [20, 20]
