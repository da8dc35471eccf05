"""The study's one metrics file: collect a DVC fan-out of per-run outputs into nested keys.

``dvc exp show`` compares experiments, not fan-out members, so a summary stage gathers every member's
outputs into ``outputs/results/summary/metrics.json``:

- ``eval.<training_set>.<test_set>.{acc,balanced_acc,macro_f1}``: mean over seeds, with ``*_sd`` siblings
  (sample sd, ddof 1; ``null`` with a single seed) and ``n_seeds``; from the trainer's tidy
  cross-dataset CSVs (``train_set,model,seed,test_set,metric,value``, `syntfer.engine.evaluation`). With several
  backbones, ``eval`` holds the primary model and ``eval_by_model.<model>.…`` holds every model.
- ``synthetic.<set>.{n_images,expression_fidelity,fd_<space>,kid_<space>,…}``: per synthetic set, and its
  accuracy ratios on the primary test set (balanced accuracy, seed means): ``real_ratio`` over the size-matched
  real split, ``oracle_ratio`` over the oracle of the set's look (truth-labelled renders of it at the same size).
- ``oracle.<oracle>.real_ratio``: what a generator's look itself costs (the oracle over the size-matched real split).
- ``identity_similarity.<set>``: identity preservation of GAN-edited sets.
- ``pseudolabel.<source>.{kept,precision}``: pseudo-labeling survivors and (world-only) precision.
- ``privacy.<set>.{nn_similarity_mean_<space>,n_flagged_<space>,share_flagged_<space>}``.

Input files (any number of each; globs allowed on the CLI):

- eval: tidy cross-dataset CSVs;
- synthetic: JSON ``{"set": NAME, "<metric>": value, …}``, or ``{NAME: {"<metric>": value}, …}``, or a CSV
  either tidy (``set,metric,value``) or as written by `syntfer.instruments.distances.compare_sets`
  (``set,space,fd,kid,kid_sd,…``). A key ``identity_similarity`` is routed to the top-level section;
- pseudolabel: JSON ``{"source": NAME, "kept": n, "precision": p}`` (also read: ``n_selected`` for kept,
  ``world_precision`` / ``world_precision_all`` for precision; the source defaults to the folder name, as in
  ``outputs/pseudolabel/<source>/metrics.json`` written by notebook 03);
- privacy: the summary CSV of `syntfer.instruments.audit.privacy_check`.

Set names follow the study's convention (``real_<dataset>``, ``pseudolabel_<source>``,
``diffusion_<variant>``, ``gan_<f|v>``, ``mixed_syn``, ``hybrid_<set>``); names must not contain '.'.
Everything also lands in tidy CSVs next to the JSON for plots. NaN becomes ``null``.
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from syntfer.core.provenance import run_kind
from syntfer.core.storage import atomic_path, write_json

METRIC_KEYS: dict[str, str] = {"accuracy": "acc", "acc": "acc", "balanced_accuracy": "balanced_acc",
                               "balanced_acc": "balanced_acc", "macro_f1": "macro_f1"}
HEADLINE: tuple[str, ...] = ("acc", "balanced_acc", "macro_f1")
KEY_PART = re.compile(r"^[A-Za-z0-9_\-]+$")
KEPT_KEYS = ("kept", "n_selected", "n_kept")
PRECISION_KEYS = ("precision", "world_precision", "world_precision_all")


class SummaryError(ValueError):
    """Inputs that cannot be summarised (bad names, conflicting values, too few seeds, missing cells)."""


def _part(name: Any, what: str) -> str:
    s = str(name)
    if not KEY_PART.match(s):
        raise SummaryError(f"{what} {s!r} cannot be a metrics key part (letters, digits, '_' and '-' only)")
    return s


def _number(v: Any) -> float | int | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    f = float(v)
    return None if math.isnan(f) else f


def _set_in(d: dict, keys: Sequence[str], value: Any, where: str) -> None:
    for k in keys[:-1]:
        d = d.setdefault(k, {})
        if not isinstance(d, dict):
            raise SummaryError(f"{where}: key {'.'.join(keys)} collides with a value")
    if keys[-1] in d and d[keys[-1]] != value:
        raise SummaryError(f"{where}: conflicting values for {'.'.join(keys)}: {d[keys[-1]]} vs {value}")
    d[keys[-1]] = value


# --- eval ------------------------------------------------------------------------------------------
def aggregate_eval(tidy: pd.DataFrame, min_seeds: int = 1) -> pd.DataFrame:
    """Mean/sd/n_seeds per (train_set, model, test_set, metric); checks seeds and grid completeness.

    Raises when a cell has fewer than `min_seeds` seeds, or a (train_set, model) pair lacks a test set
    that others have (a fan-out member that did not finish).
    """
    need = {"train_set", "model", "seed", "test_set", "metric", "value"}
    if not need <= set(tidy.columns):
        raise SummaryError(f"cross-dataset table lacks {sorted(need - set(tidy.columns))}")
    key = ["train_set", "model", "seed", "test_set", "metric"]
    dup = tidy.duplicated(key)
    if dup.any():
        raise SummaryError(f"duplicate cross-dataset rows, e.g. {tidy.loc[dup, key].iloc[0].to_dict()}")
    g = tidy.groupby(["train_set", "model", "test_set", "metric"], sort=True)["value"]
    agg = g.agg(mean="mean", sd=lambda v: v.std(ddof=1), n_seeds="count").reset_index()
    few = agg[agg["n_seeds"] < min_seeds]
    if len(few):
        raise SummaryError(f"{len(few)} cells have fewer than {min_seeds} seeds, e.g. "
                           f"{few.iloc[0][['train_set', 'model', 'test_set', 'metric', 'n_seeds']].to_dict()}")
    tests = set(tidy["test_set"])
    for (train, model), grp in tidy.groupby(["train_set", "model"]):
        missing = tests - set(grp["test_set"])
        if missing:
            raise SummaryError(f"training set {train!r} with model {model!r} has no results on {sorted(missing)}")
    return agg


def eval_section(agg: pd.DataFrame, model: str | None = None) -> dict[str, Any]:
    """Nested ``{train: {test: {acc, acc_sd, …, n_seeds}}}`` for one model (the only one when None)."""
    models = sorted(agg["model"].unique())
    if model is None:
        if len(models) != 1:
            raise SummaryError(f"several models {models}: name the primary one")
        model = models[0]
    if model not in models:
        raise SummaryError(f"primary model {model!r} has no results; models: {models}")
    out: dict[str, Any] = {}
    rows = agg[(agg["model"] == model) & agg["metric"].isin(list(METRIC_KEYS))]
    for r in rows.itertuples():
        name = METRIC_KEYS[r.metric]
        where = f"eval {r.train_set}/{r.test_set}"
        base = [_part(r.train_set, "training set"), _part(r.test_set, "test set")]
        _set_in(out, [*base, name], _number(r.mean), where)
        _set_in(out, [*base, f"{name}_sd"], _number(r.sd), where)
        _set_in(out, [*base, "n_seeds"], int(r.n_seeds), where)
    return out


# --- synthetic sets, pseudolabel, privacy ---------------------------------------------------------
def read_synthetic(file: str | os.PathLike) -> pd.DataFrame:
    """Tidy ``set,metric,value`` rows from one synthetic-set metrics file (formats: module docstring)."""
    file = Path(file)
    if file.suffix == ".json":
        obj = json.loads(file.read_text())
        if not isinstance(obj, dict):
            raise SummaryError(f"{file}: expected a JSON object")
        if "set" in obj:
            items = {str(obj["set"]): {k: v for k, v in obj.items() if k != "set"}}
        elif all(isinstance(v, dict) for v in obj.values()):
            items = obj
        else:
            raise SummaryError(f"{file}: expected {{'set': NAME, metric: value}} or {{NAME: {{metric: value}}}}")
        rows = [{"set": s, "metric": m, "value": v} for s, d in items.items() for m, v in d.items()]
    elif file.suffix == ".csv":
        df = pd.read_csv(file)
        if {"set", "metric", "value"} <= set(df.columns):
            rows = df[["set", "metric", "value"]].to_dict(orient="records")
        elif {"set", "space", "fd", "kid"} <= set(df.columns):
            rows = []
            for r in df.itertuples():
                rows += [{"set": r.set, "metric": f"fd_{r.space}", "value": r.fd},
                         {"set": r.set, "metric": f"kid_{r.space}", "value": r.kid}]
                if "kid_sd" in df.columns:
                    rows.append({"set": r.set, "metric": f"kid_{r.space}_sd", "value": r.kid_sd})
        else:
            raise SummaryError(f"{file}: columns {list(df.columns)}; expected set,metric,value or set,space,fd,kid")
    else:
        raise SummaryError(f"{file}: expected a .json or .csv file")
    for r in rows:
        if isinstance(r["value"], (dict, list, str)) and not _is_number_text(r["value"]):
            raise SummaryError(f"{file}: set {r['set']!r} metric {r['metric']!r} is not a number: {r['value']!r}")
    out = pd.DataFrame(rows, columns=["set", "metric", "value"])
    out["value"] = pd.to_numeric(out["value"])
    out["file"] = str(file)
    return out


def _is_number_text(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    try:
        float(v)
    except ValueError:
        return False
    return True


def _first(d: Mapping[str, Any], keys: Sequence[str], where: str) -> Any:
    for k in keys:
        if k in d:
            return d[k]
    raise SummaryError(f"{where}: none of the keys {list(keys)} present; has {sorted(d)[:15]}")


def read_pseudolabel(file: str | os.PathLike) -> dict[str, Any]:
    """{source, kept, precision} from one pseudo-labeling metrics JSON (aliases: module docstring).

    The source is the JSON's ``source`` key, else its folder's name without the set prefix
    (``outputs/sets/pseudolabel_<source>/metrics.json`` or ``outputs/pseudolabel/<source>/metrics.json``). Precision needs hidden truth (world only): ``null`` when the file has none.
    """
    file = Path(file)
    d = json.loads(file.read_text())
    where = str(file)
    precision = next((d[k] for k in PRECISION_KEYS if k in d), None)
    source = d.get("source", file.parent.name.removeprefix("pseudolabel_"))
    return {"source": _part(source, "pseudolabel source"),
            "kept": _number(_first(d, KEPT_KEYS, where)), "precision": _number(precision)}


def read_privacy(file: str | os.PathLike) -> pd.DataFrame:
    df = pd.read_csv(file)
    need = {"set", "space", "similarity_mean", "n_flagged", "share_flagged"}
    if not need <= set(df.columns):
        raise SummaryError(f"{file}: columns {list(df.columns)}; expected at least {sorted(need)}")
    return df


# --- the whole summary ------------------------------------------------------------------------------
def oracle_of(set_name: str, set_domains: Mapping[str, str]) -> str | None:
    """The oracle set of a set's look: the prefix of `set_name` in `set_domains` (prefix -> reference domain
    ``ref_<x>``) gives ``oracle_<x>``; None when no prefix matches."""
    for prefix, domain in set_domains.items():
        if set_name.startswith(prefix):
            return "oracle_" + domain.removeprefix("ref_")
    return None


def accuracy_ratio(agg: pd.DataFrame, numerator: str, denominator: str, test: str, model: str | None = None,
                   metric: str = "balanced_accuracy") -> float:
    """Seed-mean `metric` on `test` of a classifier trained on `numerator` over that of the same recipe trained on
    `denominator` (sets of one size and one step count in the study). A set without results raises naming it."""
    rows = agg[(agg["metric"] == metric) & (agg["test_set"] == test)]
    if model is not None:
        rows = rows[rows["model"] == model]
    value = rows.set_index("train_set")["mean"]
    for name in (numerator, denominator):
        if name not in value.index:
            raise SummaryError(f"ratio: no {metric} of training set {name!r} on {test!r} (train it in the grid)")
    return float(value[numerator] / value[denominator]) if value[denominator] > 0 else float("nan")


def build_summary(*, cross_dataset: pd.DataFrame | None = None, synthetic: pd.DataFrame | None = None,
                  pseudolabel: Sequence[Mapping[str, Any]] = (), privacy: pd.DataFrame | None = None,
                  primary_model: str | None = None, min_seeds: int = 1, matched_real: str | None = None,
                  set_domains: Mapping[str, str] | None = None, ratio_test: str = "rafdb"
                  ) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """The nested metrics dict and the tidy tables it was built from (eval, synthetic, pseudolabel, privacy).

    With `matched_real` (the size-matched real split), every synthetic set with results gets
    ``synthetic.<set>.real_ratio`` and, when `set_domains` names its look, ``oracle_ratio`` over its oracle
    (`oracle_of`); each oracle with results gets ``oracle.<oracle>.real_ratio`` (`accuracy_ratio`, on `ratio_test`)."""
    metrics: dict[str, Any] = {}
    tables: dict[str, pd.DataFrame] = {}
    if cross_dataset is not None and len(cross_dataset):
        agg = aggregate_eval(cross_dataset, min_seeds=min_seeds)
        tables["eval"] = agg
        tables["cross_dataset"] = cross_dataset
        metrics["eval"] = eval_section(agg, primary_model)
        models = sorted(agg["model"].unique())
        if len(models) > 1:
            metrics["eval_by_model"] = {_part(m, "model"): eval_section(agg, m) for m in models}
    if synthetic is not None and len(synthetic):
        tables["synthetic"] = synthetic
        for r in synthetic.itertuples():
            where = getattr(r, "file", "synthetic")
            s = _part(r.set, "set")
            m = [_part(part, "metric") for part in str(r.metric).split(".")]  # 'a.b' nests: synthetic.<set>.a.b
            if m == ["identity_similarity"]:
                _set_in(metrics, ["identity_similarity", s], _number(r.value), where)
            else:
                _set_in(metrics, ["synthetic", s, *m], _number(r.value), where)
    if matched_real and "eval" in tables and synthetic is not None and len(synthetic):
        agg = tables["eval"]
        trained = set(agg["train_set"])
        for name in sorted(set(synthetic["set"]) & trained):
            _set_in(metrics, ["synthetic", _part(name, "set"), "real_ratio"],
                    _number(accuracy_ratio(agg, name, matched_real, ratio_test, primary_model)), "ratios")
            oracle = oracle_of(name, set_domains or {})
            if oracle is not None and oracle in trained:
                _set_in(metrics, ["synthetic", _part(name, "set"), "oracle_ratio"],
                        _number(accuracy_ratio(agg, name, oracle, ratio_test, primary_model)), "ratios")
        for oracle in sorted({oracle_of(n, set_domains or {}) for n in trained} & trained):
            _set_in(metrics, ["oracle", _part(oracle, "set"), "real_ratio"],
                    _number(accuracy_ratio(agg, oracle, matched_real, ratio_test, primary_model)), "ratios")
    if pseudolabel:
        tables["pseudolabel"] = pd.DataFrame(list(pseudolabel))
        for p in pseudolabel:
            for k in ("kept", "precision"):
                _set_in(metrics, ["pseudolabel", _part(p["source"], "source"), k], _number(p[k]), "pseudolabel")
    if privacy is not None and len(privacy):
        tables["privacy"] = privacy
        for r in privacy.itertuples():
            s, sp = _part(r.set, "set"), _part(r.space, "space")
            for k in ("similarity_mean", "n_flagged", "share_flagged"):
                name = "nn_similarity_mean" if k == "similarity_mean" else k
                _set_in(metrics, ["privacy", s, f"{name}_{sp}"], _number(getattr(r, k)), "privacy")
    if not metrics:
        raise SummaryError("nothing to summarise: no inputs given")
    return metrics, tables


def write_summary(out_dir: str | os.PathLike, metrics: Mapping[str, Any],
                  tables: Mapping[str, pd.DataFrame]) -> Path:
    """``metrics.json`` plus ``<table>.csv`` for each tidy table; returns the JSON path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", metrics)
    for name, t in tables.items():
        with atomic_path(out / f"{name}.csv") as tmp:
            t.to_csv(tmp, index=False)
    return out / "metrics.json"


def expand(patterns: Iterable[str]) -> list[str]:
    """Files matching each glob pattern (sorted); a pattern matching nothing raises."""
    files: list[str] = []
    for pat in patterns:
        hits = sorted(glob.glob(pat, recursive=True))
        if not hits:
            raise SummaryError(f"no file matches {pat!r}")
        files += hits
    return files


def _stage_label(file: Path) -> str:
    """`outputs/gan/metrics.json` -> gan; `outputs/results/instruments.json` -> instruments."""
    return file.parent.name if file.name == "metrics.json" else file.stem


def merge_inputs(files: Sequence[str | os.PathLike]) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """Every stage's ``inputs`` (name -> {path, kind}, `syntfer.core.provenance`) and ``skipped`` (what -> reason)
    from the notebooks' metrics JSONs, merged: an input named alike with the same path everywhere is listed once,
    under its name; a name given to several paths is listed per stage (``<stage>.<name>``) for each of them. A file without ``inputs``
    raises naming it (every notebook writes them)."""
    seen: list[tuple[str, str, dict[str, str]]] = []  # (stage, name, {path, kind})
    skipped: dict[str, dict[str, str]] = {}
    for f in sorted(Path(x) for x in files):
        d = json.loads(f.read_text())
        if not isinstance(d.get("inputs"), Mapping):
            raise SummaryError(f"{f}: no 'inputs' (name -> path, kind); the notebook that wrote it lists its inputs")
        label = _stage_label(f)
        seen += [(label, name, {"path": str(info["path"]), "kind": str(info["kind"])})
                 for name, info in d["inputs"].items() if info.get("kind") != "unused"]
        if d.get("skipped"):
            skipped[label] = {str(k): str(v) for k, v in d["skipped"].items()}
    paths: dict[str, set[str]] = {}
    for _, name, info in seen:
        paths.setdefault(name, set()).add(info["path"])
    inputs = {(name if len(paths[name]) == 1 else f"{label}.{name}"): info for label, name, info in seen}
    return dict(sorted(inputs.items())), skipped


def collect(out_dir: str | os.PathLike, *, eval_files: Sequence[str] = (), synthetic_files: Sequence[str] = (),
            pseudolabel_files: Sequence[str] = (), privacy_files: Sequence[str] = (),
            primary_model: str | None = None, min_seeds: int = 1, data_kind: str | None = None,
            matched_real: str | None = None, set_domains: Mapping[str, str] | None = None,
            ratio_test: str = "rafdb", input_files: Sequence[str] = ()) -> dict[str, Any]:
    """Read every input file, build the summary, write it under `out_dir`; returns the metrics dict.

    `input_files`: the notebooks' metrics JSONs; their inputs (each with its kind, world or real) and skipped
    measurements are merged into the metrics (`merge_inputs`), and ``data_kind`` — world, real or mixed — is read
    from them (`data_kind`, if also given, must agree). It is written as a top-level key so every number says where
    it came from.
    """
    cross = None
    if eval_files:
        cross = pd.concat([pd.read_csv(f) for f in eval_files], ignore_index=True)
    synthetic = pd.concat([read_synthetic(f) for f in synthetic_files], ignore_index=True) if synthetic_files else None
    pseudo = [read_pseudolabel(f) for f in pseudolabel_files]
    privacy = pd.concat([read_privacy(f) for f in privacy_files], ignore_index=True) if privacy_files else None
    metrics, tables = build_summary(cross_dataset=cross, synthetic=synthetic, pseudolabel=pseudo, privacy=privacy,
                                    primary_model=primary_model, min_seeds=min_seeds, matched_real=matched_real,
                                    set_domains=set_domains, ratio_test=ratio_test)
    if input_files:
        inputs, skipped = merge_inputs(input_files)
        derived = run_kind(inputs)
        if data_kind is not None and data_kind != derived:
            raise SummaryError(f"data_kind {data_kind!r} given, but the inputs are {derived!r}: "
                               + ", ".join(f"{k} {v['kind']}" for k, v in inputs.items()))
        metrics = {"data_kind": derived, "inputs": inputs, "skipped": skipped, **metrics}
    elif data_kind is not None:
        metrics = {"data_kind": data_kind, **metrics}
    write_summary(out_dir, metrics, tables)
    return metrics


# --- CLI: syntfer summarize -----------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--eval", action="append", default=[], metavar="GLOB", help="tidy cross-dataset CSVs")
    parser.add_argument("--synthetic", action="append", default=[], metavar="GLOB",
                        help="synthetic-set metrics (JSON or CSV)")
    parser.add_argument("--pseudolabel", action="append", default=[], metavar="GLOB", help="pseudo-label JSONs")
    parser.add_argument("--privacy", action="append", default=[], metavar="GLOB", help="privacy summary CSVs")
    parser.add_argument("--primary-model", default=None, help="model whose results go under 'eval'")
    parser.add_argument("--min-seeds", type=int, default=1)
    parser.add_argument("--inputs", action="append", default=[], metavar="GLOB",
                        help="the notebooks' metrics JSONs: their inputs and kinds (world/real) give data_kind")
    parser.add_argument("--matched-real", default="", metavar="SET",
                        help="the size-matched real split: synthetic.<set>.real_ratio, oracle.<oracle>.real_ratio")
    parser.add_argument("--set-domains", default="", metavar="PREFIX:DOMAIN[,…]",
                        help="set-name prefix: its generator's look ref_<x>, whose oracle set is oracle_<x>")
    parser.add_argument("--ratio-test", default="rafdb", help="test set of the ratios")
    parser.add_argument("--out", required=True, help="output folder (metrics.json + tidy CSVs)")


def parse_pairs(text: str, sep: str = "=") -> dict[str, str]:
    """``"a=b,c=d"`` -> {a: b, c: d} (`sep` between the two); a pair without it raises naming it."""
    out = {}
    for pair in (p.strip() for p in text.split(",") if p.strip()):
        a, found, b = pair.partition(sep)
        if not found or not a or not b:
            raise SummaryError(f"{pair!r}: expected KEY{sep}VALUE")
        out[a] = b
    return out


def run(args: argparse.Namespace) -> int:
    metrics = collect(args.out, eval_files=expand(args.eval), synthetic_files=expand(args.synthetic),
                      pseudolabel_files=expand(args.pseudolabel), privacy_files=expand(args.privacy),
                      primary_model=args.primary_model, min_seeds=args.min_seeds,
                      input_files=expand(args.inputs),
                      matched_real=args.matched_real or None, set_domains=parse_pairs(args.set_domains, ":"),
                      ratio_test=args.ratio_test)
    print(f"wrote {Path(args.out) / 'metrics.json'} with sections {sorted(metrics)}")
    return 0
