"""The registry of expression editors: an editor folder's ``editor.json`` says which kind it holds.

- ``"inpaint"``: `inpaint.InpaintEditor` (draws the inner face; needs a landmark predictor to align faces);
- anything else (the flow, pixel and appearance editors trained here, ``editor.json`` without ``kind``):
  `networks.Generator` via `networks.load_generator`.

Official GANmut checkpoints are not folders: `networks.load_official_generator`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from syntfer.strategies.gan.inpaint import KIND as INPAINT, InpaintEditor, load_inpaint_editor
from syntfer.strategies.gan.networks import Generator, load_generator


def editor_kind(folder: str | os.PathLike) -> str:
    """``"inpaint"`` or ``"generator"``: what `load_editor` will build from `folder`."""
    meta = Path(folder) / "editor.json"
    if meta.is_file() and json.loads(meta.read_text()).get("kind") == INPAINT:
        return INPAINT
    return "generator"


def load_editor(folder: str | os.PathLike, intensity: str | None = None, intensity_gamma: float | None = None,
                landmarks: str | os.PathLike | None = None) -> Generator | InpaintEditor:
    """The editor in `folder`: an inpainting editor with the landmark predictor file `landmarks`, or a generator
    (`intensity`, `intensity_gamma`: how a flow editor turns ρ into strength, `networks.load_generator`). An
    inpainting editor always interpolates its condition from neutral: with ``intensity="interpolate"`` its strength
    is ρ**`intensity_gamma`, otherwise ρ."""
    if editor_kind(folder) == INPAINT:
        gamma = intensity_gamma if intensity == "interpolate" and intensity_gamma is not None else 1.0
        return load_inpaint_editor(folder, landmarks, gamma)
    return load_generator(folder, intensity, intensity_gamma)
