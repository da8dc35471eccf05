"""The `syntfer` command. Each subcommand lives in its own module, imported only when used.

A subcommand module defines ``add_arguments(parser)`` and ``run(args) -> int``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "manifest": ("syntfer.readers", "write a manifest CSV from a dataset in its native format"),
    "world": ("syntfer.world.cli", "render the procedural face world (all stand-in domains)"),
    "notebook": ("syntfer.notebook", "execute a py:percent notebook with papermill (used by DVC stages)"),
    "pseudolabel": ("syntfer.pseudolabel.cli", "pseudo-label unlabeled images with a teacher (strategy i)"),
    "prompts": ("syntfer.prompts", "write the paper's diffusion prompt grid (strategy ii)"),
    "train": ("syntfer.training", "train a classifier on a manifest (resumable)"),
    "evaluate": ("syntfer.evaluation", "evaluate a checkpoint on test manifests"),
    "models": ("syntfer.models.cli", "list classifiers; build one and report how a weight file loads"),
    "diffusion": ("syntfer.diffusion.cli", "train the embedded model / generate / curate diffusion sets (strategy ii)"),
    "gan": ("syntfer.gan.cli", "train a GANmut-style editor / write GAN-edited sets (strategy iii)"),
    "identity": ("syntfer.identity_encoder", "train and validate the world identity encoder"),
    "instrument": ("syntfer.instruments", "train and calibrate the judge on reference renders (as 06_instruments)"),
    "mix": ("syntfer.mixing", "build Mixed-SYN or a hybrid set (manifest + folder)"),
    "distance": ("syntfer.distances", "FD/KID of sets against a reference in a named feature space"),
    "audit": ("syntfer.audit", "demographic audit and nearest-real-face privacy check"),
    "summarize": ("syntfer.summary", "collect fan-out metrics into one metrics.json"),
    "numbers": ("syntfer.docs_numbers", "regenerate (or --check) the documents' numbers from the result files"),
    "publish": ("syntfer.publish", "copy the run's executed notebooks into reports/ (display size, stamped)"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        width = max(map(len, COMMANDS))
        lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
        msg = "usage: syntfer COMMAND [options]\n\ncommands:\n" + "\n".join(lines)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"syntfer: unknown command {argv[0]!r}\n\n{msg}", file=sys.stderr)
            return 2
        print(msg)
        return 0
    name, rest = argv[0], argv[1:]
    module_name, help_ = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"syntfer {name}", description=help_)
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    return int(module.run(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
