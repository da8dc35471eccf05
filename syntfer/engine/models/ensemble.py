"""An ensemble of classifiers of one architecture, scored as one classifier (the pseudo-label teacher's form).

`ensemble` (registered) averages the members' logits and, with ``mirror=True``, each member's logits on the
face and on its horizontal mirror (test-time flip: the members were trained with random flips, so both views
are in-distribution). The averaged logits go through `MeanLogits`, the ensemble's classifier layer
(``get_classifier()``): `syntfer.instruments.judge` calibrates, scores and takes features from it like from any model
(the features are the stacked member logits). A checkpoint rebuilds it through the registry like any model::

    model = Ensemble.from_members([m0, m1, m2], mirror=True)      # trained members, one architecture
    save_checkpoint(model, "teacher/checkpoint", temperature=t)     # load_checkpoint / Judge.load read it back

Measured on the world's AffectNet stand-in (docs/decisions/teacher.md): three 16-epoch `cnn_tiny` members with
the mirror label the unlabeled collections more precisely than any one of them.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from syntfer.core import labels as L
from syntfer.engine.models.registry import ModelConfig, create_model, register_model


class MeanLogits(nn.Module):
    """(B, V, C) logits of V member views → (B, C) mean; the ensemble's classifier layer."""

    def forward(self, stacked: torch.Tensor) -> torch.Tensor:
        return stacked.mean(dim=1)


class Ensemble(nn.Module):
    """Members of one architecture (one `ModelConfig` apart from the seed), mean logits (module docstring)."""

    def __init__(self, cfg: ModelConfig, members: Sequence[nn.Module], mirror: bool = False):
        super().__init__()
        if not members:
            raise ValueError("ensemble: no members")
        self.cfg = cfg
        self.members = nn.ModuleList(members)
        self.mirror = bool(mirror)
        self.combine = MeanLogits()

    @classmethod
    def from_members(cls, members: Sequence[nn.Module], mirror: bool = False) -> "Ensemble":
        """Wrap trained models; they must share architecture, options, input, normalisation and label order."""
        if not members:
            raise ValueError("ensemble: no members")
        first = members[0].cfg
        for i, m in enumerate(members[1:], start=1):
            if m.cfg != first:
                raise ValueError(f"ensemble member {i} has config {m.cfg}; member 0 has {first}: members must "
                                 "share one architecture and its options")
        cfg = dataclasses.replace(first, name="ensemble", kwargs={"member": first.name,
                                                                  "member_kwargs": dict(first.kwargs),
                                                                  "n": len(members), "mirror": bool(mirror)})
        return cls(cfg, members, mirror)

    def get_classifier(self) -> nn.Module:
        return self.combine

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        views = (x, x.flip(-1)) if self.mirror else (x,)
        return self.combine(torch.stack([m(v) for m in self.members for v in views], dim=1))


@register_model
def ensemble(num_classes: int = L.NUM_CLASSES, pretrained: str | None = None, member: str = "cnn_tiny",
             member_kwargs: dict[str, Any] | None = None, n: int = 3, mirror: bool = False, **kw: Any) -> Ensemble:
    """`n` untrained `member` models (weights come from a checkpoint: `load_checkpoint`), mean logits."""
    if kw:
        raise TypeError(f"ensemble: unknown option(s) {sorted(kw)}")
    if pretrained:
        raise ValueError("ensemble: pretrained weights load through load_checkpoint(directory), not pretrained=")
    if n < 1:
        raise ValueError(f"ensemble: n={n}; expected >= 1")
    return Ensemble.from_members([create_model(member, num_classes=num_classes, **(member_kwargs or {}))
                                  for _ in range(n)], mirror=mirror)
