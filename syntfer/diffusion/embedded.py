"""The embedded default generator: a small text-conditioned pixel-space diffusion model.

Why this design (2 CPU cores, ~35 min of training):
- Text side: a word-level tokenizer over the training captions' vocabulary feeding a small
  `transformers.CLIPTextModel` built from a config — the same interface as Stable Diffusion's text
  encoder, so the UNet conditions on a token sequence through cross-attention exactly as SD does. A BPE
  vocabulary would need a large corpus; the world's captions use a few hundred words, and the grid
  prompts' attribute words (emotion, gender, age, race, traits) are among them. Words a prompt has that
  the captions never had are dropped and *counted* (`n_unknown_words` in the manifest), never guessed.
- A pooled text embedding (masked mean of the encoder's states) is also added to the UNet's time
  embedding (`class_embed_type="projection"`): global conditioning of this kind is what makes small
  class-conditional models learn quickly; cross-attention carries the per-word detail.
- Image side, two architectures (config `arch`):
  * ``latent-mlp`` (default): latent diffusion in a *linear* autoencoder's space — the top 320 principal
    components of the 32x32 training images (98 % of pixel variance) — with a residual-MLP noise predictor
    (FiLM from time + pooled text, a cross-attention to the text tokens in every block). Measured on the
    shared 2-core machine, a 1.5M-parameter pixel UNet ran at ~6 img/s under load; this one at ~57 img/s,
    so it sees ~10x more samples in the same budget. Its samples are blurry (PCA) and undertrained.
  * ``unet``: `diffusers.UNet2DConditionModel` on 32x32 RGB pixels (the GPU-scale option); with
    ``patch_size`` p > 1 the pixels are space-to-depth folded first (3x32x32 -> 12x16x16 for p=2), a
    lossless "codec" that makes each UNet step ~2.4x cheaper on CPU.
  * ``latent-unet``: Stable Diffusion's own design in miniature — a `diffusers.AutoencoderKL` built from a
    config and trained first (`train_vae`, then frozen), and the UNet on its 4x-downsampled latents.
  Measured on 2 CPU cores (models/diffusion/README.md): neither UNet variant beat the committed latent-mlp
  within ~40 min of training — the VAE after 400 steps (12 min) blurs away the expression cues the
  PCA keeps, and the folded pixel UNet after 2,210 steps draws faces with a 2-pixel grid artefact and
  no prompted expression. They are there for longer (GPU) runs.
  Both: DDPM training with a cosine schedule, epsilon prediction, min-SNR-5 loss weighting, EMA weights,
  caption dropout for classifier-free guidance (the unconditional input is the empty caption, as in SD).
- Sampling: DDIM with clipped x0 estimates by default (DPM-Solver++ is available but diverged on the
  latent model: at the cosine schedule's end the x0 estimate amplifies errors), batched, CFG; each
  image's initial noise comes from its own CPU `torch.Generator(seed)`, so one manifest row regenerates alone.
- The AU variant (FineFace's idea) adds an AU encoder (MLP: 12 intensities -> one token) whose token
  is appended to the text tokens and added to the pooled embedding; all-zero AUs are its unconditional
  input. AUs are dropped to zero 40 % of the time in training (and jointly with the caption 5 %), so one
  checkpoint serves both the text-only backend (zero AUs) and the AU backend.

Checkpoints are a safetensors `state_dict` (fp16 for the committed export) plus `config.json`
(architecture, vocabulary, AU names/scale); never a pickled module.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from syntfer.diffusion.codecs import PCACodec, VAECodec, train_vae
from syntfer.diffusion.denoisers import LatentDenoiser
from syntfer.diffusion.text import (AGE_GENDER_WORDS, SPECIALS, EmbeddedModelError, WordPool,  # noqa: F401
                                    WordTokenizer, adapt_prompt, build_vocab, caption_words)
from syntfer.prompts import FINEFACE_AUS
from syntfer.seeding import derive_seed, torch_generator
from syntfer.storage import atomic_path, remove_stale_temporaries, save_torch, write_json

log = logging.getLogger(__name__)


# --- model --------------------------------------------------------------------------------------
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


# --- checkpoints ---------------------------------------------------------------------------------
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def save_checkpoint(model: EmbeddedDiffusion, folder: str | Path, *, dtype: torch.dtype = torch.float16,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write `model.safetensors` (state_dict in `dtype`) and `config.json` atomically."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    with atomic_path(folder / WEIGHTS) as tmp:
        save_file(sd, str(tmp))
    write_json(folder / CONFIG, {"model": model.cfg.to_dict(), "weights_dtype": str(dtype).replace("torch.", ""),
                                 **(extra or {})})
    return folder


def load_checkpoint(folder: str | Path, device: str = "cpu") -> EmbeddedDiffusion:
    """Rebuild from config.json and load the state_dict (cast to float32; strict key match)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    for f in (CONFIG, WEIGHTS):
        if not (folder / f).exists():
            raise EmbeddedModelError(f"{folder}: missing {f}; expected an embedded-model checkpoint folder")
    meta = json.loads((folder / CONFIG).read_text())
    model = EmbeddedDiffusion(EmbeddedConfig.from_dict(meta["model"]))
    sd = {k: v.float() for k, v in load_file(str(folder / WEIGHTS)).items()}
    model.load_state_dict(sd, strict=True)
    return model.to(device).eval()


# --- data ------------------------------------------------------------------------------------------
@dataclasses.dataclass
class CaptionedImages:
    """Training data in memory: uint8 images (N,3,S,S), captions, optional AU matrix (N, n_aus)."""

    images: torch.Tensor
    captions: list[str]
    aus: np.ndarray | None
    au_names: tuple[str, ...]
    frame: pd.DataFrame


def load_captioned(captions_csv: str | Path, size: int, au_names: Sequence[str] = FINEFACE_AUS,
                   limit: int | None = None, align: bool = False) -> CaptionedImages:
    """Read `captions.csv` (path, caption, AU columns) of a captioned domain; images resized to `size`.

    Paths are relative to the CSV's folder. Missing AU columns are an error naming them (AUs are then
    simply not used by a text-only model: pass ``au_names=()``). With `align`, every image becomes an aligned
    `size`-px face crop (`syntfer.alignment`) from its ``landmarks`` column (the world's captions carry them; for
    a real captioned corpus, a face detector's 5 or 68 points) — the framing of RAF-DB's aligned faces, where
    the expression is legible at small sizes.
    """
    from PIL import Image

    from syntfer.images import load_image

    captions_csv = Path(captions_csv)
    df = pd.read_csv(captions_csv, keep_default_na=False)
    for col in ("path", "caption"):
        if col not in df.columns:
            raise EmbeddedModelError(f"{captions_csv}: missing column {col!r}; has {list(df.columns)}")
    missing = [a for a in au_names if a not in df.columns]
    if missing:
        raise EmbeddedModelError(f"{captions_csv}: missing AU column(s) {missing}")
    if limit is not None:
        df = df.iloc[:limit]
    base = captions_csv.parent
    arr = np.empty((len(df), size, size, 3), dtype=np.uint8)
    from tqdm.auto import tqdm

    if align:
        from syntfer.alignment import align_face, parse_landmarks

        if "landmarks" not in df.columns:
            raise EmbeddedModelError(f"{captions_csv}: align needs a 'landmarks' column; has {list(df.columns)}")
    for i, p in enumerate(tqdm(df["path"], desc="load captioned images", leave=False, mininterval=10)):
        im = load_image(base / p, "RGB")
        if align:
            arr[i] = align_face(np.asarray(im), parse_landmarks(df["landmarks"].iloc[i]), size)
        else:
            arr[i] = np.asarray(im.resize((size, size), Image.Resampling.LANCZOS if im.width > size
                                          else Image.Resampling.BICUBIC))
    aus = df[list(au_names)].to_numpy(np.float32) if au_names else None
    return CaptionedImages(torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous(), df["caption"].astype(str).tolist(),
                           aus, tuple(au_names), df)


# --- training --------------------------------------------------------------------------------------
@dataclasses.dataclass
class TrainConfig:
    steps: int = 6000
    batch_size: int = 32
    lr: float = 1e-3
    warmup: int = 100
    weight_decay: float = 0.0
    ema_decay: float = 0.998
    caption_dropout: float = 0.1
    word_dropout: float = 0.0  # each caption word masked out with this probability (pool encoder: robustness)
    eval_every: int = 0  # with an `evaluate` callback: judge the EMA weights every N steps (eval_log.csv)
    au_dropout: float = 0.4  # high: one AU-capable model also serves text-only sampling (zero AUs)
    joint_dropout: float = 0.05
    min_snr_gamma: float = 5.0
    seed: int = 0
    checkpoint_every: int = 250
    log_every: int = 50
    max_minutes: float | None = None  # wall-time guard: checkpoint and stop (rerun resumes)
    threads: int | None = None
    vae_steps: int = 400  # latent-unet: autoencoder steps before the diffusion steps
    vae_batch_size: int = 64
    vae_lr: float = 2e-3
    vae_kl_weight: float = 1e-6
    # fine-tuning: start from an exported checkpoint (same config and vocabulary; its PCA codec is kept)
    init_from: str | None = None
    # filler robustness (pool encoder): each caption gets 0..filler_max extra tokens drawn from `filler_words`,
    # words that say nothing about the image ('a', 'with'); grid prompts are long and full of them, captions short
    filler_words: tuple[str, ...] = ()
    filler_max: int = 0


LOG_COLUMNS = ("step", "loss", "lr", "images_seen", "elapsed_s")


def _ddpm(cfg: EmbeddedConfig):
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=cfg.num_train_timesteps, beta_schedule=cfg.beta_schedule,
                         prediction_type=cfg.prediction_type)


def train_embedded(data: CaptionedImages, model_cfg: EmbeddedConfig, train_cfg: TrainConfig,
                   work_dir: str | Path, evaluate: Callable[["EmbeddedDiffusion", int], dict[str, float]] | None = None
                   ) -> dict[str, Any]:
    """Train (or resume) in `work_dir`: `state.pt` (resume state, atomic), `train_log.csv`, `ema/` export.

    With `evaluate` and ``train_cfg.eval_every`` > 0, every `eval_every` steps (right after a state save) the
    EMA weights are handed to ``evaluate(model, step)`` and its numbers appended to `eval_log.csv` — e.g.
    expression fidelity of samples judged by a fixed classifier (`cli`: ``--eval-judge``), the curve that says
    whether longer training helps. Returns a summary dict (steps done, finished flag, images/s). Deterministic
    for a given seed and thread count on CPU, resumes included (RNG states are checkpointed).
    """
    from diffusers.training_utils import EMAModel, compute_snr
    from tqdm.auto import tqdm

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(work_dir)  # what a killed run left half-written
    if train_cfg.threads:
        torch.set_num_threads(train_cfg.threads)
    if model_cfg.use_aus and data.aus is None:
        raise EmbeddedModelError("model_cfg.use_aus is set but the data has no AU columns")
    torch.manual_seed(derive_seed(train_cfg.seed, "embedded.init"))
    model = EmbeddedDiffusion(model_cfg)
    state_file, log_file = work_dir / "state.pt", work_dir / "train_log.csv"
    if train_cfg.init_from and not state_file.exists():
        init = load_checkpoint(train_cfg.init_from)
        if init.cfg.to_dict() != model_cfg.to_dict():
            diff = sorted(k for k, v in model_cfg.to_dict().items() if init.cfg.to_dict().get(k) != v)
            raise EmbeddedModelError(f"{train_cfg.init_from}: its model config differs from the requested one in "
                                     f"{diff}; fine-tune with the same variant, options and captions")
        model.load_state_dict(init.state_dict())
    filler_ids = _filler_ids(model, train_cfg)
    params = model.trainable_parameters()
    ema = EMAModel(params, decay=train_cfg.ema_decay, use_ema_warmup=True, power=0.75)
    opt = torch.optim.AdamW(params, lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, train_cfg.warmup)))
    ddpm = _ddpm(model_cfg)
    gen = torch.Generator().manual_seed(derive_seed(train_cfg.seed, "embedded.train"))
    step, elapsed0, rows, codec_ready, running = 0, 0.0, [], False, []
    if state_file.exists():
        st = torch.load(state_file, map_location="cpu", weights_only=False)
        if st["model_cfg"] != model_cfg.to_dict():
            raise EmbeddedModelError(f"{state_file}: saved model config differs from the requested one; "
                                     "use another work_dir or delete the state to start over")
        model.load_state_dict(st["model"])
        ema.load_state_dict(st["ema"])
        opt.load_state_dict(st["opt"])
        sched.load_state_dict(st["sched"])
        gen.set_state(st["gen"])
        step, elapsed0 = st["step"], st["elapsed"]
        codec_ready = st.get("codec_ready", step > 0)
        running = list(st.get("running", []))  # losses of steps since the last log row
        rows = pd.read_csv(log_file).to_dict("records") if log_file.exists() else []
        rows = [r for r in rows if r["step"] <= step]
        log.info("resumed at step %d", step)
    print(f"embedded model: {count_parameters(model) / 1e6:.2f}M parameters, {len(data.captions)} images, "
          f"starting at step {step}/{train_cfg.steps}", flush=True)
    ids_all, mask_all, unknown = model.tokenizer.encode(data.captions)
    if sum(unknown):
        raise EmbeddedModelError(f"{sum(unknown)} training caption words are outside the vocabulary")
    aus_all = torch.from_numpy(data.aus) if model_cfg.use_aus else None
    empty_ids, empty_mask, _ = model.tokenizer.encode([""])
    n = len(data.captions)
    if model.codec is not None:
        if step == 0 and not train_cfg.init_from:
            torch.manual_seed(derive_seed(train_cfg.seed, "embedded.init"))
            explained = model.codec.fit(data.images.float() / 127.5 - 1.0)
            print(f"PCA codec: {model_cfg.latent_dim} components explain {explained:.3f} of the pixel variance",
                  flush=True)
        with torch.no_grad():
            x_all = model.to_diffusion_space(data.images)
    elif model.vae is not None:
        if not codec_ready:
            t0 = time.monotonic()
            vae_rows = train_vae(model.vae, data.images, steps=train_cfg.vae_steps,
                                 batch_size=train_cfg.vae_batch_size, lr=train_cfg.vae_lr,
                                 kl_weight=train_cfg.vae_kl_weight,
                                 generator=torch.Generator().manual_seed(derive_seed(train_cfg.seed, "embedded.vae")))
            with atomic_path(work_dir / "vae_log.csv") as tmp:
                pd.DataFrame(vae_rows).to_csv(tmp, index=False)
            elapsed0 += time.monotonic() - t0
            print(f"VAE: {train_cfg.vae_steps} steps in {time.monotonic() - t0:.0f} s, final L1 "
                  f"{vae_rows[-1]['l1']:.4f} (pixels in [-1,1]), latent scale {float(model.vae.scale):.3f}", flush=True)
        model.vae.requires_grad_(False).eval()
        x_all = model.to_diffusion_space(data.images)
    else:
        x_all = None
    codec_ready = True
    t_start = time.monotonic()

    def save_state() -> None:
        # the log before the state: a kill between the two leaves a log ahead of the state, whose extra rows a
        # resume drops (rows after its step); the other order lost the rows logged since the previous checkpoint
        with atomic_path(log_file) as tmp:  # header even with no rows yet (a state saved right after the VAE)
            pd.DataFrame(rows, columns=LOG_COLUMNS).to_csv(tmp, index=False)
        save_torch(state_file, {"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                                "sched": sched.state_dict(), "gen": gen.get_state(), "step": step,
                                "codec_ready": codec_ready, "running": list(running),
                                "elapsed": elapsed0 + time.monotonic() - t_start,
                                "model_cfg": model_cfg.to_dict(), "train_cfg": dataclasses.asdict(train_cfg)})

    if model.vae is not None and step == 0:
        save_state()  # the trained VAE survives an interruption of the diffusion steps
    model.train()
    if model.vae is not None:
        model.vae.eval()
    bar = tqdm(total=train_cfg.steps, initial=step, desc="train embedded diffusion", mininterval=10)
    stopped_early = False
    while step < train_cfg.steps:
        idx = torch.randint(0, n, (train_cfg.batch_size,), generator=gen)
        x0 = x_all[idx] if x_all is not None else model.to_diffusion_space(data.images[idx])
        ids, mask = ids_all[idx].clone(), mask_all[idx].clone()
        used = int(mask.sum(1).max())  # trim padding (masked keys contribute exactly zero)
        ids, mask = ids[:, :used], mask[:, :used]
        u = torch.rand(len(idx), generator=gen)
        drop_text = (u < train_cfg.caption_dropout + train_cfg.joint_dropout)
        aus = None
        if aus_all is not None:
            aus = aus_all[idx].clone()
            drop_au = (u < train_cfg.joint_dropout) | ((u >= train_cfg.caption_dropout + train_cfg.joint_dropout)
                                                       & (u < train_cfg.caption_dropout + train_cfg.joint_dropout
                                                          + train_cfg.au_dropout))
            aus[drop_au] = 0.0
        if train_cfg.word_dropout > 0:  # captions with words missing: prompts rarely say all a caption says
            drop_word = (torch.rand(ids.shape, generator=gen) < train_cfg.word_dropout) & (ids >= len(SPECIALS))
            mask = mask.masked_fill(drop_word, 0)
        ids[drop_text], mask[drop_text] = empty_ids[0, :used], empty_mask[0, :used]
        if filler_ids is not None:  # bag of words: appended tokens are as good as inserted ones
            count = torch.randint(0, train_cfg.filler_max + 1, (len(idx),), generator=gen)
            extra = filler_ids[torch.randint(0, len(filler_ids), (len(idx), train_cfg.filler_max), generator=gen)]
            extra_mask = (torch.arange(train_cfg.filler_max)[None] < count[:, None]) & ~drop_text[:, None]
            ids, mask = torch.cat([ids, extra], 1), torch.cat([mask, extra_mask.to(mask.dtype)], 1)
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, model_cfg.num_train_timesteps, (len(idx),), generator=gen)
        xt = ddpm.add_noise(x0, noise, t)
        h, hm, pooled = model.encode(ids, mask, aus)
        pred = model(xt, t, h, hm, pooled)
        snr = compute_snr(ddpm, t)
        if model_cfg.prediction_type == "v_prediction":  # min-SNR-γ for v (Hang et al. 2023): min(snr, γ)/(snr+1)
            target = ddpm.get_velocity(x0, noise, t)
            w = torch.clamp(snr, max=train_cfg.min_snr_gamma) / (snr + 1)
        else:
            target = noise
            w = torch.clamp(snr, max=train_cfg.min_snr_gamma) / snr
        loss = (w * ((pred - target) ** 2).flatten(1).mean(1)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        ema.step(params)
        step += 1
        bar.update(1)
        running.append(loss.item())
        if step % train_cfg.log_every == 0 or step == train_cfg.steps:
            el = elapsed0 + time.monotonic() - t_start
            rows.append({"step": step, "loss": float(np.mean(running)), "lr": sched.get_last_lr()[0],
                         "images_seen": step * train_cfg.batch_size, "elapsed_s": round(el, 1)})
            running = []
        if step % train_cfg.checkpoint_every == 0 or step == train_cfg.steps:
            save_state()
        if evaluate is not None and train_cfg.eval_every and step % train_cfg.eval_every == 0:
            _evaluate_ema(model, ema, evaluate, step, work_dir / "eval_log.csv")
            model.train()
        if train_cfg.max_minutes is not None and (time.monotonic() - t_start) / 60 > train_cfg.max_minutes:
            save_state()
            stopped_early = step < train_cfg.steps
            break
    bar.close()
    el = elapsed0 + time.monotonic() - t_start
    ema_model = EmbeddedDiffusion(model_cfg)
    ema_model.load_state_dict(model.state_dict())
    ema.copy_to(ema_model.trainable_parameters())
    save_checkpoint(ema_model, work_dir / "ema", dtype=torch.float32,
                    extra={"steps": step, "train": dataclasses.asdict(train_cfg)})
    return {"steps": step, "finished": not stopped_early, "elapsed_s": el,
            "images_per_s": step * train_cfg.batch_size / max(el, 1e-9), "parameters": count_parameters(model)}


def _filler_ids(model: "EmbeddedDiffusion", train_cfg: TrainConfig) -> torch.Tensor | None:
    """Token ids of `train_cfg.filler_words` (None when filler is off); errors name what is wrong."""
    if not train_cfg.filler_max and not train_cfg.filler_words:
        return None
    if train_cfg.filler_max < 1 or not train_cfg.filler_words:
        raise EmbeddedModelError(f"filler needs both words and filler_max >= 1; got {list(train_cfg.filler_words)} "
                                 f"and {train_cfg.filler_max}")
    if model.cfg.text_encoder != "pool":
        raise EmbeddedModelError(f"filler words suit the bag-of-words 'pool' encoder only; this model's text encoder "
                                 f"is {model.cfg.text_encoder!r} (token order matters there)")
    missing = [w for w in train_cfg.filler_words if w not in model.tokenizer.index]
    if missing:
        raise EmbeddedModelError(f"filler word(s) {missing} are not in the captions' vocabulary")
    return torch.tensor([model.tokenizer.index[w] for w in train_cfg.filler_words], dtype=torch.long)


def _evaluate_ema(model: "EmbeddedDiffusion", ema, evaluate, step: int, log_file: Path) -> None:
    """Run `evaluate` on a copy with the EMA weights; append its row to `log_file` (rows after `step`, left by
    an interrupted run, are dropped first, so a resumed run writes the same file)."""
    ema_model = EmbeddedDiffusion(model.cfg)
    ema_model.load_state_dict(model.state_dict())
    ema.copy_to(ema_model.trainable_parameters())
    ema_model.eval()
    row = {"step": step, **evaluate(ema_model, step)}
    rows = pd.read_csv(log_file).to_dict("records") if log_file.exists() else []
    rows = [r for r in rows if r["step"] < step] + [row]
    with atomic_path(log_file) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)


# --- sampling --------------------------------------------------------------------------------------
SOLVERS = ("dpmsolver++", "ddim")


def make_sampler(cfg: EmbeddedConfig, solver: str = "dpmsolver++"):
    """A diffusers sampler over the training schedule. The cosine schedule ends at alpha_bar ~ 0, where an
    x0 estimate amplifies any noise-prediction error by 1/sqrt(alpha_bar); timesteps therefore start one
    spacing below the end ("leading" spacing with offset 1) and x0 estimates are clipped to the data range."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

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


def timing_note(images: int, seconds: float) -> str:
    return f"{images} images in {seconds:.1f} s = {images / max(seconds, 1e-9):.2f} img/s"


__all__ = ["EmbeddedConfig", "EmbeddedDiffusion", "TrainConfig", "CaptionedImages", "WordTokenizer",
           "build_vocab", "caption_words", "adapt_prompt", "load_captioned", "train_embedded", "sample_images",
           "save_checkpoint", "load_checkpoint", "default_config", "count_parameters"]
