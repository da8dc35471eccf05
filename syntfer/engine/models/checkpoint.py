"""Checkpoints: syntfer's own (``weights.pt`` state_dict + ``config.json``) and published weights by name.

- `save_checkpoint(model, directory, **meta)` writes ``weights.pt`` (a plain state_dict) and ``config.json``
  (the model's `ModelConfig` plus `meta`) atomically; `load_checkpoint(directory)` rebuilds the model
  through the registry and loads the weights strictly.
- `load_pretrained(model, path)` loads a published checkpoint by tensor name and shape: it unwraps
  ``state_dict`` / ``model_state_dict`` / ``model`` containers, strips ``module.`` (DataParallel) and
  ``backbone.`` prefixes when that makes a name match, and returns a `LoadReport` of matched and skipped
  tensors. A checkpoint that fills less than ``min_loaded`` (default half) of the model's tensors is weights
  of another architecture and raises, naming the file, the count and the architecture; ``min_loaded=0``
  loads a part on purpose (a checkpoint matching nothing always raises). A file that is not a torch
  state dict (text, an image, a bare tensor) raises `CheckpointError` naming it.
"""
from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from syntfer.engine.models.registry import ModelConfig, create_model
from syntfer.core.storage import StateFileError, load_torch, save_torch, write_json

WEIGHTS_FILE = "weights.pt"
CONFIG_FILE = "config.json"
CONTAINER_KEYS = ("state_dict", "model_state_dict", "model")
STRIP_PREFIXES = ("module.", "backbone.", "model.")
MIN_LOADED = 0.5  # load_pretrained: least share of the model's tensors a checkpoint must fill


class CheckpointError(ValueError):
    """A weight file that cannot be loaded into the model it was given to."""


@dataclasses.dataclass
class LoadReport:
    """What `load_pretrained` did: checkpoint names matched (with their model names) and everything left out."""

    source: str
    matched: dict[str, str]  # checkpoint key -> model key
    unexpected: list[str]  # checkpoint keys with no model tensor of that name
    shape_mismatch: dict[str, tuple[tuple[int, ...], tuple[int, ...]]]  # ckpt key -> (ckpt shape, model shape)
    missing: list[str]  # model keys not loaded (kept at their initial values)

    @property
    def skipped(self) -> list[str]:
        """Checkpoint keys not loaded (unexpected or wrong shape)."""
        return sorted(self.unexpected + list(self.shape_mismatch))

    def summary(self) -> str:
        return (f"{self.source}: {len(self.matched)} tensors matched, {len(self.unexpected)} unexpected, "
                f"{len(self.shape_mismatch)} shape mismatches, {len(self.missing)} model tensors not loaded")


def save_checkpoint(model: nn.Module, directory: str | os.PathLike, **meta: Any) -> Path:
    """Write ``weights.pt`` (state_dict) and ``config.json`` (``{"model": ModelConfig, "meta": meta}``)."""
    cfg = getattr(model, "cfg", None)
    if not isinstance(cfg, ModelConfig):
        raise TypeError(f"cannot checkpoint {type(model).__name__}: it has no ModelConfig on .cfg")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in _unwrap_module(model).state_dict().items()}
    save_torch(directory / WEIGHTS_FILE, state)
    # config last: a directory with a config.json always has complete weights next to it
    write_json(directory / CONFIG_FILE, {"model": cfg.to_dict(), "meta": meta})
    return directory


def read_checkpoint_config(directory: str | os.PathLike) -> tuple[ModelConfig, dict[str, Any]]:
    """The `ModelConfig` and meta stored in a checkpoint directory."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint config (expected {CONFIG_FILE} next to {WEIGHTS_FILE})")
    with open(path) as f:
        data = json.load(f)
    if "model" not in data:
        raise CheckpointError(f"{path}: missing 'model' section; keys are {sorted(data)}")
    return ModelConfig.from_dict(data["model"]), dict(data.get("meta", {}))


def load_checkpoint(directory: str | os.PathLike, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model from ``config.json`` via the registry and load ``weights.pt`` strictly."""
    directory = Path(directory)
    cfg, meta = read_checkpoint_config(directory)
    model = create_model(cfg.name, num_classes=cfg.num_classes, **cfg.kwargs)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: checkpoint weights missing (a checkpoint folder holds {CONFIG_FILE} and "
                                f"{WEIGHTS_FILE}, as save_checkpoint writes them)")
    state = load_torch(weights, "checkpoint weights", expected=f"the {cfg.name} state dict save_checkpoint writes",
                       map_location=map_location)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        raise CheckpointError(f"{weights}: does not fit {cfg.name} built from {directory / CONFIG_FILE}: "
                              f"missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shapes {wrong[:5]}")
    model.load_state_dict(state, strict=True)
    model.cfg = cfg  # labels and normalisation as saved
    model.checkpoint_meta = meta  # type: ignore[attr-defined]
    return model.to(map_location)


def read_state_dict(source: str | os.PathLike | Mapping[str, Any], map_location: str | torch.device = "cpu",
                    expected: str = "a state dict of tensors saved with torch.save") -> dict[str, torch.Tensor]:
    """A flat name → tensor dict from a file or mapping, unwrapping ``state_dict``/``model_state_dict``/``model``.

    `expected` (what the file should be) goes into the message when the file is not a torch file."""
    if isinstance(source, Mapping):
        obj: Any = source
        where = "<state dict>"
    else:
        where = str(source)
        if not Path(source).exists():
            raise FileNotFoundError(f"{where}: checkpoint file not found")
        try:
            obj = load_torch(source, "weight file", expected=expected, map_location=map_location)
        except StateFileError as e:
            raise CheckpointError(str(e)) from None
    for _ in range(3):  # containers nest at most a couple of levels in published files
        if isinstance(obj, Mapping):
            inner = next((obj[k] for k in CONTAINER_KEYS if isinstance(obj.get(k), Mapping)), None)
            if inner is not None and not any(isinstance(v, torch.Tensor) for v in obj.values()):
                obj = inner
                continue
        break
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{where}: holds a {type(obj).__name__}, not a mapping of names to tensors; "
                              f"expected {expected}")
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise CheckpointError(f"{where}: contains no tensors (top-level keys: {sorted(map(str, obj))[:10]}); "
                              f"expected {expected}")
    return state


def _candidates(key: str) -> list[str]:
    """Names a checkpoint key may have in the model: itself, then with wrapper prefixes stripped."""
    out = [key]
    stripped = key
    changed = True
    while changed:
        changed = False
        for p in STRIP_PREFIXES:
            if stripped.startswith(p):
                stripped = stripped[len(p):]
                out.append(stripped)
                changed = True
    return out


def architecture(model: nn.Module) -> str:
    """The registry name and class of a model (``ir_tiny (IRClassifier)``), or its class alone (a sub-module)."""
    target = _unwrap_module(model)
    cfg = getattr(target, "cfg", None)
    name = type(target).__name__
    return f"{cfg.name} ({name})" if isinstance(cfg, ModelConfig) else name


def load_pretrained(model: nn.Module, source: str | os.PathLike | Mapping[str, Any], strict: bool = False,
                    map_location: str | torch.device = "cpu", min_loaded: float = MIN_LOADED) -> LoadReport:
    """Copy tensors whose names (after prefix stripping) and shapes match the model's; report the rest.

    ``strict=True`` also raises when any checkpoint tensor or model tensor is left out. A checkpoint that fills
    less than `min_loaded` of the model's tensors (weights of another architecture) raises `CheckpointError`;
    ``min_loaded=0`` allows a partial load, but a checkpoint matching no model tensor always raises.
    """
    where = "<state dict>" if isinstance(source, Mapping) else str(source)
    target = _unwrap_module(model)
    arch = architecture(target)
    state = read_state_dict(source, map_location, expected=f"{arch} weights (a state dict saved with torch.save)")
    model_state = target.state_dict()
    matched: dict[str, str] = {}
    unexpected: list[str] = []
    mismatch: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    new_values: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = next((c for c in _candidates(key) if c in model_state), None)
        if name is None:
            unexpected.append(key)
        elif tuple(model_state[name].shape) != tuple(value.shape):
            mismatch[key] = (tuple(value.shape), tuple(model_state[name].shape))
        elif name in new_values:
            raise CheckpointError(f"{where}: two checkpoint tensors map to model tensor {name!r}")
        else:
            matched[key] = name
            new_values[name] = value
    missing = sorted(set(model_state) - set(new_values))
    report = LoadReport(where, matched, sorted(unexpected), mismatch, missing)
    if not matched:
        raise CheckpointError(
            f"{where}: no tensor matches {arch} by name and shape: 0 of its {len(model_state)} tensors would load "
            f"(checkpoint keys e.g. {sorted(state)[:3]}, model keys e.g. {sorted(model_state)[:3]}, "
            f"{len(mismatch)} name matches with wrong shapes); expected {arch} weights")
    if len(new_values) < min_loaded * len(model_state):
        raise CheckpointError(
            f"{where}: only {len(new_values)} of the {len(model_state)} tensors of {arch} match by name and shape "
            f"({len(unexpected)} checkpoint tensors have no such name, {len(mismatch)} another shape): expected "
            f"{arch} weights filling at least {min_loaded:.0%} of its tensors (weights of another architecture?); "
            "min_loaded=0 loads a part on purpose")
    if strict and (unexpected or mismatch or missing):
        raise CheckpointError(f"{report.summary()} (strict): unexpected {report.unexpected[:5]}, "
                              f"wrong shapes {list(mismatch.items())[:3]}, not loaded {missing[:5]}")
    with torch.no_grad():
        for name, value in new_values.items():
            model_state[name].copy_(value.to(model_state[name].dtype))
    return report


def _unwrap_module(model: nn.Module) -> nn.Module:
    """The underlying module of DataParallel/DDP/torch.compile wrappers."""
    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model
