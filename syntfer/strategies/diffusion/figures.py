"""Figures and tables for notebook 04_diffusion (sample grids, fidelity bars, demographic balance)."""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from syntfer.core import labels as L
from syntfer.core.images import load_array

GROUPS: tuple[tuple[str, str], ...] = tuple((a, g) for g in ("male", "female")
                                            for a in ("child", "young", "adult", "middle-aged", "old"))


def sample_grid(manifest: pd.DataFrame, title: str = "", columns: Sequence[tuple[str, str]] = GROUPS,
                zoom: float = 0.9):
    """Emotion (rows) x (age, gender) (columns) grid, first image of each cell; empty cells stay blank. A manifest
    without age/gender columns shows each class's first faces instead (the column titles then do not apply)."""
    fig, axes = plt.subplots(len(L.CLASSES), len(columns),
                             figsize=(zoom * len(columns), zoom * len(L.CLASSES) + 0.6), squeeze=False)
    for r, cls in enumerate(L.CLASSES):
        for c, (age, gender) in enumerate(columns):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if {"age", "gender"} <= set(manifest.columns):
                cell = manifest[(manifest["label"] == cls) & (manifest["age"] == age) & (manifest["gender"] == gender)]
            else:  # faces without demographic truth (the user's own data): the class's c-th face
                cell = manifest[manifest["label"] == cls].iloc[c:c + 1]
            if len(cell):
                ax.imshow(load_array(cell["path"].iloc[0]))
            if c == 0:
                ax.set_ylabel(cls, fontsize=8)
            if r == 0:
                ax.set_title(f"{age}\n{gender}", fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def fidelity_plot(table: pd.DataFrame, title: str = "expression fidelity"):
    """Bars of per-class fidelity (rows: class, fidelity, set)."""
    fig, ax = plt.subplots(figsize=(8, 3.2))
    sns.barplot(data=table[table["class"] != "all"], x="class", y="fidelity", hue="set", ax=ax)
    ax.axhline(1 / L.NUM_CLASSES, color="grey", ls=":", lw=1, label="chance")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def demographic_balance(manifest: pd.DataFrame, columns: Sequence[str] = ("gender", "age", "race")) -> pd.DataFrame:
    """Counts per attribute value and class (tidy: attribute, value, class, n)."""
    rows = []
    for col in columns:
        for (val, cls), n in manifest.groupby([col, "label"]).size().items():
            rows.append({"attribute": col, "value": val, "class": cls, "n": int(n)})
    return pd.DataFrame(rows)


def balance_plot(balance: pd.DataFrame, title: str = "demographic balance of the kept set"):
    attrs = list(dict.fromkeys(balance["attribute"]))
    fig, axes = plt.subplots(1, len(attrs), figsize=(4 * len(attrs), 3), squeeze=False)
    for ax, a in zip(axes[0], attrs):
        d = balance[balance["attribute"] == a].groupby("value")["n"].sum().reset_index()
        sns.barplot(data=d, x="value", y="n", ax=ax, color="tab:blue")
        ax.set_title(a)
        ax.tick_params(axis="x", rotation=45, labelsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def shares_max_ratio(counts: pd.Series) -> float:
    """Largest / smallest count (1.0 = perfectly balanced)."""
    c = np.asarray(counts, dtype=float)
    return float(c.max() / c.min()) if len(c) and c.min() > 0 else float("inf")
