"""One alias per module, the same in every notebook (docs/style.md §16): `E` must not mean `evaluation` in one
notebook, `embedded` in another and `gan.measurements` in a third."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
ALIASES = {
    "numpy": "np", "pandas": "pd", "matplotlib.pyplot": "plt", "seaborn": "sns",
    "syntfer.core.labels": "L", "syntfer.core.tables": "T", "syntfer.core.provenance": "PV",
    "syntfer.engine.evaluation": "EV",
    "syntfer.instruments.attributes": "ATTR", "syntfer.instruments.audit": "AUDIT", "syntfer.instruments.build": "INST",
    "syntfer.instruments.distances": "DIST", "syntfer.instruments.identity_encoder": "IDENT",
    "syntfer.instruments.setmetrics": "SETM", "syntfer.sources.world.report": "WREP",
    "syntfer.strategies.pseudolabel": "PL", "syntfer.strategies.diffusion.prompts": "PROMPTS",
    "syntfer.strategies.diffusion.curation": "CUR", "syntfer.strategies.diffusion.embedded": "EMB",
    "syntfer.strategies.diffusion.figures": "DFIG", "syntfer.strategies.gan.figures": "GFIG",
    "syntfer.strategies.gan.measurements": "GMEAS", "syntfer.study.report": "REP",
    "syntfer.study.report_tables": "RTAB", "syntfer.study.report_figures": "RFIG", "syntfer.study.summary": "SUM",
    "syntfer.study.sets_tables": "STAB", "syntfer.study.sets_figures": "SFIG",
}


def aliased_imports(source: str) -> list[tuple[str, str]]:
    """(module, alias) of every `import m as a` and `from p import m as a` (names of a module only: an aliased
    constant such as `ATTRIBUTES as READ_ATTRIBUTES` is a name, not a module alias)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(a.name, a.asname) for a in node.names if a.asname]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found += [(f"{node.module}.{a.name}", a.asname) for a in node.names if a.asname and a.name.islower()]
    return found


def test_the_table_gives_each_alias_to_one_module():
    assert len(set(ALIASES.values())) == len(ALIASES)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_uses_the_one_alias_of_each_module(nb):
    for module, alias in aliased_imports(nb.read_text()):
        assert module in ALIASES, f"{nb.name}: `{module} as {alias}` — a module outside the alias table is imported " \
                                  f"by its name (or add it to ALIASES and docs/style.md §16)"
        assert alias == ALIASES[module], f"{nb.name}: `{module} as {alias}`; the project's alias is {ALIASES[module]}"


def test_the_fault_is_seen():
    assert aliased_imports("from syntfer.engine import evaluation as E\nimport numpy as np\n"
                           "from syntfer.instruments.attributes import ATTRIBUTES as X") == [
        ("syntfer.engine.evaluation", "E"), ("numpy", "np")]


def test_the_style_guide_lists_the_table():
    style = (ROOT / "docs" / "style.md").read_text().replace("\n    ", " ")
    for module, alias in ALIASES.items():
        if module.startswith("syntfer."):
            assert f"`{alias}`" in style, f"docs/style.md §16 lacks `{alias}` ({module})"
