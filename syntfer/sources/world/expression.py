"""Expressions of the procedural world as FACS action units (AUs) with continuous intensity.

Intensities use the FACS A..E scale mapped to 0..5 (0 = absent, 5 = maximum), the scale FineFace's AU
adapter uses (docs/method.md §4). Class prototypes follow EMFACS:

| class    | prototype AUs (intensity)                                        |
|----------|------------------------------------------------------------------|
| happy    | 6 cheek raiser, 12 lip corner puller, (25 lips part)             |
| sad      | 1 inner brow raiser, 4 brow lowerer, 15 lip corner depressor, (17 chin raiser) |
| surprise | 1, 2 outer brow raiser, 5 upper lid raiser, 26 jaw drop (+25)    |
| fear     | 1, 2, 4, 5, 7 lid tightener, 20 lip stretcher, 26 (+25)          |
| anger    | 4, 5, 7, 23 lip tightener (+17)                                  |
| disgust  | 9 nose wrinkler, 10 upper lip raiser, (15, 17)                   |
| neutral  | none                                                             |

`sample_expression` draws one face's AUs: a global intensity (a share of faces are faint), per-AU
multiplicative jitter, small spurious activations, and a share of blends with a confusable class
(fear/surprise, disgust/anger, sad/neutral, ...) so that classes overlap as real ones do.
AU14 (dimpler, one-sided here) is rendered too; it is used for AffectNet's "contempt" rows only.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from syntfer.core import labels as L

AU_NAMES: tuple[str, ...] = ("AU1", "AU2", "AU4", "AU5", "AU6", "AU7", "AU9", "AU10", "AU12", "AU14",
                             "AU15", "AU17", "AU20", "AU23", "AU25", "AU26")
"""Every AU the renderer draws (intensity 0..5)."""

AU_DESCRIPTIONS: dict[str, str] = {
    "AU1": "inner brow raiser", "AU2": "outer brow raiser", "AU4": "brow lowerer", "AU5": "upper lid raiser",
    "AU6": "cheek raiser", "AU7": "lid tightener", "AU9": "nose wrinkler", "AU10": "upper lip raiser",
    "AU12": "lip corner puller", "AU14": "dimpler (one-sided)", "AU15": "lip corner depressor",
    "AU17": "chin raiser", "AU20": "lip stretcher", "AU23": "lip tightener", "AU25": "lips part",
    "AU26": "jaw drop",
}

AU_MAX = 5.0

EXPRESSION_AUS: dict[str, dict[str, float]] = {
    "anger": {"AU4": 3.6, "AU5": 1.4, "AU7": 2.6, "AU23": 3.2, "AU17": 1.0},
    "disgust": {"AU9": 3.6, "AU10": 3.0, "AU4": 1.2, "AU15": 1.0, "AU17": 1.0, "AU25": 0.6},
    "fear": {"AU1": 2.8, "AU2": 2.0, "AU4": 2.2, "AU5": 3.4, "AU7": 1.2, "AU20": 3.4, "AU25": 2.2, "AU26": 1.4},
    "happy": {"AU6": 2.8, "AU12": 4.0, "AU25": 1.6},
    "neutral": {},
    "sad": {"AU1": 3.0, "AU4": 2.2, "AU15": 3.2, "AU17": 1.8},
    "surprise": {"AU1": 3.2, "AU2": 3.2, "AU5": 3.2, "AU25": 2.0, "AU26": 3.4},
}
"""Canonical class -> prototype AU intensities (absent AUs are 0)."""

# Which class a blended face borrows from (the confusions real FER data shows).
CONFUSABLE: dict[str, tuple[str, ...]] = {
    "anger": ("disgust", "sad", "neutral"),
    "disgust": ("anger", "sad", "fear"),
    "fear": ("surprise", "sad"),
    "happy": ("surprise", "neutral"),
    "neutral": ("sad", "happy", "anger"),
    "sad": ("neutral", "fear", "anger"),
    "surprise": ("fear", "happy"),
}

# AffectNet codes outside the 7 classes (7 contempt, 8 none, 9 uncertain): prototypes for rendering them.
EXTRA_AUS: dict[str, dict[str, float]] = {
    "contempt": {"AU14": 3.0, "AU12": 0.6},
    "none": {},
    "uncertain": {},
}


def zero_aus() -> dict[str, float]:
    """All AUs at 0 (a neutral face)."""
    return {a: 0.0 for a in AU_NAMES}


def validate_aus(aus: Mapping[str, float]) -> dict[str, float]:
    """Full AU dict (missing AUs = 0); raises ValueError for unknown names or values outside 0..5."""
    out = zero_aus()
    for k, v in aus.items():
        if k not in out:
            raise ValueError(f"unknown action unit {k!r}; expected one of {list(AU_NAMES)}")
        fv = float(v)
        if not (0.0 <= fv <= AU_MAX) or not np.isfinite(fv):
            raise ValueError(f"{k} intensity {v!r} outside [0, {AU_MAX}]")
        out[k] = fv
    return out


def sample_expression(label: str, rng: np.random.Generator, *, intensity: tuple[float, float] = (0.65, 1.25),
                      faint_share: float = 0.15, blend_share: float = 0.12, jitter: float = 0.25,
                      spurious: float = 0.35) -> dict[str, float]:
    """One face's AU intensities for class `label` (canonical name or alias; also 'contempt'/'none'/'uncertain').

    intensity: range of the global scale applied to the prototype; faint_share: probability that the
    face is faint (scale 0.2..0.5); blend_share: probability of mixing in 20..45 % of a confusable class;
    jitter: sd of the per-AU log-normal factor; spurious: max intensity of random small activations.
    """
    if label in EXTRA_AUS:
        name, proto = label, dict(EXTRA_AUS[label])
    else:
        name = L.canonical(label)
        proto = dict(EXPRESSION_AUS[name])
    scale = rng.uniform(0.2, 0.5) if rng.random() < faint_share else rng.uniform(*intensity)
    out = zero_aus()
    for k, v in proto.items():
        out[k] = v * scale * float(np.exp(rng.normal(0.0, jitter)))
    if name in CONFUSABLE and rng.random() < blend_share:
        other = CONFUSABLE[name][int(rng.integers(len(CONFUSABLE[name])))]
        w = rng.uniform(0.2, 0.45)
        for k in out:
            out[k] = (1 - w) * out[k] + w * EXPRESSION_AUS[other].get(k, 0.0) * rng.uniform(0.6, 1.1)
    if name == "none":  # AffectNet 'none': some random, non-prototypical activity
        for k in rng.choice(AU_NAMES, size=3, replace=False):
            out[str(k)] += rng.uniform(0.5, 2.5)
    n_spurious = int(rng.integers(0, 4))
    for k in rng.choice(AU_NAMES, size=n_spurious, replace=False):
        out[str(k)] += rng.uniform(0.0, spurious)
    return {k: float(np.clip(v, 0.0, AU_MAX)) for k, v in out.items()}


def nearest_prototype(aus: Mapping[str, float]) -> str:
    """The class whose (unit-scaled) prototype is nearest to `aus` — a crude AU-space 'truth' check."""
    vec = np.array([aus.get(a, 0.0) for a in AU_NAMES])
    best, dist = "neutral", np.inf
    for c, p in EXPRESSION_AUS.items():
        d = float(np.linalg.norm(vec - np.array([p.get(a, 0.0) for a in AU_NAMES])))
        if d < dist:
            best, dist = c, d
    return best
