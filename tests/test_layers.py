"""Layers point one way (docs/style.md), and the folders are the layers: a module's layer is the layer of the folder
of `syntfer/` it sits in (`FOLDERS`). Every import of a syntfer module (absolute, relative or through ``importlib``
with a literal name; at module level or inside a function; with the package ``__init__`` files it runs) goes to its
own layer or a lower one; the import graph has no cycle (a submodule importing its own package's ``__init__`` while
that ``__init__`` imports it is one); every package under `syntfer/strategies/` is a strategy (it declares
``STRATEGY``) and no strategy imports another. No catch-all: a module outside every layer folder (other than the
package's own ``__init__``, ``__main__`` and ``cli``) fails the test, naming it. The import graph is read by
`importgraph` (shared with the stage-deps test, tests/test_stage_deps.py); the second half of this file shows each
fault of issue 27 failing the check."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from importgraph import Graph, declares_strategy, syntfer_dynamic

ROOT = Path(__file__).resolve().parents[1]

# Lower number = lower layer: the folder of syntfer/ a module sits in gives its layer. Folders may share a layer
# (imports within a layer are allowed; cycles never are).
FOLDERS: dict[str, int] = {
    "core": 0,          # the label space, seeds, files, manifests, images, face geometry, figures, tables, the
                        # strategy contract, guards, the params schema
    "sources": 1,       # the real datasets' readers and the procedural world
    "engine": 2,        # data loading, models, training, evaluation, the subprocess launcher
    "instruments": 3,   # the one judge and the other measuring instruments, and their training/calibration
    "strategies": 4,    # one package per strategy (each declares STRATEGY), with its private helpers
    "study": 5,         # the set builder, summaries and verdicts over every strategy, documents' numbers, publishing
    "tools": 5,         # the notebook runner, JupyterLab setup, asset fetching
}
STRATEGIES = "strategies"
# The package's own __init__ (the version) is below every layer; its entry points (`cli`, `__main__`) above them.
ENTRY_POINTS = ("cli", "__main__")

# Known violations in the real package, each named with its reason; empty: there are none (issue 27).
ALLOWED: set[str] = set()


def layer_of(module: str, package: str, folders: dict[str, int]) -> int | None:
    """The layer of `module`: its folder's (`folders`), or the top level's for the package itself, its `cli`
    and `__main__`; None for a module in no layer folder."""
    parts = module.split(".")[1:]
    if not parts:
        return 0
    if len(parts) == 1 and parts[0] in ENTRY_POINTS:
        return max(folders.values()) + 1
    return folders.get(parts[0])


def strategy_of(module: str, package: str) -> str | None:
    """The strategy package (``<package>.strategies.<name>``) `module` belongs to, if any."""
    parts = module.split(".")
    return ".".join(parts[:3]) if len(parts) >= 3 and parts[1] == STRATEGIES else None


def strategies(graph: Graph) -> set[str]:
    """The packages directly under ``<package>/strategies/``."""
    return {m for m in graph.files if len(m.split(".")) == 3 and m.split(".")[1] == STRATEGIES}


def problems(graph: Graph, folders: dict[str, int], allowed: set[str] = frozenset()) -> list[str]:
    """Every layer fault of `graph`, one message each (minus those in `allowed`)."""
    out = []
    pkg = graph.package
    lay = {m: layer_of(m, pkg, folders) for m in graph.files}
    for m, line in sorted((m, line) for m, lines in graph.undeclared.items() for line in lines):
        out.append(f"{m}:{line}: non-literal import ({graph.undeclared[m][line]}): declare what it may import in "
                   "tests/importgraph.py (syntfer_dynamic)")
    for m in sorted(m for m, n in lay.items() if n is None):
        out.append(f"{m} ({graph.path(m)}) is in no layer folder: move it into one of {pkg}/"
                   f"{{{','.join(folders)}}}/ (or give its folder a layer in FOLDERS, tests/test_layers.py)")
    for s in sorted(strategies(graph)):
        f = graph.files[s]
        if f.name != "__init__.py":
            out.append(f"{s} ({graph.path(s)}) is a module in {pkg}/{STRATEGIES}/: a strategy is a package")
        elif not declares_strategy(f):
            out.append(f"{s} ({graph.path(s)}) declares no STRATEGY: every package in {pkg}/{STRATEGIES}/ is a "
                       "strategy (syntfer.core.strategy)")
    for m, deps in sorted(graph.edges.items()):
        for d in sorted(deps):
            if lay[m] is not None and lay[d] is not None and lay[d] > lay[m]:
                out.append(f"{m} (layer {lay[m]}) imports {d} (layer {lay[d]}): an import up a layer")
    for cycle in graph.cycles():
        out.append("import cycle: " + " -> ".join(cycle))
    for m, deps in sorted(graph.edges.items()):
        for d in sorted(deps):
            a, b = strategy_of(m, pkg), strategy_of(d, pkg)
            if a and b and a != b:
                out.append(f"{m} imports {d}: one strategy ({a}) imports another ({b})")
    return [p for p in out if p not in allowed]


def real_graph() -> Graph:
    return Graph.build(ROOT, "syntfer", syntfer_dynamic(ROOT))


def test_layers_of_the_package():
    found = problems(real_graph(), FOLDERS, ALLOWED)
    assert not found, "layer faults:\n" + "\n".join(found)


def test_allowlist_is_not_stale():
    found = set(problems(real_graph(), FOLDERS))
    assert ALLOWED <= found, f"allowed but no longer found (remove them): {sorted(ALLOWED - found)}"


def test_the_three_strategies_declare_themselves():
    graph = real_graph()
    assert strategies(graph) == {"syntfer.strategies.pseudolabel", "syntfer.strategies.diffusion",
                                 "syntfer.strategies.gan"}
    assert all(declares_strategy(graph.files[s]) for s in strategies(graph))


def test_ls_syntfer_shows_the_layers():
    """The top level holds the layer folders (each a package) and only the package's __init__, __main__, cli
    (a folder with no .py file, e.g. one a checkout of the flat tree left holding only __pycache__, is no module)."""
    top = {p.name for p in (ROOT / "syntfer").iterdir()
           if p.suffix == ".py" or (p.is_dir() and any(p.rglob("*.py")))}
    assert top == {*FOLDERS, "__init__.py", "__main__.py", "cli.py"}
    assert all((ROOT / "syntfer" / f / "__init__.py").is_file() for f in FOLDERS)


# ---- the check catches each fault of issue 27 (small packages in a temp dir) --------------------------------

TOY_FOLDERS = {"core": 0, "instruments": 2, "strategies": 3, "study": 4}  # pkg.cli: layer 5


def toy(tmp_path: Path, files: dict[str, str]) -> Graph:
    """A package ``pkg`` under `tmp_path`, in layer folders: a foundation (core/labels, core/manifest), an
    instrument (instruments/judge), two strategies (strategies/alpha, strategies/beta, each declaring STRATEGY),
    the study (study/report) and a CLI, plus `files` (path -> source, replacing the default ones)."""
    base = {
        "pkg/__init__.py": "",
        "pkg/core/__init__.py": "",
        "pkg/core/labels.py": "CLASSES = ('a', 'b')\n",
        "pkg/core/manifest.py": "from pkg.core.labels import CLASSES\n",
        "pkg/instruments/__init__.py": "",
        "pkg/instruments/judge.py": "from pkg.core import labels\n",
        "pkg/strategies/__init__.py": "",
        "pkg/strategies/alpha/__init__.py": "from pkg.strategies.alpha.selection import select\nSTRATEGY = 'alpha'\n",
        "pkg/strategies/alpha/selection.py": "from pkg.instruments.judge import labels\n\ndef select():\n"
                                             "    return labels\n",
        "pkg/strategies/beta/__init__.py": "STRATEGY = 'beta'\n",
        "pkg/study/__init__.py": "",
        "pkg/study/report.py": "import pkg.strategies.alpha\nimport pkg.strategies.beta\n",
        "pkg/cli.py": "import importlib\n",
    }
    for path, text in {**base, **files}.items():
        f = tmp_path / path
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(textwrap.dedent(text))
    return Graph.build(tmp_path, "pkg")


def test_toy_package_is_clean(tmp_path):
    assert problems(toy(tmp_path, {}), TOY_FOLDERS) == []


def test_fault_unlisted_module_has_no_catch_all(tmp_path):
    """A new `pkg/morph/` that imports the study: it is in no layer folder (no catch-all gives it a layer)."""
    found = problems(toy(tmp_path, {"pkg/morph/__init__.py": "from pkg.study import report\n"}), TOY_FOLDERS)
    assert found == ["pkg.morph (pkg/morph/__init__.py) is in no layer folder: move it into one of "
                     "pkg/{core,instruments,strategies,study}/ (or give its folder a layer in FOLDERS, "
                     "tests/test_layers.py)"]


def test_fault_module_in_a_new_top_level_folder(tmp_path):
    """A module dropped into a new folder `pkg/morph/` (and a flat module beside the layer folders) fails by
    name, whatever it imports."""
    found = problems(toy(tmp_path, {"pkg/morph/__init__.py": "", "pkg/morph/shapes.py": "",
                                    "pkg/extra.py": "from pkg.core import labels\n"}), TOY_FOLDERS)
    assert [p.split(" (")[0] for p in found] == ["pkg.extra", "pkg.morph", "pkg.morph.shapes"]
    assert all("is in no layer folder" in p for p in found)


def test_fault_strategy_without_strategy(tmp_path):
    """Every package under pkg/strategies/ is a strategy: one that does not declare STRATEGY fails."""
    found = problems(toy(tmp_path, {"pkg/strategies/beta/__init__.py": "NAME = 'beta'\n"}), TOY_FOLDERS)
    assert found == ["pkg.strategies.beta (pkg/strategies/beta/__init__.py) declares no STRATEGY: every package in "
                     "pkg/strategies/ is a strategy (syntfer.core.strategy)"]


def test_fault_relative_import_cycle(tmp_path):
    """`from . import manifest` in labels.py while manifest imports labels: a cycle, through a relative import."""
    found = problems(toy(tmp_path, {"pkg/core/labels.py": "from . import manifest\nCLASSES = ('a', 'b')\n"}),
                     TOY_FOLDERS)
    assert found == ["import cycle: pkg.core.labels -> pkg.core.manifest -> pkg.core.labels"]


def test_fault_relative_import_up_a_layer(tmp_path):
    """`from ..study.report import x` and `from ... import cli` are seen like absolute imports."""
    found = problems(toy(tmp_path, {"pkg/core/manifest.py": "def f():\n    from ..study.report import x\n",
                                    "pkg/strategies/alpha/selection.py": "from ... import cli\n"}), TOY_FOLDERS)
    assert "pkg.core.manifest (layer 0) imports pkg.study.report (layer 4): an import up a layer" in found
    assert "pkg.strategies.alpha.selection (layer 3) imports pkg.cli (layer 5): an import up a layer" in found


def test_fault_submodule_imports_its_own_package(tmp_path):
    """`strategies/alpha/selection.py` importing `pkg.strategies.alpha` (whose __init__ imports selection): a
    cycle."""
    for source in ("import pkg.strategies.alpha\n", "from pkg.strategies.alpha import STRATEGY\n",
                   "from . import STRATEGY\n"):
        found = problems(toy(tmp_path, {"pkg/strategies/alpha/selection.py": source}), TOY_FOLDERS)
        assert found == ["import cycle: pkg.strategies.alpha -> pkg.strategies.alpha.selection -> "
                         "pkg.strategies.alpha"], source


def test_submodule_importing_a_sibling_through_its_package_is_no_cycle(tmp_path):
    """`from pkg.strategies.alpha import scoring` (a submodule) and `import pkg.strategies.alpha.scoring` run no
    code of the alpha __init__ that is not already running: no edge to it, no cycle."""
    for source in ("from pkg.strategies.alpha import scoring\n", "import pkg.strategies.alpha.scoring\n",
                   "from . import scoring\n"):
        graph = toy(tmp_path, {"pkg/strategies/alpha/selection.py": source, "pkg/strategies/alpha/scoring.py": ""})
        assert problems(graph, TOY_FOLDERS) == [], source
        assert graph.edges["pkg.strategies.alpha.selection"] == {"pkg.strategies.alpha.scoring"}


def test_fault_importlib_import_is_seen(tmp_path):
    """`importlib.import_module("pkg.study.report")` with a literal name is an import like any other (and runs
    the study folder's __init__ too)."""
    for source in ("import importlib\nR = importlib.import_module('pkg.study.report')\n",
                   "from importlib import import_module\nR = import_module('.report', 'pkg.study')\n",
                   "R = __import__('pkg.study.report')\n"):
        found = problems(toy(tmp_path, {"pkg/core/manifest.py": source}), TOY_FOLDERS)
        assert found == ["pkg.core.manifest (layer 0) imports pkg.study (layer 4): an import up a layer",
                         "pkg.core.manifest (layer 0) imports pkg.study.report (layer 4): an import up a layer"], source


def test_fault_non_literal_import_must_be_declared(tmp_path):
    found = problems(toy(tmp_path, {"pkg/instruments/judge.py": "import importlib\nname = 'pkg.study.report'\n"
                                                                "R = importlib.import_module(name)\n"}), TOY_FOLDERS)
    assert found == ["pkg.instruments.judge:3: non-literal import (importlib.import_module(name)): declare what it "
                     "may import in tests/importgraph.py (syntfer_dynamic)"]


def test_fault_init_chain_is_seen(tmp_path):
    """Importing `pkg.strategies.alpha.selection` runs `pkg/strategies/alpha/__init__.py`: importing a submodule
    of a package whose __init__ imports upward is itself an upward import, and the chain closes cycles."""
    graph = toy(tmp_path, {"pkg/strategies/alpha/__init__.py": "STRATEGY = 'alpha'\nimport pkg.study.report\n",
                           "pkg/strategies/alpha/selection.py": "",
                           "pkg/instruments/judge.py": "import pkg.strategies.alpha.selection\n"})
    assert "pkg.strategies.alpha" in graph.edges["pkg.instruments.judge"]
    found = problems(graph, TOY_FOLDERS)
    assert "pkg.instruments.judge (layer 2) imports pkg.strategies.alpha (layer 3): an import up a layer" in found
    assert "pkg.strategies.alpha (layer 3) imports pkg.study.report (layer 4): an import up a layer" in found
    assert "import cycle: pkg.strategies.alpha -> pkg.study.report -> pkg.strategies.alpha" in found


def test_fault_strategy_imports_another(tmp_path):
    found = problems(toy(tmp_path, {"pkg/strategies/beta/__init__.py": "STRATEGY = 'beta'\n\ndef f():\n"
                                    "    from pkg.strategies.alpha.selection import select\n"}), TOY_FOLDERS)
    assert found == ["pkg.strategies.beta imports pkg.strategies.alpha: one strategy (pkg.strategies.beta) imports "
                     "another (pkg.strategies.alpha)",
                     "pkg.strategies.beta imports pkg.strategies.alpha.selection: one strategy "
                     "(pkg.strategies.beta) imports another (pkg.strategies.alpha)"]


def test_type_checking_imports_are_not_edges(tmp_path):
    graph = toy(tmp_path, {"pkg/core/labels.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                                 "    from pkg.study.report import X\n"})
    assert problems(graph, TOY_FOLDERS) == []


@pytest.mark.parametrize("fault", ["morph_package", "morph_module", "cycle", "strategy"])
def test_faults_fail_the_real_check_on_a_copy(tmp_path, fault):
    """The same faults, planted in a copy of the real package, fail the real check (FOLDERS as they are)."""
    import shutil
    shutil.copytree(ROOT / "syntfer", tmp_path / "syntfer", ignore=shutil.ignore_patterns("__pycache__"))
    if fault == "morph_package":
        (tmp_path / "syntfer/morph").mkdir()
        (tmp_path / "syntfer/morph/__init__.py").write_text("from syntfer.study import report, summary\n")
        expected = "syntfer.morph (syntfer/morph/__init__.py) is in no layer folder"
    elif fault == "morph_module":
        (tmp_path / "syntfer/morph").mkdir()
        (tmp_path / "syntfer/morph/shapes.py").write_text("from syntfer.core import labels\n")
        expected = "syntfer.morph.shapes (syntfer/morph/shapes.py) is in no layer folder"
    elif fault == "cycle":
        f = tmp_path / "syntfer/core/labels.py"
        f.write_text(f.read_text() + "\n\ndef _f():\n    from . import manifest\n")
        expected = "import cycle: syntfer.core.labels -> syntfer.core.manifest -> syntfer.core.labels"
    else:
        f = tmp_path / "syntfer/strategies/gan/sets.py"
        f.write_text(f.read_text() + "\n\ndef _f():\n    from syntfer.strategies.diffusion import curation\n")
        expected = "syntfer.strategies.gan.sets imports syntfer.strategies.diffusion.curation: one strategy"
    found = problems(Graph.build(tmp_path, "syntfer", syntfer_dynamic(tmp_path)), FOLDERS)
    assert any(p.startswith(expected) for p in found), found
