"""GANmut-style editor networks (StarGAN generator + task-aware PatchGAN discriminator).

Parameter names follow the official GANmut code (StarGAN naming) so its generator checkpoints
(``*-G.ckpt`` state dicts) load strictly: ``main.N.*`` for the convolutional trunk, ``axes.weight``/
``axes.bias`` for the linear model's per-emotion axes (rows = happy, sad, surprise, fear, disgust, anger),
``mu.weight``/``covariance_angles.weight``/``covariance_axes.weight`` for the Gaussian model (rows in
AffectNet order, see `syntfer.strategies.gan.controls.GANMUT_ORDER`).

Two facts about the official weights that the adapter handles: they were trained on OpenCV (BGR) images
scaled to [-1, 1], and their InstanceNorm layers carry running statistics that the official inference
never uses (the model is never put in eval mode), so our norm layer always normalises with the
instance's own statistics while keeping those buffers for key compatibility.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from syntfer.core import labels as L
from syntfer.strategies.gan.controls import GANMUT_ORDER, ControlError, ControlSpace, paper_space
from syntfer.core.storage import StateFileError, load_torch, save_torch, write_json


class CheckpointError(ValueError):
    """A generator checkpoint whose keys or shapes do not fit the expected architecture."""


@dataclasses.dataclass
class EditorConfig:
    """Everything needed to rebuild an editor (saved next to its weights as JSON)."""

    control: str = "linear"  # 'linear' (ρ, θ) or 'gaussian' (x, y)
    image_size: int = 64  # the editor's face-crop size (official GANmut: 128)
    conv_dim: int = 32  # official: 64
    repeat_num: int = 4  # residual blocks; official: 6
    d_conv_dim: int = 32
    d_repeat_num: int = 4
    c_dim: int = L.NUM_CLASSES
    channel_order: str = "RGB"  # official weights: 'BGR'
    source: str = "own"  # 'own' (trained here) or 'official'
    residual: bool = False  # output = clamp(input + G), last conv zero-initialised (CPU-budget option; official: False)
    flow_grid: int = 0  # > 0: a flow editor — G predicts a smooth deformation on this grid and warps the face
    flow_max: float = 0.12  # the flow editor's largest displacement, as a fraction of the crop side
    # how a linear flow editor turns ρ into strength: 'learned' (the code goes to the network as it is) or
    # 'interpolate' (displacements interpolated between the code-0 flow, ρ = 0: neutral, and the unit-code flow,
    # ρ = 1: the full class; ρ > 1 extrapolates) — GANmut's "origin = neutral, ρ = intensity" by construction
    intensity: str = "learned"
    # interpolate only: strength = ρ ** intensity_gamma (1: linear in ρ). The control's scale is a choice: γ < 1
    # makes a mild ρ already a readable expression (GANmut's V draws ρ from 0.5; models/gan/README.md: measured)
    intensity_gamma: float = 1.0
    # flow editors: an appearance residual added after the warp (issue #30, experimental). 'none' (default): a warp
    # only. Otherwise a small head on the trunk's last features predicts a change at half the crop's resolution (no
    # pixel-period pattern can be drawn), multiplied by a fixed soft mask of the aligned crop around the eyes and the
    # mouth (`appearance_mask`: zero everywhere else) and bounded by ±appearance_max ([-1, 1] image units) — what a
    # warp cannot draw: an open mouth's interior, eye whites. 'mouth_eyes': the change can only blend the warped
    # pixel toward one of two fixed colours (`APPEARANCE_PALETTE`: a mouth cavity's dark red — in the mouth only —,
    # the off-white of eye whites and teeth) by a fraction in [0, mask]; 'mouth_eyes_band' the same in a wider
    # region, 'mouth_eyes_rgb' any RGB change there (`APPEARANCE_KINDS`; both failed: models/gan/README.md)
    appearance: str = "none"
    appearance_max: float = 0.5

    def __post_init__(self) -> None:
        if self.control not in ("linear", "gaussian"):
            raise ValueError(f"EditorConfig.control={self.control!r}; expected 'linear' or 'gaussian'")
        if self.channel_order not in ("RGB", "BGR"):
            raise ValueError(f"EditorConfig.channel_order={self.channel_order!r}; expected 'RGB' or 'BGR'")
        if self.image_size % 4:
            raise ValueError(f"EditorConfig.image_size={self.image_size} must be divisible by 4 (2 down-samplings)")
        if self.flow_grid < 0 or (self.flow_grid and not 2 <= self.flow_grid <= self.image_size):
            raise ValueError(f"EditorConfig.flow_grid={self.flow_grid}; expected 0 (no flow) or 2..image_size")
        if self.flow_grid and self.residual:
            raise ValueError("EditorConfig: flow_grid > 0 (a warp) and residual=True (an added image) exclude each other")
        if not 0 < self.flow_max <= 0.5:
            raise ValueError(f"EditorConfig.flow_max={self.flow_max}; expected in (0, 0.5]")
        if self.intensity not in ("learned", "interpolate"):
            raise ValueError(f"EditorConfig.intensity={self.intensity!r}; expected 'learned' or 'interpolate'")
        if self.intensity == "interpolate" and not (self.flow_grid and self.control == "linear"):
            raise ValueError("EditorConfig.intensity='interpolate' needs a linear flow editor (flow_grid > 0, "
                             f"control 'linear'); got flow_grid={self.flow_grid}, control={self.control!r}")
        if not self.intensity_gamma > 0:
            raise ValueError(f"EditorConfig.intensity_gamma={self.intensity_gamma}; expected > 0")
        if self.intensity_gamma != 1.0 and self.intensity != "interpolate":
            raise ValueError(f"EditorConfig.intensity_gamma={self.intensity_gamma} shapes the 'interpolate' intensity "
                             f"only; intensity is {self.intensity!r}")
        if self.image_size % (2 ** self.d_repeat_num):
            raise ValueError(f"image_size {self.image_size} not divisible by 2**d_repeat_num ({2 ** self.d_repeat_num})")
        if self.appearance not in ("none",) + tuple(APPEARANCE_KINDS):
            raise ValueError(f"EditorConfig.appearance={self.appearance!r}; expected 'none' or one of "
                             f"{sorted(APPEARANCE_KINDS)}")
        if self.appearance != "none" and not self.flow_grid:
            raise ValueError("EditorConfig.appearance needs a flow editor (flow_grid > 0): the residual is added "
                             "after the warp")
        if not 0 < self.appearance_max <= 2:
            raise ValueError(f"EditorConfig.appearance_max={self.appearance_max}; expected in (0, 2]")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if not self.flow_grid:  # editors without a flow keep the config (and files) they had before flows existed
            d.pop("flow_grid")
            d.pop("flow_max")
        if self.intensity == "learned":  # the default: files written before the option existed stay the same
            d.pop("intensity")
        if self.intensity_gamma == 1.0:
            d.pop("intensity_gamma")
        if self.appearance == "none":  # editors without the residual keep their files byte for byte
            d.pop("appearance")
            d.pop("appearance_max")
        return d

    def without_appearance(self) -> "EditorConfig":
        """This config with no appearance residual (the warp editor it fine-tunes from)."""
        return dataclasses.replace(self, appearance="none", appearance_max=EditorConfig.appearance_max)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EditorConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown EditorConfig field(s) {unknown}; expected a subset of {sorted(known)}")
        return cls(**d)


# Where the appearance residual may change pixels, as soft ellipses (centre x, centre y, semi-axis x, semi-axis y) in
# fractions of the editor's crop (the square frame around the face box, `training.face_frame`). Measured on the 6,000
# training faces of the default world's AffectNet stand-in (5 landmarks each, in crop fractions): eyes at y 0.46
# (sd 0.05), x 0.36 / 0.64 (sd 0.08, mostly yaw), mouth centre (0.50, 0.76) (sd 0.085 / 0.047), mouth width 0.21.
# 'band': an eye band over both eyes of 90 % of the faces (x 0.23-0.77, y 0.38-0.54) with the lids above and the
# cheeks' top below them, and the mouth ellipse (the corners and an opened jaw below them); 'mouth': that ellipse
# alone; 'eyes_mouth': a narrower eye band (y 0.40-0.52: eyes, not cheeks) and the mouth ellipse; 'two_eyes_mouth':
# one ellipse per eye (x 0.22-0.50 and 0.50-0.78, zero on a frontal face's nose bridge) and the mouth ellipse.
# 'mouth_open': one taller ellipse, lower, for an opened jaw. Measured on the world's own re-renders of the first 40
# FFHQ-stand-in faces as fear and surprise, against their neutral re-render, in the editor's 48 px framing of the
# source box: the open mouth darkens y 0.77-0.90 (surprise: peak 0.80-0.87, about 0.2 wide; fear: 0.78-0.88, 0.27
# wide) — the 'mouth' ellipse is 0.25 at y 0.865 and 0 from 0.89, so it cannot draw the lower half of a jaw drop.
# It stays above the chin (0 from y 0.925) and below the nose (0 above y 0.695).
MOUTH_ELLIPSE = (0.5, 0.775, 0.22, 0.115)
MOUTH_OPEN_ELLIPSE = (0.5, 0.81, 0.21, 0.115)
APPEARANCE_REGIONS: dict[str, tuple[tuple[float, float, float, float], ...]] = {
    "band": ((0.5, 0.455, 0.34, 0.095), MOUTH_ELLIPSE),
    "mouth": (MOUTH_ELLIPSE,),
    "eyes_mouth": ((0.5, 0.46, 0.33, 0.06), MOUTH_ELLIPSE),
    "two_eyes_mouth": ((0.357, 0.46, 0.14, 0.06), (0.643, 0.46, 0.14, 0.06), MOUTH_ELLIPSE),
    "mouth_open": (MOUTH_OPEN_ELLIPSE,),
}
APPEARANCE_INNER = 0.5  # the mask is 1 inside half of each ellipse's radius, smoothstep to exactly 0 at its edge
# EditorConfig.appearance -> (region toward dark / of an RGB change, region toward light, how the change is drawn):
# 'mouth_eyes': dark only in the mouth (its cavity), light in the eyes and the mouth (eye whites, teeth) — it
# lightened a band across the nose bridge; 'mouth_two_eyes': the same with one ellipse per eye (it lightened the skin
# beside the eyes); 'mouth_only': both colours in the mouth only (a cavity, teeth), the eyes left to the warp;
# 'mouth_eyes_band': either colour anywhere in the 'band' region (it lightened the cheeks below the eyes);
# 'mouth_eyes_rgb': any RGB change in the 'band' region (it painted purple and orange blobs); 'mouth_open': both
# colours in the taller, lower 'mouth_open' ellipse only (room for a jaw drop's opening)
APPEARANCE_KINDS: dict[str, tuple[str, str, str]] = {"mouth_eyes": ("mouth", "eyes_mouth", "palette"),
                                                     "mouth_two_eyes": ("mouth", "two_eyes_mouth", "palette"),
                                                     "mouth_only": ("mouth", "mouth", "palette"),
                                                     "mouth_eyes_band": ("band", "band", "palette"),
                                                     "mouth_eyes_rgb": ("band", "band", "rgb"),
                                                     "mouth_open": ("mouth_open", "mouth_open", "palette")}
# the 'palette' change's two colours (RGB in [0, 1]): dark (s < 0) — an open mouth's cavity; light (s > 0) — eye
# whites and teeth. Generic face colours; they are also close to what the world's renderer draws (cavity 0.12 0.03
# 0.04, sclera 0.93 0.92 0.90, teeth 0.93 0.91 0.86: syntfer/sources/world/render.py), a prior read from the
# renderer's code, not a paired training signal
APPEARANCE_PALETTE = {"dark": (0.12, 0.04, 0.04), "light": (0.92, 0.91, 0.88)}


def region_mask(region: str, size: int) -> torch.Tensor:
    """(size, size) float mask in [0, 1]: the union (max) of `APPEARANCE_REGIONS[region]`'s soft ellipses, exactly
    0 outside them."""
    if region not in APPEARANCE_REGIONS:
        raise ValueError(f"appearance region {region!r}; expected one of {sorted(APPEARANCE_REGIONS)}")
    c = (torch.arange(size, dtype=torch.float32) + 0.5) / size  # pixel centres in crop fractions
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    m = torch.zeros(size, size)
    for cx, cy, rx, ry in APPEARANCE_REGIONS[region]:
        r = (((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2).sqrt()
        t = ((1.0 - r) / (1.0 - APPEARANCE_INNER)).clamp(0, 1)
        m = torch.maximum(m, t * t * (3 - 2 * t))
    return m


def appearance_masks(kind: str, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(dark, light) masks of an `EditorConfig.appearance` kind (an 'rgb' kind: the same mask twice)."""
    if kind not in APPEARANCE_KINDS:
        raise ValueError(f"appearance {kind!r}; expected one of {sorted(APPEARANCE_KINDS)}")
    dark, light, _ = APPEARANCE_KINDS[kind]
    return region_mask(dark, size), region_mask(light, size)


def appearance_mask(kind: str, size: int) -> torch.Tensor:
    """(size, size) mask where an `EditorConfig.appearance` kind may change pixels at all: its masks' union."""
    dark, light = appearance_masks(kind, size)
    return torch.maximum(dark, light)


class InstanceNorm(nn.InstanceNorm2d):
    """InstanceNorm2d(affine, track_running_stats) that always uses instance statistics.

    The running buffers exist only so official StarGAN/GANmut state dicts load; they are never read or updated.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__(num_features, affine=True, track_running_stats=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


class ResidualBlock(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(dim, dim, 3, 1, 1, bias=False), InstanceNorm(dim), nn.ReLU(inplace=True),
            nn.Conv2d(dim, dim, 3, 1, 1, bias=False), InstanceNorm(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.main(x)


class Generator(nn.Module):
    """StarGAN-like generator: 7×7 conv, 2 down, `repeat_num` residual blocks, 2 up, tanh.

    Input: images in [-1, 1] (B, 3, S, S) in `cfg.channel_order` and a 2-D code (B, 2) tiled as two
    extra channels. The control model's learned parameters live here under GANmut's names.

    With ``cfg.flow_grid > 0`` it is a *flow editor*: the trunk's last layer gives two channels, averaged onto a
    flow_grid × flow_grid grid of displacements (at most `flow_max` of the crop side), upsampled bicubically
    and used to warp the input (`flow`, `warp`). A warp moves the face's own pixels — brows, lids, lips, mouth
    corners — so it keeps identity and cannot paint a pattern no face has; it starts as the identity map.
    """

    def __init__(self, cfg: EditorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.conv_dim
        layers: list[nn.Module] = [nn.Conv2d(3 + 2, d, 7, 1, 3, bias=False), InstanceNorm(d), nn.ReLU(inplace=True)]
        for _ in range(2):
            layers += [nn.Conv2d(d, d * 2, 4, 2, 1, bias=False), InstanceNorm(d * 2), nn.ReLU(inplace=True)]
            d *= 2
        layers += [ResidualBlock(d) for _ in range(cfg.repeat_num)]
        for _ in range(2):
            layers += [nn.ConvTranspose2d(d, d // 2, 4, 2, 1, bias=False), InstanceNorm(d // 2), nn.ReLU(inplace=True)]
            d //= 2
        layers += [nn.Conv2d(d, 2 if cfg.flow_grid else 3, 7, 1, 3, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        if cfg.residual or cfg.flow_grid:  # start exactly at the identity map; edits grow from there
            nn.init.zeros_(self.main[-2].weight)
        self.use_appearance = True  # runtime switch (not saved): False gives the warp alone, for comparisons
        if cfg.appearance != "none":
            # the trunk's last features and the warped crop -> an RGB change; last conv zero: starts as the warp alone
            self.app_draw = APPEARANCE_KINDS[cfg.appearance][2]
            self.appearance_head = nn.Sequential(nn.Conv2d(d + 3, d, 3, 1, 1), nn.ReLU(inplace=True),
                                                 nn.Conv2d(d, 1 if self.app_draw == "palette" else 3, 3, 1, 1))
            nn.init.zeros_(self.appearance_head[-1].weight)
            nn.init.zeros_(self.appearance_head[-1].bias)
            # not in the state dict: a function of the config, so weights of a warp editor load into it
            dark, light = appearance_masks(cfg.appearance, cfg.image_size)
            self.register_buffer("app_mask", torch.maximum(dark, light)[None, None], persistent=False)
            self.register_buffer("app_mask_dark", dark[None, None], persistent=False)
            self.register_buffer("app_mask_light", light[None, None], persistent=False)
            palette = torch.tensor([APPEARANCE_PALETTE["dark"], APPEARANCE_PALETTE["light"]]) * 2 - 1  # [-1, 1]
            if cfg.channel_order == "BGR":
                palette = palette.flip(1)
            self.register_buffer("app_palette", palette[:, :, None, None], persistent=False)
        if cfg.control == "linear":
            self.axes = nn.Linear(2, cfg.c_dim - 1)  # rows: GANMUT_ORDER[1:]
            with torch.no_grad():
                # spread initial axes evenly so every class starts with a distinct direction
                ang = torch.arange(cfg.c_dim - 1, dtype=torch.float32) * (2 * math.pi / (cfg.c_dim - 1))
                self.axes.weight.copy_(torch.stack([ang.cos(), ang.sin()], 1))
                self.axes.bias.zero_()
        else:
            self.covariance_angles = nn.Linear(cfg.c_dim, 1, bias=False)
            self.covariance_axes = nn.Linear(2, cfg.c_dim, bias=False)
            self.mu = nn.Linear(2, cfg.c_dim, bias=False)  # rows: GANMUT_ORDER; centres = tanh(mu)
            with torch.no_grad():
                self.covariance_angles.weight.zero_()
                self.covariance_axes.weight.fill_(0.3)
                ang = torch.arange(cfg.c_dim, dtype=torch.float32) * (2 * math.pi / cfg.c_dim)
                self.mu.weight.copy_(0.8 * torch.stack([ang.cos(), ang.sin()], 1))

    # ---- control model -------------------------------------------------------------------------
    def unit_axes(self) -> torch.Tensor:
        """(c_dim, 2) unit axes in GANMUT_ORDER; row 0 (neutral) is the zero vector."""
        if self.cfg.control != "linear":
            raise ControlError("unit_axes() needs a linear editor")
        ax = F.normalize(self.axes.weight, p=2, dim=1)
        return torch.cat([ax.new_zeros(1, 2), ax], 0)

    def centres(self) -> torch.Tensor:
        """(c_dim, 2) Gaussian centres tanh(mu) in GANMUT_ORDER."""
        if self.cfg.control != "gaussian":
            raise ControlError("centres() needs a gaussian editor")
        return torch.tanh(self.mu.weight)

    def mahalanobis(self, code: torch.Tensor) -> torch.Tensor:
        """(B, c_dim) squared Mahalanobis distances of codes to each class Gaussian (GANmut's C = R D Rᵀ)."""
        ang = self.covariance_angles.weight[0]
        cos, sin = ang.cos(), ang.sin()
        a, b = self.covariance_axes.weight.abs().unbind(1)
        rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)  # (C,2,2)
        cov = rot @ torch.diag_embed(torch.stack([a, b], -1)) @ rot.transpose(1, 2)
        inv = torch.linalg.inv(cov + 1e-6 * torch.eye(2))
        v = code[:, None, :] - self.centres()[None]  # (B, C, 2)
        return torch.einsum("bci,cij,bcj->bc", v, inv, v)

    def class_code(self, label_idx: torch.Tensor, rho: torch.Tensor | float = 1.0) -> torch.Tensor:
        """Codes for GANMUT_ORDER class indices: linear → ρ·axis (neutral → 0), gaussian → centre."""
        if self.cfg.control == "linear":
            rho_t = torch.as_tensor(rho, dtype=torch.float32).expand(label_idx.shape[0])
            return self.unit_axes()[label_idx] * rho_t[:, None]
        return self.centres()[label_idx]

    def control_space(self) -> ControlSpace:
        """This editor's class positions as a ControlSpace (paper values for official weights)."""
        if self.cfg.source == "official":
            return paper_space(self.cfg.control)
        with torch.no_grad():
            if self.cfg.control == "linear":
                ax = self.unit_axes()
                angles = {GANMUT_ORDER[i]: float(torch.atan2(ax[i, 1], ax[i, 0])) for i in range(1, self.cfg.c_dim)}
                return ControlSpace("linear", angles, None, source="own")
            c = self.centres()
            centres = {GANMUT_ORDER[i]: (float(c[i, 0]), float(c[i, 1])) for i in range(self.cfg.c_dim)}
            angles = {k: math.atan2(y, x) for k, (x, y) in centres.items() if k != "neutral"}
            return ControlSpace("gaussian", angles, centres, source="own")

    # ---- image path ----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        if self.appearance_active:
            flow, res = self.edit_parts(x, code)
            return (self.warp(x, flow) + res).clamp(-1, 1)
        if self.cfg.flow_grid:
            return self.warp(x, self.flow(x, code))
        y = self._trunk(x, code)
        return (x + y).clamp(-1, 1) if self.cfg.residual else y

    def _trunk(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"Generator expects (B, 3, H, W) images; got {tuple(x.shape)}")
        if code.shape != (x.shape[0], 2):
            raise ValueError(f"Generator expects codes of shape ({x.shape[0]}, 2); got {tuple(code.shape)}")
        tiled = code[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
        return self.main(torch.cat([x, tiled], 1))

    def flow(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """A flow editor's (B, 2, g, g) displacements (x, y) in `grid_sample` units (the crop spans [-1, 1])."""
        if not self.cfg.flow_grid:
            raise ValueError("flow() needs a flow editor (EditorConfig.flow_grid > 0)")
        if self.cfg.intensity == "interpolate":
            rho = code.norm(dim=1)
            unit = code / rho.clamp(min=1e-8)[:, None]
            neutral = self._flow(x, torch.zeros_like(code))
            strength = rho ** self.cfg.intensity_gamma
            return neutral + strength[:, None, None, None] * (self._flow(x, unit) - neutral)
        return self._flow(x, code)

    def _flow(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self._trunk(x, code), self.cfg.flow_grid) * (2 * self.cfg.flow_max)

    # ---- appearance residual (EditorConfig.appearance) -------------------------------------------
    @property
    def appearance_active(self) -> bool:
        return self.cfg.appearance != "none" and self.use_appearance

    def _features(self, x: torch.Tensor, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the trunk's last features, the flow) for one code: `main` split before its last conv."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"Generator expects (B, 3, H, W) images; got {tuple(x.shape)}")
        if code.shape != (x.shape[0], 2):
            raise ValueError(f"Generator expects codes of shape ({x.shape[0]}, 2); got {tuple(code.shape)}")
        tiled = code[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
        h = self.main[:-2](torch.cat([x, tiled], 1))
        flow = F.adaptive_avg_pool2d(self.main[-2:](h), self.cfg.flow_grid) * (2 * self.cfg.flow_max)
        return h, flow

    def _head(self, h: torch.Tensor, warped: torch.Tensor) -> torch.Tensor:
        """The head's unmasked output in [-1, 1], computed at half resolution and upsampled bilinearly: 'palette' one
        channel (the blend toward the dark or the light colour), 'rgb' three (the change / appearance_max)."""
        raw = self.appearance_head(torch.cat([h, warped], 1))
        low = F.avg_pool2d(raw, 2)
        return torch.tanh(F.interpolate(low, size=raw.shape[-2:], mode="bilinear", align_corners=False))

    def _draw(self, s: torch.Tensor, warped: torch.Tensor) -> torch.Tensor:
        """The masked, bounded change for head output `s` (clipped to [-1, 1]) on the warped crop."""
        s = s.clamp(-1, 1)
        bound = self.app_mask * self.cfg.appearance_max
        if self.app_draw == "palette":  # s < 0: toward the dark colour by |s|; s > 0: toward the light one by s
            s = s * torch.where(s >= 0, self.app_mask_light, self.app_mask_dark)
            res = s * torch.where(s >= 0, self.app_palette[1] - warped, warped - self.app_palette[0])
            # a smaller blend where a channel would change by more than the bound (still toward the same colour)
            return res * (bound / res.abs().amax(1, keepdim=True).clamp(min=1e-12)).clamp(max=1)
        res = s * self.app_mask * self.cfg.appearance_max
        return torch.maximum(torch.minimum(res, bound), -bound)

    def edit_parts(self, x: torch.Tensor, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """An appearance editor's (flow (B, 2, g, g), masked residual (B, 3, S, S)) for images `x` in [-1, 1]: the
        edit is ``clamp(warp(x, flow) + residual, -1, 1)``. The residual is 0 where `app_mask` is 0 and at most
        appearance_max × the mask elsewhere (also when 'interpolate' extrapolates ρ > 1); with `use_appearance`
        False it is all zeros."""
        if self.cfg.appearance == "none":
            raise ValueError("edit_parts() needs an appearance editor (EditorConfig.appearance != 'none')")
        if self.cfg.intensity == "interpolate":
            rho = code.norm(dim=1)
            unit = code / rho.clamp(min=1e-8)[:, None]
            h0, f0 = self._features(x, torch.zeros_like(code))
            h1, f1 = self._features(x, unit)
            s = (rho ** self.cfg.intensity_gamma)[:, None, None, None]
            flow = f0 + s * (f1 - f0)
            if not self.use_appearance:
                return flow, torch.zeros_like(x)
            warped = self.warp(x, flow)
            a0, a1 = self._head(h0, warped), self._head(h1, warped)
            return flow, self._draw(a0 + s * (a1 - a0), warped)
        h, flow = self._features(x, code)
        if not self.use_appearance:
            return flow, torch.zeros_like(x)
        warped = self.warp(x, flow)
        return flow, self._draw(self._head(h, warped), warped)

    def edit_parts_rgb01(self, faces: torch.Tensor, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`edit_parts` for RGB faces in [0, 1] (channel order handled): the flow in `flow` units and the residual
        in RGB, [-1, 1] image units (half of it in [0, 1] units)."""
        x = faces * 2 - 1
        if self.cfg.channel_order == "BGR":
            x = x.flip(1)
        flow, res = self.edit_parts(x, code)
        return flow, (res.flip(1) if self.cfg.channel_order == "BGR" else res)

    @staticmethod
    def warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """`x` resampled at identity + the bicubically upsampled `flow` (border pixels repeat at the edges)."""
        b, _, h, w = x.shape
        dense = F.interpolate(flow, size=(h, w), mode="bicubic", align_corners=True)
        theta = torch.eye(2, 3, dtype=x.dtype, device=x.device).expand(b, 2, 3)
        grid = F.affine_grid(theta, [b, 3, h, w], align_corners=False) + dense.permute(0, 2, 3, 1)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def flow_rgb01(self, faces: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """A flow editor's (B, 2, g, g) displacements for RGB faces in [0, 1] at the editor's size (channel order
        handled); units as `flow`: fractions of the crop's half side, so they apply to the crop at any resolution."""
        x = faces * 2 - 1
        if self.cfg.channel_order == "BGR":
            x = x.flip(1)
        return self.flow(x, code)

    def edit_rgb01(self, faces: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """Edit RGB faces in [0, 1] at the editor's size; returns RGB in [0, 1] (channel order handled)."""
        x = faces * 2 - 1
        if self.cfg.channel_order == "BGR":
            x = x.flip(1)
        y = self(x, code)
        if self.cfg.channel_order == "BGR":
            y = y.flip(1)
        return ((y + 1) / 2).clamp(0, 1)


class Discriminator(nn.Module):
    """PatchGAN critic with the task-aware heads: adversarial map (conv1), expression logits (conv2),
    and a regression of the 2-D code that produced a fake (conv3, GANmut's 'info' head)."""

    def __init__(self, cfg: EditorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_conv_dim
        layers: list[nn.Module] = [nn.Conv2d(3, d, 4, 2, 1), nn.LeakyReLU(0.01)]
        for _ in range(1, cfg.d_repeat_num):
            layers += [nn.Conv2d(d, d * 2, 4, 2, 1), nn.LeakyReLU(0.01)]
            d *= 2
        k = cfg.image_size // 2 ** cfg.d_repeat_num
        self.main = nn.Sequential(*layers)
        self.conv1 = nn.Conv2d(d, 1, 3, 1, 1, bias=False)
        self.conv2 = nn.Conv2d(d, cfg.c_dim, k, bias=False)
        self.conv3 = nn.Conv2d(d, 2, k, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.main(x)
        return self.conv1(h), self.conv2(h).flatten(1), self.conv3(h).flatten(1)


# ---- persistence ---------------------------------------------------------------------------------
GENERATOR_FILE = "generator.pt"
CONFIG_FILE = "editor.json"


def save_generator(folder: str | os.PathLike, generator: Generator, extra: dict[str, Any] | None = None) -> Path:
    """Write `generator.pt` (state_dict) and `editor.json` (config + learned control space) atomically."""
    folder = Path(folder)
    save_torch(folder / GENERATOR_FILE, {k: v.detach().cpu() for k, v in generator.state_dict().items()})
    write_json(folder / CONFIG_FILE, {"config": generator.cfg.to_dict(),
                                      "control_space": generator.control_space().to_dict(), **(extra or {})})
    return folder


def load_generator(folder: str | os.PathLike, intensity: str | None = None,
                   intensity_gamma: float | None = None) -> Generator:
    """Rebuild a generator saved by `save_generator` (strict key check); `intensity` and `intensity_gamma`
    override the saved `EditorConfig` fields (how ρ becomes strength: a property of editing, not of the weights)."""
    folder = Path(folder)
    cfg_file = folder / CONFIG_FILE
    if not cfg_file.exists():
        raise CheckpointError(f"{cfg_file}: editor config not found (expected next to {GENERATOR_FILE})")
    cfg = EditorConfig.from_dict(json.loads(cfg_file.read_text())["config"])
    changes = {k: v for k, v in (("intensity", intensity), ("intensity_gamma", intensity_gamma))
               if v is not None and v != getattr(cfg, k)}
    if changes:
        try:
            cfg = dataclasses.replace(cfg, **changes)
        except ValueError as e:
            raise CheckpointError(f"{cfg_file}: {e}") from e
    g = Generator(cfg)
    _load_strict(g, torch.load(folder / GENERATOR_FILE, map_location="cpu", weights_only=True), str(folder / GENERATOR_FILE))
    return g.eval()


def _unwrap(state: Any, where: str) -> dict[str, torch.Tensor]:
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if isinstance(state, dict) and "G" in state and isinstance(state["G"], dict):
        state = state["G"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{where}: not a generator state_dict (mapping of names to tensors)")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _load_strict(g: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    own = g.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    bad = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or bad:
        detail = "; ".join(f"{n}: {v[:6]}{' ...' if len(v) > 6 else ''}" for n, v in
                           (("missing", missing), ("unexpected", unexpected),
                            ("shape mismatch", [f"{k} {tuple(state[k].shape)}≠{tuple(own[k].shape)}" for k in bad]))
                           if v)
        raise CheckpointError(f"{where}: checkpoint does not fit {type(g).__name__}({getattr(g, 'cfg', '')}): {detail}")
    g.load_state_dict(state, strict=True)


def infer_official_config(state: dict[str, torch.Tensor], image_size: int = 128) -> EditorConfig:
    """Architecture sizes and control model of a GANmut/StarGAN generator state dict, from its key names."""
    if "main.0.weight" not in state:
        raise CheckpointError("no 'main.0.weight': not a StarGAN/GANmut generator state dict")
    w0 = state["main.0.weight"]
    if w0.ndim != 4 or w0.shape[1] != 5 or tuple(w0.shape[2:]) != (7, 7):
        raise CheckpointError(f"main.0.weight has shape {tuple(w0.shape)}; expected (conv_dim, 5, 7, 7) "
                              "(3 image + 2 code channels)")
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"main\.(\d+)\.main\.0\.weight$", k))}
    if "axes.weight" in state:
        control, c_dim = "linear", state["axes.weight"].shape[0] + 1
    elif "mu.weight" in state:
        control, c_dim = "gaussian", state["mu.weight"].shape[0]
    else:
        raise CheckpointError("neither 'axes.weight' (linear GANmut) nor 'mu.weight' (Gaussian GANmut) present")
    if c_dim != L.NUM_CLASSES:
        raise CheckpointError(f"checkpoint has {c_dim} expression classes; expected {L.NUM_CLASSES}")
    return EditorConfig(control=control, image_size=image_size, conv_dim=int(w0.shape[0]), repeat_num=len(blocks),
                        d_conv_dim=64, d_repeat_num=6 if image_size % 64 == 0 else 2, c_dim=c_dim,
                        channel_order="BGR", source="official")


OFFICIAL_EXPECTED = ("an official GANmut generator *-G.ckpt (StarGAN names: main.0.weight with "
                     "5 input channels, and axes.weight or mu.weight)")


def load_official_generator(path_or_state: str | os.PathLike | dict[str, torch.Tensor], image_size: int = 128) -> Generator:
    """Load an official GANmut generator (``*-G.ckpt``, StarGAN naming); control model and sizes are inferred.

    The returned editor takes/returns RGB (it flips to the BGR order the weights were trained on) and its
    `control_space()` holds the paper's F (Gaussian) or V (linear) values.
    """
    where = str(path_or_state) if not isinstance(path_or_state, dict) else "<state dict>"
    if isinstance(path_or_state, dict):
        state = path_or_state
    else:
        p = Path(path_or_state)
        if not p.exists():
            raise CheckpointError(f"{p}: GANmut generator checkpoint not found")
        try:
            state = load_torch(p, "GANmut generator checkpoint", expected=OFFICIAL_EXPECTED)
        except StateFileError as e:
            raise CheckpointError(str(e)) from None
    state = _unwrap(state, where)
    try:
        cfg = infer_official_config(state, image_size)
    except CheckpointError as e:
        raise CheckpointError(f"{where}: {e}; expected {OFFICIAL_EXPECTED}") from None
    g = Generator(cfg)
    _load_strict(g, state, where)
    return g.eval()


def code_index(label: str) -> int:
    """GANMUT_ORDER index of a canonical class name."""
    return GANMUT_ORDER.index(L.canonical(label))
