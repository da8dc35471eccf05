"""One generation interface over two backends, chosen by params.

- ``sd`` / ``fineface``: Stable Diffusion through diffusers from a local folder or hub id (the paper:
  Realistic Vision v5.1, 50 steps, guidance 10, fp16 on GPU, 512x512, no negative prompt); FineFace's AU
  adapter (SD 2.1-base, guidance 7.5) when its weights are given (`syntfer.strategies.diffusion.fineface`).
- ``embedded`` / ``embedded-au``: the project's small model (`syntfer.strategies.diffusion.embedded`), trained on the
  world's captioned `web` domain; ``embedded-au`` also feeds FineFace's AU vector of the prompted emotion.

Every backend takes a batch of prompt rows plus one seed per row and returns PIL images; each image's
initial noise comes from its own CPU `torch.Generator(seed)`, so a manifest row regenerates alone.
`describe()` gives the manifest's provenance columns (model id, revision, scheduler, steps, guidance, dtype).
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from PIL import Image

from syntfer.strategies.diffusion import prompts as P
from syntfer.strategies.diffusion.fineface import load_fineface
from syntfer.strategies.diffusion.model import WEIGHTS, load_checkpoint, require_finished
from syntfer.strategies.diffusion.sampling import sample_images
from syntfer.strategies.diffusion.text import adapt_prompt
from syntfer.core.seeding import torch_generator
from syntfer.core.storage import sha256_file as sha256

BACKENDS = ("embedded", "embedded-au", "sd", "fineface")

# Paper settings (docs/method.md §4).
SD_DEFAULTS = {"steps": 50, "guidance": 10.0, "height": 512, "width": 512}
FINEFACE_DEFAULTS = {"steps": 50, "guidance": P.FINEFACE_GUIDANCE, "height": 512, "width": 512}
EMBEDDED_DEFAULTS = {"steps": 20, "guidance": 3.0}
SD_FOLDER = ("a diffusers Stable Diffusion folder: model_index.json with unet/, vae/, text_encoder/, tokenizer/ and "
             "scheduler/ beside it (as save_pretrained writes it, e.g. Realistic Vision v5.1)")


class BackendError(ValueError):
    """A backend that cannot be built or used as asked."""


class Backend(Protocol):
    name: str

    def describe(self) -> dict[str, Any]:
        """Provenance columns written to every manifest row."""

    def encoder_text(self, row: pd.Series) -> str:
        """The text the backend's encoder actually sees for a prompt row."""

    def generate(self, rows: pd.DataFrame, seeds: Sequence[int]) -> list[Image.Image]:
        """One image per row, the row's noise drawn from its own seed."""


@dataclasses.dataclass
class EmbeddedBackend:
    """The embedded model (text-only, or text + FineFace AU vector of the prompted emotion)."""

    model_dir: str
    use_aus: bool = False
    steps: int = EMBEDDED_DEFAULTS["steps"]
    guidance: float = EMBEDDED_DEFAULTS["guidance"]
    batch_size: int = 64
    solver: str = "ddim"  # DDIM with latent clipping; DPM-Solver++ diverges on this model (see sampling.make_sampler)

    def __post_init__(self) -> None:
        self.model = load_checkpoint(self.model_dir)
        require_finished(self.model_dir)  # a max_minutes partial model is never sampled as complete
        if self.use_aus and not self.model.cfg.use_aus:
            raise BackendError(f"{self.model_dir}: checkpoint has no AU encoder; cannot run the AU variant")
        self.name = "embedded-au" if self.use_aus else "embedded"

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model_id": str(self.model_dir),
                "revision": "sha256:" + sha256(Path(self.model_dir) / WEIGHTS)[:16],
                "scheduler": ("DDIMScheduler(clip)" if self.solver == "ddim"
                              else f"DPMSolverMultistepScheduler({self.solver},order=2)"), "steps": self.steps,
                "guidance": self.guidance, "dtype": "float32", "height": self.model.cfg.image_size,
                "width": self.model.cfg.image_size}

    def encoder_text(self, row: pd.Series) -> str:
        return adapt_prompt(str(row["prompt"]))

    def aus(self, rows: pd.DataFrame) -> np.ndarray | None:
        if not self.model.cfg.use_aus:
            return None
        if self.use_aus:
            return P.au_matrix(rows["emotion"].tolist())
        return np.zeros((len(rows), len(self.model.cfg.au_names)), np.float32)

    def generate(self, rows: pd.DataFrame, seeds: Sequence[int]) -> list[Image.Image]:
        texts = [self.encoder_text(r) for _, r in rows.iterrows()]
        arr, _ = sample_images(self.model, texts, list(seeds), aus=self.aus(rows), steps=self.steps,
                               guidance=self.guidance, batch_size=self.batch_size, solver=self.solver)
        return [Image.fromarray(a) for a in arr]

    def unknown_words(self, rows: pd.DataFrame) -> list[int]:
        return self.model.tokenizer.encode([self.encoder_text(r) for _, r in rows.iterrows()])[2]


@dataclasses.dataclass
class StableDiffusionBackend:
    """diffusers StableDiffusionPipeline from a local folder or hub id (optionally with FineFace's adapter).

    dtype "auto" = float16 on CUDA, float32 on CPU. `scheduler` None keeps the checkpoint's own; a class
    name (e.g. "DPMSolverMultistepScheduler") swaps it in from the checkpoint's scheduler config.
    Prompts over the tokenizer's limit raise (see `syntfer.strategies.diffusion.prompts.check_prompt_lengths`), never truncate.
    """

    model_id: str
    revision: str | None = None
    steps: int = SD_DEFAULTS["steps"]
    guidance: float = SD_DEFAULTS["guidance"]
    height: int = SD_DEFAULTS["height"]
    width: int = SD_DEFAULTS["width"]
    dtype: str = "auto"
    device: str | None = None
    scheduler: str | None = None
    batch_size: int = 8
    fineface_weights: str | None = None
    local_files_only: bool = True
    pipeline: Any = None  # an already-built pipeline (tests); skips loading

    def __post_init__(self) -> None:
        self.device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if self.dtype == "auto":
            self.dtype = "float16" if self.device.startswith("cuda") else "float32"
        tdtype = getattr(torch, self.dtype)
        if self.pipeline is None:
            self._check_model_folder()
            from diffusers import StableDiffusionPipeline  # lazy: importing diffusers takes seconds

            if self.local_files_only:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
            try:
                self.pipeline = StableDiffusionPipeline.from_pretrained(
                    self.model_id, revision=self.revision, torch_dtype=tdtype, safety_checker=None,
                    requires_safety_checker=False, local_files_only=self.local_files_only)
            except (OSError, ValueError) as e:  # diffusers' "no file named ...", "not a valid repo id", not cached
                reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise BackendError(f"{self.model_id}: cannot load a Stable Diffusion pipeline ({reason}); expected "
                                   f"{SD_FOLDER}, or a hub id already in the local cache (nothing is downloaded)"
                                   ) from None
        pipe = self.pipeline
        if self.scheduler:
            import diffusers  # lazy: importing diffusers takes seconds

            cls = getattr(diffusers, self.scheduler, None)
            if cls is None:
                raise BackendError(f"unknown diffusers scheduler {self.scheduler!r}")
            pipe.scheduler = cls.from_config(pipe.scheduler.config)
        pipe.to(self.device, tdtype)
        pipe.set_progress_bar_config(disable=True)
        self.adapter = None
        if self.fineface_weights:
            self.adapter = load_fineface(pipe.unet, self.fineface_weights).to(self.device, tdtype)
        self.name = "fineface" if self.adapter is not None else "sd"

    def _check_model_folder(self) -> None:
        """A local model path must be a diffusers folder with model_index.json (the message says what it holds)."""
        if not str(self.model_id).strip():
            raise BackendError(f"backend sd/fineface needs a model (diffusion.sd_model, --model): {SD_FOLDER}")
        local = Path(self.model_id)
        if local.is_file():
            raise BackendError(f"{local}: is a single file; expected {SD_FOLDER} (convert a single-file checkpoint "
                               "with diffusers' from_single_file + save_pretrained)")
        if local.is_dir() and not (local / "model_index.json").is_file():
            raise BackendError(f"{local}: no model_index.json in this folder; expected {SD_FOLDER}")

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model_id": str(self.model_id), "revision": self.revision or "",
                "scheduler": type(self.pipeline.scheduler).__name__, "steps": self.steps, "guidance": self.guidance,
                "dtype": self.dtype, "height": self.height, "width": self.width}

    def encoder_text(self, row: pd.Series) -> str:
        return str(row["prompt"])

    def check_lengths(self, rows: pd.DataFrame) -> None:
        tok = self.pipeline.tokenizer
        P.check_prompt_lengths(rows[["id", "prompt"]] if "id" in rows else rows[["prompt"]], tokenizer=tok,
                               max_length=tok.model_max_length, on_overflow="error")

    def generate(self, rows: pd.DataFrame, seeds: Sequence[int]) -> list[Image.Image]:
        self.check_lengths(rows)
        texts = [self.encoder_text(r) for _, r in rows.iterrows()]
        gens = [torch_generator(s) for s in seeds]
        kw: dict[str, Any] = {}
        if self.adapter is not None:
            aus = torch.as_tensor(P.au_matrix(rows["emotion"].tolist()), device=self.device)
            kw["cross_attention_kwargs"] = {"au_tokens": self.adapter.tokens_for_cfg(aus, self.guidance > 1)}
        out = self.pipeline(prompt=texts, num_inference_steps=self.steps, guidance_scale=self.guidance,
                            height=self.height, width=self.width, generator=gens, output_type="pil", **kw)
        return list(out.images)

    def unknown_words(self, rows: pd.DataFrame) -> list[int]:
        return [0] * len(rows)


def create_backend(kind: str, model: str, **settings: Any) -> Backend:
    """Build a backend by name ('embedded', 'embedded-au', 'sd', 'fineface'); None settings keep defaults."""
    settings = {k: v for k, v in settings.items() if v is not None}
    if kind in ("embedded", "embedded-au"):
        return EmbeddedBackend(model, use_aus=(kind == "embedded-au"), **settings)
    if kind == "sd":
        return StableDiffusionBackend(model, **settings)
    if kind == "fineface":
        if "fineface_weights" not in settings:
            raise BackendError("backend 'fineface' needs fineface_weights (the AU adapter's weight file)")
        return StableDiffusionBackend(model, **{**FINEFACE_DEFAULTS, **settings})
    raise BackendError(f"unknown backend {kind!r}; expected one of {BACKENDS}")
