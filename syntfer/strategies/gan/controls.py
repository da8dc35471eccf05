"""Expression control values for GANmut-style editors (docs/method.md §5).

GANmut's 2-D expression code is indexed in AffectNet order (0 neutral, 1 happy, 2 sad, 3 surprise,
4 fear, 5 disgust, 6 anger): the linear model's ``axes.weight`` rows are classes 1..6 (neutral sits at
the origin) and the Gaussian model's ``mu.weight`` rows are classes 0..6. Everything outside this module
uses canonical class names; `GANMUT_ORDER` is the one place that knows the code order.

Two control sets, as in the paper:
- **F** (fixed): one code per class. For an official Gaussian GANmut checkpoint these are the paper's
  (x, y) points; for an editor trained here they are its learned centres (Gaussian) or its learned axis at
  ρ = `OWN_FIXED_RHO` (linear), because the paper's numbers belong to the official weights' code space.
- **V** (variable intensity): θ fixed per class (the paper's angles for official linear weights, the learned
  axis angle otherwise), ρ ~ U(0.5, 1.2); neutral: θ ~ U(−π, π), ρ ~ U(0, 0.1).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np

from syntfer.core import labels as L

GANMUT_ORDER: tuple[str, ...] = L.AFFECTNET7_ORDER  # neutral, happy, sad, surprise, fear, disgust, anger

# Paper's "F" values: Gaussian-model (x, y) per class (official GANmut weights' code space).
PAPER_F_XY: dict[str, tuple[float, float]] = {
    "neutral": (-0.2812, -0.4329),
    "happy": (0.3152, -0.1149),
    "sad": (-1.0, -0.6416),
    "surprise": (0.9617, -0.4510),
    "fear": (-0.1805, -1.0),
    "disgust": (-0.9823, -0.9984),
    "anger": (0.8572, -0.9997),
}
# Paper's "V" angles (degrees) of the linear model's axes (official weights' code space).
PAPER_V_THETA_DEG: dict[str, float] = {
    "happy": 7.3, "sad": -178.4, "surprise": 97.8, "fear": 133.3, "disgust": -135.5, "anger": -102.7,
}
V_RHO_RANGE: tuple[float, float] = (0.5, 1.2)
V_NEUTRAL_RHO_RANGE: tuple[float, float] = (0.0, 0.1)
OWN_FIXED_RHO = 1.0


class ControlError(ValueError):
    """A control value request that does not fit the editor's control model."""


@dataclasses.dataclass(frozen=True)
class ControlValue:
    """One expression code: Cartesian (x, y) and its polar form (ρ, θ in radians)."""

    label: str
    x: float
    y: float
    variant: str  # "F" or "V" (or "manual")

    @property
    def rho(self) -> float:
        return float(math.hypot(self.x, self.y))

    @property
    def theta(self) -> float:
        return float(math.atan2(self.y, self.x))

    @classmethod
    def from_polar(cls, label: str, rho: float, theta: float, variant: str) -> "ControlValue":
        return cls(label, float(rho * math.cos(theta)), float(rho * math.sin(theta)), variant)

    def as_row(self) -> dict[str, float | str]:
        return {"control_x": self.x, "control_y": self.y, "rho": self.rho, "theta": self.theta,
                "variant": self.variant}


@dataclasses.dataclass(frozen=True)
class ControlSpace:
    """Where each class lives in an editor's code space.

    `kind` is 'linear' (per-class unit axis angles, neutral at the origin) or 'gaussian' (per-class centres).
    For a linear space `angles` maps the six non-neutral classes to radians; for a Gaussian space `centres`
    maps all seven classes to (x, y). Gaussian spaces also carry angles (the centres' polar angles) so V
    sampling works for both.
    """

    kind: str
    angles: Mapping[str, float]
    centres: Mapping[str, tuple[float, float]] | None = None
    source: str = "own"  # 'paper' (official weights) or 'own' (learned here)

    def __post_init__(self) -> None:
        if self.kind not in ("linear", "gaussian"):
            raise ControlError(f"control kind {self.kind!r}; expected 'linear' or 'gaussian'")
        need = [c for c in L.CLASSES if c != "neutral" and c not in self.angles]
        if need:
            raise ControlError(f"{self.kind} control space lacks angles for {need}")
        if self.kind == "gaussian":
            if self.centres is None or sorted(self.centres) != sorted(L.CLASSES):
                raise ControlError(f"gaussian control space needs centres for all of {list(L.CLASSES)}")

    def fixed(self, label: str) -> ControlValue:
        """The F control value of a class."""
        label = L.canonical(label)
        if self.kind == "gaussian":
            x, y = self.centres[label]  # type: ignore[index]
            return ControlValue(label, float(x), float(y), "F")
        if label == "neutral":
            return ControlValue(label, 0.0, 0.0, "F")
        return ControlValue.from_polar(label, OWN_FIXED_RHO, self.angles[label], "F")

    def variable(self, label: str, rng: np.random.Generator) -> ControlValue:
        """A V control value: class angle, ρ ~ U(0.5, 1.2); neutral: random angle, ρ ~ U(0, 0.1)."""
        label = L.canonical(label)
        if label == "neutral":
            theta = float(rng.uniform(-math.pi, math.pi))
            rho = float(rng.uniform(*V_NEUTRAL_RHO_RANGE))
        else:
            theta = float(self.angles[label])
            rho = float(rng.uniform(*V_RHO_RANGE))
        return ControlValue.from_polar(label, rho, theta, "V")

    def at(self, label: str, rho: float) -> ControlValue:
        """Class angle at a chosen intensity ρ (intensity curves); neutral is the origin scaled by nothing."""
        label = L.canonical(label)
        if label == "neutral":
            return ControlValue(label, 0.0, 0.0, "manual")
        return ControlValue.from_polar(label, rho, self.angles[label], "manual")

    def to_dict(self) -> dict:
        return {"kind": self.kind, "source": self.source, "angles": dict(self.angles),
                "centres": None if self.centres is None else {k: list(v) for k, v in self.centres.items()}}


def paper_space(kind: str) -> ControlSpace:
    """The paper's control values for official GANmut weights: 'gaussian' → F points, 'linear' → V angles."""
    angles = {c: math.radians(d) for c, d in PAPER_V_THETA_DEG.items()}
    if kind == "linear":
        return ControlSpace("linear", angles, None, source="paper")
    if kind == "gaussian":
        centre_angles = {c: math.atan2(y, x) for c, (x, y) in PAPER_F_XY.items() if c != "neutral"}
        return ControlSpace("gaussian", centre_angles, dict(PAPER_F_XY), source="paper")
    raise ControlError(f"control kind {kind!r}; expected 'linear' or 'gaussian'")


def variable_codes(labels: list[str], space: ControlSpace, seeds: list[int]) -> list[ControlValue]:
    """V control values for many samples, one per-sample generator each (reproducible from the seed)."""
    if len(labels) != len(seeds):
        raise ControlError(f"{len(labels)} labels but {len(seeds)} seeds")
    return [space.variable(lab, np.random.default_rng(s)) for lab, s in zip(labels, seeds)]
