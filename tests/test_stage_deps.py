"""Every DVC stage depends on the package code it runs (issue 27): for each stage of dvc.yaml (foreach items
expanded by DVC itself, from params.yaml), what its command runs — the notebook given to ``syntfer notebook``, the
module of a ``syntfer <command>`` (syntfer.cli's COMMANDS), ``python -m syntfer...`` — is followed through its
imports within `syntfer` (tests/importgraph.py: absolute, relative, literal ``importlib`` imports, the package
``__init__`` files they run, imports inside functions) and through the commands it launches in a subprocess
(``importgraph.LAUNCHED``). Each file of that closure must be covered by the stage's ``deps`` (a listed folder covers
the files under it); otherwise editing it leaves ``dvc status`` saying "up to date" over stale results."""
from __future__ import annotations

import shlex
import shutil
import textwrap
from pathlib import Path

import pytest
from importgraph import LAUNCHED, Graph, cli_commands, covered, launch_callers, syntfer_dynamic

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "syntfer"
PYTHONS = ("python", "python3", "python3.11")


class UnknownCommand(ValueError):
    """A stage command this test cannot tell the code of."""


def command_roots(cmd: str, root: Path = ROOT) -> tuple[set[str], set[str], list[str]]:
    """What one command line runs: (package modules it starts from, `syntfer` commands it dispatches, notebook
    files it executes, relative to `root`)."""
    words = shlex.split(cmd)
    if any(w in ("&&", "||", ";", "|") for w in words):
        raise UnknownCommand(f"{cmd!r}: one command per line (a list under cmd:), so each can be read")
    if not words:
        return set(), set(), []
    commands = cli_commands(root, PACKAGE)
    if words[0] == PACKAGE or (Path(words[0]).name in PYTHONS and words[1:3] == ["-m", PACKAGE]):
        rest = words[1:] if words[0] == PACKAGE else words[3:]
        if not rest or rest[0] not in commands:
            raise UnknownCommand(f"{cmd!r}: not a syntfer command (syntfer/cli.py COMMANDS)")
        notebooks = []
        if rest[0] == "notebook":
            positional = [w for w in rest[1:] if w.endswith(".py") and not w.startswith("-")]
            if not positional or not (root / positional[0]).is_file():
                raise UnknownCommand(f"{cmd!r}: which notebook does it run?")
            notebooks = [positional[0]]
        return {f"{PACKAGE}.cli", f"{PACKAGE}.__main__"}, {rest[0]}, notebooks
    if Path(words[0]).name in PYTHONS and len(words) > 2 and words[1] == "-m" and words[2].startswith(PACKAGE + "."):
        return {words[2]}, set(), []
    if PACKAGE in cmd or ".py" in cmd:
        raise UnknownCommand(f"{cmd!r}: runs project code this test cannot follow; teach tests/test_stage_deps.py")
    return set(), set(), []


def stage_closure(graph: Graph, cmds: list[str], root: Path = ROOT) -> tuple[set[str], list[str]]:
    """The package modules a stage's commands run, and the notebooks they execute. The CLI's dispatch
    (`syntfer.cli` imports ``COMMANDS[name]``) is resolved to the stage's own commands and the commands that
    the code it runs launches (`LAUNCHED`); the rest of the graph is static."""
    commands = cli_commands(root, PACKAGE)
    roots, dispatched, notebooks = set(), set(), []
    for cmd in cmds:
        r, d, n = command_roots(cmd, root)
        roots, dispatched, notebooks = roots | r, dispatched | d, notebooks + n
    while True:
        edges = {f"{PACKAGE}.cli": {commands[c] for c in dispatched}, f"{PACKAGE}.__main__": {f"{PACKAGE}.cli"}}
        closure = graph.closure(roots, edges)
        for nb in notebooks:
            closure |= graph.file_closure(root / nb, roots, edges)
        launched = set().union(*(LAUNCHED.get(m, set()) for m in closure))
        if not launched - dispatched:
            return closure, notebooks
        roots |= {f"{PACKAGE}.cli", f"{PACKAGE}.__main__"}
        dispatched |= launched


def stage_files(graph: Graph, cmds: list[str], root: Path = ROOT) -> set[str]:
    """The files a stage runs: its notebooks and the modules of its closure (paths relative to `root`)."""
    closure, notebooks = stage_closure(graph, cmds, root)
    return {graph.path(m) for m in closure} | set(notebooks)


def uncovered(files: set[str], deps: list[str]) -> list[str]:
    """The `files` that no dep in `deps` covers (names them or a folder above them)."""
    return sorted(f for f in files if not covered(f, deps))


def missing_deps(graph: Graph, cmds: list[str], deps: list[str], root: Path = ROOT) -> list[str]:
    """The files a stage runs that its `deps` do not cover."""
    return uncovered(stage_files(graph, cmds, root), deps)


def stages() -> list[tuple[str, list[str], list[str]]]:
    """(address, command lines, deps as written after interpolation) of every stage of dvc.yaml."""
    from dvc.repo import Repo

    out = []
    with Repo(str(ROOT)) as repo:
        for stage in repo.index.stages:
            if not getattr(stage, "cmd", None):
                continue  # a .dvc file (data.dvc): no command
            cmds = stage.cmd if isinstance(stage.cmd, list) else [stage.cmd]
            out.append((stage.name, cmds, [d.def_path for d in stage.deps]))
    return out


@pytest.fixture(scope="module")
def graph() -> Graph:
    g = Graph.build(ROOT, PACKAGE, syntfer_dynamic(ROOT))
    assert not g.undeclared, f"non-literal imports not declared in tests/importgraph.py: {g.undeclared}"
    return g


@pytest.fixture(scope="module")
def all_stages():
    return stages()


def test_every_stage_depends_on_the_code_it_runs(graph, all_stages):
    by_stage: dict[str, set[str]] = {}
    for address, cmds, deps in all_stages:
        lost = missing_deps(graph, cmds, deps)
        if lost:
            by_stage.setdefault(address.split("@")[0], set()).update(lost)
    assert not by_stage, "stages whose deps (dvc.yaml) miss files of the code they run:\n" + "\n".join(
        f"  {name}: {', '.join(sorted(files))}" for name, files in sorted(by_stage.items()))


def test_every_launcher_is_declared(graph):
    """A module that runs `syntfer <command>` in a subprocess says which command (importgraph.LAUNCHED)."""
    assert launch_callers(graph) == set(LAUNCHED)
    commands = cli_commands(ROOT, PACKAGE)
    assert all(c in commands for cs in LAUNCHED.values() for c in cs)


def test_stages_are_read(all_stages):
    names = {a.split("@")[0] for a, _, _ in all_stages}
    assert {"world", "manifests", "instruments", "train", "pseudolabel", "sets_report", "summary", "report", "gan",
            "diffusion"} <= names
    assert sum(a.startswith("train@") for a, _, _ in all_stages) > 1, "foreach items are expanded"


def test_removing_a_needed_dep_fails(graph, all_stages):
    """Drop any one package dep of a stage (a copy of its list): the check names the files it covered."""
    checked = 0
    for address, cmds, deps in all_stages:
        files = stage_files(graph, cmds)
        before = set(uncovered(files, deps))
        for dep in [d for d in deps if d.startswith(PACKAGE + "/") or d.startswith("notebooks/")]:
            fewer = [d for d in deps if d != dep]
            needed = {f for f in files if covered(f, [dep]) and not covered(f, fewer)}
            if needed:
                assert set(uncovered(files, fewer)) - before == needed, (address, dep)
                checked += 1
    assert checked >= 10


def test_a_missing_cli_file_fails(graph):
    """A `syntfer <command>` stage runs the package's __init__, the CLI and the command's module (its imports)."""
    cmds = ["syntfer manifest --format rafdb --root outputs/world/rafdb --split train --out x.csv"]
    lost = missing_deps(graph, cmds, ["syntfer/sources/readers.py"])
    assert {"syntfer/__init__.py", "syntfer/cli.py", "syntfer/__main__.py"} <= set(lost)
    assert "syntfer/sources/readers.py" not in lost


def test_command_roots():
    assert command_roots("syntfer notebook notebooks/06_sets.py --out x -p a b") == (
        {"syntfer.cli", "syntfer.__main__"}, {"notebook"}, ["notebooks/06_sets.py"])
    assert command_roots("python -m syntfer mix --whole") == ({"syntfer.cli", "syntfer.__main__"}, {"mix"}, [])
    assert command_roots("python -m syntfer.tools.lab install") == ({"syntfer.tools.lab"}, set(), [])
    assert command_roots("cp a b") == (set(), set(), [])
    for bad in ("python scripts/x.py", "syntfer nosuch", "syntfer world && syntfer mix"):
        with pytest.raises(UnknownCommand):
            command_roots(bad)


# ---- the closure on a small package in a temp dir -------------------------------------------------------------

def test_closure_of_a_synthetic_package(tmp_path):
    """Relative imports, literal importlib imports, imports inside functions and the __init__ chain all
    reach the closure; TYPE_CHECKING imports and unrelated modules do not."""
    files = {
        "pkg/__init__.py": "",
        "pkg/cli.py": "import importlib\n",
        "pkg/sub/__init__.py": "from .inner import f\n",          # the chain: importing pkg.sub.leaf runs this
        "pkg/sub/inner.py": "def f():\n    from .. import lazy\n",  # relative, inside a function
        "pkg/sub/leaf.py": "import importlib\nM = importlib.import_module('pkg.dyn')\n",
        "pkg/lazy.py": "",
        "pkg/dyn.py": "from pkg.deep.mod import x\n",
        "pkg/deep/__init__.py": "",
        "pkg/deep/mod.py": "x = 1\n",
        "pkg/typed.py": "",
        "pkg/unused.py": "",
        "nb.py": ("from typing import TYPE_CHECKING\nimport pkg.sub.leaf\nif TYPE_CHECKING:\n"
                  "    import pkg.typed\n"),
    }
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(textwrap.dedent(text))
    g = Graph.build(tmp_path, "pkg")
    assert g.file_closure(tmp_path / "nb.py") == {"pkg", "pkg.sub", "pkg.sub.inner", "pkg.lazy", "pkg.sub.leaf",
                                                  "pkg.dyn", "pkg.deep", "pkg.deep.mod"}
    assert g.closure({"pkg.deep.mod"}) == {"pkg", "pkg.deep", "pkg.deep.mod"}
    paths = sorted(g.path(m) for m in g.file_closure(tmp_path / "nb.py"))
    assert [p for p in paths if not covered(p, ["pkg/sub", "pkg/__init__.py", "pkg/lazy.py", "pkg/dyn.py"])] == [
        "pkg/deep/__init__.py", "pkg/deep/mod.py"]


def test_stage_closure_follows_the_cli_and_launches(tmp_path):
    """On a copy of the real package: a notebook stage runs the runner (syntfer.tools.notebook) and the CLI; code that
    launches `syntfer train` pulls in the train command's module."""
    shutil.copytree(ROOT / PACKAGE, tmp_path / PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks/nb.py").write_text("from syntfer.core import labels as L\n")
    g = Graph.build(tmp_path, PACKAGE, syntfer_dynamic(tmp_path))
    closure, notebooks = stage_closure(g, ["syntfer notebook notebooks/nb.py --out o"], tmp_path)
    assert notebooks == ["notebooks/nb.py"]
    assert {"syntfer", "syntfer.cli", "syntfer.__main__", "syntfer.tools.notebook", "syntfer.core.labels"} <= closure
    assert "syntfer.study.mixing" not in closure and "syntfer.strategies.diffusion.cli" not in closure
    assert "syntfer.strategies.diffusion.cli" not in g.closure({"syntfer.strategies.diffusion.generation"}), "only through a launch"
    (tmp_path / "notebooks/nb.py").write_text("def go():\n    from syntfer.strategies.diffusion.generation import generate\n")
    closure, _ = stage_closure(g, ["syntfer notebook notebooks/nb.py --out o"], tmp_path)
    assert {"syntfer.strategies.diffusion.generation", "syntfer.strategies.diffusion.cli"} <= closure
    assert missing_deps(g, ["syntfer notebook notebooks/nb.py --out o"],
                        ["notebooks/nb.py", "syntfer"], tmp_path) == []


def needed_deps(graph: Graph, cmds: list[str], root: Path = ROOT) -> list[str]:
    """The package and notebook files a stage runs, as dvc.yaml deps (sorted paths)."""
    return sorted(stage_files(graph, cmds, root))


if __name__ == "__main__":
    # `python tests/test_stage_deps.py [STAGE ...]`: for each stage (all by default), the files its deps miss,
    # one `- path` line each (paste them under its deps:); `--all` prints every code file the stage runs instead.
    import sys

    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    g = Graph.build(ROOT, PACKAGE, syntfer_dynamic(ROOT))
    by_stage: dict[str, set[str]] = {}  # a foreach stage: the union over its items
    for address, cmds, deps in stages():
        name = address.split("@")[0]
        if not args or name in args:
            found = needed_deps(g, cmds) if "--all" in sys.argv else missing_deps(g, cmds, deps)
            by_stage.setdefault(name, set()).update(found)
    for name, files in by_stage.items():
        if files:
            print(f"{name}:")
            print("\n".join(f"  - {f}" for f in sorted(files)))
