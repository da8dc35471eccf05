"""What `persist: true` would change for a killed `dvc repro` (docs/decisions/resume-under-dvc.md).

Two smoke-sized copies of the repository (tests/pipeline_copy.py), one whose `train` stage declares its run folder
`persist: true` (the copy's dvc.yaml only; the repository's is not touched), one as committed. In each:
`dvc repro train@real_rafdb` killed (SIGKILL to its process group) once seed 0 has finished and seed 1 started,
then rerun; then three changes a study goes through: `train.epochs` 1 -> 2, `train.seeds` [0, 1] -> [0], and back
to [0, 1] (DVC's run cache). Prints one JSON line per measurement. Timings are of a 1-epoch smoke run: they say what
DVC does, not how long a default-size stage takes (docs/decisions/runtime.md has those).

    PYTHONPATH=$PWD python benchmarks/bench_resume_under_dvc.py --work /tmp/resume-bench
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from pipeline_copy import DVC, checkout, out_hashes, repro_env, run  # noqa: E402

STAGE = "train@real_rafdb"
RUN_DIR = "outputs/train/real_rafdb"
NOTEBOOK = "outputs/nb/02_baseline/real_rafdb/02_baseline.ipynb"


def set_train(repo: Path, **values) -> None:
    p = yaml.safe_load((repo / "params.yaml").read_text())
    p["train"].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))


def repro(repo: Path, env: dict) -> tuple[float, subprocess.CompletedProcess]:
    t = time.monotonic()
    done = subprocess.run([DVC, "repro", STAGE], cwd=repo, env=env, capture_output=True, text=True)
    return time.monotonic() - t, done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="an empty folder for the two copies")
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    env = repro_env()
    copies = {"persist": checkout(args.work / "persist", env), "plain": checkout(args.work / "plain", env)}
    dvc_yaml = copies["persist"] / "dvc.yaml"
    text = dvc_yaml.read_text()
    old = "      outs:\n        - outputs/train/${item}\n"
    assert old in text, "dvc.yaml's train stage changed: update this script"
    new = "      outs:\n        - outputs/train/${item}:\n            persist: true\n"
    dvc_yaml.write_text(text.replace(old, new, 1))
    run(["git", "commit", "-qam", "train run folders persist"], copies["persist"], env)

    def say(**row) -> None:
        print(json.dumps(row), flush=True)

    for name, repo in copies.items():
        run([DVC, "repro", "manifests"], repo, env)  # the upstream stages first: the kill is about the stage
        probe = repo / RUN_DIR / "s1" / "train" / "config.json"  # seed 0 finished, seed 1 started
        t = time.monotonic()
        proc = subprocess.Popen([DVC, "repro", STAGE], cwd=repo, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        while not probe.exists():
            if proc.poll() is not None:
                raise SystemExit(f"{name}: dvc repro ended before seed 1 started")
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        killed_at = time.monotonic() - t
        time.sleep(2)  # a leashed kernel is gone at once; an unleashed one within ipykernel's 1 s poll
        seconds, done = repro(repo, env)
        resumed = re.findall(r"seed (\d): best epoch [^\\\"]*resumed from ([^\\\"]*)", (repo / NOTEBOOK).read_text())
        say(copy=name, what="killed once seed 0 finished, then dvc repro", killed_after_s=round(killed_at, 1),
            rerun_s=round(seconds, 1), exit=done.returncode, resumed_from=dict(resumed))
    a, b = (out_hashes(copies[n] / "dvc.lock") for n in ("persist", "plain"))
    say(what="outputs after the kill and rerun, persist vs plain",
        same={k.split(": ")[1]: a[k] == b[k] for k in a if k.startswith(STAGE)})

    set_train(copies["persist"], epochs=2)
    seconds, done = repro(copies["persist"], env)
    error = next((ln.strip() for ln in (done.stdout + done.stderr).splitlines() if ln.startswith("TrainError")), "")
    say(copy="persist", what="train.epochs 1 -> 2", exit=done.returncode, error=error[:200])
    set_train(copies["persist"], epochs=1)

    for name, repo in copies.items():
        set_train(repo, seeds=[0])
        seconds, done = repro(repo, env)
        say(copy=name, what="train.seeds [0, 1] -> [0]", exit=done.returncode, rerun_s=round(seconds, 1),
            seed_1_left_in_outputs=(repo / RUN_DIR / "s1").exists())
    a, b = (out_hashes(copies[n] / "dvc.lock") for n in ("persist", "plain"))
    say(what="outputs after seeds [0], persist vs plain",
        same={k.split(": ")[1]: a[k] == b[k] for k in a if k.startswith(STAGE)})

    for name, repo in copies.items():
        set_train(repo, seeds=[0, 1])
        seconds, done = repro(repo, env)
        say(copy=name, what="train.seeds back to [0, 1]", exit=done.returncode, rerun_s=round(seconds, 1),
            dvc_said=next((ln for ln in done.stdout.splitlines() if STAGE in ln), ""))


if __name__ == "__main__":
    main()
