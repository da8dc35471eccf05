"""The paper's prompt grid (docs/method.md §4): exact counts, stable ids, subsets, length checks, FineFace AUs."""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest

from syntfer.core import labels as L
from syntfer.strategies.diffusion import prompts as P


@pytest.fixture(scope="module")
def grid() -> pd.DataFrame:
    return P.prompt_grid()


def test_grid_counts_exact(grid):
    assert len(grid) == 57_960
    assert list(grid.columns) == list(P.COLUMNS)
    assert grid.groupby("emotion").size().to_dict() == {e: 8_280 for e in P.EMOTIONS}
    assert grid.groupby("race").size().to_dict() == {r: 11_592 for r in P.RACES}
    by_ga = grid.groupby(["gender", "age"]).size()
    for (gender, age), n in by_ga.items():
        assert n == (3_780 if age == "child" else 6_300), (gender, age, n)
    assert grid.groupby(["gender", "age"])["identity_trait"].nunique().to_dict() == {
        k: (6 if k[1] == "child" else 10) for k in by_ga.index}
    assert grid["id"].is_unique and grid["prompt"].is_unique
    assert grid.groupby("head_pose").size().nunique() == 1 and grid["head_pose"].nunique() == 6
    assert grid["cue_key"].value_counts().to_dict() == {c: 19_320 for c in P.CUE_KEYS}


def test_ids_are_stable(grid):
    first = grid.iloc[0]
    assert first["id"] == "P00000"
    assert first["prompt"] == (
        "A close-up portrait clearly showing an intense and highly expressive surprised facial expression "
        "(inner and outer brow raiser, upper lid raiser, lips parted, jaw drop). The subject is a child male "
        "with white ethnicity. Slightly turned to the left, short straight hair, captured in a real-world "
        "environment.")
    last = grid.iloc[-1]
    assert last["id"] == "P57959"
    assert (last["gender"], last["age"], last["race"], last["emotion"], last["cue_key"], last["identity_trait"]) == (
        "female", "old", "latino", "neutral", "combined", "thin lips and age spots")


def test_labels_are_canonical(grid):
    assert set(grid["label"]) == set(L.CLASSES)
    assert (grid["label"] == grid["emotion"].map(L.canonical)).all()
    assert grid.loc[grid["emotion"] == "fearful", "label"].eq("fear").all()


def test_stratified_subset_balanced_and_deterministic(grid):
    sub = P.stratified_subset(grid, 20, seed=3)
    assert len(sub) == 140
    assert sub.groupby("label").size().to_dict() == {c: 20 for c in L.CLASSES}
    assert sub.groupby(["emotion", "gender"]).size().eq(10).all()
    per_race = sub.groupby(["emotion", "race"]).size()
    assert per_race.eq(4).all()
    # every stratum at once, not only the fastest-cycling one: all 5 ages, 4 each (the old order had 2 ages)
    per_age = sub.groupby(["emotion", "age"]).size()
    assert len(per_age) == 7 * 5 and per_age.eq(4).all()
    small = P.stratified_subset(grid, 7, seed=1).groupby(["emotion", "age"]).size()
    assert small.max() - small.min() <= 1
    assert sub["id"].is_unique
    again = P.stratified_subset(grid, 20, seed=3)
    pd.testing.assert_frame_equal(sub, again)
    other = P.stratified_subset(grid, 20, seed=4)
    assert set(other["id"]) != set(sub["id"])
    with pytest.raises(P.PromptError, match="n_per_emotion"):
        P.stratified_subset(grid, 9_000)


def test_token_lengths_within_clip_limit(grid):
    checked = P.check_prompt_lengths(grid)
    assert checked["n_tokens"].max() <= 77
    assert not checked["shortened"].any()
    assert P.clip_piece_count("A happy, close-up face.") == 8 + 2  # a happy , close - up face . + bos/eos


def test_long_prompts_raise_or_shorten_visibly(grid):
    rows = grid.iloc[[0, 1]].copy()
    with pytest.raises(P.PromptError, match="P00000 has .* tokens > 50"):
        P.check_prompt_lengths(rows, max_length=50)
    out = P.check_prompt_lengths(rows, max_length=60, on_overflow="shorten")
    assert out["shortened"].all()
    assert (out["n_tokens"] <= 60).all()
    assert (out["prompt_original"] == rows["prompt"].to_numpy()).all()
    assert not out["prompt"].str.contains("real-world environment").any()
    with pytest.raises(P.PromptError, match="still has"):
        P.check_prompt_lengths(rows, max_length=20, on_overflow="shorten")


class _WordTokenizer:
    """Stands in for an HF tokenizer: one token per whitespace word, plus two specials."""

    def __call__(self, text, truncation=False, add_special_tokens=True):
        return {"input_ids": [0] + list(range(len(text.split()))) + [1]}


def test_token_check_uses_given_tokenizer(grid):
    out = P.check_prompt_lengths(grid.iloc[:3], tokenizer=_WordTokenizer())
    assert out["n_tokens"].tolist() == [len(p.split()) + 2 for p in grid["prompt"].iloc[:3]]


def test_fineface_au_table():
    assert P.FINEFACE_AUS == ("AU1", "AU2", "AU4", "AU5", "AU6", "AU9", "AU12", "AU15", "AU17", "AU20", "AU25",
                              "AU26")
    v = dict(zip(P.FINEFACE_AUS, P.au_vector("happy")))
    assert v == {**{a: 0.0 for a in P.FINEFACE_AUS}, "AU6": 2.5, "AU12": 4.0, "AU25": 1.5}
    fear = dict(zip(P.FINEFACE_AUS, P.au_vector("fear")))  # class name works as well as the grid word
    assert fear["AU5"] == 2.5 and fear["AU26"] == pytest.approx(1.2) and fear["AU4"] == 0.0
    assert np.array_equal(P.au_vector("neutral"), np.zeros(12, np.float32))
    m = P.au_matrix(["surprised", "angry"])
    assert m.shape == (2, 12)
    assert m[0, P.FINEFACE_AUS.index("AU26")] == 2.5 and m[1, P.FINEFACE_AUS.index("AU4")] == 3.5
    with pytest.raises(L.LabelError):
        P.au_vector("contempt")


def test_cli_writes_grid_and_subset(tmp_path):
    parser = argparse.ArgumentParser()
    P.add_arguments(parser)
    out = tmp_path / "sub.csv"
    assert P.run(parser.parse_args(["--out", str(out), "--per-emotion", "5", "--seed", "1"])) == 0
    df = P.read_grid(out)
    assert len(df) == 35 and set(P.COLUMNS) <= set(df.columns) and "n_tokens" in df.columns
    assert df["label"].value_counts().eq(5).all()
