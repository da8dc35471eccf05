"""Identity embeddings: an encoder trained on the face world's identity labels, and dlib's face descriptor.

- `IdentityEncoder`: a small CNN → L2-normalised embedding, trained with an ArcFace (additive angular margin)
  head on face crops whose identity is known (the world renders each identity under several expressions,
  poses, lights and backgrounds, so the embedding learns to ignore expression). Validated by same-id vs
  different-id cosine-similarity separation (ROC AUC) on held-out identities.
- `DlibFaceDescriptor`: dlib's 128-D ResNet descriptor (`dlib_face_recognition_resnet_model_v1.dat` from
  the `face_recognition_models` package; same person if Euclidean distance < 0.6) for real photos.

Used for identity preservation of GAN edits and by the study's privacy check.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
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
from torch import nn
from tqdm.auto import tqdm

from syntfer.core import labels as L
from syntfer.core.guards import check_finite
from syntfer.core.seeding import derive_seed, numpy_rng
from syntfer.core.storage import (StateFileError, atomic_path, load_torch, module_fingerprint, remove_stale_temporaries,
                                  save_torch, write_json)
from syntfer.sources.world import DOMAINS, make_sample, sample_identity
from syntfer.sources.world.domains import with_render


@dataclasses.dataclass
class IdentityConfig:
    image_size: int = 32
    width: int = 16
    embed_dim: int = 64

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class IdentityEncoder(nn.Module):
    """Four conv stages (conv-BN-ReLU ×2, max-pool) → global average → linear → L2-normalised embedding.

    Input: RGB in [0, 1], (B, 3, S, S) with S = cfg.image_size (other sizes are resized).
    """

    def __init__(self, cfg: IdentityConfig) -> None:
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        c_in, w = 3, cfg.width
        for i in range(4):
            c_out = w * 2 ** min(i, 2)
            layers += [nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                       nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            if i < 3:
                layers.append(nn.MaxPool2d(2))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.embed = nn.Linear(c_in, cfg.embed_dim)
        self.register_buffer("mean", torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.25, 0.25, 0.25]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"IdentityEncoder expects (B, 3, H, W) RGB in [0, 1]; got {tuple(x.shape)}")
        s = self.cfg.image_size
        if x.shape[-2:] != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        h = self.features((x - self.mean) / self.std).mean((2, 3))
        return F.normalize(self.embed(h), dim=1)


class ArcFaceHead(nn.Module):
    """Additive angular margin softmax (ArcFace): logits s·cos(θ + m) for the true class, s·cos θ otherwise."""

    def __init__(self, embed_dim: int, n_classes: int, scale: float = 16.0, margin: float = 0.3) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_classes, embed_dim) * 0.01)
        self.scale, self.margin = scale, margin

    def forward(self, emb: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        cos = F.linear(emb, F.normalize(self.weight, dim=1)).clamp(-1 + 1e-6, 1 - 1e-6)
        theta = torch.acos(cos)
        target_cos = torch.cos(theta + self.margin)
        onehot = F.one_hot(target, cos.shape[1]).bool()
        return self.scale * torch.where(onehot, target_cos, cos)


# ---- data from the world ---------------------------------------------------------------------------------
def render_identity_set(n_identities: int, per_identity: int, size: int = 48, seed: int = 0,
                        domains: Sequence[str] = ("ffhq", "affectnet"), max_render: int = 64,
                        progress: bool = True) -> tuple[torch.Tensor, np.ndarray, pd.DataFrame]:
    """Face crops (N, 3, size, size) uint8 of world identities, each under random expressions and scenes.

    Each identity is drawn from `derive_seed(seed, 'identity-set', k)`; image j of identity k is rendered
    with the look of domain ``domains[j % len(domains)]`` and a uniformly drawn expression class, then the
    known face box is cropped. Returns crops, integer identity labels and a truth frame.
    """
    specs = [with_render(DOMAINS[d], max_render, 1) for d in domains]
    crops = torch.empty((n_identities * per_identity, 3, size, size), dtype=torch.uint8)
    rows = []
    bar = tqdm(total=len(crops), desc="identity set", disable=not progress, mininterval=2.0)
    for k in range(n_identities):
        idt = sample_identity(numpy_rng(seed, "identity-set", k), id=f"idset-{seed}-{k}")
        for j in range(per_identity):
            spec = specs[j % len(specs)]
            label = L.CLASSES[int(numpy_rng(seed, "identity-set", k, j, "label").integers(0, L.NUM_CLASSES))]
            index = int(derive_seed(seed, "identity-set", k, j) % 10**9)
            pil, row = make_sample(spec, seed, index, label, identity=idt)
            box = (row["face_x"], row["face_y"], row["face_width"], row["face_height"])
            crop = pil.crop((box[0], box[1], box[0] + box[2], box[1] + box[3])).resize((size, size), Image.BILINEAR)
            i = k * per_identity + j
            crops[i] = torch.from_numpy(np.asarray(crop.convert("RGB")).copy()).permute(2, 0, 1)
            rows.append({"identity": idt.id, "identity_index": k, "label": label, "domain": spec.name, "index": index})
            bar.update(1)
    bar.close()
    return crops, np.repeat(np.arange(n_identities), per_identity), pd.DataFrame(rows)


# ---- training and evaluation -------------------------------------------------------------------------------
@dataclasses.dataclass
class IdentityTrainConfig:
    steps: int = 800
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 5e-4
    margin: float = 0.3
    scale: float = 16.0
    seed: int = 0
    threads: int = 1
    log_every: int = 50
    checkpoint_every: int = 100  # resume state (`state.pt`, atomic) every N steps; not a result: not in encoder.json


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Flip, brightness/contrast jitter and a small random shift (batched)."""
    b = x.shape[0]
    flip = torch.rand(b, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    gain = 1 + 0.2 * (torch.rand(b, 1, 1, 1, generator=gen) - 0.5)
    bias = 0.1 * (torch.rand(b, 1, 1, 1, generator=gen) - 0.5)
    x = (x * gain + bias).clamp(0, 1)
    pad = max(1, x.shape[-1] // 16)
    xp = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    dx, dy = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,), generator=gen))
    return xp[..., dy:dy + x.shape[-2], dx:dx + x.shape[-1]]


def train_identity_encoder(crops: torch.Tensor, ids: np.ndarray, out: str | os.PathLike,
                           cfg: IdentityConfig | None = None, tcfg: IdentityTrainConfig | None = None,
                           progress: bool = True) -> tuple[IdentityEncoder, pd.DataFrame]:
    """Train an encoder with an ArcFace head; writes `encoder.pt` + `encoder.json` + `log.csv` to `out`.

    Resumable: every `checkpoint_every` steps the encoder, head, optimiser, schedule, generator, log rows and the
    losses since the last row go to `out/state.pt` (atomic); a rerun after a kill resumes there and writes the
    same files, tensor for tensor, as an uninterrupted run (its log's `seconds` aside). The state is deleted
    once the outputs are written; a state of other data or settings is refused."""
    cfg, tcfg = cfg or IdentityConfig(), tcfg or IdentityTrainConfig()
    ids = np.asarray(ids)
    if crops.dtype != torch.uint8 or crops.shape[0] != len(ids):
        raise ValueError(f"crops must be uint8 with one identity label each; got {crops.dtype}, "
                         f"{crops.shape[0]} crops for {len(ids)} labels")
    if len(np.unique(ids)) < 2:
        raise ValueError(f"identity training set has {len(ids)} crops of {len(np.unique(ids))} identities; "
                         "expected at least 2 identities")
    for name in ("steps", "batch_size", "lr"):
        if not getattr(tcfg, name) > 0:
            raise ValueError(f"IdentityTrainConfig.{name} = {getattr(tcfg, name)!r}; expected > 0")
    _, target = np.unique(ids, return_inverse=True)
    target_t = torch.from_numpy(target).long()
    torch.set_num_threads(max(1, tcfg.threads))
    torch.manual_seed(tcfg.seed)
    gen = torch.Generator().manual_seed(tcfg.seed)
    enc, head = IdentityEncoder(cfg), ArcFaceHead(cfg.embed_dim, int(target.max()) + 1, tcfg.scale, tcfg.margin)
    params = list(enc.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, tcfg.lr, weight_decay=tcfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, tcfg.lr, total_steps=tcfg.steps, pct_start=0.15)
    rows, t0, losses, accs = [], time.time(), [], []
    out = Path(out)
    remove_stale_temporaries(out)  # what a killed run left half-written
    state_file, start = out / "state.pt", 1
    train_key = {k: v for k, v in dataclasses.asdict(tcfg).items() if k not in ("checkpoint_every", "threads")}
    key = {"config": cfg.to_dict(), "train": train_key, "ids": torch.from_numpy(target).long(),
           "crops_sha256": hashlib.sha256(crops.contiguous().numpy().tobytes()).hexdigest()}
    if state_file.exists():
        st = load_torch(state_file, "resume state")
        if not (st["key"].keys() == key.keys() and all(
                torch.equal(st["key"][k], v) if isinstance(v, torch.Tensor) else st["key"][k] == v
                for k, v in key.items())):
            raise StateFileError(f"{state_file}: resume state of other crops or settings; use another --out or "
                                 "delete it to start over")
        enc.load_state_dict(st["enc"])
        head.load_state_dict(st["head"])
        opt.load_state_dict(st["opt"])
        sched.load_state_dict(st["sched"])
        gen.set_state(st["gen"])
        rows, losses, accs = list(st["rows"]), list(st["losses"]), list(st["accs"])
        start, t0 = st["step"] + 1, time.time() - st["elapsed"]

    def save_state(step: int) -> None:
        save_torch(state_file, {"key": key, "step": step, "enc": enc.state_dict(), "head": head.state_dict(),
                                "opt": opt.state_dict(), "sched": sched.state_dict(), "gen": gen.get_state(),
                                "rows": rows, "losses": losses, "accs": accs, "elapsed": time.time() - t0})

    enc.train()
    for step in tqdm(range(start, tcfg.steps + 1), desc="identity encoder", disable=not progress, mininterval=2.0,
                     initial=start - 1, total=tcfg.steps):
        idx = torch.randint(0, len(ids), (tcfg.batch_size,), generator=gen)
        x = _augment(crops[idx].float() / 255.0, gen)
        logits = head(enc(x), target_t[idx])
        loss = F.cross_entropy(logits, target_t[idx])
        check_finite(loss, f"{out}: identity encoder step {step} loss")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        accs.append((logits.argmax(1) == target_t[idx]).float().mean().item())
        if step % tcfg.log_every == 0:
            rows.append({"step": step, "epoch": step * tcfg.batch_size / len(ids), "loss": float(np.mean(losses)),
                         "train_acc_margin": float(np.mean(accs)), "seconds": time.time() - t0})
            losses, accs = [], []
        if tcfg.checkpoint_every > 0 and step % tcfg.checkpoint_every == 0 and step < tcfg.steps:
            save_state(step)
    enc.eval()
    log = pd.DataFrame(rows)
    save_identity_encoder(out, enc, {"train_config": {k: v for k, v in dataclasses.asdict(tcfg).items()
                                                      if k != "checkpoint_every"},
                                     "n_images": int(len(ids)), "n_identities": int(target.max()) + 1})
    with atomic_path(Path(out) / "log.csv") as tmp:
        log.to_csv(tmp, index=False)
    state_file.unlink(missing_ok=True)  # finished: the outputs are written
    return enc, log


def save_identity_encoder(folder: str | os.PathLike, enc: IdentityEncoder, extra: dict[str, Any] | None = None) -> None:
    folder = Path(folder)
    save_torch(folder / "encoder.pt", {k: v.detach().cpu() for k, v in enc.state_dict().items()})
    write_json(folder / "encoder.json", {"config": enc.cfg.to_dict(), **(extra or {})})


def load_identity_encoder(folder: str | os.PathLike) -> IdentityEncoder:
    folder = Path(folder)
    meta = folder / "encoder.json"
    if not meta.exists():
        raise FileNotFoundError(f"{meta}: identity encoder config not found")
    enc = IdentityEncoder(IdentityConfig(**json.loads(meta.read_text())["config"]))
    enc.load_state_dict(torch.load(folder / "encoder.pt", map_location="cpu", weights_only=True))
    return enc.eval()


@torch.no_grad()
def embed(enc: IdentityEncoder, crops: torch.Tensor | np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Normalised embeddings (N, D) of uint8 crops (N, 3, H, W) or (N, H, W, 3)."""
    t = torch.as_tensor(crops)
    if t.ndim != 4:
        raise ValueError(f"embed expects a batch of images; got shape {tuple(t.shape)}")
    if t.shape[0] == 0:
        raise ValueError("no images to embed (an empty batch); expected at least one face crop")
    if t.shape[-1] == 3 and t.shape[1] != 3:
        t = t.permute(0, 3, 1, 2)
    enc.eval()
    out = [enc(t[i:i + batch_size].float() / 255.0) for i in range(0, t.shape[0], batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, enc.cfg.embed_dim), np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (N, D) arrays."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)
    b = b / np.linalg.norm(b, axis=1, keepdims=True).clip(1e-12)
    return (a * b).sum(1)


def verification_scores(emb: np.ndarray, ids: np.ndarray) -> dict[str, float]:
    """Same-identity vs different-identity cosine similarities over all pairs: ROC AUC, means, EER-ish threshold."""
    from sklearn.metrics import roc_auc_score, roc_curve  # lazy: scikit-learn takes a second to import

    ids = np.asarray(ids)
    sim = emb @ emb.T
    iu = np.triu_indices(len(ids), k=1)
    same = (ids[:, None] == ids[None, :])[iu]
    s = sim[iu]
    if same.all() or not same.any():
        raise ValueError("verification needs both same-identity and different-identity pairs")
    fpr, tpr, thr = roc_curve(same, s)
    k = int(np.argmin(np.abs(fpr - (1 - tpr))))
    return {"auc": float(roc_auc_score(same, s)), "same_mean": float(s[same].mean()),
            "diff_mean": float(s[~same].mean()), "eer": float((fpr[k] + 1 - tpr[k]) / 2),
            "eer_threshold": float(thr[k]), "pairs_same": int(same.sum()), "pairs_diff": int((~same).sum())}


# ---- dlib's descriptor for real photos ---------------------------------------------------------------------
def _face_recognition_model(name: str) -> Path:
    spec = importlib.util.find_spec("face_recognition_models")  # located without importing (it imports pkg_resources)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("face_recognition_models is not installed (pip install face-recognition-models)")
    p = Path(list(spec.submodule_search_locations)[0]) / "models" / name
    if not p.exists():
        raise FileNotFoundError(f"{p}: dlib model file missing from face_recognition_models")
    return p


class DlibFaceDescriptor:
    """dlib's 128-D face descriptor: HOG detection (or a given box) → 5-point landmarks → ResNet descriptor."""

    THRESHOLD = 0.6  # dlib: same person if Euclidean distance < 0.6

    def __init__(self) -> None:
        import dlib  # lazy: only real photos need dlib (and its model files)

        self.dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(str(_face_recognition_model("shape_predictor_5_face_landmarks.dat")))
        self.net = dlib.face_recognition_model_v1(str(_face_recognition_model("dlib_face_recognition_resnet_model_v1.dat")))

    def __call__(self, image: np.ndarray, box: Sequence[int] | None = None) -> np.ndarray | None:
        """Descriptor of the largest detected face (or of `box` = x, y, w, h); None if no face is found."""
        img = np.ascontiguousarray(image, dtype=np.uint8)
        if box is None:
            rects = self.detector(img, 1)
            if len(rects) == 0:
                return None
            rect = max(rects, key=lambda r: r.width() * r.height())
        else:
            x, y, w, h = (int(v) for v in box)
            rect = self.dlib.rectangle(x, y, x + w, y + h)
        return np.asarray(self.net.compute_face_descriptor(img, self.shape(img, rect)), dtype=np.float32)

    @staticmethod
    def distance(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.linalg.norm(np.asarray(a) - np.asarray(b)))


def identity_similarity_table(source: np.ndarray, edited: np.ndarray, truth: np.ndarray | None = None,
                              labels: Sequence[str] | None = None) -> pd.DataFrame:
    """Per-image cosine similarities: source↔edit and (on the world) edit↔hidden-truth re-render."""
    df = pd.DataFrame({"sim_source_edit": cosine(source, edited)})
    if truth is not None:
        df["sim_truth_edit"] = cosine(truth, edited)
        df["sim_source_truth"] = cosine(source, truth)
    if labels is not None:
        df["label"] = list(labels)
    return df


def angle_deg(sim: float) -> float:
    return math.degrees(math.acos(max(-1.0, min(1.0, sim))))


# ---- CLI: `syntfer identity` ---------------------------------------------------------------------------------
def add_arguments(parser) -> None:
    parser.add_argument("--out", required=True, help="folder for encoder.pt, encoder.json, log.csv, validation.json")
    parser.add_argument("--train-ids", type=int, default=200)
    parser.add_argument("--val-ids", type=int, default=50)
    parser.add_argument("--per-id", type=int, default=5)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--embed-dim", type=int, default=64)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--checkpoint-every", type=int, default=100,
                        help="training steps between resume states (out/state.pt); a rerun after a kill resumes")
    parser.add_argument("--cache", default="", help="optional .pt file caching the rendered identity sets")


def run(args) -> int:
    """Render world identity sets (train and held-out identities), train the encoder, validate, write JSON."""
    out = Path(args.out)
    for opt, value, least, why in (("--train-ids", args.train_ids, 2, "the ArcFace head separates identities"),
                                   ("--val-ids", args.val_ids, 2, "verification needs different-identity pairs"),
                                   ("--per-id", args.per_id, 2, "verification needs same-identity pairs"),
                                   ("--steps", args.steps, 1, "training steps"),
                                   ("--batch-size", args.batch_size, 1, "crops per step"),
                                   ("--size", args.size, 8, "the crop side in pixels")):
        if value < least:
            raise ValueError(f"{opt} {value}; expected >= {least} ({why})")
    t0 = time.time()
    key = [args.train_ids, args.val_ids, args.per_id, args.size, args.seed]
    cache = Path(args.cache) if args.cache else None
    c = None
    if cache is not None and cache.exists():
        try:
            c = load_torch(cache, "--cache")
        except StateFileError as e:  # e.g. a cache of an older syntfer, which stored numpy arrays
            raise StateFileError(f"{e}; delete it to render the identity sets again") from None
    if isinstance(c, dict) and c.get("key") == key:
        # identities are stored as tensors (weights_only loads no numpy arrays); the encoder takes numpy
        tr_crops, va_crops = c["tr_crops"], c["va_crops"]
        tr_ids, va_ids = c["tr_ids"].numpy(), c["va_ids"].numpy()
    else:
        tr_crops, tr_ids, _ = render_identity_set(args.train_ids, args.per_id, args.size, seed=args.seed)
        va_crops, va_ids, _ = render_identity_set(args.val_ids, args.per_id, args.size, seed=args.seed + 10_000)
        if cache is not None:
            save_torch(cache, {"key": key, "tr_crops": tr_crops, "tr_ids": torch.from_numpy(tr_ids),
                               "va_crops": va_crops, "va_ids": torch.from_numpy(va_ids)})
    render_s = time.time() - t0
    enc, log = train_identity_encoder(tr_crops, tr_ids, out,
                                      IdentityConfig(args.size, args.width, args.embed_dim),
                                      IdentityTrainConfig(steps=args.steps, batch_size=args.batch_size, seed=args.seed,
                                                          threads=args.threads,
                                                          checkpoint_every=getattr(args, "checkpoint_every",
                                                                                   IdentityTrainConfig.checkpoint_every)))
    val = verification_scores(embed(enc, va_crops), va_ids)
    result = {"validation_heldout_identities": val, "train_identities": args.train_ids, "val_identities": args.val_ids,
              "per_identity": args.per_id, "render_seconds": round(render_s, 1),
              "train_seconds": round(float(log["seconds"].iloc[-1]) if len(log) else 0.0, 1),
              "command": "syntfer identity " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
                                                        if k not in ("func", "checkpoint_every"))}
    write_json(out / "validation.json", result)
    print(json.dumps(result, indent=2))
    return 0


def identity_embedding(folder: str | os.PathLike):
    """The world-trained identity encoder (saved in `folder`) as an embedding function
    ``list[PIL.Image] -> (N, D)`` of L2-normalised vectors (`syntfer.instruments.audit`, `syntfer.instruments.distances`).

    Whole images are resized to the encoder's input size; pass face crops (e.g. ``#box=`` manifest paths)
    when the face is small in the frame.
    """
    enc = load_identity_encoder(folder)
    size = int(enc.cfg.image_size)

    def embedding(images: list[Image.Image]) -> np.ndarray:
        crops = np.stack([np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
                          for im in images])
        return embed(enc, crops)

    embedding.fingerprint = module_fingerprint(enc)  # read by feature caches
    return embedding
