"""What a strategy is, to the study: a package of `syntfer` that turns inputs into training sets.

The contract: a strategy package (``syntfer/<name>/``) declares ``STRATEGY = Strategy(prefix, name, "synthetic",
description, order)`` in its ``__init__.py``; its notebook and stage write sets named ``<prefix><variant>``, each a
folder with a ``manifest.csv`` (the truth of the set: path, label and how each image was made), and its
``params.yaml`` section lists them under ``study.synthetic``. The study (`syntfer.study.report`) finds every package
that declares a `STRATEGY` — nothing else has to name it. Study-level set kinds (real splits, Mixed-SYN, hybrids,
oracles) are declared by the study itself.
"""
from __future__ import annotations

import dataclasses

FAMILIES = ("real", "synthetic", "mixed", "hybrid", "oracle")


@dataclasses.dataclass(frozen=True)
class Strategy:
    """A family of training sets, told by the set-name prefix."""

    prefix: str
    name: str
    family: str       # real | synthetic | mixed | hybrid | oracle
    description: str
    order: int = 100  # where the report lists it (the paper's strategies: 1, 2, 3)

    def __post_init__(self) -> None:
        if not self.prefix or not self.prefix.replace("_", "").isalnum() or self.prefix != self.prefix.lower():
            raise ValueError(f"Strategy prefix {self.prefix!r}: expected lower-case letters, digits and '_'")
        if self.family not in FAMILIES:
            raise ValueError(f"Strategy {self.prefix!r}: family {self.family!r}; expected one of {FAMILIES}")
