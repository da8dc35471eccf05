"""What a strategy is, to the study: a package of `syntfer` that turns inputs into training sets.

The contract: a strategy package (``syntfer/strategies/<name>/``) declares ``STRATEGY = Strategy(prefix, name,
"synthetic", description, order, ...)`` in its ``__init__.py``, with literal arguments; its notebook and stage write
sets named ``<prefix><variant>``, each a folder with a ``manifest.csv`` (the truth of the set: path, label and how
each image was made). The declaration also says what the rest of the project would otherwise write by hand:

- ``commands``: its ``syntfer <command>`` entries, ``(command, module, help)`` (`syntfer.cli` lists them);
- ``words``: how the report spells its variants, ``(old, new)`` replacements applied to the variant before its
  ``_`` become spaces (``("_au", ", AU")``: ``diffusion_embedded_au`` -> "diffusion (embedded, AU)");
- ``look``: the reference domain ``ref_<x>`` its generator imitates (its judge ceiling; its oracle is
  ``oracle_<x>``), empty when it imitates none;
- ``sets_key``: the ``params.yaml`` key (dotted) whose keys are the variants its own stage writes as sets
  (pseudo-labeling: ``pseudolabel.sources``); empty when its sets are drawn by the study's ``synthetic_sets`` stage
  from ``study.synthetic`` entries named ``<prefix><variant>``;
- ``params``: the schema rows of its ``params.yaml`` section, ``(key, rule)`` with the rule written as in
  `syntfer.core.params_schema` (``("morph.steps", "INT(1)")``); the paper's three strategies keep theirs in that
  file's `SCHEMA`.

The study (`syntfer.study.report`) finds every package that declares a `STRATEGY` by importing it; the CLI reads
the declarations without importing the packages (`read_declarations`: a command stays cheap to start).
Study-level set kinds (real splits, Mixed-SYN, hybrids, oracles) are declared by the study itself.
"""
from __future__ import annotations

import ast
import dataclasses
import os
from pathlib import Path

FAMILIES = ("real", "synthetic", "mixed", "hybrid", "oracle")


@dataclasses.dataclass(frozen=True)
class Strategy:
    """A family of training sets, told by the set-name prefix."""

    prefix: str
    name: str
    family: str       # real | synthetic | mixed | hybrid | oracle
    description: str
    order: int = 100  # where the report lists it (the paper's strategies: 1, 2, 3)
    commands: tuple[tuple[str, str, str], ...] = ()  # (command, module, help): `syntfer <command>`
    words: tuple[tuple[str, str], ...] = ()          # (old, new): the report's spelling of its variants
    look: str = ""                                    # ref_<x>: the domain its generator imitates ("" = none)
    sets_key: str = ""                                # params.yaml key whose keys are its own stage's set variants
    params: tuple[tuple[str, str], ...] = ()          # (key, rule): its params.yaml section's schema rows

    def __post_init__(self) -> None:
        if not self.prefix or not self.prefix.replace("_", "").isalnum() or self.prefix != self.prefix.lower():
            raise ValueError(f"Strategy prefix {self.prefix!r}: expected lower-case letters, digits and '_'")
        if self.family not in FAMILIES:
            raise ValueError(f"Strategy {self.prefix!r}: family {self.family!r}; expected one of {FAMILIES}")
        if self.look and not self.look.startswith("ref_"):
            raise ValueError(f"Strategy {self.prefix!r}: look {self.look!r}; expected a reference domain ref_<x>")
        for c in self.commands:
            if len(c) != 3 or not all(isinstance(x, str) and x for x in c):
                raise ValueError(f"Strategy {self.prefix!r}: command {c!r}; expected (command, module, help)")


def read_declaration(init: str | os.PathLike) -> Strategy | None:
    """The ``STRATEGY = Strategy(...)`` of a package's ``__init__.py``, read without importing the package (its
    arguments must be literals); None when it declares none."""
    tree = ast.parse(Path(init).read_text(), filename=str(init))
    for node in tree.body:
        targets = (node.targets if isinstance(node, ast.Assign)
                   else [node.target] if isinstance(node, ast.AnnAssign) else [])
        if not any(getattr(t, "id", None) == "STRATEGY" for t in targets):
            continue
        call = node.value
        if not (isinstance(call, ast.Call) and getattr(call.func, "id", None) == "Strategy"):
            raise ValueError(f"{init}: STRATEGY must be assigned a Strategy(...) call with literal arguments")
        try:
            args = [ast.literal_eval(a) for a in call.args]
            kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
        except ValueError as e:
            raise ValueError(f"{init}: STRATEGY's arguments must be literals ({e})") from None
        return Strategy(*args, **kwargs)
    return None


def read_declarations(folder: str | os.PathLike = Path(__file__).parents[1] / "strategies") -> tuple[Strategy, ...]:
    """Every strategy declared in a subpackage of `folder` (by default syntfer/strategies/), read without importing
    (`read_declaration`), in their `order` (then prefix)."""
    found = [s for p in sorted(Path(folder).iterdir()) if (p / "__init__.py").is_file()
             for s in [read_declaration(p / "__init__.py")] if s is not None]
    return tuple(sorted(found, key=lambda s: (s.order, s.prefix)))
