"""Plain VGG-style CNNs for the CPU default pipeline.

On the procedural world at 48–64 px these learn several times faster per CPU second than the small IR nets
(`ir_tiny`): measured with the project trainer on the world's RAF-DB stand-in (docs/decisions/classifier-recipe.md).
They are stand-ins for IR50/POSTER on 2 CPU cores, not models from the paper.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from syntfer.engine.models.ir import SMALL_MEAN, SMALL_STD, _maybe_load, _reject_unknown
from syntfer.engine.models.registry import ModelConfig, register_model


HEADS = ("avg", "flatten")


class PlainCNN(nn.Module):
    """Stride-2 3×3 stem, then per stage `convs` × (3×3 conv, BN, ReLU) and a 2×2 max-pool; then the head.

    Heads: ``avg`` — global average pooling, dropout, linear (position-free); ``flatten`` — the last feature map
    flattened (so the classifier knows *where* a cue is: a lowered brow and a raised one differ mostly in
    position, and FER faces are aligned), an optional ``hidden``-wide ReLU layer (the penultimate features then
    have `hidden` dimensions), dropout, linear. Measured on the world's RAF-DB stand-in
    (docs/decisions/classifier-recipe.md): the flatten head learns from the first epochs where the average-pooled one sits at the
    class prior for several.
    """

    def __init__(self, cfg: ModelConfig, widths: tuple[int, ...], convs: int = 1, drop_rate: float = 0.0,
                 head: str = "avg", hidden: int = 0):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"{cfg.name}: head {head!r}; expected one of {HEADS}")
        if hidden < 0 or (hidden and head != "flatten"):
            raise ValueError(f"{cfg.name}: hidden={hidden}; expected 0, or > 0 with head='flatten'")
        self.head_kind = head
        self.cfg = cfg
        c_in = cfg.input_size[0]
        layers: list[nn.Module] = [nn.Conv2d(c_in, widths[0], 3, stride=2, padding=1, bias=False),
                                   nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)]
        prev = widths[0]
        for w in widths[1:]:
            for _ in range(convs):
                layers += [nn.Conv2d(prev, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
                prev = w
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        side = cfg.input_size[1] // 2 // 2 ** (len(widths) - 1)
        if head == "flatten" and side < 1:
            raise ValueError(f"{cfg.name}: input {cfg.input_size[1]} px is too small for {len(widths)} stages")
        dim = prev * side * cfg.input_size[2] // 2 // 2 ** (len(widths) - 1) if head == "flatten" else prev
        self.hidden = (nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True)) if hidden else nn.Identity())
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.head = nn.Linear(hidden or dim, cfg.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier layer's input (the penultimate features)."""
        f = self.features(x)
        f = f.mean((2, 3)) if self.head_kind == "avg" else f.flatten(1)
        return self.hidden(f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.forward_features(x)))


def _plain(name: str, num_classes: int, pretrained: str | None, img_size: int, widths: tuple[int, ...],
           convs: int, drop_rate: float, head: str, hidden: int, kw: dict[str, Any]) -> PlainCNN:
    _reject_unknown(name, kw)
    kwargs: dict[str, Any] = {"img_size": img_size, "drop_rate": drop_rate}
    if head != "avg" or hidden:  # older checkpoints (avg head) keep their config unchanged
        kwargs.update(head=head, hidden=hidden)
    cfg = ModelConfig(name=name, input_size=(3, img_size, img_size), mean=SMALL_MEAN, std=SMALL_STD,
                      interpolation="bilinear", num_classes=num_classes, kwargs=kwargs)
    return _maybe_load(PlainCNN(cfg, widths, convs, drop_rate, head, hidden), pretrained)


@register_model
def cnn_tiny(num_classes: int = 7, pretrained: str | None = None, img_size: int = 48, drop_rate: float = 0.0,
             head: str = "avg", hidden: int = 0, **kw: Any) -> PlainCNN:
    """Plain CNN, ≈100k conv parameters: stem 16, stages 32/64/128 (one conv each), 48 px."""
    return _plain("cnn_tiny", num_classes, pretrained, img_size, (16, 32, 64, 128), 1, drop_rate, head, hidden, kw)


@register_model
def cnn_small(num_classes: int = 7, pretrained: str | None = None, img_size: int = 64, drop_rate: float = 0.0,
              head: str = "avg", hidden: int = 0, **kw: Any) -> PlainCNN:
    """Plain CNN, ≈0.6M conv parameters: stem 32, stages 48/96/192 (two convs each), 64 px."""
    return _plain("cnn_small", num_classes, pretrained, img_size, (32, 48, 96, 192), 2, drop_rate, head, hidden,
                  kw)
