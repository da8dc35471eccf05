"""The inner-face inpainting editor (issue #30): a class-conditional U-Net *draws* the target expression's brows,
eyes and mouth inside a feathered inner-face mask; everything outside the mask is the source's, byte for byte.

Where the flow editor (`networks.Generator` with ``flow_grid``) warps what the source already shows (it cannot open
a mouth or show eye whites), this one fills the inner face in, conditioned on the class, from the rest of the face
(identity, skin, hair, light). Measured against the flow editor on the procedural world in ``models/gan/README.md``
(section "world_inpaint64_d4"): fear and surprise are drawn, and a classifier trained on its edits reads the RAF-DB
stand-in better; its judged fidelity is lower.

How a face is edited (`InpaintEditor.edit_batch`):
1. five points of the face (eye centres, nose tip, mouth corners) — found in the editor's square frame of its box
   by a landmark predictor (`landmarks.LandmarkPredictor`: the pipeline has boxes, not landmarks), or given — are
   mapped onto a 64-px template by a similarity transform (`align`);
2. the U-Net fills the inner-face mask (`inner_mask`: brows to mouth, feathered) of that crop for the class
   condition of intensity ρ (`condition`: (1 − ρ)·neutral + ρ·class);
3. the filled crop and the mask are warped back at the source's own resolution and blended (full path); or, as
   the paper's crop path, the whole 64-px crop is pasted back over its frame (then the seam repair runs).

The editor folder holds ``generator.pt`` (fp16 weights, ``channels``, ``step``) and ``editor.json``
(``{"kind": "inpaint", "config": InpaintConfig}``); `load_inpaint_editor` reads it with a landmark predictor,
`editors.load_editor` picks it by ``kind``. Training (`train_inpainter`) and the experiment CLI are in ``scripts/gan_inpaint.py``.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from syntfer.core import labels as L
from syntfer.core.storage import atomic_path, load_torch, write_json
from syntfer.strategies.gan.controls import GANMUT_ORDER, ControlSpace, ControlValue

SIZE = 64
# the 5 points' places in the 64-px crop: left eye, right eye, nose tip, left and right mouth corner
TEMPLATE = np.array([[20.5, 25.0], [43.5, 25.0], [32.0, 36.0], [23.5, 46.0], [40.5, 46.0]])
FEATHER = 0.35            # the blend falls from 1 to 0 over the outer 35 % of the ellipse's radius
FACE_DROP = 0.45          # the inner face's ellipse: centred this far from the eyes toward the mouth,
FACE_AXES = (0.95, 1.05)  # semi-axes: these multiples of the eye distance and of the eyes-to-mouth distance
KIND = "inpaint"


class InpaintError(ValueError):
    """An inpainting editor, face or request that cannot be used; names the file or value and what was expected."""


@dataclasses.dataclass(frozen=True)
class InpaintConfig:
    """What an inpainting editor is: its U-Net width, its critic's depth (training only) and its inner-face mask."""

    channels: int = 24
    critic_depth: int = 4
    image_size: int = SIZE
    mask: tuple[float, float, float, float] = (1.0, 1.0, 1.0, FEATHER)  # `inner_mask`'s top, bottom, width, feather
    kind: str = KIND

    def __post_init__(self) -> None:
        if self.kind != KIND:
            raise InpaintError(f"InpaintConfig kind {self.kind!r}; expected {KIND!r}")
        if self.image_size != SIZE:
            raise InpaintError(f"InpaintConfig image_size {self.image_size}; this editor is built for {SIZE} px")
        if len(self.mask) != 4 or not (min(self.mask[:3]) > 0 and 0 < self.mask[3] <= 1):
            raise InpaintError(f"InpaintConfig mask {self.mask!r}; expected (top, bottom, width, feather) > 0, "
                               "feather <= 1")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["mask"] = list(self.mask)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "editor.json") -> "InpaintConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        extra = sorted(set(d) - names)
        if extra:
            raise InpaintError(f"{where}: unknown inpainting-editor field(s) {extra}; known: {sorted(names)}")
        return cls(**{**d, "mask": tuple(float(v) for v in d.get("mask", (1.0, 1.0, 1.0, FEATHER)))})


# ---- geometry -----------------------------------------------------------------------------------------------
def face_ellipse(shape: tuple[int, int], lm: np.ndarray, top: float = 1.0, bottom: float = 1.0,
                 width: float = 1.0) -> np.ndarray:
    """Normalised elliptic radius around the inner face of the 5 points `lm`: brows, eyes, nose and mouth (centred
    `FACE_DROP` of the eyes-to-mouth distance below the eyes, semi-axes `FACE_AXES` of the eye distance and of the
    eyes-to-mouth distance, times `width` across, `top` above the centre and `bottom` below it). Upright faces (the
    aligned template's frame)."""
    eyes, mouth = lm[0:2].mean(0), lm[3:5].mean(0)
    de, dv = float(np.linalg.norm(lm[1] - lm[0])), float(np.linalg.norm(mouth - eyes))
    c = eyes + FACE_DROP * (mouth - eyes)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    ry = np.where(yy < c[1], top, bottom) * FACE_AXES[1] * dv
    return np.sqrt(((xx - c[0]) / (width * FACE_AXES[0] * de)) ** 2 + ((yy - c[1]) / ry) ** 2)


def inner_mask(size: int = SIZE, top: float = 1.0, bottom: float = 1.0, width: float = 1.0,
               feather: float = FEATHER) -> np.ndarray:
    """The feathered inner-face mask on the template (1 inside, 0 outside; float32): `face_ellipse` with those
    factors, falling from 1 to 0 over its outer `feather` of the radius (smoothstep)."""
    e = face_ellipse((size, size), TEMPLATE * size / SIZE, top, bottom, width)
    a = np.clip((1.0 - e) / feather, 0, 1)
    return (a * a * (3 - 2 * a)).astype(np.float32)


def align(image: np.ndarray, lm: np.ndarray, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """The face warped onto the template (least-squares similarity of its 5 points `lm`); (crop, 2×3 matrix)."""
    m, _ = cv2.estimateAffinePartial2D(np.asarray(lm, np.float32), (TEMPLATE * size / SIZE).astype(np.float32),
                                       ransacReprojThreshold=1e3)
    if m is None or not np.isfinite(m).all():
        raise InpaintError(f"no similarity transform from the face's points {np.asarray(lm).tolist()} to the template")
    flags = cv2.INTER_AREA if abs(m[0, 0]) < 1 else cv2.INTER_CUBIC
    return cv2.warpAffine(image, m, (size, size), flags=flags, borderMode=cv2.BORDER_REFLECT), m


# ---- networks -------------------------------------------------------------------------------------------------
def _block(i: int, o: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(i, o, 3, stride, 1), nn.GroupNorm(4, o), nn.SiLU())


class Inpainter(nn.Module):
    """A 4-level U-Net: input the masked crop, the mask and the class (one-hot planes, again at the bottleneck);
    output the crop with the mask's pixels drawn (the rest passed through)."""

    def __init__(self, c: int = 24, classes: int = L.NUM_CLASSES) -> None:
        super().__init__()
        self.k = classes
        self.e0, self.e1 = _block(3 + 1 + classes, c), _block(c, 2 * c, 2)
        self.e2, self.e3 = _block(2 * c, 4 * c, 2), _block(4 * c, 4 * c, 2)
        self.mid = nn.Sequential(_block(4 * c + classes, 4 * c), _block(4 * c, 4 * c))
        self.d3, self.d2, self.d1 = _block(8 * c, 4 * c), _block(8 * c, 2 * c), _block(4 * c, c)
        self.out = nn.Conv2d(2 * c, 3, 3, 1, 1)

    def forward(self, x: torch.Tensor, m: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """`x` (N, 3, H, W) in [-1, 1]; `m` the mask (1, 1, H, W); `y` class indices (N,) or class weights (N, K)
        (`condition`'s blend of neutral and a target)."""
        n, _, h, w = x.shape
        m = m.expand(n, 1, h, w)
        oh = (F.one_hot(y, self.k).float() if y.dim() == 1 else y.float())[:, :, None, None]
        h0 = self.e0(torch.cat([x * (1 - m), m, oh.expand(-1, -1, h, w)], 1))
        h1 = self.e1(h0)
        h2 = self.e2(h1)
        h3 = self.e3(h2)
        z = self.mid(torch.cat([h3, oh.expand(-1, -1, h3.shape[2], h3.shape[3])], 1))
        u = self.d3(torch.cat([z, h3], 1))
        u = self.d2(torch.cat([F.interpolate(u, scale_factor=2.0), h2], 1))
        u = self.d1(torch.cat([F.interpolate(u, scale_factor=2.0), h1], 1))
        o = torch.tanh(self.out(torch.cat([F.interpolate(u, scale_factor=2.0), h0], 1)))
        return x * (1 - m) + o * m


class Critic(nn.Module):
    """Patch critic with a class projection (hinge loss) and an expression head on its pooled features (trained on
    real faces; the generator is asked to draw what it reads as the target: StarGAN/GANmut's classification loss).
    `depth` stride-2 convolutions (3: 8×8 patches; 4: down to 4×4 with twice the features — its head learns the
    classes, the 3-deep one's does not: models/gan/README.md)."""

    def __init__(self, c: int = 32, classes: int = L.NUM_CLASSES, depth: int = 3) -> None:
        super().__init__()
        layers, i = [], 3
        for k in range(depth):
            layers += [nn.Conv2d(i, c * 2 ** k, 4, 2, 1), nn.LeakyReLU(0.2)]
            i = c * 2 ** k
        self.f = nn.Sequential(*layers)
        self.lin = nn.Conv2d(i, 1, 1)
        self.emb = nn.Embedding(classes, i)
        self.head = nn.Linear(i, classes)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(patch realism scores, expression logits)"""
        h = self.f(x)
        return self.lin(h) + (h * self.emb(y)[:, :, None, None]).sum(1, keepdim=True), self.head(h.mean((2, 3)))


def condition(label: str, rho: float = 1.0) -> torch.Tensor:
    """The class condition of intensity `rho` (1, K): (1 − ρ)·neutral + ρ·`label` — ρ = 1 the trained one-hot, 0
    neutral, between them an interpolated condition the generator never saw in training (it is continuous in it;
    that the drawn expression weakens with ρ is measured, models/gan/README.md), above 1 extrapolated."""
    if label not in L.CLASS_TO_INDEX:
        raise InpaintError(f"label {label!r} is not one of {list(L.CLASSES)}")
    c = torch.zeros(1, L.NUM_CLASSES)
    c[0, L.CLASS_TO_INDEX["neutral"]] += 1.0 - rho
    c[0, L.CLASS_TO_INDEX[label]] += rho
    return c


# ---- the editor ----------------------------------------------------------------------------------------------
def control_space() -> ControlSpace:
    """The inpainter's codes in the pipeline's control model: a linear space whose six class axes are evenly spaced
    (their angles mean nothing to the network, which reads the label); ρ = the code's length is the intensity."""
    classes = [c for c in GANMUT_ORDER if c != "neutral"]
    return ControlSpace("linear", {c: 2 * math.pi * i / len(classes) for i, c in enumerate(classes)}, None, "own")


class InpaintEditor:
    """A trained `Inpainter` with the landmark predictor that aligns its faces, behind the interface
    `editing.edit_images` uses for every editor (`kind`, `cfg`, `control_space`, `edit_batch`). `landmarks`: a
    callable (RGB uint8 image, square frame (x, y, side, side)) → (5, 2) points, e.g. a `LandmarkPredictor`; None:
    every call must pass the points. `gamma`: a code of intensity ρ draws with the condition of strength ρ**gamma
    (`condition`; the pipeline's ``gan.intensity_gamma``, as the flow editors' interpolated strength)."""

    kind = KIND

    def __init__(self, g: Inpainter, cfg: InpaintConfig, step: int = 0,
                 landmarks: Callable[[np.ndarray, Sequence[float]], np.ndarray] | None = None,
                 gamma: float = 1.0) -> None:
        if not gamma > 0:
            raise InpaintError(f"intensity gamma {gamma!r}; expected > 0")
        self.g, self.cfg, self.step, self.landmarks, self.gamma = g.eval(), cfg, int(step), landmarks, float(gamma)
        self.mask = inner_mask(cfg.image_size, *cfg.mask)

    def control_space(self) -> ControlSpace:
        return control_space()

    @torch.no_grad()
    def draw(self, crops: np.ndarray, codes: Sequence[ControlValue]) -> np.ndarray:
        """Aligned crops (N, 64, 64, 3) uint8 with their inner faces drawn for each code's label at strength ρ**gamma
        (float32 0..255, the pixels outside the mask passed through); a neutral code draws neutral."""
        x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float() / 127.5 - 1
        cond = torch.cat([condition(c.label, c.rho ** self.gamma if c.label != "neutral" else 1.0) for c in codes])
        o = self.g(x, torch.from_numpy(self.mask)[None, None], cond)
        return ((o.permute(0, 2, 3, 1).numpy() + 1) * 127.5).clip(0, 255).astype(np.float32)

    def edit_batch(self, images: Sequence[np.ndarray], frames: Sequence[Sequence[int]], codes: Sequence[ControlValue],
                   restorer, degrade_cfg, rngs: Sequence[np.random.Generator], *, resolution: str = "full",
                   landmarks: Sequence[np.ndarray] | None = None):
        """`editing.edit_images` for this editor: each image aligned by its 5 points (`landmarks`, else the
        predictor's in its `frames`), drawn, and put back — 'full': the drawn crop and the mask warped back at the
        image's resolution and blended (outside the mask the source's bytes; no seam, no repair); 'crop': the whole
        64-px crop pasted back over its aligned square, then the seam repair with `restorer` (the paper's procedure,
        for comparison)."""
        from syntfer.strategies.gan.editing import DegradeConfig, EditResult, degrade

        if landmarks is None and self.landmarks is None:
            raise InpaintError("this inpainting editor has no landmark predictor (gan.landmarks): it cannot align "
                               "faces from their boxes")
        pts = ([np.asarray(lm, np.float64) for lm in landmarks] if landmarks is not None
               else [self.landmarks(im, f) for im, f in zip(images, frames)])
        aligned = [align(im, p, self.cfg.image_size) for im, p in zip(images, pts)]
        if not aligned:
            return EditResult([], [], [], resolution)
        drawn = self.draw(np.stack([a[0] for a in aligned]), codes)
        crops = [np.rint(d).astype(np.uint8) for d in drawn]
        out = []
        for im, (_, mat), d in zip(images, aligned, drawn):
            h, w = im.shape[:2]
            inv = cv2.invertAffineTransform(mat)
            back = cv2.warpAffine(d, inv, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
            if resolution == "full":
                a = cv2.warpAffine(self.mask, inv, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            else:  # the whole aligned square, hard-edged: a pasted crop with a seam
                a = cv2.warpAffine(np.ones_like(self.mask), inv, (w, h), flags=cv2.INTER_NEAREST,
                                   borderMode=cv2.BORDER_CONSTANT)
            a = a[..., None]
            res = np.clip(im * (1 - a) + back * a, 0, 255).round().astype(np.uint8)
            keep = a[..., 0] <= 0
            res[keep] = im[keep]
            out.append(res)
        if resolution == "full" or restorer is None:
            return EditResult(out, list(out), crops, resolution)
        dcfg = degrade_cfg or DegradeConfig()
        repaired = [restorer(degrade(p, tuple(int(v) for v in f), dcfg, r), tuple(int(v) for v in f))
                    for p, f, r in zip(out, frames, rngs)]
        return EditResult(out, repaired, crops, resolution)


def save_inpaint_editor(folder: str | os.PathLike, g: Inpainter, cfg: InpaintConfig, step: int,
                        extra: dict[str, Any] | None = None) -> Path:
    """`folder`/generator.pt (fp16 weights, ``channels``, ``step``) and `folder`/editor.json (kind, config, `extra`),
    both written atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "generator.pt") as tmp:
        torch.save({"g": {k: v.detach().half() for k, v in g.state_dict().items()}, "channels": cfg.channels,
                    "step": int(step)}, tmp)
    write_json(folder / "editor.json", {"kind": KIND, "config": cfg.to_dict(), **(extra or {})})
    return folder / "generator.pt"


def load_inpaint_editor(folder: str | os.PathLike, landmarks: str | os.PathLike | None = None,
                        gamma: float = 1.0) -> InpaintEditor:
    """The editor of a committed folder (generator.pt + editor.json, ``kind`` "inpaint") with the landmark predictor
    file `landmarks` (`landmarks.LandmarkPredictor`; None: points must be passed to every edit) and the intensity
    exponent `gamma` (`InpaintEditor`)."""
    folder = Path(folder)
    meta_path, weights = folder / "editor.json", folder / "generator.pt"
    for p in (meta_path, weights):
        if not p.is_file():
            raise InpaintError(f"{p}: missing (an inpainting editor folder holds generator.pt and editor.json)")
    meta = json.loads(meta_path.read_text())
    if meta.get("kind") != KIND:
        raise InpaintError(f"{meta_path}: kind {meta.get('kind')!r}; expected {KIND!r}")
    cfg = InpaintConfig.from_dict(meta.get("config", {}), str(meta_path))
    s = load_torch(weights, "inpainting editor weights")
    if int(s.get("channels", cfg.channels)) != cfg.channels:
        raise InpaintError(f"{weights}: {s.get('channels')} channels, {meta_path} says {cfg.channels}")
    g = Inpainter(cfg.channels)
    try:
        g.load_state_dict({k: v.float() for k, v in s["g"].items()})
    except (KeyError, RuntimeError) as e:
        raise InpaintError(f"{weights}: not the weights of a {cfg.channels}-channel Inpainter ({e})") from None
    from syntfer.strategies.gan.landmarks import LandmarkPredictor

    return InpaintEditor(g, cfg, int(s.get("step", 0)), LandmarkPredictor(landmarks) if landmarks else None, gamma)
