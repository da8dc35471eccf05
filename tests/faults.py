"""Fault injection for the long jobs: a real SIGKILL of a `syntfer` CLI subprocess between checkpoints,
a resume, and a file-by-file comparison with an uninterrupted run (used by tests/test_faults.py).

How a fault is placed: the job runs as a subprocess; a poller counts its progress (writes of a checkpoint
file, or files appearing in an output folder); once the count reaches a seeded random `after`, it waits a
seeded random fraction of the last progress interval and sends SIGKILL — so the kill lands between two
checkpoints, at a point no code in the job chooses. If the job had already exited, the fault was not
injected and the test fails (`FaultNotInjected`) rather than comparing two clean runs.

How outputs are compared: the uninterrupted run is made in the same folder the faulted run then uses (it is
moved aside), so files that record their own paths compare equal. Every file must exist in both trees (a
stray temporary file left by the kill is a difference); a differing `.pt`, CSV or JSON file is compared
structurally (every tensor with `torch.equal`, every other value with `==`) so the failure names the key,
column or tensor (weights, EMA weights, optimiser moments, RNG states); timing columns/keys listed
as volatile are dropped first (only those files may differ in bytes); every other file must be byte-identical.

Two more placements: `crash_several_times_and_resume` kills one job at several seeded points (each resumed run
killed again after a seeded number of its own checkpoints); `kill_inside_rename` arms a test-only hook in
`syntfer.core.storage.atomic_path` (environment variable `SYNTFER_FAULT_RENAME_PAUSE`, set by nothing but this
harness) that pauses the k-th atomic write of a named file after its temporary is complete and before the
rename, and kills the job there — the one instant a random kill almost never hits.

Images drawn in other batches (a resumed diffusion generation or GAN edit set regroups what is left) may differ
by `syntfer.strategies.diffusion.generation.BATCH_GROUPING_GREY_LEVELS`: `assert_same_outputs(grey_levels=...)`,
nothing else.

`TALLY` counts faults injected, resumes compared and bad inputs tried; tests/conftest.py prints it after a
run (the README's Reliability figures).
"""
from __future__ import annotations

import collections
import contextlib
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from syntfer.core import labels as L

ROOT = Path(__file__).resolve().parents[1]
TALLY: collections.Counter = collections.Counter()


class FaultNotInjected(AssertionError):
    """The job finished (or failed) before the planned kill: nothing was interrupted."""


def cli(*args: object) -> list[str]:
    """The `syntfer` command line run by the project's interpreter."""
    return [sys.executable, "-m", "syntfer", *map(str, args)]


def job_env() -> dict[str, str]:
    """One thread, offline hubs, fixed hash seed: what a CPU job in CI sees."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE",
            "PYTHONHASHSEED": "0", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DVC_NO_ANALYTICS": "1",
            "PYTHONPATH": str(ROOT)}


def run_ok(args: Sequence[str], *, cwd: Path | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run a command to the end; fail with its output tail when it does not exit 0."""
    done = subprocess.run(list(args), cwd=cwd, env=job_env(), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (f"{' '.join(map(str, args))} exited {done.returncode}:\n"
                                  f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done


# --------------------------------------------------------------------------- tiny inputs
def colour_set(folder, n_per_class: int = 10, size: int = 20, seed: int = 0) -> pd.DataFrame:
    """Learnable images: each class its own mean colour plus noise, as PNG files; a manifest frame."""
    rng = np.random.default_rng(seed)
    rows = []
    for k, c in enumerate(L.CLASSES):
        (folder / c).mkdir(parents=True, exist_ok=True)
        colour = np.array([(k * 37) % 256, (k * 91) % 256, (k * 53) % 256])
        for i in range(n_per_class):
            a = np.clip(colour + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
            p = folder / c / f"{i}.png"
            Image.fromarray(a).save(p)
            rows.append({"path": str(p), "label": c, "split": "train"})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- progress probes
class FileWrites:
    """Counts writes of one file (atomic replacements change its inode; in-place writes its mtime/size)."""

    def __init__(self, path: Path):
        self.path, self.last, self.n = Path(path), None, 0

    def __call__(self) -> int:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return self.n
        sig = (st.st_ino, st.st_mtime_ns, st.st_size)
        if sig != self.last:
            self.last, self.n = sig, self.n + 1
        return self.n


class FilesPresent:
    """Counts files below a folder whose name matches a glob pattern (temporary files excluded)."""

    def __init__(self, folder: Path, pattern: str = "*"):
        self.folder, self.pattern = Path(folder), pattern

    def __call__(self) -> int:
        if not self.folder.exists():
            return 0
        return sum(1 for p in self.folder.rglob(self.pattern) if p.is_file() and not p.name.endswith(".tmp"))


# --------------------------------------------------------------------------- the fault
@contextlib.contextmanager
def killed_group(proc: subprocess.Popen, log, tally: str):
    """The body waits for the kill point; leaving it SIGKILLs the job's process group. On any exit the job is
    stopped and `log` closed; after a kill, the job must have ended by SIGKILL with nothing of its group left, nor
    any process that descended from it at the kill, nor any member of their process groups (`assert_tree_gone`:
    a Jupyter kernel runs in a session of its own), and `tally` counts it."""
    tree: list[tuple[int, int]] = []
    try:
        yield
        tree = descendants(proc.pid)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    assert proc.returncode == -signal.SIGKILL, f"job ended with {proc.returncode}, not by SIGKILL"
    assert_group_gone(proc.pid)
    assert_tree_gone(tree)
    TALLY[tally] += 1


def kill_between_checkpoints(args: Sequence[str], progress: Callable[[], int], *, after: int, seed: int,
                             cwd: Path | None = None, timeout: float = 600, poll_s: float = 0.003,
                             env: Mapping[str, str] | None = None) -> dict:
    """Run `args` (in `job_env()`, `env` over it); when `progress()` reaches `after`, wait a seeded random
    fraction (5-95 %) of the last progress interval, then SIGKILL the process group. Returns where it was killed
    (progress count, seconds)."""
    if after < 2:
        raise ValueError("after must be >= 2: the delay is a fraction of the interval between two progress steps")
    frac = random.Random(seed).uniform(0.05, 0.95)
    log = tempfile.TemporaryFile("w+")  # not a pipe: a job that fills a pipe nobody reads would block
    # its own process group (session): the kill reaches the job's workers too (the world render's pool, loader
    # workers), and `assert_group_gone` checks that nothing of it survives
    proc = subprocess.Popen(list(args), cwd=cwd, env={**job_env(), **(env or {})}, stdout=log,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    t0 = time.monotonic()
    times: dict[int, float] = {}
    count = 0
    with killed_group(proc, log, "faults injected (SIGKILL)"):
        while count < after:
            if proc.poll() is not None:
                log.seek(0)
                out = log.read()
                raise FaultNotInjected(f"{' '.join(map(str, args))} exited {proc.returncode} after {count} of "
                                       f"{after} progress steps; no fault injected:\n{out[-3000:]}")
            if time.monotonic() - t0 > timeout:
                raise TimeoutError(f"no progress step {after} within {timeout} s (at {count})")
            c = progress()
            if c > count:
                now = time.monotonic()
                for k in range(count + 1, c + 1):
                    times[k] = now
                count = c
            else:
                time.sleep(poll_s)
        interval = times[after] - times.get(after - 1, times[after])
        delay = frac * interval
        time.sleep(delay)
        if proc.poll() is not None:
            raise FaultNotInjected(f"{' '.join(map(str, args))} exited {proc.returncode} before the kill "
                                   f"({delay:.3f} s after progress step {after})")
    return {"after": after, "delay_s": round(delay, 4), "progress_now": progress(), "seconds": time.monotonic() - t0}


def _processes() -> dict[int, tuple[str, int, int]]:
    """{pid: (state, parent pid, process group)} of every process (Linux /proc)."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp ...
        out[int(d.name)] = (fields[0], int(fields[1]), int(fields[2]))
    return out


def group_members(pgid: int) -> list[tuple[int, str]]:
    """(pid, state) of the live (not zombie) processes whose process group is `pgid` (Linux /proc)."""
    return [(pid, st) for pid, (st, _, pg) in _processes().items() if pg == pgid and st != "Z"]


def descendants(pid: int) -> list[tuple[int, int]]:
    """(pid, process group) of every live process below `pid` (children, their children, ...), whatever their
    session: the process tree at one instant (Linux /proc; empty elsewhere)."""
    if not Path("/proc/self/stat").exists():
        return []
    procs = _processes()
    children: dict[int, list[int]] = collections.defaultdict(list)
    for p, (st, ppid, _) in procs.items():
        if st != "Z":
            children[ppid].append(p)
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append((c, procs[c][2]))
            todo.append(c)
    return out


def assert_group_gone(pgid: int, timeout: float = 10.0) -> None:
    """Nothing of the killed job's process group is left running (a worker that outlived its parent would
    keep writing into the folder the resume uses)."""
    if not Path("/proc/self/stat").exists():
        return
    t0 = time.monotonic()
    while (left := group_members(pgid)) and time.monotonic() - t0 < timeout:
        time.sleep(0.05)
    assert not left, f"processes of the killed job's group {pgid} survived the SIGKILL: {left}"
    TALLY["process groups checked empty after a kill"] += 1


def assert_tree_gone(tree: Sequence[tuple[int, int]], timeout: float = 10.0) -> None:
    """No process of `tree` (`descendants` just before the kill) is alive, and no process is left in any of their
    process groups (which also holds what they started after that instant). A process that runs in a group or
    session of its own (a Jupyter kernel, what a kernel launched) is not reached by the kill of the job's group:
    it must end because its parent did."""
    if not tree:
        return
    pids, groups = {p for p, _ in tree}, {g for _, g in tree}
    t0 = time.monotonic()
    while True:
        left = sorted((p, pg) for p, (st, _, pg) in _processes().items() if st != "Z" and (p in pids or pg in groups))
        if not left or time.monotonic() - t0 > timeout:
            break
        time.sleep(0.05)
    assert not left, (f"processes that descended from the killed job (or share a process group with one) survived "
                      f"the SIGKILL by {timeout:.0f} s: {[(p, g, _cmdline(p)) for p, g in left]}")
    TALLY["process trees checked empty after a kill"] += 1


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:160]
    except OSError:
        return "?"


def crash_and_resume(args: Sequence[str], work: Path, reference: Path, progress: Callable[[], int], *,
                     after: int, seed: int, cwd: Path | None = None, timeout: float = 900,
                     resume_args: Sequence[str] | None = None) -> dict:
    """The whole protocol: an uninterrupted run into `work`, moved to `reference`; then a run into `work`
    killed between checkpoints, and the same command again (or `resume_args`) to finish it."""
    if reference.exists() or work.exists():
        raise FileExistsError(f"{work} / {reference}: start from an empty place")
    run_ok(args, cwd=cwd, timeout=timeout)
    shutil.move(str(work), str(reference))
    where = kill_between_checkpoints(args, progress, after=after, seed=seed, cwd=cwd, timeout=timeout)
    assert work.exists(), f"{work}: the killed job wrote nothing"
    run_ok(resume_args or args, cwd=cwd, timeout=timeout)
    return where


def crash_several_times_and_resume(args: Sequence[str], work: Path, reference: Path,
                                   progress: Callable[[], Callable[[], int]], *, kills: int, seed: int,
                                   span: tuple[int, int] = (3, 5), cwd: Path | None = None,
                                   timeout: float = 900) -> list[dict]:
    """`crash_and_resume` with `kills` faults in one job: an uninterrupted run into `work`, moved to `reference`;
    then the job is killed, resumed and killed again `kills` times, each kill after a number of progress steps
    drawn from ``random.Random(seed)`` within `span` (inclusive) and at a seeded fraction of that interval; a
    last run finishes it. `progress` makes a fresh probe per run (a probe of an existing checkpoint counts it as
    its step 1, so a resumed run's kill lands between two checkpoints it wrote itself when span[0] >= 3)."""
    if span[0] < 3:
        raise ValueError("span[0] must be >= 3: a resumed run's first progress step is the checkpoint it found")
    if reference.exists() or work.exists():
        raise FileExistsError(f"{work} / {reference}: start from an empty place")
    rng = random.Random(seed)
    run_ok(args, cwd=cwd, timeout=timeout)
    shutil.move(str(work), str(reference))
    where = []
    for _ in range(kills):
        where.append(kill_between_checkpoints(args, progress(), after=rng.randint(*span), seed=rng.randrange(2**31),
                                              cwd=cwd, timeout=timeout))
        assert work.exists(), f"{work}: the killed job wrote nothing"
    run_ok(args, cwd=cwd, timeout=timeout)
    TALLY["jobs killed at several seeded points"] += 1
    return where


RENAME_PAUSE = "SYNTFER_FAULT_RENAME_PAUSE"  # read by syntfer.core.storage._fault_pause_before_rename (test-only hook)


def kill_inside_rename(args: Sequence[str], name: str, k: int, marker: Path, *, cwd: Path | None = None,
                       timeout: float = 600) -> None:
    """Run `args` with the storage fault hook armed: the k-th atomic write of a file named `name` (``*``: of any
    file) writes its temporary completely, touches `marker` and pauses before its rename; the job's process group
    is SIGKILLed there. So the kill lands between the write and the rename, which a random kill almost never hits."""
    log = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(list(args), cwd=cwd, env={**job_env(), RENAME_PAUSE: f"{name}:{k}:{marker}"},
                            stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    t0 = time.monotonic()
    with killed_group(proc, log, "faults injected (SIGKILL between a checkpoint's write and rename)"):
        while not marker.exists():
            if proc.poll() is not None:
                log.seek(0)
                raise FaultNotInjected(f"{' '.join(map(str, args))} exited {proc.returncode} before write {k} of "
                                       f"{name}; no fault injected:\n{log.read()[-3000:]}")
            if time.monotonic() - t0 > timeout:
                raise TimeoutError(f"write {k} of {name} did not happen within {timeout} s")
            time.sleep(0.003)


# --------------------------------------------------------------------------- comparison
def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink())


def _drop_keys(obj, keys: Sequence[str]):
    """A copy of a nested dict without the dotted `keys` ('a.b' drops obj['a']['b'])."""
    if not isinstance(obj, Mapping):
        return obj
    out = dict(obj)
    for k in keys:
        head, _, rest = k.partition(".")
        if head in out:
            if rest:
                out[head] = _drop_keys(out[head], [rest])
            else:
                del out[head]
    return out


def assert_same_value(a, b, where: str) -> None:
    """Recursive equality: tensors by dtype, shape and `torch.equal`; floats exactly (NaN equals NaN)."""
    import torch

    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        assert isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor), f"{where}: tensor vs {type(b)}"
        assert a.dtype == b.dtype and a.shape == b.shape, (
            f"{where}: {a.dtype}{tuple(a.shape)} vs {b.dtype}{tuple(b.shape)}")
        assert torch.equal(a, b) or (a.is_floating_point() and torch.equal(a.isnan(), b.isnan())
                                     and torch.equal(a.nan_to_num(), b.nan_to_num())), (
            f"{where}: tensors differ (max |diff| {(a.double() - b.double()).abs().max().item():.3g})")
    elif isinstance(a, Mapping):
        assert isinstance(b, Mapping) and set(a) == set(b), (
            f"{where}: keys differ: {sorted(map(str, set(a) ^ set(b if isinstance(b, Mapping) else {})))}")
        for k in a:
            assert_same_value(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{where}: lengths {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_value(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _load(file: Path):
    if file.suffix == ".pt":
        import torch

        return torch.load(file, map_location="cpu", weights_only=True)
    if file.suffix == ".json":
        return json.loads(file.read_text())
    if file.suffix == ".csv":
        return pd.read_csv(file, keep_default_na=False)
    return None


def assert_same_outputs(reference: Path, got: Path, *, volatile: Mapping[str, Sequence[str]] | None = None,
                        ignore: Sequence[str] = (), grey_levels: int = 0) -> int:
    """Every file of `reference` in `got` and nothing else; contents equal (see module docstring).

    `volatile` maps a file name (relative path or bare name; a trailing '*' matches a prefix) to the timing
    columns (CSV) or dotted keys (JSON, .pt) that may differ. `ignore`: file names not compared at all.
    `grey_levels`: a differing PNG may differ by at most this many 8-bit levels per pixel and channel (same size
    and mode); only a job that regroups batches on resume (diffusion sampling, GAN edits) passes one, and then
    `syntfer.strategies.diffusion.generation.BATCH_GROUPING_GREY_LEVELS`. Returns the number of files compared."""
    volatile = dict(volatile or {})
    ra, rb = _files(reference), _files(got)
    ra = [f for f in ra if Path(f).name not in ignore]
    rb = [f for f in rb if Path(f).name not in ignore]
    assert ra == rb, (f"file lists differ: only in the uninterrupted run {sorted(set(ra) - set(rb))[:10]}, "
                      f"only in the resumed run {sorted(set(rb) - set(ra))[:10]}")

    def drops(rel: str) -> Sequence[str] | None:
        for k, v in volatile.items():
            name = Path(rel).name
            if k in (rel, name) or (k.endswith("*") and (rel.startswith(k[:-1]) or name.startswith(k[:-1]))):
                return v
        return None

    for rel in ra:
        fa, fb = reference / rel, got / rel
        if fa.read_bytes() == fb.read_bytes():
            continue
        keys = drops(rel)
        if fa.suffix == ".png" and grey_levels:
            ia, ib = Image.open(fa), Image.open(fb)
            assert (ia.size, ia.mode) == (ib.size, ib.mode), f"{rel}: {ia.size} {ia.mode} vs {ib.size} {ib.mode}"
            gap = int(np.abs(np.asarray(ia, dtype=int) - np.asarray(ib, dtype=int)).max())
            assert gap <= grey_levels, f"{rel}: pixels differ by {gap} grey levels (allowed {grey_levels})"
            TALLY["images within the batch-grouping tolerance, not byte-identical"] += 1
            continue
        if fa.suffix in (".pt", ".csv", ".json"):  # name the first differing key / column / tensor
            a, b = _load(fa), _load(fb)
            if isinstance(a, pd.DataFrame):
                cols = [c for c in (keys or ()) if c in a.columns]
                pd.testing.assert_frame_equal(a.drop(columns=cols), b.drop(columns=cols), check_exact=True,
                                              obj=rel)
            else:
                assert_same_value(_drop_keys(a, keys or ()), _drop_keys(b, keys or ()), rel)
        if keys is None:
            raise AssertionError(f"{rel}: bytes differ between the uninterrupted and the resumed run")
    TALLY["resumes compared byte for byte"] += 1
    TALLY["output files compared"] += len(ra)
    return len(ra)
