"""Identities of the procedural world: a stable attribute + shape vector with an id.

The same `Identity` can be rendered with any expression, pose, light or background.

How prompt words map to renderer attributes (`identity_from_prompt_attributes`, used to render faces for the
diffusion prompt grid of docs/method.md §4 and for the `web` captions). The mapping is deliberately crude and
neutral; it is a stand-in, not a model of people:

- gender {male, female} -> `gender` = gender *presentation* only: default proportions (jaw/brow a little wider
  for male, lips a little fuller for female) and which hair styles / facial hair are sampled.
- age {child, young, adult, middle-aged, old} -> `age` group: head proportions (children: larger eyes, rounder
  and shorter face, no facial hair), wrinkle depth (rising with age), grey/white hair share (middle-aged some,
  old most). `age_years` is a number drawn inside the group (child 6-12, young 18-27, adult 28-40,
  middle-aged 41-60, old 65-85).
- race {white, black, asian, middle-eastern, latino} -> a *range of skin-tone levels* on the renderer's 6-level
  scale (1 lightest .. 6 darkest) and nothing else: white 1-3, asian 1-4, middle-eastern 2-4, latino 2-5,
  black 4-6. Face shape, hair and eyes are sampled independently of the race word. Skin tone is a crude proxy
  for these words: real appearance varies far more, and the words are social categories, not colours.
- identity trait (the phrases of docs/method.md §4) -> explicit attribute settings, e.g. "buzz cut" -> hair_style
  buzz, "wearing glasses" -> glasses thin, "short beard" -> facial_hair short_beard, "with freckles" ->
  freckles, "wrinkled face" -> extra wrinkles; the full table is `TRAIT_ATTRIBUTES`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

GENDERS: tuple[str, ...] = ("male", "female")
AGE_GROUPS: tuple[str, ...] = ("child", "young", "adult", "middle-aged", "old")
AGE_YEARS: dict[str, tuple[int, int]] = {"child": (6, 12), "young": (18, 27), "adult": (28, 40),
                                         "middle-aged": (41, 60), "old": (65, 85)}
RACE_WORDS: tuple[str, ...] = ("white", "black", "asian", "middle-eastern", "latino")
RACE_SKIN_TONES: dict[str, tuple[int, int]] = {"white": (1, 3), "asian": (1, 4), "middle-eastern": (2, 4),
                                               "latino": (2, 5), "black": (4, 6)}
"""Race word -> inclusive range of skin-tone levels (a crude proxy, see module docstring)."""

SKIN_TONES: dict[int, tuple[float, float, float]] = {
    1: (0.96, 0.84, 0.76), 2: (0.91, 0.75, 0.63), 3: (0.80, 0.62, 0.48),
    4: (0.68, 0.49, 0.35), 5: (0.54, 0.37, 0.26), 6: (0.40, 0.27, 0.19),
}
"""Skin-tone level (1 lightest .. 6 darkest) -> linear-ish RGB albedo in [0, 1]."""

HAIR_STYLES: tuple[str, ...] = ("bald", "buzz", "short", "side_part", "spiky", "messy", "undercut", "receding",
                                "thinning", "curly_short", "bob", "shoulder", "long", "curly_long", "ponytail",
                                "bun", "braids")
HAIR_COLOURS: dict[str, tuple[float, float, float]] = {
    "black": (0.07, 0.06, 0.06), "dark_brown": (0.20, 0.13, 0.08), "brown": (0.38, 0.25, 0.14),
    "auburn": (0.50, 0.22, 0.10), "blonde": (0.78, 0.64, 0.38), "grey": (0.58, 0.57, 0.56),
    "white": (0.88, 0.87, 0.85),
}
FACIAL_HAIR: tuple[str, ...] = ("none", "stubble", "moustache", "goatee", "short_beard", "full_beard")
GLASSES: tuple[str, ...] = ("none", "thin", "thick", "large")
HEADWEAR: tuple[str, ...] = ("none", "cap", "headband", "headscarf", "hood")
CLOTHING: tuple[str, ...] = ("tshirt", "shirt", "sweater", "hoodie", "scarf", "cardigan")
EYE_COLOURS: dict[str, tuple[float, float, float]] = {
    "dark_brown": (0.20, 0.11, 0.06), "brown": (0.36, 0.22, 0.10), "hazel": (0.45, 0.38, 0.18),
    "green": (0.28, 0.42, 0.25), "blue": (0.30, 0.45, 0.65), "grey": (0.45, 0.50, 0.55),
}

# Continuous shape parameters: name -> (mean, sd) of a clipped normal, as multipliers/offsets of the base face.
SHAPE_PARAMS: dict[str, tuple[float, float]] = {
    "face_width": (1.0, 0.05), "face_length": (1.0, 0.05), "jaw_width": (0.72, 0.07), "jaw_square": (2.4, 0.35),
    "chin_length": (1.0, 0.08), "cheek_fullness": (0.5, 0.2), "forehead": (1.0, 0.07),
    "eye_size": (1.0, 0.09), "eye_spacing": (1.0, 0.05), "eye_height": (0.0, 0.015), "eye_tilt": (0.0, 0.08),
    "brow_thickness": (1.0, 0.18), "brow_height": (0.0, 0.012), "brow_arch": (1.0, 0.3),
    "nose_length": (1.0, 0.08), "nose_width": (1.0, 0.1), "mouth_width": (1.0, 0.08),
    "upper_lip": (1.0, 0.18), "lower_lip": (1.0, 0.18), "ear_size": (1.0, 0.1), "hair_volume": (1.0, 0.12),
    "skin_shift": (0.0, 0.025), "asymmetry": (0.0, 0.012),
}


@dataclass(frozen=True)
class Identity:
    """A person of the world: attributes plus continuous shape parameters; `seed` drives its fixed textures."""

    id: str
    gender: str
    age: str
    age_years: int
    skin_tone: int
    hair_style: str
    hair_colour: str
    highlights: bool
    facial_hair: str
    glasses: str
    headwear: str
    clothing: str
    clothing_colour: tuple[float, float, float]
    accessory_colour: tuple[float, float, float]
    eye_colour: str
    earrings: bool
    nose_ring: bool
    freckles: bool
    lipstick: bool
    makeup: bool
    age_spots: bool
    wrinkles: float
    smile_lines: float
    seed: int
    face_width: float = 1.0
    face_length: float = 1.0
    jaw_width: float = 0.72
    jaw_square: float = 2.4
    chin_length: float = 1.0
    cheek_fullness: float = 0.5
    forehead: float = 1.0
    eye_size: float = 1.0
    eye_spacing: float = 1.0
    eye_height: float = 0.0
    eye_tilt: float = 0.0
    brow_thickness: float = 1.0
    brow_height: float = 0.0
    brow_arch: float = 1.0
    nose_length: float = 1.0
    nose_width: float = 1.0
    mouth_width: float = 1.0
    upper_lip: float = 1.0
    lower_lip: float = 1.0
    ear_size: float = 1.0
    hair_volume: float = 1.0
    skin_shift: float = 0.0
    asymmetry: float = 0.0

    def shape_vector(self) -> np.ndarray:
        """The continuous shape parameters in `SHAPE_PARAMS` order."""
        return np.array([getattr(self, k) for k in SHAPE_PARAMS], dtype=np.float64)

    def attributes(self) -> dict[str, Any]:
        """Flat dict of every field (tuples as 'r;g;b' strings) for truth tables."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = ";".join(f"{c:.3f}" for c in v) if isinstance(v, tuple) else v
        return out


FIELD_NAMES = tuple(f.name for f in dataclasses.fields(Identity))


def _choice(rng: np.random.Generator, options, p=None):
    options = list(options)
    if p is not None:
        p = np.asarray(p, dtype=float)
        p = p / p.sum()
    return options[int(rng.choice(len(options), p=p))]


def _hair_style(rng, gender: str, age: str) -> str:
    if gender == "male":
        styles = {"bald": 0.05, "buzz": 0.16, "short": 0.24, "side_part": 0.14, "spiky": 0.08, "messy": 0.09,
                  "undercut": 0.07, "receding": 0.07, "thinning": 0.03, "curly_short": 0.07}
        if age == "child":
            for k in ("bald", "receding", "thinning"):
                styles.pop(k)
        elif age in ("middle-aged", "old"):
            styles.update({"bald": 0.14, "receding": 0.16, "thinning": 0.1, "spiky": 0.02, "undercut": 0.02})
    else:
        styles = {"bob": 0.14, "shoulder": 0.18, "long": 0.2, "curly_long": 0.1, "ponytail": 0.12, "bun": 0.1,
                  "braids": 0.06, "short": 0.06, "curly_short": 0.04}
        if age == "old":
            styles.update({"bun": 0.18, "curly_short": 0.16, "short": 0.14, "long": 0.06})
    return _choice(rng, styles.keys(), list(styles.values()))


def _hair_colour(rng, age: str) -> str:
    if age == "old":
        return _choice(rng, ("grey", "white", "dark_brown"), (0.5, 0.4, 0.1))
    if age == "middle-aged":
        return _choice(rng, ("black", "dark_brown", "brown", "blonde", "grey", "auburn"),
                       (0.25, 0.25, 0.15, 0.08, 0.22, 0.05))
    return _choice(rng, ("black", "dark_brown", "brown", "blonde", "auburn"), (0.3, 0.28, 0.2, 0.14, 0.08))


def sample_identity(rng: np.random.Generator, *, id: str | None = None, **fixed: Any) -> Identity:
    """Draw a random identity; any field of `Identity` can be fixed by keyword (validated).

    Attributes are drawn conditionally on gender and age (hair styles, facial hair, grey hair, wrinkles).
    Raises ValueError naming an unknown field or an invalid value.
    """
    unknown = [k for k in fixed if k not in FIELD_NAMES]
    if unknown:
        raise ValueError(f"unknown identity attribute(s) {unknown}; expected some of {list(FIELD_NAMES)}")
    _check_value("gender", fixed.get("gender"), GENDERS)
    _check_value("age", fixed.get("age"), AGE_GROUPS)
    _check_value("hair_style", fixed.get("hair_style"), HAIR_STYLES)
    _check_value("hair_colour", fixed.get("hair_colour"), tuple(HAIR_COLOURS))
    _check_value("facial_hair", fixed.get("facial_hair"), FACIAL_HAIR)
    _check_value("glasses", fixed.get("glasses"), GLASSES)
    _check_value("headwear", fixed.get("headwear"), HEADWEAR)
    _check_value("clothing", fixed.get("clothing"), CLOTHING)
    _check_value("eye_colour", fixed.get("eye_colour"), tuple(EYE_COLOURS))
    if "skin_tone" in fixed and int(fixed["skin_tone"]) not in SKIN_TONES:
        raise ValueError(f"skin_tone {fixed['skin_tone']!r} outside 1..6")

    gender = fixed.get("gender") or _choice(rng, GENDERS)
    age = fixed.get("age") or _choice(rng, AGE_GROUPS, (0.12, 0.3, 0.26, 0.2, 0.12))
    lo, hi = AGE_YEARS[age]
    v: dict[str, Any] = {
        "gender": gender, "age": age, "age_years": int(rng.integers(lo, hi + 1)),
        "skin_tone": int(rng.integers(1, 7)),
        "hair_style": _hair_style(rng, gender, age), "hair_colour": _hair_colour(rng, age),
        "highlights": bool(rng.random() < (0.08 if gender == "female" and age in ("young", "adult") else 0.0)),
        "facial_hair": "none", "glasses": "none", "headwear": "none",
        "clothing": _choice(rng, CLOTHING, (0.35, 0.2, 0.18, 0.12, 0.07, 0.08)),
        "clothing_colour": tuple(float(c) for c in rng.uniform(0.1, 0.9, 3)),
        "accessory_colour": tuple(float(c) for c in rng.uniform(0.1, 0.95, 3)),
        "eye_colour": _choice(rng, EYE_COLOURS, (0.4, 0.2, 0.12, 0.08, 0.12, 0.08)),
        "earrings": bool(rng.random() < (0.35 if gender == "female" else 0.06) and age != "child"),
        "nose_ring": bool(rng.random() < 0.03 and age in ("young", "adult")),
        "freckles": bool(rng.random() < 0.08), "lipstick": bool(gender == "female" and age != "child"
                                                                 and rng.random() < 0.25),
        "makeup": bool(gender == "female" and age != "child" and rng.random() < 0.3),
        "age_spots": bool(age == "old" and rng.random() < 0.4),
        "seed": int(rng.integers(0, 2**31 - 1)),
    }
    if gender == "male" and age != "child":
        v["facial_hair"] = _choice(rng, FACIAL_HAIR, (0.5, 0.15, 0.08, 0.07, 0.12, 0.08) if age != "young"
                                   else (0.6, 0.15, 0.04, 0.08, 0.09, 0.04))
    p_glasses = {"child": 0.06, "young": 0.15, "adult": 0.22, "middle-aged": 0.35, "old": 0.5}[age]
    if rng.random() < p_glasses:
        v["glasses"] = _choice(rng, ("thin", "thick", "large"), (0.5, 0.3, 0.2))
    if rng.random() < 0.08:
        v["headwear"] = _choice(rng, ("cap", "headband", "headscarf", "hood"), (0.4, 0.25, 0.2, 0.15)
                                if gender == "female" else (0.7, 0.05, 0.05, 0.2))
    base_wrinkle = {"child": 0.0, "young": 0.05, "adult": 0.2, "middle-aged": 0.5, "old": 0.9}[age]
    v["wrinkles"] = float(np.clip(base_wrinkle + rng.normal(0, 0.08), 0, 1.2))
    v["smile_lines"] = float(np.clip(base_wrinkle * 0.8 + rng.normal(0.15, 0.08), 0, 1.2))
    for k, (mu, sd) in SHAPE_PARAMS.items():
        v[k] = float(np.clip(rng.normal(mu, sd), mu - 2.5 * sd, mu + 2.5 * sd))
    # gender presentation and age proportions
    if gender == "male":
        v["jaw_width"] += 0.06
        v["brow_thickness"] *= 1.2
        v["upper_lip"] *= 0.85
        v["lower_lip"] *= 0.9
    else:
        v["jaw_width"] -= 0.04
        v["brow_thickness"] *= 0.8
        v["brow_arch"] *= 1.2
    if age == "child":
        v["eye_size"] *= 1.15
        v["face_length"] *= 0.92
        v["face_width"] *= 1.02
        v["jaw_width"] -= 0.05
        v["nose_length"] *= 0.85
        v["nose_width"] *= 0.85
        v["cheek_fullness"] += 0.25
    elif age == "old":
        v["eye_size"] *= 0.93
        v["nose_length"] *= 1.06
        v["upper_lip"] *= 0.8
        v["lower_lip"] *= 0.85
    v.update(fixed)
    if v["gender"] == "female" or v["age"] == "child":
        if v["facial_hair"] != "none" and "facial_hair" not in fixed:
            v["facial_hair"] = "none"
    v["skin_tone"] = int(v["skin_tone"])
    if id is None:
        id = f"p{v['seed']:010d}"
    return Identity(id=id, **v)


def _check_value(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise ValueError(f"{name} {value!r} is not one of {list(allowed)}")


# Prompt identity trait (docs/method.md §4) -> Identity fields it fixes. Keys are the exact phrases of the grid.
TRAIT_ATTRIBUTES: dict[str, dict[str, Any]] = {
    # children
    "short straight hair": {"hair_style": "short"}, "messy hair": {"hair_style": "messy"},
    "side-parted hair": {"hair_style": "side_part"}, "buzz cut": {"hair_style": "buzz"},
    "spiky hair": {"hair_style": "spiky"}, "wearing a cap": {"headwear": "cap"},
    "braided hair": {"hair_style": "braids"}, "short bob cut": {"hair_style": "bob"},
    "ponytail": {"hair_style": "ponytail"}, "shoulder-length hair": {"hair_style": "shoulder"},
    "curly hair": {"hair_style": "curly_long"}, "with a headband": {"headwear": "headband"},
    # young
    "short spiky hair": {"hair_style": "spiky"}, "clean-shaven": {"facial_hair": "none"},
    "short beard": {"facial_hair": "short_beard"}, "goatee": {"facial_hair": "goatee"},
    "wearing a hoodie": {"clothing": "hoodie"}, "with earrings": {"earrings": True},
    "undercut hairstyle": {"hair_style": "undercut"}, "faded haircut": {"hair_style": "buzz"},
    "with a nose ring": {"nose_ring": True}, "long straight hair": {"hair_style": "long"},
    "wearing glasses": {"glasses": "thin"}, "fringe hairstyle": {"hair_style": "bob"},
    "with freckles": {"freckles": True}, "shoulder-length waves": {"hair_style": "shoulder"},
    "colored highlights": {"highlights": True}, "braided ponytail": {"hair_style": "braids"},
    "with a headscarf": {"headwear": "headscarf"},
    # adult
    "moustache": {"facial_hair": "moustache"}, "medium-length hair": {"hair_style": "messy"},
    "slight stubble": {"facial_hair": "stubble"}, "side-parted haircut": {"hair_style": "side_part"},
    "with a crew cut": {"hair_style": "buzz"}, "with a five o'clock shadow": {"facial_hair": "stubble"},
    "with bangs": {"hair_style": "bob"}, "long curly hair": {"hair_style": "curly_long"},
    "medium bob haircut": {"hair_style": "bob"}, "with layered hairstyle": {"hair_style": "shoulder"},
    "curly shoulder-length hair": {"hair_style": "curly_long"}, "with nose ring": {"nose_ring": True},
    "natural waves": {"hair_style": "long"}, "wearing lipstick": {"lipstick": True},
    # middle-aged
    "moustache and beard": {"facial_hair": "full_beard"}, "receding hairline": {"hair_style": "receding"},
    "short grey hair": {"hair_style": "short", "hair_colour": "grey"},
    "salt-and-pepper beard": {"facial_hair": "short_beard", "hair_colour": "grey"},
    "thinning hair": {"hair_style": "thinning"}, "wearing a dress shirt": {"clothing": "shirt"},
    "comb-over hairstyle": {"hair_style": "side_part"}, "with forehead wrinkles": {"wrinkles": 1.0},
    "wearing a scarf": {"clothing": "scarf"}, "short curls": {"hair_style": "curly_short"},
    "grey streaks in hair": {"highlights": True, "hair_colour": "dark_brown"},
    "tied-back hair": {"hair_style": "ponytail"}, "glasses and lipstick": {"glasses": "thin", "lipstick": True},
    "loose bun hairstyle": {"hair_style": "bun"}, "wavy layered hair": {"hair_style": "shoulder"},
    "light makeup": {"makeup": True},
    # old
    "bald with white beard": {"hair_style": "bald", "facial_hair": "full_beard", "hair_colour": "white"},
    "grey hair with glasses": {"hair_colour": "grey", "glasses": "thin"}, "wrinkled face": {"wrinkles": 1.2},
    "clean-shaven elderly": {"facial_hair": "none"}, "deep forehead lines": {"wrinkles": 1.2},
    "white moustache": {"facial_hair": "moustache", "hair_colour": "white"}, "aged skin": {"wrinkles": 1.1},
    "sunspots on cheeks": {"age_spots": True}, "wearing a sweater": {"clothing": "sweater"},
    "grey bun hairstyle": {"hair_style": "bun", "hair_colour": "grey"},
    "short grey curls": {"hair_style": "curly_short", "hair_colour": "grey"},
    "deep smile lines": {"smile_lines": 1.2}, "wearing large glasses": {"glasses": "large"},
    "white wavy hair": {"hair_style": "shoulder", "hair_colour": "white"},
    "wearing a cardigan": {"clothing": "cardigan"},
    "thin lips and age spots": {"upper_lip": 0.6, "lower_lip": 0.65, "age_spots": True},
}


def identity_from_prompt_attributes(gender: str, age: str, race: str, trait: str | None,
                                    rng: np.random.Generator, *, id: str | None = None) -> Identity:
    """An identity for one prompt of the grid: gender/age groups, a skin tone drawn from the race word's range,
    and the trait's attribute settings (see the module docstring). Unknown words raise ValueError."""
    g = gender.strip().lower()
    a = age.strip().lower()
    r = race.strip().lower()
    _check_value("gender", g, GENDERS)
    _check_value("age", a, AGE_GROUPS)
    if r not in RACE_SKIN_TONES:
        raise ValueError(f"race word {race!r} is not one of {list(RACE_SKIN_TONES)}")
    lo, hi = RACE_SKIN_TONES[r]
    fixed: dict[str, Any] = {"gender": g, "age": a, "skin_tone": int(rng.integers(lo, hi + 1))}
    if trait:
        t = trait.strip().lower()
        if t not in TRAIT_ATTRIBUTES:
            raise ValueError(f"identity trait {trait!r} has no renderer mapping; known: {sorted(TRAIT_ATTRIBUTES)}")
        fixed.update(TRAIT_ATTRIBUTES[t])
    return sample_identity(rng, id=id, **fixed)


def race_word_for_skin_tone(skin_tone: int, rng: np.random.Generator) -> str:
    """A race word whose skin-tone range contains `skin_tone` (uniform among them), for captions of the web domain."""
    words = [w for w, (lo, hi) in RACE_SKIN_TONES.items() if lo <= skin_tone <= hi]
    return words[int(rng.integers(len(words)))]
