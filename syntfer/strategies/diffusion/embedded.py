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

Where each part lives: `model` (config, network, checkpoints), `captioned` (training data), `training`
(`train_embedded`), `sampling` (`sample_images`), with `text` (tokenizer, text encoders, prompt adaptation),
`codecs` (PCA, VAE) and `denoisers` (the latent MLP). This module is their one import for users of the model.
"""
from syntfer.strategies.diffusion.captioned import CaptionedImages, load_captioned
from syntfer.strategies.diffusion.model import (ARCHS, CONFIG, PREDICTION_TYPES, TEXT_ENCODERS, VARIANTS, WEIGHTS, EmbeddedConfig,
                                                EmbeddedDiffusion, PartialModelError, count_parameters, default_config,
                                                load_checkpoint, require_finished, save_checkpoint)
from syntfer.strategies.diffusion.sampling import CLIP_LATENT, SOLVERS, make_sampler, sample_images
from syntfer.strategies.diffusion.text import (AGE_GENDER_WORDS, SPECIALS, EmbeddedModelError, WordPool, WordTokenizer,
                                               adapt_prompt, build_vocab, caption_words)
from syntfer.strategies.diffusion.training import LOG_COLUMNS, TrainConfig, train_embedded

__all__ = [
    "AGE_GENDER_WORDS", "ARCHS", "CLIP_LATENT", "CONFIG", "CaptionedImages", "EmbeddedConfig", "EmbeddedDiffusion",
    "EmbeddedModelError", "LOG_COLUMNS", "PREDICTION_TYPES", "PartialModelError", "SOLVERS", "SPECIALS", "TEXT_ENCODERS", "TrainConfig",
    "VARIANTS", "WEIGHTS", "WordPool", "WordTokenizer", "adapt_prompt", "build_vocab", "caption_words",
    "count_parameters", "default_config", "load_captioned", "load_checkpoint", "make_sampler", "require_finished",
    "sample_images", "save_checkpoint", "train_embedded",
]
