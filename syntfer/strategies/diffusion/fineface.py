"""FineFace's action-unit adapter for Stable Diffusion, written as diffusers attention processors.

FineFace (SD 2.1-base + adapter) conditions generation on 12 AU intensities (`syntfer.strategies.diffusion.prompts.FINEFACE_AUS`):
an AU encoder maps the vector to token(s) in the text encoder's width, and every cross-attention layer gets
a *decoupled* cross-attention on those tokens (its own key/value projections), added to the text
cross-attention output: ``out = Attn(q, K_text, V_text) + scale * Attn(q, K_au, V_au)``. All-zero AUs are the
unconditional input for classifier-free guidance.

Weights: `load_fineface` reads a state_dict (safetensors or torch file) with keys ``au_encoder.*`` and
``processors.<layer>.to_{k,v}_au.weight`` where <layer> is the diffusers processor name with dots replaced by
``__``. The official FineFace release could not be downloaded here, so its key names are not mapped yet: a
checkpoint in another layout raises, naming the missing and unexpected keys (write the mapping then).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from syntfer.core.storage import StateFileError, load_torch
from syntfer.strategies.diffusion.prompts import FINEFACE_AUS


class FineFaceError(ValueError):
    """Adapter weights that do not fit the UNet."""


class AUEncoder(nn.Module):
    """12 AU intensities -> `n_tokens` tokens of width `dim` (MLP + LayerNorm)."""

    def __init__(self, dim: int, n_aus: int = len(FINEFACE_AUS), n_tokens: int = 1, hidden: int = 512):
        super().__init__()
        self.n_tokens, self.dim = n_tokens, dim
        self.mlp = nn.Sequential(nn.Linear(n_aus, hidden), nn.GELU(), nn.Linear(hidden, dim * n_tokens))
        self.norm = nn.LayerNorm(dim)

    def forward(self, aus: torch.Tensor) -> torch.Tensor:
        return self.norm(self.mlp(aus).view(len(aus), self.n_tokens, self.dim))


class AUAttnProcessor(nn.Module):
    """Scaled-dot-product attention processor with an optional decoupled AU cross-attention.

    Self-attention layers get an instance without AU projections (`cross_dim=None`): they ignore
    `au_tokens`, which the pipeline passes to every layer through `cross_attention_kwargs`.
    """

    def __init__(self, hidden_size: int, cross_dim: int | None, scale: float = 1.0):
        super().__init__()
        self.scale = scale
        self.to_k_au = nn.Linear(cross_dim, hidden_size, bias=False) if cross_dim else None
        self.to_v_au = nn.Linear(cross_dim, hidden_size, bias=False) if cross_dim else None

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None,
                 au_tokens: torch.Tensor | None = None) -> torch.Tensor:
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        ndim = hidden_states.ndim
        if ndim == 4:
            b, c, h, w = hidden_states.shape
            hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
        batch, n, _ = hidden_states.shape
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, n, batch)
            attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        q = attn.to_q(hidden_states)
        is_cross = encoder_hidden_states is not None
        ctx = encoder_hidden_states if is_cross else hidden_states
        if is_cross and attn.norm_cross:
            ctx = attn.norm_encoder_hidden_states(ctx)
        k, v = attn.to_k(ctx), attn.to_v(ctx)
        head_dim = k.shape[-1] // attn.heads

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(batch, -1, attn.heads, head_dim).transpose(1, 2)

        qh = split(q)
        out = F.scaled_dot_product_attention(qh, split(k), split(v), attn_mask=attention_mask)
        if is_cross and au_tokens is not None and self.to_k_au is not None and self.scale != 0:
            if len(au_tokens) != batch:
                raise FineFaceError(f"au_tokens batch {len(au_tokens)} != attention batch {batch} "
                                    "(with CFG pass tokens for [unconditional; conditional])")
            au = au_tokens.to(q.dtype)
            out = out + self.scale * F.scaled_dot_product_attention(qh, split(self.to_k_au(au)),
                                                                    split(self.to_v_au(au)))
        out = out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(q.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if ndim == 4:
            out = out.transpose(-1, -2).reshape(b, c, h, w)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def _key(name: str) -> str:
    return name.replace(".", "__")


class FineFaceAdapter(nn.Module):
    """The AU encoder plus one processor per attention layer of a UNet; `attach` installs them."""

    def __init__(self, unet: nn.Module, n_tokens: int = 1, scale: float = 1.0):
        super().__init__()
        cross_dim = unet.config.cross_attention_dim
        self.au_encoder = AUEncoder(cross_dim, n_tokens=n_tokens)
        procs = {}
        modules = dict(unet.named_modules())
        for name in unet.attn_processors:
            attn = modules[name.rsplit(".processor", 1)[0]]
            is_cross = name.endswith("attn2.processor")
            procs[_key(name)] = AUAttnProcessor(attn.to_q.out_features, cross_dim if is_cross else None, scale)
        self.processors = nn.ModuleDict(procs)

    def attach(self, unet: nn.Module) -> "FineFaceAdapter":
        unet.set_attn_processor({k.replace("__", "."): p for k, p in self.processors.items()})
        return self

    def tokens_for_cfg(self, aus: torch.Tensor, do_cfg: bool) -> torch.Tensor:
        """AU tokens in the pipeline's batch order: [zero-AU (unconditional); aus] when guiding."""
        dtype = next(self.parameters()).dtype
        tok = self.au_encoder(aus.to(dtype))
        if not do_cfg:
            return tok
        return torch.cat([self.au_encoder(torch.zeros_like(aus, dtype=dtype)), tok])


def load_fineface(unet: nn.Module, weights: str | os.PathLike | None, n_tokens: int = 1,
                  scale: float = 1.0) -> FineFaceAdapter:
    """Build the adapter for `unet`, load `weights` strictly (None = random init, for tests), attach it."""
    adapter = FineFaceAdapter(unet, n_tokens=n_tokens, scale=scale)
    if weights is not None:
        path = Path(weights)
        if not path.exists():
            raise FineFaceError(f"{path}: FineFace adapter weights not found")
        if path.suffix == ".safetensors":
            sd = load_file(str(path))
        else:
            try:
                sd = load_torch(path, "FineFace adapter weights", expected="FineFace's AU adapter state dict")
            except StateFileError as e:
                raise FineFaceError(str(e)) from None
        if not isinstance(sd, dict):
            raise FineFaceError(f"{path}: holds a {type(sd).__name__}; expected FineFace's AU adapter state dict")
        own = adapter.state_dict()
        missing = [k for k in own if k not in sd]
        unexpected = [k for k in sd if k not in own]
        wrong = [f"{k} {tuple(sd[k].shape)} != {tuple(own[k].shape)}" for k in own
                 if k in sd and sd[k].shape != own[k].shape]
        if missing or unexpected or wrong:
            raise FineFaceError(f"{path}: adapter keys do not match this UNet; missing {missing[:5]}"
                                f"{'…' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
                                f"{'…' if len(unexpected) > 5 else ''}, wrong shapes {wrong[:3]}")
        adapter.load_state_dict(sd, strict=True)
    return adapter.attach(unet)
