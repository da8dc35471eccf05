"""The static import graph of a package, for the layer test (tests/test_layers.py) and the stage-deps test
(tests/test_stage_deps.py): one reading of "what does this file import", shared by both.

What counts as an import of a module of the package (anywhere in a file, inside functions included, except under
``if TYPE_CHECKING:``, which never runs):

- ``import pkg.a.b`` and ``from pkg.a import b`` (``b`` a submodule: the submodule; otherwise the module ``pkg.a``);
- relative imports, ``from . import x``, ``from .x import y``, ``from .. import z``, resolved against the file's
  own package;
- ``importlib.import_module("pkg.x")``, ``import_module(".x", "pkg")`` and ``__import__("pkg.x")`` with literal
  strings;
- the package ``__init__.py`` files an import executes: importing ``pkg.a.b`` runs ``pkg/__init__.py`` and
  ``pkg/a/__init__.py`` first. The importer's own enclosing packages are left out of its edges: Python has
  already imported them (they are running) by the time the importer's body runs, so they are not something it
  depends on (an explicit ``import pkg.a`` or ``from pkg.a import name`` inside ``pkg/a/b.py`` *is* an edge,
  and with ``pkg/a/__init__.py`` importing ``b`` it is the submodule <-> own package cycle).

An import whose target is not a literal (``importlib.import_module(name)``) cannot be read statically: `Graph`
reports each one in ``undeclared`` unless ``dynamic`` says what that module may import that way.
"""
from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

IMPORT_FUNCTIONS = ("import_module", "__import__")


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Every module of `package` (its folder under `root`) by dotted name; a package is named by its folder and
    maps to its ``__init__.py``."""
    out = {}
    for f in sorted((root / package).rglob("*.py")):
        if "__pycache__" in f.parts:
            continue
        parts = f.relative_to(root).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def ancestors(module: str) -> list[str]:
    """The enclosing packages of `module`, outermost first: ``a.b.c`` -> ``[a, a.b]``."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def with_ancestors(module: str) -> list[str]:
    """What importing `module` executes: every enclosing package's ``__init__`` and the module itself."""
    return [*ancestors(module), module]


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for n in ast.walk(node)}
            skip -= {id(n) for orelse in node.orelse for n in ast.walk(orelse)}  # the else branch does run
    return skip


def _literal(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _resolve_relative(name: str, level: int, importer: str, is_package: bool) -> str:
    """``from <level dots><name> import ...`` written in module `importer`, as an absolute module name."""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    if level - 1 > len(base) - 1 or not base:
        raise ImportError(f"{importer}: relative import beyond the top-level package ({'.' * level}{name})")
    base = base[:len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


@dataclasses.dataclass
class FileImports:
    """What one file imports, as absolute names (possibly outside the package): `names`, the modules named as
    import targets; `froms`, each ``from base import a, b`` as (base, (a, b)) (an ``a`` may be a submodule or a
    name defined in ``base``); `dynamic`, the non-literal dynamic imports found (line: source)."""

    names: set[str]
    froms: set[tuple[str, tuple[str, ...]]]
    dynamic: dict[int, str]


def read_imports(file: Path, module: str | None = None, is_package: bool = False) -> FileImports:
    """Every module name `file` imports (see the module docstring). `module` is the file's dotted name (needed
    to resolve relative imports; None for a file outside any package, such as a notebook)."""
    tree = ast.parse(file.read_text(), filename=str(file))
    skip = _type_checking_nodes(tree)
    names: set[str] = set()
    froms: set[tuple[str, tuple[str, ...]]] = set()
    dynamic: dict[int, str] = {}
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if module is None:
                    raise ImportError(f"{file}:{node.lineno}: relative import outside a package")
                base = _resolve_relative(node.module or "", node.level, module, is_package)
            else:
                base = node.module or ""
            froms.add((base, tuple(a.name for a in node.names)))
        elif isinstance(node, ast.Call):
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if fname not in IMPORT_FUNCTIONS or not node.args:
                continue
            target = _literal(node.args[0])
            anchor = _literal(node.args[1]) if len(node.args) > 1 and fname == "import_module" else None
            for kw in node.keywords:
                if kw.arg == "package":
                    anchor = _literal(kw.value)
            if target is not None and target.startswith("."):
                if anchor is None:
                    dynamic[node.lineno] = ast.unparse(node)
                    continue
                level = len(target) - len(target.lstrip("."))
                target = _resolve_relative(target.lstrip("."), level, anchor, True)
            if target is None:
                dynamic[node.lineno] = ast.unparse(node)
            else:
                names.add(target)
    return FileImports(names, froms, dynamic)


def package_edges(found: FileImports, known: set[str], importer: str | None = None) -> set[str]:
    """The modules of the package that the imports `found` execute, from `importer`'s point of view.

    Each target module counts, and so does the ``__init__`` of every package above it, except the packages
    enclosing `importer` (already running when its body runs). ``from base import a`` targets ``base.a`` when
    that is a module, else ``base`` itself (``a`` is read from ``base``: an explicit edge, even to the
    importer's own package)."""
    own = set(ancestors(importer)) if importer else set()
    targets = set(found.names)
    for base, names in found.froms:
        subs = {f"{base}.{a}" for a in names if f"{base}.{a}" in known}
        targets |= subs
        if len(subs) < len(names):
            targets.add(base)
    out: set[str] = set()
    for t in targets:
        if t in known:
            out.add(t)
            out |= {m for m in ancestors(t) if m in known and m not in own}
    return out - {importer}


@dataclasses.dataclass
class Graph:
    """The import graph of a package: ``edges[m]`` = the package modules that executing module ``m`` imports
    (see `package_edges`); ``undeclared`` = non-literal imports not covered by ``dynamic`` (module -> {line: code})."""

    root: Path
    package: str
    files: dict[str, Path]
    edges: dict[str, set[str]]
    undeclared: dict[str, dict[int, str]]

    @classmethod
    def build(cls, root: Path, package: str, dynamic: dict[str, set[str]] | None = None) -> Graph:
        """`dynamic`: module -> the package modules it may import by a non-literal name (a module listed here
        may have any number of such imports; one not listed that has any is reported in ``undeclared``)."""
        dynamic = dynamic or {}
        files = module_files(root, package)
        known = set(files)
        edges, undeclared = {}, {}
        for name, f in files.items():
            found = read_imports(f, name, f.name == "__init__.py")
            extra = dynamic.get(name)
            if found.dynamic and extra is None:
                undeclared[name] = found.dynamic
            found.names |= set(extra or ())
            edges[name] = package_edges(found, known, name)
        return cls(root, package, files, edges, undeclared)

    def closure(self, roots: set[str], edges: dict[str, set[str]] | None = None) -> set[str]:
        """Every module of the package that executing `roots` (with their enclosing packages' ``__init__``)
        runs. `edges` overrides some modules' edges (e.g. the CLI's dispatch, resolved for one command)."""
        edges = {**self.edges, **(edges or {})}
        todo = [m for r in roots for m in with_ancestors(r) if m in self.files]
        seen: set[str] = set()
        while todo:
            m = todo.pop()
            if m in seen:
                continue
            seen.add(m)
            todo += [d for e in edges.get(m, ()) for d in with_ancestors(e) if d in self.files]
        return seen

    def file_closure(self, file: Path, roots: set[str] = frozenset(),
                     edges: dict[str, set[str]] | None = None) -> set[str]:
        """`closure` of what a file outside the package (a notebook) imports, plus `roots`."""
        found = read_imports(file)
        if found.dynamic:
            raise ValueError(f"{file}: non-literal imports {found.dynamic}: the closure cannot be read statically")
        return self.closure(package_edges(found, set(self.files)) | set(roots), edges)

    def path(self, module: str) -> str:
        """The module's file, relative to the root, as DVC writes it (posix)."""
        return self.files[module].relative_to(self.root).as_posix()

    def cycles(self) -> list[list[str]]:
        """One cycle through each strongly connected component with more than one module (or a self-loop)."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on: set[str] = set()
        comps: list[list[str]] = []
        counter = [0]

        def strong(v: str) -> None:  # Tarjan; the graph is small, recursion depth is fine
            index[v] = low[v] = counter[0]
            counter[0] += 1
            stack.append(v)
            on.add(v)
            for w in sorted(self.edges.get(v, ())):
                if w not in index:
                    strong(w)
                    low[v] = min(low[v], low[w])
                elif w in on:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1 or v in self.edges.get(v, ()):
                    comps.append(sorted(comp))

        for v in sorted(self.edges):
            if v not in index:
                strong(v)
        return [self._cycle_in(set(c)) for c in comps]

    def _cycle_in(self, comp: set[str]) -> list[str]:
        """A shortest cycle through the component's first module (for the message)."""
        start = min(comp)
        prev: dict[str, str] = {}
        frontier = [start]
        while frontier:
            nxt = []
            for v in frontier:
                for w in sorted(self.edges.get(v, ())):
                    if w == start:
                        path = [v]
                        while path[-1] != start:
                            path.append(prev[path[-1]])
                        return [*reversed(path), start]
                    if w in comp and w not in prev and w != start:
                        prev[w] = v
                        nxt.append(w)
            frontier = nxt
        return sorted(comp)


def covered(path: str, deps: list[str]) -> bool:
    """A file is covered by a stage dep that names it or a folder above it."""
    return any(path == d.rstrip("/") or path.startswith(d.rstrip("/") + "/") for d in deps)


def declares_strategy(init: Path) -> bool:
    """A package whose ``__init__.py`` assigns ``STRATEGY`` at module level (the strategy contract,
    `syntfer.core.strategy`)."""
    return init.name == "__init__.py" and init.is_file() and any(
        isinstance(n, (ast.Assign, ast.AnnAssign))
        and any(getattr(t, "id", None) == "STRATEGY" for t in (n.targets if isinstance(n, ast.Assign) else [n.target]))
        for n in ast.parse(init.read_text()).body)


def cli_commands(root: Path, package: str = "syntfer") -> dict[str, str]:
    """``syntfer <command>`` -> the module that runs it, read (not imported): ``BASE_COMMANDS`` in the package's
    ``cli.py`` and the ``commands`` each strategy declares in ``<package>/strategies/<name>/__init__.py``
    (``STRATEGY = Strategy(..., commands=((command, module, help), ...))``, as `syntfer.cli` reads them)."""
    tree = ast.parse((root / package / "cli.py").read_text())
    base = None
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else (node.targets[0] if isinstance(node, ast.Assign)
                                                                     else None)
        if getattr(target, "id", None) == "BASE_COMMANDS":
            base = {name: module for name, (module, _help) in ast.literal_eval(node.value).items()}
    if base is None:
        raise LookupError(f"{root / package / 'cli.py'}: no BASE_COMMANDS")
    folder = root / package / "strategies"
    for init in sorted(folder.glob("*/__init__.py")):
        for node in ast.parse(init.read_text()).body:
            if (isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "STRATEGY" for t in node.targets)
                    and isinstance(node.value, ast.Call)):
                for kw in node.value.keywords:
                    if kw.arg == "commands":
                        base.update({name: module for name, module, _help in ast.literal_eval(kw.value)})
    return base


def syntfer_dynamic(root: Path, package: str = "syntfer") -> dict[str, set[str]]:
    """What the package's non-literal imports may import, each read from the code that drives it:

    - ``cli.main`` imports the module of the command it runs (``COMMANDS``): any of them (a stage's closure
      narrows this to its own command);
    - ``study.report.discover_strategies`` imports every subpackage of syntfer/strategies/ (``pkgutil.iter_modules``
      over that folder) to find the ones that declare ``STRATEGY``; it runs when `report` is imported.
    A new non-literal import elsewhere is reported by `Graph.build` until it is declared here."""
    folder = root / package / "strategies"
    subpackages = {f"{package}.strategies.{p.name}" for p in sorted(folder.iterdir()) if (p / "__init__.py").is_file()}
    return {f"{package}.cli": set(cli_commands(root, package).values()), f"{package}.study.report": subpackages}


# Modules that run a `syntfer` command in a subprocess (``syntfer.engine.launch.run_launched``: ``<launcher> -m syntfer
# <command>``), with the command. Not an import (the layer graph has no edge for it), but code the stage runs:
# the stage-deps closure adds ``syntfer/__main__.py``, ``cli.py`` and the command's module. A caller of
# run_launched not listed here fails tests/test_stage_deps.py.
LAUNCHED: dict[str, set[str]] = {
    "syntfer.engine.training": {"train"},                 # train_launched: `-m syntfer train --config ...`
    "syntfer.strategies.diffusion.generation": {"diffusion"},  # generate_launched: `-m syntfer diffusion generate ...`
}


def launch_callers(graph: Graph, function: str = "run_launched") -> set[str]:
    """Modules of `graph` that call `function` (by name or as an attribute), other than where it is defined."""
    out = set()
    for name, f in graph.files.items():
        tree = ast.parse(f.read_text())
        defines = any(isinstance(n, ast.FunctionDef) and n.name == function for n in tree.body)
        calls = any(isinstance(n, ast.Call) and (getattr(n.func, "id", None) == function
                                                 or getattr(n.func, "attr", None) == function)
                    for n in ast.walk(tree))
        if calls and not defines:
            out.add(name)
    return out
