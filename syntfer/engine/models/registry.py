"""A timm-style model registry: `register_model`, `create_model`, `list_models`.

Every registered builder takes ``num_classes`` and keyword options and returns an ``nn.Module``
whose ``cfg`` attribute is a `ModelConfig` (input size, normalisation, label names), from which
data transforms are derived. Weight files are loaded only when ``pretrained`` is given.
"""
from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Callable
from typing import Any

from torch import nn

from syntfer.core import labels as L

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass
class ModelConfig:
    """What a model expects: everything transforms and checkpoints need to know."""

    name: str
    input_size: tuple[int, int, int] = (3, 112, 112)  # C, H, W fed to forward()
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"
    num_classes: int = L.NUM_CLASSES
    labels: tuple[str, ...] = L.CLASSES
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)  # builder options, for rebuilding

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        d = dict(d)
        for k in ("input_size", "mean", "std", "labels"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register a builder under its function name."""
    name = fn.__name__
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} registered twice")
    _REGISTRY[name] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def create_model(name: str, num_classes: int = L.NUM_CLASSES, pretrained: str | None = None,
                 **kwargs: Any) -> nn.Module:
    """Build a registered model (random init unless `pretrained` names a weight file)."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered: {list_models()}")
    model = _REGISTRY[name](num_classes=num_classes, pretrained=pretrained, **kwargs)
    if not isinstance(getattr(model, "cfg", None), ModelConfig):
        raise TypeError(f"model builder {name!r} did not set a ModelConfig on .cfg")
    return model
