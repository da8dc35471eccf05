"""The label space: one canonical class order and every dataset's explicit map into it.

Canonical order (index 0..6) is alphabetical, as upstream's class folders were:
``anger, disgust, fear, happy, neutral, sad, surprise``. Every native order is written out
here as a literal table; nothing anywhere in syntfer derives labels from folder sort order.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

CLASSES: tuple[str, ...] = ("anger", "disgust", "fear", "happy", "neutral", "sad", "surprise")
NUM_CLASSES = len(CLASSES)
CLASS_TO_INDEX: dict[str, int] = {c: i for i, c in enumerate(CLASSES)}
# AffectNet-8's extra class; allowed in manifests only when a reader is asked to keep it.
CONTEMPT = "contempt"


class LabelError(ValueError):
    """A label name or code that does not map into the canonical space."""


# Folder / free-text aliases found in community copies of FER datasets (lower-case keys).
ALIASES: dict[str, str] = {
    "anger": "anger", "angry": "anger",
    "disgust": "disgust", "disgusted": "disgust", "disgusting": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "scared": "fear",
    "happy": "happy", "happiness": "happy", "joy": "happy",
    "neutral": "neutral", "neutrality": "neutral", "calm": "neutral",
    "sad": "sad", "sadness": "sad",
    "surprise": "surprise", "surprised": "surprise",
}

# --- native codes -> canonical names (docs/method.md §1) ---------------------------------------
# RAF-DB basic, EmoLabel/list_patition_label.txt, 1-based.
RAFDB: dict[int, str] = {1: "surprise", 2: "fear", 3: "disgust", 4: "happy", 5: "sad", 6: "anger", 7: "neutral"}
# AffectNet `expression` column, 7 basic classes.
AFFECTNET7: dict[int, str] = {0: "neutral", 1: "happy", 2: "sad", 3: "surprise", 4: "fear", 5: "disgust", 6: "anger"}
# AffectNet codes outside the 7-class space: contempt is a class in AffectNet-8, the rest are not expressions.
AFFECTNET_EXTRA: dict[int, str] = {7: "contempt", 8: "none", 9: "uncertain", 10: "no-face"}
# FER2013 `emotion` column.
FER2013: dict[int, str] = {0: "anger", 1: "disgust", 2: "fear", 3: "happy", 4: "sad", 5: "surprise", 6: "neutral"}
# GANmut label files use RAF-DB numbering.
GANMUT: dict[int, str] = dict(RAFDB)

NATIVE_MAPS: dict[str, dict[int, str]] = {
    "rafdb": RAFDB,
    "affectnet": AFFECTNET7,
    "fer2013": FER2013,
    "ganmut": GANMUT,
}

# Native output orders of known classifiers (index -> name), mapped with `permutation_to_canonical`.
FER2013_ORDER: tuple[str, ...] = tuple(FER2013[i] for i in range(7))
RAFDB_ORDER: tuple[str, ...] = tuple(RAFDB[i] for i in range(1, 8))
AFFECTNET7_ORDER: tuple[str, ...] = tuple(AFFECTNET7[i] for i in range(7))


def canonical(name: str) -> str:
    """Canonical class name for a class name or alias (case/whitespace-insensitive).

    Raises LabelError naming the value and the accepted names.
    """
    key = str(name).strip().lower()
    if key in ALIASES:
        return ALIASES[key]
    raise LabelError(f"unknown expression class {name!r}; expected one of {sorted(ALIASES)}")


def index(name: str) -> int:
    """Canonical index (0..6) of a class name or alias."""
    return CLASS_TO_INDEX[canonical(name)]


def from_native(dataset: str, code: int | str, *, keep_contempt: bool = False) -> str | None:
    """Canonical name for a native integer label of `dataset` ('rafdb', 'affectnet', 'fer2013', 'ganmut').

    For AffectNet, codes 7..10 return None (outside the 7-class space) so callers can count
    and report the dropped rows; with ``keep_contempt`` code 7 returns 'contempt' (AffectNet-8).
    Any other unknown code raises LabelError.
    """
    if dataset not in NATIVE_MAPS:
        raise LabelError(f"unknown dataset {dataset!r}; expected one of {sorted(NATIVE_MAPS)}")
    try:
        c = int(str(code).strip())
    except ValueError as e:
        raise LabelError(f"{dataset} label {code!r} is not an integer") from e
    table = NATIVE_MAPS[dataset]
    if c in table:
        return table[c]
    if dataset == "affectnet" and c in AFFECTNET_EXTRA:
        if keep_contempt and c == 7:
            return "contempt"
        return None
    raise LabelError(f"{dataset} label code {c} is not valid; expected one of {sorted(table)}"
                     + (f" or {sorted(AFFECTNET_EXTRA)}" if dataset == "affectnet" else ""))


def to_native(dataset: str, name: str) -> int:
    """Inverse of `from_native` for the 7 basic classes (used by the world to write native files)."""
    name = canonical(name)
    for c, n in NATIVE_MAPS[dataset].items():
        if n == name:
            return c
    raise LabelError(f"{name!r} has no code in {dataset}")


def permutation_to_canonical(native_order: Sequence[str]) -> np.ndarray:
    """Index array `p` such that ``probs_native[..., p]`` is in canonical order.

    `native_order` lists a model's output classes by output index (names or aliases).
    It must cover the seven classes exactly once.
    """
    names = [canonical(n) for n in native_order]
    if sorted(names) != sorted(CLASSES):
        raise LabelError(f"label order {list(native_order)} does not cover the 7 classes exactly once")
    return np.array([names.index(c) for c in CLASSES], dtype=np.int64)


def counts(labels: Iterable[str]) -> dict[str, int]:
    """Per-class counts in canonical order (every class present, zeros included)."""
    out = {c: 0 for c in CLASSES}
    for lab in labels:
        out[canonical(lab)] += 1
    return out


def shares(counts_by_class: Mapping[str, int]) -> dict[str, float]:
    total = sum(counts_by_class.values())
    return {c: (counts_by_class.get(c, 0) / total if total else 0.0) for c in CLASSES}


# Real datasets' training class counts (docs/method.md §2), canonical names; the world draws its shares from these.
REAL_TRAIN_COUNTS: dict[str, dict[str, int]] = {
    "rafdb": {RAFDB[i + 1]: n for i, n in enumerate([1290, 281, 717, 4772, 1982, 705, 2524])},
    "rafdb_test": {RAFDB[i + 1]: n for i, n in enumerate([329, 74, 160, 1185, 478, 162, 680])},
    "affectnet": {AFFECTNET7[i]: n for i, n in enumerate([74874, 134415, 25459, 14090, 6378, 3803, 24882])},
    "fer2013": {FER2013[i]: n for i, n in enumerate([3995, 436, 4097, 7215, 4830, 3171, 4965])},
}


def split_total(reference: Mapping[str, int | float], total: int, minimum: int = 1) -> dict[str, int]:
    """Split `total` over the 7 classes in proportion to `reference` (largest remainder), each >= `minimum`."""
    if total < minimum * NUM_CLASSES:
        raise ValueError(f"total {total} cannot give {minimum} image(s) to each of {NUM_CLASSES} classes")
    ref = np.array([float(reference.get(c, 0)) for c in CLASSES])
    if ref.sum() <= 0:
        raise ValueError(f"reference counts {dict(reference)} are empty")
    raw = ref / ref.sum() * total
    # give each class max(minimum, share) while keeping the sum exact
    base = np.maximum(np.floor(raw), minimum).astype(int)
    while base.sum() > total:  # minimums pushed us over: take from classes above the minimum
        excess = np.where(base > minimum, base - raw, -np.inf)
        base[int(np.argmax(excess))] -= 1
    order = np.argsort(-(raw - base), kind="stable")
    i = 0
    while base.sum() < total:
        base[order[i % len(order)]] += 1
        i += 1
    return {c: int(n) for c, n in zip(CLASSES, base)}
