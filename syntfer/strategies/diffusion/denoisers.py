"""Denoisers of the embedded model's latent architectures (the UNet ones are diffusers' `UNet2DConditionModel`)."""
from __future__ import annotations

import torch
from torch import nn


class LatentDenoiser(nn.Module):
    """Noise predictor on PCA latents: residual MLP blocks, FiLM from time + pooled text (+AU) embedding,
    and (``cross_attention``) in each block a cross-attention from the latent to the text tokens (key padding
    masked). Without cross-attention the text reaches the model only through the FiLM path."""

    def __init__(self, k: int, dim: int, blocks: int, cond_dim: int, heads: int, cross_attention: bool = True):
        super().__init__()
        from diffusers.models.embeddings import TimestepEmbedding, Timesteps  # lazy: importing diffusers takes seconds

        self.time_proj = Timesteps(128, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_emb = TimestepEmbedding(128, dim)
        self.cond_emb = nn.Linear(cond_dim, dim)
        self.inp = nn.Linear(k, dim)
        self.norms = nn.ModuleList([nn.LayerNorm(dim, elementwise_affine=False) for _ in range(blocks)])
        self.films = nn.ModuleList([nn.Linear(dim, 2 * dim) for _ in range(blocks)])
        self.mlps = nn.ModuleList([nn.Sequential(nn.Linear(dim, 2 * dim), nn.SiLU(), nn.Linear(2 * dim, dim))
                                   for _ in range(blocks)])
        self.cross_attention = cross_attention
        n_attn = blocks if cross_attention else 0
        self.attn_norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(n_attn)])
        self.attns = nn.ModuleList([nn.MultiheadAttention(dim, heads, kdim=cond_dim, vdim=cond_dim,
                                                          batch_first=True) for _ in range(n_attn)])
        self.out_norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, k)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, z: torch.Tensor, t: torch.Tensor, h: torch.Tensor, mask: torch.Tensor,
                pooled: torch.Tensor) -> torch.Tensor:
        t = t.reshape(-1).expand(len(z)) if t.numel() == 1 else t
        emb = nn.functional.silu(self.time_emb(self.time_proj(t).to(z.dtype)) + self.cond_emb(pooled))
        x = self.inp(z)
        pad = mask == 0
        for i, (norm, film, mlp) in enumerate(zip(self.norms, self.films, self.mlps)):
            scale, shift = film(emb).chunk(2, dim=1)
            x = x + mlp(norm(x) * (1 + scale) + shift)
            if self.cross_attention:
                q = self.attn_norms[i](x)[:, None]
                x = x + self.attns[i](q, h, h, key_padding_mask=pad, need_weights=False)[0][:, 0]
        return self.out(self.out_norm(x))
