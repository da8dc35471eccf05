"""Measurements of a synthetic training set that need one pass over its images (notebook 06_sets).

- `subset_positions`: at most n row positions of a set, drawn without replacement by a generator seeded
  with ``derive_seed(seed, "sets", name)`` (one set's draw never depends on another set), in manifest order.
  (Probabilities, fidelity and judge-space features of a set come from the one judge, `syntfer.instruments.judge`.)
- `kid_subsets`, `distance_table`: FD and KID of every set against the reference faces in each named feature
  space (`syntfer.instruments.distances`), one row per (space, set), KID evaluated once when every subset would be
  the whole of both.
- `edit_sources`: which sets are expression edits of source faces (GAN sets), and the source face of
  each row — the pairs behind identity similarity. Other sets (copies such as pseudo-labeled images,
  whose ``source_path`` is the unedited original, and mixes of several strategies) get a reason instead.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from syntfer.core.seeding import numpy_rng
from syntfer.instruments import distances as DIST

CONTROL_COLUMNS: tuple[str, ...] = ("control_x", "control_y")  # the editor's control values (syntfer.strategies.gan.sets)
# Where an edit's source face is recorded: a GAN set written by syntfer.strategies.gan.sets has it in source_path; once the
# set is copied (syntfer.study.mixing: whole sets, Mixed-SYN) source_path names the copied file and origin_path the face.
SOURCE_COLUMNS: tuple[str, ...] = ("origin_path", "source_path")


class SetMetricsError(ValueError):
    """A set that cannot be measured (bad labels, too few images, a model without a classifier layer)."""


def subset_positions(n_rows: int, n: int, seed: int, name: str) -> np.ndarray:
    """Sorted positions of at most `n` of `n_rows` rows (all when n <= 0 or n >= n_rows), seeded by (seed, name)."""
    if n <= 0 or n_rows <= n:
        return np.arange(n_rows)
    return np.sort(numpy_rng(seed, "sets", name).choice(n_rows, size=n, replace=False))


KID_SUBSET_SIZE = 2000
"""Images per KID subset at most (docs/method.md §8: min(2000, n, n_reference))."""

DISTANCE_COLUMNS = ["set", "space", "n", "n_reference", "fd", "kid", "kid_sd", "kid_subset_size", "kid_subsets",
                    "fd_regularized"]
"""Columns of distances.csv (`distance_table`)."""


def kid_subsets(n: int, n_reference: int, subset_size: int = KID_SUBSET_SIZE) -> int:
    """How many KID subsets to average: 1 when a set and the reference have the same size and no more than
    `subset_size` images (every subset would be the whole of both: one evaluation is that average), else 100."""
    return 1 if n == n_reference <= subset_size else 100


def distance_table(spaces: Mapping[str, tuple[Mapping[str, np.ndarray], np.ndarray]], names: Sequence[str], *,
                   seed: int, subset_size: int = KID_SUBSET_SIZE) -> pd.DataFrame:
    """FD and KID of each set against the reference in each feature space
    (`syntfer.instruments.distances.distribution_distances`, KID seeded with `seed`, `kid_subsets` subsets of at most
    `subset_size`): `spaces` is {space: ({set: features}, reference features)}; one row per space, then set in the
    order of `names`, with the sample sizes (`DISTANCE_COLUMNS`)."""
    rows = []
    for space, (feats, ref) in spaces.items():
        for name in names:
            n_sub = kid_subsets(len(feats[name]), len(ref), subset_size)
            d = DIST.distribution_distances(feats[name], ref, space, n_subsets=n_sub, subset_size=subset_size,
                                            seed=seed)
            rows.append({"set": name, "space": space, "n": d["n"], "n_reference": d["n_reference"],
                         "fd": d[f"fd_{space}"], "kid": d[f"kid_{space}"], "kid_sd": d[f"kid_{space}_sd"],
                         "kid_subset_size": d[f"kid_{space}_subset_size"], "kid_subsets": n_sub,
                         "fd_regularized": d[f"fd_{space}_regularized"]})
    return pd.DataFrame(rows, columns=DISTANCE_COLUMNS)


def _filled(col: pd.Series) -> pd.Series:
    return col.notna() & (col.astype(str).str.len() > 0)


def edit_sources(frame: pd.DataFrame) -> tuple[pd.Series | None, str]:
    """The source face of every row when the set is an expression-edit (GAN) set, else None and why not.

    An edit set has the editor's control values (``control_x``, ``control_y``; `syntfer.strategies.gan.sets`) on every
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
