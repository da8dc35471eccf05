"""Sampling the embedded model: the diffusers schedulers over its training schedule (DDIM with clipped x0
estimates by default, DPM-Solver++) and batched classifier-free guidance, each image's initial noise from its own
seed (`sample_images`)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from syntfer.strategies.diffusion.model import EmbeddedConfig, EmbeddedDiffusion
from syntfer.strategies.diffusion.text import EmbeddedModelError
from syntfer.core.seeding import torch_generator


SOLVERS = ("dpmsolver++", "ddim")


def make_sampler(cfg: EmbeddedConfig, solver: str = "dpmsolver++"):
    """A diffusers sampler over the training schedule. The cosine schedule ends at alpha_bar ~ 0, where an
    x0 estimate amplifies any noise-prediction error by 1/sqrt(alpha_bar); timesteps therefore start one
    spacing below the end ("leading" spacing with offset 1) and x0 estimates are clipped to the data range."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler  # lazy: importing diffusers takes seconds

    common = dict(num_train_timesteps=cfg.num_train_timesteps, beta_schedule=cfg.beta_schedule,
                  prediction_type=cfg.prediction_type, timestep_spacing="leading", steps_offset=1)
    if solver == "dpmsolver++":
        return DPMSolverMultistepScheduler(**common, algorithm_type="dpmsolver++", solver_order=2)
    if solver == "ddim":
        return DDIMScheduler(**common, clip_sample=True, clip_sample_range=_clip_value(cfg))
    raise EmbeddedModelError(f"solver {solver!r}; expected one of {SOLVERS}")


CLIP_LATENT = 4.0


def _clip_value(cfg: EmbeddedConfig) -> float:
    # pixels live in [-1, 1]; PCA latents (unit overall std) reach a few units on the leading components
    return 1.0 if cfg.arch == "unet" else CLIP_LATENT


@torch.no_grad()
def sample_images(model: EmbeddedDiffusion, texts: Sequence[str], seeds: Sequence[int], *,
                  aus: np.ndarray | None = None, steps: int = 20, guidance: float = 3.0,
                  batch_size: int = 64, solver: str = "ddim") -> tuple[np.ndarray, list[int]]:
    """Sample one image per (text, seed): uint8 (N,S,S,3) and the unknown-word counts.

    The initial noise of row i comes from `torch_generator(seeds[i])` alone; the solver is deterministic,
    so a row sampled alone equals the same row sampled in a batch up to float rounding of batched kernels.
    """
    if len(texts) != len(seeds):
        raise EmbeddedModelError(f"{len(texts)} texts but {len(seeds)} seeds")
    cfg = model.cfg
    model.eval()
    sch = make_sampler(cfg, solver)
    out = np.empty((len(texts), cfg.image_size, cfg.image_size, 3), dtype=np.uint8)
    unknown_all: list[int] = []
    for b0 in range(0, len(texts), batch_size):
        tb = list(texts[b0:b0 + batch_size])
        sb = seeds[b0:b0 + batch_size]
        ab = None if aus is None else np.asarray(aus)[b0:b0 + batch_size]
        h, m, pooled, unknown = model.encode_texts(tb, ab if cfg.use_aus else None)
        unknown_all += unknown
        # unconditional input: the empty caption (and all-zero AUs); same padded length as the texts
        hu, mu, pu, _ = model.encode_texts([""] * len(tb), np.zeros((len(tb), len(cfg.au_names)), np.float32)
                                           if cfg.use_aus else None)
        x = torch.stack([torch.randn(model.sample_shape, generator=torch_generator(s))
                         for s in sb])
        sch.set_timesteps(steps)
        H, M, P = torch.cat([hu, h]), torch.cat([mu, m]), torch.cat([pu, pooled])
        for t in sch.timesteps:
            tt = t.expand(2 * len(tb))
            eps_u, eps_c = model(torch.cat([x, x]), tt, H, M, P).chunk(2)
            eps = eps_u + guidance * (eps_c - eps_u)
            x = sch.step(eps, t, x).prev_sample
        img = model.to_images(x)
        out[b0:b0 + len(tb)] = img
    return out, unknown_all
