"""Layers point one way (docs/style.md): every import of a syntfer module (absolute, relative or through ``importlib`` with a
literal name; at module level or inside a function; with the package ``__init__`` files it runs) goes to its own
layer or a lower one; the import graph has no cycle (a submodule importing its own package's ``__init__`` while
that ``__init__`` imports it is one); no strategy imports another. Every module has a layer: a module no line
here places fails the test (no catch-all). The import graph is read by `importgraph` (shared with the stage-deps
test, tests/test_stage_deps.py); the second half of this file shows each fault of issue 27 failing the check."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from importgraph import Graph, declares_strategy, syntfer_dynamic

ROOT = Path(__file__).resolve().parents[1]

# Lower number = lower layer. A key names a module, or a package and everything in it (the longest key that
# matches wins); the top-level package itself ("syntfer", its __init__.py) matches only itself.
# A package that declares STRATEGY (syntfer.core.strategy) is in the strategies layer without a line here.
STRATEGY_LAYER = 3
LAYERS: dict[str, int] = {
    # foundations: the package's __init__ (the version), the label space, seeds, files, manifests, images, face
    # geometry, figures, notebook tables, the strategy contract
    "syntfer": 0,
    "syntfer.core.labels": 0, "syntfer.core.seeding": 0, "syntfer.core.storage": 0, "syntfer.core.manifest": 0, "syntfer.core.images": 0,
    "syntfer.core.alignment": 0, "syntfer.core.plots": 0, "syntfer.core.tables": 0, "syntfer.core.strategy": 0,
    "syntfer.core.guards": 0, "syntfer.core.params_schema": 0,
    # data sources: the real datasets' readers and the procedural world
    "syntfer.sources.readers": 1, "syntfer.sources.world": 1,
    # the engine: data loading, models, training, evaluation, the one judge and the other instruments, tooling
    "syntfer.engine.data": 2, "syntfer.engine.models": 2, "syntfer.engine.training": 2, "syntfer.engine.evaluation": 2, "syntfer.instruments.judge": 2,
    "syntfer.instruments.distances": 2, "syntfer.instruments.identity_encoder": 2, "syntfer.instruments.attributes": 2, "syntfer.instruments.build": 2,
    "syntfer.instruments.audit": 2, "syntfer.instruments.setmetrics": 2, "syntfer.strategies.pseudolabel.teachers": 2, "syntfer.tools.notebook": 2, "syntfer.engine.launch": 2,
    "syntfer.tools.lab": 2, "syntfer.tools.assets": 2, "syntfer.strategies.diffusion.prompts": 2,
    # the strategies (each declares STRATEGY) and the study's set builder: turn inputs into training sets
    "syntfer.study.mixing": STRATEGY_LAYER,
    # the study: summaries and verdicts over every strategy's output
    "syntfer.study.summary": 4, "syntfer.study.report": 4,
    # the records of a run: documents' numbers tied to the result files, the published executed notebooks
    "syntfer.study.docs_numbers": 4, "syntfer.study.publish": 4,
    # entry points
    "syntfer.cli": 5, "syntfer.__main__": 5,
}

# Known violations in the real package, each named with its reason; empty: there are none (issue 27).
ALLOWED: set[str] = set()


def strategies(graph: Graph) -> set[str]:
    """The packages of `graph` that declare STRATEGY."""
    return {m for m, f in graph.files.items() if declares_strategy(f)}


def layer_of(module: str, graph: Graph, layers: dict[str, int], strats: set[str]) -> int | None:
    """The layer LAYERS gives `module` (exact name, else the longest package above it, never the top-level
    package), else the strategies' layer if it is in a package of `strats`; None if neither."""
    if module in layers:
        return layers[module]
    keys = [k for k in layers if k != graph.package and module.startswith(k + ".")]
    strategy = [s for s in strats if module == s or module.startswith(s + ".")]
    if strategy and not keys:
        return STRATEGY_LAYER
    return layers[max(keys, key=len)] if keys else None


def problems(graph: Graph, layers: dict[str, int], allowed: set[str] = frozenset()) -> list[str]:
    """Every layer fault of `graph`, one message each (minus those in `allowed`)."""
    out = []
    strat = strategies(graph)
    lay = {m: layer_of(m, graph, layers, strat) for m in graph.files}
    for m, line in sorted((m, line) for m, lines in graph.undeclared.items() for line in lines):
        out.append(f"{m}:{line}: non-literal import ({graph.undeclared[m][line]}): declare what it may import in "
                   "tests/importgraph.py (syntfer_dynamic)")
    for m in sorted(m for m, n in lay.items() if n is None):
        out.append(f"{m} ({graph.path(m)}) has no layer: add it to LAYERS in tests/test_layers.py")
    for m, deps in sorted(graph.edges.items()):
        for d in sorted(deps):
            if lay[m] is not None and lay[d] is not None and lay[d] > lay[m]:
                out.append(f"{m} (layer {lay[m]}) imports {d} (layer {lay[d]}): an import up a layer")
    for cycle in graph.cycles():
        out.append("import cycle: " + " -> ".join(cycle))
    owner = {m: next((s for s in strat if m == s or m.startswith(s + ".")), None) for m in graph.files}
    for m, deps in sorted(graph.edges.items()):
        for d in sorted(deps):
            if owner[m] and owner[d] and owner[m] != owner[d]:
                out.append(f"{m} imports {d}: one strategy ({owner[m]}) imports another ({owner[d]})")
    return [p for p in out if p not in allowed]


def real_graph() -> Graph:
    return Graph.build(ROOT, "syntfer", syntfer_dynamic(ROOT))


def test_layers_of_the_package():
    found = problems(real_graph(), LAYERS, ALLOWED)
    assert not found, "layer faults:\n" + "\n".join(found)


def test_allowlist_is_not_stale():
    found = set(problems(real_graph(), LAYERS))
    assert ALLOWED <= found, f"allowed but no longer found (remove them): {sorted(ALLOWED - found)}"


def test_the_three_strategies_declare_themselves():
    graph = real_graph()
    assert strategies(graph) == {"syntfer.strategies.pseudolabel", "syntfer.strategies.diffusion", "syntfer.strategies.gan"}


def test_every_layer_key_names_a_module():
    files = real_graph().files
    assert not [k for k in LAYERS if k not in files], "LAYERS names modules that do not exist"


# ---- the check catches each fault of issue 27 (small packages in a temp dir) --------------------------------

TOY_LAYERS = {"pkg": 0, "pkg.labels": 0, "pkg.manifest": 0, "pkg.judge": 2, "pkg.report": 4, "pkg.cli": 5}


def toy(tmp_path: Path, files: dict[str, str]) -> Graph:
    """A package ``pkg`` under `tmp_path`: a foundation (labels, manifest), an instrument (judge), two strategies
    (``pkg.alpha``, ``pkg.beta``, each declaring STRATEGY), the study (report) and a CLI, plus `files`
    (path -> source, replacing the default ones)."""
    base = {
        "pkg/__init__.py": "",
        "pkg/labels.py": "CLASSES = ('a', 'b')\n",
        "pkg/manifest.py": "from pkg.labels import CLASSES\n",
        "pkg/judge.py": "from pkg import labels\n",
        "pkg/alpha/__init__.py": "from pkg.alpha.selection import select\nSTRATEGY = 'alpha'\n",
        "pkg/alpha/selection.py": "from pkg.judge import labels\n\ndef select():\n    return labels\n",
        "pkg/beta/__init__.py": "STRATEGY = 'beta'\n",
        "pkg/report.py": "import pkg.alpha\nimport pkg.beta\n",
        "pkg/cli.py": "import importlib\n",
    }
    for path, text in {**base, **files}.items():
        f = tmp_path / path
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(textwrap.dedent(text))
    return Graph.build(tmp_path, "pkg")


def test_toy_package_is_clean(tmp_path):
    assert problems(toy(tmp_path, {}), TOY_LAYERS) == []


def test_fault_unlisted_module_has_no_catch_all(tmp_path):
    """A new `pkg/morph/` that imports the study: it has no layer (no catch-all gives it one)."""
    found = problems(toy(tmp_path, {"pkg/morph/__init__.py": "from pkg import report\n"}), TOY_LAYERS)
    assert found == ["pkg.morph (pkg/morph/__init__.py) has no layer: add it to LAYERS in tests/test_layers.py"]


def test_fault_relative_import_cycle(tmp_path):
    """`from . import manifest` in labels.py while manifest imports labels: a cycle, through a relative import."""
    found = problems(toy(tmp_path, {"pkg/labels.py": "from . import manifest\nCLASSES = ('a', 'b')\n"}),
                     TOY_LAYERS)
    assert found == ["import cycle: pkg.labels -> pkg.manifest -> pkg.labels"]


def test_fault_relative_import_up_a_layer(tmp_path):
    """`from .report import x` and `from .. import report` are seen like absolute imports."""
    found = problems(toy(tmp_path, {"pkg/manifest.py": "def f():\n    from .report import x\n",
                                    "pkg/alpha/selection.py": "from .. import cli\n"}), TOY_LAYERS)
    assert "pkg.manifest (layer 0) imports pkg.report (layer 4): an import up a layer" in found
    assert "pkg.alpha.selection (layer 3) imports pkg.cli (layer 5): an import up a layer" in found


def test_fault_submodule_imports_its_own_package(tmp_path):
    """`alpha/selection.py` importing `pkg.alpha` (whose __init__ imports selection): a cycle."""
    for source in ("import pkg.alpha\n", "from pkg.alpha import STRATEGY\n", "from . import STRATEGY\n"):
        found = problems(toy(tmp_path, {"pkg/alpha/selection.py": source}), TOY_LAYERS)
        assert found == ["import cycle: pkg.alpha -> pkg.alpha.selection -> pkg.alpha"], source


def test_submodule_importing_a_sibling_through_its_package_is_no_cycle(tmp_path):
    """`from pkg.alpha import scoring` (a submodule) and `import pkg.alpha.scoring` run no code of pkg.alpha's
    __init__ that is not already running: no edge to it, no cycle."""
    for source in ("from pkg.alpha import scoring\n", "import pkg.alpha.scoring\n", "from . import scoring\n"):
        graph = toy(tmp_path, {"pkg/alpha/selection.py": source, "pkg/alpha/scoring.py": ""})
        assert problems(graph, TOY_LAYERS) == [], source
        assert graph.edges["pkg.alpha.selection"] == {"pkg.alpha.scoring"}


def test_fault_importlib_import_is_seen(tmp_path):
    """`importlib.import_module("pkg.report")` with a literal name is an import like any other."""
    for source in ("import importlib\nR = importlib.import_module('pkg.report')\n",
                   "from importlib import import_module\nR = import_module('.report', 'pkg')\n",
                   "R = __import__('pkg.report')\n"):
        found = problems(toy(tmp_path, {"pkg/manifest.py": source}), TOY_LAYERS)
        assert found == ["pkg.manifest (layer 0) imports pkg.report (layer 4): an import up a layer"], source


def test_fault_non_literal_import_must_be_declared(tmp_path):
    found = problems(toy(tmp_path, {"pkg/judge.py": "import importlib\nname = 'pkg.report'\n"
                                                    "R = importlib.import_module(name)\n"}), TOY_LAYERS)
    assert found == ["pkg.judge:3: non-literal import (importlib.import_module(name)): declare what it may "
                     "import in tests/importgraph.py (syntfer_dynamic)"]


def test_fault_init_chain_is_seen(tmp_path):
    """Importing `pkg.alpha.selection` runs `pkg/alpha/__init__.py`: importing a submodule of a package whose
    __init__ imports upward is itself an upward import, and the chain closes cycles."""
    graph = toy(tmp_path, {"pkg/alpha/__init__.py": "STRATEGY = 'alpha'\nimport pkg.report\n",
                           "pkg/alpha/selection.py": "", "pkg/judge.py": "import pkg.alpha.selection\n"})
    assert "pkg.judge" in graph.edges and "pkg.alpha" in graph.edges["pkg.judge"]
    found = problems(graph, TOY_LAYERS)
    assert "pkg.judge (layer 2) imports pkg.alpha (layer 3): an import up a layer" in found
    assert "pkg.alpha (layer 3) imports pkg.report (layer 4): an import up a layer" in found
    assert "import cycle: pkg.alpha -> pkg.report -> pkg.alpha" in found


def test_fault_strategy_imports_another(tmp_path):
    found = problems(toy(tmp_path, {"pkg/beta/__init__.py": "STRATEGY = 'beta'\n\ndef f():\n"
                                                            "    from pkg.alpha.selection import select\n"}),
                     TOY_LAYERS)
    assert found == ["pkg.beta imports pkg.alpha: one strategy (pkg.beta) imports another (pkg.alpha)",
                     "pkg.beta imports pkg.alpha.selection: one strategy (pkg.beta) imports another (pkg.alpha)"]


def test_type_checking_imports_are_not_edges(tmp_path):
    graph = toy(tmp_path, {"pkg/labels.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                            "    from pkg.report import X\n"})
    assert problems(graph, TOY_LAYERS) == []


@pytest.mark.parametrize("fault", ["catch_all", "cycle", "strategy"])
def test_faults_fail_the_real_check_on_a_copy(tmp_path, fault):
    """The same faults, planted in a copy of the real package, fail the real check (LAYERS as they are)."""
    import shutil
    shutil.copytree(ROOT / "syntfer", tmp_path / "syntfer", ignore=shutil.ignore_patterns("__pycache__"))
    if fault == "catch_all":
        (tmp_path / "syntfer/morph").mkdir()
        (tmp_path / "syntfer/morph/__init__.py").write_text("from syntfer import report, summary\n")
        expected = "syntfer.morph (syntfer/morph/__init__.py) has no layer"
    elif fault == "cycle":
        f = tmp_path / "syntfer/core/labels.py"
        f.write_text(f.read_text() + "\n\ndef _f():\n    from . import manifest\n")
        expected = "import cycle: syntfer.core.labels -> syntfer.core.manifest -> syntfer.core.labels"
    else:
        f = tmp_path / "syntfer/strategies/gan/sets.py"
        f.write_text(f.read_text() + "\n\ndef _f():\n    from syntfer.strategies.diffusion import curation\n")
        expected = "syntfer.strategies.gan.sets imports syntfer.strategies.diffusion.curation: one strategy"
    found = problems(Graph.build(tmp_path, "syntfer", syntfer_dynamic(tmp_path)), LAYERS)
    assert any(p.startswith(expected) for p in found), found
