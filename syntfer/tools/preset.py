"""`syntfer preset`: a named set of params.yaml overrides (``presets/<name>.yaml``) as one ``dvc exp run``.

    syntfer preset paper --print                                  # the command: one -S key=value per value
    syntfer preset paper --set diffusion.sd_model=/w/rv51 ... --run   # run it (dvc exp run)
    syntfer preset paper_poster --set KEY=VALUE ... --print       # POSTER v1 instead of IR-50

A preset file has params.yaml's nesting and holds only the values it changes. ``extends: <preset>`` at its top
starts from another preset. Every key must exist in params.yaml (a preset cannot drift from it: an unknown key is
an error naming it), and the merged params must pass params.yaml's schema (`syntfer.core.params_schema`) and the
model-option check (`syntfer.engine.models.model_options`). A value written ``"<REQUIRED: what>"`` is a file only
the user has (licensed or hub weights): the tool refuses to print or run the command until each is given with
``--set KEY=VALUE``, and lists them. ``--set`` also changes any other value; a key through a JSON-string value
(``train.model_kwargs.poster.ir_weights=/w/ir50.pth``) sets that entry inside the JSON.

The printed ``-S`` values are written in Hydra's override grammar, which ``dvc exp run -S`` parses: lists as
``[0,1,2]``, strings that would read as something else (``'10'``, a comma list, JSON) quoted; the whole argument
quoted for the shell. tests/test_preset.py applies them with DVC's own code to a copy of params.yaml.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from syntfer.core.params_schema import ParamsError, check_params, load_yaml

PRESETS_DIR = "presets"
PLACEHOLDER = "<REQUIRED"  # a value that starts so names a file only the user has
EXTENDS = "extends"


class PresetError(ValueError):
    """A preset that cannot be applied: an unknown key, a bad --set, a missing user file, a value DVC cannot take."""


# ------------------------------------------------------------------------------------------------ reading
def preset_path(name: str, presets_dir: str | Path = PRESETS_DIR) -> Path:
    """``presets/<name>.yaml``, or `name` itself when it is a path to a .yaml file."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml"):
        return p
    return Path(presets_dir) / f"{name}.yaml"


def load_preset(name: str, presets_dir: str | Path = PRESETS_DIR, _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """The preset's overrides (nested as params.yaml), with ``extends`` resolved (the extending file wins)."""
    path = preset_path(name, presets_dir)
    if not path.is_file():
        have = sorted(p.stem for p in Path(presets_dir).glob("*.yaml"))
        raise PresetError(f"preset {name!r}: {path} not found (presets: {have})")
    if str(path) in _seen:
        raise PresetError(f"preset {name!r}: 'extends' loops ({' -> '.join(_seen + (str(path),))})")
    try:
        tree = load_yaml(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise PresetError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None
    if not isinstance(tree, dict):
        raise PresetError(f"{path}: expected a mapping of params.yaml sections")
    base_name = tree.pop(EXTENDS, None)
    if base_name is None:
        return tree
    base = load_preset(str(base_name), presets_dir, _seen + (str(path),))
    return _merge(base, tree)


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value for every non-mapping value (lists are values), in file order."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def _lookup(params: Mapping[str, Any], key: str) -> tuple[bool, Any]:
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _assign(tree: dict[str, Any], key: str, value: Any) -> None:
    *head, last = key.split(".")
    node = tree
    for part in head:
        node = node[part]
    node[last] = value


# ------------------------------------------------------------------------------------------------ resolving
def check_keys(flat: Mapping[str, Any], params: Mapping[str, Any], where: str) -> None:
    """Every key is a value of params.yaml (not a section, not new); raises naming each that is not."""
    bad = []
    for key, value in flat.items():
        found, current = _lookup(params, key)
        if not found:
            bad.append(f"{key}: not a key of params.yaml")
        elif isinstance(current, Mapping):
            bad.append(f"{key}: a section of params.yaml, not a value (set its keys one by one)")
        elif isinstance(value, Mapping):
            bad.append(f"{key}: params.yaml holds a value here, the preset a mapping")
    if bad:
        raise PresetError(f"{where}: " + "; ".join(bad))


def _parse_set_value(raw: str, current: Any) -> Any:
    """A --set value: kept as text where params.yaml holds text (so '10' and a path stay strings), else read as
    YAML (numbers, booleans, lists)."""
    if isinstance(current, str):
        return raw
    try:
        return load_yaml(raw)
    except yaml.YAMLError as e:
        raise PresetError(f"--set value {raw!r} is not YAML ({' '.join(str(e).split())})") from None


def apply_sets(flat: dict[str, Any], sets: list[str], params: Mapping[str, Any]) -> dict[str, Any]:
    """`flat` with each ``KEY=VALUE`` of `sets` applied (a key of params.yaml, or one through a JSON-string value:
    ``train.model_kwargs.poster.ir_weights=PATH``)."""
    out = dict(flat)
    for item in sets:
        key, eq, raw = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise PresetError(f"--set {item!r}: expected KEY=VALUE (a dotted params.yaml key)")
        found, current = _lookup(params, key)
        if found and not isinstance(current, Mapping):
            out[key] = _parse_set_value(raw, out.get(key, current))
            continue
        # a key through a JSON-string value: the longest prefix that is a value of params.yaml holding JSON
        parts = key.split(".")
        for n in range(len(parts) - 1, 0, -1):
            head = ".".join(parts[:n])
            ok, value = _lookup(params, head)
            if ok and isinstance(value, str):
                text = out.get(head, value)
                try:
                    obj = json.loads(text)
                except (TypeError, ValueError):
                    raise PresetError(f"--set {key}: {head} is not a JSON object, so it has no entry "
                                      f"{'.'.join(parts[n:])}") from None
                node = obj
                for part in parts[n:-1]:
                    if not isinstance(node, dict):
                        raise PresetError(f"--set {key}: {head} has no object at {part!r}")
                    node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise PresetError(f"--set {key}: {head} has no object to hold {parts[-1]!r}")
                node[parts[-1]] = _parse_set_value(raw, node.get(parts[-1]))  # new entry: read as YAML
                out[head] = json.dumps(obj)
                break
        else:
            raise PresetError(f"--set {key}: not a key of params.yaml")
    return out


def missing_files(flat: Mapping[str, Any]) -> dict[str, str]:
    """Dotted key -> what to give, for every placeholder value (also inside JSON-string values)."""
    out: dict[str, str] = {}

    def visit(key: str, value: Any) -> None:
        if isinstance(value, str) and value.startswith(PLACEHOLDER):
            out[key] = value[len(PLACEHOLDER):].strip(" :>")
        elif isinstance(value, dict):
            for k, v in value.items():
                visit(f"{key}.{k}", v)

    for key, value in flat.items():
        if isinstance(value, str) and value.lstrip().startswith("{"):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        visit(key, value)
    return out


def resolve(name: str, sets: list[str] = (), *, params_file: str | Path = "params.yaml",
            presets_dir: str | Path = PRESETS_DIR, require_files: bool = True) -> dict[str, Any]:
    """The preset's flat overrides with `sets` applied, checked: keys (params.yaml's), the merged params (schema,
    model options) and, with `require_files`, no placeholder left (else `PresetError` listing each --set to add)."""
    params = load_yaml(Path(params_file).read_text())
    where = str(preset_path(name, presets_dir))
    flat = flatten(load_preset(name, presets_dir))
    check_keys(flat, params, where)
    flat = apply_sets(flat, list(sets), params)
    merged = copy.deepcopy(params)
    for key, value in flat.items():
        _assign(merged, key, value)
    try:
        check_params(merged, f"{where} over {params_file}")
    except ParamsError as e:
        raise PresetError(str(e)) from None
    _check_models(merged, where)
    missing = missing_files(flat)
    if require_files and missing:
        raise PresetError(f"{where} needs {len(missing)} file(s) only you have; add to the command "
                          + "; ".join(f"--set {k}=PATH ({why})" for k, why in missing.items()))
    return flat


def _check_models(merged: Mapping[str, Any], where: str) -> None:
    """train/instruments model options fit their models (`model_options`)."""
    from syntfer.engine.models import model_options  # lazy: imports torch

    for section in ("train", "instruments"):
        sec = merged.get(section, {})
        if "model" in sec and "model_kwargs" in sec:
            try:
                model_options(sec["model"], sec["model_kwargs"], f"{section}.model_kwargs")
            except ValueError as e:
                raise PresetError(f"{where}: {e}") from None


# ------------------------------------------------------------------------------------------------ the command
_BARE = re.compile(r"[A-Za-z_/][A-Za-z0-9_./@+-]*\Z")  # reads as this very string in Hydra's grammar
_HYDRA_WORDS = {"true", "false", "null", "nan", "inf"}


def hydra_value(value: Any, key: str = "") -> str:
    """`value` in Hydra's override grammar (what ``dvc exp run -S key=<this>`` parses back to `value`)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PresetError(f"{key} = {value!r}: not a finite number")
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v, key) for v in value) + "]"
    if isinstance(value, str):
        if _BARE.match(value) and value.lower() not in _HYDRA_WORDS:
            return value
        if "${" in value or "\\" in value:
            raise PresetError(f"{key} = {value!r}: '${{' and backslashes do not pass through dvc exp run -S; "
                              "write this value into params.yaml instead")
        if "'" not in value:
            return f"'{value}'"
        if '"' not in value:
            return f'"{value}"'
        raise PresetError(f"{key} = {value!r}: holds both quote characters; write it into params.yaml instead")
    raise PresetError(f"{key} = {value!r}: a {type(value).__name__} cannot be a -S value")


def overrides(flat: Mapping[str, Any]) -> list[str]:
    """``key=value`` for ``dvc exp run -S``, one per value."""
    return [f"{k}={hydra_value(v, k)}" for k, v in flat.items()]


def command(flat: Mapping[str, Any], name: str | None = None) -> list[str]:
    """``dvc exp run [-n NAME] -S k=v ...`` as an argument list."""
    argv = ["dvc", "exp", "run"] + (["-n", name] if name else [])
    for o in overrides(flat):
        argv += ["-S", o]
    return argv


_SHELL_SAFE = re.compile(r"[A-Za-z0-9_./=:@%+,-]+\Z")


def shell_word(arg: str) -> str:
    """`arg` quoted for a POSIX shell (single quotes when it has none, else double quotes with escapes)."""
    if _SHELL_SAFE.match(arg):
        return arg
    if "'" not in arg:
        return f"'{arg}'"
    return '"' + re.sub(r'([\\"$`])', r"\\\1", arg) + '"'


def shell_command(argv: list[str]) -> str:
    """The command, one ``-S`` per line (backslash continuations), to copy into a shell."""
    words = [shell_word(a) for a in argv]
    head, lines, i = [], [], 0
    while i < len(words) and argv[i] != "-S":
        head.append(words[i])
        i += 1
    while i < len(words):
        lines.append(f"{words[i]} {words[i + 1]}")
        i += 2
    return " \\\n  ".join([" ".join(head)] + lines)


# ------------------------------------------------------------------------------------------------ CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="a preset under presets/ (e.g. paper, paper_poster) or a .yaml path")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--print", dest="print_", action="store_true", help="print the dvc exp run command")
    what.add_argument("--run", action="store_true", help="run it (dvc exp run) in the current directory")
    what.add_argument("--list", action="store_true", help="list the preset's values (placeholders included)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="another value for a key (repeatable); gives the files the preset asks for")
    parser.add_argument("-n", "--exp-name", default=None, help="the experiment's name (dvc exp run -n)")
    parser.add_argument("--params", default="params.yaml", help="the params file the preset overrides")
    parser.add_argument("--presets-dir", default=PRESETS_DIR)


def run(args: argparse.Namespace) -> int:
    flat = resolve(args.name, args.sets, params_file=args.params, presets_dir=args.presets_dir,
                   require_files=not args.list)
    if args.list:
        width = max(map(len, flat), default=0)
        for k, v in flat.items():
            print(f"{k:<{width}}  {json.dumps(v) if not isinstance(v, str) else v}")
        return 0
    argv = command(flat, args.exp_name)
    if args.print_:
        print(shell_command(argv))
        return 0
    dvc = shutil.which("dvc")
    exe = [dvc] if dvc else [sys.executable, "-m", "dvc"]
    print(shell_command(argv), file=sys.stderr, flush=True)
    return subprocess.run(exe + argv[1:], check=False).returncode
