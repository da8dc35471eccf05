import numpy as np
import pytest

from syntfer.core import labels as L


def test_canonical_order_is_alphabetical_and_fixed():
    assert L.CLASSES == ("anger", "disgust", "fear", "happy", "neutral", "sad", "surprise")
    assert [L.index(c) for c in L.CLASSES] == list(range(7))


def test_rafdb_native_order():
    # docs/method.md §1: 1 surprise, 2 fear, 3 disgust, 4 happy, 5 sad, 6 anger, 7 neutral
    expected = ["surprise", "fear", "disgust", "happy", "sad", "anger", "neutral"]
    assert [L.from_native("rafdb", i) for i in range(1, 8)] == expected
    with pytest.raises(L.LabelError, match="rafdb label code 0"):
        L.from_native("rafdb", 0)
    with pytest.raises(L.LabelError, match="not an integer"):
        L.from_native("rafdb", "x")


def test_affectnet_native_order_and_extra_codes():
    expected = ["neutral", "happy", "sad", "surprise", "fear", "disgust", "anger"]
    assert [L.from_native("affectnet", i) for i in range(7)] == expected
    assert [L.from_native("affectnet", i) for i in range(7, 11)] == [None] * 4
    assert L.from_native("affectnet", 7, keep_contempt=True) == "contempt"
    assert L.from_native("affectnet", 8, keep_contempt=True) is None
    with pytest.raises(L.LabelError):
        L.from_native("affectnet", 11)


def test_fer2013_and_ganmut_orders():
    assert [L.from_native("fer2013", i) for i in range(7)] == ["anger", "disgust", "fear", "happy", "sad",
                                                                "surprise", "neutral"]
    assert all(L.from_native("ganmut", i) == L.from_native("rafdb", i) for i in range(1, 8))


@pytest.mark.parametrize("alias,name", [("angry", "anger"), ("Surprised", "surprise"), ("happiness", "happy"),
                                        ("sadness", "sad"), ("fearful", "fear"), ("disgusted", "disgust"),
                                        (" neutral ", "neutral")])
def test_aliases(alias, name):
    assert L.canonical(alias) == name


def test_unknown_name_is_an_error():
    with pytest.raises(L.LabelError, match="'contempt'"):
        L.canonical("contempt")


def test_to_native_inverts_from_native():
    for ds in ("rafdb", "affectnet", "fer2013"):
        for c in L.CLASSES:
            assert L.from_native(ds, L.to_native(ds, c)) == c


def test_permutation_maps_native_probabilities():
    native = L.FER2013_ORDER  # angry, disgust, fear, happy, sad, surprise, neutral
    perm = L.permutation_to_canonical(native)
    probs = np.eye(7)  # row i = one-hot on native index i
    mapped = probs[:, perm]
    for i, name in enumerate(native):
        assert L.CLASSES[int(mapped[i].argmax())] == name
    with pytest.raises(L.LabelError):
        L.permutation_to_canonical(["anger"] * 7)


def test_real_counts_match_method():
    assert sum(L.REAL_TRAIN_COUNTS["rafdb"].values()) == 12271
    assert sum(L.REAL_TRAIN_COUNTS["rafdb_test"].values()) == 3068
    assert sum(L.REAL_TRAIN_COUNTS["affectnet"].values()) == 283901
    assert sum(L.REAL_TRAIN_COUNTS["fer2013"].values()) == 28709
    assert L.REAL_TRAIN_COUNTS["rafdb"]["happy"] == 4772
