"""What a classifier's logits mean: `probabilities(logits, temperature)`, the project's one softmax.

Every class probability in syntfer comes from here: the judge's calibrated probabilities
(`syntfer.instruments.judge.Judge`), the calibration of an instrument before and after its temperature
(`syntfer.instruments.build.calibrate`), a pseudo-label teacher's scores (`syntfer.strategies.pseudolabel.teachers`),
the engine's predictions (`syntfer.engine.evaluation.predict`) and the attribute reader
(`syntfer.instruments.attributes`). The temperature divides the logits (Guo et al. 2017); 1.0 leaves them as they are.

The arithmetic follows the array it is given, so a number computed before this module existed is computed bit for bit
the same: a torch tensor goes through ``torch.softmax`` in its own dtype and device; a numpy array (or anything
array-like) through the max-shifted ``exp(z - max z) / sum`` in numpy, in its own floating dtype (float64 for
integers). The two agree to rounding (about 1e-7 in float32), not bit for bit.
"""
from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def probabilities(logits: Array, temperature: float = 1.0, dim: int = 1) -> Array:
    """softmax(logits / temperature) along `dim` (the class axis), as the same kind of array it was given."""
    if not temperature > 0:
        raise ValueError(f"temperature {temperature!r}: expected > 0")
    if isinstance(logits, torch.Tensor):
        return torch.softmax(logits / temperature, dim)
    z = np.asarray(logits)
    if not np.issubdtype(z.dtype, np.floating):
        z = z.astype(np.float64)
    z = z / temperature
    e = np.exp(z - z.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)
