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
from pathlib import Path

import numpy as np
import seaborn as sns
from IPython.display import Markdown, display

from syntfer.core import labels as L
from syntfer.core import plots
from syntfer.study import report as REP
from syntfer.study import report_figures as RFIG
from syntfer.study import report_tables as RTAB
from syntfer.study import summary as SUM
from syntfer.core import tables as T
from syntfer.core.storage import write_json

minority = RTAB.parse_classes(minority_classes)
out = Path(out_dir)
figs = plots.Figures(out / "figures")  # every figure: out_dir/figures/<name>.png
summary, sets = Path(summary_dir), Path(sets_dir)
sns.set_theme(style="whitegrid", context="notebook")

# Set names say their strategy (syntfer.study.report.STRATEGIES: the prefix written by the strategies' stages)
HEADLINE = REP.HEADLINE_METRICS
sections = REP.Sections()  # every section and whether this run produced its input (sections.csv)

# where the numbers come from: every stage's inputs and their kinds, merged by `syntfer summarize` (world, real or
# mixed; syntfer.core.provenance reads each input's kind from the data itself); no provenance: an error
run_summary = RTAB.read_summary(summary)  # metrics.json, eval.csv (mean ± sd over seeds), cross_dataset.csv (per seed)
metrics, eval_all, cross_all = run_summary.metrics, run_summary.eval_all, run_summary.cross_all
data_kind, kind_note = run_summary.data_kind, RTAB.KIND_NOTES[run_summary.data_kind]
chosen = RTAB.choose_model(run_summary, model)
ev, cross = RTAB.model_rows(eval_all, chosen), RTAB.model_rows(cross_all, chosen)  # + strategy, family columns
train_sets, test_sets, families = RTAB.grid(ev, primary_test=primary_test, reference_set=reference_set,
                                            source=run_summary.eval_path)  # by strategy, the reference first
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
trained = RTAB.trained_sets(train_dir)
finding_parts = [REP.training_findings(train_dir, [t for t in trained if t != reference_set],
                                       real=reference_set, matched_real=matched_real,
                                       set_domains=SUM.parse_pairs(set_domains, ":"), primary_test=primary_test,
                                       other_tests=[t for t in ("affectnet", "fer2013") if t != primary_test],
                                       minority=minority, draws=draws, seed=0)]
finding_parts += RTAB.pseudolabel_findings(pseudolabel_dirs, tau_low=threshold, tau_high=strict_threshold,
                                           per_class=per_class, draws=draws)
# demographic balance: generated and real faces read by the same instrument (the attribute reader, notebook 04)
finding_parts += RTAB.demographic_findings(diffusion_dir, trained, reference_set, run_summary.skipped, draws=draws)
findings = RTAB.collect_findings(finding_parts, alpha)  # + Holm's adjustment over every claim
T.write_csv(findings, out / "findings.csv")
flat_metrics = REP.findings_metrics(findings)  # findings.json (written below, with the scaling curve)
# the headline figure (README, reports/): every training-set claim's effect with its 95 % interval
train_kinds = RTAB.training_claims(findings)
if len(train_kinds):
    figs.show(RFIG.headline(train_kinds, primary_test, kind_note), "headline")
sections.record("findings", train_dir, len(findings) > 0, "no training set of this run is a claim's subject")
display(Markdown(RTAB.verdict_summary(findings, kind_note)))
RTAB.findings_shown(findings).style.format(RTAB.FINDINGS_FORMAT, na_rep="—").hide(axis="index")

# %% [markdown]
# ## 1 · Where every number comes from
# The data kind travels with the numbers: `syntfer summarize` writes it into `metrics.json`, and this report
# refuses to run when asked to label the numbers otherwise. The table lists every input file this report read.

# %%
display(Markdown(RTAB.provenance_banner(data_kind, run_summary.inputs)))
skipped_table = RTAB.skipped_table(run_summary.skipped)
T.write_csv(skipped_table, out / "skipped.csv")
if len(skipped_table):
    T.show(skipped_table.set_index(["stage", "measurement"]), "measurements this run skipped, and why")
RTAB.inputs_table(run_summary, cross, runs_glob=runs_glob, primary_test=primary_test, train_sets_dir=train_sets_dir,
                  n_train_sets=len(train_sets), sets_dir=sets_dir)

# %% [markdown]
# ## 2 · The training sets: images per class and imbalance
# Counted from each training set's manifest (the rows the trainer reads, its own validation part included).
# Imbalance = largest class / smallest non-empty class. Real datasets are skewed toward happy and neutral; the
# curated synthetic sets are balanced by construction, and hybrids inherit the real part's skew.

# %%
composition = RTAB.composition(train_sets_dir, train_sets)  # a missing manifest: an error naming it
T.write_csv(composition, out / "composition.csv", index=True)
untrained = RTAB.untrained_sets(train_sets_dir, train_sets)
if untrained:
    print(f"set folders in {train_sets_dir} without training results (not in this report): {untrained}")
composition.style.format({"imbalance": "{:.1f}"}).background_gradient(subset=list(L.CLASSES), cmap="Blues", axis=1)

# %%
figs.show(RFIG.composition(composition, kind_note), "composition")
sections.record("training-set composition", train_sets_dir, True)

# %% [markdown]
# ## 3 · Cross-dataset results
# Every trained model is tested once on every test set. Rows: training set (grouped by strategy); columns: test
# set. Cells: mean over seeds, ± the sample sd when there are at least two seeds. Overall accuracy rewards the
# frequent classes; mean-class (balanced) accuracy and macro-F1 weigh every class equally.

# %%
figs.show(RFIG.cross_dataset(ev, train_sets, test_sets, HEADLINE, chosen, kind_note), "cross_dataset")
sections.record("cross-dataset results", run_summary.eval_path, True)

# %% [markdown]
# ## 4 · Per-class recall on the primary test set
# Recall of each class on the primary test set (mean over seeds). The paper's case for synthetic data is the
# rare classes: the second table is the gain in recall of disgust, fear and anger (the `minority_classes`) of
# each synthetic or hybrid training set over the real reference set (`reference_set`).

# %%
recall_table, recall = RTAB.per_class_recall(ev, primary_test, train_sets)
T.write_csv(recall_table, out / "per_class_recall.csv")
figs.show(RFIG.per_class_recall(recall, primary_test, kind_note), "per_class_recall")
sections.record("per-class recall", run_summary.eval_path, True)

# %%
candidates = RTAB.gain_candidates(train_sets)  # every set not of the real family
if sections.record("minority-class gains", run_summary.eval_path, bool(candidates),
                   "no synthetic or hybrid training set has results in this run"):
    gains, gains_long = RTAB.minority_gains(recall, candidates, minority, reference_set)
    T.write_csv(gains_long, out / "minority_gains.csv")
    display(gains.round(3))
    figs.show(RFIG.minority_gains(gains_long, minority, reference_set, primary_test, kind_note), "minority_gains")

# %% [markdown]
# ## 5 · Real vs synthetic vs mixed
# Mean-class (balanced) accuracy by strategy family. Top: bars = mean over the family's training sets, dots =
# each training set (its seed mean). Bottom: every training set, error bars = sd over seeds.

# %%
family_means = RTAB.family_means(ev)
T.write_csv(family_means, out / "family_means.csv")
figs.show(RFIG.strategies(ev, cross, families, train_sets, test_sets, kind_note), "strategies")
sections.record("real vs synthetic vs mixed", run_summary.eval_path, True)
RTAB.family_matrix(family_means, families, test_sets)

# %% [markdown]
# ### Confusion matrices on the primary test set
# Each training run wrote its confusion rows (`confusion_<test>.csv`: one `actual, predicted` row per test
# image); here they are summed over seeds and row-normalised (the diagonal is per-class recall).

# %%
runs, confusion = RTAB.read_runs(runs_glob, chosen, primary_test)  # every run's rows; {(set, seed): (table, path)}
figs.show(RFIG.confusion(confusion, train_sets, primary_test=primary_test, model=chosen, runs_glob=runs_glob,
                          kind_note=kind_note), "confusion")
sections.record("confusion matrices", runs_glob, True)

# %% [markdown]
# ## 5b · Each generator against the perfect generator of its look, at equal size
# Balanced accuracy on the primary test set, seed means, as ratios (`syntfer summarize`, `metrics.json`):
# `oracle_ratio` = a set over the oracle of its look (truth-labelled renders of that look at the same size: how
# close the generator comes to perfect for its look), `real_ratio` = a set over the size-matched real split, and
# for each oracle its own `real_ratio` (what the look itself costs). A ratio near 1 with an oracle well below real
# says the look, not the generator, is what costs accuracy.

# %%
ratios = RTAB.ratio_table(metrics)
if sections.record("oracle and real ratios", run_summary.metrics_path, ratios is not None,
                   f"{run_summary.metrics_path} has no real_ratio (no size-matched real split `{matched_real}` in "
                   "this run)"):
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
scaling_sources = RTAB.scaling_sources(scaling_dir)
if sections.record("data scaling and exchange rates", scaling_dir, bool(scaling_sources),
                   f"{scaling_dir} holds no curve (the scaling stage did not run)"):
    curves = RTAB.scaling_curves(scaling_dir, scaling_sources, test=primary_test, train_dir=train_dir,
                                 reference_set=reference_set, matched_real=matched_real, sizes=composition["total"])
    boot = REP.bootstrap_curves(curves, draws=draws, seed=0)
    curve_points = REP.curve_table(boot)
    T.write_csv(curve_points, out / "scaling_curve.csv")
    figs.show(RFIG.scaling(curve_points, reference_set=reference_set, primary_test=primary_test, set_size=set_size,
                           kind_note=kind_note), "scaling")
    if reference_set in boot:
        rates = REP.exchange_rates(boot, reference_set)
        T.write_csv(rates, out / "exchange_rates.csv")
        flat_metrics |= REP.scaling_metrics(curve_points, rates)
        display(RTAB.exchange_shown(rates))
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
    syn, wide = RTAB.read_synthetic(syn_path)  # long (set, metric, value) and set × metric
    T.write_csv(wide, out / "synthetic_sets.csv", index=True)
    dist = REP.distance_rows(wide)
if sections.record("FD / KID per feature space", syn_path or sets / "synthetic.csv",
                   syn is not None and len(dist) > 0,
                   "" if syn is None else f"{syn_path} has no fd_<space>/kid_<space> metrics"):
    detail_path = sets / "distances.csv"  # notebook 06's full table: sample sizes and KID subsets
    if not detail_path.is_file():
        print(f"{detail_path} not found: sample sizes of the FD/KID estimates not shown")
    dist_table = RTAB.distance_table(dist, detail_path, syn_path)
    T.write_csv(dist_table, out / "distances.csv", index=True)
    display(dist_table)
    figs.show(RFIG.distances(dist, kind_note), "distances")

# %%
have_fid = syn is not None and "expression_fidelity" in wide.columns
if sections.record("expression fidelity", syn_path or sets / "synthetic.csv", have_fid,
                   "" if syn is None else f"{syn_path} has no expression_fidelity metric"):
    display(RTAB.fidelity_table(wide))
fpc_path = sections.optional(sets / "fidelity_per_class.csv", "expression fidelity per class")
if fpc_path is not None:
    fpc = RTAB.read_fidelity_per_class(fpc_path)  # class 'all' = the whole set
    figs.show(RFIG.fidelity_per_class(fpc, kind_note), "fidelity_per_class")

# %%
ident_table = RTAB.identity_table(wide)
if sections.record("identity similarity (GAN sets)", syn_path or sets / "synthetic.csv", len(ident_table) > 0,
                   "" if syn is None else f"{syn_path} has no identity_similarity values"):
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
demo = RTAB.read_demographics(demo_path)  # None when absent
if sections.record("demographic audit", demo_path, demo is not None and len(demo) > 0,
                   "" if demo is None else f"{demo_path} has no rows (no demographic basis for these sets)"):
    display(RTAB.demographic_shares(demo))
    if RTAB.unmatched(demo):
        print("images without a truth match (counted as 'unknown'):", RTAB.unmatched(demo))
    for attribute in demo.loc[demo["label"] == "all", "attribute"].unique():
        figs.show(RFIG.demographics(demo, attribute, kind_note), f"demographics_{attribute}")

# %%
priv_path = sections.optional(sets / "privacy_summary.csv", "privacy check")
if priv_path is not None:
    priv = SUM.read_privacy(priv_path)
    display(priv.set_index(["set", "space"]).round(4))
    figs.show(RFIG.privacy(priv, kind_note), "privacy")

# %% [markdown]
# ## 8 · Headline table
# Every training set × test set: mean (and sd) over seeds of accuracy, mean-class accuracy and macro-F1, with the
# model and data kind on every row so a quoted line cannot lose its provenance. Written to `out_dir/headline.csv`.

# %%
headline = REP.headline_table(ev, train_sets, test_sets, model=chosen, data_kind=data_kind, metrics=HEADLINE)
T.write_csv(headline.round(4), out / "headline.csv")
sections.record("headline table", out / "headline.csv", True)
RTAB.headline_shown(headline, HEADLINE)

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
again = RTAB.eval_against_cross(cross_all, eval_all)
assert (again["_merge"] == "both").all(), again[again["_merge"] != "both"].head()
assert np.allclose(again["mean"], again["mean_csv"], equal_nan=True), "eval.csv disagrees with cross_dataset.csv"
in_json = RTAB.json_against_headline(metrics, chosen, headline, list(HEADLINE.values()))
assert np.isclose(in_json["json"], in_json["table"]).all(), in_json[~np.isclose(in_json["json"], in_json["table"])]
# the summary was built from exactly these runs
both = RTAB.runs_against_summary(runs, cross_all)
assert (both["_merge"] == "both").all(), (f"summary and {runs_glob} differ (rerun `syntfer summarize`?): "
                                          f"{both.loc[both['_merge'] != 'both', RTAB.RUN_KEYS].head()}")
assert np.allclose(both["value_run"], both["value_summary"], equal_nan=True), "summary values differ from the runs'"
# each confusion matrix reproduces its run's recall (and test-image count) on the primary test set
conf_vs_run = RTAB.confusion_against_runs(confusion, runs, chosen, primary_test)
assert np.isclose(conf_vs_run["confusion"], conf_vs_run["run"]).all(), (
    conf_vs_run[~np.isclose(conf_vs_run["confusion"], conf_vs_run["run"])])
assert {s for s, _ in confusion} == set(train_sets)
# optional tables agree with the summary where both exist
if syn is not None:
    syn_vs_json = RTAB.synthetic_against_metrics(syn, metrics)
    assert np.isclose(syn_vs_json["value"], syn_vs_json["json"]).all(), (
        f"{syn_path} and metrics.json disagree: {syn_vs_json[~np.isclose(syn_vs_json['value'], syn_vs_json['json'])]}")
if fpc_path is not None and have_fid:  # a set's expression fidelity is the mean of its per-class rows
    fid_vs_set = RTAB.fidelity_against_sets(fpc, wide)
    assert np.allclose(fid_vs_set["mean_of_classes"], fid_vs_set["expression_fidelity"], equal_nan=True), (
        f"{fpc_path} (mean of the class rows) and {syn_path} (expression_fidelity) disagree")
if priv_path is not None and (summary / "privacy.csv").is_file():
    m = RTAB.privacy_against_summary(priv, summary / "privacy.csv")
    assert np.allclose(m["similarity_mean"], m["similarity_mean_summary"]), "privacy tables disagree"
if demo is not None and len(demo):
    total_share = RTAB.share_totals(demo)
    assert np.allclose(total_share, 1.0), total_share[~np.isclose(total_share, 1.0)]
# every set a verdict compares holds N images (Mixed-SYN: 7 sources x 7 classes x its per-source count, within 2 %);
# a set that does not (a pseudo-label source with fewer than K confident faces in a class) is named here and its
# findings rows carry both sizes (n_a, n_b)
off_size = RTAB.off_size_sets(composition, train_sets, matched_real=matched_real, set_size=set_size)
if off_size:
    print(f"NOT AT THE STUDY'S SIZE N = {set_size}: {off_size} — their findings compare unequal sizes (n_a, n_b)")
assert RTAB.unequal_size_findings(findings, off_size).empty, "an equal-size finding compares sets of unequal size"
# every section accounted for, every figure on disk
sections_table = sections.table()
T.write_csv(sections_table, out / "sections.csv")
assert all(p.is_file() and p.stat().st_size > 0 for p in figs.written), figs.written
missing = sections_table[sections_table["status"] != "shown"]
print(f"checks passed: {len(train_sets)} training sets × {len(test_sets)} test sets, model {chosen}, "
      f"{data_kind} data; {len(figs.written)} figures; {len(missing)} of {len(sections_table)} sections not produced "
      f"by this run{': ' + ', '.join(missing['section']) if len(missing) else ''}")
sections_table
