"""The study's verdicts: the paper's kinds of claims, each a paired effect with a bootstrap interval.

A claim compares two training sets (or two settings) on the same test images: the effect is the difference of a
metric (balanced accuracy, a class's recall, pseudo-label precision, demographic entropy) and its 95 % interval
comes from a two-level paired bootstrap — test images resampled with replacement (the same draw for both sides, so
the comparison is paired) and, where there are seeds, seeds resampled too (seed *s* of one set is paired with
seed *s* of the other). The verdict is decided by the interval alone: ``supported`` when it lies wholly on the
side the claim predicts, ``contradicted`` when wholly on the other side, ``inconclusive`` when it contains 0.

Inputs are what the pipeline writes: per seed and test set, ``<train_dir>/<set>/s<seed>/confusion_<test>.csv``
(one ``actual,predicted`` row per test image, in test-manifest order; notebook 02), pseudo-label scores with the
world's truth (notebook 03), attribute readings of generated sets (notebook 04) and the world's truth files.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
import pkgutil
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from syntfer.core import labels as L
from syntfer.strategies.pseudolabel import select
from syntfer.core.seeding import numpy_rng
from syntfer.core.strategy import Strategy
from syntfer.study.summary import oracle_of

FINDING_COLUMNS = ("claim", "kind", "effect", "ci_low", "ci_high", "verdict", "p_value", "p_holm", "verdict_holm",
                   "expected", "metric", "test_set", "set_a", "set_b", "n_a", "steps_a", "n_b", "steps_b", "n_seeds",
                   "n_images", "reason")
VERDICTS = ("supported", "contradicted", "inconclusive")
SKIPPED = "skipped"  # a claim this run cannot test (e.g. it needs world truth the user's data has not): `reason` says why


class ReportError(ValueError):
    """Inputs a finding cannot be computed from (missing runs, test sets that differ between runs)."""


# ---- strategies and set names ---------------------------------------------------------------------------------
STUDY_SETS: tuple[Strategy, ...] = (
    Strategy("real_", "real", "real", "a real dataset's training split", order=0),
    Strategy("mixed_syn", "Mixed-SYN", "mixed", "every synthetic source, class-balanced", order=1000),
    Strategy("hybrid_", "hybrid", "hybrid", "a synthetic set added to the RAF-DB training split", order=1001),
    Strategy("oracle_", "oracle", "oracle", "truth-labelled renders of a generator's look: its perfect generator",
             order=1002),
)
"""Set kinds the study itself makes (`syntfer.study.mixing` writes them) or trains on; the strategies declare themselves."""


def discover_strategies(folder: str | os.PathLike = Path(__file__).parents[1] / "strategies",
                        package: str = "syntfer.strategies") -> tuple[Strategy, ...]:
    """Every subpackage of `package` (found in `folder`: by default syntfer/strategies/) that declares
    ``STRATEGY`` (`syntfer.core.strategy`), in their `order`. A ``STRATEGY`` that is not a synthetic `Strategy`,
    or two with one prefix, raise naming them."""
    found: dict[str, Strategy] = {}
    for info in pkgutil.iter_modules([str(folder)], package + "."):
        if not info.ispkg:
            continue
        s = getattr(importlib.import_module(info.name), "STRATEGY", None)
        if s is None:
            continue
        if not isinstance(s, Strategy) or s.family != "synthetic":
            raise ReportError(f"{info.name}.STRATEGY = {s!r}: expected a syntfer.core.strategy.Strategy of family "
                              "'synthetic'")
        clash = [k for k, o in found.items() if o.prefix.startswith(s.prefix) or s.prefix.startswith(o.prefix)]
        if clash:
            raise ReportError(f"{info.name}.STRATEGY prefix {s.prefix!r} collides with {clash[0]}'s "
                              f"{found[clash[0]].prefix!r}: set names would be ambiguous")
        found[info.name] = s
    return tuple(sorted(found.values(), key=lambda s: (s.order, s.prefix)))


STRATEGIES: tuple[Strategy, ...] = tuple(sorted((*STUDY_SETS, *discover_strategies()), key=lambda s: s.order))
"""Every set kind, in the report's order: real splits, the strategies (i)-(iii) and any other declared, then the
study's Mixed-SYN, hybrids and oracles."""


def _lookup(params: Mapping, dotted: str):
    node = params
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise ReportError(f"params.yaml has no {dotted!r} (a strategy's sets_key)")
        node = node[part]
    return node


def strategy_sets(params: Mapping, strategies: Sequence[Strategy] | None = None) -> list[str]:
    """Every strategy's training sets, derived from `params` (params.yaml as a dict) and the declarations, in the
    strategies' order: ``<prefix><variant>`` for each key of its ``sets_key`` section (a strategy whose own stage
    writes its sets), then the ``study.synthetic`` entries named with its prefix (in params.yaml's order). A
    ``study.synthetic`` entry no strategy claims raises, naming it. This is ``study.mixed_sources``, Mixed-SYN's
    sources and the synthetic sets notebook 06 measures."""
    strategies = discover_strategies() if strategies is None else strategies
    synthetic = list((params.get("study") or {}).get("synthetic") or {})
    out = []
    for s in strategies:
        if s.sets_key:
            out += [s.prefix + k for k in _lookup(params, s.sets_key)]
        out += [k for k in synthetic if k.startswith(s.prefix)]
    orphans = [k for k in synthetic if k not in out]
    if orphans:
        raise ReportError(f"study.synthetic {orphans}: no strategy declares their prefix "
                          f"{[s.prefix for s in strategies]}")
    return out


def set_domains(strategies: Sequence[Strategy] | None = None) -> dict[str, str]:
    """Set-name prefix -> the look its generator imitates (``ref_<x>``), for every strategy that declares one
    (`Strategy.look`): ``study.set_domains``."""
    strategies = discover_strategies() if strategies is None else strategies
    return {s.prefix: s.look for s in strategies if s.look}


FAMILY_LABELS: dict[str, str] = {"real": "real", "synthetic": "synthetic (one source)",
                                 "mixed": "Mixed-SYN (all sources)", "hybrid": "hybrid (synthetic + real)",
                                 "oracle": "oracle (truth-labelled renders of a look)"}
"""How the report names each family, in its display order."""


def strategy_of(set_name: str) -> Strategy:
    """The strategy a training set belongs to, by its name's prefix; an unknown prefix raises naming the set."""
    for s in STRATEGIES:
        if set_name.startswith(s.prefix):
            return s
    raise ReportError(f"training set {set_name!r}: no strategy has its prefix; known "
                      f"{[s.prefix for s in STRATEGIES]}")


def pretty(set_name: str) -> str:
    """A set name as a FER researcher would say it ('diffusion_embedded_au' -> 'diffusion (embedded, AU)')."""
    s = strategy_of(set_name)
    rest = set_name[len(s.prefix):]
    if s.family in ("mixed",):
        return "Mixed-SYN"
    if s.family == "hybrid":
        return f"{pretty(rest)} + real RAF-DB"
    if s.family == "real":
        base, matched = (rest.removesuffix("_matched"), rest.endswith("_matched"))
        name = {"rafdb": "RAF-DB", "affectnet": "AffectNet", "fer2013": "FER2013"}.get(base, base)
        return f"{name} (size-matched)" if matched else name
    if s.family == "oracle":
        return f"oracle ({rest} look)"
    for a, b in s.words:  # the strategy's own spelling (its declaration), then '_' -> ' '
        rest = rest.replace(a, b)
    words = rest.replace("_", " ")
    return f"{s.name} ({words})" if words else s.name


def family_label(set_name: str) -> str:
    """How the report names a training set's family (`FAMILY_LABELS`), by its name's prefix; unknown raises."""
    return FAMILY_LABELS[strategy_of(set_name).family]


def order_sets(names: Sequence[str], first: str | None = None) -> list[str]:
    """Training sets grouped by strategy in `STRATEGIES` order, `first` (the reference set) at the head of its
    group, then by name. An unknown prefix raises naming the set."""
    rank = {s.prefix: i for i, s in enumerate(STRATEGIES)}
    return sorted(names, key=lambda n: (rank[strategy_of(n).prefix], n != first, n))


HEADLINE_METRICS: dict[str, str] = {"accuracy": "acc", "balanced_accuracy": "balanced_acc", "macro_f1": "macro_f1"}
"""The headline table's metrics (eval.csv names) and their short column names."""


def headline_table(ev: pd.DataFrame, train_sets: Sequence[str], test_sets: Sequence[str], *, model: str,
                   data_kind: str, metrics: Mapping[str, str] = HEADLINE_METRICS) -> pd.DataFrame:
    """One row per training set × test set: mean and sd over seeds of each headline metric, the strategy, the
    fewest seeds behind a cell, and the model and data kind (a quoted row keeps its provenance). `ev` is
    eval.csv's rows (train_set, test_set, metric, mean, sd, n_seeds); a missing cell raises naming it."""
    head = ev[ev["metric"].isin(list(metrics))]
    wide = head.pivot_table(index=["train_set", "test_set"], columns="metric", values=["mean", "sd"],
                            aggfunc="first", dropna=False)
    n_seed = head.groupby(["train_set", "test_set"])["n_seeds"].min()
    rows = []
    for s in train_sets:
        for t in test_sets:
            if (s, t) not in n_seed.index:
                raise ReportError(f"eval rows: no {list(metrics)} for training set {s!r} on test set {t!r}")
            row = {"train_set": s, "strategy": strategy_of(s).name, "test_set": t}
            for metric, short in metrics.items():
                row[short] = wide.loc[(s, t), ("mean", metric)]
                row[f"{short}_sd"] = wide.loc[(s, t), ("sd", metric)]
            row |= {"n_seeds": int(n_seed.loc[(s, t)]), "model": model, "data_kind": data_kind}
            rows.append(row)
    return pd.DataFrame(rows)


def distance_rows(wide: pd.DataFrame) -> pd.DataFrame:
    """Tidy (set, space, measure, value) rows from a per-set metrics table whose columns include
    ``fd_<space>``, ``kid_<space>`` and ``kid_<space>_sd`` (notebook 06's synthetic.csv, pivoted) and
    ``fd_<space>_domain`` (notebook 04: the distance to real faces of the generator's own domain, measure
    ``fd_domain``); other columns are ignored, missing values dropped."""
    rows = []
    for metric in wide.columns:
        m = re.fullmatch(r"(fd|kid)_(.+?)(_domain)?(_sd)?", metric)
        if m:
            measure = m.group(1) + (m.group(3) or "") + (m.group(4) or "")
            for s, v in wide[metric].dropna().items():
                rows.append({"set": s, "space": m.group(2), "measure": measure, "value": v})
    return pd.DataFrame(rows, columns=["set", "space", "measure", "value"])


# ---- the report's tables --------------------------------------------------------------------------------------
def metric_matrix(table: pd.DataFrame, metric: str, rows: Sequence[str], columns: Sequence[str],
                  value: str = "mean") -> pd.DataFrame:
    """One metric of a seed-aggregated table (`syntfer summarize`'s eval.csv) as a training set × test set matrix.

    `table` holds ``train_set, test_set, metric`` and the `value` column (``mean`` or ``sd``); the matrix has
    `rows` (training sets) and `columns` (test sets) in the order given, NaN where a pair has no result. A metric
    with no rows, or a pair with two rows, raises naming it."""
    need = {"train_set", "test_set", "metric", value}
    if not need <= set(table.columns):
        raise ReportError(f"metric table lacks column(s) {sorted(need - set(table.columns))}; "
                          f"has {list(table.columns)}")
    t = table[table["metric"] == metric]
    if t.empty:
        raise ReportError(f"no rows for metric {metric!r}; metrics: {sorted(table['metric'].unique())}")
    dup = t.duplicated(["train_set", "test_set"])
    if dup.any():
        raise ReportError(f"metric {metric!r}: several rows for training set × test set "
                          f"{tuple(t.loc[dup, ['train_set', 'test_set']].iloc[0])} (one model at a time)")
    return t.pivot(index="train_set", columns="test_set", values=value).reindex(index=list(rows),
                                                                               columns=list(columns))


def mean_sd_text(mean: pd.DataFrame, sd: pd.DataFrame, digits: int = 3) -> np.ndarray:
    """Heatmap annotations of `mean` ± `sd` cell by cell: ``'0.612\\n± 0.031'``, or ``'0.612'`` where sd is NaN
    (a single seed). Both frames must have the same shape; returns an object array of that shape."""
    if mean.shape != sd.shape:
        raise ReportError(f"mean {mean.shape} and sd {sd.shape} tables differ in shape")
    return np.array([[f"{m:.{digits}f}" + ("" if np.isnan(s) else f"\n± {s:.{digits}f}") for m, s in zip(mr, sr)]
                     for mr, sr in zip(mean.to_numpy(dtype=float), sd.to_numpy(dtype=float))], dtype=object)


SECTION_COLUMNS = ("section", "status", "input", "note")
SHOWN, NOT_PRODUCED = "shown", "not produced by this run"


class Sections:
    """The report's ledger: every section, shown or not produced by this run (and why), for ``sections.csv``.

    Nothing is skipped silently: a section whose input this run did not produce prints a line saying so and is
    recorded with the reason."""

    def __init__(self) -> None:
        self.rows: list[dict[str, str]] = []

    def record(self, name: str, path: str | os.PathLike, produced: bool, why: str = "") -> bool:
        """Record section `name` read from `path`; returns `produced` (``if sections.record(...):``).

        Not produced: the note is `why`, by default that `path` does not exist."""
        produced = bool(produced)
        note = "" if produced else (why or f"{path} does not exist")
        self.rows.append({"section": name, "status": SHOWN if produced else NOT_PRODUCED, "input": str(path),
                          "note": note})
        if not produced:
            print(f"[{name}] {NOT_PRODUCED}: {note}")
        return produced

    def optional(self, path: str | os.PathLike, name: str) -> Path | None:
        """`path` when it is a file (section `name` shown), else None (recorded as not produced)."""
        path = Path(path)
        return path if self.record(name, path, path.is_file()) else None

    def table(self) -> pd.DataFrame:
        """One row per recorded section: ``section, status, input, note``."""
        return pd.DataFrame(self.rows, columns=list(SECTION_COLUMNS))


# ---- per-image predictions -----------------------------------------------------------------------------------
def load_predictions(train_dir: str | os.PathLike, set_name: str, test: str) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{seed: (y_true, y_pred)} canonical indices from ``<train_dir>/<set>/s<seed>/confusion_<test>.csv``."""
    folder = Path(train_dir) / set_name
    files = sorted(folder.glob(f"s*/confusion_{test}.csv"))
    if not files:
        raise ReportError(f"{folder}: no s<seed>/confusion_{test}.csv (train the set with notebook 02)")
    out = {}
    for f in files:
        m = re.fullmatch(r"s(\d+)", f.parent.name)
        if not m:
            continue
        df = pd.read_csv(f)
        if list(df.columns) != ["actual", "predicted"]:
            raise ReportError(f"{f}: columns {list(df.columns)}; expected actual,predicted")
        out[int(m.group(1))] = (np.array([L.index(v) for v in df["actual"]]),
                                np.array([L.index(v) for v in df["predicted"]]))
    return out


# ---- statistics on weighted images (bootstrap weights: how often each image was drawn) ------------------------
Stat = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def balanced_accuracy(y: np.ndarray, pred: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Mean per-class recall for each row of weights `w` (B, N); classes absent from a draw are left out."""
    correct = (y == pred).astype(float)
    recalls = []
    for c in np.unique(y):
        m = (y == c).astype(float)
        n = w @ m
        recalls.append(np.where(n > 0, (w @ (m * correct)) / np.maximum(n, 1e-12), np.nan))
    return np.nanmean(np.stack(recalls), axis=0)


def accuracy(y: np.ndarray, pred: np.ndarray, w: np.ndarray) -> np.ndarray:
    return (w @ (y == pred).astype(float)) / w.sum(1)


def recall_of(cls: str) -> Stat:
    c = L.index(cls)

    def stat(y: np.ndarray, pred: np.ndarray, w: np.ndarray) -> np.ndarray:
        m = (y == c).astype(float)
        return (w @ (m * (pred == c))) / np.maximum(w @ m, 1e-12)

    return stat


def _weights(n: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """Row 0: every image once (the point estimate); rows 1..draws: multinomial bootstrap counts."""
    return np.vstack([np.ones((1, n)), rng.multinomial(n, np.full(n, 1.0 / n), size=draws).astype(float)])


def bootstrap_p(boot: np.ndarray) -> float:
    """Two-sided bootstrap p-value of 'the effect is 0': twice the smaller share of draws on either side of 0,
    with the +1 of a permutation-style estimate (never 0; at least 2 / (draws + 1)), capped at 1."""
    boot = np.asarray(boot, dtype=float)
    boot = boot[np.isfinite(boot)]
    if not len(boot):
        return float("nan")
    tail = min(int((boot <= 0).sum()), int((boot >= 0).sum()))
    return float(min(1.0, 2.0 * (tail + 1) / (len(boot) + 1)))


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment (family-wise error) of `p_values`; NaN stays NaN and is not counted."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    running = 0.0
    for i, j in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[j]))
        out[j] = running
    return out


def paired_effect(a: Mapping[int, tuple[np.ndarray, np.ndarray]], b: Mapping[int, tuple[np.ndarray, np.ndarray]],
                  stat: Stat, *, draws: int = 2000, seed: int = 0) -> tuple[float, float, float, int, int, float]:
    """(effect, ci_low, ci_high, n_seeds, n_images, p): mean over paired seeds of stat(a) - stat(b) on one test
    set, with a 95 % percentile interval from resampling images (shared by a and b) and seeds (paired), and the
    bootstrap p-value of no effect (`bootstrap_p`)."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ReportError(f"no common seeds between the two sides ({sorted(a)} vs {sorted(b)})")
    y = a[seeds[0]][0]
    for s in seeds:
        for side in (a, b):
            if not np.array_equal(side[s][0], y):
                raise ReportError(f"seed {s}: the two runs were tested on different images (labels differ)")
    rng = numpy_rng(seed, "report", "paired-effect")
    w = _weights(len(y), draws, rng)
    diff = np.stack([stat(y, a[s][1], w) - stat(y, b[s][1], w) for s in seeds])  # (seeds, 1 + draws)
    pick = rng.integers(0, len(seeds), size=(draws, len(seeds)))  # seeds resampled (paired), per draw
    boot = diff[pick, np.arange(1, draws + 1)[:, None]].mean(1)
    lo, hi = np.nanpercentile(boot, [2.5, 97.5])
    return float(diff[:, 0].mean()), float(lo), float(hi), len(seeds), int(len(y)), bootstrap_p(boot)


def verdict(lo: float, hi: float, expected: str) -> str:
    """'supported' when the interval lies on the expected side of 0 ('>' or '<'), 'contradicted' when on the
    other, 'inconclusive' otherwise (or when the interval is undefined)."""
    if expected not in (">", "<"):
        raise ReportError(f"expected {expected!r}; '>' or '<'")
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "inconclusive"
    above, below = lo > 0, hi < 0
    if (above and expected == ">") or (below and expected == "<"):
        return "supported"
    if above or below:
        return "contradicted"
    return "inconclusive"


def _row(claim: str, kind: str, effect: tuple, expected: str, metric: str, test: str, a: str, b: str,
         budget_a: tuple[float, float] = (np.nan, np.nan), budget_b: tuple[float, float] = (np.nan, np.nan)) -> dict:
    e, lo, hi, n_seeds, n_images, p = effect
    return {"claim": claim, "kind": kind, "effect": e, "ci_low": lo, "ci_high": hi, "verdict": verdict(lo, hi, expected),
            "p_value": p, "p_holm": np.nan, "verdict_holm": "", "expected": expected, "metric": metric,
            "test_set": test, "set_a": a, "set_b": b, "n_a": budget_a[0], "steps_a": budget_a[1], "n_b": budget_b[0],
            "steps_b": budget_b[1], "n_seeds": n_seeds, "n_images": n_images, "reason": ""}


def skipped_finding(claim: str, kind: str, metric: str, set_a: str, set_b: str, reason: str) -> pd.DataFrame:
    """One row for a claim this run cannot test: verdict `skipped` and the reason, never a silent absence."""
    if not reason:
        raise ReportError(f"skipped finding {claim!r}: a reason is required")
    row = _row(claim, kind, (np.nan, np.nan, np.nan, 0, 0, np.nan), ">", metric, "", set_a, set_b)
    row.update(verdict=SKIPPED, verdict_holm=SKIPPED, reason=reason)
    return pd.DataFrame([row], columns=list(FINDING_COLUMNS))


def pseudolabel_claim(source: str, tau_low: float, tau_high: float) -> str:
    """The pseudo-label threshold claim's words (one text whether it is tested or skipped)."""
    return f"{pretty(f'pseudolabel_{source}')}: a stricter threshold (τ {tau_high} vs {tau_low}) gives more precise labels"


def demographic_claim(set_name: str, attribute: str, real_name: str) -> str:
    """The demographic balance claim's words (one text whether it is tested or skipped)."""
    return f"{pretty(set_name)} is more balanced in {attribute.replace('_', ' ')} than {pretty(real_name)}"


def adjust(findings: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """`findings` with Holm-adjusted p-values over the whole family (``p_holm``) and the verdict they give
    (``verdict_holm``): supported / contradicted when ``p_holm`` <= `alpha` and the effect lies on the expected /
    other side of 0, inconclusive otherwise. The raw verdict (the 95 % interval alone) is kept beside it."""
    if not 0.0 < alpha < 1.0:
        raise ReportError(f"alpha {alpha!r}: expected a level in (0, 1)")
    out = findings.copy()
    out["p_holm"] = holm(out["p_value"].to_numpy(dtype=float)) if len(out) else []
    verdicts = []
    for r in out.itertuples():
        if getattr(r, "verdict", "") == SKIPPED:
            verdicts.append(SKIPPED)
        elif not np.isfinite(r.p_holm) or r.p_holm > alpha:
            verdicts.append("inconclusive")
        else:
            verdicts.append("supported" if (r.effect > 0) == (r.expected == ">") else "contradicted")
    out["verdict_holm"] = verdicts
    return out


def run_budget(train_dir: str | os.PathLike, set_name: str) -> tuple[float, float]:
    """(images in the training set, optimizer steps per seed) of a grid run, from ``<train_dir>/<set>/metrics.json``
    (notebook 02); NaN where the run predates the step count."""
    f = Path(train_dir) / set_name / "metrics.json"
    if not f.is_file():
        return (np.nan, np.nan)
    m = pd.read_json(f, typ="series")
    steps = [float(v) for k, v in m.items() if re.fullmatch(r"s\d+_optimizer_steps", str(k))]
    return (float(m.get("train_images", np.nan)), float(np.mean(steps)) if steps else np.nan)


# ---- the claims ------------------------------------------------------------------------------------------------
TEST_NAMES = {"rafdb": "RAF-DB test", "affectnet": "AffectNet val", "fer2013": "FER2013 test"}


def training_findings(train_dir: str | os.PathLike, sets: Sequence[str], *, real: str = "real_rafdb",
                      matched_real: str | None = None, set_domains: Mapping[str, str] | None = None,
                      primary_test: str = "rafdb", other_tests: Sequence[str] = ("affectnet", "fer2013"),
                      minority: Sequence[str] = ("fear", "disgust", "anger"), draws: int = 2000,
                      seed: int = 0) -> pd.DataFrame:
    """Claims about training sets, each a paired comparison on the same test images, on equal terms:

    - a synthetic set (or Mixed-SYN) alone falls short of the real split drawn at the same size (`matched_real`;
      the same images and optimizer steps per side — `n_a`/`steps_a`, `n_b`/`steps_b` say so); without a
      matched real set the comparison is with the whole real split and says "unequal size";
    - a synthetic set falls short of the oracle of its look (truth-labelled renders at the same size, the
      perfect generator: `set_domains` maps its prefix to its look ``ref_<x>``, the oracle is ``oracle_<x>``);
    - an oracle falls short of the size-matched real split (what the look itself costs);
    - a hybrid beats the whole real split — trained for the same optimizer steps (notebook 02's
      `steps_source`) — overall, on each minority class and on the other datasets' test sets."""
    rows = []
    base = {t: load_predictions(train_dir, real, t) for t in (primary_test, *other_tests)}
    trained = {p.name for p in Path(train_dir).iterdir() if p.is_dir()}
    budget = {name: run_budget(train_dir, name) for name in trained}
    matched = matched_real if matched_real and matched_real in trained else None
    matched_pred = load_predictions(train_dir, matched, primary_test) if matched else None
    equal = "at equal size" if matched else "(unequal size)"
    for s in sets:
        fam = strategy_of(s).family
        own = load_predictions(train_dir, s, primary_test) if fam in ("synthetic", "mixed", "oracle", "hybrid") else None
        if fam in ("synthetic", "mixed"):
            ref, ref_pred = (matched, matched_pred) if matched else (real, base[primary_test])
            eff = paired_effect(own, ref_pred, balanced_accuracy, draws=draws, seed=seed)
            rows.append(_row(f"{pretty(s)} alone falls short of real RAF-DB training {equal}",
                             "synthetic vs real, equal size" if matched else "synthetic vs real", eff, "<",
                             "balanced_accuracy", primary_test, s, ref, budget[s], budget[ref]))
            oracle = oracle_of(s, set_domains or {})
            if oracle in trained:
                eff = paired_effect(own, load_predictions(train_dir, oracle, primary_test), balanced_accuracy,
                                    draws=draws, seed=seed)
                rows.append(_row(f"{pretty(s)} falls short of a perfect generator of its look ({pretty(oracle)})",
                                 "synthetic vs oracle", eff, "<", "balanced_accuracy", primary_test, s, oracle,
                                 budget[s], budget[oracle]))
        elif fam == "oracle" and matched:
            eff = paired_effect(own, matched_pred, balanced_accuracy, draws=draws, seed=seed)
            rows.append(_row(f"{pretty(s)}: the look alone costs accuracy against real RAF-DB at equal size",
                             "oracle vs real, equal size", eff, "<", "balanced_accuracy", primary_test, s, matched,
                             budget[s], budget[matched]))
        elif fam == "hybrid":
            eff = paired_effect(own, base[primary_test], balanced_accuracy, draws=draws, seed=seed)
            rows.append(_row(f"adding {pretty(s.removeprefix('hybrid_'))} to real RAF-DB improves it (equal steps)",
                             "hybrid vs real", eff, ">", "balanced_accuracy", primary_test, s, real, budget[s],
                             budget[real]))
            for c in minority:
                eff = paired_effect(own, base[primary_test], recall_of(c), draws=draws, seed=seed)
                rows.append(_row(f"... and the recall of {c}, a minority class", "hybrid vs real, minority class",
                                 eff, ">", f"recall_{c}", primary_test, s, real, budget[s], budget[real]))
            for t in other_tests:
                eff = paired_effect(load_predictions(train_dir, s, t), base[t], balanced_accuracy, draws=draws,
                                    seed=seed)
                rows.append(_row(f"... and transfers better to {TEST_NAMES.get(t, t)}", "hybrid vs real, cross-dataset",
                                 eff, ">", "balanced_accuracy", t, s, real, budget[s], budget[real]))
    return pd.DataFrame(rows, columns=list(FINDING_COLUMNS))


def pseudolabel_finding(scores: pd.DataFrame, source: str, *, tau_low: float = 0.3, tau_high: float = 0.9,
                        per_class: int | None = None, draws: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row for one pseudo-labeled collection (world truth needed): precision at τ = `tau_high` minus at
    `tau_low` (expected > 0). That a stricter τ keeps fewer images is true by construction and is no finding
    (`kept_counts` gives the numbers). `scores` has the teacher's per-image probabilities and a `truth` column
    (`pseudolabel.attach_truth`)."""
    if "truth" not in scores.columns:
        raise ReportError(f"{source}: pseudo-label scores lack a 'truth' column (world truth needed)")
    scores = scores.reset_index(drop=True)
    sel_lo = select(scores, tau_low, per_class).frame
    sel_hi = select(scores, tau_high, per_class).frame
    pos = {p: i for i, p in enumerate(scores["path"])}
    n = len(scores)

    def mask(sel: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        kept = np.zeros(n)
        right = np.zeros(n)
        idx = np.array([pos[p] for p in sel["path"]], dtype=int)
        kept[idx] = 1.0
        right[idx] = (sel["label"].to_numpy() == sel["truth"].to_numpy()).astype(float)
        return kept, right

    k_lo, r_lo = mask(sel_lo)
    k_hi, r_hi = mask(sel_hi)
    w = _weights(n, draws, numpy_rng(seed, "report", "pseudolabel", source))
    with np.errstate(invalid="ignore", divide="ignore"):
        prec = (w @ r_hi) / (w @ k_hi) - (w @ r_lo) / (w @ k_lo)
    lo, hi = np.nanpercentile(prec[1:], [2.5, 97.5]) if np.isfinite(prec[1:]).any() else (np.nan, np.nan)
    name = f"pseudolabel_{source}"
    rows = [_row(pseudolabel_claim(source, tau_low, tau_high),
                 "pseudo-label threshold", (float(prec[0]), float(lo), float(hi), 0, n, bootstrap_p(prec[1:])), ">",
                 "precision_vs_truth", "", name, name, (float(k_hi.sum()), np.nan), (float(k_lo.sum()), np.nan))]
    return pd.DataFrame(rows, columns=list(FINDING_COLUMNS))


def normalized_entropy(values: np.ndarray, categories: Sequence[str], w: np.ndarray) -> np.ndarray:
    """Entropy of the weighted category shares over log(#categories): 1 = perfectly balanced, 0 = one value."""
    onehot = np.stack([(values == c).astype(float) for c in categories], 1)  # (N, K)
    p = w @ onehot
    p = p / np.maximum(p.sum(1, keepdims=True), 1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.nansum(np.where(p > 0, p * np.log(p), 0.0), axis=1)
    return h / np.log(len(categories))


def demographic_finding(generated: pd.DataFrame, real: pd.DataFrame, set_name: str, real_name: str,
                        attributes: Mapping[str, Sequence[str]], *, draws: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per attribute: normalized entropy of what the generated set shows minus that of the real training set, both
    read by the same instrument (the attribute reader), so its bias is on both sides; expected > 0 (a demographic
    grid is more balanced than a real dataset). Generated and real images are resampled independently (different
    images: not paired)."""
    rows = []
    for attr, cats in attributes.items():
        g = generated[attr].astype(str).to_numpy()
        r = real[attr].astype(str).to_numpy()
        rng = numpy_rng(seed, "report", "demographic", set_name, attr)
        hg = normalized_entropy(g, cats, _weights(len(g), draws, rng))
        hr = normalized_entropy(r, cats, _weights(len(r), draws, rng))
        boot = hg[1:] - hr[1:]
        lo, hi = np.percentile(boot, [2.5, 97.5])
        rows.append(_row(demographic_claim(set_name, attr, real_name),
                         "demographic balance", (float(hg[0] - hr[0]), float(lo), float(hi), 0, len(g),
                                                 bootstrap_p(boot)), ">",
                         f"normalized_entropy_{attr}", "", set_name, real_name, (float(len(g)), np.nan),
                         (float(len(r)), np.nan)))
    return pd.DataFrame(rows, columns=list(FINDING_COLUMNS))


def findings_metrics(findings: pd.DataFrame) -> dict[str, float]:
    """Flat metrics for `dvc exp show`: effect, interval and verdict (+1 supported, 0 inconclusive, -1 contradicted;
    after Holm where adjusted) of every finding, its Holm p-value and each side's images and optimizer steps,
    keyed by its sets and metric; then the verdict counts (raw and after Holm)."""
    out: dict[str, float] = {}
    code = {"supported": 1, "contradicted": -1, "inconclusive": 0}
    for r in findings.itertuples():
        if getattr(r, "verdict", "") == SKIPPED:  # no effect to report; counted below
            continue
        key = "_".join(p for p in (r.set_a, "vs", r.set_b, r.metric, r.test_set) if p)
        out[f"{key}.effect"] = r.effect
        out[f"{key}.ci_low"] = r.ci_low
        out[f"{key}.ci_high"] = r.ci_high
        verdict_col = getattr(r, "verdict_holm", "") or r.verdict  # +1 / 0 / -1 (Holm's when adjusted)
        out[f"{key}.verdict"] = code[verdict_col]
        for col in ("p_holm", "n_a", "steps_a", "n_b", "steps_b"):
            v = getattr(r, col, np.nan)
            if v is not None and np.isfinite(v):
                out[f"{key}.{col}"] = float(v)
    for v in (*VERDICTS, SKIPPED):
        out[v] = int((findings["verdict"] == v).sum())
        if "verdict_holm" in findings.columns:
            out[f"{v}_holm"] = int((findings["verdict_holm"] == v).sum())
    return out


# ---- the data-scaling curve and the exchange rate -------------------------------------------------------------
CurvePredictions = Mapping[int, Mapping[int, tuple[np.ndarray, np.ndarray]]]
"""{training-set size: {seed: (y_true, y_pred)}} of one source on one test set."""


def scaling_predictions(scaling_dir: str | os.PathLike, source: str, test: str) -> dict[int, dict[int, tuple]]:
    """{size: {seed: (y_true, y_pred)}} of one source's curve runs, from
    ``<scaling_dir>/<source>/n<size>/s<seed>/confusion_<test>.csv`` (notebook 07)."""
    folder = Path(scaling_dir) / source
    sizes = sorted(int(m.group(1)) for p in folder.glob("n*") if (m := re.fullmatch(r"n(\d+)", p.name)))
    if not sizes:
        raise ReportError(f"{folder}: no n<size>/ runs (the scaling stage writes them)")
    return {n: load_predictions(folder, f"n{n}", test) for n in sizes}


def bootstrap_curves(curves: Mapping[str, CurvePredictions], *, draws: int = 2000, seed: int = 0
                     ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{source: (sizes, values)} with values[i] = balanced accuracy at sizes[i] for the point estimate (column 0)
    and `draws` bootstrap draws: test images resampled with one draw shared by every source and size (the same
    test set), and each point's seeds resampled. Every run must have scored the same test images."""
    y = None
    for source, by_size in curves.items():
        for n, runs in by_size.items():
            for s, (yt, _) in runs.items():
                if y is None:
                    y = yt
                elif not np.array_equal(yt, y):
                    raise ReportError(f"{source} n={n} seed {s}: tested on other images than the first run")
    if y is None:
        raise ReportError("no curve runs")
    rng = numpy_rng(seed, "report", "scaling")
    w = _weights(len(y), draws, rng)
    out = {}
    for source, by_size in curves.items():
        sizes = np.array(sorted(by_size), dtype=float)
        values = []
        for n in sorted(by_size):
            runs = by_size[n]
            per_seed = np.stack([balanced_accuracy(y, runs[s][1], w) for s in sorted(runs)])  # (seeds, 1 + draws)
            pick = rng.integers(0, len(runs), size=(draws, len(runs)))
            boot = per_seed[pick, np.arange(1, draws + 1)[:, None]].mean(1)
            values.append(np.concatenate([[per_seed[:, 0].mean()], boot]))
        out[source] = (sizes, np.stack(values))
    return out


def size_for(target: float, sizes: np.ndarray, values: np.ndarray) -> float:
    """The training-set size at which a curve reaches `target`: linear in log-size between measured points, on
    the curve's running maximum (so the inverse exists). At or below the first point: the smallest size (an upper
    bound); never reached: +inf (beyond the largest size measured)."""
    env = np.maximum.accumulate(np.asarray(values, dtype=float))
    if target <= env[0]:
        return float(sizes[0])
    if target > env[-1]:
        return float("inf")
    i = int(np.argmax(env >= target))
    frac = (target - env[i - 1]) / (env[i] - env[i - 1]) if env[i] > env[i - 1] else 1.0
    return float(np.exp(np.log(sizes[i - 1]) + frac * (np.log(sizes[i]) - np.log(sizes[i - 1]))))


def exchange_rates(boot: Mapping[str, tuple[np.ndarray, np.ndarray]], real_source: str) -> pd.DataFrame:
    """For every measured size N of `real_source` and every other source: how many of that source's images reach
    the balanced accuracy of N real ones (`size_for`), with a 95 % interval over the bootstrap draws, the share of
    draws in which the source never reaches it within its measured sizes, the share in which its smallest measured
    size already does (the number is then an upper bound), and the rate (images per real image)."""
    if real_source not in boot:
        raise ReportError(f"no curve for the real source {real_source!r}; curves: {sorted(boot)}")
    r_sizes, r_values = boot[real_source]
    rows = []
    for source, (sizes, values) in boot.items():
        if source == real_source:
            continue
        for i, n_real in enumerate(r_sizes):
            equiv = np.array([size_for(r_values[i, b], sizes, values[:, b]) for b in range(values.shape[1])])
            lo, hi = np.quantile(equiv[1:], [0.025, 0.975], method="inverted_cdf")
            rows.append({"source": source, "real_images": int(n_real), "real_balanced_accuracy": float(r_values[i, 0]),
                         "equivalent_images": equiv[0], "ci_low": float(lo), "ci_high": float(hi),
                         "share_not_reached": float(np.mean(~np.isfinite(equiv[1:]))),
                         "share_at_smallest": float(np.mean(equiv[1:] <= sizes.min())),
                         "smallest_measured": int(sizes.min()), "largest_measured": int(sizes.max()),
                         "images_per_real_image": equiv[0] / n_real})
    return pd.DataFrame(rows)


def curve_table(boot: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """Tidy curve points: source, size, balanced accuracy (point estimate) and its 95 % bootstrap interval."""
    rows = []
    for source, (sizes, values) in boot.items():
        for n, v in zip(sizes, values):
            lo, hi = np.nanpercentile(v[1:], [2.5, 97.5])
            rows.append({"source": source, "size": int(n), "balanced_accuracy": float(v[0]), "ci_low": float(lo),
                         "ci_high": float(hi)})
    return pd.DataFrame(rows)


def scaling_metrics(curve: pd.DataFrame, rates: pd.DataFrame) -> dict[str, float | None]:
    """Flat metrics of the curve and the exchange rates (findings.json, `dvc exp show`):
    ``scaling.<source>.n<size>.{balanced_accuracy,ci_low,ci_high}`` and
    ``exchange.<source>.real<N>.{equivalent_images,ci_low,ci_high,share_not_reached,smallest_measured}``; a size
    at the smallest measured one is an upper bound (the source's smallest draw already reaches it); never reached
    within the measured ones (infinite) is null."""
    def num(v: float) -> float | None:
        return float(v) if np.isfinite(v) else None

    out: dict[str, float | None] = {}
    for r in curve.itertuples():
        for k in ("balanced_accuracy", "ci_low", "ci_high"):
            out[f"scaling.{r.source}.n{r.size}.{k}"] = num(getattr(r, k))
    for r in rates.itertuples():
        for k in ("equivalent_images", "ci_low", "ci_high", "share_not_reached", "smallest_measured"):
            out[f"exchange.{r.source}.real{r.real_images}.{k}"] = num(float(getattr(r, k, np.nan)))
    return out


def conclusions(findings: pd.DataFrame, data_kind: str) -> list[str]:
    """Plain sentences from the findings table: which claims hold on this run after the multiplicity correction,
    which do not, and what that does and does not say. Generated, never typed: every sentence quotes a row."""
    if findings.empty:
        return ["This run tested no claim."]
    col = "verdict_holm" if "verdict_holm" in findings.columns else "verdict"
    lines = []
    for kind, g in findings.groupby("kind", sort=False):
        held = g[g[col] == "supported"]
        against = g[g[col] == "contradicted"]
        open_ = g[g[col] == "inconclusive"]
        skipped = g[g[col] == SKIPPED]
        parts = [f"**{kind}** ({len(g)} claim{'s' if len(g) != 1 else ''}): {len(held)} supported, "
                 f"{len(against)} contradicted, {len(open_)} inconclusive after Holm's correction"
                 + (f"; {len(skipped)} not tested by this run ({skipped['reason'].iloc[0]})" if len(skipped) else "")
                 + "."]
        for label, rows in (("Holds", held), ("Contradicted", against)):
            for r in rows.itertuples():
                parts.append(f"{label}: {r.claim} — effect {r.effect:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}]"
                             + (f", n {int(r.n_a)} vs {int(r.n_b)}" if np.isfinite(r.n_a) and np.isfinite(r.n_b)
                                else "")
                             + (f", {int(r.steps_a)} vs {int(r.steps_b)} steps" if np.isfinite(r.steps_a)
                                and np.isfinite(r.steps_b) else "") + ".")
        lines.append(" ".join(parts))
    if data_kind == "world":
        lines.append("All of this is measured on the procedural world: it says how the study's comparisons behave on "
                     "data whose truth is known, not what the strategies would score on RAF-DB, AffectNet or FER2013.")
    elif data_kind == "mixed":
        lines.append("This run's inputs are part world stand-ins, part real data (section 1 lists each): read each "
                     "claim with the kind of the inputs it rests on.")
    return lines
