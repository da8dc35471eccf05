"""Training the embedded model (`train_embedded`): DDPM with a cosine schedule, min-SNR loss weighting, EMA weights,
caption/AU/word dropout and filler words; the PCA codec is fitted (or the VAE trained) first. Resumable from
`state.pt`, optionally fine-tuning an exported checkpoint (`TrainConfig.init_from`)."""
from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from syntfer.strategies.diffusion.captioned import CaptionedImages
from syntfer.strategies.diffusion.codecs import train_vae
from syntfer.strategies.diffusion.model import (EmbeddedConfig, EmbeddedDiffusion, count_parameters, load_checkpoint,
                                                save_checkpoint)
from syntfer.strategies.diffusion.text import SPECIALS, EmbeddedModelError
from syntfer.core.seeding import derive_seed
from syntfer.core.guards import check_finite
from syntfer.core.storage import atomic_path, load_torch, remove_stale_temporaries, save_torch

log = logging.getLogger(__name__)


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
    from diffusers import DDPMScheduler  # lazy: importing diffusers takes seconds

    return DDPMScheduler(num_train_timesteps=cfg.num_train_timesteps, beta_schedule=cfg.beta_schedule,
                         prediction_type=cfg.prediction_type)


def train_embedded(data: CaptionedImages, model_cfg: EmbeddedConfig, train_cfg: TrainConfig,
                   work_dir: str | Path, evaluate: Callable[[EmbeddedDiffusion, int], dict[str, float]] | None = None
                   ) -> dict[str, Any]:
    """Train (or resume) in `work_dir`: `state.pt` (resume state, atomic), `train_log.csv`, `ema/` export.

    With `evaluate` and ``train_cfg.eval_every`` > 0, every `eval_every` steps (right after a state save) the
    EMA weights are handed to ``evaluate(model, step)`` and its numbers appended to `eval_log.csv` — e.g.
    expression fidelity of samples judged by a fixed classifier (`cli`: ``--eval-judge``), the curve that says
    whether longer training helps. Returns a summary dict (steps done, finished flag, images/s). Deterministic
    for a given seed and thread count on CPU, resumes included (RNG states are checkpointed).
    """
    from diffusers.training_utils import EMAModel, compute_snr  # lazy: importing diffusers takes seconds

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(work_dir)  # what a killed run left half-written
    if train_cfg.threads:
        torch.set_num_threads(train_cfg.threads)
    if len(data.captions) == 0:
        raise EmbeddedModelError("the diffusion training set is empty (0 captioned images); expected rows in the "
                                 "captions file (check --captions and --limit)")
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
        st = load_torch(state_file, "resume state")
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
        check_finite(loss, f"{work_dir}: diffusion step {step + 1} loss")
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
                    extra={"steps": step, "finished": not stopped_early, "train": dataclasses.asdict(train_cfg)})
    return {"steps": step, "finished": not stopped_early, "elapsed_s": el,
            "images_per_s": step * train_cfg.batch_size / max(el, 1e-9), "parameters": count_parameters(model)}


def _filler_ids(model: EmbeddedDiffusion, train_cfg: TrainConfig) -> torch.Tensor | None:
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


def _evaluate_ema(model: EmbeddedDiffusion, ema, evaluate, step: int, log_file: Path) -> None:
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
