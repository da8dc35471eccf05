"""The trainer: upstream's recipes (SAM around Adam, CE + 2 x label-smoothed CE), resumable, accelerate-ready.

One function, `train(config, train_data, out_dir)`, trains any registered model on a manifest, selects the
best epoch on a held-out validation split of the training data (score 0.67 macro-F1 + 0.33 accuracy; test
sets are never seen here), and writes into `out_dir`:

- ``log.csv``: one row per epoch, ``epoch,train_loss,val_loss,val_acc,val_balanced_acc,val_macro_f1,lr``
  (losses are the training objective; ``lr`` is the rate used during that epoch);
- ``best/``: the selected model as a state_dict + JSON config (`syntfer.engine.models.checkpoint`);
- ``state.pt``: the resume state (model, optimizer, scheduler, position, history), written atomically at each
  epoch end and every ``checkpoint_every`` steps;
- ``split.csv``: the train/val assignment; ``config.json``; ``summary.json`` when finished.

These files hold no timings and no absolute paths (the resume fingerprint hashes image paths relative to
``out_dir``), so a run's folder has the same bytes in every checkout and on every run; wall time is returned
(`TrainResult.seconds`) and printed by the CLI.

Resume: rerunning the same call continues from ``state.pt``. Shuffling and augmentation are functions of
(seed, epoch) (`syntfer.engine.data.EpochSampler`) and dropout randomness is reseeded every step from
(seed, epoch, step), so the resumed run reaches the same weights and metrics bit for bit on CPU.

Devices: a single process on CPU; under ``accelerate launch`` or ``notebook_launcher`` the same function runs
data-parallel (HF accelerate): each process takes its part of every epoch's batches, gradients are averaged across
processes, validation is gathered; the main process writes the files above. `train_launched` runs it under a
launcher from a notebook (``syntfer train --config``). On CUDA: bf16 autocast by default; channels_last
by default on CUDA and CPU.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from syntfer.core import labels as L
from syntfer.core.guards import check_finite
from syntfer.engine.data import (UPSTREAM_NOISE_STD, BatchAugment, BatchCollate, DecodedImages, ManifestDataset, as_frame,
                                 build_loader, label_indices,
                                 epoch_sampler, eval_transform, image_mode, split_validation, train_transform)
from syntfer.engine.evaluation import compute_metrics
from syntfer.engine.launch import run_launched
from syntfer.core.manifest import write_manifest
from syntfer.engine.models import create_model, list_models, model_options
from syntfer.engine.models.registry import check_model_options
from syntfer.engine.models.checkpoint import load_checkpoint, save_checkpoint
from syntfer.core.seeding import derive_seed, seed_everything
from syntfer.core.storage import remove_stale_temporaries, save_torch, write_json, write_text

LOG_COLUMNS = ("epoch", "train_loss", "val_loss", "val_acc", "val_balanced_acc", "val_macro_f1", "lr")
VAL_METRICS = LOG_COLUMNS[2:6]  # what `_validate` measures; a result's best_metrics
STATE_FILE = "state.pt"
SELECTION_WEIGHTS = {"macro_f1": 0.67, "accuracy": 0.33}  # upstream's selection score, applied to validation


class TrainError(RuntimeError):
    """A training run that cannot start or continue; the message says why and what to do."""


# --------------------------------------------------------------------------- configuration
@dataclasses.dataclass
class TrainConfig:
    """Every knob of a training run. Build one with `TrainConfig.from_recipe`."""

    model: str = "ir_tiny"
    model_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    pretrained: str | None = None
    recipe: str = "fast"
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adamw"          # adam | adamw | sam_adam | sam_adamw
    lr: float = 2e-3
    weight_decay: float = 0.05
    rho: float = 0.05                 # SAM neighbourhood size
    scheduler: str = "cosine"         # exponential (gamma per epoch) | cosine (to 0 over epochs) | constant
    gamma: float = 0.98
    label_smoothing: float = 0.4      # epsilon of the smoothed CE term
    smoothing_weight: float = 2.0     # loss = CE + smoothing_weight * CE_smoothed
    augment: bool = True
    noise_std: float = UPSTREAM_NOISE_STD
    erasing_p: float = 0.5
    affine: float = 0.0               # batch_augment only: random shift/scale/rotation magnitude (data.BatchAugment)
    balanced: bool = False            # train for balanced error (a class-balanced test): see `balance_method`
    balance_method: str = "sampler"   # sampler: class-balanced sampling with replacement | logit_adjust: plain
                                      # sampling, logits + log(class prior) in the loss (Menon et al. 2021)
    val_fraction: float = 0.1
    seed: int = 0
    eval_batch_size: int = 256
    num_workers: int = 0
    cache_images: bool = False
    batch_augment: bool = False       # augment whole batches at the model's size (data.BatchAugment), not per image
    checkpoint_every: int = 0         # also save the resume state every N steps (0: epoch ends only)
    mixed_precision: str = "auto"     # auto (bf16 on CUDA, none on CPU) | no | bf16
    channels_last: str = "auto"       # auto (CUDA and CPU) | yes | no
    deterministic: bool = False
    cpu: bool = False                 # force CPU even when CUDA is present
    progress: bool = True

    # knobs that do not change results (excluded from the resume fingerprint)
    _NEUTRAL = ("num_workers", "cache_images", "checkpoint_every", "progress")

    @classmethod
    def from_recipe(cls, recipe: str = "fast", **overrides: Any) -> "TrainConfig":
        """A recipe preset (`RECIPES`) with explicit overrides; ``None`` values mean "keep the preset"."""
        if recipe not in RECIPES:
            raise TrainError(f"unknown recipe {recipe!r}; expected one of {sorted(RECIPES)}")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise TrainError(f"unknown TrainConfig field(s) {unknown}; known: {sorted(fields)}")
        values = {**RECIPES[recipe], **{k: v for k, v in overrides.items() if v is not None}, "recipe": recipe}
        return cls(**values).validated()

    def validated(self) -> "TrainConfig":
        """Self, after checking every value; raises TrainError naming the bad field."""
        choices = {"optimizer": ("adam", "adamw", "sam_adam", "sam_adamw"), "balance_method": ("sampler", "logit_adjust"),
                   "scheduler": ("exponential", "cosine", "constant"),
                   "mixed_precision": ("auto", "no", "bf16"), "channels_last": ("auto", "yes", "no")}
        for k, allowed in choices.items():
            if getattr(self, k) not in allowed:
                raise TrainError(f"TrainConfig.{k} = {getattr(self, k)!r}; expected one of {allowed}")
        positive = ("epochs", "batch_size", "eval_batch_size", "lr")
        for k in positive:
            if not getattr(self, k) > 0:
                raise TrainError(f"TrainConfig.{k} = {getattr(self, k)!r}; expected > 0")
        for k in ("weight_decay", "rho", "smoothing_weight", "num_workers", "checkpoint_every", "noise_std", "affine"):
            if getattr(self, k) < 0:
                raise TrainError(f"TrainConfig.{k} = {getattr(self, k)!r}; expected >= 0")
        for k in ("label_smoothing", "erasing_p"):
            if not 0 <= getattr(self, k) <= 1:
                raise TrainError(f"TrainConfig.{k} = {getattr(self, k)!r}; expected within [0, 1]")
        if not 0 < self.gamma <= 1:
            raise TrainError(f"TrainConfig.gamma = {self.gamma!r}; expected within (0, 1]")
        if not 0 <= self.val_fraction < 1:
            raise TrainError(f"TrainConfig.val_fraction = {self.val_fraction!r}; expected within [0, 1)")
        if self.model in list_models():  # an unregistered name fails in create_model, naming the registered ones
            check_model_options(self.model, self.model_kwargs, "TrainConfig.model_kwargs")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        d = {k: v for k, v in self.to_dict().items() if k not in self._NEUTRAL}
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


# Presets. upstream_ir50 and poster are docs/method.md §7 verbatim; `lr` of upstream_ir50 is upstream's default
# 1.095e-6 (probably a typo next to POSTER's 4e-5: override it with --lr). `fast` is for the small CPU nets:
# SAM costs two forward/backward passes per step, which on 2 CPU cores halves the epochs a budget allows, and
# for nets of ~1M parameters trained for a few epochs plain AdamW with a cosine schedule gets further per
# second; the loss and augmentations stay upstream's.
RECIPES: dict[str, dict[str, Any]] = {
    "upstream_ir50": dict(model="ir50", optimizer="sam_adam", lr=1.095e-6, weight_decay=1e-4, rho=0.05,
                          scheduler="exponential", gamma=0.98, epochs=120, batch_size=64, label_smoothing=0.4),
    "poster": dict(model="poster", optimizer="sam_adam", lr=4e-5, weight_decay=1e-4, rho=0.05,
                   scheduler="exponential", gamma=0.98, epochs=300, batch_size=200, label_smoothing=0.2),
    "fast": dict(model="ir_tiny", optimizer="adamw", lr=2e-3, weight_decay=0.05, scheduler="cosine",
                 epochs=10, batch_size=64, label_smoothing=0.4, cache_images=True, batch_augment=True),
}


# --------------------------------------------------------------------------- loss and optimizer
def fer_loss(logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.4,
             smoothing_weight: float = 2.0, reduction: str = "mean") -> torch.Tensor:
    """Upstream's objective: CE + w * label-smoothed CE (smoothed CE = (1-eps) NLL + eps * mean_k(-log p_k))."""
    ce = F.cross_entropy(logits, target, reduction=reduction)
    if smoothing_weight == 0:
        return ce
    return ce + smoothing_weight * F.cross_entropy(logits, target, label_smoothing=label_smoothing,
                                                   reduction=reduction)


class SAM(torch.optim.Optimizer):
    """Sharpness-Aware Minimization (Foret et al. 2021) around a base optimizer.

    Usage per step: loss(w).backward(); ``first_step()`` moves to w + rho g/||g||; loss(w + e).backward();
    ``second_step()`` restores w and lets the base optimizer step with the gradient taken at w + e.
    ``step(closure)`` does both. State (and state_dict) is the base optimizer's.
    """

    def __init__(self, params: Iterable, base_optimizer: type[torch.optim.Optimizer], rho: float = 0.05,
                 **kwargs: Any):
        if rho < 0:
            raise ValueError(f"SAM rho {rho!r} must be >= 0")
        super().__init__(params, dict(rho=rho, **kwargs))
        self.base_optimizer = base_optimizer(self.param_groups, **kwargs)
        self.param_groups = self.base_optimizer.param_groups
        self.defaults.update(self.base_optimizer.defaults)
        self._e_w: dict[torch.Tensor, torch.Tensor] = {}

    @torch.no_grad()
    def _grad_norm(self) -> torch.Tensor:
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        if not grads:
            raise RuntimeError("SAM.first_step: no parameter has a gradient; call backward() first")
        return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        norm = self._grad_norm()
        for group in self.param_groups:
            scale = group["rho"] / (norm + 1e-12)
            for p in group["params"]:
                if p.grad is None:
                    continue
                e_w = (p.grad * scale).to(p)
                p.add_(e_w)
                self._e_w[p] = e_w
        if zero_grad:
            self.zero_grad(set_to_none=True)

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        if not self._e_w and any(p.grad is not None for g in self.param_groups for p in g["params"]):
            raise RuntimeError("SAM.second_step called without first_step")
        for p, e_w in self._e_w.items():
            p.sub_(e_w)
        self._e_w.clear()
        self.base_optimizer.step()
        if zero_grad:
            self.zero_grad(set_to_none=True)

    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> None:  # type: ignore[override]
        if closure is None:
            raise RuntimeError("SAM.step needs a closure that recomputes the loss and calls backward()")
        self.first_step(zero_grad=True)
        with torch.enable_grad():
            closure()
        self.second_step()

    def state_dict(self) -> dict[str, Any]:
        return self.base_optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.base_optimizer.load_state_dict(state_dict)
        self.param_groups = self.base_optimizer.param_groups


def build_optimizer(params: Iterable, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer a config names (Adam has coupled L2 weight decay as upstream; AdamW decoupled)."""
    base = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[cfg.optimizer.removeprefix("sam_")]
    if cfg.optimizer.startswith("sam_"):
        return SAM(params, base, rho=cfg.rho, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return base(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-epoch schedule: ExponentialLR(gamma), cosine to 0 over `epochs`, or constant."""
    opt = optimizer.base_optimizer if isinstance(optimizer, SAM) else optimizer
    if cfg.scheduler == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.gamma)
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    return torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)


def selection_score(accuracy: float, macro_f1: float) -> float:
    """Checkpoint selection score on validation: 0.67 macro-F1 + 0.33 accuracy."""
    return SELECTION_WEIGHTS["macro_f1"] * macro_f1 + SELECTION_WEIGHTS["accuracy"] * accuracy


# --------------------------------------------------------------------------- results
@dataclasses.dataclass
class StepEvent:
    """Passed to a training callback after every optimisation step."""

    epoch: int
    step: int          # step within the epoch, 0-based
    global_step: int
    loss: float


@dataclasses.dataclass
class TrainResult:
    """What `train` returns: the best model (weights loaded), where it was saved, and the history."""

    model: nn.Module
    out_dir: Path
    best_epoch: int
    best_score: float
    best_metrics: dict[str, float]
    history: pd.DataFrame
    config: TrainConfig
    resumed_from: tuple[int, int] | None  # (epoch, step) a run continued from, or None
    seconds: float = 0.0  # wall time of this call (kept out of the files: they are the same on every run)


def _frame_fingerprint(frame: pd.DataFrame, base: Path) -> str:
    """Hash of (path, label) rows; paths relative to `base` (the run folder), so the fingerprint recorded in
    config.json and state.pt does not depend on where the project is checked out."""
    h = hashlib.sha256()
    for p, lab in zip(frame["path"].astype(str), frame["label"].astype(str)):
        h.update(f"{os.path.relpath(p, base)}\x1f{lab}\n".encode())
    return h.hexdigest()[:16]


def _write_log(out_dir: Path, history: list[dict[str, float]]) -> None:
    df = pd.DataFrame(history, columns=list(LOG_COLUMNS))
    write_text(out_dir / "log.csv", df.to_csv(index=False))


def _accelerator(cfg: TrainConfig):
    from accelerate import Accelerator  # lazy: importing accelerate takes over a second

    use_cuda = torch.cuda.is_available() and not cfg.cpu
    mp = cfg.mixed_precision
    if mp == "auto":
        mp = "bf16" if use_cuda else "no"
    return Accelerator(cpu=not use_cuda, mixed_precision=mp)


def _use_channels_last(cfg: TrainConfig, device: torch.device) -> bool:
    """channels_last memory format for the model and its batches: ``yes``, or ``auto`` on CUDA and on CPU.

    On CPU (oneDNN) it is faster too: 3 seeds x 12 epochs of the default cnn_tiny on the RAF-DB stand-in, 2
    threads, 53.5 s contiguous vs 43.3 s channels_last (``benchmarks/bench_seeds.py``)."""
    return cfg.channels_last == "yes" or (cfg.channels_last == "auto" and device.type in ("cuda", "cpu"))


@torch.no_grad()
def _validate(model: nn.Module, loader, accelerator, cfg: TrainConfig) -> dict[str, float]:
    model.eval()
    losses, preds, targets = [], [], []
    for x, y in loader:
        if _use_channels_last(cfg, accelerator.device):
            x = x.contiguous(memory_format=torch.channels_last)
        logits = model(x).float()
        loss = fer_loss(logits, y, cfg.label_smoothing, cfg.smoothing_weight, reduction="none")
        loss, logits, y = accelerator.gather_for_metrics((loss, logits, y))
        losses.append(loss.cpu())
        preds.append(logits.argmax(1).cpu())
        targets.append(y.cpu())
    y_true, y_pred = torch.cat(targets).numpy(), torch.cat(preds).numpy()
    m = compute_metrics(y_true, y_pred)
    return {"val_loss": float(torch.cat(losses).mean()), "val_acc": m["accuracy"],
            "val_balanced_acc": m["balanced_accuracy"], "val_macro_f1": m["macro_f1"]}


def train(config: TrainConfig, train_data: pd.DataFrame | str | os.PathLike, out_dir: str | os.PathLike, *,
          val_data: pd.DataFrame | str | os.PathLike | None = None, split: str | None = None,
          callback: Callable[[StepEvent], None] | None = None, resume: bool = True,
          image_cache: DecodedImages | None = None) -> TrainResult:
    """Train `config.model` on a labelled manifest; select on held-out validation; resumable (module docstring).

    `val_data` replaces the held-out split with a given validation manifest (never a test set). `split`
    restricts `train_data` to rows with that ``split`` value. With ``resume=False`` an existing state in
    `out_dir` is an error rather than a starting point. With `cache_images`, an `image_cache` shared between
    calls (several seeds of one set) decodes each image once per process.
    """
    t_start = time.perf_counter()
    cfg = config.validated()
    out_dir = Path(out_dir)
    frame = as_frame(train_data, split=split)
    if val_data is None:
        if cfg.val_fraction <= 0:
            raise TrainError("val_fraction is 0 and no val_data given: checkpoint selection needs a validation set")
        tr_frame, va_frame = split_validation(frame, cfg.val_fraction, cfg.seed)
    else:
        tr_frame = frame.assign(split="train")
        va_frame = as_frame(val_data).assign(split="val")
        overlap = set(tr_frame["path"]) & set(va_frame["path"])
        if overlap:
            raise TrainError(f"{len(overlap)} image(s) are in both training and validation, e.g. {min(overlap)!r}")
    if va_frame.empty:
        raise TrainError("the validation split is empty (too few images per class for val_fraction)")

    accelerator = _accelerator(cfg)
    is_main = accelerator.is_main_process
    if is_main:
        remove_stale_temporaries(out_dir)  # what a killed run left half-written
    seed_everything(cfg.seed, deterministic=cfg.deterministic)
    if cfg.deterministic:
        torch.backends.cudnn.deterministic = True

    model = create_model(cfg.model, num_classes=L.NUM_CLASSES, pretrained=cfg.pretrained, **cfg.model_kwargs)
    mcfg = model.cfg
    if tuple(L.canonical(c) for c in mcfg.labels) != L.CLASSES:
        raise TrainError(f"model {cfg.model} outputs classes {mcfg.labels}; training needs the canonical order "
                         f"{L.CLASSES}")
    mode = image_mode(mcfg)
    if cfg.batch_augment:  # images resized once at decode time, augmented per batch (data.BatchAugment)
        size = mcfg.input_size[1:]
        cache = (image_cache if image_cache is not None else True) if cfg.cache_images else False
        ds_train = ManifestDataset(tr_frame, None, mode=mode, cache=cache, size=size)
        ds_val = ManifestDataset(va_frame, None, mode=mode, cache=cache, size=size)
        collate_train = BatchCollate(BatchAugment(mcfg, train=cfg.augment, noise_std=cfg.noise_std,
                                                  erasing_p=cfg.erasing_p, affine=cfg.affine))
        collate_val = BatchCollate(BatchAugment(mcfg, train=False))
    else:
        tf_train = (train_transform(mcfg, noise_std=cfg.noise_std, erasing_p=cfg.erasing_p) if cfg.augment
                    else eval_transform(mcfg))
        cache = (image_cache if image_cache is not None else True) if cfg.cache_images else False
        ds_train = ManifestDataset(tr_frame, tf_train, mode=mode, cache=cache)
        ds_val = ManifestDataset(va_frame, eval_transform(mcfg), mode=mode, cache=cache)
        collate_train = collate_val = None
    if cfg.cache_images:
        ds_train.preload(cfg.progress and is_main)
        ds_val.preload(cfg.progress and is_main)
    train_loader = build_loader(ds_train, batch_size=cfg.batch_size, train=True, seed=cfg.seed,
                                balanced=cfg.balanced and cfg.balance_method == "sampler",
                                num_workers=cfg.num_workers, collate_fn=collate_train)
    val_loader = build_loader(ds_val, batch_size=cfg.eval_batch_size, train=False, num_workers=cfg.num_workers,
                              collate_fn=collate_val)
    sampler = epoch_sampler(train_loader)

    fingerprint = {"config": cfg.fingerprint(), "train": _frame_fingerprint(tr_frame, out_dir),
                   "val": _frame_fingerprint(va_frame, out_dir), "num_processes": accelerator.num_processes}
    state_path = out_dir / STATE_FILE
    start_epoch, start_step, global_step, history = 0, 0, 0, []
    best = {"epoch": -1, "score": -math.inf, "metrics": {}}
    run_sum, run_n = 0.0, 0
    resumed_from = None
    if state_path.exists():
        if not resume:
            raise TrainError(f"{state_path} exists and resume=False; remove {out_dir} to start over")
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        if state["fingerprint"] != fingerprint:
            raise TrainError(f"{state_path} was written by a different run (config/data fingerprint "
                             f"{state['fingerprint']} != {fingerprint}); use another out dir or delete it")
        model.load_state_dict(state["model"])
        start_epoch, start_step = int(state["epoch"]), int(state["step"])
        global_step = int(state["global_step"])
        history = json.loads(state["history"])
        best = json.loads(state["best"])
        run_sum, run_n = float(state["run_sum"]), int(state["run_n"])
        resumed_from = (start_epoch, start_step)

    channels_last = _use_channels_last(cfg, accelerator.device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model, train_loader, val_loader = accelerator.prepare(model, train_loader, val_loader)
    optimizer = build_optimizer([p for p in model.parameters() if p.requires_grad], cfg)
    scheduler = build_scheduler(optimizer, cfg)
    if resumed_from is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        del state

    def save_state(epoch: int, step: int) -> None:
        if is_main:
            save_torch(state_path, {
                "model": accelerator.unwrap_model(model).state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "epoch": epoch, "step": step, "global_step": global_step,
                "run_sum": run_sum,
                "run_n": run_n, "history": json.dumps(history), "best": json.dumps(best),
                "fingerprint": fingerprint})
        accelerator.wait_for_everyone()

    if is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_manifest(pd.concat([tr_frame, va_frame], ignore_index=True), out_dir / "split.csv")
        write_json(out_dir / "config.json", {"train": cfg.to_dict(), "model": mcfg.to_dict(),
                                             "train_images": len(tr_frame), "val_images": len(va_frame),
                                             "fingerprint": fingerprint})
    sam = isinstance(optimizer, SAM)
    # logit adjustment: the loss sees logits + log p(class) of the training split, so the logits themselves
    # (used at test time) estimate the class-balanced posterior; 0 when not balancing this way
    log_prior = torch.zeros(L.NUM_CLASSES, device=accelerator.device)
    if cfg.balanced and cfg.balance_method == "logit_adjust":
        counts = np.bincount(label_indices(tr_frame), minlength=L.NUM_CLASSES).astype(np.float64)
        log_prior = torch.tensor(np.log(np.maximum(counts, 1) / counts.sum()), dtype=torch.float32,
                                 device=accelerator.device)

    for epoch in range(start_epoch, cfg.epochs):
        step0 = start_step if epoch == start_epoch else 0
        if step0 == 0:
            run_sum, run_n = 0.0, 0
        sampler.set_position(epoch, start=step0 * cfg.batch_size * accelerator.num_processes)
        lr = optimizer.param_groups[0]["lr"]
        model.train()
        bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not (cfg.progress and is_main),
                   leave=False, mininterval=1.0, initial=step0,
                   total=step0 + len(train_loader))
        step = step0
        for x, y in bar:
            torch.manual_seed(derive_seed(cfg.seed, "step", epoch, step, accelerator.process_index))
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            loss = fer_loss(model(x).float() + log_prior, y, cfg.label_smoothing, cfg.smoothing_weight)
            # reduced before the step (every process sees the same value and stops together)
            batch_loss = float(accelerator.reduce(loss.detach(), reduction="mean"))
            check_finite(batch_loss, f"{out_dir}: epoch {epoch + 1} step {step + 1} (global step {global_step + 1}) "
                                     "training loss")
            accelerator.backward(loss)
            if sam:
                optimizer.first_step(zero_grad=True)
                accelerator.backward(fer_loss(model(x).float() + log_prior, y, cfg.label_smoothing,
                                              cfg.smoothing_weight))
                optimizer.second_step(zero_grad=True)
            else:
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            run_sum += batch_loss * len(y) * accelerator.num_processes
            run_n += len(y) * accelerator.num_processes
            step += 1
            global_step += 1
            bar.set_postfix(loss=f"{batch_loss:.3f}", refresh=False)
            if callback is not None:
                callback(StepEvent(epoch=epoch, step=step - 1, global_step=global_step,
                                   loss=batch_loss))
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                save_state(epoch, step)
        bar.close()
        if run_n == 0:
            raise TrainError(f"epoch {epoch}: no training batch (train images {len(tr_frame)}, "
                             f"batch_size {cfg.batch_size})")
        scheduler.step()
        val = _validate(model, val_loader, accelerator, cfg)
        row = {"epoch": epoch + 1, "train_loss": run_sum / run_n, **val, "lr": lr}
        history.append(row)
        score = selection_score(val["val_acc"], val["val_macro_f1"])
        if score > best["score"]:
            best = {"epoch": epoch + 1, "score": score, "metrics": val}
            if is_main:
                save_checkpoint(accelerator.unwrap_model(model), out_dir / "best", epoch=epoch + 1,
                                val_score=score, **{k: float(v) for k, v in val.items()},
                                train_config=cfg.to_dict())
        if is_main:
            _write_log(out_dir, history)
        run_sum, run_n = 0.0, 0
        save_state(epoch + 1, 0)

    if best["epoch"] < 0:
        raise TrainError(f"{state_path}: finished state has no best epoch (epochs={cfg.epochs})")
    best_model = load_checkpoint(out_dir / "best").eval()
    if is_main:
        write_json(out_dir / "summary.json", {"best_epoch": best["epoch"], "best_val_score": best["score"],
                                              **{f"best_{k}": v for k, v in best["metrics"].items()},
                                              "epochs": cfg.epochs, "train_images": len(tr_frame),
                                              "val_images": len(va_frame), "optimizer_steps": global_step})
    return TrainResult(model=best_model, out_dir=out_dir, best_epoch=int(best["epoch"]),
                       best_score=float(best["score"]), best_metrics=dict(best["metrics"]),
                       history=pd.DataFrame(history, columns=list(LOG_COLUMNS)), config=cfg,
                       resumed_from=resumed_from, seconds=time.perf_counter() - t_start)


def steps_per_epoch(n_train: int, batch_size: int, num_processes: int = 1) -> int:
    """Optimizer steps of one epoch over `n_train` images (the loader drops a last partial batch once there is a
    full one: `syntfer.engine.data.build_loader`)."""
    per_step = batch_size * num_processes
    return max(n_train // per_step, 1) if n_train >= per_step else 1


def step_matched_epochs(train_frame: pd.DataFrame, source: str, epochs: int, batch_size: int, val_fraction: float,
                        seed: int, *, own_validation: bool = False) -> tuple[int, int]:
    """(epochs, target steps) that give a set mixing `source` with other sources (a hybrid) as many optimizer
    steps as the rows of `source`, trained as a set of their own, get in `epochs` epochs: the same compute, so
    a gain is the data's. The source alone loses its seeded stratified validation part (`split_validation`), as
    its own training run does; the mixed set loses one too unless it ships its own validation split
    (`own_validation`: `train_frame` is then its training rows only). Epochs are rounded to the nearest whole
    epoch (at least 1), so the steps differ by under half an epoch of the mixed set."""
    if "source" not in train_frame.columns or source not in set(train_frame["source"].astype(str)):
        have = sorted(set(train_frame["source"].astype(str))) if "source" in train_frame.columns else []
        raise TrainError(f"step matching: no rows of source {source!r} in the training set (sources: {have})")
    own = train_frame[train_frame["source"].astype(str) == source].reset_index(drop=True)
    target = epochs * steps_per_epoch(len(split_validation(own, val_fraction, seed)[0]), batch_size)
    n_mixed = len(train_frame) if own_validation else len(split_validation(train_frame, val_fraction, seed)[0])
    return max(int(round(target / steps_per_epoch(n_mixed, batch_size))), 1), target


def read_result(out_dir: str | os.PathLike, config: TrainConfig,
                resumed_from: tuple[int, int] | None = None) -> TrainResult:
    """The `TrainResult` of a finished run, read from its folder (``summary.json``, ``log.csv``, ``best/``)."""
    out_dir = Path(out_dir)
    summary_file = out_dir / "summary.json"
    if not summary_file.is_file():
        raise TrainError(f"{summary_file} not found: the run in {out_dir} did not finish")
    summary = json.loads(summary_file.read_text())
    return TrainResult(model=load_checkpoint(out_dir / "best").eval(), out_dir=out_dir,
                       best_epoch=int(summary["best_epoch"]), best_score=float(summary["best_val_score"]),
                       best_metrics={k: float(summary[f"best_{k}"]) for k in VAL_METRICS},
                       history=pd.read_csv(out_dir / "log.csv")[list(LOG_COLUMNS)], config=config,
                       resumed_from=resumed_from)


def train_launched(config: TrainConfig, train_data: pd.DataFrame | str | os.PathLike, out_dir: str | os.PathLike,
                   *, launcher: str, val_data: pd.DataFrame | str | os.PathLike | None = None,
                   echo: bool = True) -> TrainResult:
    """`train` in the processes `launcher` starts, e.g. ``accelerate launch --multi_gpu --num_processes 4``.

    Writes the config and the manifests to ``<out_dir>/launch/`` and runs ``<launcher> -m syntfer train --config``
    on them, which writes (and resumes) `out_dir` as `train` does; returns the same `TrainResult`, read back from
    `out_dir`. Numbers differ from one process: see docs/real-data.md.
    """
    cfg = config.validated()
    out_dir = Path(out_dir)
    launch_dir = out_dir / "launch"
    resumed_from = None
    if (out_dir / STATE_FILE).exists():
        state = torch.load(out_dir / STATE_FILE, map_location="cpu", weights_only=True)
        resumed_from = (int(state["epoch"]), int(state["step"]))
    write_manifest(as_frame(train_data), launch_dir / "train.csv")
    write_json(launch_dir / "config.json", cfg.to_dict())
    argv = ["train", "--config", str(launch_dir / "config.json"), "--train", str(launch_dir / "train.csv"),
            "--out", str(out_dir)]
    if val_data is not None:
        write_manifest(as_frame(val_data), launch_dir / "val.csv")
        argv += ["--val", str(launch_dir / "val.csv")]
    run_launched(launcher, argv, echo=echo)
    return read_result(out_dir, cfg, resumed_from)


# --------------------------------------------------------------------------- CLI: syntfer train
def add_arguments(parser: argparse.ArgumentParser) -> None:
    p = parser
    p.add_argument("--train", required=True, help="training manifest CSV (path,label[,split])")
    p.add_argument("--split", default=None, help="use only rows with this split value of --train")
    p.add_argument("--val", default=None, help="validation manifest (default: a held-out split of --train)")
    p.add_argument("--out", required=True, help="output folder (resumes when it holds state.pt)")
    p.add_argument("--config", default=None, help="JSON of every TrainConfig field (TrainConfig.to_dict()), or a "
                   "run's config.json (its 'train' entry is used); the options below override it")
    p.add_argument("--recipe", default=None, choices=sorted(RECIPES), help="preset without --config (default: fast)")
    p.add_argument("--model", default=None, help="registered model name (default: the recipe's)")
    p.add_argument("--model-kwargs", default=None, help="JSON object of the model's builder options, flat "
                   "('{\"img_size\": 112}') or per model as params.yaml's train.model_kwargs")
    p.add_argument("--pretrained", default=None, help="weight file for the model builder")
    for name, typ in (("epochs", int), ("batch-size", int), ("lr", float), ("weight-decay", float), ("rho", float),
                      ("gamma", float), ("label-smoothing", float), ("smoothing-weight", float),
                      ("val-fraction", float), ("seed", int), ("num-workers", int), ("eval-batch-size", int),
                      ("checkpoint-every", int), ("noise-std", float), ("erasing-p", float), ("affine", float)):
        p.add_argument(f"--{name}", type=typ, default=None)
    p.add_argument("--optimizer", default=None, choices=("adam", "adamw", "sam_adam", "sam_adamw"))
    p.add_argument("--scheduler", default=None, choices=("exponential", "cosine", "constant"))
    p.add_argument("--mixed-precision", default=None, choices=("auto", "no", "bf16"))
    p.add_argument("--channels-last", default=None, choices=("auto", "yes", "no"))
    p.add_argument("--balanced", action="store_true", default=None, help="train for balanced error (--balance-method)")
    p.add_argument("--balance-method", default=None, choices=("sampler", "logit_adjust"))
    p.add_argument("--no-augment", dest="augment", action="store_false", default=None)
    p.add_argument("--cache-images", action="store_true", default=None, help="keep decoded images in memory")
    p.add_argument("--batch-augment", dest="batch_augment", action=argparse.BooleanOptionalAction, default=None,
                   help="augment whole batches at the model's size (default: the recipe's; fast = on)")
    p.add_argument("--deterministic", action="store_true", default=None)
    p.add_argument("--cpu", action="store_true", default=None)
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None)


def run(args: argparse.Namespace) -> int:
    from accelerate import PartialState  # lazy: importing accelerate takes over a second

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    overrides = {k: v for k, v in vars(args).items() if k in fields and k not in ("recipe", "model_kwargs")}
    if args.model_kwargs:  # flat (this model's options) or per model; read once the model is known, below
        overrides["model_kwargs"] = {}
    if args.config:
        base = json.loads(Path(args.config).read_text())
        if isinstance(base.get("train"), dict):  # a run's config.json: {"train": TrainConfig, "model": ..., ...}
            base = base["train"]
        unknown = sorted(set(base) - fields)
        if unknown:
            raise TrainError(f"{args.config}: unknown TrainConfig field(s) {unknown}")
        if args.recipe is not None and args.recipe != base.get("recipe"):
            raise TrainError(f"--recipe {args.recipe} contradicts {args.config}'s recipe {base.get('recipe')!r}")
        cfg = dataclasses.replace(TrainConfig(**base), **{k: v for k, v in overrides.items() if v is not None})
        cfg = cfg.validated()
    else:
        cfg = TrainConfig.from_recipe(args.recipe or "fast", **overrides)
    if args.model_kwargs:
        cfg = dataclasses.replace(cfg, model_kwargs=model_options(cfg.model, args.model_kwargs, "--model-kwargs"))
        cfg = cfg.validated()
    result = train(cfg, args.train, args.out, val_data=args.val, split=args.split)
    if not PartialState().is_main_process:  # under a launcher: one report, from the process that wrote the files
        return 0
    print(f"best epoch {result.best_epoch}/{cfg.epochs}: val score {result.best_score:.4f} "
          + " ".join(f"{k}={v:.4f}" for k, v in result.best_metrics.items()) + f" -> {result.out_dir / 'best'} "
          f"({result.seconds:.1f} s)")
    return 0
