"""Run a `syntfer` subcommand under an external launcher, e.g. ``accelerate launch --multi_gpu --num_processes 4``.

The trainer (`syntfer.engine.training`) and the diffusion generator (`syntfer.strategies.diffusion.generation`) are written for HF
accelerate: under ``accelerate launch`` each process trains on its part of every batch (data parallel), or
generates its shard of the images. A notebook cannot itself be launched on several processes, so a stage whose
``launcher`` parameter is set (``train.launcher``, ``diffusion.launcher`` in params.yaml) hands that one step to
``<launcher> -m syntfer <subcommand> …`` and reads the result back from disk (docs/real-data.md, "Scaling out").
"""
from __future__ import annotations

import collections
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path


class LaunchError(RuntimeError):
    """A launcher that cannot be started, or a launched command that failed (its last output lines included)."""


def launcher_argv(launcher: str) -> list[str]:
    """The launcher's words, its program resolved in this environment first (``.venv/bin/accelerate``).

    A Jupyter kernel or DVC may run with a PATH that lacks the environment's ``bin``; the launcher must be the one
    installed next to this Python, which also runs the launched ``python -m syntfer``.
    """
    words = shlex.split(launcher)
    if not words:
        raise LaunchError("empty launcher")
    here = str(Path(sys.executable).parent)
    program = shutil.which(words[0], path=here + os.pathsep + os.environ.get("PATH", ""))
    if program is None:
        raise LaunchError(f"launcher {words[0]!r} not found in {here} or on PATH (launcher: {launcher!r})")
    return [program, *words[1:]]


def command(launcher: str, argv: list[str]) -> list[str]:
    """``<launcher> -m syntfer <argv>`` (the ``-m`` form that ``accelerate launch`` and ``torchrun`` accept)."""
    return [*launcher_argv(launcher), "-m", "syntfer", *argv]


def run_launched(launcher: str, argv: list[str], *, env: dict[str, str] | None = None, echo: bool = True,
                 keep_lines: int = 60) -> str:
    """Run ``syntfer <argv>`` under `launcher`; returns its output (stdout and stderr, merged).

    With `echo`, the command and then each output line as it arrives are printed (a notebook cell or stage log
    shows them: across machines, the other nodes run this same command with their own ``--machine_rank``).
    Raises LaunchError with the command and the last `keep_lines` lines when it exits non-zero.
    """
    cmd = command(launcher, argv)
    if echo:
        print("$ " + shlex.join(cmd), flush=True)
    lines: list[str] = []
    tail: collections.deque[str] = collections.deque(maxlen=keep_lines)
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env={**os.environ, **(env or {})}) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            tail.append(line)
            if echo:
                print(line, end="", flush=True)
    if proc.returncode != 0:
        raise LaunchError(f"`{shlex.join(cmd)}` exited with {proc.returncode}; its last lines:\n{''.join(tail)}")
    return "".join(lines)
