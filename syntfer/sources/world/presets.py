"""World sizes: `smoke` (tests, seconds), `default` (what `dvc repro` renders on 2 CPU cores), `large` (GPU-scale);
`generators` (training data of the committed generators).

Per-class counts of labeled domains follow the real datasets' shares (`syntfer.core.labels.REAL_TRAIN_COUNTS`,
docs/method.md §2), rounded by largest remainder with a per-class minimum so every class exists.
"""
from __future__ import annotations

from collections.abc import Mapping
import dataclasses
from dataclasses import dataclass


from syntfer.core import labels as L


@dataclass(frozen=True)
class Preset:
    """Image counts per domain and split."""

    name: str
    rafdb_train: int
    rafdb_test: int
    affectnet_train: int
    affectnet_val_per_class: int
    affectnet_extra: int         # rows with codes 7..10 (contempt, none, uncertain, no-face), spread evenly
    fer2013_train: int
    fer2013_public: int
    fer2013_private: int
    digiface_ids: int
    digiface_per_id: int
    dcface_ids: int
    dcface_per_id: int
    emonet_face: int
    ffhq: int
    web: int
    ref_per_class: int = 0        # reference domains (ref_web, ref_ffhq): labelled renders per class ...
    ref_test_per_class: int = 0   # ... and held-out per class (the judge ceiling is measured on these)
    min_per_class: int = 2
    max_render: int | None = 64   # renderer resolution cap (then resized to the native size); None = native
    ss: int = 1                   # supersampling factor of the renderer

    def total(self) -> int:
        return (self.rafdb_train + self.rafdb_test + self.affectnet_train + 7 * self.affectnet_val_per_class
                + self.affectnet_extra + self.fer2013_train + self.fer2013_public + self.fer2013_private
                + self.digiface_ids * self.digiface_per_id + self.dcface_ids * self.dcface_per_id
                + self.emonet_face + self.ffhq + self.web + 2 * 7 * (self.ref_per_class + self.ref_test_per_class))


PRESETS: dict[str, Preset] = {
    "smoke": Preset("smoke", rafdb_train=35, rafdb_test=14, affectnet_train=42, affectnet_val_per_class=2,
                    affectnet_extra=4, fer2013_train=28, fer2013_public=14, fer2013_private=14, digiface_ids=4,
                    digiface_per_id=4, dcface_ids=4, dcface_per_id=4, emonet_face=14, ffhq=24, web=21,
                    ref_per_class=4, ref_test_per_class=2),
    "default": Preset("default", rafdb_train=3000, rafdb_test=800, affectnet_train=6000,
                      affectnet_val_per_class=100, affectnet_extra=60, fer2013_train=3000, fer2013_public=400,
                      fer2013_private=400, digiface_ids=1600, digiface_per_id=5, dcface_ids=800, dcface_per_id=10,
                      emonet_face=8000, ffhq=1600, web=1200, ref_per_class=300, ref_test_per_class=100,
                      min_per_class=20),
    "large": Preset("large", rafdb_train=12271, rafdb_test=3068, affectnet_train=40000,
                    affectnet_val_per_class=500, affectnet_extra=800, fer2013_train=28709, fer2013_public=3589,
                    fer2013_private=3589, digiface_ids=5000, digiface_per_id=5, dcface_ids=2500, dcface_per_id=10,
                    emonet_face=25000, ffhq=10000, web=60000, ref_per_class=2000, ref_test_per_class=500,
                    min_per_class=50, max_render=None, ss=2),
}


PRESETS["generators"] = dataclasses.replace(PRESETS["default"], name="generators", web=20000)
"""The default world with a larger captioned `web` domain: the training data of the committed embedded diffusion
model (models/diffusion/README.md). Per-image seeds depend on the index only, so its first 1,200 web images are
the default preset's."""


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown world preset {name!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[name]


def class_counts(reference: Mapping[str, int | float], total: int, minimum: int = 1) -> dict[str, int]:
    """Split `total` over the 7 classes in proportion to `reference` (largest remainder), each >= `minimum`
    (`syntfer.core.labels.split_total`, the one implementation)."""
    return L.split_total(reference, total, minimum)
