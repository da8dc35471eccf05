"""The face renderer: parametric faces drawn with numpy, supersampled and shaded.

Geometry. The canvas spans [-1, 1]² (y down). A face lives in *face units* (head half-width ≈ 0.47),
placed by `face_scale` and `face_center`, then rolled. Yaw and pitch are approximated by mapping every pixel
onto a head ellipsoid, rotating that point back into the frontal face frame and drawing the features there:
features slide and foreshorten like on a real head, and the nose gets an extra parallax shift. The silhouette,
ears, hair mass and shoulders are drawn in camera coordinates. Lambert shading uses the ellipsoid's normals.

Everything is vectorised over the pixel grid; edges are anti-aliased from approximate signed distances and the
image is rendered at `ss`× resolution and area-averaged down. The output depends only on the arguments
(the identity carries its own texture seed; `rng` only drives background details), so re-rendering the same
identity with other AUs changes only the face.

`render_face` builds a `_Canvas` (the image and every pixel's camera and face-frame coordinates) and a `_Face`
(identity, AUs, colours, head outline, feature anchors), then runs the `_draw_*` steps back to front: behind the
head, neck and clothes, ears, skin, wrinkles, eyes, brows, nose, mouth, facial hair, hair, headwear, glasses;
last, the light shades everything but the background.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from syntfer.sources.world.expression import AU_MAX, validate_aus
from syntfer.sources.world.identity import EYE_COLOURS, HAIR_COLOURS, SKIN_TONES, Identity

F32 = np.float32


@dataclass(frozen=True)
class Light:
    """Directional light: azimuth (deg, + = from the image's right), elevation (deg, + = from above),
    RGB colour, ambient share (0..1) and overall strength."""

    azimuth: float = -25.0
    elevation: float = 30.0
    colour: tuple[float, float, float] = (1.0, 0.98, 0.95)
    ambient: float = 0.45
    strength: float = 1.0

    def direction(self) -> np.ndarray:
        az, el = np.deg2rad(self.azimuth), np.deg2rad(self.elevation)
        # camera frame: x right, y down, z toward the viewer
        return np.array([np.sin(az) * np.cos(el), -np.sin(el), np.cos(az) * np.cos(el)], dtype=F32)


BACKGROUNDS: tuple[str, ...] = ("flat", "gradient", "studio", "scene", "bokeh")


# ---------------------------------------------------------------------------------------------------------
# small vectorised helpers
def _sat(x):
    return np.minimum(np.maximum(x, 0.0), 1.0)  # cheaper than np.clip's dispatch on small arrays


def _fill(d, pix):
    """Coverage of a shape from its signed distance (negative inside), 1-pixel anti-aliased ramp."""
    return _sat(0.5 - d / pix).astype(F32)


def _ellipse_d(x, y, cx, cy, rx, ry):
    """Approximate signed distance to an axis-aligned ellipse (first-order, exact on the boundary)."""
    dx = (x - cx) / rx
    dy = (y - cy) / ry
    k = np.sqrt(dx * dx + dy * dy) + 1e-6
    g = np.sqrt((dx / rx) ** 2 + (dy / ry) ** 2) / k + 1e-6
    return (k - 1.0) / g


def _superellipse_d(x, y, cx, cy, rx, ry, p):
    ax = np.abs(x - cx) / rx + 1e-6
    ay = np.abs(y - cy) / ry + 1e-6
    f = ax ** p + ay ** p
    k = f ** (1.0 / p)
    gx = ax ** (p - 1) / rx
    gy = ay ** (p - 1) / ry
    g = f ** (1.0 / p - 1.0) * np.sqrt(gx * gx + gy * gy) + 1e-6
    return (k - 1.0) / g


def _over(img, colour, alpha, tight: bool = True):
    """Alpha-composite `colour` ((3,) or (H,W,3) matching `img`) over `img` in place.

    tight: first shrink to the bounding box of alpha > 0 (worth it for full-frame layers)."""
    if not tight:
        img += alpha[..., None] * (np.asarray(colour, dtype=F32) - img)
        return
    nz = alpha > 1e-4
    rows = np.flatnonzero(nz.any(1))
    if rows.size == 0:
        return
    cols = np.flatnonzero(nz.any(0))
    r, c = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
    a = alpha[r, c, None]
    colour = np.asarray(colour, dtype=F32)
    if colour.ndim == 3:
        colour = colour[r, c]
    sub = img[r, c]
    sub += a * (colour - sub)


def _smoothstep(e0, e1, x):
    t = _sat((x - e0) / (e1 - e0))
    return t * t * (3 - 2 * t)


def _stroke(x, y, x0, x1, fy, th):
    """Signed distance to a stroke y = fy (array over pixels) for x in [x0, x1] with half-thickness th."""
    d = np.abs(y - fy) - th
    return np.maximum(d, np.maximum(x0 - x, x - x1))


def _hash_pattern(x, y, seed: int, freq: float):
    """A deterministic pseudo-random field in [-1, 1] from interfering sines (identity-fixed textures)."""
    r = np.random.default_rng(seed)
    ph = r.uniform(0, 2 * np.pi, 4)
    f = freq * r.uniform(0.85, 1.15, 4)
    return (np.sin(f[0] * x + ph[0]) * np.sin(f[1] * y + ph[1])
            * np.sin(f[2] * (0.7 * x - 0.7 * y) + ph[2]) * np.sin(f[3] * (0.6 * x + 0.8 * y) + ph[3]))


# ---------------------------------------------------------------------------------------------------------
def _muted(rng: np.random.Generator, shape: tuple[int, ...] = ()) -> np.ndarray:
    """Random colour(s) pulled toward grey (real backgrounds are rarely saturated)."""
    c = rng.uniform(0.05, 0.95, shape + (3,))
    g = rng.uniform(0.2, 0.8, shape + (1,))
    return (g + (c - g) * rng.uniform(0.2, 0.6, shape + (1,))).astype(F32)


def _background(n: int, kind, rng: np.random.Generator):
    ys, xs = np.mgrid[0:n, 0:n].astype(F32) / max(n - 1, 1)
    if isinstance(kind, (tuple, list, np.ndarray)):
        return np.broadcast_to(np.asarray(kind, F32), (n, n, 3)).copy()
    if kind not in BACKGROUNDS:
        raise ValueError(f"background {kind!r} is not one of {list(BACKGROUNDS)} or an RGB triple")
    c1 = _muted(rng)
    c2 = _muted(rng)
    if kind == "flat":
        return np.broadcast_to(c1, (n, n, 3)).copy()
    if kind == "gradient":
        ang = rng.uniform(0, 2 * np.pi)
        t = _sat(0.5 + (np.cos(ang) * (xs - 0.5) + np.sin(ang) * (ys - 0.5)))[..., None]
        return (c1 * (1 - t) + c2 * t).astype(F32)
    if kind == "studio":
        c1 = rng.uniform(0.35, 0.85) * np.array([1.0, 1.0, 1.0], F32) * rng.uniform(0.85, 1.0, 3).astype(F32)
        r = np.sqrt((xs - 0.5) ** 2 + (ys - 0.35) ** 2)
        return (c1 * (1.0 - 0.6 * r)[..., None]).astype(F32)
    # scene / bokeh: smooth random colour field + a few rectangles (rooms, windows, shelves)
    g = int(rng.integers(3, 7))
    field = _muted(rng, (g, g))
    gx = xs * (g - 1)
    gy = ys * (g - 1)
    x0 = np.clip(np.floor(gx).astype(int), 0, g - 2)
    y0 = np.clip(np.floor(gy).astype(int), 0, g - 2)
    fx = (gx - x0)[..., None]
    fy = (gy - y0)[..., None]
    img = (field[y0, x0] * (1 - fx) * (1 - fy) + field[y0, x0 + 1] * fx * (1 - fy)
           + field[y0 + 1, x0] * (1 - fx) * fy + field[y0 + 1, x0 + 1] * fx * fy).astype(F32)
    for _ in range(int(rng.integers(1, 5))):
        x_a, x_b = (np.sort(rng.uniform(0, 1, 2)) * n).astype(int)
        y_a, y_b = (np.sort(rng.uniform(0, 1, 2)) * n).astype(int)
        a = F32(rng.uniform(0.4, 0.9))
        img[y_a:y_b, x_a:x_b] += a * (_muted(rng) - img[y_a:y_b, x_a:x_b])
    if kind == "bokeh":
        for _ in range(int(rng.integers(4, 10))):
            cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.03, 0.12)
            r0, r1 = max(0, int((cy - r) * n) - 1), min(n, int((cy + r) * n) + 2)
            c0, c1 = max(0, int((cx - r) * n) - 1), min(n, int((cx + r) * n) + 2)
            if r1 <= r0 or c1 <= c0:
                continue
            d = np.sqrt((xs[r0:r1, c0:c1] - cx) ** 2 + (ys[r0:r1, c0:c1] - cy) ** 2) - r
            _over(img[r0:r1, c0:c1], rng.uniform(0.6, 1.0, 3), _sat(-d / 0.02) * F32(rng.uniform(0.2, 0.5)),
                  tight=False)
    return img


def render_background(size: int, kind: str | tuple[float, float, float], rng: np.random.Generator,
                      ss: int = 1) -> np.ndarray:
    """A background alone (HxWx3 uint8): one of BACKGROUNDS or an RGB triple (used for AffectNet 'no-face')."""
    img = _background(size * ss, kind, rng)
    out = img.reshape(size, ss, size, ss, 3).mean(axis=(1, 3)) if ss > 1 else img
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FaceGeometry:
    """Where the rendered head is, in output pixels: the face box (x, y, w, h) and 5 landmarks
    (left eye, right eye, nose tip, left and right mouth corner; image left/right)."""

    box: tuple[int, int, int, int]
    landmarks: tuple[tuple[float, float], ...]


def _camera_from_face(xf, yf, *, yaw, pitch, zdepth):
    """Forward map of face-frame points (on the head ellipsoid) to camera coordinates (before roll)."""
    zf = zdepth
    # pitch (about x), then yaw (about y)
    y1 = yf * np.cos(pitch) + zf * np.sin(pitch)
    z1 = -yf * np.sin(pitch) + zf * np.cos(pitch)
    x2 = xf * np.cos(yaw) + z1 * np.sin(yaw)
    return x2, y1


def face_geometry(identity: Identity, *, size: int = 128, yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0,
                  face_scale: float = 1.0, face_center: tuple[float, float] = (0.0, 0.02),
                  aus: Mapping[str, float] | None = None) -> FaceGeometry:
    """Face box and 5 landmarks of `render_face` with the same arguments (angles in degrees)."""
    a = {k: v / AU_MAX for k, v in validate_aus(aus or {}).items()}
    W = 0.47 * identity.face_width
    Ht = 0.62 * identity.forehead
    Hb = 0.6 * identity.face_length * identity.chin_length + 0.09 * a["AU26"]
    yaw_r, pitch_r, roll_r = np.deg2rad([yaw, pitch, roll])
    ex = 0.19 * identity.eye_spacing * identity.face_width
    ey = -0.06 + identity.eye_height
    mw = 0.13 * identity.mouth_width * (1 + 0.28 * a["AU12"] + 0.32 * a["AU20"] - 0.22 * a["AU23"])
    my = 0.33 * identity.face_length - 0.012 * a["AU12"]
    ny = 0.155 * identity.nose_length
    pts_f = np.array([[-ex, ey], [ex, ey], [0.0, ny], [-mw, my], [mw, my]], dtype=np.float64)
    depth = np.array([0.42, 0.42, 0.55, 0.42, 0.42])
    cx, cy = _camera_from_face(pts_f[:, 0], pts_f[:, 1], yaw=yaw_r, pitch=pitch_r, zdepth=depth)
    corners = np.array([[-W, -Ht], [W, -Ht], [W, Hb], [-W, Hb], [-W, 0.0], [W, 0.0]])
    cosr, sinr = np.cos(roll_r), np.sin(roll_r)

    def to_px(x, y):
        xr = cosr * x - sinr * y
        yr = sinr * x + cosr * y
        X = xr * face_scale + face_center[0]
        Y = yr * face_scale + face_center[1]
        return (X + 1) * size / 2, (Y + 1) * size / 2

    bx, by = to_px(corners[:, 0], corners[:, 1])
    x0, x1 = float(np.clip(bx.min(), 0, size)), float(np.clip(bx.max(), 0, size))
    y0, y1 = float(np.clip(by.min(), 0, size)), float(np.clip(by.max(), 0, size))
    lx, ly = to_px(cx, cy)
    box = (int(round(x0)), int(round(y0)), max(1, int(round(x1 - x0))), max(1, int(round(y1 - y0))))
    return FaceGeometry(box=box, landmarks=tuple((float(u), float(v)) for u, v in zip(lx, ly)))


# ---------------------------------------------------------------------------------------------------------
# the shared state of render_face's drawing steps
class _Canvas:
    """The supersampled n×n image being drawn, the mask of what the light will shade (`fg`), and where each pixel
    is: camera coordinates `x`, `y` (placement and roll removed) and the frontal face frame `xf`, `yf` (the pixel
    mapped onto the head ellipsoid and rotated back by yaw and pitch; `z1` > 0 on the front of the head).
    `pix` is one supersampled pixel in face units."""

    K = 4  # coarse grid step for finding feature windows

    def __init__(self, img: np.ndarray, *, pix, x, y, xf, yf, z1):
        self.img, self.fg, self.n, self.pix = img, np.zeros(img.shape[:2], F32), img.shape[0], pix
        self.x, self.y, self.xf, self.yf, self.z1 = x, y, xf, yf, z1
        k = self.K
        self._coarse = {True: (x[::k, ::k], y[::k, ::k]), False: (xf[::k, ::k], yf[::k, ::k])}

    def put(self, colour, alpha, sl=None):
        """Composite onto the window `sl` of the image (None = full frame); fg remembers what gets lit."""
        if sl is None:
            _over(self.img, colour, alpha)
            np.maximum(self.fg, alpha, out=self.fg)
        else:
            _over(self.img[sl], colour, alpha, tight=False)
            np.maximum(self.fg[sl], alpha, out=self.fg[sl])

    def win(self, camera: bool, x0, x1, y0, y1):
        """Pixel window (row, col slices) covering face-frame (or camera) box [x0,x1]×[y0,y1], or None."""
        ax, ay = self._coarse[camera]
        m = (ax >= x0) & (ax <= x1) & (ay >= y0) & (ay <= y1)
        rows = np.flatnonzero(m.any(1))
        if rows.size == 0:
            return None
        cols = np.flatnonzero(m.any(0))
        k, n = self.K, self.n
        return (slice(max(0, (rows[0] - 1) * k), min(n, (rows[-1] + 2) * k)),
                slice(max(0, (cols[0] - 1) * k), min(n, (cols[-1] + 2) * k)))


@dataclass(frozen=True)
class _Palette:
    """An identity's colours."""

    skin: np.ndarray
    skin_shadow: np.ndarray
    crease: np.ndarray  # wrinkles, folds, dimples
    hair: np.ndarray
    brow: np.ndarray
    lip: np.ndarray
    cloth: np.ndarray
    acc: np.ndarray     # accessories: headwear, scarf, large glasses' frames, eye makeup


@dataclass(frozen=True)
class _Face:
    """What is drawn: the identity, its AUs (0..1), colours, hair texture, head outline and feature anchors."""

    idt: Identity
    A: dict[str, float]
    pal: _Palette
    hair_rgb: np.ndarray  # per-pixel hair colour (texture, highlights, grey)
    ang: np.ndarray       # angle around the crown, for hair textures and ragged hairlines
    covered: bool         # a headscarf hides the hair
    syaw: np.float32      # sin(yaw): features, ears and chin shift with it
    light_x: float        # x of the light direction: the lit side of the nose
    W: np.float32         # head half-width, cranium height, chin depth (with AU26)
    Ht: np.float32
    Hb: np.float32
    d_head: np.ndarray    # signed distance to the head outline, its coverage, and its front part
    head_a: np.ndarray
    face_in: np.ndarray
    ey: np.float32        # eye line, brow line, eye centres' offset and eye half-width
    brow_y: np.float32
    ex: np.float32
    ew: np.float32
    ny: np.float32        # nose tip height and half-width (with AU9/AU10)
    nw: np.float32


class _Mouth(NamedTuple):
    """What facial hair needs of the drawn mouth: its window, mouth-frame x, half-width, lip outlines."""

    sl: tuple[slice, slice]
    xm: np.ndarray
    mw: np.float32
    y_uo: np.ndarray
    y_lo: np.ndarray
    d_mouth: np.ndarray


# ---------------------------------------------------------------------------------------------------------
# geometry: pixel grids, head ellipsoid, light, head outline
def _pixel_frames(n: int, idt: Identity, *, yaw: float, pitch: float, roll: float, face_scale: float,
                  face_center: tuple[float, float]):
    """Every supersampled pixel in camera coordinates (x, y) and on the head ellipsoid (depth z, semi-axes),
    rotated back into the frontal face frame (xf, yf; z1 = depth after un-yawing); also sin(yaw)."""
    coords = (np.arange(n, dtype=F32) + 0.5) / n * 2 - 1
    Y, X = np.meshgrid(coords, coords, indexing="ij")
    px = (X - face_center[0]) / face_scale
    py = (Y - face_center[1]) / face_scale
    roll_r, yaw_r, pitch_r = (F32(np.deg2rad(v)) for v in (roll, yaw, pitch))
    cr, sr = np.cos(roll_r), np.sin(roll_r)
    x = cr * px + sr * py  # camera coords (roll removed)
    y = -sr * px + cr * py

    # head ellipsoid mapping -> frontal face frame (xf, yf)
    ea, eb, ec = F32(0.5 * idt.face_width), F32(0.78), F32(0.5)
    q = 1 - (x / ea) ** 2 - ((y - 0.02) / eb) ** 2
    z = ec * np.sqrt(np.clip(q, 0, 1))
    cyaw, syaw = np.cos(yaw_r), np.sin(yaw_r)
    cp, sp = np.cos(pitch_r), np.sin(pitch_r)
    x1 = x * cyaw - z * syaw
    z1 = x * syaw + z * cyaw
    xf = x1
    yf = y * cp - z1 * sp
    xf = xf + idt.asymmetry * yf  # slight identity asymmetry
    return x, y, z, (ea, eb, ec), xf, yf, z1, syaw


def _light_map(x, y, z, axes, light: Light) -> np.ndarray:
    """Per-pixel RGB light: ambient plus Lambert shading from the ellipsoid's normals (camera frame)."""
    ea, eb, ec = axes
    nrm = np.stack([x / ea ** 2, (y - 0.02) / eb ** 2, np.maximum(z, 0.05) / ec ** 2], -1)
    nrm /= np.linalg.norm(nrm, axis=-1, keepdims=True)
    ldir = light.direction()
    diffuse = np.clip(nrm @ ldir, 0, 1)
    shade = (light.ambient + (1 - light.ambient) * diffuse) * light.strength
    return (shade[..., None] * np.asarray(light.colour, F32)).astype(F32)


def _palette(idt: Identity) -> _Palette:
    skin = np.asarray(SKIN_TONES[idt.skin_tone], F32) * (1 + idt.skin_shift)
    skin_shadow = skin * np.array([0.78, 0.7, 0.7], F32)
    hair_c = np.asarray(HAIR_COLOURS[idt.hair_colour], F32)
    brow_c = hair_c * 0.8 if idt.hair_colour not in ("white", "grey") else np.array([0.5, 0.48, 0.46], F32)
    if idt.age == "child" or idt.hair_colour == "blonde":
        brow_c = brow_c * 0.8 + skin * 0.2
    brow_c = np.minimum(brow_c, skin * 0.55)  # brows stay darker than the skin they sit on
    lip_c = skin * np.array([0.86, 0.58, 0.58], F32) + np.array([0.08, 0.0, 0.0], F32)
    if idt.lipstick:
        lip_c = np.array([0.62, 0.08, 0.16], F32) * 0.7 + lip_c * 0.3
    return _Palette(skin=skin, skin_shadow=skin_shadow, crease=skin * np.array([0.62, 0.52, 0.5], F32),
                    hair=hair_c, brow=brow_c, lip=lip_c, cloth=np.asarray(idt.clothing_colour, F32),
                    acc=np.asarray(idt.accessory_colour, F32))


def _hair_look(idt: Identity, x, y, hair_c):
    """Per-pixel hair colour (strands or curls, highlights, grey) and the angle around the crown."""
    style = idt.hair_style
    ang = np.arctan2(y + 0.3, x)
    hair_tex = 0.82 + 0.18 * np.sin(55 * ang + 3 * _hash_pattern(x, y, idt.seed + 1, 9.0))
    if style in ("curly_short", "curly_long"):
        hair_tex = 0.78 + 0.22 * _hash_pattern(x, y, idt.seed + 2, 60.0) ** 2 * 4
    hair_rgb = hair_tex[..., None] * hair_c
    if idt.highlights:
        streak = _sat(np.sin(14 * ang + idt.seed % 7) * 4 - 3)[..., None]
        hl_c = np.array([0.85, 0.75, 0.5], F32) if idt.hair_colour != "dark_brown" else np.array([0.7, 0.7, 0.7], F32)
        hair_rgb = hair_rgb * (1 - streak) + hl_c * streak
    if idt.hair_colour in ("grey", "white") or (idt.age == "middle-aged" and idt.seed % 3 == 0):
        pepper = _sat(_hash_pattern(x, y, idt.seed + 3, 120.0) * 3)[..., None]
        hair_rgb = hair_rgb * (1 - 0.5 * pepper) + np.array([0.75, 0.74, 0.72], F32) * 0.5 * pepper
    return hair_rgb.astype(F32), ang


def _head_outline(idt: Identity, A: dict[str, float], x, y, syaw):
    """Head half-width W, cranium height Ht, chin depth Hb (AU26 drops the jaw) and the signed distance to the
    outline: an elliptic cranium, a straight cheek band, then a jaw narrowing toward the chin."""
    W = F32(0.47 * idt.face_width)
    Ht = F32(0.62 * idt.forehead)
    Hb = F32(0.6 * idt.face_length * idt.chin_length + 0.09 * A["AU26"])
    jaw = idt.jaw_width
    qj = idt.jaw_square * 1.6
    jaw_shift = F32(0.08) * syaw  # chin follows the yaw a little
    xs_ = x - jaw_shift * _sat(y / Hb)
    y_cb = F32(0.06)  # below the cheekbones the face narrows toward the jaw and chin
    t = _sat((y - y_cb) / (Hb - y_cb))
    w_low = W * (1 - t ** qj) ** (1 / qj) * (1 - (1 - jaw) * t * t)
    d_low = np.maximum(np.abs(xs_) - w_low, y - Hb)
    d_up = _ellipse_d(x, y, 0, 0, W, Ht)
    d_mid = np.maximum(np.abs(xs_) - W, -1.0)  # straight cheek band between the cranium and the jaw
    d_head = np.where(y < 0, d_up, np.where(y < y_cb, d_mid, d_low))
    return W, Ht, Hb, d_head


def _face(cv: _Canvas, idt: Identity, A: dict[str, float], *, syaw, light: Light) -> _Face:
    pal = _palette(idt)
    hair_rgb, ang = _hair_look(idt, cv.x, cv.y, pal.hair)
    W, Ht, Hb, d_head = _head_outline(idt, A, cv.x, cv.y, syaw)
    head_a = _fill(d_head, cv.pix)
    ey = F32(-0.06 + idt.eye_height)
    return _Face(
        idt=idt, A=A, pal=pal, hair_rgb=hair_rgb, ang=ang, covered=idt.headwear in ("headscarf",), syaw=syaw,
        light_x=float(light.direction()[0]), W=W, Ht=Ht, Hb=Hb, d_head=d_head, head_a=head_a,
        face_in=(head_a * _sat(cv.z1 / 0.05)).astype(F32),  # front of the head: where frontal features may show
        ey=ey, brow_y=F32(ey - 0.11 + idt.brow_height), ex=F32(0.19 * idt.eye_spacing * idt.face_width),
        ew=F32(0.085 * idt.eye_size), ny=F32(0.155 * idt.nose_length - 0.02 * A["AU9"] - 0.006 * A["AU10"]),
        nw=F32(0.05 * idt.nose_width * (1 + 0.25 * A["AU9"] + 0.1 * A["AU10"])))


def _crease(cv: _Canvas, f: _Face, d, width, strength, sl):
    """A soft shadow line from a distance field (wrinkles, folds)."""
    if np.max(strength) <= 0.01:
        return
    a_ = np.exp(-np.maximum(d, 0) ** 2 / (width * width)) * (d < 3 * width) * strength * f.face_in[sl]
    cv.put(f.pal.crease, _sat(a_).astype(F32), sl)


# ---------------------------------------------------------------------------------------------------------
# drawing steps, back to front
def _draw_behind_head(cv: _Canvas, f: _Face) -> None:
    """Hood, long hair and ponytail: what hangs behind the head."""
    x, y, pix, put = cv.x, cv.y, cv.pix, cv.put
    idt, W, Ht, hair_rgb, style = f.idt, f.W, f.Ht, f.hair_rgb, f.idt.hair_style
    if idt.headwear == "hood":
        d = _ellipse_d(x, y, 0, 0.05, W * 1.45, 0.95)
        put(f.pal.cloth * 0.8, _fill(d, pix))
    long_len = {"long": 0.95, "curly_long": 0.8, "shoulder": 0.55, "bob": 0.3}.get(style)
    if long_len is not None and not f.covered:
        d = _superellipse_d(x, y, 0, (long_len - Ht) / 2, W * 1.28 * idt.hair_volume, (long_len + Ht) / 2 + 0.05,
                            3.0)
        put(hair_rgb * 0.85, _fill(d, pix))
    if style == "ponytail" and not f.covered:
        d = _ellipse_d(x, y, W * 0.95, 0.35, 0.09, 0.28)
        put(hair_rgb * 0.8, _fill(d, pix))


def _draw_neck_and_clothes(cv: _Canvas, f: _Face) -> None:
    x, y, pix, put = cv.x, cv.y, cv.pix, cv.put
    idt, W, pal = f.idt, f.W, f.pal
    neck_w = W * (0.48 if idt.gender == "female" else 0.56)
    d_neck = np.maximum(np.abs(x) - neck_w, 0.2 - y)
    hb0 = F32(0.6 * idt.face_length * idt.chin_length)  # expression-free, so the neck never changes
    neck_col = pal.skin_shadow * (1 - 0.25 * _sat((hb0 + 0.12 - y) / 0.12))[..., None]
    put(neck_col, _fill(d_neck, pix))
    slb = cv.win(True, -9.0, 9.0, 0.55, 9.0)  # shoulders only exist low in the frame
    if slb is None:
        return
    xb, yb = x[slb], y[slb]
    sh_a = _fill(_superellipse_d(xb, yb, 0, 1.45, 1.15, 0.72, 2.6), pix)
    put(pal.cloth, sh_a, slb)
    if idt.clothing == "shirt":
        d_col = np.maximum(np.abs(np.abs(xb) - 0.12 - (yb - 0.85) * 0.5) - 0.07, np.abs(yb - 0.9) - 0.12)
        put(np.array([0.92, 0.92, 0.9], F32), _fill(d_col, pix) * sh_a, slb)
    elif idt.clothing in ("sweater", "tshirt"):
        d_col = np.abs(_ellipse_d(xb, yb, 0, 0.78, neck_w * 1.25, 0.1)) - 0.02
        put(pal.cloth * 0.75, _fill(d_col, pix) * sh_a, slb)
    elif idt.clothing == "cardigan":
        d_v = np.abs(xb) - _sat((yb - 0.78) * 0.45) * 0.5
        put(np.array([0.9, 0.88, 0.85], F32) * 0.9, _fill(d_v, pix) * sh_a, slb)
    elif idt.clothing == "scarf":
        d_sc = _ellipse_d(xb, yb, 0, 0.78, neck_w * 1.9, 0.14)
        put(pal.acc, _fill(d_sc, pix), slb)
    elif idt.clothing == "hoodie":
        d_hd = np.abs(_ellipse_d(xb, yb, 0, 0.75, neck_w * 1.7, 0.16)) - 0.04
        put(pal.cloth * 0.7, _fill(d_hd, pix), slb)


def _draw_ears(cv: _Canvas, f: _Face) -> None:
    """Ears in camera coordinates: they shift with yaw, the far one hides."""
    pix, put = cv.pix, cv.put
    idt, W, ey, syaw, pal = f.idt, f.W, f.ey, f.syaw, f.pal
    for side in (-1.0, 1.0):
        vis = 1.0 - side * float(syaw) * 1.6  # far ear hides, near ear shows
        if vis <= 0.05:
            continue
        ecx = side * (W * 0.97) * (1 - 0.5 * abs(float(syaw)))
        rx = 0.05 * idt.ear_size * min(vis, 1.3)
        sl = cv.win(True, ecx - 0.15, ecx + 0.15, ey - 0.12, ey + 0.25)
        if sl is None:
            continue
        xs, ys = cv.x[sl], cv.y[sl]
        d = _ellipse_d(xs, ys, ecx + side * rx * 0.4, ey + 0.05, rx, 0.09 * idt.ear_size)
        put(pal.skin * 0.95, _fill(d, pix), sl)
        d_in = _ellipse_d(xs, ys, ecx + side * rx * 0.45, ey + 0.05, rx * 0.5, 0.055 * idt.ear_size)
        put(pal.skin_shadow * 0.85, _fill(d_in, pix) * 0.7, sl)
        if idt.earrings:
            d_er = _ellipse_d(xs, ys, ecx + side * rx * 0.5, ey + 0.05 + 0.095 * idt.ear_size, 0.016, 0.016)
            put(np.array([0.85, 0.7, 0.25], F32), _fill(d_er, pix), sl)


def _draw_skin(cv: _Canvas, f: _Face) -> None:
    """The head's skin, blush and cheek raise (AU6, AU12), freckles and age spots."""
    xf, yf, put = cv.xf, cv.yf, cv.put
    idt, A, skin, face_in = f.idt, f.A, f.pal.skin, f.face_in
    put(skin, f.head_a)
    cheek_y = F32(0.1 - 0.035 * A["AU6"] - 0.02 * A["AU12"])
    for side in (-1.0, 1.0):
        sl = cv.win(False, side * 0.23 - 0.22, side * 0.23 + 0.22, cheek_y - 0.16, cheek_y + 0.16)
        if sl is None:
            continue
        g = np.exp(-(((xf[sl] - side * 0.23) / 0.1) ** 2 + ((yf[sl] - cheek_y) / 0.07) ** 2)) * face_in[sl]
        blush = 0.06 + 0.1 * idt.makeup + 0.08 * (idt.age == "child")
        put(np.array([0.85, 0.35, 0.35], F32), (g * blush).astype(F32), sl)
        put(skin * 1.12, (g * 0.35 * (A["AU6"] + 0.5 * A["AU12"])).astype(F32), sl)

    if idt.freckles or idt.age_spots:
        sl = cv.win(False, -0.4, 0.4, -0.12, 0.3)
        if sl is not None:
            xs, ys = xf[sl], yf[sl]
            pat = _hash_pattern(xs, ys, idt.seed + 7, 140.0 if idt.freckles else 70.0)
            region = (np.exp(-((np.abs(xs) - 0.16) / 0.14) ** 2 - ((ys - 0.08) / 0.09) ** 2)).astype(F32)
            spots = _sat((pat - (0.55 if idt.freckles else 0.7)) * 8) * region * face_in[sl]
            put(skin * np.array([0.68, 0.55, 0.45], F32), (spots * 0.6).astype(F32), sl)


def _draw_wrinkles(cv: _Canvas, f: _Face) -> None:
    """Forehead lines (age, AU1/AU2), glabella furrows (AU4) and nose wrinkles (AU9)."""
    xf, yf = cv.xf, cv.yf
    A, ey, brow_y, wr = f.A, f.ey, f.brow_y, f.idt.wrinkles
    raise_c, raise_s = A["AU1"], A["AU2"]
    fh = 0.25 * wr + 0.9 * max(raise_c, raise_s)
    if fh > 0.02:  # forehead lines: age + brow raising (AU1 centre, AU2 sides)
        sl = cv.win(False, -0.4, 0.4, brow_y - 0.26, brow_y - 0.04)
        if sl is not None:
            xs, ys = xf[sl], yf[sl]
            winx = np.exp(-(xs / (0.12 + 0.16 * raise_s / (raise_c + raise_s + 1e-3) + 0.1 * wr)) ** 2)
            for i in range(3):
                ly = brow_y - 0.075 - 0.045 * i - 0.03 * (raise_c + raise_s) + 0.01 * np.cos(7 * xs + i)
                _crease(cv, f, np.abs(ys - ly), 0.006, fh * (0.8 - 0.15 * i) * winx, sl)
    if A["AU4"] + 0.2 * wr > 0.02:  # glabella furrows (AU4)
        sl = cv.win(False, -0.07, 0.07, brow_y - 0.08, brow_y + 0.06)
        if sl is not None:
            xs, ys = xf[sl], yf[sl]
            for side in (-1.0, 1.0):
                d = _stroke(ys, xs, brow_y - 0.05, brow_y + 0.03,
                            side * 0.028 + 0.01 * side * (ys - brow_y) / 0.05, 0.0)
                _crease(cv, f, d, 0.009, 1.5 * A["AU4"] + 0.15 * wr, sl)
    if A["AU9"] > 0.02:  # nose wrinkles (AU9)
        sl = cv.win(False, -0.08, 0.08, ey - 0.02, ey + 0.1)
        if sl is not None:
            xs, ys = xf[sl], yf[sl]
            for i in range(3):
                d = _stroke(xs, ys, -0.04, 0.04, ey + 0.015 + 0.022 * i - 0.05 * xs * xs, 0.0)
                _crease(cv, f, d, 0.008, 1.7 * A["AU9"], sl)


def _draw_eyes(cv: _Canvas, f: _Face, gaze: tuple[float, float]) -> None:
    """Eyes: socket shadow, eye makeup, sclera, iris and pupil (gaze, yaw), lids, lid creases, crow's feet;
    opening from AU5 (wider) against AU6/AU7/AU4/AU9 (narrower)."""
    pix, put = cv.pix, cv.put
    idt, A, pal, face_in = f.idt, f.A, f.pal, f.face_in
    ex, ew, ey, wr = f.ex, f.ew, f.ey, idt.wrinkles
    hu0 = 0.04 * idt.eye_size
    hl0 = 0.026 * idt.eye_size
    hu = hu0 * max(0.12, 1 + 1.0 * A["AU5"] - 0.6 * A["AU7"] - 0.35 * A["AU6"] - 0.3 * A["AU4"] - 0.25 * A["AU9"]
                   - 0.4 * A["AU15"] * A["AU1"])
    hl = hl0 * max(0.12, 1 - 0.6 * A["AU6"] - 0.5 * A["AU7"] - 0.25 * A["AU9"] + 0.35 * A["AU5"])
    iris_c = np.asarray(EYE_COLOURS[idt.eye_colour], F32)
    skew = 0.35 * A["AU1"] - 0.15 * A["AU2"]
    for side in (-1.0, 1.0):
        sl = cv.win(False, side * ex - ew - 0.08, side * ex + ew + 0.08, ey - 0.12, ey + 0.1)
        if sl is None:
            continue
        fi = face_in[sl]
        u = (cv.xf[sl] - side * ex) * side  # + outward
        v = cv.yf[sl] - ey - idt.eye_tilt * u
        s = np.clip(u / ew, -1, 1)
        prof = (1 - s * s)
        v_up = -hu * prof ** 0.75 * (1 - skew * s) - 0.006 * s
        v_lo = hl * prof ** 0.9 - 0.004 * s
        d_eye = np.maximum(np.maximum(v_up - v, v - v_lo), np.abs(u) - ew)
        eye_a = _fill(d_eye, pix) * fi
        g = np.exp(-((u / (ew * 1.35)) ** 2 + ((v + 0.012) / 0.05) ** 2))  # socket shadow
        put(pal.skin_shadow, (g * 0.35 * fi).astype(F32), sl)
        if idt.makeup:
            gm = np.exp(-((u / (ew * 1.1)) ** 2 + ((v + hu + 0.018) / 0.018) ** 2))
            put(pal.acc * 0.6 + 0.2, (gm * 0.35 * fi).astype(F32), sl)
        sclera = np.array([0.93, 0.92, 0.9], F32) * (0.85 + 0.15 * _sat(1 - np.abs(s)))[..., None]
        put(sclera, eye_a, sl)
        ir = 0.036 * idt.eye_size
        gx_ = gaze[0] * 0.03 * side - float(f.syaw) * 0.02 * side
        r_ir = np.sqrt((u - gx_) ** 2 + (v - gaze[1] * 0.015 + 0.003) ** 2)
        put(iris_c, _fill(r_ir - ir, pix) * eye_a, sl)
        put(np.array([0.03, 0.03, 0.03], F32), _fill(r_ir - ir * 0.45, pix) * eye_a, sl)
        d_hl = np.sqrt((u - gx_ + 0.012 * side) ** 2 + (v + 0.01) ** 2) - ir * 0.22
        put(np.array([1.0, 1.0, 1.0], F32), _fill(d_hl, pix) * eye_a * 0.9, sl)
        d_ul = _stroke(u, v, -ew * 1.02, ew * 1.05, v_up, 0.008 + 0.002 * (idt.gender == "female"))
        put(np.array([0.1, 0.07, 0.06], F32), _fill(d_ul, pix) * fi, sl)
        d_ll = _stroke(u, v, -ew * 0.95, ew * 0.98, v_lo, 0.0025)
        put(pal.skin_shadow * 0.8, _fill(d_ll, pix) * fi * 0.8, sl)
        crease_v = v_up - 0.018 - 0.01 * A["AU5"]
        _crease(cv, f, np.abs(v - crease_v) + np.maximum(np.abs(u) - ew * 0.9, 0), 0.004, 0.5, sl)
        _crease(cv, f, np.abs(v - v_lo - 0.022) + np.maximum(np.abs(u) - ew * 0.8, 0), 0.005,
                0.5 * A["AU6"] + 0.4 * A["AU7"] + 0.35 * wr, sl)
        cf = 0.8 * A["AU6"] + 0.35 * wr  # crow's feet
        if cf > 0.02:
            for kk in (-1, 0, 1):
                d = _stroke(u, v, ew + 0.012, ew + 0.05, kk * 0.55 * (u - ew - 0.01), 0.0)
                _crease(cv, f, d, 0.004, cf, sl)


def _draw_brows(cv: _Canvas, f: _Face) -> None:
    """Brows: inner ends raised by AU1 and lowered/drawn together by AU4, outer ends raised by AU2."""
    A, ex, brow_y, idt = f.A, f.ex, f.brow_y, f.idt
    bt = 0.022 * idt.brow_thickness
    for side in (-1.0, 1.0):
        sl = cv.win(False, side * ex - 0.16, side * ex + 0.16, brow_y - 0.12, brow_y + 0.08)
        if sl is None:
            continue
        u = (cv.xf[sl] - side * ex) * side
        u0 = -0.085 - 0.035 * A["AU4"]
        u1 = 0.115
        y_in = brow_y - 0.07 * A["AU1"] + 0.085 * A["AU4"] + 0.04 * A["AU9"] - 0.01 * A["AU2"]
        y_out = brow_y - 0.06 * A["AU2"] - 0.015 * A["AU1"] + 0.025 * A["AU4"] + 0.01 * A["AU7"] + 0.005
        tau = _sat((u - u0) / (u1 - u0))
        arch = 0.018 * idt.brow_arch + 0.02 * A["AU2"] - 0.02 * A["AU4"] - 0.01 * A["AU1"] * (1 - A["AU2"])
        fy_ = y_in + (y_out - y_in) * tau - arch * 4 * tau * (1 - tau)
        d_b = _stroke(u, cv.yf[sl], u0, u1, fy_, bt * (1 + 0.5 * A["AU4"]) * (1 - 0.45 * tau))
        cv.put(f.pal.brow, _fill(d_b, cv.pix) * f.face_in[sl] * 0.92, sl)


def _draw_nose(cv: _Canvas, f: _Face) -> None:
    """Nose: side shadows (lit side lighter), tip highlight, alae and nostrils (AU9 flares), nose ring."""
    pix, put = cv.pix, cv.put
    idt, A, skin, skin_shadow, ey, ny, nw, syaw = f.idt, f.A, f.pal.skin, f.pal.skin_shadow, f.ey, f.ny, f.nw, f.syaw
    lx = f.light_x
    sl = cv.win(False, -0.16, 0.16, ey - 0.04, ny + 0.08)
    if sl is None:
        return
    xs, ys, fi = cv.xf[sl], cv.yf[sl], f.face_in[sl]
    prof = _sat((ys - ey) / (ny - ey + 1e-3))
    xn = xs - 0.1 * syaw * prof  # parallax of the protruding nose
    for side in (-1.0, 1.0):
        band = np.exp(-((xn - side * (0.035 + 0.02 * prof)) / 0.018) ** 2) * _sat((ys - ey + 0.02) / 0.05)
        band *= _sat((ny + 0.02 - ys) / 0.02)
        put(skin_shadow, (band * (0.18 + 0.35 * _sat(side * -lx * 2 + 0.3)) * fi).astype(F32), sl)
    tip = np.exp(-((xn / 0.03) ** 2 + ((ys - ny + 0.012) / 0.025) ** 2))
    put(skin * 1.12, (tip * 0.45 * fi).astype(F32), sl)
    under = np.exp(-((xn / (nw * 1.1)) ** 2 + ((ys - ny - 0.035) / 0.012) ** 2))
    put(skin_shadow, (under * 0.4 * fi).astype(F32), sl)
    for side in (-1.0, 1.0):
        d_al = np.abs(_ellipse_d(xn, ys, side * nw * 0.8, ny + 0.004, 0.024, 0.02)) - 0.0025
        d_al = np.maximum(d_al, -(ys - ny + 0.008))
        put(skin_shadow * 0.85, _fill(d_al, pix) * fi * 0.75, sl)
        d_ns = _ellipse_d(xn, ys, side * nw * 0.42, ny + 0.02, 0.017 * (1 + 0.3 * A["AU9"]), 0.009)
        put(np.array([0.16, 0.08, 0.07], F32), _fill(d_ns, pix) * fi * 0.9, sl)
        if idt.nose_ring and side > 0:
            d_r = np.abs(np.sqrt((xn - nw * 0.95) ** 2 + (ys - ny - 0.012) ** 2) - 0.012) - 0.003
            put(np.array([0.85, 0.8, 0.6], F32), _fill(d_r, pix) * fi, sl)


def _draw_mouth(cv: _Canvas, f: _Face) -> _Mouth | None:
    """Mouth and the skin around it: philtrum, chin (AU17), nasolabial folds, marionette lines, dimple (AU14),
    lips (corners up with AU12, down with AU15, stretched by AU20, pressed by AU23), the open mouth with teeth
    and tongue (AU25/AU26, AU10 bares the upper teeth). None when the mouth is out of the frame."""
    pix, put = cv.pix, cv.put
    idt, A, pal, ny, nw, Hb, wr = f.idt, f.A, f.pal, f.ny, f.nw, f.Hb, f.idt.wrinkles
    my = F32(0.33 * idt.face_length - 0.012 * A["AU12"] - 0.008 * A["AU10"] + 0.01 * A["AU26"])
    mw = F32(0.145 * idt.mouth_width * (1 + 0.3 * A["AU12"] + 0.32 * A["AU20"] - 0.22 * A["AU23"]
                                        - 0.2 * A["AU26"] * (1 - A["AU20"]) + 0.04 * A["AU15"]))
    c_l = -0.075 * A["AU12"] + 0.06 * A["AU15"] + 0.012 * A["AU20"] - 0.012 * A["AU10"]
    c_r = c_l - 0.05 * A["AU14"]
    gate = min(1.0, 5 * (A["AU25"] + A["AU26"]) + 4 * A["AU10"])  # AU10 bares the upper teeth
    o_up = gate * (0.006 + 0.07 * A["AU10"] + 0.03 * A["AU12"] + 0.012 * A["AU20"])
    o_lo = gate * (0.008 + 0.028 * A["AU12"] + 0.03 * A["AU20"] + 0.012 * A["AU25"]) + 0.17 * A["AU26"]
    sl = cv.win(False, -mw - 0.12, mw + 0.12, ny - 0.04, Hb + 0.12)
    if sl is None:
        return None
    xs, ys, fi = cv.xf[sl], cv.yf[sl], f.face_in[sl]
    xm = xs - 0.03 * f.syaw
    tm = xm / mw
    tc = np.clip(tm, -1.2, 1.2)
    c = np.where(tm > 0, c_r, c_l)
    y_mid = my + c * tc * tc - 0.02 * A["AU17"] * (1 - tc * tc)
    e = max(0.25, 0.7 - 0.4 * A["AU20"] + 0.3 * A["AU26"])
    po = _sat(1 - (tc / 0.95) ** 2) ** e
    y_ui = y_mid - o_up * po
    y_li = y_mid + o_lo * po
    thu = 0.023 * idt.upper_lip * max(0.2, 1 - 0.8 * A["AU23"] - 0.25 * A["AU12"] - 0.2 * A["AU20"])
    thl = 0.03 * idt.lower_lip * max(0.2, 1 - 0.75 * A["AU23"] - 0.2 * A["AU12"] - 0.2 * A["AU20"]
                                      + 0.35 * A["AU17"])
    bow = (1 - 0.3 * np.exp(-(tc / 0.1) ** 2)) * (1 + 0.12 * np.exp(-((np.abs(tc) - 0.28) / 0.12) ** 2))
    pl = _sat(1 - tc * tc)
    y_uo = y_ui - thu * (0.25 + 0.75 * pl ** 0.6) * bow
    y_lo = y_li + thl * (0.2 + 0.8 * pl ** 0.6)
    dx_m = (np.abs(tm) - 1) * mw
    phil = np.exp(-(xm / 0.02) ** 2) * _sat((ys - ny - 0.03) / 0.02) * _sat((y_uo - ys) / 0.01)
    put(pal.skin_shadow, (phil * 0.18 * fi).astype(F32), sl)
    chin_sh = np.exp(-(xm / (mw * 0.8)) ** 2 - ((ys - y_lo - 0.03 - 0.01 * A["AU17"]) / 0.012) ** 2)
    put(pal.skin_shadow, (chin_sh * (0.25 + 0.45 * A["AU17"]) * fi).astype(F32), sl)
    if A["AU17"] > 0.02:
        boss = np.exp(-(xm / (mw * 0.7)) ** 2 - ((ys - y_lo - 0.07) / 0.03) ** 2)
        put(pal.skin * 1.1, (boss * 0.4 * A["AU17"] * fi).astype(F32), sl)
    # nasolabial folds (AU12/AU10/AU9, age), marionette lines (AU15, age), dimple (AU14)
    nl = 0.3 * idt.smile_lines + 0.9 * A["AU12"] + 0.5 * A["AU10"] + 0.4 * A["AU9"] + 0.2 * A["AU6"]
    for side in (-1.0, 1.0):
        cs = c_r if side > 0 else c_l
        y_top, y_bot = float(ny) - 0.01, float(my + cs) + 0.025
        x_top = float(nw) + 0.03
        x_bot = float(mw) + 0.03 + 0.01 * A["AU12"]
        sy = _sat((ys - y_top) / (y_bot - y_top + 1e-3))
        fx = x_top + (x_bot - x_top) * sy + 0.02 * np.sin(np.pi * sy)
        d = np.maximum(np.abs(xm * side - fx), np.maximum(y_top - ys, ys - y_bot) * 2)
        _crease(cv, f, d, 0.009, min(nl, 1.3), sl)
        ml = 0.7 * A["AU15"] + 0.25 * wr
        if ml > 0.02:
            yc0 = float(my + cs)
            d = np.maximum(np.abs(xm * side - float(mw) - 0.005 + 0.15 * (ys - yc0)),
                           np.maximum(yc0 - ys, ys - yc0 - 0.09) * 2)
            _crease(cv, f, d, 0.006, ml, sl)
        if side > 0 and A["AU14"] > 0.02:
            dimple = np.exp(-((xm - mw - 0.015) / 0.008) ** 2 - ((ys - my - c_r) / 0.012) ** 2)
            put(pal.crease, (dimple * 0.8 * A["AU14"] * fi).astype(F32), sl)
    d_mouth = np.maximum(np.maximum(y_uo - ys, ys - y_lo), dx_m)
    lips_a = _fill(d_mouth, pix) * fi
    lip_shade = (0.88 + 0.18 * _sat((ys - y_li) / (y_lo - y_li + 1e-4)))[..., None]
    put(pal.lip * lip_shade, lips_a, sl)
    if gate > 0:
        d_open = np.maximum(np.maximum(y_ui - ys, ys - y_li), (np.abs(tm) - 0.95) * mw)
        open_a = _fill(d_open, pix) * fi
        put(np.array([0.12, 0.03, 0.04], F32), open_a, sl)
        teeth_h = np.minimum(0.032, 0.8 * (y_li - y_ui))
        d_t = np.maximum(np.maximum(y_ui - ys, ys - (y_ui + teeth_h)), (np.abs(tm) - 0.78) * mw)
        tooth_gap = 0.9 + 0.1 * _sat(np.abs(np.sin(tm * 9.5)) * 3)
        put(np.array([0.93, 0.91, 0.86], F32) * tooth_gap[..., None], _fill(d_t, pix) * open_a, sl)
        if o_lo > 0.05:
            d_lt = np.maximum(np.maximum((y_li - 0.016) - ys, ys - y_li), (np.abs(tm) - 0.6) * mw)
            put(np.array([0.88, 0.86, 0.8], F32), _fill(d_lt, pix) * open_a * 0.8, sl)
            tongue = np.exp(-(xm / (mw * 0.5)) ** 2 - ((ys - y_li + 0.01) / 0.02) ** 2)
            put(np.array([0.7, 0.3, 0.3], F32), (tongue * 0.6 * open_a).astype(F32), sl)
    # the line between the lips (always drawn: a closed mouth must still read as a mouth)
    d_line = _stroke(tm, ys, -1.0, 1.0, y_mid, 0.0045 * (1 + 1.5 * A["AU23"]))  # pressed lips (AU23)
    put(np.array([0.22, 0.07, 0.07], F32), _fill(d_line, pix) * fi * 0.9, sl)
    for side in (-1.0, 1.0):
        cy_ = my + (c_r if side > 0 else c_l)
        dco = np.sqrt((xm - side * mw) ** 2 + (ys - cy_) ** 2) - 0.006
        put(np.array([0.3, 0.12, 0.12], F32), _fill(dco, pix) * fi * 0.6, sl)
    return _Mouth(sl=sl, xm=xm, mw=mw, y_uo=y_uo, y_lo=y_lo, d_mouth=d_mouth)


def _draw_facial_hair(cv: _Canvas, f: _Face, mouth: _Mouth) -> None:
    """Stubble, moustache and goatee share the mouth's window; beards cover the lower face, the mouth carved out."""
    pix, put, n = cv.pix, cv.put, cv.n
    idt, ny, Hb, hair_c, pat_seed = f.idt, f.ny, f.Hb, f.pal.hair, f.idt.seed
    sl, xm, mw, y_uo, y_lo, d_mouth = mouth
    xs, ys, fi = cv.xf[sl], cv.yf[sl], f.face_in[sl]
    fh_kind = idt.facial_hair
    if fh_kind in ("stubble", "moustache", "goatee"):
        tex = _hash_pattern(xs, ys, pat_seed + 11, 170.0)
        lips_keep = _sat(1 - _fill(d_mouth - 0.006, pix))
        ha = f.head_a[sl]
        if fh_kind == "stubble":
            region = ha * _sat((ys - (ny + 0.05)) / 0.04 + _sat((np.abs(xs) - 0.28) / 0.05))
            put(hair_c * 0.9, (region * lips_keep * (0.22 + 0.2 * _sat(tex * 3)) * fi).astype(F32), sl)
        else:
            dmu = np.maximum(np.maximum(ny + 0.035 - ys, ys - (y_uo - 0.003)), np.abs(xm) - mw * 1.12)
            put(hair_c * (0.85 + 0.15 * tex[..., None]), _fill(dmu, pix) * fi * 0.95, sl)
        if fh_kind == "goatee":
            dgo = _ellipse_d(xm, ys, 0, (y_lo + Hb) / 2 + 0.02, mw * 0.75, (Hb - y_lo) / 2 + 0.04)
            put(hair_c * (0.85 + 0.15 * tex[..., None]), _fill(dgo, pix) * lips_keep * fi * 0.95, sl)
    elif fh_kind in ("short_beard", "full_beard"):
        # beards cover the whole lower face: full-frame pass, with the mouth carved out
        xf, yf = cv.xf, cv.yf
        tex = _hash_pattern(xf, yf, pat_seed + 11, 170.0)
        lips_keep = np.ones((n, n), F32)
        lips_keep[sl] = _sat(1 - _fill(d_mouth - 0.006, pix))
        ext = 0.1 if fh_kind == "full_beard" else 0.03
        line = ny + 0.02 + 0.35 * np.abs(xf) ** 1.5
        region = _fill(np.maximum(line - yf, f.d_head - ext), pix) * lips_keep
        alpha = (0.95 if fh_kind == "full_beard" else 0.8) * (0.85 + 0.15 * _sat(tex * 2))
        put(hair_c * (0.8 + 0.2 * tex[..., None]), (region * alpha).astype(F32))
        dmu = np.maximum(np.maximum(ny + 0.035 - ys, ys - (y_uo - 0.003)), np.abs(xm) - mw * 1.12)
        put(hair_c * 0.9, _fill(dmu, pix) * fi * 0.95, sl)


def _draw_hair(cv: _Canvas, f: _Face) -> None:
    """Hair on top of the head: the cap with its hairline per style, sides of long styles, bun, braids; a fringe
    of hair around a bald middle-aged or old head."""
    x, y, xf, yf, pix, put = cv.x, cv.y, cv.xf, cv.yf, cv.pix, cv.put
    idt, W, Ht, ang, hair_rgb, covered = f.idt, f.W, f.Ht, f.ang, f.hair_rgb, f.covered
    style, hv = idt.hair_style, idt.hair_volume
    if not covered and style != "bald":
        hl0 = {"receding": -0.5, "thinning": -0.45, "bob": -0.3, "spiky": -0.34, "messy": -0.3}.get(style, -0.38)
        hl0 = hl0 * idt.forehead
        temple = W * (0.62 if style not in ("long", "shoulder", "curly_long", "bob") else 0.55)
        hair_line = hl0 + (0.02 - hl0) * _smoothstep(temple, W * 0.97, np.abs(xf))
        if style == "receding":
            hair_line = hair_line - 0.1 * np.exp(-((np.abs(xf) - 0.2) / 0.09) ** 2)
        if style == "side_part":
            hair_line = hair_line + 0.05 * _sat((xf - 0.05) / 0.3) * (1 - _smoothstep(temple, W, np.abs(xf)))
        if style in ("long", "shoulder", "curly_long", "bob", "ponytail", "bun", "braids"):
            hair_line = hair_line - 0.03 * np.exp(-(xf / 0.06) ** 2)  # parting
        cap_rx = W * (1.02 if style in ("buzz", "ponytail", "bun", "thinning", "receding") else 1.08) * hv
        cap_ry = Ht * (1.03 if style in ("buzz", "ponytail", "bun") else 1.12) * hv
        rag = 0.0
        if style in ("spiky", "messy", "curly_short", "curly_long"):
            rag = 0.025 * np.sin(ang * (26 if style == "spiky" else 17)) + 0.012 * np.sin(ang * 41)
        d_cap = _ellipse_d(x, y, 0, 0.0, cap_rx, cap_ry) + rag
        d_cap = np.maximum(d_cap, yf - hair_line)
        if style == "undercut":
            d_cap = np.maximum(d_cap, np.abs(xf) - W * 0.8)
        cap_alpha = {"buzz": 0.75, "thinning": 0.65}.get(style, 1.0)
        if style in ("long", "shoulder", "curly_long", "bob"):
            side_len = {"long": 0.9, "shoulder": 0.5, "curly_long": 0.75, "bob": 0.28}[style]
            d_side = np.maximum(np.maximum(W * 0.78 - np.abs(xf), y - side_len),
                                _ellipse_d(x, y, 0, 0.1, W * 1.28 * hv, 1.0))
            d_cap = np.minimum(d_cap, d_side)
        put(hair_rgb, _fill(d_cap, pix) * cap_alpha)
        if style in ("buzz", "undercut"):
            d_sd = np.maximum(_ellipse_d(x, y, 0, 0.0, W * 1.01, Ht * 1.02), yf - hair_line)
            put(hair_rgb, _fill(d_sd, pix) * 0.45)
        if style == "bun":
            d_bun = _ellipse_d(x, y, 0, -Ht - 0.06, 0.14, 0.11)
            put(hair_rgb * 0.95, _fill(d_bun, pix))
        if style == "braids":
            for side in (-1.0, 1.0):
                for kk in range(6):
                    d_br = _ellipse_d(x, y, side * (W + 0.03), 0.05 + 0.11 * kk, 0.045, 0.06)
                    put(hair_rgb * (0.9 - 0.04 * kk), _fill(d_br, pix))
    elif style == "bald" and not covered and idt.age in ("middle-aged", "old"):
        d_fr = np.maximum(np.maximum(_ellipse_d(x, y, 0, 0.0, W * 1.03, Ht * 1.04), np.abs(yf + 0.1) - 0.12),
                          W * 0.82 - np.abs(xf))
        put(hair_rgb, _fill(d_fr, pix) * 0.85)


def _draw_headwear(cv: _Canvas, f: _Face) -> None:
    """Cap, headband or headscarf (the hood is drawn behind the head)."""
    x, y, xf, yf, pix, put = cv.x, cv.y, cv.xf, cv.yf, cv.pix, cv.put
    idt, W, Ht, acc_c, hv = f.idt, f.W, f.Ht, f.pal.acc, f.idt.hair_volume
    if idt.headwear == "cap":
        d_c = np.maximum(_ellipse_d(x, y, 0, 0.0, W * 1.1, Ht * 1.12), yf + 0.33)
        put(acc_c, _fill(d_c, pix))
        d_brim = _ellipse_d(xf, yf, 0, -0.33, W * 1.05, 0.045)
        put(acc_c * 0.75, _fill(d_brim, pix))
    elif idt.headwear == "headband":
        d_band = np.maximum(_ellipse_d(x, y, 0, 0.0, W * 1.1 * hv, Ht * 1.14 * hv), np.abs(yf + 0.47) - 0.028)
        put(acc_c, _fill(d_band, pix))
    elif idt.headwear == "headscarf":
        d_outer = _superellipse_d(x, y, 0, 0.12, W * 1.28, 0.86, 2.2)
        d_face = _ellipse_d(xf, yf, 0, 0.06, W * 0.86, 0.68)
        scarf_tex = (0.9 + 0.1 * np.sin(30 * x + 20 * y))[..., None]
        put(acc_c * scarf_tex, _fill(np.maximum(d_outer, -d_face), pix))


def _draw_glasses(cv: _Canvas, f: _Face) -> None:
    """Glasses: tinted lenses with a glare, frames, temples and bridge."""
    idt = f.idt
    if idt.glasses == "none":
        return
    pix, put = cv.pix, cv.put
    W, ex, ew, ey = f.W, f.ex, f.ew, f.ey
    big = idt.glasses == "large"
    th = {"thin": 0.005, "thick": 0.011, "large": 0.008}[idt.glasses]
    frame_c = np.array([0.1, 0.08, 0.07], F32) if idt.glasses != "large" else f.pal.acc * 0.5
    rx, ry = ew * (1.55 if big else 1.35), (0.085 if big else 0.065)
    sl = cv.win(False, -W - 0.05, W + 0.05, ey - 0.15, ey + 0.15)
    if sl is None:
        return
    xs, ys, fi = cv.xf[sl], cv.yf[sl], f.face_in[sl]
    for side in (-1.0, 1.0):
        cxg = side * ex
        d_l = _superellipse_d(xs, ys, cxg, ey + 0.008, rx, ry, 3.5)
        put(np.array([0.75, 0.82, 0.9], F32), _fill(d_l, pix) * 0.1 * fi, sl)
        put(frame_c, _fill(np.abs(d_l) - th, pix) * fi, sl)
        glare = np.exp(-((xs - cxg + 0.03 * side) / 0.02) ** 2 - ((ys - ey + 0.02) / 0.012) ** 2) * (d_l < 0)
        put(np.array([1.0, 1.0, 1.0], F32), (glare * 0.35 * fi).astype(F32), sl)
        d_tmp = _stroke(xs * side, ys, float(ex + rx), float(W), ey - 0.01 + 0 * xs, th)
        put(frame_c, _fill(d_tmp, pix) * f.head_a[sl], sl)
    gap = float(ex - rx)
    d_br = _stroke(xs, ys, -gap, gap, ey - 0.015 - 0.3 * xs * xs, th)
    put(frame_c, _fill(d_br, pix) * fi, sl)


# ---------------------------------------------------------------------------------------------------------
def render_face(identity: Identity, aus: Mapping[str, float], *, size: int = 128, yaw: float = 0.0,
                pitch: float = 0.0, roll: float = 0.0, light: Light | None = None,
                background: str | tuple[float, float, float] = "studio", rng: np.random.Generator | None = None,
                ss: int = 2, face_scale: float = 1.0, face_center: tuple[float, float] = (0.0, 0.02),
                gaze: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Render one face as an HxWx3 uint8 array (H = W = `size`).

    identity: who (shape, attributes, texture seed); aus: AU intensities 0..5 (missing = 0);
    yaw/pitch/roll: head pose in degrees (|yaw| ≲ 40 looks plausible); light: a `Light`;
    background: one of BACKGROUNDS or an RGB triple in [0, 1]; rng: drives background details only
    (None = a fixed generator, so the call is deterministic either way); ss: supersampling factor;
    face_scale / face_center: placement of the head in the [-1, 1]² canvas; gaze: iris offset (-1..1).
    """
    if size < 8 or ss < 1:
        raise ValueError(f"size must be >= 8 and ss >= 1, got size={size}, ss={ss}")
    A = {k: v / AU_MAX for k, v in validate_aus(aus).items()}
    light = light or Light()
    rng = rng if rng is not None else np.random.default_rng(0)
    n = size * ss

    img = _background(n, background, rng)  # the only use of rng
    x, y, z, axes, xf, yf, z1, syaw = _pixel_frames(n, identity, yaw=yaw, pitch=pitch, roll=roll,
                                                     face_scale=face_scale, face_center=face_center)
    lit = _light_map(x, y, z, axes, light)
    cv = _Canvas(img, pix=F32(2.0 / (n * face_scale)), x=x, y=y, xf=xf, yf=yf, z1=z1)  # pix: in face units
    f = _face(cv, identity, A, syaw=syaw, light=light)

    # back to front
    _draw_behind_head(cv, f)
    _draw_neck_and_clothes(cv, f)
    _draw_ears(cv, f)
    _draw_skin(cv, f)
    _draw_wrinkles(cv, f)
    _draw_eyes(cv, f, gaze)
    _draw_brows(cv, f)
    _draw_nose(cv, f)
    mouth = _draw_mouth(cv, f)
    if mouth is not None:
        _draw_facial_hair(cv, f, mouth)
    _draw_hair(cv, f)
    _draw_headwear(cv, f)
    _draw_glasses(cv, f)

    # lighting: shade everything but the background, then average the supersamples down
    img *= (1 - cv.fg)[..., None] + cv.fg[..., None] * lit
    out = img.reshape(size, ss, size, ss, 3).mean(axis=(1, 3)) if ss > 1 else img
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)
