"""The report notebook's tables (notebook 08): what it reads, the tables it shows and writes, and the inputs of its
closing checks.

`syntfer.study.report` computes the verdicts (paired bootstraps, Holm) and names the sets; this module turns the
files the pipeline wrote — `syntfer summarize`'s tables, the training runs, the manifests, notebook 06's set
measurements, the pseudo-label scores and attribute readings — into the frames notebook 08 lays out, so that the
notebook reads as the story. Nothing here writes a file or draws: the notebook writes every table
(`syntfer.core.tables.write_csv`) and `syntfer.study.report_figures` draws every figure. A missing required input
raises naming its path, as the notebook did before.
"""
from __future__ import annotations

import dataclasses
import glob
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from syntfer.core import labels as L
from syntfer.core import provenance as PV
from syntfer.core import tables as T
from syntfer.engine import evaluation as EV
from syntfer.engine.data import as_frame, describe_frame
from syntfer.instruments.attributes import ATTRIBUTES as READ_ATTRIBUTES
from syntfer.strategies.diffusion import STRATEGY as DIFFUSION
from syntfer.strategies.pseudolabel import attach_truth, read_scores
from syntfer.study import report as REP
from syntfer.study import summary as SUM

KIND_NOTES: dict[str, str] = {"world": "procedural-world stand-ins", "real": "the user's real data",
                              "mixed": "part world, part real inputs"}
"""How a figure title says where its numbers come from, by data kind (`syntfer.core.provenance`)."""


# ---- the run's summary -----------------------------------------------------------------------------------------
def parse_classes(text: str, name: str = "minority_classes") -> list[str]:
    """Canonical class names of a comma-separated list (``'disgust,fear,anger'``); an empty list raises naming the
    parameter `name`."""
    classes = [L.canonical(c) for c in text.split(",") if c.strip()]
    if not classes:
        raise ValueError(f"{name} is empty")
    return classes


@dataclasses.dataclass
class Summary:
    """What `syntfer summarize` wrote, read and checked: metrics.json (with the data kind, every stage's inputs and
    the measurements they skipped), eval.csv (mean ± sd over seeds) and cross_dataset.csv (per seed)."""

    metrics_path: Path
    metrics: dict
    eval_path: Path
    cross_path: Path
    eval_all: pd.DataFrame
    cross_all: pd.DataFrame

    @property
    def data_kind(self) -> str:
        return self.metrics["data_kind"]

    @property
    def inputs(self) -> dict:
        return self.metrics["inputs"]

    @property
    def skipped(self) -> dict:
        """{stage: {measurement: why}} of what the run's stages did not measure."""
        return self.metrics.get("skipped", {})

    @property
    def models(self) -> list[str]:
        return sorted(self.eval_all["model"].unique())


def read_summary(summary_dir: str | os.PathLike) -> Summary:
    """The summary stage's metrics.json, eval.csv and cross_dataset.csv under `summary_dir`. A missing file, a
    metrics.json without provenance (``inputs``, ``data_kind`` world/real/mixed: the numbers would have none) or
    without an ``eval`` section raises naming the file."""
    summary = Path(summary_dir)
    metrics_path = T.require_file(summary / "metrics.json", "summary metrics (written by `syntfer summarize`)")
    metrics = json.loads(metrics_path.read_text())
    if not isinstance(metrics.get("inputs"), dict) or metrics.get("data_kind") not in ("world", "real", "mixed"):
        raise ValueError(f"{metrics_path}: no inputs/data_kind (run `syntfer summarize --inputs …`): the numbers "
                         "would have no provenance")
    if "eval" not in metrics:
        raise ValueError(f"{metrics_path}: no 'eval' section (was `syntfer summarize` given --eval files?)")
    eval_path = T.require_file(summary / "eval.csv", "aggregated cross-dataset table (syntfer summarize)")
    cross_path = T.require_file(summary / "cross_dataset.csv", "per-seed cross-dataset table (syntfer summarize)")
    eval_all = T.read_table(eval_path, ["train_set", "model", "test_set", "metric", "mean", "sd", "n_seeds"])
    cross_all = EV.read_cross_dataset([cross_path])
    return Summary(metrics_path, metrics, eval_path, cross_path, eval_all, cross_all)


def choose_model(summary: Summary, model: str) -> str:
    """`model` when eval.csv has results for it; empty: the only model there. An unknown model, or several models
    and none named, raises naming eval.csv."""
    models = summary.models
    if model and model not in models:
        raise ValueError(f"{summary.eval_path}: no results for model {model!r}; models: {models}")
    if not model and len(models) != 1:
        raise ValueError(f"{summary.eval_path}: several models {models}; name one with the `model` parameter")
    return model or models[0]


def model_rows(table: pd.DataFrame, model: str) -> pd.DataFrame:
    """The rows of `model` (a copy), with each training set's ``strategy`` name and ``family`` label added."""
    rows = table[table["model"] == model].copy()
    rows["strategy"] = [REP.strategy_of(s).name for s in rows["train_set"]]
    rows["family"] = [REP.family_label(s) for s in rows["train_set"]]
    return rows


def grid(ev: pd.DataFrame, *, primary_test: str, reference_set: str, source: str | os.PathLike
         ) -> tuple[list[str], list[str], list[str]]:
    """The report's axes from one model's eval rows: training sets (by strategy, `reference_set` first in its
    group), test sets (`primary_test` first, then by name) and the families present (display order). A primary
    test or reference set without results raises naming `source` (eval.csv)."""
    train_sets = REP.order_sets(ev["train_set"].unique(), first=reference_set)
    tests_found = sorted(ev["test_set"].unique())
    if primary_test not in tests_found:
        raise ValueError(f"{source}: primary_test {primary_test!r} has no results; test sets: {tests_found}")
    test_sets = [primary_test] + [t for t in tests_found if t != primary_test]
    if reference_set not in train_sets:
        raise ValueError(f"{source}: reference_set {reference_set!r} has no results; training sets: {train_sets}")
    families = [f for f in REP.FAMILY_LABELS.values() if f in set(ev["family"])]
    return train_sets, test_sets, families


# ---- §0 the findings ---------------------------------------------------------------------------------------------
def trained_sets(train_dir: str | os.PathLike) -> list[str]:
    """Training sets with a run under `train_dir` (a ``<set>/cross_dataset.csv``), by name."""
    return sorted(p.name for p in Path(train_dir).iterdir() if (p / "cross_dataset.csv").is_file())


def pseudolabel_findings(pseudolabel_dirs: str | os.PathLike, *, tau_low: float, tau_high: float,
                         per_class: int | None, draws: int, seed: int = 0) -> list[pd.DataFrame]:
    """The pseudo-label threshold finding of every ``pseudolabel_<source>/scores.csv`` under `pseudolabel_dirs`
    (`syntfer.study.report.pseudolabel_finding`), measured against the truth file its metrics.json names; a source
    without one (real data: no truth) is a skipped row saying why."""
    parts = []
    for scores_file in sorted(Path(pseudolabel_dirs).glob("pseudolabel_*/scores.csv")):
        source = scores_file.parent.name.removeprefix("pseudolabel_")
        pl_metrics = json.loads((scores_file.parent / "metrics.json").read_text())
        truth_file = pl_metrics.get("truth_csv", "")  # what 03 measured precision against; empty: no truth
        if truth_file:
            scores = attach_truth(read_scores(scores_file), truth_file)
            scores["path"] = scores["path"].astype(str)
            parts.append(REP.pseudolabel_finding(scores, source, tau_low=tau_low, tau_high=tau_high,
                                                 per_class=per_class or None, draws=draws, seed=seed))
        else:
            parts.append(REP.skipped_finding(
                REP.pseudolabel_claim(source, tau_low, tau_high), "pseudo-label threshold",
                "precision_vs_truth", f"pseudolabel_{source}", f"pseudolabel_{source}",
                pl_metrics.get("skipped", {}).get("precision", f"no truth for {source}")))
    return parts


def demographic_findings(diffusion_dir: str | os.PathLike, trained: Sequence[str], reference_set: str,
                         skipped: Mapping[str, Mapping[str, str]], *, draws: int, seed: int = 0
                         ) -> list[pd.DataFrame]:
    """Demographic balance of each diffusion set against the real training split, both read by the attribute
    reader (``<diffusion_dir>/attributes_<backend>.csv`` and ``attributes_real_train.csv``, notebook 04). Without
    the real reads (no attribute reader) every trained diffusion set's claims are skipped rows, the reason taken
    from `skipped` (metrics.json's ``skipped``) where the diffusion stage gave one."""
    parts = []
    real_reads = Path(diffusion_dir) / "attributes_real_train.csv"
    if not real_reads.is_file():
        why = skipped.get("diffusion", {}).get("demographic_fidelity", f"{real_reads} not written")
        for name in (t for t in trained if t.startswith(DIFFUSION.prefix)):
            for attribute in READ_ATTRIBUTES:
                parts.append(REP.skipped_finding(REP.demographic_claim(name, attribute, reference_set),
                                                 "demographic balance", f"normalized_entropy_{attribute}", name,
                                                 reference_set, why))
        return parts
    real_read = pd.read_csv(real_reads, keep_default_na=False)
    for reads in sorted(Path(diffusion_dir).glob("attributes_*.csv")):
        kind = reads.stem.removeprefix("attributes_")
        if kind == "real_train":
            continue
        name = DIFFUSION.prefix + kind.replace("-", "_")  # backend embedded-au -> set diffusion_embedded_au
        parts.append(REP.demographic_finding(pd.read_csv(reads), real_read, name, reference_set,
                                             READ_ATTRIBUTES, draws=draws, seed=seed))
    return parts


def collect_findings(parts: Sequence[pd.DataFrame], alpha: float) -> pd.DataFrame:
    """One findings table from its parts (empty parts dropped; none: an empty table with `FINDING_COLUMNS`), with
    Holm's adjustment over all of them at family-wise error `alpha` (`syntfer.study.report.adjust`)."""
    findings = pd.concat([f for f in parts if len(f)] or [pd.DataFrame(columns=list(REP.FINDING_COLUMNS))],
                         ignore_index=True)
    return REP.adjust(findings, alpha)


def training_claims(findings: pd.DataFrame) -> pd.DataFrame:
    """The findings about training sets (balanced accuracy, a class's recall): the headline figure's rows."""
    return findings[findings["metric"].str.startswith(("balanced_accuracy", "recall_"))].reset_index(drop=True)


def verdict_summary(findings: pd.DataFrame, kind_note: str) -> str:
    """The Markdown line over the findings table: raw and Holm-adjusted verdict counts, claims not tested, the
    data kind and the seeds per training set."""
    v, vh = findings["verdict"], findings["verdict_holm"]
    skipped = (v == REP.SKIPPED).sum()
    return (f"**{(v == 'supported').sum()} supported, {(v == 'contradicted').sum()} "
            f"contradicted, {(v == 'inconclusive').sum()} inconclusive** by the raw intervals; after Holm "
            f"over {findings['p_value'].notna().sum()} claims: {(vh == 'supported').sum()} supported, "
            f"{(vh == 'contradicted').sum()} contradicted, {(vh == 'inconclusive').sum()} inconclusive"
            + (f"; {skipped} claims not tested by this run (their rows say why)" if skipped else "")
            + f" ({kind_note}; {int(findings['n_seeds'].max()) if len(findings) else 0} seeds per training set)")


FINDINGS_FORMAT = {"effect": "{:+.3f}", "p_holm": "{:.4f}", "n_a": "{:.0f}", "steps_a": "{:.0f}", "n_b": "{:.0f}",
                   "steps_b": "{:.0f}"}
"""How the findings table shows its numbers (a Styler's ``format``)."""


def findings_shown(findings: pd.DataFrame) -> pd.DataFrame:
    """The findings table as the report shows it: the claim, effect, its interval as text, the verdicts and sizes,
    and ``reason`` only when some claim was not tested."""
    shown = findings.assign(interval=[f"[{lo:+.3f}, {hi:+.3f}]"
                                      for lo, hi in zip(findings["ci_low"], findings["ci_high"])])
    return shown[["claim", "effect", "interval", "verdict", "p_holm", "verdict_holm", "n_a", "steps_a", "n_b",
                  "steps_b", "test_set", "n_seeds", *(["reason"] if (findings["verdict"] == REP.SKIPPED).any()
                                                      else [])]]


# ---- §1 provenance -------------------------------------------------------------------------------------------------
def provenance_banner(data_kind: str, inputs: Mapping) -> str:
    """The Markdown banner that says where every number comes from: a warning for world or mixed inputs, a note
    for real ones, then the per-input table (`syntfer.core.provenance.banner`)."""
    if data_kind == "world":
        banner = ("> ⚠️ **Every number in this report comes from procedural-world stand-ins** (`data_kind = world`). "
                  "The datasets named rafdb, affectnet and fer2013 are the world's imitations of RAF-DB, AffectNet "
                  "and FER2013: **no number here is a RAF-DB, AffectNet or FER2013 result**, and none can be "
                  "compared with the paper's tables. They show that the pipeline runs end to end and how the "
                  "study's comparisons behave on data whose truth is known.")
    elif data_kind == "real":
        banner = ("> **Every input of this run is the user's own data** (`data_kind = real`; no world render among "
                  "them): its numbers are real-data results.")
    else:
        banner = ("> ⚠️ **This run's inputs are part world stand-ins, part real data** (`data_kind = mixed`): a "
                  "number resting on a world input is a world result. The table says which input is which.")
    return banner + "\n>\n" + PV.banner(inputs, "this run").split("\n>\n", 1)[1]  # the per-input table


def skipped_table(skipped: Mapping[str, Mapping[str, str]]) -> pd.DataFrame:
    """One row per measurement a stage skipped: ``stage, measurement, reason`` (metrics.json's ``skipped``)."""
    return pd.DataFrame([{"stage": st, "measurement": what, "reason": why}
                         for st, d in skipped.items() for what, why in d.items()],
                        columns=["stage", "measurement", "reason"])


def inputs_table(summary: Summary, cross: pd.DataFrame, *, runs_glob: str, primary_test: str,
                 train_sets_dir: str, n_train_sets: int, sets_dir: str) -> pd.DataFrame:
    """Every input the report reads: ``input, what, detail`` (sizes, models, seeds per cell of `cross`, the
    chosen model's per-seed rows, and whether the optional set measurements exist)."""
    seeds = cross.groupby(["train_set", "test_set"])["seed"].nunique()
    return pd.DataFrame([
        {"input": str(summary.metrics_path), "what": "summary metrics",
         "detail": f"sections {sorted(summary.metrics)}"},
        {"input": str(summary.eval_path), "what": "mean ± sd over seeds",
         "detail": f"{len(summary.eval_all)} rows, models {summary.models}"},
        {"input": str(summary.cross_path), "what": "per-seed results",
         "detail": f"{len(summary.cross_all)} rows; seeds per cell {seeds.min()}–{seeds.max()}"},
        {"input": runs_glob, "what": "per-run confusion matrices", "detail": f"confusion_{primary_test}.csv per run"},
        {"input": train_sets_dir, "what": "training-set manifests", "detail": f"{n_train_sets} sets"},
        {"input": sets_dir, "what": "synthetic-set measurements (optional)",
         "detail": "exists" if Path(sets_dir).is_dir() else "folder does not exist: its sections are not produced"},
    ])


# ---- §2 composition ------------------------------------------------------------------------------------------------
def composition(train_sets_dir: str | os.PathLike, train_sets: Sequence[str]) -> pd.DataFrame:
    """Images per class, total and imbalance of each training set (`syntfer.engine.data.describe_frame` of its
    ``<train_sets_dir>/<set>/manifest.csv``), indexed by set, its strategy first. A missing manifest raises naming
    it."""
    rows = []
    for s in train_sets:
        manifest = T.require_file(Path(train_sets_dir) / s / "manifest.csv", f"manifest of training set {s!r}")
        rows.append(describe_frame(as_frame(manifest), s))
    table = pd.concat(rows, ignore_index=True).set_index("set")
    table.insert(0, "strategy", [REP.strategy_of(s).name for s in table.index])
    return table


def untrained_sets(train_sets_dir: str | os.PathLike, train_sets: Sequence[str]) -> list[str]:
    """Set folders under `train_sets_dir` that are not among `train_sets` (no training results), by name."""
    return sorted(p.name for p in Path(train_sets_dir).iterdir() if p.is_dir() and p.name not in train_sets)


# ---- §4 per-class recall and minority gains ------------------------------------------------------------------------
def per_class_recall(ev: pd.DataFrame, test: str, train_sets: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Recall of each class on `test` from eval rows: the tidy table the report writes (``train_set, strategy,
    class, recall, sd, n_seeds``) and the mean recall as a training set × class matrix (`train_sets` × the
    label space, in order; NaN where missing)."""
    rec = ev[(ev["test_set"] == test) & ev["metric"].str.startswith("recall_")].copy()
    rec["class"] = rec["metric"].str.removeprefix("recall_")
    matrix = rec.pivot(index="train_set", columns="class", values="mean").reindex(index=list(train_sets),
                                                                                 columns=list(L.CLASSES))
    tidy = rec[["train_set", "strategy", "class", "mean", "sd", "n_seeds"]].rename(columns={"mean": "recall"})
    return tidy, matrix


def gain_candidates(train_sets: Sequence[str]) -> list[str]:
    """The training sets whose minority-class gains the report shows: every one not of the real family."""
    return [s for s in train_sets if REP.family_label(s) != "real"]


def minority_gains(recall: pd.DataFrame, candidates: Sequence[str], minority: Sequence[str], reference_set: str
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Recall of each `minority` class of each candidate minus that of `reference_set` (`recall` is the set ×
    class matrix of `per_class_recall`): the wide table (index ``train_set``) and its long form
    (``train_set, class, recall_gain, reference_set``)."""
    gains = recall.loc[list(candidates), list(minority)] - recall.loc[reference_set, list(minority)]
    gains.index.name = "train_set"
    gains_long = gains.reset_index().melt(id_vars="train_set", var_name="class", value_name="recall_gain")
    gains_long["reference_set"] = reference_set
    return gains, gains_long


# ---- §5 families, confusion, ratios, scaling ------------------------------------------------------------------------
def family_means(ev: pd.DataFrame) -> pd.DataFrame:
    """Balanced accuracy by family and test set: mean over the family's training sets (their seed means) and how
    many sets (``family, test_set, balanced_acc, n_sets``)."""
    ba = ev[ev["metric"] == "balanced_accuracy"]
    return ba.groupby(["family", "test_set"])["mean"].agg(balanced_acc="mean", n_sets="count").reset_index()


def family_matrix(means: pd.DataFrame, families: Sequence[str], test_sets: Sequence[str]) -> pd.DataFrame:
    """`family_means` as a family × test set matrix in the given orders, rounded to 3 digits."""
    return means.pivot(index="family", columns="test_set", values="balanced_acc").reindex(
        index=list(families), columns=list(test_sets)).round(3)


Confusion = dict[tuple[str, int], tuple[pd.DataFrame, Path]]
"""{(training set, seed): (7 × 7 count table, the confusion rows file it came from)}."""


def read_runs(runs_glob: str, model: str, test: str) -> tuple[pd.DataFrame, Confusion]:
    """Every training run's per-seed rows (the files `runs_glob` matches, notebook 02) and, for each of `model`'s
    seeds, its confusion table on `test` from ``s<seed>/confusion_<test>.csv`` beside the run file. No matching
    file, or a missing confusion file, raises naming it."""
    run_files = sorted(glob.glob(runs_glob))
    if not run_files:
        raise FileNotFoundError(f"no file matches runs_glob={runs_glob!r} (the train stage writes one "
                                "cross_dataset.csv per run)")
    runs, confusion = [], {}
    for f in run_files:  # one file per training set: every seed's rows; each seed's confusion in s<seed>/
        run = EV.read_cross_dataset([f])
        runs.append(run)
        for (train_set, run_model, seed), _ in run.groupby(["train_set", "model", "seed"]):
            if run_model != model:
                continue
            conf_path = Path(f).parent / f"s{seed}" / f"confusion_{test}.csv"
            rows = T.read_table(conf_path, ["actual", "predicted"], what=f"confusion rows of {train_set} seed {seed}")
            table = EV.confusion_table(rows["actual"].map(L.index), rows["predicted"].map(L.index))
            confusion[(train_set, int(seed))] = (table, conf_path)
    return pd.concat(runs, ignore_index=True), confusion


def summed_confusion(confusion: Confusion, train_set: str, *, model: str, runs_glob: str
                     ) -> tuple[pd.DataFrame, int]:
    """`train_set`'s confusion counts summed over its seeds, row-normalised (rows = true class; an empty row stays
    NaN), and how many seeds. A set with no run raises FileNotFoundError naming it, `model` and `runs_glob`."""
    parts = [t for (ts, _), (t, _) in confusion.items() if ts == train_set]
    if not parts:
        raise FileNotFoundError(f"no run of training set {train_set!r} (model {model}) matches "
                                f"runs_glob={runs_glob!r}")
    total = sum(parts)
    return total.div(total.sum(axis=1).replace(0, np.nan), axis=0), len(parts)


def ratio_table(metrics: Mapping) -> pd.DataFrame | None:
    """Each generator's ``oracle_ratio`` and ``real_ratio`` and each oracle's ``real_ratio`` (metrics.json's
    ``synthetic`` and ``oracle`` sections), indexed by set with its family and size; None when the run has no
    ratio (no size-matched real split)."""
    rows = [{"set": name, "family": REP.family_label(name), "n_images": v.get("n_images"),
             "oracle_ratio": v.get("oracle_ratio"), "real_ratio": v.get("real_ratio")}
            for name, v in metrics.get("synthetic", {}).items() if "real_ratio" in v]
    rows += [{"set": name, "family": REP.family_label(name), "n_images": None, "oracle_ratio": None,
              "real_ratio": v.get("real_ratio")} for name, v in metrics.get("oracle", {}).items()]
    return pd.DataFrame(rows).set_index("set") if rows else None


def scaling_sources(scaling_dir: str | os.PathLike) -> list[str]:
    """The sources notebook 07 drew a curve for (folders of `scaling_dir`), by name; none when it does not exist."""
    folder = Path(scaling_dir)
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def scaling_curves(scaling_dir: str | os.PathLike, sources: Sequence[str], *, test: str, train_dir: str | os.PathLike,
                   reference_set: str, matched_real: str, sizes: pd.Series) -> dict[str, dict[int, dict]]:
    """{source: {size: {seed: (y_true, y_pred)}}} on `test`: each source's curve runs (notebook 07) joined with the
    grid's own run at its size — the source itself, or for `reference_set` both the size-matched split
    `matched_real` and the whole split — where `train_dir` has it; `sizes` (images per training set, the
    composition's ``total``) gives those runs' sizes."""
    curves = {}
    for src in sources:
        by_size = REP.scaling_predictions(scaling_dir, src, test)
        grid_points = [src] if src != reference_set else [matched_real, reference_set]
        for grid_set in grid_points:
            if (Path(train_dir) / grid_set).is_dir():
                by_size[int(sizes.loc[grid_set])] = REP.load_predictions(train_dir, grid_set, test)
        curves[src] = by_size
    return curves


def exchange_shown(rates: pd.DataFrame) -> pd.DataFrame:
    """The exchange rates as the report shows them: source × real images, each cell the equivalent images with
    their interval (``'812 [640, 1100]'``, ``∞`` for an open upper end), ``'≤ <smallest>'`` when the smallest
    measured size already reaches it, ``'> <largest> (not reached)'`` when never reached."""
    return (rates.assign(equivalent=[(f"≤ {s}" if e <= s else
                                      f"{e:.0f} [{lo:.0f}, {'∞' if not np.isfinite(hi) else f'{hi:.0f}'}]")
                                     if np.isfinite(e) else f"> {m} (not reached)"
                                     for e, lo, hi, s, m in zip(rates["equivalent_images"], rates["ci_low"],
                                                                rates["ci_high"], rates["smallest_measured"],
                                                                rates["largest_measured"])])
            .pivot(index="source", columns="real_images", values="equivalent"))


# ---- §6–7 the synthetic sets ---------------------------------------------------------------------------------------
def read_synthetic(path: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Notebook 06's synthetic.csv (``set, metric, value``) and its set × metric pivot. A duplicated (set, metric)
    raises naming the file and the first duplicate."""
    syn = T.read_table(path, ["set", "metric", "value"])
    dup = syn.duplicated(["set", "metric"])
    if dup.any():
        raise ValueError(f"{path}: duplicate rows, e.g. {syn.loc[dup, ['set', 'metric']].iloc[0].to_dict()}")
    return syn, syn.pivot(index="set", columns="metric", values="value")


def distance_table(dist: pd.DataFrame, detail_path: str | os.PathLike, source: str | os.PathLike) -> pd.DataFrame:
    """FD/KID per (set, space) from the tidy `dist` rows (`syntfer.study.report.distance_rows`), joined with the
    sample sizes and KID subsets of notebook 06's full table at `detail_path` when it exists. The two must agree on
    fd and kid where both have a value: else ReportError naming both files (`source`: synthetic.csv)."""
    table = dist.pivot_table(index=["set", "space"], columns="measure", values="value", aggfunc="first")
    detail_path = Path(detail_path)
    if not detail_path.is_file():
        return table
    detail = T.read_table(detail_path, ["set", "space", "fd", "kid"]).set_index(["set", "space"])
    both = table.index.intersection(detail.index)
    for measure in ("fd", "kid"):
        if not np.allclose(table.loc[both, measure], detail.loc[both, measure], equal_nan=True):
            raise REP.ReportError(f"{detail_path} and {source} disagree on {measure}")
    extra = [c for c in ("n", "n_reference", "kid_sd", "kid_subsets") if c in detail.columns
             and c not in table.columns]
    return table.join(detail[extra])


def fidelity_table(wide: pd.DataFrame) -> pd.DataFrame:
    """Sets with an expression fidelity: their size, fidelity and identity similarity (where measured), 3 digits."""
    cols = [c for c in ("n_images", "expression_fidelity", "identity_similarity") if c in wide.columns]
    return wide[cols].dropna(subset=["expression_fidelity"]).round(3)


def read_fidelity_per_class(path: str | os.PathLike) -> pd.DataFrame:
    """Notebook 06's fidelity_per_class.csv, class names canonical (``all`` = the whole set, kept as is)."""
    fpc = T.read_table(path, ["set", "class", "fidelity", "n"])
    fpc["class"] = [c if c == "all" else L.canonical(c) for c in fpc["class"]]
    return fpc


def identity_table(wide: pd.DataFrame | None) -> pd.DataFrame:
    """Each set's identity similarity (GAN edits) with its strategy; no rows when none was measured."""
    ident = (wide["identity_similarity"].dropna() if wide is not None and "identity_similarity" in wide.columns
             else pd.Series(dtype=float))
    table = ident.rename("identity_similarity").to_frame()
    table.insert(0, "strategy", [REP.strategy_of(s).name for s in table.index])
    return table


def read_demographics(path: str | os.PathLike) -> pd.DataFrame | None:
    """Notebook 06's demographics.csv (values kept as text: 'NA' is no missing value here); None when absent."""
    path = Path(path)
    if not path.is_file():
        return None
    return T.read_table(path, ["set", "basis", "label", "attribute", "value", "count", "share"],
                        keep_default_na=False)


def demographic_shares(demo: pd.DataFrame) -> pd.DataFrame:
    """Each set's shares over all its images: (set, basis) × (attribute, value), 3 digits."""
    overall = demo[demo["label"] == "all"]
    return overall.pivot_table(index=["set", "basis"], columns=["attribute", "value"], values="share",
                               aggfunc="first").round(3)


def unmatched(demo: pd.DataFrame) -> dict[str, int]:
    """{set: images without a truth match} for the sets that have any (counted as 'unknown'); {} without the
    ``n_unmatched`` column."""
    if "n_unmatched" not in demo.columns or not (demo["n_unmatched"].astype(int) > 0).any():
        return {}
    return demo.groupby("set")["n_unmatched"].max().loc[lambda v: v.astype(int) > 0].to_dict()


def headline_shown(headline: pd.DataFrame, metrics: Mapping[str, str] = REP.HEADLINE_METRICS) -> pd.DataFrame:
    """The headline table as shown: each metric as ``'0.612 ± 0.031'`` (no ± for one seed), with the training set,
    strategy, test set and seeds."""
    shown = headline.assign(**{short: [f"{m:.3f}" + ("" if np.isnan(sd) else f" ± {sd:.3f}")
                                       for m, sd in zip(headline[short], headline[f"{short}_sd"])]
                               for short in metrics.values()})
    return shown[["train_set", "strategy", "test_set", *metrics.values(), "n_seeds"]]


# ---- what the closing checks compare -------------------------------------------------------------------------------
def eval_against_cross(cross_all: pd.DataFrame, eval_all: pd.DataFrame) -> pd.DataFrame:
    """eval.csv beside the seed aggregate of cross_dataset.csv (`syntfer.study.summary.aggregate_eval`): an outer
    merge on (train_set, model, test_set, metric) with ``mean`` (recomputed), ``mean_csv`` and ``_merge``."""
    return SUM.aggregate_eval(cross_all).merge(eval_all, on=["train_set", "model", "test_set", "metric"],
                                               suffixes=("", "_csv"), how="outer", indicator=True)


def json_against_headline(metrics: Mapping, model: str, headline: pd.DataFrame,
                          short_names: Sequence[str]) -> pd.DataFrame:
    """metrics.json's seed means (the model's ``eval_by_model`` section, else ``eval``) beside the headline table's,
    one row per headline row and metric: ``train_set, test_set, metric, json, table``. A cell metrics.json lacks
    raises KeyError."""
    section = metrics.get("eval_by_model", {}).get(model, metrics["eval"])
    return pd.DataFrame([{"train_set": r["train_set"], "test_set": r["test_set"], "metric": short,
                          "json": section[r["train_set"]][r["test_set"]][short], "table": r[short]}
                         for _, r in headline.iterrows() for short in short_names],
                        columns=["train_set", "test_set", "metric", "json", "table"])


RUN_KEYS = ["train_set", "model", "seed", "test_set", "metric"]


def runs_against_summary(runs: pd.DataFrame, cross_all: pd.DataFrame) -> pd.DataFrame:
    """The training runs' rows beside the summary's per-seed rows: an outer merge on `RUN_KEYS` with
    ``value_run``, ``value_summary`` and ``_merge``."""
    return runs.merge(cross_all, on=RUN_KEYS, how="outer", suffixes=("_run", "_summary"), indicator=True)


def confusion_against_runs(confusion: Confusion, runs: pd.DataFrame, model: str, test: str) -> pd.DataFrame:
    """What each confusion table says beside what its run scored on `test`: per (set, seed), the recall of every
    class with test images and the number of test images; ``train_set, seed, path, quantity, confusion, run``."""
    rows = []
    for (s, seed), (table, path) in confusion.items():
        run = runs[(runs["train_set"] == s) & (runs["model"] == model) & (runs["seed"] == seed)
                   & (runs["test_set"] == test)].set_index("metric")["value"]
        support = table.sum(axis=1)
        for c in L.CLASSES:
            if support[c]:
                rows.append({"train_set": s, "seed": seed, "path": path, "quantity": f"recall_{c}",
                             "confusion": table.loc[c, c] / support[c], "run": run[f"recall_{c}"]})
        rows.append({"train_set": s, "seed": seed, "path": path, "quantity": "n", "confusion": support.sum(),
                     "run": run["n"]})
    return pd.DataFrame(rows, columns=["train_set", "seed", "path", "quantity", "confusion", "run"])


def synthetic_against_metrics(syn: pd.DataFrame, metrics: Mapping) -> pd.DataFrame:
    """Each synthetic.csv row beside the same number in metrics.json (``synthetic.<set>.<metric>``;
    ``identity_similarity.<set>`` for identity similarity), for the rows metrics.json has:
    ``set, metric, value, json``."""
    rows = []
    for r in syn.itertuples():
        where = ("identity_similarity", r.set) if r.metric == "identity_similarity" else ("synthetic", r.set, r.metric)
        node = metrics
        for k in where:
            node = node.get(k) if isinstance(node, dict) else None
        if node is not None:
            rows.append({"set": r.set, "metric": r.metric, "value": r.value, "json": node})
    return pd.DataFrame(rows, columns=["set", "metric", "value", "json"])


def fidelity_against_sets(fpc: pd.DataFrame, wide: pd.DataFrame) -> pd.DataFrame:
    """Per set in both: the mean of its per-class fidelity rows (``mean_of_classes``, classes of the label space
    only) beside its ``expression_fidelity`` in synthetic.csv."""
    mean_class = fpc[fpc["class"].isin(L.CLASSES)].groupby("set")["fidelity"].mean()
    common = mean_class.index.intersection(wide.index)
    return pd.DataFrame({"mean_of_classes": mean_class[common],
                         "expression_fidelity": wide.loc[common, "expression_fidelity"]})


def privacy_against_summary(priv: pd.DataFrame, summary_privacy: str | os.PathLike) -> pd.DataFrame:
    """Notebook 06's privacy summary beside the summary stage's (`summary_privacy`), merged on (set, space);
    the summary's columns end in ``_summary``."""
    return priv.merge(SUM.read_privacy(summary_privacy), on=["set", "space"], suffixes=("", "_summary"))


def share_totals(demo: pd.DataFrame) -> pd.Series:
    """Sum of the shares of each (set, basis, label, attribute) of a demographics table (each should be 1)."""
    return demo.groupby(["set", "basis", "label", "attribute"])["share"].sum()


def off_size_sets(composition: pd.DataFrame, train_sets: Sequence[str], *, matched_real: str, set_size: int
                  ) -> dict[str, int]:
    """{set: images} of the compared sets not at the study's size N = `set_size`: every synthetic, oracle and
    Mixed-SYN set and `matched_real`, exactly N (Mixed-SYN within 2 %: its per-source count rounds)."""
    return {s: int(composition.loc[s, "total"]) for s in train_sets
            if REP.strategy_of(s).family in ("synthetic", "oracle", "mixed") or s == matched_real
            if abs(int(composition.loc[s, "total"]) - set_size)
            > (0.02 if REP.strategy_of(s).family == "mixed" else 0.0) * set_size}


def unequal_size_findings(findings: pd.DataFrame, off_size: Mapping[str, int]) -> pd.DataFrame:
    """The equal-size findings whose two sets differ by more than 2 % in images, leaving out sets named in
    `off_size` (already reported) and rows without sizes."""
    bad = [r.Index for r in findings.itertuples() if r.kind.endswith("equal size") and r.set_a not in off_size
           and np.isfinite(r.n_a) and np.isfinite(r.n_b) and not abs(r.n_a - r.n_b) <= 0.02 * r.n_b]
    return findings.loc[bad]
