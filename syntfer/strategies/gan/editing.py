"""The editing procedure (docs/method.md §5): detect → crop → resize → edit → resize back → paste → seam repair.

Flow editors (`EditorConfig.flow_grid > 0`) take a sharper path by default (`resolution="full"`): the editor
computes its displacement field on the resized crop (its own resolution, e.g. 48 px), the *field* is upsampled to
the face frame's size in the source, multiplied by a soft face mask (`face_mask`: an ellipse inside the face box,
feathered to zero, so hair, head outline and background do not bend) and the source is resampled at its own
resolution. Nothing is resized back, every pixel where the mask is 0 is the source's byte for byte, and the
displacement fades continuously to zero, so there is no seam and no seam repair is run (the paper's whole-image
degrade + restore would blur what the warp kept). A flow editor has no residual image (`EditorConfig`: flow and
residual exclude each other), so the field is all there is to upsample. `resolution="crop"` is the older path
(warp the 48-px crop, scale it back up, paste, repair) kept for comparison; pixel editors always take it.

Seam repair is the paper's "domain adaptation": degrade a band on the box border (Gaussian blur k15 σ5 +
noise σ0.15, [0, 1] units) plus mild global degradation (blur k5 σ2 + noise σ0.05), then run a restorer.
The paper's numbers are for 256-px FFHQ images; geometric sizes (band width, kernel, σ) scale with the image
side over `reference_size`, noise levels do not. Restorers are pluggable: `CodeFormerRestorer` when the
user has CodeFormer's code and weights, `DenoiseRestorer` (OpenCV non-local means + unsharp mask) by default.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from syntfer.strategies.gan.controls import ControlValue
from syntfer.strategies.gan.networks import Generator

Box = tuple[int, int, int, int]  # x, y, width, height (pixels)
BOX_NAMES: tuple[str, ...] = ("face_x", "face_y", "face_width", "face_height")  # as AffectNet / the world write them


class EditError(ValueError):
    """A face box or image that cannot be edited; names the value and what was expected."""


# ---- box maths -------------------------------------------------------------------------------------
def clip_box(box: Sequence[float], width: int, height: int, where: str = "") -> Box:
    """Round a box to integers and clip it to the image; raises if nothing of it is left."""
    x, y, w, h = (float(v) for v in box)
    x0, y0 = max(0, int(round(x))), max(0, int(round(y)))
    x1, y1 = min(width, int(round(x + w))), min(height, int(round(y + h)))
    if x1 - x0 < 4 or y1 - y0 < 4:
        raise EditError(f"{where}: face box {tuple(box)} leaves {x1 - x0}x{y1 - y0} px inside a {width}x{height} "
                        "image; expected at least 4x4")
    return x0, y0, x1 - x0, y1 - y0


def crop_resize(image: np.ndarray, box: Box, size: int) -> np.ndarray:
    """The box's pixels resized to size×size (area interpolation down, cubic up)."""
    x, y, w, h = box
    crop = image[y:y + h, x:x + w]
    interp = cv2.INTER_AREA if min(w, h) >= size else cv2.INTER_CUBIC
    return cv2.resize(crop, (size, size), interpolation=interp)


def paste(image: np.ndarray, face: np.ndarray, box: Box) -> np.ndarray:
    """A copy of `image` with `face` resized into `box` (pixels outside the box are untouched)."""
    x, y, w, h = box
    interp = cv2.INTER_AREA if face.shape[0] >= max(w, h) else cv2.INTER_CUBIC
    out = image.copy()
    out[y:y + h, x:x + w] = cv2.resize(face, (w, h), interpolation=interp)
    return out


def band_mask(shape: tuple[int, int], box: Box, band: int) -> np.ndarray:
    """Boolean mask of pixels within band/2 of the box's border (a frame centred on the seam)."""
    hgt, wid = shape
    x, y, w, h = box
    half = max(1, band // 2)
    yy, xx = np.mgrid[0:hgt, 0:wid]
    outer = (xx >= x - half) & (xx < x + w + half) & (yy >= y - half) & (yy < y + h + half)
    inner = (xx >= x + half) & (xx < x + w - half) & (yy >= y + half) & (yy < y + h - half)
    return outer & ~inner


# ---- the full-resolution masked warp ------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class FaceMask:
    """Where a warp may move pixels: an ellipse inside the face box, 1 in its inner part, smoothly 0 at its edge.

    Fractions of the face box (the world's boxes span hair to chin and ear to ear): centre `centre_y` of the
    height from the top, semi-axes `radius_x`·width and `radius_y`·height; the displacement is full inside
    `inner` of the ellipse's radius and falls to 0 (smoothstep) at its edge, so brows, eyes, nose, mouth and
    cheeks move and the hair, the head outline and everything around them stay where they are (the default
    ellipse touches the face box's sides, so nothing left or right of the box moves). Chosen on 40 faces × 7
    classes with the committed editor (models/gan/README.md): a tighter ellipse (0.42 / 0.42 / 0.6) cost judged
    fidelity (0.64 against 0.66), no mask at all gives 0.69 — the judge partly reads the bent outline; keeping the
    forehead and hairline still (`radius_top` 0.33, centre 0.58) costs more (0.61; anger 0.68 → 0.48: this editor
    moves the forehead with the brows), so by default the top of the head moves a little with the brows.
    """

    centre_y: float = 0.55
    radius_x: float = 0.5
    radius_y: float = 0.5
    inner: float = 0.5
    radius_top: float | None = None  # the semi-axis above the centre (forehead, hairline); None: radius_y

    def __post_init__(self) -> None:
        if not (0 < self.radius_x and 0 < self.radius_y and 0 <= self.inner < 1
                and (self.radius_top is None or self.radius_top > 0)):
            raise ValueError(f"FaceMask{dataclasses.astuple(self)}: expected radii > 0 and 0 <= inner < 1")


def face_mask(shape: tuple[int, int], face: Sequence[float], cfg: FaceMask = FaceMask()) -> np.ndarray:
    """(H, W) float32 soft mask in [0, 1] of `face` = (x, y, w, h) (the face box, not the editor's square frame)."""
    hgt, wid = shape
    x, y, w, h = (float(v) for v in face)
    cx, cy = x + w / 2.0, y + cfg.centre_y * h
    yy, xx = np.mgrid[0:hgt, 0:wid].astype(np.float32) + 0.5  # pixel centres
    ry = np.where(yy < cy, cfg.radius_top if cfg.radius_top is not None else cfg.radius_y, cfg.radius_y) * h
    r = np.sqrt(((xx - cx) / (cfg.radius_x * w)) ** 2 + ((yy - cy) / ry) ** 2)
    t = np.clip((1.0 - r) / (1.0 - cfg.inner), 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


# how the source is resampled: bicubic keeps edges that a sub-pixel bilinear shift softens (fine texture warped by a few
# pixels keeps 0.90 of its Laplacian variance against 0.66 bilinear, hard 2-8 px squares 0.79-0.82 against 0.61-0.64;
# tests/test_gan_sharp.py); its slight overshoot is why real faces can read a little above their sources (README)
WARP_SAMPLING = "bicubic"


def warp_full(image: np.ndarray, frame: Box, flow: torch.Tensor, mask: np.ndarray) -> np.ndarray:
    """`image` (uint8 H×W×3) warped at its own resolution by a crop-space `flow` (2, g, g) (grid_sample units of
    the crop `frame`, as `Generator.flow` gives them), upsampled bicubically to the frame's size and multiplied
    by `mask` (H, W). Pixels where the mask is 0 are returned unchanged (bit for bit); a zero flow returns the
    image itself."""
    hgt, wid = image.shape[:2]
    x, y, w, h = frame
    if mask.shape != (hgt, wid):
        raise EditError(f"warp_full: mask {mask.shape} does not match the image {(hgt, wid)}")
    if not torch.any(flow != 0):
        return image.copy()
    dense = F.interpolate(flow[None].float(), size=(h, w), mode="bicubic", align_corners=True)[0]  # crop units
    disp = torch.zeros(2, hgt, wid)
    disp[0, y:y + h, x:x + w] = dense[0] * (w / wid)  # crop's [-1, 1] → image's [-1, 1]
    disp[1, y:y + h, x:x + w] = dense[1] * (h / hgt)
    m = torch.from_numpy(mask)
    disp = disp * m
    src = torch.from_numpy(np.array(image, dtype=np.float32)).permute(2, 0, 1)[None]
    theta = torch.eye(2, 3).expand(1, 2, 3)
    grid = F.affine_grid(theta, [1, 3, hgt, wid], align_corners=False) + disp.permute(1, 2, 0)[None]
    out = F.grid_sample(src, grid, mode=WARP_SAMPLING, padding_mode="border", align_corners=False)
    out = out[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    keep = mask <= 0
    out[keep] = image[keep]
    return out


def add_residual_full(image: np.ndarray, frame: Box, residual: torch.Tensor, mask: np.ndarray) -> np.ndarray:
    """`image` (uint8 H×W×3, e.g. the full-resolution warp) plus an appearance editor's crop-space `residual`
    (3, S, S; RGB, [-1, 1] image units, as `Generator.edit_parts_rgb01` gives it) upsampled bilinearly to the crop
    `frame` and multiplied by `mask` (H, W). Pixels outside the frame or where the mask is 0 are returned unchanged;
    an all-zero residual returns the image itself."""
    hgt, wid = image.shape[:2]
    x, y, w, h = frame
    if mask.shape != (hgt, wid):
        raise EditError(f"add_residual_full: mask {mask.shape} does not match the image {(hgt, wid)}")
    if not torch.any(residual != 0):
        return image.copy()
    up = F.interpolate(residual[None].float(), size=(h, w), mode="bilinear", align_corners=False)[0]
    delta = np.zeros((hgt, wid, 3), np.float32)
    delta[y:y + h, x:x + w] = up.permute(1, 2, 0).numpy() * 127.5  # [-1, 1] units → 0..255
    out = np.clip(np.rint(image.astype(np.float32) + delta * mask[..., None]), 0, 255).astype(np.uint8)
    keep = mask <= 0
    out[keep] = image[keep]
    return out


# ---- degradation + restoration ---------------------------------------------------------------------
@dataclasses.dataclass
class DegradeConfig:
    """The paper's domain-adaptation degradation, sizes in pixels at `reference_size`."""

    band: float = 30.0
    band_blur_kernel: int = 15
    band_blur_sigma: float = 5.0
    band_noise: float = 0.15
    global_blur_kernel: int = 5
    global_blur_sigma: float = 2.0
    global_noise: float = 0.05
    reference_size: int = 256

    def scaled(self, side: int) -> dict[str, float]:
        s = side / self.reference_size
        odd = lambda k: max(1, int(round(k * s)) | 1)  # noqa: E731  (Gaussian kernels must be odd)
        return {"band": max(2, int(round(self.band * s))), "band_k": odd(self.band_blur_kernel),
                "band_sigma": max(0.3, self.band_blur_sigma * s), "global_k": odd(self.global_blur_kernel),
                "global_sigma": max(0.3, self.global_blur_sigma * s)}


def degrade(image: np.ndarray, box: Box, cfg: DegradeConfig, rng: np.random.Generator) -> np.ndarray:
    """Band blur + noise on the box border, then global blur + noise (uint8 in, uint8 out)."""
    p = cfg.scaled(min(image.shape[:2]))
    f = image.astype(np.float32) / 255.0
    mask = band_mask(image.shape[:2], box, p["band"])
    band = cv2.GaussianBlur(f, (p["band_k"], p["band_k"]), p["band_sigma"])
    band = band + rng.normal(0.0, cfg.band_noise, f.shape).astype(np.float32)
    f = np.where(mask[..., None], band, f)
    f = cv2.GaussianBlur(f, (p["global_k"], p["global_k"]), p["global_sigma"])
    f = f + rng.normal(0.0, cfg.global_noise, f.shape).astype(np.float32)
    return (np.clip(f, 0, 1) * 255 + 0.5).astype(np.uint8)


class Restorer(Protocol):
    name: str

    def __call__(self, image: np.ndarray, box: Box) -> np.ndarray: ...


@dataclasses.dataclass
class NoRestorer:
    """Leave the degraded image as it is (ablation)."""

    name: str = "none"

    def __call__(self, image: np.ndarray, box: Box) -> np.ndarray:
        return image


@dataclasses.dataclass
class DenoiseRestorer:
    """Default restorer that runs here: OpenCV non-local-means colour denoising, then an unsharp mask.

    It removes the degradation's noise and restores edge contrast; it has no face prior, so it cannot
    invent detail the way CodeFormer does. `h` scales with the noise level the degradation adds.
    """

    h: float = 10.0
    template: int = 5
    search: int = 15
    unsharp_sigma: float = 1.0
    unsharp_amount: float = 0.6
    name: str = "denoise"

    def __call__(self, image: np.ndarray, box: Box) -> np.ndarray:
        den = cv2.fastNlMeansDenoisingColored(image, None, self.h, self.h, self.template, self.search)
        blur = cv2.GaussianBlur(den, (0, 0), self.unsharp_sigma)
        return cv2.addWeighted(den, 1 + self.unsharp_amount, blur, -self.unsharp_amount, 0)


@dataclasses.dataclass
class CodeFormerRestorer:
    """CodeFormer face restoration (fidelity w = 0.5 at 512×512, as in the paper) on the box region.

    Needs the user's `codeformer.pth` and the CodeFormer architecture: by default taken from the
    CodeFormer repository's `basicsr` package (``ARCH_REGISTRY.get('CodeFormer')`` with the official
    sizes); `arch_factory` may supply any module with ``forward(x, w=..., adain=True) -> (out, ...)``.
    Input/output of the net: RGB in [-1, 1], 512×512.
    """

    weights: str | os.PathLike | None = None
    fidelity: float = 0.5
    size: int = 512
    arch_factory: Callable[[], torch.nn.Module] | None = None
    name: str = "codeformer"

    def __post_init__(self) -> None:
        if self.weights is None and self.arch_factory is None:
            raise ValueError("CodeFormerRestorer needs `weights` (codeformer.pth) unless an arch_factory is given")
        if self.weights is not None and not Path(self.weights).exists():
            raise FileNotFoundError(f"{self.weights}: CodeFormer weights not found (codeformer.pth from the CodeFormer "
                                    "release)")
        self.net = (self.arch_factory or _official_codeformer_arch)()
        if self.weights is not None:
            state = torch.load(self.weights, map_location="cpu", weights_only=True)
            self.net.load_state_dict(state.get("params_ema", state))
        self.net.eval()

    @torch.no_grad()
    def __call__(self, image: np.ndarray, box: Box) -> np.ndarray:
        h, w = image.shape[:2]
        # restore a square region around the face box with 30 % context, as face restorers expect
        x, y, bw, bh = box
        side = int(round(max(bw, bh) * 1.3))
        region = clip_box((x + bw / 2 - side / 2, y + bh / 2 - side / 2, side, side), w, h)
        face = crop_resize(image, region, self.size)
        t = torch.from_numpy(face).permute(2, 0, 1)[None].float() / 127.5 - 1
        out = self.net(t, w=self.fidelity, adain=True)[0]
        arr = ((out[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
        return paste(image, arr, region)


def _official_codeformer_arch() -> torch.nn.Module:
    try:
        from basicsr.utils.registry import ARCH_REGISTRY  # CodeFormer's own basicsr fork
        import basicsr.archs.codeformer_arch  # noqa: F401  (registers the architecture)
    except ImportError as e:
        raise ImportError("CodeFormer is not installed: install the CodeFormer repository (its basicsr package) "
                          "or pass arch_factory=..., or use restorer 'denoise'") from e
    return ARCH_REGISTRY.get("CodeFormer")(dim_embd=512, codebook_size=1024, n_head=8, n_layers=9,
                                           connect_list=["32", "64", "128", "256"])


def make_restorer(name: str, weights: str | None = None, fidelity: float = 0.5) -> Restorer:
    """'none', 'denoise' (default, runs anywhere) or 'codeformer' (needs weights)."""
    if name == "none":
        return NoRestorer()
    if name == "denoise":
        return DenoiseRestorer()
    if name == "codeformer":
        return CodeFormerRestorer(weights=weights, fidelity=fidelity)
    raise ValueError(f"unknown restorer {name!r}; expected 'none', 'denoise' or 'codeformer'")


# ---- detection ---------------------------------------------------------------------------------------
class DlibDetector:
    """dlib's HOG frontal face detector (as upstream); returns the largest face box or None."""

    def __init__(self, upsample: int = 1) -> None:
        import dlib

        self.detector = dlib.get_frontal_face_detector()
        self.upsample = upsample

    def __call__(self, image: np.ndarray) -> Box | None:
        rects = self.detector(image, self.upsample)
        if len(rects) == 0:
            return None
        r = max(rects, key=lambda r: r.width() * r.height())
        try:
            return clip_box((r.left(), r.top(), r.width(), r.height()), image.shape[1], image.shape[0])
        except EditError:
            return None


# ---- the whole procedure on a batch ------------------------------------------------------------------
RESOLUTIONS = ("full", "crop")


@dataclasses.dataclass
class EditResult:
    """Per image: the edit before seam repair, the repaired image, and the edited crop (editor resolution).

    `path` names what was done: 'full' (full-resolution masked warp: repaired = pasted, no seam to repair) or
    'crop' (edited crop pasted back, then the seam repair when a restorer is given).
    """

    pasted: list[np.ndarray]
    repaired: list[np.ndarray]
    crops: list[np.ndarray]
    path: str = "crop"


def full_path_name(generator: Generator) -> str:
    """What an editor's full path is called in tables, figures and manifests: the flow editors' full-resolution
    warp, or the inpainting editor's inner face drawn and blended at the source's resolution."""
    return "inner face drawn (full resolution)" if getattr(generator, "kind", None) == "inpaint" else \
        "full-resolution warp"


def edit_path(generator: Generator, resolution: str) -> str:
    """'full' for a flow or inpainting editor asked for full resolution, else 'crop' (pixel editors have no field
    to upsample)."""
    if resolution not in RESOLUTIONS:
        raise EditError(f"resolution {resolution!r}; expected one of {list(RESOLUTIONS)}")
    if getattr(generator, "kind", None) == "inpaint":
        return resolution
    return "full" if resolution == "full" and generator.cfg.flow_grid else "crop"


@torch.no_grad()
def edit_images(images: Sequence[np.ndarray], boxes: Sequence[Box], codes: Sequence[ControlValue],
                generator: Generator, restorer: Restorer | None, degrade_cfg: DegradeConfig | None,
                rngs: Sequence[np.random.Generator], *, faces: Sequence[Sequence[float]] | None = None,
                resolution: str = "full", mask_cfg: FaceMask = FaceMask()) -> EditResult:
    """Edit a batch of RGB uint8 images at their boxes (the editor's square frames) with one code each (the
    generator runs batched).

    Full resolution (flow editors): each image is warped at its own size by its upsampled, masked field;
    `faces` are the face boxes the masks are drawn from (default: the frames themselves); no seam repair runs
    (`restorer` is not used). Crop path: the edited crop is pasted back; `restorer=None` skips the
    domain-adaptation step (repaired = pasted), otherwise each image is degraded with its own generator from
    `rngs` and restored. An inpainting editor (``kind`` "inpaint") does both its own way
    (`inpaint.InpaintEditor.edit_batch`: aligned by its landmark predictor in the frames).
    """
    if not (len(images) == len(boxes) == len(codes) == len(rngs)):
        raise EditError(f"edit_images got {len(images)} images, {len(boxes)} boxes, {len(codes)} codes, "
                        f"{len(rngs)} generators; expected equal counts")
    if faces is not None and len(faces) != len(images):
        raise EditError(f"edit_images got {len(faces)} face boxes for {len(images)} images; expected equal counts")
    path = edit_path(generator, resolution)
    if not images:
        return EditResult([], [], [], path)
    if getattr(generator, "kind", None) == "inpaint":
        return generator.edit_batch(images, boxes, codes, restorer, degrade_cfg, rngs, resolution=path)
    size = generator.cfg.image_size
    crops = np.stack([crop_resize(im, b, size) for im, b in zip(images, boxes)])
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0
    code = torch.tensor([[c.x, c.y] for c in codes], dtype=torch.float32)
    if path == "full":
        if generator.appearance_active:  # warp, then the masked appearance residual (EditorConfig.appearance)
            flows, residuals = generator.edit_parts_rgb01(x, code)
            y = (generator.warp(x * 2 - 1, flows) + residuals).clamp(-1, 1)
        else:
            flows, residuals = generator.flow_rgb01(x, code), None
            y = generator.warp(x * 2 - 1, flows)  # the editor-resolution crop, for figures and checks only
        edited = (((y + 1) / 2).clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
        fboxes = faces if faces is not None else boxes
        masks = [face_mask(im.shape[:2], fb, mask_cfg) for im, fb in zip(images, fboxes)]
        out = [warp_full(im, b, f, m) for im, b, f, m in zip(images, boxes, flows, masks)]
        if residuals is not None:
            out = [add_residual_full(o, b, r, m) for o, b, r, m in zip(out, boxes, residuals, masks)]
        return EditResult(out, list(out), list(edited), path)
    y = generator.edit_rgb01(x, code)
    edited = (y * 255).round().byte().permute(0, 2, 3, 1).numpy()
    pasted = [paste(im, e, b) for im, e, b in zip(images, edited, boxes)]
    if restorer is None:
        return EditResult(pasted, list(pasted), list(edited), path)
    dcfg = degrade_cfg or DegradeConfig()
    repaired = [restorer(degrade(p, b, dcfg, r), b) for p, b, r in zip(pasted, boxes, rngs)]
    return EditResult(pasted, repaired, list(edited), path)


def to_pil(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(arr))
