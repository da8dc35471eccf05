"""Measurements of a synthetic training set that need one pass over its images (notebook 05_sets).

- `subset_positions`: at most n row positions of a set, drawn without replacement by a generator seeded
  with ``derive_seed(seed, "sets", name)`` (one set's draw never depends on another set), in manifest order.
- `judge_pass`: decodes every image once (a thread pool), applies the classifier's own eval transform
  (`syntfer.data.eval_transform`, the ops `syntfer.evaluation.predict` applies per image) to same-size
  batches, and runs one forward pass that yields both the softmax probabilities (canonical class order) and
  the penultimate features of `syntfer.distances.classifier_space` (the input of the classifier layer,
  captured by a forward pre-hook; checked against `penultimate_features` on the first batch).
- `expression_fidelity`: share of a set's images the judge classifies as the set's label, per class and
  overall (`syntfer.evaluation.target_accuracy_table`, renamed).
- `edit_sources`: which sets are expression edits of source faces (GAN sets), and the source face of
  each row — the pairs behind identity similarity. Other sets (copies such as pseudo-labeled images,
  whose ``source_path`` is the unedited original, and mixes of several strategies) get a reason instead.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import torch
from torch import nn

from syntfer import labels as L
from syntfer.images import load_image
from syntfer.seeding import numpy_rng

CONTROL_COLUMNS: tuple[str, ...] = ("control_x", "control_y")  # the editor's control values (syntfer.gan.sets)
# Where an edit's source face is recorded: a GAN set written by syntfer.gan.sets has it in source_path; once the
# set is copied (syntfer.mixing: whole sets, Mixed-SYN) source_path names the copied file and origin_path the face.
SOURCE_COLUMNS: tuple[str, ...] = ("origin_path", "source_path")


class SetMetricsError(ValueError):
    """A set that cannot be measured (bad labels, too few images, a model without a classifier layer)."""


def subset_positions(n_rows: int, n: int, seed: int, name: str) -> np.ndarray:
    """Sorted positions of at most `n` of `n_rows` rows (all when n <= 0 or n >= n_rows), seeded by (seed, name)."""
    if n <= 0 or n_rows <= n:
        return np.arange(n_rows)
    return np.sort(numpy_rng(seed, "sets", name).choice(n_rows, size=n, replace=False))


@dataclasses.dataclass
class JudgeOutputs:
    """Per-image softmax probabilities (canonical class order) and penultimate-layer features."""

    probs: np.ndarray
    features: np.ndarray


def _head_input(model: nn.Module) -> nn.Module:
    # the same classifier layer `syntfer.distances.penultimate_features` falls back to
    from syntfer.distances import _classifier_head

    return _classifier_head(model)


@torch.no_grad()
def judge_pass(model: nn.Module, paths: Sequence[str], *, batch_size: int = 256, workers: int = 2,
               check_features: bool = True) -> JudgeOutputs:
    """Probabilities and penultimate features of a syntfer classifier for every image, one decode each.

    Images of different sizes are batched by size (the transform is the model's eval transform either way).
    `check_features` compares the hooked features with `distances.penultimate_features` on the first batch
    and raises when they differ (a model whose classifier input is not its feature vector).
    """
    from syntfer.data import eval_transform, image_mode, pil_to_uint8
    from syntfer.distances import penultimate_features

    paths = [str(p) for p in paths]
    if not paths:
        raise SetMetricsError("no images to judge")
    cfg = model.cfg
    perm = L.permutation_to_canonical(cfg.labels)
    transform, mode = eval_transform(cfg), image_mode(cfg)
    model.eval()
    head = _head_input(model)
    captured: list[torch.Tensor] = []
    handle = head.register_forward_pre_hook(lambda _m, inputs: captured.append(inputs[0]))

    def decode(p: str) -> torch.Tensor:
        return pil_to_uint8(load_image(p, mode))

    probs = np.empty((len(paths), len(cfg.labels)), np.float32)
    feats: np.ndarray | None = None
    checked = not check_features
    try:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for start in range(0, len(paths), batch_size):
                images = list(pool.map(decode, paths[start:start + batch_size]))
                groups: dict[tuple[int, ...], list[int]] = {}
                for i, im in enumerate(images):
                    groups.setdefault(tuple(im.shape), []).append(i)
                for idx in groups.values():
                    x = transform(torch.stack([images[i] for i in idx]))
                    captured.clear()
                    logits = model(x).float()
                    if len(captured) != 1:
                        raise SetMetricsError(f"{type(model).__name__}: its classifier layer ran {len(captured)} "
                                              "times in one forward pass")
                    f = captured[0].flatten(1).float()
                    if not checked:
                        ref = penultimate_features(model, x).float()
                        if ref.shape != f.shape or not torch.allclose(ref, f, rtol=1e-4, atol=1e-5):
                            raise SetMetricsError(f"{type(model).__name__}: the classifier layer's input is not "
                                                  "the penultimate feature vector of distances.classifier_space")
                        checked = True
                    rows = np.asarray(idx) + start
                    probs[rows] = torch.softmax(logits, dim=1).numpy()
                    if feats is None:
                        feats = np.empty((len(paths), f.shape[1]), np.float32)
                    feats[rows] = f.numpy()
    finally:
        handle.remove()
    return JudgeOutputs(probs=probs[:, perm], features=feats)


def label_indices(labels: Sequence[str], where: str) -> np.ndarray:
    """Canonical indices of a synthetic set's labels; an empty or non-canonical label raises naming the set."""
    labels = [str(v) for v in labels]
    bad = [v for v in labels if v not in L.CLASS_TO_INDEX]
    if bad:
        raise SetMetricsError(f"{where}: {len(bad)} labels outside the 7 canonical classes, e.g. {bad[0]!r}")
    return np.array([L.CLASS_TO_INDEX[v] for v in labels], np.int64)


def expression_fidelity(probs: np.ndarray, labels: Sequence[str], where: str = "set") -> pd.DataFrame:
    """Per canonical class and 'all': ``class, n, fidelity, p_label`` (judge argmax == label; mean p(label))."""
    from syntfer.evaluation import target_accuracy_table

    y = label_indices(labels, where)
    if len(y) != len(probs):
        raise SetMetricsError(f"{where}: {len(probs)} predictions for {len(y)} labels")
    return target_accuracy_table(probs, y).rename(columns={"accuracy": "fidelity", "p_target": "p_label"})


def _filled(col: pd.Series) -> pd.Series:
    return col.notna() & (col.astype(str).str.len() > 0)


def edit_sources(frame: pd.DataFrame) -> tuple[pd.Series | None, str]:
    """The source face of every row when the set is an expression-edit (GAN) set, else None and why not.

    An edit set has the editor's control values (``control_x``, ``control_y``; `syntfer.gan.sets`) on every
    row; a row's source face is its ``origin_path`` when set (a copied set), else its ``source_path``. A set
    where only some rows are edits (a mix) is not one: its similarity would describe a part of it. A source
    that is the image itself raises (the similarity would be 1 by construction).
    """
    missing = [c for c in CONTROL_COLUMNS if c not in frame.columns]
    if missing:
        return None, f"no {' / '.join(missing)} column (not an edit set)"
    edits = _filled(frame[CONTROL_COLUMNS[0]]) & _filled(frame[CONTROL_COLUMNS[1]])
    if not edits.all():
        return None, f"only {int(edits.sum())} of {len(frame)} rows are edits (a mix)"
    sources = pd.Series("", index=frame.index, dtype=object)
    for c in reversed(SOURCE_COLUMNS):  # origin_path wins where both are set
        if c in frame.columns:
            sources = sources.where(~_filled(frame[c]), frame[c].astype(str))
    if (sources == "").any():
        i = int(np.flatnonzero((sources == "").to_numpy())[0])
        raise SetMetricsError(f"edit row {i} ({frame['path'].iloc[i]}) records no source face "
                              f"({' or '.join(SOURCE_COLUMNS)})")
    same = sources.to_numpy() == frame["path"].astype(str).to_numpy()
    if same.any():
        i = int(np.flatnonzero(same)[0])
        raise SetMetricsError(f"edit row {i}: its source face is the image itself ({sources.iloc[i]})")
    return sources, ""
