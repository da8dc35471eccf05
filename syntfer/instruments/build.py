"""Measurement instruments, trained once per run and calibrated: the pseudo-label teacher and the judge.

An instrument is a classifier trained with `syntfer.engine.training.train` (held-out validation split of its own
training data, best epoch by the trainer's selection score) whose softmax is then *calibrated*: one
temperature T, fitted on that validation split by minimising the negative log-likelihood (Guo et al. 2017),
divides its logits from then on. Why: a confidence threshold (the paper's τ = 0.3 for pseudo-labels) and
a judge's p(label) mean something only when a confidence of 0.7 is right about 70 % of the time. The
recipe's plain cross-entropy is already close (the upstream loss, CE + 2 × label-smoothed CE with ε 0.4,
flattens the softmax: maximum probabilities of 0.4–0.5 for images it classifies correctly); the temperature
removes what is left, and `calibration.json` records the expected calibration error before and after.

Layout of an instrument folder::

    <out>/train/       the trainer's folder (log.csv, split.csv, best/, state.pt — resumable); for an
                       ensemble one `member<k>/` trainer folder per member, all on one train/validation split
    <out>/checkpoint/  the calibrated checkpoint (weights + config whose meta holds `temperature`): the one a
                       `syntfer.instruments.judge.Judge` or a pseudo-label teacher loads
    <out>/calibration.json, <out>/reliability.csv   T, NLL and ECE before/after, reliability bins (validation)

`measure_ceiling` scores a judge on held-out *real* images of each domain it judges: the judge ceiling, the
fidelity a perfect generator of that domain would get.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from syntfer.engine.data import as_frame, split_validation
from syntfer.instruments.judge import (Judge, calibrate_temperature, fidelity_table, judge_ceiling, label_indices,
                                       mean_class_fidelity, reliability)
from syntfer.core.manifest import read_manifest
from syntfer.sources.readers import read_dataset
from syntfer.engine.models.checkpoint import read_checkpoint_config, save_checkpoint
from syntfer.engine.models.ensemble import Ensemble
from syntfer.engine.models.registry import model_options
from syntfer.engine.models.softmax import probabilities
from syntfer.core.storage import write_json, write_text
from syntfer.engine.training import TrainConfig, train

CHECKPOINT = "checkpoint"


class InstrumentError(ValueError):
    """An instrument that cannot be trained or calibrated (no validation split, bad folders)."""


def calibrate(judge: Judge, frame: pd.DataFrame, bins: int = 10) -> tuple[float, dict[str, float], pd.DataFrame]:
    """Fit the temperature of `judge`'s logits on a labelled frame; returns (T, summary, reliability table after)."""
    out = judge.outputs(frame["path"].tolist())
    y = label_indices(frame["label"].tolist(), "calibration split")
    t = calibrate_temperature(out.logits, y)
    before = probabilities(out.logits)
    after = probabilities(out.logits, t)
    table_before, ece_before = reliability(before, y, bins)
    table_after, ece_after = reliability(after, y, bins)
    summary = {"temperature": t, "n": int(len(y)), "accuracy": float((before.argmax(1) == y).mean()),
               "nll_before": _nll(before, y), "nll_after": _nll(after, y),
               "ece_before": ece_before, "ece_after": ece_after,
               "mean_confidence_before": float(before.max(1).mean()),
               "mean_confidence_after": float(after.max(1).mean())}
    table = pd.concat([table_before.assign(calibration="before"), table_after.assign(calibration="after")],
                      ignore_index=True)
    return t, summary, table


def _nll(p: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())


def train_instrument(config: TrainConfig, train_data: pd.DataFrame | str | os.PathLike,
                     out_dir: str | os.PathLike, *, name: str, bins: int = 10, members: int = 1,
                     mirror: bool = False) -> dict[str, Any]:
    """Train (resumably), calibrate on the held-out validation split, write the calibrated checkpoint.

    With ``members > 1`` it trains that many models (seeds ``config.seed + k``) on one shared train/validation
    split (``<out>/train/member<k>/``) and checkpoints them as one `syntfer.engine.models.Ensemble` (mean logits);
    ``mirror`` adds the horizontally mirrored face to every member's view. One temperature is fitted on the
    shared validation split, which no member trained on. Returns the calibration summary plus the trainers'
    best epochs and validation metrics."""
    if members < 1:
        raise InstrumentError(f"{name}: members={members}; expected >= 1")
    out = Path(out_dir)
    if members == 1:
        dirs = [out / "train"]
        results = [train(config, train_data, dirs[0])]
        split = read_manifest(dirs[0] / "split.csv")
        val = split[split["split"].astype(str) == "val"].reset_index(drop=True)
        n_train = int((split["split"] == "train").sum())
    else:
        tr, val = split_validation(as_frame(train_data), config.val_fraction, config.seed)
        val = val.reset_index(drop=True)
        dirs = [out / "train" / f"member{k}" for k in range(members)]
        results = [train(dataclasses.replace(config, seed=config.seed + k), tr, d, val_data=val)
                   for k, d in enumerate(dirs)]
        n_train = int(len(tr))
    if val.empty:
        raise InstrumentError(f"{out / 'train'}: no validation rows to calibrate on")
    model = (results[0].model if members == 1 and not mirror
             else Ensemble.from_members([r.model for r in results], mirror=mirror))
    raw = Judge(model, 1.0, name)
    t, summary, table = calibrate(raw, val, bins)
    metas = [read_checkpoint_config(d / "best")[1] for d in dirs]
    meta = metas[0] if members == 1 else {"member_epochs": [m.get("epoch") for m in metas],
                                          "member_val_scores": [m.get("val_score") for m in metas]}
    save_checkpoint(model, out / CHECKPOINT, **{**meta, "temperature": t, "instrument": name,
                                                "calibrated_on": "held-out validation split"})
    best = [r.best_epoch for r in results]
    summary.update({"instrument": name, "best_epoch": best[0] if members == 1 else best, "epochs": config.epochs,
                    "members": members, "mirror": bool(mirror), "train_images": n_train, "val_images": int(len(val)),
                    "model": config.model, "model_kwargs": config.model_kwargs})
    write_json(out / "calibration.json", summary)
    write_text(out / "reliability.csv", table.to_csv(index=False))
    return summary


# the split each format holds out for testing (AffectNet's is its validation set)
HELD_OUT_SPLIT = {"affectnet": "val"}


def parse_references(spec: str) -> dict[str, tuple[str, Path]]:
    """``"ref_web:truth:outputs/world/ref_web,ref_ffhq:rafdb:data/x"`` -> ``{name: (format, root)}``: the labeled
    faces of each generator's look (params.yaml `datasets.references`), in any format `read_dataset` reads."""
    out: dict[str, tuple[str, Path]] = {}
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        fields = [f.strip() for f in part.split(":", 2)]
        if len(fields) != 3 or not all(fields):
            raise InstrumentError(f"references entry {part!r}: expected name:format:root "
                                  "(e.g. ref_web:truth:outputs/world/ref_web)")
        name, fmt, root = fields
        if name in out:
            raise InstrumentError(f"references: {name!r} given twice in {spec!r}")
        out[name] = (fmt, Path(root))
    if not out:
        raise InstrumentError("references is empty: the judge needs labeled faces of at least one generator's look")
    return out


def reference_frame(root: str | os.PathLike, split: str, fmt: str = "truth") -> pd.DataFrame:
    """Labeled faces of one generator's look, one split, as a manifest frame with absolute ``path``, ``label``
    (the expression the face shows) and ``split``. A world reference domain (`fmt="truth"`: ref_web, ref_ffhq of
    `syntfer.sources.world`) also carries the identity attributes from the world's truth (gender, age group, skin
    tone, and the race word for web people) — what the attribute reader learns; the user's own data (any other
    format) carries none. `split="test"` reads the format's held-out split (AffectNet: val)."""
    if fmt != "truth":
        frame = read_dataset(fmt, root, split=HELD_OUT_SPLIT.get(fmt, split) if split == "test" else split,
                             check="exists").frame
        if frame.empty:
            raise InstrumentError(f"{root}: no {fmt} images in split {split!r}")
        return pd.DataFrame({"path": [str(Path(p).resolve()) if "#" not in str(p) else str(p) for p in frame["path"]],
                             "label": frame["label"].to_numpy(), "split": split})
    file = Path(root) / "truth.csv"
    if not file.is_file():
        raise InstrumentError(f"{file}: no truth file; the world stage renders reference domains when the "
                              "preset's ref_per_class > 0 (for your own faces give another format, e.g. rafdb:PATH)")
    t = pd.read_csv(file, keep_default_na=False)
    t = t[t["split"].astype(str) == split]
    if t.empty:
        raise InstrumentError(f"{file}: no rows with split {split!r}")
    base = Path(root).resolve()  # absolute: manifests written from it resolve relative to themselves
    frame = pd.DataFrame({"path": [str(base / p) for p in t["path"]],
                          "label": t["expression"].to_numpy(), "split": split,
                          "gender": t["id_gender"].to_numpy(), "age": t["id_age"].to_numpy(),
                          "skin_tone": t["id_skin_tone"].astype(str).to_numpy()})
    if "word_race" in t.columns:
        frame["race"] = t["word_race"].to_numpy()
    return frame.reset_index(drop=True)


def measure_ceiling(judge: Judge, real: Mapping[str, pd.DataFrame | str | os.PathLike]) -> pd.DataFrame:
    """The judge on held-out real images of each domain: ``domain, class, n, fidelity, p_label`` rows, plus a
    ``mean_class`` row per domain (the judge ceiling, read against every generated set of that domain)."""
    frames = []
    for domain, data in real.items():
        frame = as_frame(data)
        probs = judge.probs(frame["path"].tolist())
        table = fidelity_table(probs, frame["label"].tolist(), where=f"{domain} reference")
        mean_row = {"class": "mean_class", "n": int(len(frame)), "fidelity": mean_class_fidelity(table),
                    "p_label": float(table.loc[table["class"] != "all", "p_label"].mean())}
        frames.append(pd.concat([table, pd.DataFrame([mean_row])], ignore_index=True).assign(domain=domain))
    return pd.concat(frames, ignore_index=True)[["domain", "class", "n", "fidelity", "p_label"]]


# --- CLI: syntfer instrument (the judge outside the pipeline, e.g. to follow an offline generator's training) -----
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=("judge",), help="which instrument")
    parser.add_argument("--world", required=True, help="a rendered world holding the reference domains")
    parser.add_argument("--domains", default="ref_web,ref_ffhq", help="reference domains the judge learns")
    parser.add_argument("--out", required=True, help="instrument folder (checkpoint/, calibration.json, ceiling.csv)")
    parser.add_argument("--model", default="cnn_tiny")
    parser.add_argument("--model-kwargs", default='{"cnn_tiny": {"img_size": 48, "head": "flatten"}}',
                        help="builder options, per model (as params.yaml's instruments.model_kwargs) or flat")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    """Train and calibrate the judge as the pipeline's `instruments` stage does, and write its ceilings."""
    domains = [d.strip() for d in args.domains.split(",") if d.strip()]
    cfg = TrainConfig.from_recipe("fast", model=args.model,
                                  model_kwargs=model_options(args.model, args.model_kwargs, "--model-kwargs"),
                                  epochs=args.epochs, label_smoothing=0.0, smoothing_weight=0.0, seed=args.seed,
                                  progress=False)
    frame = pd.concat([reference_frame(Path(args.world) / d, "train") for d in domains], ignore_index=True)
    summary = train_instrument(cfg, frame, args.out, name="judge")
    judge = Judge.load(Path(args.out) / CHECKPOINT, name="judge")
    ceiling = measure_ceiling(judge, {d: reference_frame(Path(args.world) / d, "test") for d in domains})
    write_text(Path(args.out) / "ceiling.csv", ceiling.to_csv(index=False))
    print(json.dumps({"temperature": summary["temperature"], "ece_after": summary["ece_after"],
                      **{f"ceiling.{d}": judge_ceiling(ceiling, d) for d in domains}}, indent=1))
    return 0
