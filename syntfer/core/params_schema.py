"""The schema of ``params.yaml``: every key, its type and its range, in one table (`SCHEMA`).

`syntfer notebook` (every DVC stage) checks the whole file before it executes anything
(`check_params_file`), so a typo (``train.epoch``), a wrong type (``epochs: "24"``) or a value out of range
(``batch_size: 0``, ``seeds: []``, a threshold of 1.5) stops the stage at once with one error per key naming it
and what was expected, instead of failing (or, worse, running) hours later inside a notebook.

Adding a knob to params.yaml means adding its row here: a key the table does not know is an error too
(tests/test_params_schema.py validates the repository's params.yaml and names any key to add). A ``*`` in a
key stands for any one name (``datasets.labeled.*.root``: every labeled dataset's root). A new strategy brings
its own section's rows in its declaration instead (``Strategy(..., params=(("morph.steps", "INT(1)"), ...))``,
each rule written as its expression here: `rule_from_text`), so adding it edits no file outside its own places;
`full_schema` is `SCHEMA` with every declared row.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

# a rule returns None when the value is fine, else what was expected ("an integer > 0")
Rule = Callable[[Any], "str | None"]


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader that also reads YAML 1.2 floats: ``4e-05``, ``1e5``, ``1.5e5``."""


# DVC writes params.yaml with ruamel (YAML 1.2): `dvc exp run -S train.lr=4e-5` stores `lr: 4e-05`, which PyYAML's
# YAML 1.1 rules read as the *string* '4e-05' (they want a dot and a signed exponent)
_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


def load_yaml(text: str) -> Any:
    """`yaml.safe_load`, with YAML 1.2's exponent floats read as numbers (as DVC, which writes params.yaml, reads
    them): the one reader of params.yaml and of notebook parameter values."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)


class ParamsError(ValueError):
    """params.yaml breaks the schema: the message names every offending key, its value and what was expected."""


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool))


def INT(lo: int | None = None) -> Rule:
    """An integer (not a bool), >= `lo`."""
    want = "an integer" + (f" >= {lo}" if lo is not None else "")
    return lambda v: None if _is_int(v) and (lo is None or v >= lo) else want


def FLOAT(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = False) -> Rule:
    """A number (an int is accepted) within [lo, hi]; `lo_open`/`hi_open` exclude the bound."""
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {lo}")
    if hi is not None:
        parts.append(f"{'<' if hi_open else '<='} {hi}")
    want = "a number" + (" " + " and ".join(parts) if parts else "")

    def rule(v: Any) -> str | None:
        if not _is_number(v) or v != v:  # NaN is not a knob value
            return want
        if lo is not None and (v <= lo if lo_open else v < lo):
            return want
        if hi is not None and (v >= hi if hi_open else v > hi):
            return want
        return None

    return rule


PROB = FLOAT(0.0, 1.0)  # a fraction, an accuracy, a threshold on a probability
POSITIVE = FLOAT(0.0, lo_open=True)


def STR(*, nonempty: bool = False, choices: tuple[str, ...] | None = None) -> Rule:
    if choices is not None:
        want = f"one of {list(choices)}"
        return lambda v: None if isinstance(v, str) and v in choices else want
    want = "a non-empty string" if nonempty else "a string"
    return lambda v: None if isinstance(v, str) and (v or not nonempty) else want


def BOOL(v: Any) -> str | None:
    return None if isinstance(v, bool) else "true or false"


def LIST(item: Rule, *, nonempty: bool = True) -> Rule:
    """A YAML list whose every item passes `item`."""
    def rule(v: Any) -> str | None:
        if not isinstance(v, list) or (nonempty and not v):
            return "a non-empty list" if nonempty else "a list"
        bad = [x for x in v if item(x) is not None]
        return None if not bad else f"a list of {item(bad[0])} (item {bad[0]!r})"

    return rule


def CSV(item: Rule | None = None, *, choices: tuple[str, ...] | None = None, nonempty: bool = True,
        number: bool = False) -> Rule:
    """A comma-separated string (``"0.2,0.3"``, ``"ref_web,ref_ffhq"``): items non-empty, each in `choices`
    or (`number`) a number passing `item`."""
    def rule(v: Any) -> str | None:
        if not isinstance(v, str) or (nonempty and not v.strip()):
            return "a non-empty comma-separated string" if nonempty else "a comma-separated string"
        items = [x.strip() for x in v.split(",")] if v.strip() else []
        for x in items:
            if not x:
                return "comma-separated items, none empty"
            if choices is not None and x not in choices:
                return f"comma-separated items from {list(choices)} (item {x!r})"
            if number:
                try:
                    num = int(x) if x.lstrip("+-").isdigit() else float(x)
                except ValueError:
                    return f"comma-separated numbers (item {x!r})"
                if item is not None and item(num) is not None:
                    return f"comma-separated numbers, each {item(num)} (item {x!r})"
        return None

    return rule


def JSON_OBJECT(v: Any) -> str | None:
    try:
        return None if isinstance(json.loads(v), dict) else "a JSON object in a string"
    except (TypeError, ValueError):
        return "a JSON object in a string"


def MODEL_OPTIONS(v: Any) -> str | None:
    """Builder options per model (``train.model_kwargs``): a JSON object in a string whose keys name models and
    whose values are JSON objects of that model's options. Which names are models and which options each takes is
    checked where the models are (syntfer.engine.models.model_options, in the notebook)."""
    want = ('a JSON object in a string of model name -> JSON object of its options, e.g. '
            '\'{"cnn_tiny": {"img_size": 48}, "ir50": {}}\'')
    try:
        parsed = json.loads(v)
    except (TypeError, ValueError):
        return want
    if not isinstance(parsed, dict) or not all(isinstance(k, str) and k.strip() and isinstance(o, dict)
                                               for k, o in parsed.items()):
        return want
    return None


CLASSES = ("anger", "disgust", "fear", "happy", "neutral", "sad", "surprise")  # syntfer.core.labels.CLASSES (tested)
RECIPES = ("fast", "poster", "upstream_ir50")  # syntfer.engine.training.RECIPES (tested)
LINK_MODES = ("copy", "hardlink", "symlink", "none")  # syntfer.strategies.pseudolabel.dataset.LINK_MODES (tested)
BACKENDS = ("embedded", "embedded-au", "sd", "fineface")
PATH, OPTIONAL_PATH, NAME = STR(nonempty=True), STR(), STR(nonempty=True)

# ---------------------------------------------------------------------------------------- the table
SCHEMA: dict[str, Rule] = {
    "base.seed": INT(0),

    "world.preset": STR(choices=("smoke", "default", "large")),
    "world.seed": INT(0),
    "world.probe_train": NAME,
    "world.probe_epochs": INT(1),
    "world.probe_size": INT(8),
    "world.probe_test_limit": INT(1),
    "world.max_probe_accuracy": PROB,
    "world.min_probe_accuracy": PROB,
    "world.min_gap": FLOAT(-1.0, 1.0),   # a negative gap turns the check off (smoke worlds)
    "world.share_tolerance": PROB,

    "datasets.labeled.*.format": NAME,
    "datasets.labeled.*.root": PATH,
    "datasets.labeled.*.test_split": NAME,
    "datasets.gan_faces": PATH,
    "datasets.references.*.format": NAME,
    "datasets.references.*.root": PATH,
    "datasets.captioned": PATH,

    "train.sets": LIST(NAME),
    "train.seeds": LIST(INT(0)),
    "train.model": NAME,
    "train.model_kwargs": MODEL_OPTIONS,
    "train.pretrained": OPTIONAL_PATH,
    "train.recipe": STR(choices=RECIPES),
    "train.epochs": INT(1),
    "train.steps_source": STR(),
    "train.batch_size": INT(1),
    "train.lr": POSITIVE,
    "train.weight_decay": FLOAT(0.0),
    "train.optimizer": STR(choices=("adam", "adamw", "sam_adam", "sam_adamw")),
    "train.scheduler": STR(choices=("exponential", "cosine", "constant")),
    "train.label_smoothing": PROB,
    "train.smoothing_weight": FLOAT(0.0),
    "train.balanced": BOOL,
    "train.balanced_sets": CSV(nonempty=False),
    "train.balance_method": STR(choices=("sampler", "logit_adjust")),
    "train.val_fraction": FLOAT(0.0, 1.0, lo_open=True, hi_open=True),
    "train.threads": INT(1),
    "train.num_workers": INT(0),
    "train.min_in_domain_accuracy": PROB,
    "train.min_in_domain_balanced_accuracy": PROB,
    "train.launcher": STR(),

    "instruments.judge": PATH,
    "instruments.teacher": PATH,
    "instruments.reader": PATH,
    "instruments.reader_domain": NAME,
    "instruments.model": NAME,
    "instruments.model_kwargs": MODEL_OPTIONS,
    "instruments.teacher_epochs": INT(1),
    "instruments.teacher_members": INT(1),
    "instruments.teacher_mirror": BOOL,
    "instruments.judge_epochs": INT(1),
    "instruments.reader_epochs": INT(1),
    "instruments.min_judge_ceiling": PROB,
    "instruments.max_teacher_ece": PROB,

    "study.set_size": INT(7),
    "study.synthetic.*.manifest": PATH,
    "study.synthetic.*.stage": PATH,
    "study.oracles.*.format": NAME,
    "study.oracles.*.root": PATH,
    "study.matched_real": NAME,
    "study.mixed_sources": CSV(),
    "study.mixed_n_train": INT(1),
    "study.mixed_n_val": INT(0),
    "study.hybrids": LIST(NAME, nonempty=False),
    "study.hybrid_real": NAME,
    "study.max_images": INT(1),
    "study.set_domains": CSV(nonempty=False),
    "study.clip_weights": OPTIONAL_PATH,
    "study.privacy_threshold": PROB,
    "study.privacy_quantile": PROB,
    "study.min_set_fidelity": PROB,
    "study.minority_classes": CSV(choices=CLASSES),
    "study.primary_test": NAME,
    "study.min_seeds": INT(1),
    "study.strict_threshold": PROB,
    "study.draws": INT(1),
    "study.alpha": FLOAT(0.0, 1.0, lo_open=True, hi_open=True),
    "scaling.sources.*.sizes": CSV(INT(1), number=True),
    "scaling.sources.*.stratify": BOOL,
    "scaling.test": NAME,
    "publish.date": STR(),
    "publish.commit": STR(),

    "pseudolabel.threshold": PROB,
    "pseudolabel.per_class": INT(1),
    "pseudolabel.sweep": CSV(PROB, number=True),
    "pseudolabel.link": STR(choices=LINK_MODES),
    "pseudolabel.batch_size": INT(1),
    "pseudolabel.shard_size": INT(1),
    "pseudolabel.reliability_bins": INT(1),
    "pseudolabel.min_world_precision": PROB,
    "pseudolabel.sources.*.images": PATH,
    "pseudolabel.sources.*.truth": OPTIONAL_PATH,   # empty: no truth for the collection (real data)

    "gan.editor_dir": PATH,
    "gan.landmarks": PATH,
    "gan.intensity": STR(choices=("learned", "interpolate")),
    "gan.intensity_gamma": POSITIVE,
    "gan.retrain_steps": INT(0),
    "gan.retrain_per_class_cap": INT(0),
    "gan.identity_dir": PATH,
    "gan.reference_domain": NAME,
    "gan.recipe": STR(choices=("10", "70", "RAF")),
    "gan.per_class": INT(0),
    "gan.total": INT(0),
    "gan.restorer": STR(choices=("denoise", "none", "codeformer")),
    "gan.rho_grid": CSV(POSITIVE, number=True),
    "gan.curve_faces": INT(1),
    "gan.official_checkpoint": OPTIONAL_PATH,
    "gan.codeformer_weights": OPTIONAL_PATH,
    "gan.truth_max_render": INT(0),
    "gan.truth_ss": INT(1),
    "gan.seam_faces": INT(0),
    "gan.min_fidelity_over_ceiling": FLOAT(0.0, 2.0),
    "gan.min_identity": FLOAT(-1.0, 1.0),
    "gan.min_identity_auc": PROB,

    "diffusion.model_dir": PATH,
    "diffusion.train": BOOL,
    "diffusion.train_steps": INT(1),
    "diffusion.train_minutes": FLOAT(0.0),
    "diffusion.train_batch_size": INT(1),
    "diffusion.train_lr": POSITIVE,
    "diffusion.train_filler_words": CSV(nonempty=False),
    "diffusion.train_filler_max": INT(0),
    "diffusion.backends": CSV(choices=BACKENDS),
    "diffusion.sd_model": OPTIONAL_PATH,
    "diffusion.fineface_weights": OPTIONAL_PATH,
    "diffusion.per_emotion": INT(1),
    "diffusion.steps": INT(1),
    "diffusion.guidance": FLOAT(0.0),
    "diffusion.batch_size": INT(1),
    "diffusion.launcher": STR(),
    "diffusion.reference_domain": NAME,
    "diffusion.dedup_bits": INT(-1),
    "diffusion.teacher_filter": BOOL,
    "diffusion.min_confidence": PROB,
    "diffusion.balance": lambda v: None if (v in ("min", "") or (_is_int(v) and v > 0)
                                            or (isinstance(v, str) and v.isdigit() and int(v) > 0)) else
    "'min', '' (off) or a positive integer",
    "diffusion.min_fidelity": PROB,
}


RULE_NAMES: dict[str, Any] = {"INT": INT, "FLOAT": FLOAT, "STR": STR, "BOOL": BOOL, "LIST": LIST, "CSV": CSV,
                              "JSON_OBJECT": JSON_OBJECT, "MODEL_OPTIONS": MODEL_OPTIONS, "PROB": PROB,
                              "POSITIVE": POSITIVE, "PATH": PATH, "OPTIONAL_PATH": OPTIONAL_PATH, "NAME": NAME}
"""What a declared rule's text may name (`rule_from_text`)."""


def rule_from_text(text: str) -> Rule:
    """A rule from its expression as written in this file (``"INT(1)"``, ``"PROB"``, ``"LIST(INT(0))"``,
    ``"STR(choices=('a', 'b'))"``): names of `RULE_NAMES` called with literal or rule arguments; nothing else is
    evaluated."""
    import ast

    def build(node: ast.AST) -> Any:
        if isinstance(node, ast.Name) and node.id in RULE_NAMES:
            return RULE_NAMES[node.id]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in RULE_NAMES:
            return RULE_NAMES[node.func.id](*map(build, node.args), **{k.arg: build(k.value) for k in node.keywords})
        return ast.literal_eval(node)

    try:
        rule = build(ast.parse(text, mode="eval").body)
    except (SyntaxError, ValueError, TypeError) as e:
        raise ValueError(f"params rule {text!r}: expected an expression of {sorted(RULE_NAMES)} ({e})") from None
    if not callable(rule):
        raise ValueError(f"params rule {text!r}: not a rule")
    return rule


def declared_schema() -> dict[str, Rule]:
    """The rows the strategies declare (`syntfer.core.strategy.Strategy.params`, read without importing them); a
    row that repeats a key of `SCHEMA` or of another strategy raises, naming it."""
    from syntfer.core.strategy import read_declarations

    out: dict[str, Rule] = {}
    for s in read_declarations():
        for key, text in s.params:
            if key in SCHEMA or key in out:
                raise ValueError(f"strategy {s.prefix!r} declares the params key {key!r}, which is already in "
                                 "the schema")
            out[key] = rule_from_text(text)
    return out


def full_schema() -> dict[str, Rule]:
    """`SCHEMA` and every row the strategies declare."""
    return {**SCHEMA, **declared_schema()}


def _leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value for every non-mapping value (lists are values)."""
    if not isinstance(tree, Mapping) or not tree:
        return {prefix: tree} if prefix else {}
    out: dict[str, Any] = {}
    for k, v in tree.items():
        out.update(_leaves(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _matches(pattern: str, key: str) -> bool:
    p, k = pattern.split("."), key.split(".")
    return len(p) == len(k) and all(a == "*" or a == b for a, b in zip(p, k))


def validate(params: Mapping[str, Any], schema: Mapping[str, Rule] = SCHEMA) -> list[str]:
    """Every breach of `schema` in `params` (a loaded params.yaml), one message per key; [] when valid."""
    errors: list[str] = []
    leaves = _leaves(params)
    seen: set[str] = set()
    for key, value in leaves.items():
        rules = [p for p in schema if _matches(p, key)]
        if not rules:
            errors.append(f"{key}: unknown key (value {value!r}); expected one of the keys in "
                          "syntfer/core/params_schema.py SCHEMA (add a new knob there, or a strategy's in its "
                          "declaration's params)")
            continue
        seen.update(rules)
        why = schema[rules[0]](value)
        if why is not None:
            errors.append(f"{key} = {value!r}; expected {why}")
    for pattern in schema:
        if pattern not in seen and "*" not in pattern:
            errors.append(f"{pattern}: missing; the schema requires it")
    return errors


def check_params(params: Mapping[str, Any], where: str = "params.yaml") -> None:
    """`ParamsError` listing every breach (``where: key = value; expected ...``), or nothing."""
    if not isinstance(params, Mapping):
        raise ParamsError(f"{where}: expected a mapping of sections at the top level; got {type(params).__name__}")
    errors = validate(params, full_schema())
    if errors:
        raise ParamsError(f"{where}: {len(errors)} key(s) break the schema: " + "; ".join(errors))


def check_params_file(path: str | os.PathLike = "params.yaml") -> dict[str, Any]:
    """Load and check a params file; returns it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: params file not found")
    try:
        params = load_yaml(path.read_text())
    except yaml.YAMLError as e:
        raise ParamsError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None
    check_params(params, str(path))
    return params
