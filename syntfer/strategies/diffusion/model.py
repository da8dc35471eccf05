"""The embedded model itself (`syntfer.strategies.diffusion.embedded` explains the design): its config (`EmbeddedConfig`,
`default_config` and its variants), the network (`EmbeddedDiffusion`: text/AU encoders, codec, denoiser or UNet)
and checkpoint I/O (a safetensors state_dict plus config.json, never a pickled module)."""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from syntfer.strategies.diffusion.codecs import PCACodec, VAECodec
from syntfer.strategies.diffusion.denoisers import LatentDenoiser
from syntfer.strategies.diffusion.text import EmbeddedModelError, WordPool, WordTokenizer
from syntfer.strategies.diffusion.prompts import FINEFACE_AUS
from syntfer.core.storage import atomic_path, write_json


@dataclasses.dataclass
class EmbeddedConfig:
    """Everything needed to rebuild the model (saved as config.json next to the weights)."""

    vocab: list[str]
    image_size: int = 32
    block_out_channels: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = 1
    cross_attention_blocks: int = 1  # the lowest-resolution N down/up blocks get cross-attention (+ mid)
    attention_head_dim: int = 16
    text_dim: int = 128
    text_layers: int = 2
    text_heads: int = 4
    max_tokens: int = 64
    use_aus: bool = False
    au_names: tuple[str, ...] = FINEFACE_AUS
    au_scale: float = 1.0  # AU intensities are divided by this before the encoder
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "epsilon"
    arch: str = "latent-mlp"  # latent-mlp | latent-unet (SD's design: VAE + latent UNet) | unet (pixel space)
    latent_dim: int = 320  # PCA components of the linear autoencoder (latent-mlp)
    mlp_dim: int = 384
    mlp_blocks: int = 4
    vae_block_out_channels: tuple[int, ...] = (32, 64, 128)  # latent-unet: AutoencoderKL, 4x downsampling
    latent_channels: int = 4
    patch_size: int = 1  # unet: pixels are space-to-depth folded (3xSxS -> 3p²xS/pxS/p), a lossless "codec"
    text_encoder: str = "clip"  # clip (a small CLIPTextModel) | pool (WordPool: weighted bag of words; text.py)
    cross_attention: bool = True  # latent-mlp: cross-attention to the text tokens in every block (else FiLM only)
    pca_whiten: float = 0.0  # latent-mlp: PCA component scaling exponent (codecs.PCACodec)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EmbeddedConfig":
        d = dict(d)
        for k in ("block_out_channels", "au_names", "vae_block_out_channels"):
            if k in d:
                d[k] = tuple(d[k])
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise EmbeddedModelError(f"unknown embedded-model config keys {sorted(unknown)}")
        return cls(**d)


ARCHS = ("latent-mlp", "latent-unet", "unet")
TEXT_ENCODERS = ("clip", "pool")
PREDICTION_TYPES = ("epsilon", "v_prediction")


class EmbeddedDiffusion(nn.Module):
    """Text (+AU) encoder and UNet2DConditionModel; `encode` builds the conditioning, `forward` predicts noise."""

    def __init__(self, cfg: EmbeddedConfig):
        super().__init__()
        # lazy: importing diffusers and transformers takes seconds; only building a model needs them
        from diffusers import UNet2DConditionModel
        from transformers import CLIPTextConfig, CLIPTextModel

        self.cfg = cfg
        self.tokenizer = WordTokenizer(cfg.vocab, cfg.max_tokens)
        if cfg.text_encoder not in TEXT_ENCODERS:
            raise EmbeddedModelError(f"text_encoder {cfg.text_encoder!r}; expected one of {TEXT_ENCODERS}")
        if cfg.prediction_type not in PREDICTION_TYPES:
            raise EmbeddedModelError(f"prediction_type {cfg.prediction_type!r}; expected one of {PREDICTION_TYPES}")
        if cfg.text_encoder == "pool":
            if cfg.arch != "latent-mlp" or cfg.cross_attention:
                raise EmbeddedModelError("text_encoder 'pool' gives one vector, no token states: it needs arch "
                                         "'latent-mlp' with cross_attention False")
            self.text_encoder = WordPool(len(cfg.vocab), cfg.text_dim)
        else:
            tcfg = CLIPTextConfig(vocab_size=len(cfg.vocab), hidden_size=cfg.text_dim,
                                  intermediate_size=2 * cfg.text_dim, num_hidden_layers=cfg.text_layers,
                                  num_attention_heads=cfg.text_heads, max_position_embeddings=cfg.max_tokens,
                                  pad_token_id=0, bos_token_id=1, eos_token_id=2)
            self.text_encoder = CLIPTextModel(tcfg)
        n, k = len(cfg.block_out_channels), cfg.cross_attention_blocks
        if not 0 <= k <= n:
            raise EmbeddedModelError(f"cross_attention_blocks={k}; expected 0..{n}")
        if cfg.arch not in ARCHS:
            raise EmbeddedModelError(f"arch {cfg.arch!r}; expected one of {ARCHS}")
        self.codec = (PCACodec(3 * cfg.image_size ** 2, cfg.latent_dim, cfg.pca_whiten) if cfg.arch == "latent-mlp"
                      else None)
        self.denoiser = (LatentDenoiser(cfg.latent_dim, cfg.mlp_dim, cfg.mlp_blocks, cfg.text_dim, cfg.text_heads,
                                        cross_attention=cfg.cross_attention) if cfg.arch == "latent-mlp" else None)
        self.vae = VAECodec(cfg) if cfg.arch == "latent-unet" else None
        if cfg.patch_size < 1 or (cfg.patch_size > 1 and cfg.arch != "unet"):
            raise EmbeddedModelError(f"patch_size {cfg.patch_size}: expected 1, or > 1 with arch 'unet'")
        unet_in = self.sample_shape[0]
        self.unet = None if cfg.arch == "latent-mlp" else UNet2DConditionModel(
            sample_size=self.sample_shape[-1], in_channels=unet_in, out_channels=unet_in,
            block_out_channels=tuple(cfg.block_out_channels), layers_per_block=cfg.layers_per_block,
            down_block_types=("DownBlock2D",) * (n - k) + ("CrossAttnDownBlock2D",) * k,
            up_block_types=("CrossAttnUpBlock2D",) * k + ("UpBlock2D",) * (n - k),
            cross_attention_dim=cfg.text_dim, attention_head_dim=cfg.attention_head_dim,
            norm_num_groups=min(32, cfg.block_out_channels[0]),
            class_embed_type="projection", projection_class_embeddings_input_dim=cfg.text_dim)
        self.au_encoder = (nn.Sequential(nn.Linear(len(cfg.au_names), cfg.text_dim), nn.SiLU(),
                                         nn.Linear(cfg.text_dim, cfg.text_dim)) if cfg.use_aus else None)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
               aus: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(token states (B,L',D), token mask (B,L'), pooled (B,D)); AUs add one token when enabled. The
        `pool` encoder has no token states: its one vector is both the pooled vector and a single token."""
        if self.cfg.text_encoder == "pool":
            pooled = self.text_encoder(input_ids, attention_mask)
            h, attention_mask = pooled[:, None], torch.ones_like(attention_mask[:, :1])
        else:
            h = self.text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            m = attention_mask.to(h.dtype)
            pooled = (h * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp_min(1)
        if self.au_encoder is not None:
            if aus is None:
                aus = torch.zeros(len(h), len(self.cfg.au_names), dtype=h.dtype, device=h.device)
            a = self.au_encoder(aus.to(h.dtype) / self.cfg.au_scale)
            h = torch.cat([h, a[:, None]], 1)
            attention_mask = torch.cat([attention_mask, torch.ones_like(attention_mask[:, :1])], 1)
            pooled = pooled + a
        return h, attention_mask, pooled

    def forward(self, x: torch.Tensor, t: torch.Tensor, h: torch.Tensor, mask: torch.Tensor,
                pooled: torch.Tensor) -> torch.Tensor:
        if self.denoiser is not None:
            return self.denoiser(x, t, h, mask, pooled)
        return self.unet(x, t, encoder_hidden_states=h, encoder_attention_mask=mask,
                         class_labels=pooled).sample

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one diffusion sample (a PCA latent, a VAE latent CxS/4xS/4, or a 3xSxS image)."""
        cfg = self.cfg
        if cfg.arch == "latent-mlp":
            return (cfg.latent_dim,)
        if cfg.arch == "latent-unet":
            f = VAECodec.factor(cfg)
            if cfg.image_size % f:
                raise EmbeddedModelError(f"image_size {cfg.image_size} is not a multiple of the VAE's factor {f}")
            return (cfg.latent_channels, cfg.image_size // f, cfg.image_size // f)
        p = cfg.patch_size
        if cfg.image_size % p:
            raise EmbeddedModelError(f"image_size {cfg.image_size} is not a multiple of patch_size {p}")
        return (3 * p * p, cfg.image_size // p, cfg.image_size // p)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What the diffusion training optimises: everything but the (separately trained, frozen) VAE."""
        skip = {id(p) for p in self.vae.parameters()} if self.vae is not None else set()
        return [p for p in self.parameters() if id(p) not in skip]

    def to_diffusion_space(self, images_uint8: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        x = images_uint8.float() / 127.5 - 1.0
        if self.codec is not None:
            return self.codec.encode(x)
        if self.vae is not None:
            with torch.no_grad():
                return torch.cat([self.vae.encode(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
        return nn.functional.pixel_unshuffle(x, self.cfg.patch_size) if self.cfg.patch_size > 1 else x

    def to_images(self, x: torch.Tensor) -> np.ndarray:
        """uint8 (N,S,S,3) from diffusion-space samples."""
        if self.codec is not None:
            x = self.codec.decode(x, self.cfg.image_size)
        elif self.vae is not None:
            x = self.vae.decode(x)
        elif self.cfg.patch_size > 1:
            x = nn.functional.pixel_shuffle(x, self.cfg.patch_size)
        return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()

    def encode_texts(self, texts: Sequence[str], aus: np.ndarray | torch.Tensor | None = None):
        ids, mask, unknown = self.tokenizer.encode(texts)
        device = next(self.parameters()).device
        a = None if aus is None else torch.as_tensor(np.asarray(aus), dtype=torch.float32, device=device)
        return (*self.encode(ids.to(device), mask.to(device), a), unknown)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())



VARIANTS = ("v1", "pool48")
"""`default_config` variants: ``v1`` — 32-px images, CLIP-style text encoder with cross-attention (the models before
2026-12); ``pool48`` — 48-px aligned face crops, the WordPool text encoder as FiLM conditioning only, a half-
whitened 384-component PCA latent, a 6-block 768-wide denoiser, v-prediction (models/diffusion/README.md)."""


def default_config(vocab: list[str], *, use_aus: bool = False, au_scale: float = 1.0,
                   image_size: int | None = None, tiny: bool = False, arch: str = "latent-mlp", patch_size: int = 1,
                   block_out_channels: Sequence[int] | None = None, variant: str = "v1") -> EmbeddedConfig:
    """The project's default architecture (or a tiny one for tests)."""
    if variant not in VARIANTS:
        raise EmbeddedModelError(f"variant {variant!r}; expected one of {VARIANTS}")
    if variant == "pool48":
        if arch != "latent-mlp":
            raise EmbeddedModelError(f"variant 'pool48' is a latent-mlp model, not {arch!r}")
        kw = dict(latent_dim=24, mlp_dim=32, mlp_blocks=2, text_dim=32) if tiny else {}
        return EmbeddedConfig(vocab=vocab, image_size=image_size or (16 if tiny else 48), use_aus=use_aus,
                              au_scale=au_scale, arch="latent-mlp", text_encoder="pool", cross_attention=False,
                              pca_whiten=0.5, prediction_type="v_prediction",
                              **({"latent_dim": 384, "mlp_dim": 768, "mlp_blocks": 6, "text_dim": 256} | kw))
    image_size = image_size or 32
    if tiny:
        return EmbeddedConfig(vocab=vocab, image_size=16, block_out_channels=tuple(block_out_channels or (16, 32)),
                              attention_head_dim=8, cross_attention_blocks=1, arch=arch, latent_dim=24, mlp_dim=32,
                              mlp_blocks=2, text_dim=32, text_layers=1, text_heads=2, max_tokens=64, use_aus=use_aus,
                              au_scale=au_scale, vae_block_out_channels=(8, 16), latent_channels=4,
                              patch_size=patch_size)
    if block_out_channels is None:
        # the UNet on S/4 latents (latent-unet) or S/p folded pixels: fewer, wider levels
        block_out_channels = ((64, 128) if arch == "latent-unet" else (32, 64, 128) if patch_size > 1
                              else EmbeddedConfig.block_out_channels)
    return EmbeddedConfig(vocab=vocab, image_size=image_size, use_aus=use_aus, au_scale=au_scale, arch=arch,
                          patch_size=patch_size, block_out_channels=tuple(block_out_channels))



# --- checkpoints ---------------------------------------------------------------------------------
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def save_checkpoint(model: EmbeddedDiffusion, folder: str | Path, *, dtype: torch.dtype = torch.float16,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write `model.safetensors` (state_dict in `dtype`) and `config.json` atomically.

    A config.json already there is deleted before the new weights replace the old ones: a kill between the two
    writes then leaves weights without a config (refused when loaded), never new weights under the previous
    run's config (whose ``finished: true`` would vouch for a partial model)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    (folder / CONFIG).unlink(missing_ok=True)
    with atomic_path(folder / WEIGHTS) as tmp:
        save_file(sd, str(tmp))
    write_json(folder / CONFIG, {"model": model.cfg.to_dict(), "weights_dtype": str(dtype).replace("torch.", ""),
                                 **(extra or {})})
    return folder


class PartialModelError(EmbeddedModelError):
    """A model whose training stopped before its steps (the `max_minutes` wall-time guard): not a finished model."""


def require_finished(folder: str | Path) -> dict[str, Any]:
    """`folder`'s config.json, or `PartialModelError` when it records a partial model: ``finished`` false, or
    fewer ``steps`` than its training config asked for (a `max_minutes` run exports what it has; a rerun of the
    same training resumes it). A config without training records (an outside checkpoint) passes."""
    meta = json.loads((Path(folder) / CONFIG).read_text())
    done, target = meta.get("steps"), (meta.get("train") or {}).get("steps")
    if meta.get("finished") is False or (done is not None and target is not None and done < target):
        raise PartialModelError(f"{Path(folder) / CONFIG}: a partial model ({done} of {target} training steps; "
                                "the max_minutes wall-time guard stopped it); rerun the same training (it resumes "
                                "from its state.pt) to finish it, or use a finished model")
    return meta


def load_checkpoint(folder: str | Path, device: str = "cpu") -> EmbeddedDiffusion:
    """Rebuild from config.json and load the state_dict (cast to float32; strict key match)."""
    folder = Path(folder)
    for f in (CONFIG, WEIGHTS):
        if not (folder / f).exists():
            raise EmbeddedModelError(f"{folder}: missing {f}; expected an embedded-model checkpoint folder")
    meta = json.loads((folder / CONFIG).read_text())
    model = EmbeddedDiffusion(EmbeddedConfig.from_dict(meta["model"]))
    sd = {k: v.float() for k, v in load_file(str(folder / WEIGHTS)).items()}
    model.load_state_dict(sd, strict=True)
    return model.to(device).eval()
