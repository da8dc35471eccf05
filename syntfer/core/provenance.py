"""Where each input of a run comes from, read from the data itself: the procedural world or the user's own data.

A folder the world stage rendered carries its markers (`<world>/world.json`, `<world>/<domain>/.world-done.json`,
written by `syntfer.sources.world.writers.render_world`), and a committed model trained on world renders carries
`.world-trained` (`models/…`); anything else is the user's data or weights. There is no switch to
forget: pointing `datasets.labeled.rafdb.root` at a RAF-DB tree makes that input `real` while the unlabeled
collections left at their defaults stay `world`, and every notebook's banner and `metrics.json` say so, input by
input. A run is `world` when every input is, `real` when every input is, and `mixed` otherwise.

World truth (hidden expressions, identities, demographics) exists only for world inputs: `world_truth_file(path)`
finds the `truth.csv` of the world domain a file lies in, or None for the user's data — a truth-based measurement is
then skipped with the reason `NO_TRUTH`, never computed from world files the user does not have.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping

WORLD_MARKER = "world.json"            # the root of a rendered world
DOMAIN_MARKER = ".world-done.json"     # each rendered domain folder
TRAINED_MARKER = ".world-trained"      # a committed model trained on world renders (models/*/…: its card says how)
KINDS = ("world", "real")

NO_TRUTH = ("real data: the true expression, identity and demographics of these images are not known (only world "
            "renders carry them), so this truth-based measurement is skipped")


class ProvenanceError(ValueError):
    """An input path that does not exist or a kind that is not world/real."""


def _file_part(path: str | os.PathLike) -> Path:
    """`fer2013.csv#row=3` and `img.jpg#box=…` name a file plus a locator: the file is what has a provenance."""
    return Path(str(path).split("#", 1)[0])


def _world_domain_dir(folder: str) -> str | None:
    """The nearest marked folder at or above `folder` (a few stat calls a level; callers group files by folder)."""
    p = Path(folder)
    for q in (p, *p.parents):
        if (q / DOMAIN_MARKER).is_file():
            return str(q)
        if (q / WORLD_MARKER).is_file() or (q / TRAINED_MARKER).is_file():
            return str(q)
    return None


def _world_root(path: str | os.PathLike) -> Path | None:
    p = _file_part(path).resolve()
    folder = p if p.is_dir() else p.parent
    found = _world_domain_dir(str(folder))
    return Path(found) if found else None


def input_kind(path: str | os.PathLike) -> str:
    """`world` when `path` (a folder, a file, or `file#locator`) lies inside a rendered world, else `real`.

    A missing path raises: an input that is not there has no provenance (and the stage reading it would fail later).
    """
    p = _file_part(path)
    if not p.exists():
        raise ProvenanceError(f"{p}: input not found (expected a folder or file of the dataset)")
    return "world" if _world_root(p) is not None else "real"


def world_truth_file(path: str | os.PathLike) -> Path | None:
    """The `truth.csv` of the world domain that `path` lies in; None for the user's data (no truth exists)."""
    root = _world_root(path)
    if root is None:
        return None
    p = _file_part(path).resolve()
    # the domain folder is the marked folder itself, or (from the world root) the first folder below it
    domain = root if (root / DOMAIN_MARKER).is_file() else None
    if domain is None:
        rel = p.relative_to(root).parts
        domain = root / rel[0] if rel else None
    file = domain / "truth.csv" if domain is not None else None
    return file if file is not None and file.is_file() else None


def describe(inputs: Mapping[str, str | os.PathLike | None]) -> dict[str, dict[str, str]]:
    """``{name: {"path", "kind"}}`` for each given input; an empty path is `unused` (e.g. no SD weights given)."""
    out: dict[str, dict[str, str]] = {}
    for name, path in inputs.items():
        if path is None or str(path) == "":
            out[name] = {"path": "", "kind": "unused"}
        else:
            out[name] = {"path": str(path), "kind": input_kind(path)}
    return out


def run_kind(described: Mapping[str, Mapping[str, str]] | Iterable[str]) -> str:
    """`world`, `real` or `mixed` over the used inputs (`unused` ones do not count); `none` when none is used."""
    kinds = [d["kind"] if isinstance(d, Mapping) else d
             for d in (described.values() if isinstance(described, Mapping) else described)]
    bad = [k for k in kinds if k not in (*KINDS, "unused")]
    if bad:
        raise ProvenanceError(f"input kind {bad[0]!r}; expected one of {list(KINDS)} or 'unused'")
    used = {k for k in kinds if k != "unused"}
    if not used:
        return "none"
    return used.pop() if len(used) == 1 else "mixed"


def banner(described: Mapping[str, Mapping[str, str]], what: str = "this notebook") -> str:
    """A markdown banner: the run's kind and, input by input, which is a world stand-in and which is real data."""
    kind = run_kind(described)
    world = [n for n, d in described.items() if d["kind"] == "world"]
    real = [n for n, d in described.items() if d["kind"] == "real"]
    if kind == "world":
        head = (f"> ⚠️ **Every input of {what} is a procedural-world stand-in**: its numbers are world results, "
                "not RAF-DB, AffectNet or FER2013 results.")
    elif kind == "real":
        head = f"> **Every input of {what} is the user's own data** (no world renders): its numbers are real-data results."
    elif kind == "mixed":
        head = (f"> ⚠️ **The inputs of {what} are part world, part real**: world stand-ins — {', '.join(world)}; "
                f"real data — {', '.join(real)}. Read each number with the kind of the inputs it rests on.")
    else:
        head = f"> {what}: no input given."
    rows = "\n".join(f"> | {n} | {d['kind']} | `{d['path']}` |" for n, d in described.items())
    return f"{head}\n>\n> | input | kind | path |\n> |---|---|---|\n{rows}"


def manifest_kind(manifest_csv: str | os.PathLike) -> str:
    """The kind (`world`, `real`, `mixed`) of the images a labeled dataset's manifest lists (paths relative to it)."""
    import pandas as pd  # lazy: the rest of this module is standard library only

    file = Path(manifest_csv)
    if not file.is_file():
        raise ProvenanceError(f"{file}: manifest not found")
    paths = pd.read_csv(file, usecols=["path"], dtype=str, keep_default_na=False)["path"]
    folders = {str((file.parent / _file_part(p)).parent) for p in paths}
    if not folders:
        raise ProvenanceError(f"{file}: no rows, so no provenance")
    return run_kind(["world" if _world_domain_dir(str(Path(f).resolve())) else "real" for f in sorted(folders)])
