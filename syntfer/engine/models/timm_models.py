"""Any timm architecture through syntfer's registry (random init; weights only from local files).

``create_model("timm", arch="resnet18", img_size=64)`` builds ``timm.create_model("resnet18", num_classes=…)``
with ``pretrained=False`` (no hub access here) and takes mean/std/interpolation from timm's pretrained config,
so transforms match published weights when the user supplies them (``pretrained=PATH``: a local state dict
loaded by name and shape; the classifier is skipped when its class count differs). A few common
architectures are also registered under their own names (``timm_resnet18`` …).
"""
from __future__ import annotations

from typing import Any

from torch import nn

from syntfer.engine.models.checkpoint import load_pretrained
from syntfer.engine.models.registry import ModelConfig, register_model


def build_timm(arch: str, num_classes: int, pretrained: str | None, img_size: int, name: str,
               **timm_kwargs: Any) -> nn.Module:
    """Create timm model `arch` with `num_classes` outputs and a syntfer `ModelConfig` on ``.cfg``."""
    import timm as timm_lib  # lazy: the registry is imported by every notebook, most never build a timm model
    if arch not in timm_lib.list_models():
        raise KeyError(f"unknown timm architecture {arch!r} (see timm.list_models())")
    model = timm_lib.create_model(arch, pretrained=False, num_classes=num_classes, **timm_kwargs)
    pcfg = model.pretrained_cfg
    kwargs: dict[str, Any] = {"img_size": img_size, **timm_kwargs}
    if name == "timm":
        kwargs["arch"] = arch
    model.cfg = ModelConfig(name=name, input_size=(3, img_size, img_size), mean=tuple(pcfg["mean"]),
                            std=tuple(pcfg["std"]), interpolation=pcfg.get("interpolation", "bilinear"),
                            num_classes=num_classes, kwargs=kwargs)
    if pretrained is not None:
        model.pretrained_report = load_pretrained(model, pretrained)
    return model


@register_model(open_options=True)  # unknown options go to timm.create_model
def timm(num_classes: int = 7, pretrained: str | None = None, arch: str | None = None, img_size: int = 112,
         **timm_kwargs: Any) -> nn.Module:
    """Any timm architecture: ``create_model("timm", arch="convnext_atto")``."""
    if not arch:
        raise ValueError("model 'timm' needs arch=<timm architecture name>, e.g. arch='resnet18'")
    return build_timm(arch, num_classes, pretrained, img_size, "timm", **timm_kwargs)


@register_model(open_options=True)  # unknown options go to timm.create_model
def timm_resnet18(num_classes: int = 7, pretrained: str | None = None, img_size: int = 112,
                  **timm_kwargs: Any) -> nn.Module:
    """timm ResNet-18."""
    return build_timm("resnet18", num_classes, pretrained, img_size, "timm_resnet18", **timm_kwargs)


@register_model(open_options=True)  # unknown options go to timm.create_model
def timm_mobilenetv3_small(num_classes: int = 7, pretrained: str | None = None, img_size: int = 112,
                           **timm_kwargs: Any) -> nn.Module:
    """timm MobileNetV3-Small (width 1.0)."""
    return build_timm("mobilenetv3_small_100", num_classes, pretrained, img_size, "timm_mobilenetv3_small",
                      **timm_kwargs)
