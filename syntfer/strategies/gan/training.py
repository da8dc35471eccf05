"""Training a GANmut-style editor: WGAN-GP, n_critic critic steps per generator step, the discriminator's
expression-classification head (task-aware), GANmut's code-regression ('info') head, and cycle reconstruction.

Long runs are resumable: `train_editor` writes ``state.pt`` (G, D, optimisers, step, RNG states) and the
log CSV atomically every `ckpt_every` steps and at a wall-clock cap, and picks up from them when rerun.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from syntfer.core import labels as L
from syntfer.strategies.gan.controls import GANMUT_ORDER
from syntfer.strategies.gan.networks import Discriminator, EditorConfig, Generator, save_generator
from syntfer.core.images import load_image, split_box
from syntfer.instruments.judge import Judge
from syntfer.core.guards import check_finite
from syntfer.core.storage import atomic_path, load_torch, remove_stale_temporaries, save_image, save_torch, write_json

BOX_COLUMNS = ("face_x", "face_y", "face_width", "face_height")
# canonical index -> GANmut code index, and back
CANON_TO_CODE = torch.tensor([GANMUT_ORDER.index(c) for c in L.CLASSES])
CODE_TO_CANON = torch.tensor([L.CLASSES.index(c) for c in GANMUT_ORDER])


@dataclasses.dataclass
class TrainConfig:
    """Optimisation knobs (GANmut/StarGAN defaults where they fit a CPU budget)."""

    steps: int = 3000  # critic steps; the generator steps every n_critic of them
    batch_size: int = 16
    n_critic: int = 5
    g_lr: float = 1e-4
    d_lr: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lambda_gp: float = 10.0
    lambda_cls: float = 1.0
    lambda_rec: float = 10.0
    lambda_info: float = 1.0
    lambda_strength: float = 1.0
    rho_range: tuple[float, float] = (0.2, 1.0)  # linear training intensities (GANmut: [0.2, 1])
    n_random: int = 2  # linear: first n samples get a random direction (GANmut's n_r), no class loss
    d_warmup_steps: int = 200  # classification-only critic steps before the GAN game (task-aware head first)
    warmup_lr_scale: float = 5.0
    flip: bool = True
    balanced: bool = True  # sample real images class-uniformly (AffectNet-like sets are very imbalanced)
    seed: int = 0
    threads: int = 1
    max_minutes: float = 0.0  # wall-clock cap per call (0 = none); the run is resumable
    log_every: int = 25
    ckpt_every: int = 250
    # An optional *frozen* expression classifier (a syntfer checkpoint folder) whose cross-entropy on the
    # fakes against the target joins the generator loss: a task-aware signal that, unlike the critic's own
    # head, does not co-adapt with the generator. Off by default (GANmut has only the critic's head).
    aux_classifier: str = ""
    lambda_aux: float = 0.0
    aux_lowpass: bool = True  # the aux classifier sees 2x2-average-pooled fakes: pixel-period stripes carry no signal
    # total variation of the edit (fake - real): expression changes are smooth shapes, adversarial patterns are not
    lambda_tv: float = 0.0
    lambda_flow_tv: float = 0.0  # flow editors: total variation of the displacement grid (smooth deformations)
    lambda_fold: float = 0.0  # flow editors: penalty where the warp's Jacobian determinant drops below fold_margin
    fold_margin: float = 0.3  # (1 = area kept, 0 = a fold: the face melts)
    # linear control: the aux loss asks for the intensity ρ, not the full class: its target is ρ·one-hot(target)
    # + (1 − ρ)·(the aux classifier's reading of the source), so an edit at ρ 0.25 reads mostly as its source
    # and fidelity rises with ρ (neutral targets: full strength). Off: plain cross-entropy at every ρ.
    aux_intensity: bool = False
    # start G and D from another editor folder's ``state.pt`` (same EditorConfig; optimisers and step start
    # afresh, the critic's warm-up is skipped): fine-tuning a trained editor with different losses
    init_from: str = ""
    # appearance editors (EditorConfig.appearance): penalties on the masked residual r (in [-1, 1] units, means over
    # the whole crop): L1 (area: a sparse change), L2 (energy) and total variation (no texture, no stripes)
    lambda_app_l1: float = 0.0
    lambda_app_l2: float = 0.0
    lambda_app_tv: float = 0.0
    # appearance editors: train the residual head only (the warp, its trunk and the control axes stay as loaded,
    # e.g. from init_from), so the warp alone is the loaded editor's exactly
    freeze_warp: bool = False
    # identity mapping: a real face edited toward its own expression (the cycle's source code: its class at the
    # critic's confidence; a neutral face: the origin) should come back unchanged — mean |G(x, c_src) − x|. Without
    # it nothing ties the code-0 edit of a neutral face to the identity map, and (measured, issue #30) the committed
    # editor's neutral edits squint and bend the brows of faces that were neutral already; with 'interpolate'
    # intensity that code-0 warp is under every class's edit
    lambda_id: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        d = dict(d)
        if "rho_range" in d:
            d["rho_range"] = tuple(d["rho_range"])
        return cls(**d)


def square_box(x: float, y: float, w: float, h: float, scale: float = 1.0) -> tuple[int, int, int, int]:
    """A square box (x, y, side, side) centred on (x, y, w, h), side = scale·max(w, h), integer pixels."""
    side = int(round(max(w, h) * scale))
    cx, cy = x + w / 2.0, y + h / 2.0
    return int(round(cx - side / 2.0)), int(round(cy - side / 2.0)), side, side


def face_frame(box: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """The editor's framing of a face box: the square around it (`square_box`), used in training and editing."""
    return square_box(*(float(v) for v in box))


def crop_square(arr: np.ndarray, box: Sequence[float], size: int) -> np.ndarray:
    """The square framing of `box` resized to size×size; parts outside the image are edge-replicated."""
    bx, by, s, _ = face_frame(box, arr.shape[1], arr.shape[0])
    pad = max(0, -bx, -by, bx + s - arr.shape[1], by + s - arr.shape[0])
    if pad:
        arr = np.pad(arr, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    crop = np.ascontiguousarray(arr[by + pad:by + pad + s, bx + pad:bx + pad + s])
    return np.asarray(Image.fromarray(crop).resize((size, size), Image.Resampling.BILINEAR))


def load_crops(frame: pd.DataFrame, size: int, box_columns: Sequence[str] = BOX_COLUMNS,
               desc: str = "crops") -> torch.Tensor:
    """Face crops (N, 3, size, size) uint8 from a manifest frame.

    The face box comes from box columns, or from a ``#box=x,y,w,h`` path (the readers' AffectNet paths);
    either way the square framing of the box is cropped. Without a box the whole image is used.
    """
    has_cols = all(c in frame.columns for c in box_columns)
    out = torch.empty((len(frame), 3, size, size), dtype=torch.uint8)
    for i, row in enumerate(tqdm(frame.itertuples(index=False), total=len(frame), desc=desc, leave=False,
                                 mininterval=2.0)):
        spec = split_box(str(row.path))
        file, box = (spec if spec is not None else (str(row.path), None))
        if has_cols:
            vals = [getattr(row, c) for c in box_columns]
            try:
                box = tuple(float(v) for v in vals)
            except (TypeError, ValueError) as e:
                raise ValueError(f"{row.path}: face box {vals} is not numeric ({list(box_columns)})") from e
            if box[2] <= 0 or box[3] <= 0:
                raise ValueError(f"{row.path}: face box {vals} has non-positive size")
        arr = np.asarray(load_image(file, "RGB"))
        if box is None:
            crop = np.asarray(Image.fromarray(arr).resize((size, size), Image.Resampling.BILINEAR))
        else:
            crop = crop_square(arr, box, size)
        out[i] = torch.from_numpy(crop.copy()).permute(2, 0, 1)
    return out


def gradient_penalty(d_out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """WGAN-GP: mean over the batch of (‖∂D/∂x‖₂ − 1)²."""
    g = torch.autograd.grad(d_out, x, torch.ones_like(d_out), create_graph=True, retain_graph=True)[0]
    return ((g.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def flow_regularisers(flow: torch.Tensor, margin: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    """(total variation, fold penalty) of a (B, 2, g, g) displacement grid in `grid_sample` units: the mean
    absolute difference of neighbouring displacements, and the mean of relu(margin − det J) over the grid's
    cells, J the Jacobian of p ↦ p + flow(p) by finite differences (det J ≤ 0 where the warp folds over)."""
    g = flow.shape[-1]
    dx = flow[..., :, 1:] - flow[..., :, :-1]  # change along x (B, 2, g, g-1)
    dy = flow[..., 1:, :] - flow[..., :-1, :]  # change along y (B, 2, g-1, g)
    tv = dx.abs().mean() + dy.abs().mean()
    step = 2.0 / (g - 1)  # grid spacing in the same units (the upsampling aligns the grid's corners)
    jx, jy = dx[..., :-1, :] / step, dy[..., :, :-1] / step  # (B, 2, g-1, g-1)
    det = (1 + jx[:, 0]) * (1 + jy[:, 1]) - jy[:, 0] * jx[:, 1]
    return tv, F.relu(margin - det).mean()


def intensity_target(target: torch.Tensor, rho: torch.Tensor, p_source: torch.Tensor) -> torch.Tensor:
    """What an edit at intensity ρ should read as (`TrainConfig.aux_intensity`): ρ·one-hot(target) + (1 − ρ)·p_source
    per row, ρ clipped to [0, 1]; a neutral target is asked for in full (neutral sits at the control's origin, so
    its ρ says nothing about strength). `target`: canonical class indices (B,); `p_source`: (B, 7) probabilities."""
    w = rho.clamp(0, 1)
    w = torch.where(target == L.CLASS_TO_INDEX["neutral"], torch.ones_like(w), w)[:, None]
    return w * F.one_hot(target, L.NUM_CLASSES).to(p_source.dtype) + (1 - w) * p_source


@dataclasses.dataclass
class TrainResult:
    step: int
    log: pd.DataFrame
    seconds: float
    finished: bool


class EditorTrainer:
    """Holds G, D, optimisers and RNGs; `step()` runs one critic step (and a generator step every n_critic)."""

    def __init__(self, cfg: EditorConfig, tcfg: TrainConfig, crops: torch.Tensor, labels: torch.Tensor) -> None:
        if crops.ndim >= 1 and crops.shape[0] == 0:
            raise ValueError("the editor's training set is empty (0 face crops); expected labeled images with "
                             "face boxes (check --data, --split and --per-class-cap)")
        if crops.dtype != torch.uint8 or crops.ndim != 4 or crops.shape[1:] != (3, cfg.image_size, cfg.image_size):
            raise ValueError(f"crops must be uint8 (N, 3, {cfg.image_size}, {cfg.image_size}); got "
                             f"{crops.dtype} {tuple(crops.shape)}")
        if labels.shape != (crops.shape[0],) or int(labels.min()) < 0 or int(labels.max()) >= L.NUM_CLASSES:
            raise ValueError(f"labels must be canonical indices 0..6, one per crop; got shape {tuple(labels.shape)}")
        self.cfg, self.tcfg = cfg, tcfg
        self.crops, self.codes = crops, CANON_TO_CODE[labels.long()]  # labels in GANmut code order
        counts = torch.bincount(labels.long(), minlength=L.NUM_CLASSES).float()
        self.weights = (1.0 / counts.clamp(min=1))[labels.long()] if tcfg.balanced else torch.ones(len(labels))
        torch.manual_seed(tcfg.seed)
        self.G, self.D = Generator(cfg), Discriminator(cfg)
        g_params = list(self.G.parameters())
        if tcfg.freeze_warp:
            if cfg.appearance == "none":
                raise ValueError("freeze_warp trains the appearance residual only; this editor has none "
                                 "(EditorConfig.appearance='none')")
            head = {id(p) for p in self.G.appearance_head.parameters()}
            for p in g_params:
                p.requires_grad_(id(p) in head)
            g_params = list(self.G.appearance_head.parameters())
        self.opt_g = torch.optim.Adam(g_params, tcfg.g_lr, (tcfg.beta1, tcfg.beta2))
        self.opt_d = torch.optim.Adam(self.D.parameters(), tcfg.d_lr, (tcfg.beta1, tcfg.beta2))
        self.gen = torch.Generator().manual_seed(tcfg.seed)
        self.step_no = 0
        self.rows: list[dict[str, float]] = []
        self.aux = load_aux_classifier(tcfg.aux_classifier) if tcfg.aux_classifier and tcfg.lambda_aux else None
        if tcfg.aux_intensity and (self.aux is None or cfg.control != "linear"):
            raise ValueError("aux_intensity needs an aux classifier (aux_classifier, lambda_aux > 0) and the "
                             f"linear control; got aux_classifier={tcfg.aux_classifier!r}, control={cfg.control!r}")
        if tcfg.init_from:
            file = Path(tcfg.init_from) / "state.pt"
            if not file.is_file():
                raise FileNotFoundError(f"{file}: init_from needs an editor folder with a resume state")
            init = load_torch(file, "init_from state")
            init_cfg = EditorConfig.from_dict(init["config"])
            if cfg.appearance != "none" and init_cfg.appearance == "none":
                # a warp editor fine-tuned with an appearance residual: everything but the new head loads
                if init_cfg.to_dict() != cfg.without_appearance().to_dict():
                    raise ValueError(f"{file} (init_from): editor {init['config']} differs from this run's "
                                     f"{cfg.without_appearance().to_dict()} (besides the appearance residual)")
                missing, unexpected = self.G.load_state_dict(init["G"], strict=False)
                if unexpected or any(not k.startswith("appearance_head.") for k in missing):
                    raise ValueError(f"{file} (init_from): generator keys do not fit: missing {missing}, "
                                     f"unexpected {unexpected}")
            else:
                self._check_editor(init["config"], f"{file} (init_from)")
                self.G.load_state_dict(init["G"])
            self.D.load_state_dict(init["D"])

    # ---- state --------------------------------------------------------------------------------
    def _check_editor(self, saved: dict[str, Any], what: str) -> None:
        """A saved editor config must be this run's (older states lack newer defaults: compared after from_dict)."""
        if EditorConfig.from_dict(saved).to_dict() != self.cfg.to_dict():
            raise ValueError(f"{what}: editor {saved} differs from this run's {self.cfg.to_dict()}")

    def state_dict(self) -> dict[str, Any]:
        return {"G": self.G.state_dict(), "D": self.D.state_dict(), "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict(), "step": self.step_no, "rng": self.gen.get_state(),
                "config": self.cfg.to_dict(), "train_config": self.tcfg.to_dict()}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self._check_editor(s["config"], "resume state")
        self.G.load_state_dict(s["G"])
        self.D.load_state_dict(s["D"])
        self.opt_g.load_state_dict(s["opt_g"])
        self.opt_d.load_state_dict(s["opt_d"])
        self.step_no = int(s["step"])
        self.gen.set_state(s["rng"])

    # ---- one step -----------------------------------------------------------------------------
    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.multinomial(self.weights, self.tcfg.batch_size, replacement=True, generator=self.gen)
        x = self.crops[idx].float() / 127.5 - 1
        if self.tcfg.flip:
            flip = torch.rand(idx.shape[0], generator=self.gen) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return x, self.codes[idx]

    def _targets(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Target code-order labels, codes (B, 2) and a mask of samples that carry a class target."""
        t = self.tcfg
        trg = torch.randint(0, self.cfg.c_dim, (n,), generator=self.gen)
        has_cls = torch.ones(n, dtype=torch.bool)
        if self.cfg.control == "linear":
            lo, hi = t.rho_range
            rho = lo + (hi - lo) * torch.rand(n, generator=self.gen)
            rho = torch.where(trg == 0, lo * torch.rand(n, generator=self.gen), rho)  # neutral near the origin
            code = self.G.class_code(trg, rho) + 0.075 * torch.randn(n, 2, generator=self.gen) * (trg != 0)[:, None]
            k = min(t.n_random, n)
            if k:
                ang = torch.rand(k, generator=self.gen) * 2 * math.pi
                code = torch.cat([torch.stack([ang.cos(), ang.sin()], 1) * rho[:k, None], code[k:]])
                has_cls[:k] = False
        else:
            centred = torch.rand(n, generator=self.gen) < 0.5
            noise = 0.05 * torch.randn(n, 2, generator=self.gen)
            uniform = torch.rand(n, 2, generator=self.gen) * 2 - 1
            code = torch.where(centred[:, None], self.G.class_code(trg) + noise, uniform).clamp(-1, 1)
            has_cls = centred
        return trg, code, has_cls

    def _aux_view(self, x: torch.Tensor) -> torch.Tensor:
        """What the aux classifier is shown: `x`, 2×2 low-passed when `TrainConfig.aux_lowpass`."""
        if not self.tcfg.aux_lowpass:
            return x
        return F.interpolate(F.avg_pool2d(x, 2), size=x.shape[-2:], mode="bilinear", align_corners=False)

    def _source_code(self, x_real: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
        """Code of the real image's own expression for the cycle (linear: D's confidence as intensity)."""
        if self.cfg.control == "linear":
            with torch.no_grad():
                conf = F.softmax(self.D(x_real)[1], 1).max(1).values
            return self.G.class_code(src, conf)
        return self.G.class_code(src)

    def step(self) -> dict[str, float]:
        t, G, D = self.tcfg, self.G, self.D
        x_real, src = self._batch()
        row: dict[str, float] = {}
        if self.step_no < t.d_warmup_steps and not t.init_from:  # teach the task-aware head first (at warmup_lr_scale × d_lr)
            for group in self.opt_d.param_groups:
                group["lr"] = t.d_lr * (t.warmup_lr_scale if self.step_no + 1 < t.d_warmup_steps else 1.0)
            _, cls, _ = D(x_real)
            loss = F.cross_entropy(cls, src)
            check_finite(loss, f"editor step {self.step_no + 1}: critic warm-up loss")
            self.opt_d.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_d.step()
            row.update({"d_cls": loss.item(), "d_acc_real": (cls.argmax(1) == src).float().mean().item()})
            self.step_no += 1
            return row
        trg, code, has_cls = self._targets(x_real.shape[0])
        # critic
        with torch.no_grad():
            x_fake = G(x_real, code.detach())
        src_out, cls_real, _ = D(x_real)
        fake_out, _, code_hat = D(x_fake)
        alpha = torch.rand(x_real.shape[0], 1, 1, 1, generator=self.gen)
        x_hat = (alpha * x_real + (1 - alpha) * x_fake).requires_grad_(True)
        gp = gradient_penalty(D(x_hat)[0], x_hat)
        d_cls = F.cross_entropy(cls_real, src)
        d_info = F.mse_loss(code_hat, code.detach())
        d_loss = -src_out.mean() + fake_out.mean() + t.lambda_gp * gp + t.lambda_cls * d_cls + t.lambda_info * d_info
        check_finite(d_loss, f"editor step {self.step_no + 1}: critic loss")
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        row.update({"d_wdist": (src_out.mean() - fake_out.mean()).item(), "d_gp": gp.item(), "d_cls": d_cls.item(),
                    "d_info": d_info.item(), "d_acc_real": (cls_real.argmax(1) == src).float().mean().item()})
        # generator
        if (self.step_no + 1) % t.n_critic == 0:
            trg, code, has_cls = self._targets(x_real.shape[0])  # fresh codes: G parameters (axes/mu) get gradients
            res = None
            if G.appearance_active:
                flow, res = G.edit_parts(x_real, code)
                x_fake = (G.warp(x_real, flow) + res).clamp(-1, 1)
            else:
                flow = G.flow(x_real, code) if self.cfg.flow_grid else None
                x_fake = G.warp(x_real, flow) if flow is not None else G(x_real, code)
            adv, cls_fake, code_hat = D(x_fake)
            if self.cfg.control == "linear":
                g_cls = F.cross_entropy(cls_fake[has_cls], trg[has_cls]) if has_cls.any() else cls_fake.sum() * 0
                conf = F.softmax(cls_fake, 1).max(1).values
                rho = code.norm(dim=1).detach()
                keep = has_cls & (trg != 0)
                g_strength = F.mse_loss(conf[keep], rho[keep].clamp(max=1)) if keep.any() else conf.sum() * 0
            else:
                p_trg = F.softmax(-G.mahalanobis(code), 1)
                logp_fake = F.log_softmax(cls_fake, 1)
                g_cls = (F.kl_div(logp_fake, p_trg, reduction="batchmean")
                         + F.kl_div(torch.log(p_trg + 1e-8), logp_fake.exp(), reduction="batchmean"))
                centres_idx = torch.arange(self.cfg.c_dim)
                g_strength = F.cross_entropy(D(G(x_real[: self.cfg.c_dim], G.class_code(centres_idx[: x_real.shape[0]])))[1],
                                             centres_idx[: x_real.shape[0]])  # GANmut's prediction loss
            g_info = F.mse_loss(code_hat, code)
            own = self._source_code(x_real, src)
            x_rec = G(x_fake, own)
            g_rec = (x_real - x_rec).abs().mean()
            g_loss = (-adv.mean() + t.lambda_cls * g_cls + t.lambda_rec * g_rec + t.lambda_info * g_info
                      + t.lambda_strength * g_strength)
            if t.lambda_id:
                g_id = (G(x_real, own) - x_real).abs().mean()
                g_loss = g_loss + t.lambda_id * g_id
                row["g_id"] = g_id.item()
            if t.lambda_tv:
                delta = x_fake - x_real
                g_tv = ((delta[..., 1:, :] - delta[..., :-1, :]).abs().mean()
                        + (delta[..., :, 1:] - delta[..., :, :-1]).abs().mean())
                g_loss = g_loss + t.lambda_tv * g_tv
                row["g_tv"] = g_tv.item()
            if flow is not None:
                g_flow_tv, g_fold = flow_regularisers(flow, t.fold_margin)
                g_loss = g_loss + t.lambda_flow_tv * g_flow_tv + t.lambda_fold * g_fold
                row.update({"g_flow_tv": g_flow_tv.item(), "g_fold": g_fold.item(),
                            "g_flow": flow.abs().mean().item()})
            if res is not None:
                g_app_l1, g_app_l2 = res.abs().mean(), res.pow(2).mean()
                g_app_tv = ((res[..., 1:, :] - res[..., :-1, :]).abs().mean()
                            + (res[..., :, 1:] - res[..., :, :-1]).abs().mean())
                g_loss = g_loss + t.lambda_app_l1 * g_app_l1 + t.lambda_app_l2 * g_app_l2 + t.lambda_app_tv * g_app_tv
                with torch.no_grad():
                    big = res.abs().amax(1)  # (B, S, S): the largest channel change per pixel
                    row.update({"g_app_l1": g_app_l1.item(), "g_app_l2": g_app_l2.item(), "g_app_tv": g_app_tv.item(),
                                "g_app_max": big.max().item(),
                                # share of the crop where the residual changes a channel by more than 0.05
                                "g_app_area": (big > 0.05).float().mean().item(),
                                "g_app_outside": big[:, G.app_mask[0, 0] <= 0].max().item()})
            if self.aux is not None and has_cls.any():
                aux_logits = self.aux(self._aux_view(x_fake[has_cls]))
                aux_trg = CODE_TO_CANON[trg[has_cls]]
                if t.aux_intensity:
                    with torch.no_grad():
                        p_src = F.softmax(self.aux(self._aux_view(x_real[has_cls])), 1)
                    g_aux = F.cross_entropy(aux_logits, intensity_target(aux_trg, code[has_cls].norm(dim=1), p_src))
                else:
                    g_aux = F.cross_entropy(aux_logits, aux_trg)
                g_loss = g_loss + t.lambda_aux * g_aux
                row.update({"g_aux": g_aux.item(),
                            "aux_acc_fake_trg": (aux_logits.argmax(1) == aux_trg).float().mean().item()})
            check_finite(g_loss, f"editor step {self.step_no + 1}: generator loss")
            self.opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            self.opt_g.step()
            acc = (cls_fake.argmax(1)[has_cls] == trg[has_cls]).float().mean().item() if has_cls.any() else float("nan")
            row.update({"g_adv": -adv.mean().item(), "g_cls": g_cls.item(), "g_rec": g_rec.item(),
                        "g_info": g_info.item(), "g_strength": g_strength.item(), "d_acc_fake_trg": acc,
                        "g_change": (x_fake - x_real).abs().mean().item()})
        self.step_no += 1
        return row

    @torch.no_grad()
    def preview(self, n: int = 6) -> Image.Image:
        """A grid: rows = the first n training crops, columns = source + the 7 class codes (canonical order)."""
        x = self.crops[:n].float() / 127.5 - 1
        cols = [x]
        for c in L.CLASSES:
            idx = torch.full((n,), GANMUT_ORDER.index(c))
            cols.append(self.G(x, self.G.class_code(idx, 1.0)))
        grid = torch.cat([torch.cat(list(col), 1) for col in cols], 2)  # (3, n*S, 8*S)
        arr = ((grid + 1) * 127.5).clamp(0, 255).byte().permute(1, 2, 0).numpy()
        return Image.fromarray(arr)


def load_aux_classifier(folder: str | os.PathLike) -> torch.nn.Module:
    """The frozen auxiliary classifier of `TrainConfig.aux_classifier` (a syntfer checkpoint folder) as a
    differentiable module on the editor's [-1, 1] crops (`syntfer.instruments.judge.Judge.loss_module`: the classifier's own
    resize and normalisation, canonical class order). It must not be the judge that measures the editor."""
    if not Path(folder).is_dir():
        raise FileNotFoundError(f"aux_classifier {folder}: not a checkpoint folder (syntfer.engine.models.checkpoint)")
    return Judge.load(folder).loss_module()


def train_editor(crops: torch.Tensor, labels: torch.Tensor, out: str | os.PathLike, cfg: EditorConfig,
                 tcfg: TrainConfig, progress: bool = True) -> TrainResult:
    """Train (or resume) an editor in folder `out`.

    Writes ``state.pt`` (full resumable state), ``log.csv`` (one row per `log_every` steps, averaged),
    ``preview.png`` and the generator (``generator.pt`` + ``editor.json``) at each checkpoint.
    Stops at `tcfg.steps` or after `tcfg.max_minutes` (then rerun to continue).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)  # what a killed run left half-written
    torch.set_num_threads(max(1, tcfg.threads))
    trainer = EditorTrainer(cfg, tcfg, crops, labels)
    state_file, log_file = out / "state.pt", out / "log.csv"
    acc: dict[str, list[float]] = {}  # per-step values since the last log row
    if state_file.exists():
        state = load_torch(state_file, "resume state")
        trainer.load_state_dict(state)
        acc = {k: list(v) for k, v in state.get("pending_log", {}).items()}
        if log_file.exists():
            prev = pd.read_csv(log_file)
            trainer.rows = prev[prev["step"] <= trainer.step_no].to_dict("records")
    write_json(out / "train_config.json", {"config": cfg.to_dict(), "train_config": tcfg.to_dict(),
                                           "n_train": int(crops.shape[0]),
                                           "class_counts": np.bincount(labels.numpy(), minlength=7).tolist()})
    start, elapsed_before = time.time(), (trainer.rows[-1]["seconds"] if trainer.rows else 0.0)

    def checkpoint() -> None:
        # the log before the state: a kill between the two leaves a log ahead of the state, whose extra rows a
        # resume drops (rows after its step); the other order lost the rows logged since the previous checkpoint
        frame = pd.DataFrame(trainer.rows)
        with atomic_path(log_file) as tmp:
            frame.to_csv(tmp, index=False)
        # with the steps since the last log row: a resumed run's next row averages the same steps
        save_torch(state_file, {**trainer.state_dict(), "pending_log": acc})
        save_generator(out, trainer.G, {"step": trainer.step_no})
        save_image(out / "preview.png", trainer.preview())

    bar = tqdm(total=tcfg.steps, initial=trainer.step_no, desc="editor", disable=not progress)
    finished = True
    while trainer.step_no < tcfg.steps:
        for k, v in trainer.step().items():
            acc.setdefault(k, []).append(v)
        bar.update(1)
        if trainer.step_no % tcfg.log_every == 0:
            row = {"step": trainer.step_no, "seconds": elapsed_before + time.time() - start}
            row.update({k: float(np.nanmean(v)) for k, v in acc.items()})
            trainer.rows.append(row)
            acc = {}
            bar.set_postfix({k: round(row[k], 3) for k in ("d_acc_fake_trg", "g_change", "g_rec") if k in row})
        if trainer.step_no % tcfg.ckpt_every == 0:
            checkpoint()
        if tcfg.max_minutes and time.time() - start > tcfg.max_minutes * 60:
            finished = trainer.step_no >= tcfg.steps
            break
    bar.close()
    checkpoint()
    return TrainResult(trainer.step_no, pd.DataFrame(trainer.rows), time.time() - start, finished)


def read_training_log(folder: str | os.PathLike) -> pd.DataFrame:
    """The training log CSV of an editor folder."""
    f = Path(folder) / "log.csv"
    if not f.exists():
        raise FileNotFoundError(f"{f}: editor training log not found")
    return pd.read_csv(f)


def load_train_config(folder: str | os.PathLike) -> dict[str, Any]:
    return json.loads((Path(folder) / "train_config.json").read_text())


def select_per_class(frame: pd.DataFrame, cap: int) -> pd.DataFrame:
    """The first `cap` rows of each class in file order (all rows when cap <= 0); order is preserved."""
    if cap <= 0:
        return frame.reset_index(drop=True)
    rank = frame.groupby("label", sort=False).cumcount()
    return frame[rank < cap].reset_index(drop=True)
