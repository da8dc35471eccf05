"""Guards that stop a long job with a message instead of letting it write garbage: a loss that is not a finite
number (NaN or ±inf) ends training before the optimiser step that would spread it into the weights, so the
last checkpoint on disk stays the last good state."""
from __future__ import annotations

import math
from typing import Any


class NonFiniteLossError(RuntimeError):
    """A training loss became NaN or infinite; the message names the job, the step and the value."""


def check_finite(value: Any, where: str) -> float:
    """`value` (a tensor or number) as a float; `NonFiniteLossError` naming `where` if it is NaN or infinite."""
    v = float(value.detach().float().sum().item()) if hasattr(value, "detach") else float(value)
    if not math.isfinite(v):
        raise NonFiniteLossError(f"{where} is {v} (not a finite number); stopped before the optimiser step, the last "
                                 "checkpoint is the last good state - lower the learning rate or check the inputs")
    return v
