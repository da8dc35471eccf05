"""A timm-style model registry: `register_model`, `create_model`, `list_models`, `model_options`.

Every registered builder takes ``num_classes`` and keyword options and returns an ``nn.Module``
whose ``cfg`` attribute is a `ModelConfig` (input size, normalisation, label names), from which
data transforms are derived. Weight files are loaded only when ``pretrained`` is given.

A builder's options are its keyword parameters (`builder_options`); `model_options` turns a run's option
spec (``train.model_kwargs``: options *per model*, ``{"cnn_tiny": {"img_size": 48}, "ir50": {}}``) into the
options of the chosen model, refusing an option that model does not take, naming both.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import inspect
import json
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from syntfer.core import labels as L

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_OPEN: set[str] = set()  # builders that pass unknown options on to another library (timm): not checked by name
NOT_OPTIONS = ("num_classes", "pretrained")  # builder parameters a run sets elsewhere (train.pretrained)

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


def register_model(fn: Callable[..., nn.Module] | None = None, *,
                   open_options: bool = False) -> Callable[..., nn.Module]:
    """Decorator: register a builder under its function name. ``@register_model(open_options=True)``: the
    builder forwards options it does not name to another library (timm), so `model_options` checks only the
    types of the ones it names."""
    def register(f: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = f.__name__
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = f
        if open_options:
            _OPEN.add(name)
        return f

    return register if fn is None else register(fn)


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


class ModelOptionsError(ValueError):
    """Model options that do not fit the model: the message names the option, the model and what it takes."""


def builder_options(name: str) -> dict[str, inspect.Parameter]:
    """The options model `name` takes: its builder's keyword parameters, less `NOT_OPTIONS`."""
    if name not in _REGISTRY:
        raise ModelOptionsError(f"unknown model {name!r}; registered: {list_models()}")
    params = inspect.signature(_REGISTRY[name]).parameters
    return {k: p for k, p in params.items()
            if k not in NOT_OPTIONS and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _type_problem(param: inspect.Parameter, value: Any) -> str | None:
    """Why `value` cannot be this option (its default's type: bool, int, float, str), or None. An option whose
    default is None or a container is not checked."""
    default = param.default
    if default is param.empty or default is None:
        return None
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif isinstance(default, str):
        ok = isinstance(value, str)
    else:
        return None
    return None if ok else f"expected {type(default).__name__} like its default {default!r}"


def check_model_options(name: str, options: Mapping[str, Any], where: str = "model options") -> dict[str, Any]:
    """`options` as a dict after checking them against model `name`'s builder (`builder_options`): an option it
    does not take, or of another type than its default, raises `ModelOptionsError` naming option and model."""
    if not isinstance(options, Mapping):
        raise ModelOptionsError(f"{where}: options of model {name!r} must be a JSON object; got {options!r}")
    accepted = builder_options(name)
    reserved = sorted(k for k in options if k in NOT_OPTIONS)
    if reserved:
        raise ModelOptionsError(f"{where}: {reserved} of model {name!r} is not a builder option here (the number of "
                                "classes is fixed; weights go through train.pretrained / --pretrained)")
    unknown = sorted(k for k in options if k not in accepted)
    if unknown and name not in _OPEN:
        raise ModelOptionsError(f"{where}: model {name!r} does not take the option(s) {unknown}; it takes "
                                f"{sorted(accepted)}")
    for k, v in options.items():
        why = _type_problem(accepted[k], v) if k in accepted else None
        if why:
            raise ModelOptionsError(f"{where}: option {k}={v!r} of model {name!r}: {why}")
    return dict(options)


def model_options(name: str, spec: str | Mapping[str, Any] | None, where: str = "model_kwargs") -> dict[str, Any]:
    """The builder options of model `name` from `spec` (a JSON string or a mapping), checked against its builder.

    `spec` is either *per model* - an object whose keys are registered model names, each an object of that
    model's options: ``{"cnn_tiny": {"img_size": 48, "head": "flatten"}, "ir50": {}}`` (params.yaml's form: the
    options of one model never reach another; every entry is checked, the chosen model's is returned, a model
    without an entry gets its builder's defaults) - or *flat*, the options of `name` itself
    (``{"img_size": 48}``: the form of a one-model command line such as ``syntfer train --model-kwargs``). An
    object mixing model names with other keys is refused. Empty or None: no options."""
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return {}
    if isinstance(spec, str):
        try:
            parsed = json.loads(spec)
        except ValueError as e:
            raise ModelOptionsError(f"{where}={spec!r} is not JSON ({e})") from None
    else:
        parsed = spec
    if not isinstance(parsed, Mapping):
        raise ModelOptionsError(f"{where}={spec!r} is not a JSON object")
    models = [k for k in parsed if k in _REGISTRY]
    if not models:  # flat: the chosen model's own options
        return check_model_options(name, parsed, where)
    if len(models) != len(parsed):
        others = sorted(k for k in parsed if k not in _REGISTRY)
        raise ModelOptionsError(f"{where}: {others} are neither registered models nor usable next to the per-model "
                                f"entries {models}; write options per model, e.g. "
                                f'{{"{name}": {{"img_size": 112}}}} (registered models: {list_models()})')
    checked = {m: check_model_options(m, opts, f"{where}[{m!r}]") for m, opts in parsed.items()}
    if name not in _REGISTRY:
        builder_options(name)  # raises: unknown model
    return checked.get(name, {})
