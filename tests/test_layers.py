"""Layers point one way (docs/style.md, convention 12): every import of a syntfer module, module-level or inside a function, goes to
its own layer or a lower one, and the import graph has no cycle."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# lower number = lower layer; a module's layer is that of the longest matching prefix
LAYERS: dict[str, int] = {
    # foundations: the label space, seeds, files, manifests, images, face geometry, figures, notebook tables
    "syntfer.labels": 0, "syntfer.seeding": 0, "syntfer.storage": 0, "syntfer.manifest": 0, "syntfer.images": 0,
    "syntfer.alignment": 0, "syntfer.plots": 0, "syntfer.tables": 0, "syntfer.strategy": 0,
    # data sources: the real datasets' readers and the procedural world
    "syntfer.readers": 1, "syntfer.world": 1,
    # the engine: data loading, models, training, evaluation, the one judge and the other instruments
    "syntfer.data": 2, "syntfer.models": 2, "syntfer.training": 2, "syntfer.evaluation": 2, "syntfer.judge": 2,
    "syntfer.distances": 2, "syntfer.identity_encoder": 2, "syntfer.attributes": 2, "syntfer.instruments": 2,
    "syntfer.audit": 2, "syntfer.setmetrics": 2, "syntfer.teachers": 2, "syntfer.notebook": 2, "syntfer.launch": 2,
    "syntfer.lab": 2, "syntfer.assets": 2, "syntfer.prompts": 2,
    # the strategies: turn inputs into training sets
    "syntfer.pseudolabel": 3, "syntfer.diffusion": 3, "syntfer.gan": 3, "syntfer.mixing": 3,
    # the study: summaries and verdicts over every strategy's output
    "syntfer.summary": 4, "syntfer.report": 4,
    # the records of a run: documents' numbers tied to the result files, the published executed notebooks
    "syntfer.docs_numbers": 4, "syntfer.publish": 4,
    # entry points
    "syntfer.cli": 5, "syntfer.__main__": 5, "syntfer": 5,
}


def declares_strategy(package: str) -> bool:
    """A package of syntfer whose __init__.py assigns STRATEGY (the strategy contract, `syntfer.strategy`)."""
    init = ROOT / Path(*package.split(".")) / "__init__.py"
    return init.is_file() and any(isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "STRATEGY"
                                                                     for t in n.targets)
                                  for n in ast.parse(init.read_text()).body)


def layer(module: str) -> int:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len, default=None)
    if best is None and module.count(".") >= 1 and declares_strategy(".".join(module.split(".")[:2])):
        return 3  # a strategy package declares itself; it needs no line here
    assert best is not None, f"{module} has no layer in tests/test_layers.py: add it"
    return LAYERS[best]


def modules() -> dict[str, Path]:
    out = {}
    for f in (ROOT / "syntfer").rglob("*.py"):
        parts = f.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = f
    return out


def imports(file: Path, known: set[str]) -> set[str]:
    """syntfer modules `file` imports anywhere (functions included), except under `if TYPE_CHECKING:`."""
    tree = ast.parse(file.read_text())
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for n in ast.walk(node)}
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("syntfer"):
            for a in node.names:
                full = f"{node.module}.{a.name}"
                out.add(full if full in known else node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("syntfer")}
    return {m for m in out if m in known}


def test_every_import_points_down_or_sideways():
    mods = modules()
    bad = []
    for name, f in mods.items():
        for dep in imports(f, set(mods)):
            if layer(dep) > layer(name):
                bad.append(f"{name} (layer {layer(name)}) imports {dep} (layer {layer(dep)})")
    assert not bad, "imports that point up a layer:\n" + "\n".join(sorted(bad))


def test_no_import_cycles():
    mods = modules()
    graph = {n: imports(f, set(mods)) - {n} for n, f in mods.items()}
    graph = {n: {d for d in deps if not (n.startswith(d + ".") or d == "syntfer")} for n, deps in graph.items()}
    seen, stack, cycles = set(), [], []

    def visit(n: str) -> None:
        if n in stack:
            cycles.append(stack[stack.index(n):] + [n])
            return
        if n in seen:
            return
        seen.add(n)
        stack.append(n)
        for d in sorted(graph.get(n, ())):
            visit(d)
        stack.pop()

    for n in sorted(graph):
        visit(n)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_three_strategies_declare_themselves():
    assert {p for p in ("syntfer.pseudolabel", "syntfer.diffusion", "syntfer.gan") if declares_strategy(p)} == \
        {"syntfer.pseudolabel", "syntfer.diffusion", "syntfer.gan"}
    assert not declares_strategy("syntfer.world") and not declares_strategy("syntfer.models")
