"""Codecs of the embedded diffusion model: where diffusion happens when it is not in pixel space.

- `PCACodec`: a linear autoencoder — the top-k principal components of the training images, fitted once and
  frozen. ``whiten`` sets how the components are scaled: 0 divides every component by one global scale (the
  large, low-frequency components of light and background then dominate the diffusion loss), 1 gives every
  component unit variance (the small ones, where brows and mouth corners live, weigh as much), values between
  interpolate (component std ** whiten, renormalised to unit overall variance).
- `VAECodec`: Stable Diffusion's autoencoder design in miniature (`diffusers.AutoencoderKL` from a config),
  trained first (`train_vae`) and then frozen.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from syntfer.strategies.diffusion.text import EmbeddedModelError


class PCACodec(nn.Module):
    """A linear autoencoder: the top-k principal components of the training images (fit once, frozen).

    Latent = projection onto the components divided by one global scale (so latents have unit overall
    variance, like SD's VAE scaling factor). Buffers live in the state_dict, so checkpoints carry them.
    """

    def __init__(self, n_pixels: int, k: int, whiten: float = 0.0):
        super().__init__()
        if not 0.0 <= whiten <= 1.0:
            raise EmbeddedModelError(f"PCA whiten={whiten!r}; expected within [0, 1]")
        self.whiten = float(whiten)
        self.register_buffer("mean", torch.zeros(n_pixels))
        self.register_buffer("components", torch.zeros(k, n_pixels))
        self.register_buffer("scale", torch.ones(()))
        # per-component divisor; only whitened codecs have it (older checkpoints keep their exact state_dict)
        if self.whiten > 0:
            self.register_buffer("component_scale", torch.ones(k))
        else:
            self.component_scale = None

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> float:
        """Fit on images in [-1,1] (N,3,S,S) by eigen-decomposing the covariance; returns explained variance."""
        flat = x.reshape(len(x), -1).double()
        mean = flat.mean(0)
        c = flat - mean
        cov = c.T @ c / max(1, len(flat) - 1)
        evals, evecs = torch.linalg.eigh(cov)
        order = torch.argsort(evals, descending=True)[: self.components.shape[0]]
        comps = evecs[:, order].T
        comps = comps * torch.sign(comps.sum(1, keepdim=True) + 1e-12)  # fixed sign convention
        self.mean.copy_(mean.float())
        self.components.copy_(comps.float())
        z = (c @ comps.T)
        self.scale.copy_(z.std().float())
        if self.whiten > 0:
            s = z.std(0) ** self.whiten
            self.component_scale.copy_((s * (z / s).std()).float())  # latents of unit overall variance
            self.scale.fill_(1.0)
        return float(evals[order].sum() / evals.clamp_min(0).sum())

    def _divisor(self) -> torch.Tensor:
        return self.scale if self.component_scale is None else self.scale * self.component_scale

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.reshape(len(x), -1) - self.mean) @ self.components.T) / self._divisor()

    def decode(self, z: torch.Tensor, size: int) -> torch.Tensor:
        return ((z * self._divisor()) @ self.components + self.mean).reshape(len(z), 3, size, size)


class VAECodec(nn.Module):
    """Stable Diffusion's autoencoder design in miniature: a `diffusers.AutoencoderKL` built from the config
    (no download), 4x spatial downsampling, `latent_channels` channels. Trained first, then frozen
    (`train_vae`); latents are the posterior mean times `scale` (unit overall std, SD's scaling_factor)."""

    def __init__(self, cfg: Any):  # a model.EmbeddedConfig (not imported: model imports this module)
        super().__init__()
        from diffusers import AutoencoderKL  # lazy: importing diffusers takes seconds

        n = len(cfg.vae_block_out_channels)
        self.model = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * n,
                                   up_block_types=("UpDecoderBlock2D",) * n,
                                   block_out_channels=tuple(cfg.vae_block_out_channels), layers_per_block=1,
                                   latent_channels=cfg.latent_channels,
                                   norm_num_groups=min(32, cfg.vae_block_out_channels[0]),
                                   sample_size=cfg.image_size)
        self.register_buffer("scale", torch.ones(()))

    @staticmethod
    def factor(cfg: Any) -> int:
        return 2 ** (len(cfg.vae_block_out_channels) - 1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode(x).latent_dist.mode() * self.scale

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.decode(z / self.scale).sample


def train_vae(vae: VAECodec, images_uint8: torch.Tensor, *, steps: int, batch_size: int, lr: float,
              kl_weight: float, generator: torch.Generator) -> list[dict[str, float]]:
    """Fit the autoencoder (L1 reconstruction of a posterior *sample* + a small KL, as SD's VAE minus its
    perceptual/GAN terms), freeze it, and set `scale` so latents have unit std. Returns a loss log."""
    opt = torch.optim.AdamW(vae.model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps))
    vae.train()
    rows, running = [], []
    for step in tqdm(range(1, steps + 1), desc="train VAE", mininterval=10):
        idx = torch.randint(0, len(images_uint8), (batch_size,), generator=generator)
        x = images_uint8[idx].float() / 127.5 - 1.0
        post = vae.model.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=generator)
        rec = vae.model.decode(z).sample
        l1 = (rec - x).abs().mean()
        loss = l1 + kl_weight * post.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running.append(l1.item())
        if step % 50 == 0 or step == steps:
            rows.append({"vae_step": step, "l1": float(np.mean(running))})
            running = []
    vae.eval()
    for p in vae.parameters():
        p.grad = None  # no stale gradients left to be counted anywhere (e.g. a later norm clip)
        p.requires_grad_(False)
    with torch.no_grad():
        n = min(len(images_uint8), 2048)
        z = torch.cat([vae.model.encode(images_uint8[i:i + 256].float() / 127.5 - 1.0).latent_dist.mode()
                       for i in range(0, n, 256)])
        vae.scale.copy_(1.0 / z.std())
    return rows
