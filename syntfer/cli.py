"""The `syntfer` command. Each subcommand lives in its own module, imported only when used.

The commands are `COMMANDS`: the base ones below and those the strategies declare
(`syntfer.core.strategy.Strategy.commands`). A subcommand module defines ``add_arguments(parser)`` and
``run(args) -> int``.

Bad input ends a command with one line on stderr, ``syntfer COMMAND: error: <message>``, and exit status 1,
never a traceback: `main` turns the errors the project raises for bad input (`USER_ERRORS`: a missing file,
a `ValueError` - every project error class derives from it or is listed - naming the file, row or value and
what was expected) into that line. ``SYNTFER_TRACEBACK=1`` re-raises them (to debug the project itself);
any other exception is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from syntfer.core.strategy import read_declarations

# The commands of every layer but the strategies; each strategy declares its own (`Strategy.commands`), read from
# its package's __init__.py without importing it (`syntfer.core.strategy.read_declarations`).
BASE_COMMANDS: dict[str, tuple[str, str]] = {
    "manifest": ("syntfer.sources.readers", "write a manifest CSV from a dataset in its native format"),
    "world": ("syntfer.sources.world.cli", "render the procedural face world (all stand-in domains)"),
    "notebook": ("syntfer.tools.notebook", "execute a py:percent notebook with papermill (used by DVC stages)"),
    "train": ("syntfer.engine.training", "train a classifier on a manifest (resumable)"),
    "evaluate": ("syntfer.engine.evaluation", "evaluate a checkpoint on test manifests"),
    "models": ("syntfer.engine.models.cli", "list classifiers; build one and report how a weight file loads"),
    "identity": ("syntfer.instruments.identity_encoder", "train and validate the world identity encoder"),
    "instrument": ("syntfer.instruments.build", "train and calibrate the judge on reference renders (as 01_instruments)"),
    "mix": ("syntfer.study.mixing", "build Mixed-SYN or a hybrid set (manifest + folder)"),
    "distance": ("syntfer.instruments.distances", "FD/KID of sets against a reference in a named feature space"),
    "audit": ("syntfer.instruments.audit", "demographic audit and nearest-real-face privacy check"),
    "summarize": ("syntfer.study.summary", "collect fan-out metrics into one metrics.json"),
    "numbers": ("syntfer.study.docs_numbers", "regenerate (or --check) the documents' numbers from the result files"),
    "publish": ("syntfer.study.publish", "copy the run's executed notebooks into reports/ (display size, stamped)"),
    "preset": ("syntfer.tools.preset", "a params preset (presets/<name>.yaml: the paper's) as one dvc exp run"),
}


def strategy_commands() -> dict[str, tuple[str, str]]:
    """The commands the strategies declare, in their order; one named twice (or like a base command) raises."""
    out: dict[str, tuple[str, str]] = {}
    for s in read_declarations():
        for name, module, help_ in s.commands:
            if name in out or name in BASE_COMMANDS:
                raise ValueError(f"strategy {s.prefix!r} declares the command {name!r}, which is already taken")
            out[name] = (module, help_)
    return out


COMMANDS: dict[str, tuple[str, str]] = {**BASE_COMMANDS, **strategy_commands()}
"""Every ``syntfer <command>``: the base commands, then the strategies' (in their order)."""


def user_errors() -> tuple[type[BaseException], ...]:
    """The exception types that mean bad input (not a bug): file-system errors about a named path,
    `ValueError` (all the project's ``*Error(ValueError)`` classes) and the project's non-ValueError classes."""
    from syntfer.core.guards import NonFiniteLossError
    from syntfer.core.images import ImageError
    from syntfer.engine.launch import LaunchError
    from syntfer.tools.notebook import NotebookError
    from syntfer.engine.training import TrainError

    return (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, FileExistsError,
            ValueError, ImageError, LaunchError, NotebookError, TrainError, NonFiniteLossError)


def error_line(command: str, error: BaseException) -> str:
    """``syntfer COMMAND: error: <message>`` on one line (a multi-line message's lines joined by ' | ')."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    text = " | ".join(lines) or type(error).__name__
    if isinstance(error, FileNotFoundError) and error.filename is not None and text.startswith("[Errno"):
        text = f"{error.filename}: file not found"  # open()'s "[Errno 2] No such file or directory: 'x'"
    elif isinstance(error, OSError) and error.filename is not None and str(error.filename) not in text:
        text = f"{error.filename}: {text}"
    return f"syntfer {command}: error: {text}"


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
    try:
        return int(module.run(args) or 0)
    except Exception as e:
        if not isinstance(e, user_errors()) or os.environ.get("SYNTFER_TRACEBACK", "") not in ("", "0"):
            raise
        print(error_line(name, e), file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
