"""The report notebook's figures (notebook 08): each function draws one figure from the tables
`syntfer.study.report_tables` builds and returns it (a matplotlib Figure or a seaborn grid) for the notebook to
save and show (`syntfer.core.plots.Figures.show`). Every title ends with the run's data kind (`kind_note`), so a
figure cut out of the report keeps its provenance."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from syntfer.core import labels as L
from syntfer.core import plots
from syntfer.instruments import audit as AUDIT
from syntfer.study import report as REP
from syntfer.study import report_tables as RTAB

VERDICT_COLOURS = {"supported": "tab:green", "contradicted": "tab:red", "inconclusive": "tab:grey"}


def headline(claims: pd.DataFrame, primary_test: str, kind_note: str) -> plt.Figure:
    """The headline figure: every training-set claim's effect with its 95 % interval, one row each, coloured by
    its verdict after Holm; the test set is named where it is not `primary_test`."""
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(claims) + 1.4))
    for i, r in enumerate(claims.itertuples()):
        ax.errorbar(r.effect, i, xerr=[[r.effect - r.ci_low], [r.ci_high - r.effect]], fmt="o",
                    color=VERDICT_COLOURS[r.verdict_holm], capsize=3)
    ax.set_yticks(range(len(claims)),
                  [f"{REP.pretty(r.set_a)} vs {REP.pretty(r.set_b)} · {r.metric.replace('_', ' ')}"
                   + (f" · {r.test_set}" if r.test_set != primary_test else "") for r in claims.itertuples()],
                  fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, c="k", lw=1)
    ax.set_xlabel("effect (set a − set b), 95 % interval; colour: verdict after Holm "
                  "(green supported, red contradicted, grey inconclusive)")
    ax.set_title(f"the study's training-set claims on equal terms ({kind_note})")
    return fig


def composition(table: pd.DataFrame, kind_note: str) -> plt.Figure:
    """Images per class of each training set (numbers; colour: share of the set) beside its imbalance bar
    (`report_tables.composition`'s table)."""
    shares = table[list(L.CLASSES)].div(table["total"], axis=0)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 0.45 * len(table) + 1.8), sharey=True,
                                  gridspec_kw={"width_ratios": [4, 1]})
    sns.heatmap(shares, annot=table[list(L.CLASSES)].to_numpy(), fmt="d", cmap="Blues", vmin=0, ax=ax,
                cbar=False, annot_kws={"size": 8})
    ax.grid(False)
    ax.set_xlabel("class (numbers: images; colour: share of the set)")
    ax.set_ylabel("training set")
    sns.barplot(x=table["imbalance"], y=table.index, hue=table["strategy"], dodge=False, ax=ax2, legend=False)
    for bars in ax2.containers:
        ax2.bar_label(bars, fmt="%.1f", fontsize=8, padding=2)
    ax2.set_xlim(0, table["imbalance"].max() * 1.35)
    ax2.set_xlabel("imbalance (max/min)")
    fig.suptitle(f"training-set composition ({kind_note})")
    return fig


def cross_dataset(ev: pd.DataFrame, train_sets: Sequence[str], test_sets: Sequence[str],
                  metrics: Mapping[str, str], model: str, kind_note: str) -> plt.Figure:
    """One heatmap per headline metric: training set × test set, mean ± sd over seeds."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics) + 2, 0.55 * len(train_sets) + 1.8),
                             sharey=True)
    for ax, metric in zip(axes, metrics):
        mean = REP.metric_matrix(ev, metric, train_sets, test_sets)
        sd = REP.metric_matrix(ev, metric, train_sets, test_sets, "sd")
        with plots.only(ax):
            sns.heatmap(mean, annot=REP.mean_sd_text(mean, sd), fmt="", cmap="viridis", vmin=0, vmax=1, ax=ax,
                        cbar=False, annot_kws={"size": 8})
        ax.set_title(metric)
        ax.set_xlabel("test set")
        ax.set_ylabel("training set" if ax is axes[0] else "")
    fig.suptitle(f"cross-dataset results, {model}, mean ± sd over seeds ({kind_note})")
    fig.tight_layout()
    return fig


def per_class_recall(recall: pd.DataFrame, primary_test: str, kind_note: str) -> plt.Figure:
    """Heatmap of the training set × class recall matrix (`report_tables.per_class_recall`)."""
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(recall) + 1.6))
    sns.heatmap(recall, annot=True, fmt=".2f", cmap="magma", vmin=0, vmax=1, ax=ax, annot_kws={"size": 8},
                cbar_kws={"label": "recall"})
    ax.set_xlabel("class")
    ax.set_ylabel("training set")
    ax.set_title(f"per-class recall on {primary_test} test, mean over seeds ({kind_note})")
    return fig


def minority_gains(gains_long: pd.DataFrame, minority: Sequence[str], reference_set: str, primary_test: str,
                   kind_note: str) -> plt.Figure:
    """Bars of each candidate's recall gain per minority class over `reference_set` (long form of
    `report_tables.minority_gains`)."""
    fig, ax = plt.subplots(figsize=(8, 0.5 * gains_long["train_set"].nunique() + 1.6))
    sns.barplot(data=gains_long, y="train_set", x="recall_gain", hue="class", hue_order=list(minority), ax=ax)
    ax.axvline(0, c="k", lw=1)
    ax.set_xlabel(f"recall − recall of {reference_set} ({primary_test} test)")
    ax.set_ylabel("")
    ax.set_title(f"minority-class gains over {reference_set} ({kind_note})")
    return fig


def strategies(ev: pd.DataFrame, cross: pd.DataFrame, families: Sequence[str], train_sets: Sequence[str],
               test_sets: Sequence[str], kind_note: str) -> plt.Figure:
    """Balanced accuracy by family (top: bars = family means, dots = each set's seed mean; the dots' jitter is
    seeded) and by training set (bottom: error bars = sd over seeds)."""
    ba = ev[ev["metric"] == "balanced_accuracy"]
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(max(8, 0.8 * len(train_sets) + 3), 9))
    sns.barplot(data=ba, x="family", y="mean", hue="test_set", order=families, hue_order=test_sets, errorbar=None,
                alpha=0.75, ax=ax)
    np.random.seed(0)  # stripplot's jitter draws from NumPy's global RNG: seeded, the figure is the same on every run
    sns.stripplot(data=ba, x="family", y="mean", hue="test_set", order=families, hue_order=test_sets, dodge=True,
                  palette="dark:k", size=4, legend=False, ax=ax)
    ax.set_ylim(0, 1)
    ax.set_xlabel("")
    ax.set_ylabel("balanced accuracy")
    ax.set_title(f"mean-class accuracy by strategy ({kind_note})")
    cross_ba = cross[cross["metric"] == "balanced_accuracy"]
    sns.barplot(data=cross_ba, x="train_set", y="value", hue="test_set", order=train_sets, hue_order=test_sets,
                errorbar="sd", ax=ax2)
    ax2.set_ylim(0, 1)
    ax2.set_xlabel("")
    ax2.set_ylabel("balanced accuracy")
    ax2.tick_params(axis="x", rotation=35)
    for lab in ax2.get_xticklabels():
        lab.set_horizontalalignment("right")
    fig.tight_layout()
    return fig


def confusion(confusion: RTAB.Confusion, train_sets: Sequence[str], *, primary_test: str, model: str,
              runs_glob: str, kind_note: str) -> plt.Figure:
    """One row-normalised confusion matrix per training set, summed over its seeds
    (`report_tables.summed_confusion`), four to a row; a set without a run raises naming it."""
    n_cols = min(4, len(train_sets))
    n_rows = -(-len(train_sets) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.3 * n_cols, 4.0 * n_rows), squeeze=False)
    for ax, s in zip(axes.flat, train_sets):
        rate, n_seeds = RTAB.summed_confusion(confusion, s, model=model, runs_glob=runs_glob)
        with plots.only(ax):  # seaborn redraws the whole figure per heatmap otherwise
            sns.heatmap(rate, annot=True, fmt=".2f", cmap="Blues", vmin=0, vmax=1, cbar=False, ax=ax,
                        annot_kws={"size": 7})
        ax.set_title(f"{s} ({n_seeds} seed{'s' if n_seeds > 1 else ''})", fontsize=10)
    for ax in list(axes.flat)[len(train_sets):]:
        ax.set_visible(False)
    fig.suptitle(f"confusion on {primary_test} test, rows = true class ({kind_note})", y=1.0)
    fig.tight_layout()
    return fig


def scaling(curve: pd.DataFrame, *, reference_set: str, primary_test: str, set_size: int,
            kind_note: str) -> plt.Figure:
    """Balanced accuracy against training images (log) per source, with 95 % bands (`report.curve_table`); the
    reference set's line is thicker, the study's size N a dotted line."""
    fig, ax = plt.subplots(figsize=(8, 5))
    for src, g in curve.groupby("source", sort=False):
        g = g.sort_values("size")
        ax.plot(g["size"], g["balanced_accuracy"], marker="o", label=REP.pretty(src),
                lw=2.5 if src == reference_set else 1.5)
        ax.fill_between(g["size"], g["ci_low"], g["ci_high"], alpha=0.15)
    ax.set_xscale("log")
    ax.set_xlabel("training images (log)")
    ax.set_ylabel(f"balanced accuracy, {primary_test} test")
    ax.set_ylim(0, 1)
    ax.axvline(set_size, c="grey", ls=":", lw=1)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(f"data scaling, mean over seeds with 95 % intervals ({kind_note})")
    return fig


def distances(dist: pd.DataFrame, kind_note: str) -> sns.FacetGrid:
    """FD and KID (one panel each) per set, bars per feature space (`report.distance_rows`; other measures left
    out)."""
    main = dist[dist["measure"].isin(["fd", "kid"])]
    g = sns.catplot(data=main, kind="bar", y="set", x="value", hue="space", col="measure", sharex=False,
                    height=0.4 * main["set"].nunique() + 2, aspect=1.3)
    g.set_axis_labels("distance to real faces (lower = closer)", "")
    g.figure.suptitle(f"FD and KID per feature space ({kind_note})", y=1.03)
    return g


def fidelity_per_class(fpc: pd.DataFrame, kind_note: str) -> plt.Figure:
    """Heatmap of expression fidelity per set × class, the whole set (``all``) last."""
    fig, ax = plt.subplots(figsize=(9.5, 0.45 * fpc["set"].nunique() + 1.6))
    sns.heatmap(fpc.pivot(index="set", columns="class", values="fidelity").reindex(columns=[*L.CLASSES, "all"]),
                annot=True, fmt=".2f", cmap="viridis", vmin=0, vmax=1, ax=ax, annot_kws={"size": 8},
                cbar_kws={"label": "expression fidelity"})
    ax.set_title(f"share of images the judge labels as the intended class ({kind_note})")
    return fig


def demographics(demo: pd.DataFrame, attribute: str, kind_note: str) -> sns.FacetGrid:
    """Shares of `attribute`'s values per set over all images (`syntfer.instruments.audit.plot_demographics`),
    titled with the bases they rest on."""
    overall = demo[demo["label"] == "all"]
    g = AUDIT.plot_demographics(demo, attribute)
    g.figure.suptitle(f"{attribute} by set ({kind_note}) — basis: "
                      f"{', '.join(sorted(overall.loc[overall['attribute'] == attribute, 'basis'].unique()))}",
                      y=1.03)
    g.tick_params(axis="x", rotation=30)
    return g


def privacy(priv: pd.DataFrame, kind_note: str) -> sns.FacetGrid:
    """Mean similarity to the nearest real training face and the share above the threshold, per set and feature
    space (notebook 06's privacy summary)."""
    priv_long = priv.melt(id_vars=["set", "space"], value_vars=["similarity_mean", "share_flagged"],
                          var_name="measure")
    g = sns.catplot(data=priv_long, kind="bar", x="set", y="value", hue="space", col="measure", sharey=False,
                    height=3.4, aspect=1.4)
    g.set_axis_labels("", "")
    g.set_titles("{col_name}")
    g.tick_params(axis="x", rotation=30)
    g.figure.suptitle(f"similarity to the nearest real training face; share above threshold ({kind_note})", y=1.04)
    return g
