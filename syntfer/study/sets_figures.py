"""The set-measurement notebook's figures (notebook 06): each function draws one figure from the tables
`syntfer.study.sets_tables` and `syntfer.instruments.setmetrics` build and returns it (a matplotlib Figure or a
seaborn grid) for the notebook to save and show (`syntfer.core.plots.Figures.show`). Every title ends with where
the numbers come from (`where`, `syntfer.study.sets_tables.WHERE`), so a figure cut out keeps its provenance."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from syntfer.core import labels as L
from syntfer.instruments import audit as AUDIT


def fidelity_per_class(wide: pd.DataFrame, judge_name: str, where: str) -> plt.Figure:
    """Heatmap of expression fidelity, set × class (`sets_tables.fidelity_wide`), annotated, on [0, 1]."""
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(wide) + 1.5))
    sns.heatmap(wide, annot=True, fmt=".2f", vmin=0, vmax=1, cmap="viridis", ax=ax, cbar_kws={"label": "fidelity"})
    ax.set(xlabel="", ylabel="", title=f"expression fidelity per class, judge = {judge_name} — {where}")
    return fig


def distances(table: pd.DataFrame, reference_name: str, where: str) -> sns.FacetGrid:
    """FD and KID of every set (`setmetrics.distance_table`): one bar panel per feature space (rows) and statistic
    (columns), each with its own x scale."""
    n_sets = table["set"].nunique()
    long = table.melt(id_vars=["set", "space"], value_vars=["fd", "kid"], var_name="statistic")
    g = sns.catplot(long, kind="bar", y="set", x="value", col="statistic", row="space", sharex=False,
                    height=0.3 * n_sets + 1.0, aspect=5.0 / (0.3 * n_sets + 1.0), color="tab:blue")
    g.set_titles("{row_name} space · {col_name}")
    g.set_axis_labels("", "")
    for ax in g.axes.flat:
        ax.xaxis.set_major_locator(plt.MaxNLocator(4))
    g.figure.suptitle(f"distance to {reference_name} (lower = closer) — {where}", y=1.02)
    return g


def identity_similarity(idsim: pd.DataFrame, where: str) -> sns.FacetGrid:
    """Box plot of the edit ↔ source identity similarity per target class, one box per edit set
    (`sets_tables.identity_similarity`'s per-image table)."""
    g = sns.catplot(idsim, kind="box", x="label", y="similarity", hue="set", order=list(L.CLASSES), height=3,
                    aspect=2.4, fliersize=1)
    g.set_axis_labels("target expression", "cosine similarity edit ↔ source")
    g.figure.suptitle(f"identity preservation of expression edits — {where}", y=1.03)
    return g


def privacy(table: pd.DataFrame, threshold: float, where: str) -> sns.FacetGrid:
    """Histogram of each set's similarity to the nearest real training face with the flag threshold
    (`syntfer.instruments.audit.plot_privacy` of the privacy check's per-image table)."""
    g = AUDIT.plot_privacy(table, threshold)
    g.figure.suptitle(f"similarity to the nearest real training face — {where}", y=1.03)
    return g


def demographics(table: pd.DataFrame, attribute: str, where: str) -> sns.FacetGrid:
    """Shares of each value of `attribute` over all images, one bar group per set and basis (a mix is audited on
    prompts for its diffusion rows, on truth for the rest; `syntfer.instruments.audit.plot_demographics`)."""
    g = AUDIT.plot_demographics(table.assign(set=table["set"] + " · " + table["basis"]), attribute)
    for ax in g.axes.flat:
        plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    g.figure.suptitle(f"{attribute} by set · basis — {where}", y=1.05)
    return g
