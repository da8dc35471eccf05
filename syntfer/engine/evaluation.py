"""Evaluation: predictions of a model over a manifest, FER metrics, confusion rows, cross-dataset tables.

Metrics (scikit-learn; labels are canonical indices 0..6):
- ``accuracy``: overall accuracy;
- ``balanced_accuracy``: mean per-class recall over the classes present in the test labels (mean-class accuracy);
- ``macro_f1``: unweighted mean F1 over the classes present in the labels or the predictions (sklearn's default
  label set), zero_division 0;
- ``recall_<class>``: per-class recall, NaN for a class absent from the test labels.

Cross-dataset results are one tidy CSV: ``train_set,model,seed,test_set,metric,value``; `aggregate_seeds` turns
it into mean ± sd over seeds (sd with ddof 1; NaN for a single seed), and `plot_cross_dataset` draws the matrix.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score
from torch import nn
from tqdm import tqdm

from syntfer.core import labels as L
from syntfer.engine.data import DecodedImages, ManifestDataset, as_frame, build_loader, eval_transform, image_mode
from syntfer.engine.models.checkpoint import load_checkpoint
from syntfer.engine.models.softmax import probabilities
from syntfer.core.storage import write_json, write_text

CROSS_COLUMNS = ("train_set", "model", "seed", "test_set", "metric", "value")
HEADLINE_METRICS = ("accuracy", "balanced_accuracy", "macro_f1")


class EvaluationError(ValueError):
    """Inputs that cannot be evaluated; the message names the value and what was expected."""


# --------------------------------------------------------------------------- predictions
@dataclasses.dataclass
class Predictions:
    """Per-image outputs of one model on one manifest, classes in canonical order."""

    paths: list[str]
    y_true: np.ndarray  # canonical index, -1 when unlabeled
    probs: np.ndarray   # (N, 7) softmax, canonical order

    @property
    def y_pred(self) -> np.ndarray:
        return self.probs.argmax(axis=1)

    def frame(self) -> pd.DataFrame:
        """One row per image: path, label, predicted, confidence and one probability column per class."""
        names = np.array(L.CLASSES + ("",))
        df = pd.DataFrame({"path": self.paths, "label": names[self.y_true], "predicted": names[self.y_pred],
                           "confidence": self.probs.max(axis=1)})
        for i, c in enumerate(L.CLASSES):
            df[f"p_{c}"] = self.probs[:, i]
        return df


def _model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def predict(model: nn.Module, data: pd.DataFrame | str | os.PathLike, *, batch_size: int = 256,
            num_workers: int = 0, split: str | None = None, device: str | torch.device | None = None,
            progress: bool = True, image_cache: DecodedImages | None = None) -> Predictions:
    """Softmax outputs of `model` (eval mode, eval transform from ``model.cfg``) for every image of `data`.

    Outputs are permuted into the canonical class order when ``model.cfg.labels`` lists another order.
    Unlabeled rows are allowed (y_true = -1). `device` moves the model there first (default: where it is).
    """
    cfg = model.cfg
    perm = L.permutation_to_canonical(cfg.labels)
    frame = as_frame(data, split=split, require_labels=False)
    ds = ManifestDataset(frame, eval_transform(cfg), mode=image_mode(cfg),
                         cache=image_cache if image_cache is not None else False)
    loader = build_loader(ds, batch_size=batch_size, train=False, num_workers=num_workers)
    if device is not None:
        model.to(device)
    device = _model_device(model)
    was_training = model.training
    model.eval()
    out = []
    for x, _ in tqdm(loader, desc="predict", disable=not progress, leave=False, mininterval=1.0):
        logits = model(x.to(device, non_blocking=True)).float()
        if logits.ndim != 2 or logits.shape[1] != len(cfg.labels):
            raise EvaluationError(f"model {cfg.name} returned logits of shape {tuple(logits.shape)}; "
                                  f"expected (batch, {len(cfg.labels)})")
        out.append(probabilities(logits).cpu())
    model.train(was_training)
    probs = torch.cat(out).numpy()[:, perm]
    return Predictions(paths=ds.paths, y_true=ds.labels.copy(), probs=probs)


# --------------------------------------------------------------------------- metrics
def _check_labels(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise EvaluationError(f"y_true {y_true.shape} and y_pred {y_pred.shape} must be equal-length 1-D arrays")
    if y_true.size == 0:
        raise EvaluationError("no labelled samples to evaluate")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        bad = (y < 0) | (y >= L.NUM_CLASSES)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise EvaluationError(f"{name}[{i}] = {y[i]} is not a class index 0..{L.NUM_CLASSES - 1} "
                                  "(unlabeled rows cannot be scored)")
    return y_true, y_pred


def compute_metrics(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray) -> dict[str, float]:
    """accuracy, balanced_accuracy, macro_f1, recall_<class> (NaN if absent) and n (see module docstring)."""
    y_true, y_pred = _check_labels(np.asarray(y_true), np.asarray(y_pred))
    all_labels = list(range(L.NUM_CLASSES))
    recall = recall_score(y_true, y_pred, labels=all_labels, average=None, zero_division=0)
    present = np.bincount(y_true, minlength=L.NUM_CLASSES) > 0
    out: dict[str, float] = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(recall[present].mean()),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }
    for i, c in enumerate(L.CLASSES):
        out[f"recall_{c}"] = float(recall[i]) if present[i] else float("nan")
    out["n"] = int(y_true.size)
    return out


def confusion_rows(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray) -> pd.DataFrame:
    """One ``{actual, predicted}`` row per sample with canonical class names (DVC's confusion template)."""
    y_true, y_pred = _check_labels(np.asarray(y_true), np.asarray(y_pred))
    names = np.array(L.CLASSES)
    return pd.DataFrame({"actual": names[y_true], "predicted": names[y_pred]})


def confusion_table(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray,
                    normalize: str | None = None) -> pd.DataFrame:
    """7x7 confusion matrix (rows actual, columns predicted, canonical names); ``normalize='true'`` for rates."""
    y_true, y_pred = _check_labels(np.asarray(y_true), np.asarray(y_pred))
    cm = confusion_matrix(y_true, y_pred, labels=list(range(L.NUM_CLASSES)))
    if normalize == "true":
        with np.errstate(invalid="ignore", divide="ignore"):
            cm = cm / cm.sum(axis=1, keepdims=True)
    elif normalize is not None:
        raise EvaluationError(f"normalize={normalize!r}; expected None or 'true'")
    return pd.DataFrame(cm, index=pd.Index(L.CLASSES, name="actual"), columns=pd.Index(L.CLASSES, name="predicted"))


def evaluate(model: nn.Module, test_sets: Mapping[str, pd.DataFrame | str | os.PathLike], *,
             batch_size: int = 256, num_workers: int = 0, device: str | torch.device | None = None,
             progress: bool = True, image_cache: DecodedImages | None = None
             ) -> dict[str, tuple[Predictions, dict[str, float]]]:
    """`predict` + `compute_metrics` for each named test set; every test row must be labelled."""
    results = {}
    for name, data in test_sets.items():
        pred = predict(model, data, batch_size=batch_size, num_workers=num_workers, device=device,
                       progress=progress, image_cache=image_cache)
        if (pred.y_true < 0).any():
            raise EvaluationError(f"test set {name!r}: {(pred.y_true < 0).sum()} unlabeled rows")
        results[name] = (pred, compute_metrics(pred.y_true, pred.y_pred))
    return results


def flat_metrics(metrics_by_test: Mapping[str, Mapping[str, float]], prefix: str = "") -> dict[str, float]:
    """``{prefix}{test}_{metric}: value`` for a metrics.json with flat keys (NaN becomes None)."""
    out: dict[str, float | int | None] = {}
    for test, m in metrics_by_test.items():
        for k, v in m.items():
            if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
                out[f"{prefix}{test}_{k}"] = int(v)
                continue
            v = float(v)
            out[f"{prefix}{test}_{k}"] = None if np.isnan(v) else v
    return out


# --------------------------------------------------------------------------- cross-dataset tables
def tidy_rows(train_set: str, model: str, seed: int,
              metrics_by_test: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """The cross-dataset rows (`CROSS_COLUMNS`) of one trained model on several test sets."""
    rows = [{"train_set": train_set, "model": model, "seed": int(seed), "test_set": test, "metric": k,
             "value": float(v)} for test, m in metrics_by_test.items() for k, v in m.items()]
    return pd.DataFrame(rows, columns=list(CROSS_COLUMNS))


def read_cross_dataset(files: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """Concatenate tidy cross-dataset CSVs, checking columns and duplicate keys."""
    frames = []
    for f in files:
        df = pd.read_csv(f)
        if tuple(df.columns) != CROSS_COLUMNS:
            raise EvaluationError(f"{f}: columns {list(df.columns)}; expected {list(CROSS_COLUMNS)}")
        frames.append(df)
    if not frames:
        raise EvaluationError("no cross-dataset files given")
    tidy = pd.concat(frames, ignore_index=True)
    key = ["train_set", "model", "seed", "test_set", "metric"]
    dup = tidy.duplicated(key)
    if dup.any():
        raise EvaluationError(f"duplicate cross-dataset rows, e.g. {tidy.loc[dup, key].iloc[0].to_dict()}")
    return tidy


def aggregate_seeds(tidy: pd.DataFrame) -> pd.DataFrame:
    """Mean, sd (ddof 1) and number of seeds per (train_set, model, test_set, metric)."""
    missing = set(CROSS_COLUMNS) - set(tidy.columns)
    if missing:
        raise EvaluationError(f"tidy table lacks columns {sorted(missing)}")
    g = tidy.groupby(["train_set", "model", "test_set", "metric"], sort=True)["value"]
    return g.agg(mean="mean", sd=lambda v: v.std(ddof=1), n_seeds="count").reset_index()


def cross_dataset_matrix(tidy: pd.DataFrame, metric: str = "accuracy", model: str | None = None) -> pd.DataFrame:
    """train_set x test_set table of 'mean ± sd' strings (and `.attrs['mean']` the numeric means)."""
    agg = aggregate_seeds(tidy)
    agg = agg[agg["metric"] == metric]
    if model is not None:
        agg = agg[agg["model"] == model]
    if agg.empty:
        raise EvaluationError(f"no rows for metric {metric!r}" + (f" and model {model!r}" if model else ""))
    if agg.groupby(["train_set", "test_set"]).size().max() > 1:
        raise EvaluationError(f"several models per cell ({sorted(agg['model'].unique())}); pass model=")
    mean = agg.pivot(index="train_set", columns="test_set", values="mean")
    sd = agg.pivot(index="train_set", columns="test_set", values="sd")
    cells = [[f"{a:.3f}" + ("" if np.isnan(b) else f" ± {b:.3f}") for a, b in zip(ma, sa)]
             for ma, sa in zip(mean.to_numpy(), sd.to_numpy())]
    text = pd.DataFrame(cells, index=mean.index, columns=mean.columns)
    text.attrs["mean"] = mean
    return text


def plot_cross_dataset(tidy: pd.DataFrame, metric: str = "accuracy", model: str | None = None, ax=None):
    """Seaborn heatmap of the seed-mean `metric` (rows: training set, columns: test set), annotated mean ± sd."""
    import matplotlib.pyplot as plt  # lazy: matplotlib/seaborn take a second to import; only the notebooks plot
    import seaborn as sns

    text = cross_dataset_matrix(tidy, metric, model)
    if ax is None:
        _, ax = plt.subplots(figsize=(1.8 * text.shape[1] + 2, 0.8 * text.shape[0] + 1.5))
    sns.heatmap(text.attrs["mean"], annot=text.to_numpy(), fmt="", cmap="viridis", vmin=0, vmax=1, ax=ax,
                cbar_kws={"label": metric})
    ax.set_xlabel("test set")
    ax.set_ylabel("training set")
    return ax


def plot_confusion(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray, ax=None,
                   title: str = ""):
    """Seaborn heatmap of the row-normalised confusion matrix (recall on the diagonal)."""
    import matplotlib.pyplot as plt  # lazy: matplotlib/seaborn take a second to import; only the notebooks plot
    import seaborn as sns

    from syntfer.core.plots import only  # lazy, like matplotlib: syntfer.core.plots imports it

    table = confusion_table(y_true, y_pred, normalize="true")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4.2))
    with only(ax):  # one panel of a multi-panel figure: seaborn's overlap check need not draw the others
        sns.heatmap(table, annot=True, fmt=".2f", cmap="Blues", vmin=0, vmax=1, ax=ax, cbar=False)
    ax.set_title(title)
    return ax


def recall_vs_frequency(metrics: Mapping[str, float], train_counts: Mapping[str, int]) -> pd.DataFrame:
    """Per class: share of the training set and recall on a test set (the class-imbalance story)."""
    total = sum(train_counts.values())
    if total == 0:
        raise EvaluationError("training counts are all zero")
    return pd.DataFrame({"class": list(L.CLASSES),
                         "train_share": [train_counts.get(c, 0) / total for c in L.CLASSES],
                         "recall": [metrics[f"recall_{c}"] for c in L.CLASSES]})


# --------------------------------------------------------------------------- CLI: syntfer evaluate
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder (weights.pt + config.json)")
    parser.add_argument("--test", action="append", required=True, metavar="NAME=MANIFEST[@SPLIT]",
                        help="a labelled test manifest, optionally restricted to one split; repeatable")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--train-set", required=True, help="name of the training set (for the tidy CSV)")
    parser.add_argument("--seed", type=int, required=True, help="training seed (for the tidy CSV)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--num-workers", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    model = load_checkpoint(args.checkpoint)
    tests: dict[str, pd.DataFrame] = {}
    for spec in args.test:
        name, sep, rest = spec.partition("=")
        if not sep or not name or not rest:
            raise EvaluationError(f"--test {spec!r}: expected NAME=MANIFEST[@SPLIT]")
        manifest, _, split = rest.partition("@")
        tests[name] = as_frame(manifest, split=split or None)
    out = Path(args.out)
    results = evaluate(model, tests, batch_size=args.batch_size, num_workers=args.num_workers)
    metrics = {name: m for name, (_, m) in results.items()}
    for name, (pred, _) in results.items():
        write_text(out / f"confusion_{name}.csv", confusion_rows(pred.y_true, pred.y_pred).to_csv(index=False))
    write_json(out / "metrics.json", flat_metrics(metrics))
    tidy = tidy_rows(args.train_set, model.cfg.name, args.seed, metrics)
    write_text(out / "cross_dataset.csv", tidy.to_csv(index=False))
    print(json.dumps({n: {k: round(m[k], 4) for k in HEADLINE_METRICS} for n, m in metrics.items()}, indent=1))
    return 0
