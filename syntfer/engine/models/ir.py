"""IR (improved-residual) networks: the face-recognition IR-50 that POSTER and upstream use, and small CPU nets.

State-dict names follow face.evoLVe / InsightFace (``input_layer.*``, ``body.N.shortcut_layer.*``,
``body.N.res_layer.*``, ``output_layer.*``), so published IR-50 checkpoints such as POSTER's ``ir50.pth``
load by name (`syntfer.engine.models.checkpoint.load_pretrained`).

Registered models
- ``ir50``: upstream's classifier. IR-50 with stage 4 removed (64×3, 128×4, 256×14 bottleneck_IR units),
  input resized to 112 with nearest interpolation, the body's (B,256,14,14) output reinterpreted in memory
  as 49×1024 (as upstream's ``x.view(-1, 49, 1024)``), averaged over the 49 rows, then Linear(1024, C).
- ``ir50_gap``: the clean variant: global average over space of the 256 channels, then Linear(256, C).
- ``ir_tiny`` (48 px) and ``ir_small`` (64 px): narrow, shallow IR nets for the CPU default pipeline.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from syntfer.engine.models.checkpoint import load_pretrained
from syntfer.engine.models.registry import IMAGENET_MEAN, IMAGENET_STD, ModelConfig, register_model

# IR-50 with its 4th stage (512×3) removed, as POSTER and upstream use it.
IR50_STAGES: tuple[tuple[int, int], ...] = ((64, 3), (128, 4), (256, 14))
SMALL_MEAN = (0.5, 0.5, 0.5)
SMALL_STD = (0.5, 0.5, 0.5)


class StridedIdentity(nn.Module):
    """``MaxPool2d(kernel_size=1, stride=s)`` without the pooling kernel: a strided view of the input."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = int(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x
        return x[:, :, :: self.stride, :: self.stride]


class BottleneckIR(nn.Module):
    """bottleneck_IR unit: BN → 3×3 conv → PReLU → 3×3 conv(stride) → BN, plus a shortcut.

    The shortcut is a strided identity (upstream: MaxPool2d(1, stride), no parameters) when the width is
    unchanged, otherwise 1×1 conv(stride) + BN. Submodule indices match face.evoLVe's names.
    """

    def __init__(self, in_channels: int, depth: int, stride: int) -> None:
        super().__init__()
        if in_channels == depth:
            self.shortcut_layer: nn.Module = StridedIdentity(stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channels, depth, 1, stride, bias=False), nn.BatchNorm2d(depth))
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


def build_body(stem_width: int, stages: Sequence[tuple[int, int]]) -> nn.Sequential:
    """Stack IR units stage by stage; the first unit of every stage has stride 2 (face.evoLVe's get_block)."""
    units: list[nn.Module] = []
    in_ch = stem_width
    for depth, num_units in stages:
        if num_units < 1:
            raise ValueError(f"IR stage ({depth}, {num_units}): a stage needs at least one unit")
        units.append(BottleneckIR(in_ch, depth, 2))
        units.extend(BottleneckIR(depth, depth, 1) for _ in range(num_units - 1))
        in_ch = depth
    return nn.Sequential(*units)


class IRBackbone(nn.Module):
    """IR body with face.evoLVe naming. ``forward`` returns the body's feature map (B, C, H, W).

    ``keep_output_layer`` adds the face-recognition embedding head (BN2d(512), Dropout, Flatten,
    Linear(512·7·7, 512), BN1d(512)) exactly as upstream declares it for IR-50. Upstream never calls it
    after removing stage 4; it exists only so that checkpoints load with upstream's tensor count and
    POSTER's parameter count matches upstream's printout.
    """

    def __init__(self, stages: Sequence[tuple[int, int]] = IR50_STAGES, stem_width: int = 64,
                 stem_stride: int = 1, keep_output_layer: bool = False) -> None:
        super().__init__()
        self.input_layer = nn.Sequential(
            nn.Conv2d(3, stem_width, 3, stem_stride, 1, bias=False), nn.BatchNorm2d(stem_width),
            nn.PReLU(stem_width))
        self.body = build_body(stem_width, stages)
        self.out_channels = stages[-1][0]
        if keep_output_layer:
            self.output_layer = nn.Sequential(
                nn.BatchNorm2d(512), nn.Dropout(0.0), nn.Flatten(), nn.Linear(512 * 7 * 7, 512),
                nn.BatchNorm1d(512))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.input_layer(x))


def count_used_parameters(model: nn.Module) -> int:
    """Parameters that take part in ``forward`` (excludes an IR backbone's never-called ``output_layer``)."""
    unused = {id(p) for m in model.modules() if isinstance(m, (IRBackbone, IRClassifier))
              and hasattr(m, "output_layer") for p in m.output_layer.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in unused)


class IRClassifier(nn.Module):
    """An IR backbone plus a classification head.

    head="upstream": reinterpret the (B,256,14,14) body output in memory as (B,49,1024), mean over the 49
    rows, Linear(1024, C) — upstream's IR50 head, reproduced exactly (also under channels_last: the
    reinterpretation is done on the logical NCHW order, which is what upstream's ``view`` saw).
    head="gap": global average over space, Linear(C_body, C).
    ``resize_to``: if set and the input is not that size, resize with nearest interpolation first
    (upstream always calls ``F.interpolate(x, size=112)``, which is the identity at 112).
    Submodule names (``input_layer``, ``body``, ``output_layer``) sit at the top level so that IR-50
    face-recognition checkpoints load without renaming.
    """

    def __init__(self, cfg: ModelConfig, stages: Sequence[tuple[int, int]], stem_width: int,
                 stem_stride: int = 1, head: str = "gap", resize_to: int | None = None,
                 keep_output_layer: bool = False, drop_rate: float = 0.0) -> None:
        super().__init__()
        if head not in ("upstream", "gap"):
            raise ValueError(f"IR head {head!r}: expected 'upstream' or 'gap'")
        self.cfg = cfg
        self.head_type = head
        self.resize_to = resize_to
        backbone = IRBackbone(stages, stem_width, stem_stride, keep_output_layer)
        self.input_layer = backbone.input_layer
        self.body = backbone.body
        if keep_output_layer:
            self.output_layer = backbone.output_layer
        width = stages[-1][0]
        if head == "upstream":
            if width != 256:
                raise ValueError(f"upstream IR head needs 256 body channels, got {width}")
            feat_dim = 1024
        else:
            feat_dim = width
        self.num_features = feat_dim
        self.drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(feat_dim, cfg.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features (B, num_features) from a normalized image batch."""
        if self.resize_to is not None and tuple(x.shape[-2:]) != (self.resize_to, self.resize_to):
            x = F.interpolate(x, size=self.resize_to, mode="nearest")
        x = self.body(self.input_layer(x))
        if self.head_type == "upstream":
            b, c, h, w = x.shape
            if c * h * w != 49 * 1024:
                raise ValueError(f"upstream IR head expects a (B,256,14,14) body output, got {tuple(x.shape)}")
            return x.reshape(b, 49, 1024).mean(dim=1)
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.forward_features(x)))


def _maybe_load(model: nn.Module, pretrained: str | None) -> nn.Module:
    if pretrained is not None:
        report = load_pretrained(model, pretrained)
        model.pretrained_report = report  # type: ignore[attr-defined]
    return model


@register_model
def ir50(num_classes: int = 7, pretrained: str | None = None, img_size: int = 224,
         keep_output_layer: bool = False, **kw: Any) -> IRClassifier:
    """Upstream IR50 classifier (IR-50 stages 1–3, memory-reinterpreting head, Linear(1024, C)).

    ``img_size`` is what the data pipeline resizes to (upstream: 224; the net then takes 112 by nearest
    interpolation). ``pretrained``: an IR-50 face-recognition checkpoint (e.g. POSTER's ``ir50.pth``).
    """
    _reject_unknown("ir50", kw)
    cfg = ModelConfig(name="ir50", input_size=(3, img_size, img_size), mean=IMAGENET_MEAN, std=IMAGENET_STD,
                      interpolation="bilinear", num_classes=num_classes,
                      kwargs={"img_size": img_size, "keep_output_layer": keep_output_layer})
    model = IRClassifier(cfg, IR50_STAGES, 64, head="upstream", resize_to=112,
                         keep_output_layer=keep_output_layer)
    return _maybe_load(model, pretrained)


@register_model
def ir50_gap(num_classes: int = 7, pretrained: str | None = None, img_size: int = 112,
             keep_output_layer: bool = False, **kw: Any) -> IRClassifier:
    """IR-50 stages 1–3 with a clean head: global average pooling of the 256 channels, Linear(256, C)."""
    _reject_unknown("ir50_gap", kw)
    cfg = ModelConfig(name="ir50_gap", input_size=(3, img_size, img_size), mean=IMAGENET_MEAN,
                      std=IMAGENET_STD, num_classes=num_classes,
                      kwargs={"img_size": img_size, "keep_output_layer": keep_output_layer})
    model = IRClassifier(cfg, IR50_STAGES, 64, head="gap", resize_to=None, keep_output_layer=keep_output_layer)
    return _maybe_load(model, pretrained)


# Small nets: stride-2 stem, then three narrow stages; sizes chosen by measured CPU training throughput
# (benchmarks/bench_models.py).
IR_TINY_STAGES: tuple[tuple[int, int], ...] = ((16, 1), (32, 1), (64, 1))
IR_SMALL_STAGES: tuple[tuple[int, int], ...] = ((32, 1), (64, 2), (128, 2))


def _small(name: str, num_classes: int, pretrained: str | None, img_size: int, stages, stem_width: int,
           drop_rate: float, kw: dict[str, Any]) -> IRClassifier:
    _reject_unknown(name, kw)
    cfg = ModelConfig(name=name, input_size=(3, img_size, img_size), mean=SMALL_MEAN, std=SMALL_STD,
                      interpolation="bilinear", num_classes=num_classes,
                      kwargs={"img_size": img_size, "drop_rate": drop_rate})
    model = IRClassifier(cfg, stages, stem_width, stem_stride=2, head="gap", drop_rate=drop_rate)
    return _maybe_load(model, pretrained)  # e.g. a syntfer weights.pt, loaded by name and shape


@register_model
def ir_tiny(num_classes: int = 7, pretrained: str | None = None, img_size: int = 48, drop_rate: float = 0.0,
            **kw: Any) -> IRClassifier:
    """Tiny IR net for the CPU default pipeline: 48 px, stride-2 stem of 16, stages 16/32/64 × 1 unit."""
    return _small("ir_tiny", num_classes, pretrained, img_size, IR_TINY_STAGES, 16, drop_rate, kw)


@register_model
def ir_small(num_classes: int = 7, pretrained: str | None = None, img_size: int = 64, drop_rate: float = 0.0,
             **kw: Any) -> IRClassifier:
    """Small IR net: 64 px, stride-2 stem of 32, stages 32×1, 64×2, 128×2."""
    return _small("ir_small", num_classes, pretrained, img_size, IR_SMALL_STAGES, 32, drop_rate, kw)


def _reject_unknown(name: str, kw: dict[str, Any]) -> None:
    if kw:
        raise TypeError(f"{name}: unknown options {sorted(kw)}")
