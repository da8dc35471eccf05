"""Numbers in the documents, tied to the files they quote.

Every number about the committed run that a document states sits in a marked block::

    <!-- numbers:NAME:begin -->
    ... generated text ...
    <!-- numbers:NAME:end -->

and is written by the block's function below (`BLOCKS`) from the run's committed result files (`SOURCES`:
``outputs/results/summary/metrics.json``, ``outputs/results/findings.json``, ``outputs/results/instruments.json``,
and the committed models' own evaluation files). Nothing inside a block is typed by hand:

    syntfer numbers            # rewrite every block of README.md, models/*/README.md and docs/*.md
    syntfer numbers --check    # exit 1, naming file, block and line, where a block differs from the files

`tests/test_docs.py` runs the check, so a number edited by hand, or a result file replaced without regenerating
the documents, fails the tests.

The blocks are tolerant of the files growing: a training set, synthetic set, pseudo-label source or finding that
appears in the files gets its row without a change here; a key a row asks for and the files lack is written as
"—"; an optional column (`Column(optional=True)`) appears as soon as one row has a value. To add a row to a
table, add a line to its declaration (e.g. `GLANCE`, `SYNTHETIC_COLUMNS`).
"""
from __future__ import annotations

import argparse
import difflib
import json
import math
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SOURCES: dict[str, str] = {
    "metrics": "outputs/results/summary/metrics.json",
    "findings": "outputs/results/findings.json",
    "instruments": "outputs/results/instruments.json",
    "gan_eval": "models/gan/world_flow48/eval_metrics.json",
    "identity": "models/identity/world32/validation.json",
}
"""Name -> committed JSON file (relative to the repository root) that blocks read."""

DOCUMENTS: tuple[str, ...] = ("README.md", "models/*/README.md", "docs/*.md")
"""Glob patterns of the documents whose blocks are generated."""

DASH = "—"
MISSING = object()
BLOCK = re.compile(r"<!-- numbers:(?P<name>[A-Za-z0-9_.-]+):begin -->\n(?P<body>.*?)<!-- numbers:(?P=name):end -->",
                   re.S)
MARKER = re.compile(r"<!-- numbers:([A-Za-z0-9_.-]+):(begin|end) -->")
TESTS = {"rafdb": "RAF-DB", "affectnet": "AffectNet", "fer2013": "FER2013"}


class NumbersError(ValueError):
    """A document whose blocks cannot be generated (unknown block, unclosed marker, unreadable source)."""


# ---- reading the files ---------------------------------------------------------------------------------------
def lookup(node: Any, key: str) -> Any:
    """`node[key]` for a dotted `key` in nested dicts whose own keys may contain dots (``findings.json`` keys are
    flat, ``a_vs_b_metric.ci_low``; ``metrics.json`` nests ``eval.<set>.<test>.acc``); `MISSING` if absent."""
    if not isinstance(node, Mapping):
        return MISSING
    if key in node:
        return node[key]
    for i, ch in enumerate(key):
        if ch == "." and key[:i] in node:
            found = lookup(node[key[:i]], key[i + 1:])
            if found is not MISSING:
                return found
    return MISSING


@dataclass
class Numbers:
    """The run's result files, read once; `get('metrics', 'eval.real_rafdb.rafdb.acc')` -> value or None."""
    data: dict[str, Any]

    @classmethod
    def load(cls, root: str | Path = ".", sources: Mapping[str, str] = SOURCES) -> "Numbers":
        root = Path(root)
        data: dict[str, Any] = {}
        for name, rel in sources.items():
            path = root / rel
            if not path.is_file():
                data[name] = {}  # a source not there: its numbers render as "—"
                continue
            try:
                data[name] = json.loads(path.read_text())
            except json.JSONDecodeError as e:
                raise NumbersError(f"{path}: not valid JSON ({e})") from e
        return cls(data)

    def get(self, source: str, key: str) -> Any:
        value = lookup(self.data.get(source, {}), key)
        if value is MISSING or value is None:
            return None
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value

    def section(self, source: str, key: str) -> dict[str, Any]:
        value = self.get(source, key)
        return value if isinstance(value, dict) else {}


# ---- formatting ----------------------------------------------------------------------------------------------
def fmt(value: Any, spec: str = ".3f") -> str:
    """`value` formatted by `spec` ('.3f', '+.3f', '.0f', '.1%', ...); "—" for a missing or non-numeric value."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return DASH if not isinstance(value, str) else value
    return format(value, spec)


def mean_sd(mean: Any, sd: Any, spec: str = ".3f") -> str:
    if mean is None:
        return DASH
    return fmt(mean, spec) if sd is None else f"{fmt(mean, spec)} ± {fmt(sd, spec)}"


def table(header: Sequence[str], rows: Iterable[Sequence[str]], align: Sequence[str] | None = None) -> str:
    align = list(align or ["---"] + ["---:"] * (len(header) - 1))
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def order_sets(names: Iterable[str]) -> list[str]:
    """Real sets first (RAF-DB, AffectNet, FER2013, others), then the others in the files' order."""
    names = list(names)
    real = [n for n in names if n.startswith("real_")]
    rank = {f"real_{t}": i for i, t in enumerate(TESTS)}
    return sorted(real, key=lambda n: rank.get(n, len(rank))) + [n for n in names if not n.startswith("real_")]


# ---- the findings --------------------------------------------------------------------------------------------
def verdict(lo: float | None, hi: float | None, expected: str) -> str:
    """The study's rule (`syntfer.study.report.verdict`, restated so that the documents need no study import; a test
    keeps the two equal): 'supported' when the interval lies wholly on the expected side of 0, 'contradicted' when
    wholly on the other, 'inconclusive' otherwise."""
    if lo is None or hi is None:
        return "inconclusive"
    above, below = lo > 0, hi < 0
    if (above and expected == ">") or (below and expected == "<"):
        return "supported"
    if above or below:
        return "contradicted"
    return "inconclusive"


_VERDICT_CODES = {1: "supported", -1: "contradicted", 0: "inconclusive"}


def claims(n: Numbers) -> dict[str, dict[str, Any]]:
    """Every finding in findings.json: key -> {effect, ci_low, ci_high, verdict (if the file has one)}."""
    out: dict[str, dict[str, Any]] = {}
    for key in n.data.get("findings", {}):
        base, _, field = key.rpartition(".")
        if base.startswith(("scaling.", "exchange.")):  # the data-scaling curve, not a claim (block 'exchange')
            continue
        if base and field in ("effect", "ci_low", "ci_high", "verdict", "expected", "p_holm", "n_a", "steps_a",
                              "n_b", "steps_b"):
            out.setdefault(base, {})[field] = n.get("findings", key)
    return out


def claim_verdict(c: Mapping[str, Any], expected: str | None) -> str:
    """The file's verdict when it has one (a word, or +1/0/-1), else the rule on the interval and `expected`."""
    v = c.get("verdict")
    if isinstance(v, str):
        return v
    if isinstance(v, (int, float)) and int(v) in _VERDICT_CODES:
        return _VERDICT_CODES[int(v)]
    expected = c.get("expected") if isinstance(c.get("expected"), str) else expected
    if expected not in (">", "<"):
        return DASH
    return verdict(c.get("ci_low"), c.get("ci_high"), expected)


def effect_text(c: Mapping[str, Any]) -> str:
    e, lo, hi = c.get("effect"), c.get("ci_low"), c.get("ci_high")
    big = any(isinstance(x, (int, float)) and abs(x) >= 10 for x in (e, lo, hi))
    spec, ci = ("+.0f", ".0f") if big else ("+.3f", ".3f")
    if e is None:
        return DASH
    return f"{fmt(e, spec)} [{fmt(lo, ci)}, {fmt(hi, ci)}]"


@dataclass(frozen=True)
class ClaimGroup:
    """A row of the findings table: every finding whose key matches `pattern`, with the direction the claim's
    wording predicts (`expected`: '>' the first set's metric is higher, '<' lower)."""
    pattern: str
    wording: str
    expected: str


GLANCE: tuple[ClaimGroup, ...] = (
    ClaimGroup(r"mixed_syn_vs_real_rafdb_matched_balanced_accuracy_rafdb",
               "Mixed-SYN alone falls short of the RAF-DB stand-in's training split at equal size and steps", "<"),
    ClaimGroup(r"pseudolabel_[a-z0-9_]+?_vs_real_rafdb_matched_balanced_accuracy_rafdb",
               "a pseudo-labeled set alone falls short of it", "<"),
    ClaimGroup(r"diffusion_[a-z0-9_]+?_vs_real_rafdb_matched_balanced_accuracy_rafdb",
               "a diffusion set alone falls short of it", "<"),
    ClaimGroup(r"gan_[a-z0-9_]+?_vs_real_rafdb_matched_balanced_accuracy_rafdb",
               "a GAN-edited set alone falls short of it", "<"),
    ClaimGroup(r"oracle_[a-z0-9_]+?_vs_real_rafdb_matched_balanced_accuracy_rafdb",
               "truth-labelled renders of a generator's look (its oracle) fall short of it: the look's cost", "<"),
    ClaimGroup(r"diffusion_[a-z0-9_]+?_vs_oracle_[a-z0-9]+_balanced_accuracy_rafdb",
               "a diffusion set falls short of the oracle of its look", "<"),
    ClaimGroup(r"gan_[a-z0-9_]+?_vs_oracle_[a-z0-9]+_balanced_accuracy_rafdb",
               "a GAN-edited set falls short of the oracle of its look", "<"),
    ClaimGroup(r"hybrid_.+_vs_real_rafdb_balanced_accuracy_rafdb",
               "adding Mixed-SYN to the RAF-DB stand-in's training split raises balanced accuracy on its test "
               "(equal optimizer steps)", ">"),
    ClaimGroup(r"hybrid_.+_vs_real_rafdb_recall_anger_rafdb", "... and the recall of anger (a minority class)", ">"),
    ClaimGroup(r"hybrid_.+_vs_real_rafdb_recall_fear_rafdb", "... and the recall of fear", ">"),
    ClaimGroup(r"hybrid_.+_vs_real_rafdb_recall_disgust_rafdb", "... and the recall of disgust", ">"),
    ClaimGroup(r"hybrid_.+_vs_real_rafdb_balanced_accuracy_affectnet", "... and transfers better to AffectNet's", ">"),
    ClaimGroup(r"hybrid_.+_vs_real_rafdb_balanced_accuracy_fer2013", "... and to FER2013's", ">"),
    ClaimGroup(r"pseudolabel_(.+)_vs_pseudolabel_\1_precision_vs_truth",
               "a stricter teacher threshold (τ 0.9) raises pseudo-label precision", ">"),
    ClaimGroup(r"diffusion_.+_vs_real_rafdb_normalized_entropy_gender",
               "diffusion sets are more balanced in gender than the RAF-DB stand-in (one reader on both)", ">"),
    ClaimGroup(r"diffusion_.+_vs_real_rafdb_normalized_entropy_skin_tone", "... in skin tone", ">"),
    ClaimGroup(r"diffusion_.+_vs_real_rafdb_normalized_entropy_age", "... in age", ">"),
)
"""The findings at a glance (README). One line per claim; the verdict column counts the matching findings."""

EXPECTED_BY_KEY: tuple[tuple[str, str], ...] = (
    (r"^hybrid_", ">"), (r"_vs_real_rafdb(_matched)?_balanced_accuracy_rafdb$", "<"),
    (r"_vs_oracle_[a-z0-9]+_balanced_accuracy_rafdb$", "<"), (r"_normalized_entropy_", ">"),
    (r"_precision_vs_truth$", ">"), (r"_kept_images$", "<"),
)
"""Direction of a finding found only by its key (the full table), first match wins; unmatched: verdict '—'
unless findings.json carries one."""


def _group_row(group: ClaimGroup, found: Mapping[str, Mapping[str, Any]]) -> list[str]:
    keys = [k for k in found if re.fullmatch(group.pattern, k)]
    if not keys:
        return [group.wording, "0", DASH, DASH]
    if len(keys) == 1:
        c = found[keys[0]]
        return [group.wording, "1", effect_text(c), claim_verdict(c, group.expected)]
    effects = [found[k].get("effect") for k in keys if found[k].get("effect") is not None]
    verdicts = [claim_verdict(found[k], group.expected) for k in keys]
    counts = ", ".join(f"{verdicts.count(v)} {v}" for v in ("supported", "contradicted", "inconclusive", DASH)
                       if verdicts.count(v))
    span = f"{fmt(min(effects), '+.3f')} … {fmt(max(effects), '+.3f')}" if effects else DASH
    return [group.wording, str(len(keys)), span, counts]


# ---- the blocks ----------------------------------------------------------------------------------------------
BLOCKS: dict[str, Callable[[Numbers], str]] = {}


def block(name: str) -> Callable[[Callable[[Numbers], str]], Callable[[Numbers], str]]:
    """Register a block renderer under `name` (the NAME of its markers)."""
    def register(fn: Callable[[Numbers], str]) -> Callable[[Numbers], str]:
        BLOCKS[name] = fn
        return fn
    return register


@block("glance")
def glance(n: Numbers) -> str:
    found = claims(n)
    counts = {v: n.get("findings", v) for v in ("supported", "contradicted", "inconclusive")}
    holm = {v: n.get("findings", f"{v}_holm") for v in ("supported", "contradicted", "inconclusive")}
    kind = n.get("metrics", "data_kind")
    adjusted = (f"; after Holm's correction over the family: {fmt(holm['supported'], 'd')} supported, "
                f"{fmt(holm['contradicted'], 'd')} contradicted, {fmt(holm['inconclusive'], 'd')} inconclusive"
                if holm["supported"] is not None else "")
    head = (f"Data: **{kind}** ({'procedural world stand-ins, never RAF-DB/AffectNet/FER2013 numbers' if kind == 'world' else 'the datasets under data/'}). "
            f"{len(found)} findings: {fmt(counts['supported'], 'd')} supported, "
            f"{fmt(counts['contradicted'], 'd')} contradicted, {fmt(counts['inconclusive'], 'd')} inconclusive "
            f"by their 95 % paired-bootstrap intervals over test images and seeds{adjusted}. The verdict column is "
            "the file's (after Holm where the run adjusted).")
    rows = [_group_row(g, found) for g in GLANCE]
    return head + "\n\n" + table(["claim (world stand-ins)", "findings", "effect [95 % CI] or range", "verdict"],
                                 rows, ["---", "---:", "---", "---"])


@block("training")
def training(n: Numbers) -> str:
    ev = n.section("metrics", "eval")
    rows = []
    for s in order_sets(ev):
        def cell(test: str, key: str, sd: bool = False) -> str:
            v = n.get("metrics", f"eval.{s}.{test}.{key}")
            return mean_sd(v, n.get("metrics", f"eval.{s}.{test}.{key}_sd")) if sd else fmt(v)
        seeds = {n.get("metrics", f"eval.{s}.{t}.n_seeds") for t in TESTS} - {None}
        rows.append([f"`{s}`", cell("rafdb", "acc", True), cell("rafdb", "balanced_acc", True),
                     cell("affectnet", "balanced_acc", True), cell("fer2013", "acc", True),
                     cell("fer2013", "balanced_acc"), ", ".join(str(x) for x in sorted(seeds)) or DASH])
    return table(["trained on", "RAF-DB test acc", "RAF-DB balanced", "AffectNet val balanced", "FER2013 test acc",
                  "FER2013 balanced", "seeds"], rows)


@dataclass(frozen=True)
class Column:
    """A column of a per-set table: header, key under ``synthetic.<set>.`` (or a callable), number format; an
    optional column shows only when some set has a value for it."""
    header: str
    key: str | Callable[[Numbers, str], Any]
    spec: str = ".3f"
    optional: bool = False

    def value(self, n: Numbers, s: str) -> Any:
        return self.key(n, s) if callable(self.key) else n.get("metrics", f"synthetic.{s}.{self.key}")


SYNTHETIC_COLUMNS: tuple[Column, ...] = (
    Column("images", "n_images", ".0f"),
    Column("expression fidelity", "expression_fidelity"),
    Column("judge ceiling", "judge_ceiling", optional=True),
    Column("fidelity / ceiling", "fidelity_over_ceiling", ".2f", optional=True),
    Column("oracle ratio", "oracle_ratio", ".2f", optional=True),
    Column("real ratio", "real_ratio", ".2f", optional=True),
    Column("FD (judge) to FFHQ stand-in", "fd_judge", ".0f"),
    Column("FD (judge) to own domain", "fd_judge_domain", ".0f", optional=True),
    Column("identity source → edit", lambda n, s: n.get("metrics", f"identity_similarity.{s}"), optional=True),
    Column("privacy: flagged", lambda n, s: n.get("metrics", f"privacy.{s}.share_flagged_identity"), ".1%"),
)
"""The synthetic sets' table (docs/results.md). New keys of ``synthetic.<set>`` get a column by a line here."""


def set_table(n: Numbers, sets: Sequence[str], columns: Sequence[Column]) -> str:
    shown = [c for c in columns if not c.optional or any(c.value(n, s) is not None for s in sets)]
    rows = [[f"`{s}`"] + [fmt(c.value(n, s), c.spec) for c in shown] for s in sets]
    return table(["set"] + [c.header for c in shown], rows)


@block("synthetic")
def synthetic(n: Numbers) -> str:
    return set_table(n, list(n.section("metrics", "synthetic")), SYNTHETIC_COLUMNS)


@block("pseudolabel")
def pseudolabel(n: Numbers) -> str:
    src = n.section("metrics", "pseudolabel")
    rows = [[f"`{s}`", fmt(n.get("metrics", f"pseudolabel.{s}.precision")),
             fmt(n.get("metrics", f"pseudolabel.{s}.kept"), ".0f")] for s in src]
    prec = [n.get("metrics", f"pseudolabel.{s}.precision") for s in src]
    prec = [p for p in prec if p is not None]
    rows.append(["mean", fmt(sum(prec) / len(prec)) if prec else DASH, ""])
    return table(["source", "precision vs the world's truth", "kept"], rows)


INSTRUMENT_ROWS: tuple[tuple[str, str, str], ...] = (
    ("judge ceiling, web look (`ref_web`, held out)", "judge.ceiling.ref_web", ".3f"),
    ("judge ceiling, FFHQ look (`ref_ffhq`, held out)", "judge.ceiling.ref_ffhq", ".3f"),
    ("judge temperature / ECE after scaling", "judge.temperature|judge.ece_after", ".3f"),
    ("teacher: AffectNet stand-in val, balanced accuracy", "teacher.test_balanced_accuracy", ".3f"),
    ("teacher temperature / ECE after scaling", "teacher.temperature|teacher.ece_after", ".3f"),
    ("attribute reader ceiling: gender", "reader.ceiling.gender", ".3f"),
    ("attribute reader ceiling: age group", "reader.ceiling.age", ".3f"),
    ("attribute reader ceiling: race (skin tone in the word's range)", "reader.ceiling.race", ".3f"),
    ("attribute reader: exact skin-tone level", "reader.ceiling.skin_tone_exact", ".3f"),
)
"""The instruments' table: (what, key(s) in instruments.json joined by '|', format)."""


@block("instruments")
def instruments(n: Numbers) -> str:
    rows = [[what, " / ".join(fmt(n.get("instruments", k), spec) for k in keys.split("|"))]
            for what, keys, spec in INSTRUMENT_ROWS]
    return table(["instrument", "value"], rows, ["---", "---:"])


@block("findings")
def findings(n: Numbers) -> str:
    rows = []
    for key, c in claims(n).items():
        expected = next((e for pat, e in EXPECTED_BY_KEY if re.search(pat, key)), None)
        sides = " vs ".join(f"{fmt(c.get(f'n_{s}'), '.0f')} / {fmt(c.get(f'steps_{s}'), '.0f')}" for s in "ab")
        rows.append([f"`{key}`", effect_text(c), fmt(c.get("p_holm"), ".4f"), claim_verdict(c, expected), sides])
    return table(["finding (first set _vs_ second set _ metric _ test set)", "effect [95 % CI]", "p (Holm)",
                  "verdict", "images / steps per seed, a vs b"], rows, ["---", "---", "---:", "---", "---"])


def _flat(n: Numbers, prefix: str) -> dict[tuple[str, ...], Any]:
    """findings.json keys under `prefix` ('scaling.' or 'exchange.') split at their dots: (source, point, field)."""
    return {tuple(k[len(prefix):].split(".")): v for k, v in n.data.get("findings", {}).items()
            if k.startswith(prefix)}


@block("exchange")
def exchange(n: Numbers) -> str:
    flat = _flat(n, "exchange.")
    sources = list(dict.fromkeys(k[0] for k in flat))
    reals = sorted({int(k[1].removeprefix("real")) for k in flat})
    if not sources:
        return "No data-scaling curve in the committed run."

    def cell(src: str, real: int) -> str:
        get = lambda f: flat.get((src, f"real{real}", f))  # noqa: E731
        e, lo, hi, gone = get("equivalent_images"), get("ci_low"), get("ci_high"), get("share_not_reached")
        smallest = get("smallest_measured")
        if e is None:
            return f"not reached ({fmt(gone, '.0%')} of draws)" if gone is not None else DASH
        if smallest is not None and e <= smallest:
            return f"≤ {fmt(smallest, '.0f')} (its smallest draw already reaches it)"
        return f"{fmt(e, '.0f')} [{fmt(lo, '.0f')}, {'open' if hi is None else fmt(hi, '.0f')}]"

    return table(["images of … matching N real ones", *[f"N = {r:,}" for r in reals]],
                 [[f"`{src}`", *[cell(src, r) for r in reals]] for src in sources])


@block("scaling")
def scaling(n: Numbers) -> str:
    flat = _flat(n, "scaling.")
    sources = list(dict.fromkeys(k[0] for k in flat))
    sizes = sorted({int(k[1].removeprefix("n")) for k in flat})
    if not sources:
        return "No data-scaling curve in the committed run."

    def cell(src: str, size: int) -> str:
        v = flat.get((src, f"n{size}", "balanced_accuracy"))
        lo, hi = flat.get((src, f"n{size}", "ci_low")), flat.get((src, f"n{size}", "ci_high"))
        return DASH if v is None else f"{fmt(v)} [{fmt(lo)}, {fmt(hi)}]"

    return table(["balanced accuracy on the RAF-DB stand-in's test", *[f"{s:,} images" for s in sizes]],
                 [[f"`{src}`", *[cell(src, s) for s in sizes]] for src in sources])


DIFFUSION_COLUMNS: tuple[Column, ...] = (
    Column("images", "n_images", ".0f"),
    Column("expression fidelity", "expression_fidelity"),
    Column("judge ceiling", "judge_ceiling"),
    Column("fidelity / ceiling", "fidelity_over_ceiling", ".2f"),
    Column("gender (reader ceiling)", lambda n, s: _with_ceiling(n, s, "gender")),
    Column("age group (reader ceiling)", lambda n, s: _with_ceiling(n, s, "age")),
    Column("race (reader ceiling)", lambda n, s: _with_ceiling(n, s, "race")),
    Column("FD (judge) to real web-look faces", "fd_judge_domain", ".0f"),
    Column("oracle ratio", "oracle_ratio", ".2f", optional=True),
    Column("real ratio", "real_ratio", ".2f", optional=True),
)


def _with_ceiling(n: Numbers, s: str, attr: str) -> str | None:
    v = n.get("metrics", f"synthetic.{s}.demographic_fidelity.{attr}")
    c = n.get("metrics", f"synthetic.{s}.demographic_ceiling.{attr}")
    return None if v is None else f"{fmt(v, '.2f')} ({fmt(c, '.2f')})"


@block("diffusion")
def diffusion(n: Numbers) -> str:
    sets = [s for s in n.section("metrics", "synthetic") if s.startswith("diffusion_")]
    return set_table(n, sets, DIFFUSION_COLUMNS)


GAN_COLUMNS: tuple[Column, ...] = (
    Column("images", "n_images", ".0f"),
    Column("expression fidelity", "expression_fidelity"),
    Column("judge ceiling (real FFHQ-look faces)", "judge_ceiling"),
    Column("fidelity / ceiling", "fidelity_over_ceiling", ".2f"),
    Column("identity source → edit", lambda n, s: n.get("metrics", f"identity_similarity.{s}")),
    Column("FD (judge) to FFHQ stand-in", "fd_judge", ".0f"),
    Column("privacy: flagged", lambda n, s: n.get("metrics", f"privacy.{s}.share_flagged_identity"), ".1%"),
    Column("oracle ratio", "oracle_ratio", ".2f", optional=True),
    Column("real ratio", "real_ratio", ".2f", optional=True),
)


@block("gan")
def gan(n: Numbers) -> str:
    sets = [s for s in n.section("metrics", "synthetic") if s.startswith("gan_")]
    return set_table(n, sets, GAN_COLUMNS)


GAN_EVAL_ROWS: tuple[tuple[str, str, str], ...] = (
    ("images per variant (F / V)", "images_F|images_V", ".0f"),
    ("expression fidelity F / V", "fidelity_F|fidelity_V", ".3f"),
    ("judge ceiling on real FFHQ-look faces", "judge_ceiling", ".3f"),
    ("fidelity / ceiling F / V", "fidelity_over_ceiling_F|fidelity_over_ceiling_V", ".2f"),
    ("unedited sources read as the target (floor)", "fidelity_source_floor", ".3f"),
    ("identity: source → edit / source → truth / different people", "identity_sim_source_edit_V|"
     "identity_sim_source_truth_V|identity_sim_different_people", ".3f"),
    ("FD (judge) to the FFHQ stand-in: sources / pasted / repaired", "fd_judge_sources_no_edit|fd_judge_paste|"
     "fd_judge_denoise", ".0f"),
    ("seam contrast (1 = no seam): pasted / repaired", "seam_contrast_paste|seam_contrast_denoise", ".2f"),
)


@block("gan_eval")
def gan_eval(n: Numbers) -> str:
    rows = [[what, " / ".join(fmt(n.get("gan_eval", k), spec) for k in keys.split("|"))]
            for what, keys, spec in GAN_EVAL_ROWS]
    return table(["`world_flow48/eval_metrics.json`", "value"], rows, ["---", "---:"])


@block("identity")
def identity(n: Numbers) -> str:
    v = "validation_heldout_identities"
    rows = [["held-out identities × renders", f"{fmt(n.get('identity', 'val_identities'), 'd')} × "
                                                f"{fmt(n.get('identity', 'per_identity'), 'd')}"],
            ["pairs: same / different identity", f"{fmt(n.get('identity', f'{v}.pairs_same'), ',d')} / "
                                                 f"{fmt(n.get('identity', f'{v}.pairs_diff'), ',d')}"],
            ["ROC AUC", fmt(n.get("identity", f"{v}.auc"))],
            ["equal error rate", fmt(n.get("identity", f"{v}.eer"), ".1%")],
            ["mean cosine: same / different", f"{fmt(n.get('identity', f'{v}.same_mean'))} / "
                                              f"{fmt(n.get('identity', f'{v}.diff_mean'))}"]]
    return table(["`world32/validation.json`", "value"], rows, ["---", "---:"])


# ---- documents -----------------------------------------------------------------------------------------------
def render_text(text: str, numbers: Numbers, where: str = "<text>") -> str:
    """`text` with every marked block regenerated; raises NumbersError for an unknown or unclosed block."""
    names = MARKER.findall(text)
    opened: list[str] = []
    for name, side in names:
        if side == "begin":
            if opened:
                raise NumbersError(f"{where}: block {name!r} begins inside block {opened[-1]!r}")
            opened.append(name)
        else:
            if not opened or opened[-1] != name:
                raise NumbersError(f"{where}: block {name!r} ends without its begin marker")
            opened.pop()
    if opened:
        raise NumbersError(f"{where}: block {opened[-1]!r} has no end marker")

    def sub(m: re.Match) -> str:
        name = m.group("name")
        if name not in BLOCKS:
            raise NumbersError(f"{where}: unknown block {name!r} (known: {sorted(BLOCKS)})")
        return f"<!-- numbers:{name}:begin -->\n{BLOCKS[name](numbers).rstrip()}\n<!-- numbers:{name}:end -->"

    return BLOCK.sub(sub, text)


def documents(root: str | Path = ".") -> list[Path]:
    root = Path(root)
    return sorted({p for pattern in DOCUMENTS for p in root.glob(pattern) if p.is_file()})


def check(root: str | Path = ".", numbers: Numbers | None = None) -> list[str]:
    """Problems (file, block, first differing lines) where a document's blocks differ from the files; [] if none."""
    root = Path(root)
    numbers = numbers or Numbers.load(root)
    problems = []
    for doc in documents(root):
        text = doc.read_text()
        rel = doc.relative_to(root)
        try:
            fresh = render_text(text, numbers, str(rel))
        except NumbersError as e:
            problems.append(str(e))
            continue
        if fresh == text:
            continue
        old = {m.group("name"): m.group("body") for m in BLOCK.finditer(text)}
        new = {m.group("name"): m.group("body") for m in BLOCK.finditer(fresh)}
        for name in old:
            if old[name] != new.get(name):
                diff = [line for line in difflib.unified_diff(old[name].splitlines(), new[name].splitlines(),
                                                              "document", "files", lineterm="", n=0)
                        if line[:1] in "+-" and not line.startswith(("---", "+++"))]
                problems.append(f"{rel}: block {name!r} differs from the result files "
                                f"(regenerate: syntfer numbers):\n  " + "\n  ".join(diff[:6]))
    return problems


def write(root: str | Path = ".") -> list[Path]:
    """Regenerate every block of every document; returns the documents that changed."""
    root = Path(root)
    numbers = Numbers.load(root)
    changed = []
    for doc in documents(root):
        text = doc.read_text()
        fresh = render_text(text, numbers, str(doc.relative_to(root)))
        if fresh != text:
            doc.write_text(fresh)
            changed.append(doc)
    return changed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 where a block is stale")
    parser.add_argument("--root", type=Path, default=Path("."), help="repository root (default: .)")


def run(args: argparse.Namespace) -> int:
    try:
        if args.check:
            problems = check(args.root)
            for p in problems:
                print(p, file=sys.stderr)
            if problems:
                return 1
            print(f"numbers: {len(documents(args.root))} documents agree with {', '.join(SOURCES.values())}")
            return 0
        for doc in write(args.root):
            print(f"rewrote {doc}")
    except NumbersError as e:
        print(f"syntfer numbers: error: {e}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m syntfer.study.docs_numbers", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
