"""The world's domains: what each stand-in dataset looks like and how one of its images is made.

A `DomainSpec` holds the look (size, pose/light/background ranges, degradations, expression mix, identity
tweaks). `make_sample` turns (spec, seed, index, label) into an image plus its truth row; everything random
comes from `numpy_rng(seed, domain, index)`, so one image can be regenerated from its truth row alone.

| domain      | stands in for        | look                                                                  |
|-------------|----------------------|-----------------------------------------------------------------------|
| rafdb       | RAF-DB aligned       | 100 px JPEG, in-the-wild: pose, mixed light, scenes, blur, occluders  |
| affectnet   | AffectNet            | face inside a larger photo (box given), strong pose/light, colour casts |
| fer2013     | FER2013              | 48 px grey, low contrast, noisy, tight or loose crops                 |
| digiface    | DigiFace-1M          | rendered look: flat saturated backgrounds, hard light, mostly neutral |
| dcface      | DCFace               | soft "diffusion" look: smooth, warm, blurred backgrounds              |
| emonet_face | EmoNet-Face          | text-to-image look: vivid, dramatic light, strong expressions         |
| ffhq        | FFHQ                 | aligned, clean, high quality, mostly neutral or slight smiles         |
| web         | a text-image corpus  | small JPEGs with noisy captions built from attributes and expression  |
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from syntfer.core import labels as L
from syntfer.core.alignment import align_face, similarity
from syntfer.core.seeding import derive_seed, numpy_rng
from syntfer.sources.world.expression import AU_NAMES, CONFUSABLE, sample_expression
from syntfer.sources.world.identity import (AGE_GROUPS, GENDERS, RACE_WORDS, SKIN_TONES, Identity,
                                            identity_from_prompt_attributes, sample_identity)
from syntfer.sources.world.render import Light, face_geometry, render_background, render_face


@dataclass(frozen=True)
class DomainSpec:
    """How one domain looks. Ranges are (low, high) of uniform draws; probabilities are in 0..1."""

    name: str
    size: int                      # output image size (square)
    render_size: int               # size the renderer draws at (then resized to `size`)
    ss: int = 2                    # supersampling factor
    canvas: bool = False           # the face sits somewhere inside a larger photo (AffectNet)
    yaw: float = 20.0              # max |yaw| in degrees (normal sd = yaw / 2, clipped)
    pitch: float = 8.0
    roll: float = 8.0
    face_scale: tuple[float, float] = (0.95, 1.08)
    center_jitter: float = 0.04
    backgrounds: tuple[tuple[str, float], ...] = (("scene", 0.5), ("gradient", 0.25), ("bokeh", 0.25))
    light_azimuth: float = 60.0
    light_elevation: tuple[float, float] = (0.0, 50.0)
    light_tint: float = 0.12
    ambient: tuple[float, float] = (0.45, 0.7)
    strength: tuple[float, float] = (0.85, 1.15)
    blur: tuple[float, float, float] = (0.3, 0.2, 1.2)        # (probability, min, max) gaussian radius px
    noise: tuple[float, float] = (0.0, 0.03)                  # sensor noise sd range (0..1 units)
    jpeg: tuple[int, int] = (70, 95)
    occluder: float = 0.08
    lowres: tuple[float, float, float] = (0.2, 0.45, 0.8)      # (probability, min, max) down-up scale factor
    contrast: tuple[float, float] = (0.85, 1.15)
    saturation: tuple[float, float] = (0.8, 1.2)
    tint: float = 0.05                                        # colour cast sd
    grey: bool = False
    expression: dict[str, Any] = field(default_factory=dict)  # kwargs of sample_expression
    class_mix: tuple[tuple[str, float], ...] = ()             # unlabeled domains: expression mix
    identity: dict[str, Any] = field(default_factory=dict)    # fixed identity attributes (rare)
    accessory_scale: float = 1.0                              # 0 removes glasses/headwear/earrings
    aligned: int = 0               # > 0: images are written as aligned face crops of this size (syntfer.core.alignment)
    label_noise: float = 0.0       # labeled domains: share of images whose annotated label is a class annotators
                                   # confuse with the expression the face shows (`shown_expression`)


def _mix(name: str, **shares: float) -> tuple[tuple[str, float], ...]:
    total = sum(shares.values())
    return tuple((c, shares.get(c, 0.0) / total) for c in L.CLASSES)


DOMAINS: dict[str, DomainSpec] = {
    "rafdb": DomainSpec("rafdb", size=100, render_size=100, yaw=20, pitch=8, roll=8, occluder=0.06,
                        face_scale=(1.3, 1.5), blur=(0.25, 0.2, 0.9), lowres=(0.15, 0.55, 0.85),
                        expression=dict(faint_share=0.1, blend_share=0.1), label_noise=0.03),
    "affectnet": DomainSpec("affectnet", size=160, render_size=160, canvas=True, yaw=30, pitch=12, roll=12,
                            face_scale=(0.75, 0.95), center_jitter=0.15, light_azimuth=70, light_tint=0.15,
                            blur=(0.15, 0.2, 0.8), lowres=(0.1, 0.6, 0.85),
                            ambient=(0.4, 0.65), strength=(0.75, 1.2), tint=0.08, contrast=(0.85, 1.2),
                            backgrounds=(("scene", 0.6), ("bokeh", 0.3), ("flat", 0.1)), occluder=0.12,
                            expression=dict(faint_share=0.12, blend_share=0.12, jitter=0.3), label_noise=0.12),
    # FER2013 faces are crops of larger photos, downscaled: rendered at twice the size and reduced (antialiased
    # lines), where version 2 drew them at 48 px directly and brows and lip lines aliased away
    "fer2013": DomainSpec("fer2013", size=48, render_size=96, yaw=30, pitch=12, roll=10,
                          face_scale=(1.3, 1.55), center_jitter=0.05, grey=True, blur=(0.35, 0.3, 0.8),
                          noise=(0.01, 0.04), jpeg=(40, 80), contrast=(0.75, 1.15), lowres=(0.25, 0.6, 0.85),
                          occluder=0.1, expression=dict(faint_share=0.2, blend_share=0.15, jitter=0.3),
                          label_noise=0.08),
    "digiface": DomainSpec("digiface", size=112, render_size=112, yaw=30, pitch=12, roll=6,
                           face_scale=(1.3, 1.45), center_jitter=0.02,
                           backgrounds=(("flat", 0.5), ("gradient", 0.5)), light_azimuth=90, light_tint=0.15,
                           ambient=(0.3, 0.5), strength=(0.9, 1.3), blur=(0.0, 0.0, 0.0), noise=(0.0, 0.0),
                           jpeg=(100, 100), occluder=0.0, lowres=(0.0, 1.0, 1.0), saturation=(1.0, 1.25),
                           expression=dict(faint_share=0.35, blend_share=0.2, intensity=(0.4, 0.9)),
                           class_mix=_mix("digiface", neutral=0.45, happy=0.2, sad=0.07, surprise=0.09, anger=0.06,
                                          fear=0.06, disgust=0.07)),
    "dcface": DomainSpec("dcface", size=112, render_size=112, yaw=15, pitch=8, roll=4,
                         face_scale=(1.25, 1.4), center_jitter=0.02,
                         backgrounds=(("bokeh", 0.6), ("gradient", 0.4)), light_azimuth=40, light_tint=0.08,
                         ambient=(0.5, 0.75), blur=(1.0, 0.6, 1.1), noise=(0.0, 0.01), jpeg=(100, 100),
                         occluder=0.02, lowres=(0.0, 1.0, 1.0), tint=0.06, contrast=(0.8, 0.95),
                         expression=dict(faint_share=0.2, blend_share=0.2, intensity=(0.5, 1.1)),
                         class_mix=_mix("dcface", neutral=0.3, happy=0.3, sad=0.09, surprise=0.1, anger=0.08,
                                        fear=0.06, disgust=0.07)),
    "emonet_face": DomainSpec("emonet_face", size=112, render_size=112, yaw=20, pitch=10, roll=8,
                              face_scale=(1.1, 1.35), backgrounds=(("scene", 0.4), ("bokeh", 0.3),
                                                                    ("gradient", 0.3)),
                              light_azimuth=85, light_tint=0.15, ambient=(0.3, 0.55), strength=(0.9, 1.35),
                              blur=(0.1, 0.3, 0.6), noise=(0.0, 0.01), jpeg=(100, 100), occluder=0.03,
                              lowres=(0.0, 1.0, 1.0), saturation=(1.1, 1.35), contrast=(1.05, 1.25),
                              expression=dict(faint_share=0.08, blend_share=0.15, intensity=(0.9, 1.4)),
                              class_mix=_mix("emonet_face", neutral=0.12, happy=0.16, sad=0.15, surprise=0.15,
                                             anger=0.15, fear=0.14, disgust=0.13)),
    "ffhq": DomainSpec("ffhq", size=128, render_size=128, yaw=12, pitch=6, roll=3, face_scale=(1.2, 1.3),
                       center_jitter=0.01, backgrounds=(("bokeh", 0.5), ("scene", 0.3), ("studio", 0.2)),
                       light_azimuth=45, light_tint=0.06, ambient=(0.45, 0.7), blur=(0.0, 0.0, 0.0),
                       noise=(0.0, 0.004), jpeg=(100, 100), occluder=0.0, lowres=(0.0, 1.0, 1.0),
                       expression=dict(faint_share=0.5, blend_share=0.05, intensity=(0.3, 0.7)),
                       class_mix=_mix("ffhq", neutral=0.55, happy=0.38, surprise=0.02, sad=0.02, anger=0.01,
                                      fear=0.01, disgust=0.01)),
    "web": DomainSpec("web", size=64, render_size=64, yaw=25, pitch=10, roll=8, face_scale=(1.1, 1.4),
                      backgrounds=(("scene", 0.4), ("bokeh", 0.3), ("gradient", 0.2), ("studio", 0.1)),
                      jpeg=(75, 95), occluder=0.03,
                      expression=dict(faint_share=0.12, blend_share=0.1, intensity=(0.7, 1.3)),
                      class_mix=_mix("web", neutral=0.16, happy=0.2, sad=0.13, surprise=0.13, anger=0.13,
                                     fear=0.12, disgust=0.13)),
}
"""Default look of every domain (presets may change sizes)."""

REFERENCE_DOMAINS: dict[str, DomainSpec] = {
    # The measurement instruments' data: labelled, class-balanced renders in the look of a domain a generator
    # imitates (never a training set of the study). `ref_web` is the web domain as it is, aligned to 48 px
    # face crops as the diffusion strategy's generator learns and draws it; `ref_ffhq` is the FFHQ look with
    # full-strength expressions (FFHQ's own faces are mostly neutral or faintly smiling; the GAN strategy edits
    # them into every class), whole images as the GAN sets hold them.
    "ref_web": dataclasses.replace(DOMAINS["web"], name="ref_web", class_mix=(), aligned=48),
    "ref_ffhq": dataclasses.replace(DOMAINS["ffhq"], name="ref_ffhq", class_mix=(), size=64,
                                    expression=dict(faint_share=0.1, blend_share=0.1)),
}
"""Reference domains: what the project's judge and attribute classifier are trained and calibrated on."""

# Rough valence/arousal centres (AffectNet convention, -1..1) for the AffectNet stand-in.
VALENCE_AROUSAL: dict[str, tuple[float, float]] = {
    "neutral": (0.0, 0.0), "happy": (0.75, 0.35), "sad": (-0.65, -0.25), "surprise": (0.2, 0.75),
    "fear": (-0.6, 0.65), "disgust": (-0.65, 0.35), "anger": (-0.6, 0.6), "contempt": (-0.4, 0.2),
    "none": (0.0, 0.1), "uncertain": (0.0, 0.0), "no-face": (-2.0, -2.0),
}


def _pick(rng: np.random.Generator, pairs):
    names = [p[0] for p in pairs]
    w = np.array([p[1] for p in pairs], dtype=float)
    return names[int(rng.choice(len(names), p=w / w.sum()))]


def shown_expression(spec: DomainSpec, seed: int, index: int, annotation: str) -> str:
    """The expression the face of image `index` shows when its annotators labelled it `annotation`.

    Real FER labels are noisy in the way people confuse expressions (fear/surprise, disgust/anger,
    sad/neutral, ...): AffectNet's annotators agree on about 60 % of images, FER2013's human accuracy is about
    65 %, RAF-DB's 40 votes per image make it the cleanest. With probability `spec.label_noise` the face shows
    one of `CONFUSABLE[annotation]` instead (drawn from the image's own stream, so the other draws of the
    image are the same with or without noise); otherwise, and for labels outside the 7 classes, the annotation.
    """
    if spec.label_noise <= 0 or annotation not in CONFUSABLE:
        return annotation
    rng = numpy_rng(seed, spec.name, "annotation", index)
    if rng.random() >= spec.label_noise:
        return annotation
    options = CONFUSABLE[annotation]
    return options[int(rng.integers(len(options)))]


def draw_label(spec: DomainSpec, rng: np.random.Generator) -> str:
    """An expression class from the domain's mix (unlabeled domains)."""
    if not spec.class_mix:
        raise ValueError(f"domain {spec.name!r} has no class_mix; its labels are assigned by counts")
    return _pick(rng, spec.class_mix)


def _identity(spec: DomainSpec, rng: np.random.Generator, ident_id: str | None) -> Identity:
    idt = sample_identity(rng, id=ident_id, **spec.identity)
    if spec.accessory_scale < 1.0 and rng.random() > spec.accessory_scale:
        idt = dataclasses.replace(idt, glasses="none", headwear="none", earrings=False, nose_ring=False)
    return idt


def identity_for(spec: DomainSpec, seed: int, identity_key: object) -> Identity:
    """The identity with key `identity_key` in a domain (identity-folder domains reuse it across images)."""
    return _identity(spec, numpy_rng(seed, spec.name, "identity", identity_key),
                     f"{spec.name}-{seed}-{identity_key}")


def sample_scene(spec: DomainSpec, rng: np.random.Generator) -> dict[str, Any]:
    """Pose, light, background and placement for one image."""
    y = float(np.clip(rng.normal(0, spec.yaw / 2), -spec.yaw, spec.yaw))
    p = float(np.clip(rng.normal(0, spec.pitch / 2), -spec.pitch, spec.pitch))
    r = float(np.clip(rng.normal(0, spec.roll / 2), -spec.roll, spec.roll))
    tint = 1 + rng.normal(0, spec.light_tint, 3) * np.array([1.0, 0.4, -1.0])  # warm/cool shifts
    light = Light(azimuth=float(rng.uniform(-spec.light_azimuth, spec.light_azimuth)),
                  elevation=float(rng.uniform(*spec.light_elevation)),
                  colour=tuple(float(c) for c in np.clip(tint / tint.max(), 0.5, 1.0)),
                  ambient=float(rng.uniform(*spec.ambient)), strength=float(rng.uniform(*spec.strength)))
    scale = float(rng.uniform(*spec.face_scale))
    j = spec.center_jitter
    if spec.canvas:
        lim = max(0.0, 1 - scale * 0.75)
        centre = (float(rng.uniform(-lim, lim)), float(rng.uniform(-lim, lim) * 0.8 + 0.05))
    else:
        centre = (float(rng.normal(0, j)), float(0.02 + rng.normal(0, j)))
    return {"yaw": y, "pitch": p, "roll": r, "light": light, "background": _pick(rng, spec.backgrounds),
            "face_scale": scale, "face_center": centre,
            "gaze": (float(rng.normal(0, 0.3)), float(rng.normal(0, 0.2)))}


def degrade(img: np.ndarray, spec: DomainSpec, rng: np.random.Generator) -> tuple[Image.Image, dict[str, Any]]:
    """Camera and processing nuisance: colour grade, occluder, resolution loss, blur, noise (vectorised)."""
    info: dict[str, Any] = {}
    x = img.astype(np.float32) / 255.0
    c = float(rng.uniform(*spec.contrast))
    s = float(rng.uniform(*spec.saturation))
    grey = x.mean(-1, keepdims=True)
    x = grey + (x - grey) * s
    x = 0.5 + (x - 0.5) * c
    x = x * (1 + rng.normal(0, spec.tint, 3)).astype(np.float32)
    info.update(contrast=c, saturation=s)
    pil = Image.fromarray((np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8))
    info["occluder"] = ""
    if rng.random() < spec.occluder:
        info["occluder"] = _occlude(pil, rng)
    n = pil.size[0]
    info["lowres"] = 1.0
    if rng.random() < spec.lowres[0]:
        f = float(rng.uniform(spec.lowres[1], spec.lowres[2]))
        m = max(8, int(round(n * f)))
        pil = pil.resize((m, m), Image.BILINEAR).resize((n, n), Image.BILINEAR)
        info["lowres"] = f
    info["blur"] = 0.0
    if rng.random() < spec.blur[0]:
        radius = float(rng.uniform(spec.blur[1], spec.blur[2])) * n / 100
        pil = pil.filter(ImageFilter.GaussianBlur(radius))
        info["blur"] = radius
    sd = float(rng.uniform(*spec.noise))
    info["noise"] = sd
    if sd > 0:
        arr = np.asarray(pil).astype(np.float32) / 255.0
        arr = arr + rng.normal(0, sd, arr.shape).astype(np.float32)
        pil = Image.fromarray((np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8))
    if spec.grey:
        pil = pil.convert("L")
    info["jpeg_quality"] = int(rng.integers(spec.jpeg[0], spec.jpeg[1] + 1))
    return pil, info


def _occlude(pil: Image.Image, rng: np.random.Generator) -> str:
    """Draw a partial occluder: a hand-like blob, an object bar, or a cup/phone rectangle."""
    n = pil.size[0]
    draw = ImageDraw.Draw(pil)
    kind = ["hand", "bar", "object"][int(rng.integers(3))]
    cx, cy = rng.uniform(0.2, 0.8) * n, rng.uniform(0.45, 0.95) * n
    w, h = rng.uniform(0.15, 0.35) * n, rng.uniform(0.12, 0.3) * n
    col = tuple(int(v) for v in rng.integers(30, 230, 3))
    if kind == "hand":
        tone = SKIN_TONES[int(rng.integers(1, 7))]
        col = tuple(int(v * 235) for v in tone)
        draw.ellipse([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], fill=col)
        for k in range(4):
            fx = cx - w / 2 + (k + 0.5) * w / 4
            draw.rounded_rectangle([fx - w / 10, cy - h * 1.2, fx + w / 10, cy], radius=w / 10, fill=col)
    elif kind == "bar":
        draw.rectangle([0, cy - h / 6, n, cy + h / 6], fill=col)
    else:
        draw.rounded_rectangle([cx - w / 3, cy - h / 2, cx + w / 3, cy + h / 2], radius=n / 30, fill=col)
    return kind


def with_render(spec: DomainSpec, max_render: int | None, ss: int) -> DomainSpec:
    """The spec rendered at most at `max_render` px (canvas domains: 1.5× that) with supersampling `ss`;
    images are then resized to `spec.size`. None keeps the native size."""
    if max_render is None:
        return dataclasses.replace(spec, ss=ss)
    cap = int(max_render * (1.5 if spec.canvas else 1))
    return dataclasses.replace(spec, render_size=min(spec.render_size, cap), ss=ss)


def make_sample(spec: DomainSpec, seed: int, index: int, label: str, *, identity_key: object | None = None,
                identity: Identity | None = None) -> tuple[Image.Image, dict[str, Any]]:
    """Render image `index` of a domain with expression class `label` (canonical, or an AffectNet extra:
    'contempt', 'none', 'uncertain', 'no-face'). The identity is drawn per image, or shared through
    `identity_key` (identity folders), or given. Returns the PIL image (at spec.size) and its truth row."""
    render_seed = derive_seed(seed, spec.name, index)
    rng = np.random.default_rng(render_seed)
    if identity is not None:
        idt = identity
    elif identity_key is None:
        idt = _identity(spec, numpy_rng(seed, spec.name, "identity", index), f"{spec.name}-{seed}-{index}")
    else:
        idt = identity_for(spec, seed, identity_key)
    scene = sample_scene(spec, rng)
    aus = {a: 0.0 for a in AU_NAMES}
    if label != "no-face":
        aus = sample_expression(label, rng, **spec.expression)
    canvas = spec.render_size
    bg_rng = np.random.default_rng(derive_seed(render_seed, "background"))
    if label == "no-face":
        arr = render_background(canvas, scene["background"], bg_rng, ss=1)
    else:
        arr = render_face(idt, aus, size=canvas, yaw=scene["yaw"], pitch=scene["pitch"], roll=scene["roll"],
                          light=scene["light"], background=scene["background"], rng=bg_rng, ss=spec.ss,
                          face_scale=scene["face_scale"], face_center=scene["face_center"], gaze=scene["gaze"])
    geo = face_geometry(idt, size=canvas, yaw=scene["yaw"], pitch=scene["pitch"], roll=scene["roll"],
                        face_scale=scene["face_scale"], face_center=scene["face_center"], aus=aus)
    pil, post = degrade(arr, spec, rng)
    out_size = spec.size
    if pil.size[0] != out_size:
        pil = pil.resize((out_size, out_size), Image.BICUBIC if out_size > pil.size[0] else Image.LANCZOS)
    scale = out_size / canvas
    bx, by, bw, bh = (int(round(v * scale)) for v in geo.box)
    points = np.array(geo.landmarks, np.float64) * scale
    if spec.aligned:
        m = similarity(points, spec.aligned)
        pil = Image.fromarray(align_face(np.asarray(pil), points, spec.aligned))
        points = points @ m[:, :2].T + m[:, 2]
        corners = np.array([[bx, by], [bx + bw, by + bh]], np.float64) @ m[:, :2].T + m[:, 2]
        bx, by = (int(round(v)) for v in corners.min(0))
        bw, bh = (int(round(v)) for v in np.abs(corners[1] - corners[0]))
    row: dict[str, Any] = {"expression": label, **{a: round(v, 4) for a, v in aus.items()}}
    row.update({f"id_{k}" if k != "id" else "identity": v for k, v in idt.attributes().items()})
    row.update(yaw=round(scene["yaw"], 3), pitch=round(scene["pitch"], 3), roll=round(scene["roll"], 3),
               light_azimuth=round(scene["light"].azimuth, 2), light_elevation=round(scene["light"].elevation, 2),
               light_ambient=round(scene["light"].ambient, 3), background=scene["background"],
               face_scale=round(scene["face_scale"], 4), face_x=bx, face_y=by, face_width=bw, face_height=bh,
               landmarks=";".join(f"{u:.1f};{v:.1f}" for u, v in points),
               render_seed=render_seed, index=index)
    row.update({k: (round(v, 4) if isinstance(v, float) else v) for k, v in post.items()})
    return pil, row


# ---- captions for the web domain ------------------------------------------------------------------------
EMOTION_WORDS: dict[str, tuple[str, ...]] = {
    "anger": ("angry", "furious", "annoyed", "mad"),
    "disgust": ("disgusted", "grossed out", "repulsed"),
    "fear": ("scared", "fearful", "terrified", "frightened"),
    "happy": ("happy", "smiling", "joyful", "cheerful", "laughing"),
    "neutral": ("neutral", "calm", "expressionless", "serious"),
    "sad": ("sad", "unhappy", "sorrowful", "upset"),
    "surprise": ("surprised", "shocked", "astonished", "amazed"),
}
GENDER_WORDS = {("male", "child"): "boy", ("female", "child"): "girl", ("male", "young"): "young man",
                ("female", "young"): "young woman", ("male", "adult"): "man", ("female", "adult"): "woman",
                ("male", "middle-aged"): "middle-aged man", ("female", "middle-aged"): "middle-aged woman",
                ("male", "old"): "old man", ("female", "old"): "old woman"}


def web_identity(spec: DomainSpec, seed: int, index: int) -> tuple[Identity, dict[str, str]]:
    """A web-domain identity drawn from prompt words (gender, age group, race word), via the documented map."""
    rng = numpy_rng(seed, spec.name, "words", index)
    words = {"gender": GENDERS[int(rng.integers(2))], "age": AGE_GROUPS[int(rng.integers(len(AGE_GROUPS)))],
             "race": RACE_WORDS[int(rng.integers(len(RACE_WORDS)))]}
    idt = identity_from_prompt_attributes(words["gender"], words["age"], words["race"], None, rng,
                                          id=f"{spec.name}-{seed}-{index}")
    return idt, words


def make_caption(label: str, idt: Identity, words: dict[str, str], rng: np.random.Generator) -> tuple[str, str]:
    """A caption with realistic noise: synonyms, missing or wrong emotion words, dropped attributes.

    Returns (caption, emotion word used or '')."""
    r = rng.random()
    if r < 0.08:
        emo = ""
    elif r < 0.13:
        emo = EMOTION_WORDS[L.CLASSES[int(rng.integers(7))]][0]  # wrong or random word (caption noise)
    else:
        opts = EMOTION_WORDS[label]
        emo = opts[int(rng.integers(len(opts)))]
    who = GENDER_WORDS[(words["gender"], words["age"])]
    parts = []
    if rng.random() < 0.55:
        parts.append(f"{words['race']}")
    parts.append(who)
    extras = []
    if idt.glasses != "none" and rng.random() < 0.7:
        extras.append("wearing glasses")
    if idt.facial_hair in ("short_beard", "full_beard", "goatee") and rng.random() < 0.7:
        extras.append("with a beard")
    if idt.facial_hair == "moustache" and rng.random() < 0.7:
        extras.append("with a moustache")
    if idt.headwear != "none" and rng.random() < 0.6:
        extras.append({"cap": "wearing a cap", "headband": "with a headband", "headscarf": "with a headscarf",
                       "hood": "wearing a hood"}[idt.headwear])
    if rng.random() < 0.4:
        extras.append(f"{idt.hair_colour.replace('_', ' ')} hair")
    template = int(rng.integers(4))
    subject = " ".join(parts)
    article = "an" if (emo or subject)[:1] in "aeiou" else "a"
    if template == 0:
        cap = f"{article} {emo + ' ' if emo else ''}{subject}"
    elif template == 1:
        cap = f"portrait of {article} {subject}" + (f", {emo}" if emo else "")
    elif template == 2:
        cap = f"close-up photo of {article} {emo + ' ' if emo else ''}{subject} face"
    else:
        cap = f"{subject} looking {emo}" if emo else f"{subject}, headshot"
    if extras:
        cap += ", " + ", ".join(extras)
    if rng.random() < 0.2:
        cap += ", " + ["stock photo", "4k", "high quality", "candid", "indoor"][int(rng.integers(5))]
    return cap, emo
