# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     name: syntfer
#     display_name: syntfer
#     language: python
# ---

# %% [markdown]
# # 08 · Report: can synthetic faces replace or extend real FER training data?
#
# **Question.** Trained on synthetic faces (pseudo-labeled synthetic-identity collections, diffusion renders,
# GAN expression edits, the Mixed-SYN union of all of them) or on a synthetic set joined with RAF-DB's training
# split (hybrids), how close does a classifier come to one trained on real data — on its own test split and
# across datasets — and where does synthetic data help (the rare classes disgust, fear, anger)? And what are
# the synthetic sets themselves: how far from real faces, how faithful to the asked-for expression, how
# identity-preserving, whom they show, and whether they copy real training faces?
#
# This notebook computes nothing new: it reads what the pipeline already wrote — the summary stage's tables
# (`syntfer summarize`: mean ± sd over seeds of every training set × test set), each training run's
# confusion matrix on the primary test set, each training set's manifest, and the set measurements of
# notebook 06 — and lays them out as the paper's kinds of tables and figures. Every figure is saved under
# `out_dir/figures`; `out_dir/headline.csv` is the compact table docs/results.md quotes. A missing required input
# is an error naming its path; an optional section whose input this run did not produce says so and is
# counted in `out_dir/sections.csv` — nothing is skipped silently.

# %% tags=["parameters"]
summary_dir = "outputs/results/summary"  # syntfer summarize: metrics.json, eval.csv, cross_dataset.csv (+ pseudolabel.csv, synthetic.csv, privacy.csv)
sets_dir = "outputs/results/sets"  # notebook 06: synthetic.csv, fidelity_per_class.csv, privacy_summary.csv, demographics.csv (each optional)
train_sets_dir = "outputs/sets"  # one folder per training set holding its manifest.csv
runs_glob = "outputs/train/*/cross_dataset.csv"  # one tidy CSV per training set; s<seed>/confusion_<test>.csv beside it
model = "cnn_tiny"  # backbone to report (the training grid's model); empty: the only model in eval.csv
primary_test = "rafdb"  # test set of the per-class recall, minority-gain and confusion sections
reference_set = "real_rafdb"  # real training set the minority-class gains are measured against
minority_classes = "disgust,fear,anger"  # comma-separated classes of the minority-gain table
min_seeds = 1  # closing check: every training set x test set cell has at least this many seeds (paper tables: 3)
train_dir = "outputs/train"  # per training set: s<seed>/confusion_<test>.csv, the findings' per-image predictions
pseudolabel_dirs = "outputs/sets"  # pseudolabel_<source>/scores.csv + metrics.json (its truth file): the threshold finding
diffusion_dir = "outputs/diffusion"  # attributes_<backend>.csv: what the diffusion sets show (demographic finding)
threshold = 0.3  # the pseudo-label threshold τ of the run ...
strict_threshold = 0.9  # ... and the stricter one it is compared with
per_class = 200  # the run's top-K per class
draws = 2000  # bootstrap draws per finding
matched_real = "real_rafdb_matched"  # the real split drawn at the study's set size: every "alone vs real" verdict's other side
set_domains = "diffusion_:ref_web,gan_:ref_ffhq"  # set-name prefix: its generator's look ref_<x>; its oracle is oracle_<x>
set_size = 1400  # N, the size of every compared set (study.set_size): the closing check that they are
alpha = 0.05  # family-wise error of the findings (Holm)
scaling_dir = "outputs/scaling"  # notebook 07: <source>/n<size>/s<seed>/confusion_<test>.csv (optional section)
findings_metrics = "outputs/results/findings.json"  # the findings' effects as flat metrics (`dvc exp show`)
out_dir = "outputs/results/report"  # headline.csv, the tables below, sections.csv, figures/

# %%
import glob
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

from syntfer.instruments import audit as AUDIT
from syntfer.engine import evaluation as EV
from syntfer.core import labels as L
from syntfer.core import provenance as PV
from syntfer.core import plots
from syntfer.study import report as REP
from syntfer.study import summary as SUM
from syntfer.core import tables as T
from syntfer.instruments.attributes import ATTRIBUTES as READ_ATTRIBUTES
from syntfer.strategies.pseudolabel import attach_truth, read_scores
from syntfer.strategies.diffusion import STRATEGY as DIFFUSION
from syntfer.engine.data import as_frame, describe_frame
from syntfer.core.storage import write_json

minority = [L.canonical(c) for c in minority_classes.split(",") if c.strip()]
if not minority:
    raise ValueError("minority_classes is empty")
out = Path(out_dir)
figs = plots.Figures(out / "figures")  # every figure: out_dir/figures/<name>.png
summary, sets = Path(summary_dir), Path(sets_dir)
sns.set_theme(style="whitegrid", context="notebook")

# Set names say their strategy (syntfer.study.report.STRATEGIES: the prefix written by the strategies' stages)
FAMILIES = list(REP.FAMILY_LABELS.values())
HEADLINE = REP.HEADLINE_METRICS
sections = REP.Sections()  # every section and whether this run produced its input (sections.csv)

metrics_path = T.require_file(summary / "metrics.json", "summary metrics (written by `syntfer summarize`)")
metrics = json.loads(metrics_path.read_text())
# where the numbers come from: every stage's inputs and their kinds, merged by `syntfer summarize` (world, real or
# mixed; syntfer.core.provenance reads each input's kind from the data itself)
if not isinstance(metrics.get("inputs"), dict) or metrics.get("data_kind") not in ("world", "real", "mixed"):
    raise ValueError(f"{metrics_path}: no inputs/data_kind (run `syntfer summarize --inputs …`): the numbers would "
                     "have no provenance")
data_kind, inputs, skipped_by_stage = metrics["data_kind"], metrics["inputs"], metrics.get("skipped", {})
kind_note = {"world": "procedural-world stand-ins", "real": "the user's real data",
             "mixed": "part world, part real inputs"}[data_kind]
if "eval" not in metrics:
    raise ValueError(f"{metrics_path}: no 'eval' section (was `syntfer summarize` given --eval files?)")
eval_path = T.require_file(summary / "eval.csv", "aggregated cross-dataset table (syntfer summarize)")
cross_path = T.require_file(summary / "cross_dataset.csv", "per-seed cross-dataset table (syntfer summarize)")
eval_all = T.read_table(eval_path, ["train_set", "model", "test_set", "metric", "mean", "sd", "n_seeds"])
cross_all = EV.read_cross_dataset([cross_path])
models = sorted(eval_all["model"].unique())
if model and model not in models:
    raise ValueError(f"{eval_path}: no results for model {model!r}; models: {models}")
if not model and len(models) != 1:
    raise ValueError(f"{eval_path}: several models {models}; name one with the `model` parameter")
chosen = model or models[0]
ev = eval_all[eval_all["model"] == chosen].copy()
cross = cross_all[cross_all["model"] == chosen].copy()
for t in (ev, cross):
    t["strategy"] = [REP.strategy_of(s).name for s in t["train_set"]]
    t["family"] = [REP.family_label(s) for s in t["train_set"]]
train_sets = REP.order_sets(ev["train_set"].unique(), first=reference_set)  # by strategy, the reference first
tests_found = sorted(ev["test_set"].unique())
if primary_test not in tests_found:
    raise ValueError(f"{eval_path}: primary_test {primary_test!r} has no results; test sets: {tests_found}")
test_sets = [primary_test] + [t for t in tests_found if t != primary_test]
if reference_set not in train_sets:
    raise ValueError(f"{eval_path}: reference_set {reference_set!r} has no results; training sets: {train_sets}")
families = [f for f in FAMILIES if f in set(ev["family"])]
print(f"model {chosen}; {len(train_sets)} training sets × {len(test_sets)} test sets; {data_kind} data")

# %% [markdown]
# ## 0 · Findings: what this run says about the paper's kinds of claims, on equal terms
# Each row is a claim of the kind the paper makes, tested on this run: the **effect** is a paired difference on the
# same test images (every seed paired), the **95 % interval** comes from a bootstrap over test images and seeds
# (`syntfer.study.report`), and the raw **verdict** is read off the interval alone — *supported* when it lies wholly on
# the side the claim predicts, *contradicted* when wholly on the other side, *inconclusive* when it straddles zero.
# The claims are one family, so each also has a bootstrap p-value and **Holm's** adjustment over all of them
# (`p_holm`, `verdict_holm` at family-wise error `alpha`).
#
# The comparisons are on equal terms: a strategy's set alone is compared with the real RAF-DB-stand-in training
# split **drawn at the same size N** (`matched_real`), trained for the same optimizer steps; each generator's set
# with the **oracle** of its look (truth-labelled renders at N: a perfect generator of that look), and each oracle
# with the size-matched real split (what the look itself costs); a hybrid with the whole real split **given the
# same optimizer steps**. `n_a`/`n_b` (images in each training set) and `steps_a`/`steps_b` (optimizer steps per
# seed) say so on every row. Balanced accuracy is mean per-class recall; recalls are on RAF-DB test.

# %%
finding_parts = []
trained = sorted(p.name for p in Path(train_dir).iterdir() if (p / "cross_dataset.csv").is_file())
domains = SUM.parse_pairs(set_domains, ":")
finding_parts.append(REP.training_findings(train_dir, [t for t in trained if t != reference_set],
                                           real=reference_set, matched_real=matched_real, set_domains=domains,
                                           primary_test=primary_test,
                                           other_tests=[t for t in ("affectnet", "fer2013") if t != primary_test],
                                           minority=minority, draws=draws, seed=0))
for scores_file in sorted(Path(pseudolabel_dirs).glob("pseudolabel_*/scores.csv")):
    source = scores_file.parent.name.removeprefix("pseudolabel_")
    pl_metrics = json.loads((scores_file.parent / "metrics.json").read_text())
    truth_file = pl_metrics.get("truth_csv", "")  # what 03 measured precision against; empty: no truth (skipped)
    if truth_file:
        scores = attach_truth(read_scores(scores_file), truth_file)
        scores["path"] = scores["path"].astype(str)
        finding_parts.append(REP.pseudolabel_finding(scores, source, tau_low=threshold, tau_high=strict_threshold,
                                                     per_class=per_class or None, draws=draws, seed=0))
    else:
        finding_parts.append(REP.skipped_finding(
            REP.pseudolabel_claim(source, threshold, strict_threshold), "pseudo-label threshold",
            "precision_vs_truth", f"pseudolabel_{source}", f"pseudolabel_{source}",
            pl_metrics.get("skipped", {}).get("precision", f"no truth for {source}")))
# demographic balance: generated and real faces read by the same instrument (the attribute reader, notebook 04)
real_reads = Path(diffusion_dir) / "attributes_real_train.csv"
if not real_reads.is_file():  # no attribute reader (01 skipped it): each diffusion set's claims, skipped with why
    why = skipped_by_stage.get("diffusion", {}).get("demographic_fidelity", f"{real_reads} not written")
    for name in (t for t in trained if t.startswith(DIFFUSION.prefix)):
        for attribute in READ_ATTRIBUTES:
            finding_parts.append(REP.skipped_finding(REP.demographic_claim(name, attribute, reference_set),
                                                     "demographic balance", f"normalized_entropy_{attribute}", name,
                                                     reference_set, why))
else:
    real_read = pd.read_csv(real_reads, keep_default_na=False)
    for reads in sorted(Path(diffusion_dir).glob("attributes_*.csv")):
        kind = reads.stem.removeprefix("attributes_")
        if kind == "real_train":
            continue
        name = DIFFUSION.prefix + kind.replace("-", "_")  # backend embedded-au -> set diffusion_embedded_au
        finding_parts.append(REP.demographic_finding(pd.read_csv(reads), real_read, name, reference_set,
                                                     READ_ATTRIBUTES, draws=draws, seed=0))
findings = pd.concat([f for f in finding_parts if len(f)] or [pd.DataFrame(columns=list(REP.FINDING_COLUMNS))],
                     ignore_index=True)
findings = REP.adjust(findings, alpha)
T.write_csv(findings, out / "findings.csv")
flat_metrics = REP.findings_metrics(findings)  # findings.json (written below, with the scaling curve)
# the headline figure (README, reports/): every training-set claim's effect with its 95 % interval
train_kinds = findings[findings["metric"].str.startswith(("balanced_accuracy", "recall_"))].reset_index(drop=True)
if len(train_kinds):
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(train_kinds) + 1.4))
    colour = {"supported": "tab:green", "contradicted": "tab:red", "inconclusive": "tab:grey"}
    for i, r in enumerate(train_kinds.itertuples()):
        ax.errorbar(r.effect, i, xerr=[[r.effect - r.ci_low], [r.ci_high - r.effect]], fmt="o",
                    color=colour[r.verdict_holm], capsize=3)
    ax.set_yticks(range(len(train_kinds)),
                  [f"{REP.pretty(r.set_a)} vs {REP.pretty(r.set_b)} · {r.metric.replace('_', ' ')}"
                   + (f" · {r.test_set}" if r.test_set != primary_test else "") for r in train_kinds.itertuples()],
                  fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, c="k", lw=1)
    ax.set_xlabel("effect (set a − set b), 95 % interval; colour: verdict after Holm "
                  "(green supported, red contradicted, grey inconclusive)")
    ax.set_title(f"the study's training-set claims on equal terms ({kind_note})")
    figs.show(fig, "headline")
shown = findings.assign(interval=[f"[{lo:+.3f}, {hi:+.3f}]" for lo, hi in zip(findings["ci_low"], findings["ci_high"])])
sections.record("findings", train_dir, len(findings) > 0, "no training set of this run is a claim's subject")
display(Markdown(
    f"**{(findings['verdict'] == 'supported').sum()} supported, {(findings['verdict'] == 'contradicted').sum()} "
    f"contradicted, {(findings['verdict'] == 'inconclusive').sum()} inconclusive** by the raw intervals; after Holm "
    f"over {findings['p_value'].notna().sum()} claims: {(findings['verdict_holm'] == 'supported').sum()} supported, "
    f"{(findings['verdict_holm'] == 'contradicted').sum()} contradicted, "
    f"{(findings['verdict_holm'] == 'inconclusive').sum()} inconclusive"
    + (f"; {(findings['verdict'] == REP.SKIPPED).sum()} claims not tested by this run (their rows say why)"
       if (findings["verdict"] == REP.SKIPPED).any() else "") + f" ({kind_note}; "
    f"{int(findings['n_seeds'].max()) if len(findings) else 0} seeds per training set)"))
shown[["claim", "effect", "interval", "verdict", "p_holm", "verdict_holm", "n_a", "steps_a", "n_b", "steps_b",
       "test_set", "n_seeds", *(["reason"] if (findings["verdict"] == REP.SKIPPED).any() else [])]].style.format({"effect": "{:+.3f}", "p_holm": "{:.4f}", "n_a": "{:.0f}",
                                             "steps_a": "{:.0f}", "n_b": "{:.0f}", "steps_b": "{:.0f}"},
                                            na_rep="—").hide(axis="index")

# %% [markdown]
# ## 1 · Where every number comes from
# The data kind travels with the numbers: `syntfer summarize` writes it into `metrics.json`, and this report
# refuses to run when asked to label the numbers otherwise. The table lists every input file this report read.

# %%
if data_kind == "world":
    banner = ("> ⚠️ **Every number in this report comes from procedural-world stand-ins** (`data_kind = world`). "
              "The datasets named rafdb, affectnet and fer2013 are the world's imitations of RAF-DB, AffectNet and "
              "FER2013: **no number here is a RAF-DB, AffectNet or FER2013 result**, and none can be compared "
              "with the paper's tables. They show that the pipeline runs end to end and how the study's "
              "comparisons behave on data whose truth is known.")
elif data_kind == "real":
    banner = ("> **Every input of this run is the user's own data** (`data_kind = real`; no world render among "
              "them): its numbers are real-data results.")
else:
    banner = ("> ⚠️ **This run's inputs are part world stand-ins, part real data** (`data_kind = mixed`): a number "
              "resting on a world input is a world result. The table says which input is which.")
banner += "\n>\n" + PV.banner(inputs, "this run").split("\n>\n", 1)[1]  # the per-input table
display(Markdown(banner))
skipped_table = pd.DataFrame([{"stage": st, "measurement": what, "reason": why}
                              for st, d in skipped_by_stage.items() for what, why in d.items()],
                             columns=["stage", "measurement", "reason"])
T.write_csv(skipped_table, out / "skipped.csv")
if len(skipped_table):
    T.show(skipped_table.set_index(["stage", "measurement"]), "measurements this run skipped, and why")
seeds = cross.groupby(["train_set", "test_set"])["seed"].nunique()
provenance = pd.DataFrame([
    {"input": str(metrics_path), "what": "summary metrics", "detail": f"sections {sorted(metrics)}"},
    {"input": str(eval_path), "what": "mean ± sd over seeds", "detail": f"{len(eval_all)} rows, models {models}"},
    {"input": str(cross_path), "what": "per-seed results", "detail": f"{len(cross_all)} rows; seeds per cell "
                                                                     f"{seeds.min()}–{seeds.max()}"},
    {"input": runs_glob, "what": "per-run confusion matrices", "detail": f"confusion_{primary_test}.csv per run"},
    {"input": train_sets_dir, "what": "training-set manifests", "detail": f"{len(train_sets)} sets"},
    {"input": sets_dir, "what": "synthetic-set measurements (optional)",
     "detail": "exists" if sets.is_dir() else "folder does not exist: its sections are not produced"},
])
provenance

# %% [markdown]
# ## 2 · The training sets: images per class and imbalance
# Counted from each training set's manifest (the rows the trainer reads, its own validation part included).
# Imbalance = largest class / smallest non-empty class. Real datasets are skewed toward happy and neutral; the
# curated synthetic sets are balanced by construction, and hybrids inherit the real part's skew.

# %%
comp_rows = []
for s in train_sets:
    manifest = T.require_file(Path(train_sets_dir) / s / "manifest.csv", f"manifest of training set {s!r}")
    comp_rows.append(describe_frame(as_frame(manifest), s))
composition = pd.concat(comp_rows, ignore_index=True).set_index("set")
composition.insert(0, "strategy", [REP.strategy_of(s).name for s in composition.index])
T.write_csv(composition, out / "composition.csv", index=True)
untrained = sorted(p.name for p in Path(train_sets_dir).iterdir() if p.is_dir() and p.name not in train_sets)
if untrained:
    print(f"set folders in {train_sets_dir} without training results (not in this report): {untrained}")
composition.style.format({"imbalance": "{:.1f}"}).background_gradient(subset=list(L.CLASSES), cmap="Blues", axis=1)

# %%
shares = composition[list(L.CLASSES)].div(composition["total"], axis=0)
fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 0.45 * len(train_sets) + 1.8), sharey=True,
                              gridspec_kw={"width_ratios": [4, 1]})
sns.heatmap(shares, annot=composition[list(L.CLASSES)].to_numpy(), fmt="d", cmap="Blues", vmin=0, ax=ax,
            cbar=False, annot_kws={"size": 8})
ax.grid(False)
ax.set_xlabel("class (numbers: images; colour: share of the set)")
ax.set_ylabel("training set")
sns.barplot(x=composition["imbalance"], y=composition.index, hue=composition["strategy"], dodge=False, ax=ax2,
            legend=False)
for bars in ax2.containers:
    ax2.bar_label(bars, fmt="%.1f", fontsize=8, padding=2)
ax2.set_xlim(0, composition["imbalance"].max() * 1.35)
ax2.set_xlabel("imbalance (max/min)")
fig.suptitle(f"training-set composition ({kind_note})")
figs.show(fig, "composition")
sections.record("training-set composition", train_sets_dir, True)

# %% [markdown]
# ## 3 · Cross-dataset results
# Every trained model is tested once on every test set. Rows: training set (grouped by strategy); columns: test
# set. Cells: mean over seeds, ± the sample sd when there are at least two seeds. Overall accuracy rewards the
# frequent classes; mean-class (balanced) accuracy and macro-F1 weigh every class equally.

# %%
fig, axes = plt.subplots(1, len(HEADLINE), figsize=(4.2 * len(HEADLINE) + 2, 0.55 * len(train_sets) + 1.8),
                         sharey=True)
for ax, metric in zip(axes, HEADLINE):
    mean = REP.metric_matrix(ev, metric, train_sets, test_sets)
    sd = REP.metric_matrix(ev, metric, train_sets, test_sets, "sd")
    with plots.only(ax):
        sns.heatmap(mean, annot=REP.mean_sd_text(mean, sd), fmt="", cmap="viridis", vmin=0, vmax=1, ax=ax,
                    cbar=False, annot_kws={"size": 8})
    ax.set_title(metric)
    ax.set_xlabel("test set")
    ax.set_ylabel("training set" if ax is axes[0] else "")
fig.suptitle(f"cross-dataset results, {chosen}, mean ± sd over seeds ({kind_note})")
fig.tight_layout()
figs.show(fig, "cross_dataset")
sections.record("cross-dataset results", eval_path, True)

# %% [markdown]
# ## 4 · Per-class recall on the primary test set
# Recall of each class on the primary test set (mean over seeds). The paper's case for synthetic data is the
# rare classes: the second table is the gain in recall of disgust, fear and anger (the `minority_classes`) of
# each synthetic or hybrid training set over the real reference set (`reference_set`).

# %%
rec = ev[(ev["test_set"] == primary_test) & ev["metric"].str.startswith("recall_")].copy()
rec["class"] = rec["metric"].str.removeprefix("recall_")
per_class = rec.pivot(index="train_set", columns="class", values="mean").reindex(index=train_sets,
                                                                                  columns=list(L.CLASSES))
T.write_csv(rec[["train_set", "strategy", "class", "mean", "sd", "n_seeds"]].rename(columns={"mean": "recall"}),
            out / "per_class_recall.csv")
fig, ax = plt.subplots(figsize=(9, 0.45 * len(train_sets) + 1.6))
sns.heatmap(per_class, annot=True, fmt=".2f", cmap="magma", vmin=0, vmax=1, ax=ax, annot_kws={"size": 8},
            cbar_kws={"label": "recall"})
ax.set_xlabel("class")
ax.set_ylabel("training set")
ax.set_title(f"per-class recall on {primary_test} test, mean over seeds ({kind_note})")
figs.show(fig, "per_class_recall")
sections.record("per-class recall", eval_path, True)

# %%
candidates = [s for s in train_sets if REP.family_label(s) != "real"]
if sections.record("minority-class gains", eval_path, bool(candidates),
                   "no synthetic or hybrid training set has results in this run"):
    gains = per_class.loc[candidates, minority] - per_class.loc[reference_set, minority]
    gains.index.name = "train_set"
    gains_long = gains.reset_index().melt(id_vars="train_set", var_name="class", value_name="recall_gain")
    gains_long["reference_set"] = reference_set
    T.write_csv(gains_long, out / "minority_gains.csv")
    display(gains.round(3))
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(candidates) + 1.6))
    sns.barplot(data=gains_long, y="train_set", x="recall_gain", hue="class", hue_order=minority, ax=ax)
    ax.axvline(0, c="k", lw=1)
    ax.set_xlabel(f"recall − recall of {reference_set} ({primary_test} test)")
    ax.set_ylabel("")
    ax.set_title(f"minority-class gains over {reference_set} ({kind_note})")
    figs.show(fig, "minority_gains")

# %% [markdown]
# ## 5 · Real vs synthetic vs mixed
# Mean-class (balanced) accuracy by strategy family. Top: bars = mean over the family's training sets, dots =
# each training set (its seed mean). Bottom: every training set, error bars = sd over seeds.

# %%
ba = ev[ev["metric"] == "balanced_accuracy"].copy()
family_means = (ba.groupby(["family", "test_set"])["mean"].agg(balanced_acc="mean", n_sets="count")
                .reset_index())
T.write_csv(family_means, out / "family_means.csv")
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
figs.show(fig, "strategies")
sections.record("real vs synthetic vs mixed", eval_path, True)
family_means.pivot(index="family", columns="test_set", values="balanced_acc").reindex(
    index=families, columns=test_sets).round(3)

# %% [markdown]
# ### Confusion matrices on the primary test set
# Each training run wrote its confusion rows (`confusion_<test>.csv`: one `actual, predicted` row per test
# image); here they are summed over seeds and row-normalised (the diagonal is per-class recall).

# %%
run_files = sorted(glob.glob(runs_glob))
if not run_files:
    raise FileNotFoundError(f"no file matches runs_glob={runs_glob!r} (the train stage writes one "
                            "cross_dataset.csv per run)")
runs, confusion = [], {}
for f in run_files:  # one file per training set: every seed's rows (notebook 02); each seed's confusion in s<seed>/
    run = EV.read_cross_dataset([f])
    runs.append(run)
    for (train_set, run_model, seed), _ in run.groupby(["train_set", "model", "seed"]):
        if run_model != chosen:
            continue
        conf_path = Path(f).parent / f"s{seed}" / f"confusion_{primary_test}.csv"
        rows = T.read_table(conf_path, ["actual", "predicted"], what=f"confusion rows of {train_set} seed {seed}")
        table = EV.confusion_table(rows["actual"].map(L.index), rows["predicted"].map(L.index))
        confusion[(train_set, int(seed))] = (table, conf_path)
runs = pd.concat(runs, ignore_index=True)
n_cols = min(4, len(train_sets))
n_rows = -(-len(train_sets) // n_cols)
fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.3 * n_cols, 4.0 * n_rows), squeeze=False)
for ax, s in zip(axes.flat, train_sets):
    parts = [t for (ts, _), (t, _) in confusion.items() if ts == s]
    if not parts:
        raise FileNotFoundError(f"no run of training set {s!r} (model {chosen}) matches runs_glob={runs_glob!r}")
    total = sum(parts)
    rate = total.div(total.sum(axis=1).replace(0, np.nan), axis=0)
    with plots.only(ax):  # seaborn redraws the whole figure per heatmap otherwise
        sns.heatmap(rate, annot=True, fmt=".2f", cmap="Blues", vmin=0, vmax=1, cbar=False, ax=ax,
                    annot_kws={"size": 7})
    ax.set_title(f"{s} ({len(parts)} seed{'s' if len(parts) > 1 else ''})", fontsize=10)
for ax in list(axes.flat)[len(train_sets):]:
    ax.set_visible(False)
fig.suptitle(f"confusion on {primary_test} test, rows = true class ({kind_note})", y=1.0)
fig.tight_layout()
figs.show(fig, "confusion")
sections.record("confusion matrices", runs_glob, True)

# %% [markdown]
# ## 5b · Each generator against the perfect generator of its look, at equal size
# Balanced accuracy on the primary test set, seed means, as ratios (`syntfer summarize`, `metrics.json`):
# `oracle_ratio` = a set over the oracle of its look (truth-labelled renders of that look at the same size: how
# close the generator comes to perfect for its look), `real_ratio` = a set over the size-matched real split, and
# for each oracle its own `real_ratio` (what the look itself costs). A ratio near 1 with an oracle well below real
# says the look, not the generator, is what costs accuracy.

# %%
ratio_rows = [{"set": name, "family": REP.family_label(name), "n_images": v.get("n_images"),
               "oracle_ratio": v.get("oracle_ratio"), "real_ratio": v.get("real_ratio")}
              for name, v in metrics.get("synthetic", {}).items() if "real_ratio" in v]
ratio_rows += [{"set": name, "family": REP.family_label(name), "n_images": None, "oracle_ratio": None,
                "real_ratio": v.get("real_ratio")} for name, v in metrics.get("oracle", {}).items()]
if sections.record("oracle and real ratios", metrics_path, bool(ratio_rows),
                   f"{metrics_path} has no real_ratio (no size-matched real split `{matched_real}` in this run)"):
    ratios = pd.DataFrame(ratio_rows).set_index("set")
    T.write_csv(ratios, out / "ratios.csv", index=True)
    display(ratios.style.format({"n_images": "{:.0f}", "oracle_ratio": "{:.2f}", "real_ratio": "{:.2f}"},
                                na_rep="—"))

# %% [markdown]
# ## 5c · Data scaling and the exchange rate
# Balanced accuracy on the primary test set against the number of training images, for the real split, each
# oracle and the strategies drawn at several sizes (notebook 07: nested, seeded draws trained like the grid),
# joined with the grid's own runs at the study's size N (and the whole real split). Points: mean over seeds;
# bands: 95 % bootstrap intervals (test images and seeds resampled). The **exchange rate** reads the curves
# sideways: how many images of a source reach the accuracy of N real ones (log-linear between measured sizes;
# "not reached" when a source's curve stays below within its measured sizes — then the interval's upper end is
# open).

# %%
scaling_sources = sorted(p.name for p in Path(scaling_dir).iterdir() if p.is_dir()) if Path(scaling_dir).is_dir() else []
if sections.record("data scaling and exchange rates", scaling_dir, bool(scaling_sources),
                   f"{scaling_dir} holds no curve (the scaling stage did not run)"):
    curves = {}
    for src in scaling_sources:
        by_size = REP.scaling_predictions(scaling_dir, src, primary_test)
        grid_points = {src: src} if src != reference_set else {matched_real: matched_real, reference_set: reference_set}
        for grid_set in grid_points:
            if (Path(train_dir) / grid_set).is_dir():
                n = int(composition.loc[grid_set, "total"])
                by_size[n] = REP.load_predictions(train_dir, grid_set, primary_test)
        curves[src] = by_size
    boot = REP.bootstrap_curves(curves, draws=draws, seed=0)
    curve_points = REP.curve_table(boot)
    T.write_csv(curve_points, out / "scaling_curve.csv")
    fig, ax = plt.subplots(figsize=(8, 5))
    for src, g in curve_points.groupby("source", sort=False):
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
    figs.show(fig, "scaling")
    if reference_set in boot:
        rates = REP.exchange_rates(boot, reference_set)
        T.write_csv(rates, out / "exchange_rates.csv")
        flat_metrics |= REP.scaling_metrics(curve_points, rates)
        display(rates.assign(equivalent=[(f"≤ {s}" if e <= s else
                                          f"{e:.0f} [{lo:.0f}, {'∞' if not np.isfinite(hi) else f'{hi:.0f}'}]")
                                         if np.isfinite(e) else f"> {m} (not reached)"
                                         for e, lo, hi, s, m in zip(rates["equivalent_images"], rates["ci_low"],
                                                                    rates["ci_high"], rates["smallest_measured"],
                                                                    rates["largest_measured"])])
              .pivot(index="source", columns="real_images", values="equivalent"))
    else:
        print(f"no curve of {reference_set}: no exchange rate")

# %% [markdown]
# ## 6 · The synthetic sets themselves
# Measured by notebook 06 (optional here: a run without synthetic sets has none).
#
# - **FD / KID** of each set against the real reference faces, in each feature space notebook 06 used (FD on
#   float64 means and covariances; KID = unbiased MMD² with the cubic kernel): lower = closer to real faces.
#   These are FD-*space* numbers, not Inception FID.
# - **Expression fidelity**: share of a set's images a judge classifier labels as the intended class.
# - **Identity similarity** (GAN-edited sets): cosine similarity between a source face and its edit in the
#   identity encoder's space.
# - **Pseudo-labeling**: images kept per source and, on the world only, their precision against hidden truth.

# %%
syn_path = sections.optional(sets / "synthetic.csv", "synthetic-set measurements")
syn = wide = None
if syn_path is not None:
    syn = T.read_table(syn_path, ["set", "metric", "value"])
    dup = syn.duplicated(["set", "metric"])
    if dup.any():
        raise ValueError(f"{syn_path}: duplicate rows, e.g. {syn.loc[dup, ['set', 'metric']].iloc[0].to_dict()}")
    wide = syn.pivot(index="set", columns="metric", values="value")
    T.write_csv(wide, out / "synthetic_sets.csv", index=True)
    dist = REP.distance_rows(wide)
if sections.record("FD / KID per feature space", syn_path or sets / "synthetic.csv",
                   syn is not None and len(dist) > 0,
                   "" if syn is None else f"{syn_path} has no fd_<space>/kid_<space> metrics"):
    dist_table = dist.pivot_table(index=["set", "space"], columns="measure", values="value", aggfunc="first")
    detail_path = sets / "distances.csv"  # notebook 06's full table: sample sizes and KID subsets
    if detail_path.is_file():
        detail = T.read_table(detail_path, ["set", "space", "fd", "kid"])
        detail = detail.set_index(["set", "space"])
        both_idx = dist_table.index.intersection(detail.index)
        for measure in ("fd", "kid"):
            assert np.allclose(dist_table.loc[both_idx, measure], detail.loc[both_idx, measure], equal_nan=True), (
                f"{detail_path} and {syn_path} disagree on {measure}")
        extra = [c for c in ("n", "n_reference", "kid_sd", "kid_subsets") if c in detail.columns
                 and c not in dist_table.columns]
        dist_table = dist_table.join(detail[extra])
    else:
        print(f"{detail_path} not found: sample sizes of the FD/KID estimates not shown")
    T.write_csv(dist_table, out / "distances.csv", index=True)
    display(dist_table)
    main = dist[dist["measure"].isin(["fd", "kid"])]
    g = sns.catplot(data=main, kind="bar", y="set", x="value", hue="space", col="measure", sharex=False,
                    height=0.4 * main["set"].nunique() + 2, aspect=1.3)
    g.set_axis_labels("distance to real faces (lower = closer)", "")
    g.figure.suptitle(f"FD and KID per feature space ({kind_note})", y=1.03)
    figs.show(g.figure, "distances")

# %%
have_fid = syn is not None and "expression_fidelity" in wide.columns
if sections.record("expression fidelity", syn_path or sets / "synthetic.csv", have_fid,
                   "" if syn is None else f"{syn_path} has no expression_fidelity metric"):
    cols = [c for c in ("n_images", "expression_fidelity", "identity_similarity") if c in wide.columns]
    display(wide[cols].dropna(subset=["expression_fidelity"]).round(3))
fpc_path = sections.optional(sets / "fidelity_per_class.csv", "expression fidelity per class")
if fpc_path is not None:
    fpc = T.read_table(fpc_path, ["set", "class", "fidelity", "n"])
    fpc["class"] = [c if c == "all" else L.canonical(c) for c in fpc["class"]]  # 'all' = the whole set
    fig, ax = plt.subplots(figsize=(9.5, 0.45 * fpc["set"].nunique() + 1.6))
    sns.heatmap(fpc.pivot(index="set", columns="class", values="fidelity").reindex(columns=[*L.CLASSES, "all"]),
                annot=True, fmt=".2f", cmap="viridis", vmin=0, vmax=1, ax=ax, annot_kws={"size": 8},
                cbar_kws={"label": "expression fidelity"})
    ax.set_title(f"share of images the judge labels as the intended class ({kind_note})")
    figs.show(fig, "fidelity_per_class")

# %%
ident = (wide["identity_similarity"].dropna() if syn is not None and "identity_similarity" in wide.columns
         else pd.Series(dtype=float))
if sections.record("identity similarity (GAN sets)", syn_path or sets / "synthetic.csv", len(ident) > 0,
                   "" if syn is None else f"{syn_path} has no identity_similarity values"):
    ident_table = ident.rename("identity_similarity").to_frame()
    ident_table.insert(0, "strategy", [REP.strategy_of(s).name for s in ident_table.index])
    display(ident_table.round(3))

# %%
pl_path = sections.optional(summary / "pseudolabel.csv", "pseudo-labeling survivors")
if pl_path is not None:
    pl = T.read_table(pl_path, ["source", "kept", "precision"])
    display(pl.set_index("source"))

# %% [markdown]
# ## 7 · Who is in the sets, and do they copy real faces?
# **Demographics** (notebook 06, `syntfer.instruments.audit`): shares of gender, age and skin tone (or the prompt's race
# word) per set, over all its images; the `basis` column says what a share rests on (world truth, the
# generator's prompt, or an attribute model). **Privacy**: cosine similarity of each synthetic image to its
# nearest real training face; images above the threshold are flagged as possible copies.

# %%
demo_path = sets / "demographics.csv"
demo = None
if demo_path.is_file():
    demo = T.read_table(demo_path, ["set", "basis", "label", "attribute", "value", "count", "share"],
                        keep_default_na=False)
if sections.record("demographic audit", demo_path, demo is not None and len(demo) > 0,
                   "" if demo is None else f"{demo_path} has no rows (no demographic basis for these sets)"):
    overall = demo[demo["label"] == "all"]
    display(overall.pivot_table(index=["set", "basis"], columns=["attribute", "value"], values="share",
                                aggfunc="first").round(3))
    if "n_unmatched" in demo.columns and (demo["n_unmatched"].astype(int) > 0).any():
        print("images without a truth match (counted as 'unknown'):",
              demo.groupby("set")["n_unmatched"].max().loc[lambda v: v.astype(int) > 0].to_dict())
    for attribute in overall["attribute"].unique():
        g = AUDIT.plot_demographics(demo, attribute)
        g.figure.suptitle(f"{attribute} by set ({kind_note}) — basis: "
                          f"{', '.join(sorted(overall.loc[overall['attribute'] == attribute, 'basis'].unique()))}",
                          y=1.03)
        g.tick_params(axis="x", rotation=30)
        figs.show(g.figure, f"demographics_{attribute}")

# %%
priv_path = sections.optional(sets / "privacy_summary.csv", "privacy check")
if priv_path is not None:
    priv = SUM.read_privacy(priv_path)
    display(priv.set_index(["set", "space"]).round(4))
    priv_long = priv.melt(id_vars=["set", "space"], value_vars=["similarity_mean", "share_flagged"],
                          var_name="measure")
    g = sns.catplot(data=priv_long, kind="bar", x="set", y="value", hue="space", col="measure", sharey=False,
                    height=3.4, aspect=1.4)
    g.set_axis_labels("", "")
    g.set_titles("{col_name}")
    g.tick_params(axis="x", rotation=30)
    g.figure.suptitle(f"similarity to the nearest real training face; share above threshold ({kind_note})", y=1.04)
    figs.show(g.figure, "privacy")

# %% [markdown]
# ## 8 · Headline table
# Every training set × test set: mean (and sd) over seeds of accuracy, mean-class accuracy and macro-F1, with the
# model and data kind on every row so a quoted line cannot lose its provenance. Written to `out_dir/headline.csv`.

# %%
headline = REP.headline_table(ev, train_sets, test_sets, model=chosen, data_kind=data_kind, metrics=HEADLINE)
T.write_csv(headline.round(4), out / "headline.csv")
shown_head = headline.assign(**{short: [f"{m:.3f}" + ("" if np.isnan(sd) else f" ± {sd:.3f}")
                                        for m, sd in zip(headline[short], headline[f"{short}_sd"])]
                                for short in HEADLINE.values()})
sections.record("headline table", out / "headline.csv", True)
shown_head[["train_set", "strategy", "test_set", *HEADLINE.values(), "n_seeds"]]

# %%
write_json(Path(findings_metrics), flat_metrics)

# %% [markdown]
# ## 9 · Conclusions
# Generated from the findings table above (after Holm's correction), so they change when the run does.

# %%
display(Markdown("\n\n".join(f"- {line}" for line in REP.conclusions(findings, data_kind))))

# %% [markdown]
# ## Closing checks
# The grid is complete, the summary agrees with the runs it was built from, each confusion matrix agrees with
# its run's per-class recall, every optional set table agrees with the summary where both exist, and every
# section is accounted for.

# %%
# every training set has every test set, with finite headline metrics and enough seeds
for s in train_sets:
    for t in test_sets:
        cell = ev[(ev["train_set"] == s) & (ev["test_set"] == t) & ev["metric"].isin(list(HEADLINE))]
        assert len(cell) == len(HEADLINE), f"{s} × {t}: {len(cell)} of {len(HEADLINE)} headline metrics in eval.csv"
        assert np.isfinite(cell["mean"]).all() and cell["mean"].between(0, 1).all(), cell
        assert (cell["n_seeds"] >= min_seeds).all(), f"{s} × {t}: {cell['n_seeds'].min()} seeds < {min_seeds}"
assert len(headline) == len(train_sets) * len(test_sets) and headline[list(HEADLINE.values())].notna().all().all()
# eval.csv is the seed aggregate of cross_dataset.csv, and metrics.json holds the same means
again = SUM.aggregate_eval(cross_all).merge(eval_all, on=["train_set", "model", "test_set", "metric"],
                                          suffixes=("", "_csv"), how="outer", indicator=True)
assert (again["_merge"] == "both").all(), again[again["_merge"] != "both"].head()
assert np.allclose(again["mean"], again["mean_csv"], equal_nan=True), "eval.csv disagrees with cross_dataset.csv"
section_json = metrics.get("eval_by_model", {}).get(chosen, metrics["eval"])
for s in train_sets:
    for t in test_sets:
        for metric, short in HEADLINE.items():
            got = section_json[s][t][short]
            want = headline.loc[(headline["train_set"] == s) & (headline["test_set"] == t), short]
            assert len(want) == 1 and np.isclose(got, want.iloc[0]), (s, t, short, got)
# the summary was built from exactly these runs
keys = ["train_set", "model", "seed", "test_set", "metric"]
both = runs.merge(cross_all, on=keys, how="outer", suffixes=("_run", "_summary"), indicator=True)
assert (both["_merge"] == "both").all(), (
    f"summary and {runs_glob} differ (rerun `syntfer summarize`?): {both.loc[both['_merge'] != 'both', keys].head()}")
assert np.allclose(both["value_run"], both["value_summary"], equal_nan=True), "summary values differ from the runs'"
# each confusion matrix reproduces its run's recall on the primary test set
for (s, seed), (table, conf_path) in confusion.items():
    run = runs[(runs["train_set"] == s) & (runs["model"] == chosen) & (runs["seed"] == seed)
               & (runs["test_set"] == primary_test)].set_index("metric")["value"]
    support = table.sum(axis=1)
    for c in L.CLASSES:
        if support[c]:
            assert np.isclose(table.loc[c, c] / support[c], run[f"recall_{c}"]), f"{conf_path}: recall of {c}"
    assert support.sum() == run["n"], f"{conf_path}: {support.sum()} rows, run scored {run['n']}"
assert {s for s, _ in confusion} == set(train_sets)
# optional tables agree with the summary where both exist
if syn is not None:
    for r in syn.itertuples():
        where = ("identity_similarity", r.set) if r.metric == "identity_similarity" else ("synthetic", r.set, r.metric)
        node = metrics
        for k in where:
            node = node.get(k) if isinstance(node, dict) else None
        if node is not None:
            assert np.isclose(node, r.value), f"{syn_path}: {r.set}/{r.metric} = {r.value}, metrics.json {node}"
if fpc_path is not None and have_fid:  # a set's expression fidelity is the mean of its per-class rows
    mean_class_fid = fpc[fpc["class"].isin(L.CLASSES)].groupby("set")["fidelity"].mean()
    common = mean_class_fid.index.intersection(wide.index)
    assert np.allclose(mean_class_fid[common], wide.loc[common, "expression_fidelity"], equal_nan=True), (
        f"{fpc_path} (mean of the class rows) and {syn_path} (expression_fidelity) disagree")
if priv_path is not None and (summary / "privacy.csv").is_file():
    m = priv.merge(SUM.read_privacy(summary / "privacy.csv"), on=["set", "space"], suffixes=("", "_summary"))
    assert np.allclose(m["similarity_mean"], m["similarity_mean_summary"]), "privacy tables disagree"
if demo is not None and len(demo):
    total_share = demo.groupby(["set", "basis", "label", "attribute"])["share"].sum()
    assert np.allclose(total_share, 1.0), total_share[~np.isclose(total_share, 1.0)]
# every set a verdict compares holds N images (Mixed-SYN: 7 sources x 7 classes x its per-source count, within 2 %);
# a set that does not (a pseudo-label source with fewer than K confident faces in a class) is named here and its
# findings rows carry both sizes (n_a, n_b)
off_size = {s: int(composition.loc[s, "total"]) for s in train_sets
            if REP.strategy_of(s).family in ("synthetic", "oracle", "mixed") or s == matched_real
            if abs(int(composition.loc[s, "total"]) - set_size)
            > (0.02 if REP.strategy_of(s).family == "mixed" else 0.0) * set_size}
if off_size:
    print(f"NOT AT THE STUDY'S SIZE N = {set_size}: {off_size} — their findings compare unequal sizes (n_a, n_b)")
assert all(abs(r.n_a - r.n_b) <= 0.02 * r.n_b for r in findings.itertuples() if r.kind.endswith("equal size")
           and r.set_a not in off_size and np.isfinite(r.n_a) and np.isfinite(r.n_b)), (
    "an equal-size finding compares sets of unequal size")
# every section accounted for, every figure on disk
sections_table = sections.table()
T.write_csv(sections_table, out / "sections.csv")
assert all(p.is_file() and p.stat().st_size > 0 for p in figs.written), figs.written
missing = sections_table[sections_table["status"] != "shown"]
print(f"checks passed: {len(train_sets)} training sets × {len(test_sets)} test sets, model {chosen}, "
      f"{data_kind} data; {len(figs.written)} figures; {len(missing)} of {len(sections_table)} sections not produced "
      f"by this run{': ' + ', '.join(missing['section']) if len(missing) else ''}")
sections_table
