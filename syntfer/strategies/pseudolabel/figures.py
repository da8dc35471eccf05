"""The pseudo-labeling notebook's figures (seaborn): score distributions, survivors, precision/recall,
reliability, a sample grid of the kept images.

matplotlib and seaborn are imported inside the functions: heavy, and only the notebook draws (the CLI and the
pipeline import this package without them).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from syntfer.core import labels as L
from syntfer.core.images import load_image
from syntfer.strategies.pseudolabel.selection import top_label


def plot_score_distributions(scores: pd.DataFrame, threshold: float | None = None):
    """Histogram of the top probability per argmax class; a dashed line at the threshold."""
    import seaborn as sns  # lazy: heavy, plotting only

    idx, conf = top_label(scores)
    ok = idx >= 0
    df = pd.DataFrame({"max p": conf[ok], "argmax": np.asarray(L.CLASSES)[idx[ok]]})
    g = sns.displot(df, x="max p", col="argmax", col_order=list(L.CLASSES), col_wrap=4, bins=20,
                    binrange=(0, 1), height=2.2, facet_kws={"sharey": False})
    if threshold is not None:
        for ax in g.axes.flat:
            ax.axvline(threshold, ls="--", color="k", lw=1)
    return g.figure


def plot_survivors(table: pd.DataFrame):
    """Bar chart of selected images per class for each threshold (from `survivors`)."""
    import seaborn as sns  # lazy: heavy, plotting only

    g = sns.catplot(table, x="label", y="n", hue="threshold", kind="bar", order=list(L.CLASSES),
                    height=3, aspect=2.2, palette="viridis")
    g.set_axis_labels("pseudo-label", "images kept")
    return g.figure


def plot_precision_recall(table: pd.DataFrame):
    """Precision and recall per class against the threshold (from `precision_recall`)."""
    import seaborn as sns  # lazy: heavy, plotting only

    long = table.melt(id_vars=["threshold", "label"], value_vars=["precision", "recall"], var_name="metric")
    g = sns.relplot(long, x="threshold", y="value", hue="label", col="metric", kind="line", marker="o",
                    hue_order=[*L.CLASSES, "all"], height=3, aspect=1.3)
    g.set(ylim=(0, 1.02))
    return g.figure


def plot_reliability(table: pd.DataFrame, ece: float):
    """Reliability diagram: accuracy vs confidence per bin, bin counts as bar widths' labels."""
    import matplotlib.pyplot as plt  # lazy: heavy, plotting only
    import seaborn as sns  # lazy: heavy, plotting only

    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
    t = table[table["n"] > 0]
    ax.bar(t["bin_low"], t["accuracy"], width=t["bin_high"] - t["bin_low"], align="edge", alpha=0.5, edgecolor="k")
    sns.scatterplot(t, x="confidence", y="accuracy", size="n", legend=False, ax=ax, color="C3")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (max p)", ylabel="accuracy",
           title=f"reliability (ECE {ece:.3f})")
    return fig


def plot_sample_grid(manifest: pd.DataFrame, per_class: int = 8, seed: int = 0, size: int = 64):
    """A grid of selected images, one row per class: a seeded random sample, highest score first."""
    import matplotlib.pyplot as plt  # lazy: heavy, plotting only

    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(L.NUM_CLASSES, per_class, figsize=(per_class * 0.9, L.NUM_CLASSES * 1.0),
                             squeeze=False)
    for r, c in enumerate(L.CLASSES):
        rows = manifest[manifest["label"] == c]
        if len(rows):
            rows = rows.sort_values(["score", "path"], ascending=[False, True])
            rows = rows.iloc[np.sort(rng.choice(len(rows), min(per_class, len(rows)), replace=False))]
        pick = rows
        for j, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(pick):
                row = pick.iloc[j]
                ax.imshow(load_image(row["path"], "RGB").resize((size, size)))
                ax.set_title(f"{row['score']:.2f}", fontsize=6)
            else:
                ax.axis("off")
        axes[r][0].axis("on")
        axes[r][0].set_ylabel(c, fontsize=7)
        if not len(pick):
            axes[r][0].text(0.5, 0.5, "none\nselected", ha="center", va="center", fontsize=6)
    fig.tight_layout()
    return fig
