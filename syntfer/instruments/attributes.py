"""The attribute reader: who a face shows (gender, age group, skin tone), for demographic fidelity.

The diffusion strategy asks for people by words (docs/method.md §4: gender, age, race). Whether a generated face
shows what was asked is read by a small classifier trained on *real* faces of the generator's domain, whose
truth the world knows (`syntfer.sources.world`: the reference domain ``ref_web``, aligned crops). One convolutional
trunk (`syntfer.engine.models` registry, e.g. ``cnn_tiny`` with the flatten head) with one linear head per attribute,
trained by `train_reader` (cross-entropy summed over heads, the batched augmentation of `syntfer.engine.data`
without flips' effect on any attribute, held-out validation, best epoch by mean head accuracy).

The world renders a race word as a range of skin-tone levels (`syntfer.sources.world.identity.RACE_SKIN_TONES`: white
1–3, asian 1–4, middle-eastern 2–4, latino 2–5, black 4–6 — overlapping, as skin tone and the word do in
life), so a face cannot show "asian" rather than "white" at level 2. Race fidelity is therefore read the way
the world defines it: the reader's skin-tone level falls inside the prompted word's range. Gender and age
group are read directly.

Checkpoint: ``reader.pt`` (state_dict) + ``reader.json`` (trunk name and kwargs, attribute value lists,
validation accuracies), never a pickled module.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from syntfer.engine.data import BatchAugment, eval_transform, image_mode, pil_to_uint8
from syntfer.core.images import load_image
from syntfer.engine.models import create_model
from syntfer.engine.models.softmax import probabilities
from syntfer.core.seeding import derive_seed, seed_everything
from syntfer.core.storage import save_torch, write_json, write_text
from syntfer.sources.world.identity import AGE_GROUPS, GENDERS, RACE_SKIN_TONES

ATTRIBUTES: dict[str, tuple[str, ...]] = {"gender": GENDERS, "age": AGE_GROUPS,
                                          "skin_tone": tuple(str(i) for i in range(1, 7))}
"""Attribute -> its values, in head output order."""
TRUTH_COLUMNS: dict[str, str] = {"gender": "id_gender", "age": "id_age", "skin_tone": "id_skin_tone"}
"""Where the world's truth files keep each attribute."""


class AttributeReaderError(ValueError):
    """Bad input to the attribute reader (unknown values, missing columns)."""


class AttributeReader(nn.Module):
    """A registry trunk whose outputs are split into one logit group per attribute."""

    def __init__(self, trunk: str, trunk_kwargs: Mapping[str, Any], attributes: Mapping[str, Sequence[str]]):
        super().__init__()
        self.attributes = {k: tuple(v) for k, v in attributes.items()}
        self.trunk_name, self.trunk_kwargs = trunk, dict(trunk_kwargs)
        self.trunk = create_model(trunk, num_classes=sum(len(v) for v in self.attributes.values()), **trunk_kwargs)
        self.cfg = self.trunk.cfg

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.trunk(x)
        out, i = {}, 0
        for name, values in self.attributes.items():
            out[name] = z[:, i:i + len(values)]
            i += len(values)
        return out

    @torch.no_grad()
    def predict(self, images: Sequence[str | os.PathLike], batch_size: int = 256) -> pd.DataFrame:
        """One row per image: the most likely value of each attribute and its probability."""
        self.eval()
        tf, mode = eval_transform(self.cfg), image_mode(self.cfg)
        rows: dict[str, list] = {k: [] for k in self.attributes} | {f"p_{k}": [] for k in self.attributes}
        for start in range(0, len(images), batch_size):
            x = tf(torch.stack([pil_to_uint8(load_image(p, mode)) for p in images[start:start + batch_size]]))
            for name, logits in self(x).items():
                p = probabilities(logits)
                conf, idx = p.max(1)
                rows[name] += [self.attributes[name][i] for i in idx.tolist()]
                rows[f"p_{name}"] += conf.tolist()
        return pd.DataFrame(rows)


def _targets(frame: pd.DataFrame, attributes: Mapping[str, Sequence[str]]) -> torch.Tensor:
    cols = []
    for name, values in attributes.items():
        if name not in frame.columns:
            raise AttributeReaderError(f"reader training data has no {name!r} column; has {list(frame.columns)}")
        index = {v: i for i, v in enumerate(values)}
        vals = frame[name].astype(str)
        bad = ~vals.isin(list(index))
        if bad.any():
            raise AttributeReaderError(f"{name} value {vals[bad].iloc[0]!r} (row {int(np.flatnonzero(bad)[0])}) is not "
                                  f"one of {list(values)}")
        cols.append(torch.tensor([index[v] for v in vals], dtype=torch.long))
    return torch.stack(cols, 1)


def train_reader(frame: pd.DataFrame, out_dir: str | os.PathLike, *, trunk: str = "cnn_tiny",
                 trunk_kwargs: Mapping[str, Any] | None = None, epochs: int = 16, batch_size: int = 64,
                 lr: float = 2e-3, weight_decay: float = 0.05, val_fraction: float = 0.15, seed: int = 0,
                 attributes: Mapping[str, Sequence[str]] = ATTRIBUTES) -> dict[str, Any]:
    """Train the reader on a frame with ``path`` and one column per attribute; writes the checkpoint and
    ``log.csv``. Deterministic on CPU for a seed. Returns the validation accuracy per attribute (best epoch)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(seed)
    trunk_kwargs = dict(trunk_kwargs or {})
    model = AttributeReader(trunk, trunk_kwargs, attributes)
    mode = image_mode(model.cfg)
    size = tuple(model.cfg.input_size[1:])
    frame = frame.reset_index(drop=True)
    y = _targets(frame, model.attributes)
    x = torch.stack([pil_to_uint8(load_image(p, mode).resize(size[::-1])) for p in frame["path"]])
    order = np.random.default_rng(derive_seed(seed, "reader-split")).permutation(len(frame))
    n_val = max(1, int(round(val_fraction * len(frame))))
    val_idx, tr_idx = order[:n_val], order[n_val:]
    aug, ev = BatchAugment(model.cfg, train=True, flip_p=0.5), BatchAugment(model.cfg, train=False)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(tr_idx) / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    best, log = {"score": -1.0}, []
    for epoch in range(epochs):
        model.train()
        perm = tr_idx[np.random.default_rng(derive_seed(seed, "reader-epoch", epoch)).permutation(len(tr_idx))]
        total = 0.0
        for b in range(steps_per_epoch):
            idx = perm[b * batch_size:(b + 1) * batch_size]
            xb = aug(x[idx], torch.as_tensor(idx))
            logits = model(xb)
            loss = sum(F.cross_entropy(logits[k], y[idx, j]) for j, k in enumerate(model.attributes))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        model.eval()
        with torch.no_grad():
            logits = model(ev(x[val_idx]))
        acc = {k: float((logits[k].argmax(1) == y[val_idx, j]).float().mean()) for j, k in enumerate(model.attributes)}
        score = float(np.mean(list(acc.values())))
        log.append({"epoch": epoch + 1, "train_loss": total / len(tr_idx), **{f"val_{k}": v for k, v in acc.items()}})
        if score > best["score"]:
            best = {"score": score, "epoch": epoch + 1, **acc}
            save_torch(out / "reader.pt", {k: v.detach().clone() for k, v in model.state_dict().items()})
    write_text(out / "log.csv", pd.DataFrame(log).to_csv(index=False))
    # a list of [name, values] pairs: the head order (JSON objects are written with sorted keys)
    meta = {"trunk": trunk, "trunk_kwargs": trunk_kwargs, "attributes": [[k, list(v)] for k, v in model.attributes.items()],
            "best": best, "train_images": int(len(tr_idx)), "val_images": int(n_val), "epochs": epochs, "seed": seed}
    write_json(out / "reader.json", meta)
    return best


def load_reader(directory: str | os.PathLike) -> AttributeReader:
    """Rebuild a reader from ``reader.json`` and load ``reader.pt`` strictly."""
    d = Path(directory)
    for f in ("reader.json", "reader.pt"):
        if not (d / f).is_file():
            raise FileNotFoundError(f"{d / f}: not an attribute reader folder (expected reader.json + reader.pt)")
    meta = json.loads((d / "reader.json").read_text())
    model = AttributeReader(meta["trunk"], meta["trunk_kwargs"], dict(meta["attributes"]))
    model.load_state_dict(torch.load(d / "reader.pt", map_location="cpu", weights_only=True))
    return model.eval()


def race_in_range(race_words: Sequence[str], skin_tones: Sequence[str | int]) -> np.ndarray:
    """Per image: does the read skin-tone level lie in the prompted race word's range (the world's definition)?"""
    out = []
    for w, s in zip(race_words, skin_tones):
        key = str(w).strip().lower()
        if key not in RACE_SKIN_TONES:
            raise AttributeReaderError(f"race word {w!r} is not one of {list(RACE_SKIN_TONES)}")
        lo, hi = RACE_SKIN_TONES[key]
        out.append(lo <= int(s) <= hi)
    return np.array(out, bool)


def demographic_fidelity(read: pd.DataFrame, asked: pd.DataFrame) -> dict[str, float]:
    """Share of images whose read attribute matches the asked one: ``gender``, ``age`` and ``race`` (skin tone
    in the word's range). `asked` has columns gender, age, race (prompt words); `read` is `predict`'s output."""
    if len(read) != len(asked):
        raise AttributeReaderError(f"{len(read)} readings for {len(asked)} prompts")
    for c in ("gender", "age", "race"):
        if c not in asked.columns:
            raise AttributeReaderError(f"prompts have no {c!r} column; has {list(asked.columns)}")
    return {"gender": float((read["gender"].to_numpy() == asked["gender"].astype(str).to_numpy()).mean()),
            "age": float((read["age"].to_numpy() == asked["age"].astype(str).to_numpy()).mean()),
            "race": float(race_in_range(asked["race"].tolist(), read["skin_tone"].tolist()).mean())}
