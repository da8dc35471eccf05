"""Seeding: one helper for global RNGs and per-sample generators for synthesis."""
from __future__ import annotations

import hashlib
import os
import random

import numpy as np


def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (all devices). `deterministic` also asks torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:
        import torch
    except ImportError:  # seeding is also used by the torch-free world renderer
        return
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def derive_seed(*parts: object) -> int:
    """A stable 63-bit seed from any parts (e.g. base seed, dataset name, sample index).

    Uses SHA-256 of the parts' reprs, so it does not depend on PYTHONHASHSEED or process.
    """
    h = hashlib.sha256("\x1f".join(repr(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:8], "little") & (2**63 - 1)


def numpy_rng(*parts: object) -> np.random.Generator:
    """A per-sample NumPy generator seeded by `derive_seed(*parts)`."""
    return np.random.default_rng(derive_seed(*parts))


def torch_generator(seed: int):
    """A per-sample CPU torch.Generator (diffusers convention: CPU generators reproduce across devices)."""
    import torch  # lazy: the world renderer seeds without torch

    return torch.Generator("cpu").manual_seed(int(seed))
