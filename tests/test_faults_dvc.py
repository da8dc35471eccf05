"""`dvc repro` killed mid-stage, and what a killed stage leaves running.

`dvc repro` runs a notebook stage as ``dvc → syntfer notebook → Jupyter kernel``, and the kernel may start
processes of its own (a ``train.launcher`` trainer). The test that kills `dvc repro` does what a CI timeout or
``kill -9 -- -PGID`` does: SIGKILL to the process group of `dvc repro`, at a seeded point while a chosen stage
runs (tests/faults.py, `kill_between_checkpoints`, counting the files the stage has written). Nothing that
descended from it may survive (the kernel runs in a session of its own: tests/faults.py `assert_tree_gone`).
Then `dvc repro` again: the stages that finished before the kill are not rerun, the killed one is rerun from
scratch (DVC deletes a stage's outputs before it runs it), and `dvc.lock` and every output come out
byte-identical to an uninterrupted run's in a second copy of the repository (docs/decisions/resume-under-dvc.md).
"""
from __future__ import annotations

import random
import subprocess
import tempfile
import textwrap
import time

import pytest

from faults import TALLY, FilesPresent, cli, job_env, kill_between_checkpoints, killed_group
from pipeline_copy import DVC, checkout, differing_files, out_hashes, repro_env, run

pytestmark = pytest.mark.slow


# --------------------------------------------------------------------------- the notebook runner alone
SLEEPER = textwrap.dedent('''\
    # %% tags=["parameters"]
    marker = "started"

    # %%
    import pathlib, subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    pathlib.Path(marker).write_text(str(child.pid))
    time.sleep(300)
    ''')


def test_a_killed_notebook_runner_takes_its_kernel_and_what_the_kernel_started_with_it(tmp_path):
    """SIGKILL to `syntfer notebook`'s process group while its kernel runs a cell that started a process: the
    kernel (a session of its own) and that process (the kernel's group) end with it, within seconds; before the
    leash (syntfer.tools.notebook.leashed) the kernel lived on up to a second and the process it started for good."""
    nb = tmp_path / "sleeper.py"
    nb.write_text(SLEEPER)
    marker = tmp_path / "started"
    log = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(cli("notebook", nb, "--out", tmp_path / "out", "--no-html", "-p", "marker", marker),
                            cwd=tmp_path, env=job_env(), stdout=log, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    t0 = time.monotonic()
    with killed_group(proc, log, "faults injected (SIGKILL of a notebook stage)"):
        while not marker.exists():
            assert proc.poll() is None, "the notebook ended before its cell started a process"
            assert time.monotonic() - t0 < 120, "the notebook's cell did not start within 120 s"
            time.sleep(0.05)
    # killed_group checked that the runner, the kernel and the kernel's child are gone (tests/faults.py)
    grandchild = int(marker.read_text())
    assert not _alive(grandchild), f"the process the kernel started ({grandchild}) outlived the kill"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][0] != "Z"
    except OSError:
        return False


# --------------------------------------------------------------------------- dvc repro killed mid-stage
# the stage killed, the folder whose files count its progress, and the range the seeded kill point is drawn from
# (the smoke run writes 27 files there: seed 0's run folder, then seed 1's, then the tables and figures)
KILLED_STAGES = {"train@real_rafdb": ("outputs/train/real_rafdb", (4, 16))}


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("stage", sorted(KILLED_STAGES))
def test_dvc_repro_killed_mid_stage_reruns_that_stage_to_an_uninterrupted_runs_lock_and_outputs(tmp_path, stage):
    """`dvc repro <stage>` (with its upstream stages) in a fresh smoke copy, SIGKILLed while the stage runs, then
    rerun; an uninterrupted `dvc repro <stage>` in a second copy at another path is the reference."""
    env = repro_env()
    killed = checkout(tmp_path / "killed", env)
    clean = checkout(tmp_path / "elsewhere" / "clean", env)  # copied now: both hold the same sources
    folder, span = KILLED_STAGES[stage]
    rng = random.Random(stage)
    t0 = time.monotonic()
    where = kill_between_checkpoints([DVC, "repro", stage], FilesPresent(killed / folder), after=rng.randint(*span),
                                     seed=rng.randrange(2**31), cwd=killed, env=env, timeout=900)
    killed_at = time.monotonic() - t0
    # the stages that finished before the kill are recorded; the killed one is not
    done_before = set(out_hashes(killed / "dvc.lock")) if (killed / "dvc.lock").exists() else set()
    assert done_before and not any(k.startswith(f"{stage}: ") for k in done_before), sorted(done_before)

    t1 = time.monotonic()
    again = run([DVC, "repro", stage], killed, env)
    resumed_s = time.monotonic() - t1
    ran = [line.split("'")[1] for line in again.splitlines() if line.startswith("Running stage '")]
    assert ran == [stage], f"after the kill, dvc repro ran {ran}; expected only the killed stage\n{again[-3000:]}"

    t2 = time.monotonic()
    run([DVC, "repro", stage], clean, env)
    clean_s = time.monotonic() - t2
    differ = differing_files(clean / "outputs", killed / "outputs")
    assert not differ, f"outputs that differ from an uninterrupted run's: {differ[:10]}"
    lock, clean_lock = killed / "dvc.lock", clean / "dvc.lock"
    assert lock.read_bytes() == clean_lock.read_bytes(), (
        "dvc.lock differs from an uninterrupted run's: "
        f"{set(out_hashes(lock).items()) ^ set(out_hashes(clean_lock).items())}")
    assert "up to date" in run([DVC, "status", stage], killed, env).lower()
    print(f"\n{stage}: killed {killed_at:.1f} s into `dvc repro` ({where}); the rerun took {resumed_s:.1f} s, an "
          f"uninterrupted `dvc repro {stage}` {clean_s:.1f} s")
    TALLY["dvc.lock byte-identical after a killed dvc repro"] += 1
