"""POSTER v1 (Zheng et al., 2022): landmark + image cross-fusion pyramid transformer.

Architecture (docs/method.md §7), with state-dict names equal to the official code's so that official
checkpoints (``{'model_state_dict': {'module.face_landback.…', 'module.ir_back.…', 'module.ir_layer.…',
'module.pyramid_fuse.…', 'module.se_block.…', 'module.head.linear.…'}}``) load by name:

- ``face_landback``: frozen MobileFaceNet (112 input, nearest-resized), its (B,512,7,7) map → 49 tokens of 512.
- ``ir_back``: IR-50 stages 1–3 → (B,256,14,14) reinterpreted as 49×1024; ``ir_layer``: Linear(1024, 512).
- ``pyramid_fuse``: a class token (mean of the tokens) is prepended to each stream, the image stream gets a
  position embedding; the 100 tokens are run at three embedding widths (512, 256 via Conv1d(k2,s2),
  128 via Conv1d(k4,s4) over the embedding axis); in every block the image tokens attend with the
  landmark tokens as queries (keys/values from image) and vice versa, MLP ratio 2, 8 heads, a 1×1 Conv1d
  mixes the 100 tokens; small → medium → large are fused by ConvTranspose1d(k2,s2). Depth 8 (large),
  6 (base), 4 (small); drop path 0 → 0.1.
- output: the image class token after LayerNorm → SE gate → Linear.

Upstream quirks kept: the unused ``cls_token`` parameter; the landmark head (GDC) exists but its output is
unused (we skip computing it); the frozen branch's BatchNorms follow the parent's train/eval mode as
upstream (``freeze_landmark_bn=True`` keeps them in eval mode instead).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from syntfer.engine.models.checkpoint import load_pretrained
from syntfer.engine.models.ir import IR50_STAGES, IRBackbone
from syntfer.engine.models.mobilefacenet import MobileFaceNet
from syntfer.engine.models.registry import IMAGENET_MEAN, IMAGENET_STD, ModelConfig, register_model

DEPTHS = {"small": 4, "base": 6, "large": 8}


class CrossAttention(nn.Module):
    """Attention of one stream (keys/values) queried by the other stream's normalized tokens (no q projection)."""

    def __init__(self, dim: int, num_heads: int, kv_first: bool, n_first: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embedding width {dim} not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.kv_first = kv_first  # True: keys/values from the image stream (first n_first tokens)
        self.n_first = n_first
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, second = x[:, : self.n_first], x[:, self.n_first:]
        src, query = (first, second) if self.kv_first else (second, first)
        b, n, c = src.shape
        h = self.num_heads
        k, v = self.kv(src).reshape(b, n, 2, h, c // h).permute(2, 0, 3, 1, 4).unbind(0)
        q = query.reshape(b, query.shape[1], h, c // h).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(head_dim), as upstream
        return self.proj(out.transpose(1, 2).reshape(b, out.shape[2], c))


class CrossBlock(nn.Module):
    """One cross-fusion block at one embedding width (official names: norm1-4, attn_img, attn_lm, mlp1-2, conv)."""

    def __init__(self, dim: int, n_img: int, n_lm: int, num_heads: int, mlp_ratio: float, drop_path: float) -> None:
        super().__init__()
        self.n_img = n_img
        norm = lambda: nn.LayerNorm(dim, eps=1e-6)  # noqa: E731
        self.norm1 = norm()
        self.attn_img = CrossAttention(dim, num_heads, kv_first=True, n_first=n_img)
        self.attn_lm = CrossAttention(dim, num_heads, kv_first=False, n_first=n_img)
        from timm.layers import DropPath, Mlp  # lazy: importing timm costs ~1 s for every registry user

        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = norm()
        hidden = int(dim * mlp_ratio)
        self.mlp1 = Mlp(dim, hidden)
        self.mlp2 = Mlp(dim, hidden)
        self.norm3 = norm()
        self.norm4 = norm()
        self.conv = nn.Conv1d(n_img + n_lm, n_img + n_lm, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_img, x_lm = x[:, : self.n_img], x[:, self.n_img:]
        x_img = x_img + self.drop_path(self.attn_img(self.norm1(x)))
        x_img = x_img + self.drop_path(self.mlp1(self.norm2(x_img)))
        x_lm = x_lm + self.drop_path(self.attn_lm(self.norm3(x)))
        x_lm = x_lm + self.drop_path(self.mlp2(self.norm4(x_lm)))
        return self.conv(torch.cat((x_img, x_lm), dim=1))


class PyramidBlock(nn.Module):
    """Cross blocks at widths d, d/2, d/4, fused small → medium → large by transposed 1-D convs."""

    def __init__(self, dim: int, n_tokens: int, num_heads: int, mlp_ratio: float, drop_path: float) -> None:
        super().__init__()
        n = n_tokens + 1
        self.block_l = CrossBlock(dim, n, n, num_heads, mlp_ratio, drop_path)
        self.block_m = CrossBlock(dim // 2, n, n, num_heads, mlp_ratio, drop_path)
        self.block_s = CrossBlock(dim // 4, n, n, num_heads, mlp_ratio, drop_path)
        self.upsample_m = nn.ConvTranspose1d(2 * n, 2 * n, kernel_size=2, stride=2)
        self.upsample_s = nn.ConvTranspose1d(2 * n, 2 * n, kernel_size=2, stride=2)

    def forward(self, xs: tuple[torch.Tensor, torch.Tensor, torch.Tensor]):
        x_l, x_m, x_s = xs
        x_l = self.block_l(x_l)
        x_m = self.block_m(x_m)
        x_s = self.block_s(x_s)
        x_m = self.upsample_s(x_s) + x_m
        x_l = x_l + self.upsample_m(x_m)
        return x_l, x_m, x_s


class PyramidFusion(nn.Module):
    """The cross-fusion pyramid transformer (official name ``HyVisionTransformer``); returns the image class token."""

    def __init__(self, n_tokens: int = 49, embed_dim: int = 512, depth: int = 8, num_heads: int = 8,
                 mlp_ratio: float = 2.0, drop_path_rate: float = 0.1) -> None:
        super().__init__()
        self.n_tokens = n_tokens
        n_channels = 2 * (n_tokens + 1)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))  # unused upstream; kept for checkpoints
        self.pos_embed = nn.Parameter(torch.zeros(1, n_tokens + 1, embed_dim))
        self.downsample_m = nn.Conv1d(n_channels, n_channels, kernel_size=2, stride=2)
        self.downsample_s = nn.Conv1d(n_channels, n_channels, kernel_size=4, stride=4)
        dpr = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList(PyramidBlock(embed_dim, n_tokens, num_heads, mlp_ratio, dpr[i])
                                    for i in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)

    def forward(self, x_img: torch.Tensor, x_lm: torch.Tensor) -> torch.Tensor:
        x_img = torch.cat((x_img.mean(1, keepdim=True), x_img), dim=1) + self.pos_embed
        x_lm = torch.cat((x_lm.mean(1, keepdim=True), x_lm), dim=1)
        x = torch.cat((x_img, x_lm), dim=1)
        xs = (x, self.downsample_m(x), self.downsample_s(x))
        for block in self.blocks:
            xs = block(xs)
        return self.norm(xs[0])[:, 0]


class SEBlock(nn.Module):
    """Feature gate x · sigmoid(W2 relu(W1 x)) (official name ``SE_block``; ``sigmod`` spelt as upstream)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(dim, dim)
        self.relu = nn.ReLU()
        self.linear2 = nn.Linear(dim, dim)
        self.sigmod = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.sigmod(self.linear2(self.relu(self.linear1(x))))


class ClassificationHead(nn.Module):
    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


class Poster(nn.Module):
    """POSTER v1 classifier. ``forward`` returns logits; ``forward_features`` the gated 512-d feature."""

    def __init__(self, cfg: ModelConfig, variant: str = "large", keep_output_layer: bool = True,
                 freeze_landmark_bn: bool = False, drop_path_rate: float = 0.1) -> None:
        super().__init__()
        if variant not in DEPTHS:
            raise ValueError(f"POSTER variant {variant!r}: expected one of {sorted(DEPTHS)}")
        self.cfg = cfg
        self.freeze_landmark_bn = freeze_landmark_bn
        self.face_landback = MobileFaceNet(136)
        self.face_landback.requires_grad_(False)
        self.ir_back = IRBackbone(IR50_STAGES, 64, keep_output_layer=keep_output_layer)
        self.ir_layer = nn.Linear(1024, 512)
        self.pyramid_fuse = PyramidFusion(49, 512, DEPTHS[variant], 8, 2.0, drop_path_rate)
        self.se_block = SEBlock(512)
        self.head = ClassificationHead(512, cfg.num_classes)

    def train(self, mode: bool = True) -> "Poster":
        super().train(mode)
        if self.freeze_landmark_bn:
            self.face_landback.eval()
        return self

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        x_face = x if tuple(x.shape[-2:]) == (112, 112) else F.interpolate(x, size=112, mode="nearest")
        lm = self.face_landback.forward_features(x_face).reshape(b, 512, 49).transpose(1, 2)
        feat = self.ir_back(x if tuple(x.shape[-2:]) == (112, 112) else F.interpolate(x, size=112))
        img = self.ir_layer(feat.reshape(b, 49, 1024))
        return self.se_block(self.pyramid_fuse(img, lm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


def _poster(name: str, variant: str, num_classes: int, pretrained: str | None, landmark_weights: str | None,
            ir_weights: str | None, keep_output_layer: bool, freeze_landmark_bn: bool, img_size: int,
            kw: dict[str, Any]) -> Poster:
    if kw:
        raise TypeError(f"{name}: unknown options {sorted(kw)}")
    cfg = ModelConfig(name=name, input_size=(3, img_size, img_size), mean=IMAGENET_MEAN, std=IMAGENET_STD,
                      interpolation="bilinear", num_classes=num_classes,
                      kwargs={"keep_output_layer": keep_output_layer, "freeze_landmark_bn": freeze_landmark_bn,
                              "img_size": img_size})
    model = Poster(cfg, variant, keep_output_layer, freeze_landmark_bn)
    reports = {}
    if landmark_weights is not None:
        reports["landmark"] = load_pretrained(model.face_landback, landmark_weights, strict=True)
    if ir_weights is not None:
        reports["ir"] = load_pretrained(model.ir_back, ir_weights)
    if pretrained is not None:
        reports["poster"] = load_pretrained(model, pretrained)
    model.face_landback.requires_grad_(False)
    model.pretrained_report = reports  # type: ignore[attr-defined]
    return model


@register_model
def poster(num_classes: int = 7, pretrained: str | None = None, landmark_weights: str | None = None,
           ir_weights: str | None = None, keep_output_layer: bool = True, freeze_landmark_bn: bool = False,
           img_size: int = 224, **kw: Any) -> Poster:
    """POSTER v1 large (depth 8). ``pretrained``: an official POSTER checkpoint; ``landmark_weights``:
    ``mobilefacenet_model_best.pth.tar``; ``ir_weights``: ``ir50.pth`` (upstream's initialisation)."""
    return _poster("poster", "large", num_classes, pretrained, landmark_weights, ir_weights, keep_output_layer,
                   freeze_landmark_bn, img_size, kw)


@register_model
def poster_base(num_classes: int = 7, pretrained: str | None = None, landmark_weights: str | None = None,
                ir_weights: str | None = None, keep_output_layer: bool = True, freeze_landmark_bn: bool = False,
                img_size: int = 224, **kw: Any) -> Poster:
    """POSTER v1 base (depth 6)."""
    return _poster("poster_base", "base", num_classes, pretrained, landmark_weights, ir_weights,
                   keep_output_layer, freeze_landmark_bn, img_size, kw)


@register_model
def poster_small(num_classes: int = 7, pretrained: str | None = None, landmark_weights: str | None = None,
                 ir_weights: str | None = None, keep_output_layer: bool = True, freeze_landmark_bn: bool = False,
                 img_size: int = 224, **kw: Any) -> Poster:
    """POSTER v1 small (depth 4)."""
    return _poster("poster_small", "small", num_classes, pretrained, landmark_weights, ir_weights,
                   keep_output_layer, freeze_landmark_bn, img_size, kw)
