"""A smoke-sized copy of the repository for tests that run `dvc repro` (tests/test_repro.py, tests/test_faults_dvc.py).

`checkout(dest)` copies the working tree (tracked and untracked-but-not-ignored files; a developer's own
`outputs/`, `reports/` and `dvc.lock` stay out) into a one-commit git repository whose params.yaml is the
`SMOKE` study: the world's `smoke` preset, one epoch, loose closing checks. `repro_env()` is the environment the
pipeline's commands see there: the project's interpreter first on PATH (`dvc` and `syntfer` by name), offline
hubs, and a fixed PYTHONHASHSEED — DVC runs stages that do not depend on each other in an order that follows
Python's string hashing, and writes `dvc.lock` entries in the order stages first ran, so two runs under other hash
seeds write the same entries in another order (`make` exports PYTHONHASHSEED=0 for the same reason).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DVC = str(Path(sys.executable).parent / "dvc")

SMOKE = {
    "world": {"preset": "smoke", "probe_epochs": 1, "min_probe_accuracy": 0.0, "min_gap": -1.0, "share_tolerance": 1.0},
    # the default grid (real, pseudo-labeled, diffusion, GAN, Mixed-SYN, hybrid sets), one epoch each
    # two seeds: the seed loop and every mean ± sd path run, at half the cost of the default three
    "train": {"epochs": 1, "seeds": [0, 1], "min_in_domain_accuracy": 0.0, "min_in_domain_balanced_accuracy": 0.0},
    "instruments": {"teacher_epochs": 1, "judge_epochs": 1, "reader_epochs": 1, "min_judge_ceiling": 0.0,
                    "max_teacher_ece": 1.0},
    # every compared set at N = 21 (3 per class): strategies, oracles, the size-matched real split
    "study": {"set_size": 21, "mixed_n_train": 2, "mixed_n_val": 1, "max_images": 20, "draws": 50,
              "min_set_fidelity": 0.0},
    "pseudolabel": {"per_class": 3, "threshold": 0.0, "min_world_precision": 0.0},
    # ≥ 3 images per class: every synthetic set is trained on, and its held-out validation needs 1 per class
    "diffusion": {"per_emotion": 3, "steps": 2, "batch_size": 21, "dedup_bits": -1, "min_fidelity": 0.0},
    # the GAN edits read by a one-epoch judge; a one-epoch judge reads its own sets near chance
    "gan": {"per_class": 3, "curve_faces": 1, "seam_faces": 7, "min_fidelity_over_ceiling": 0.0, "min_identity": 0.0},
    # the two checkouts differ in their last commit: one stamp for both, so reports/ is the same bytes
    "publish": {"date": "2026-01-01", "commit": "smoke"},
}
# the data-scaling curve at smoke size: two sources (real and one strategy), one size below N each (2 per class)
SMOKE_SCALING = {"real_rafdb": {"sizes": "14", "stratify": True}, "gan_f": {"sizes": "14", "stratify": False}}


def repro_env() -> dict[str, str]:
    """What `dvc repro` and the stages' commands run with in a copy (module docstring)."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE", "PYTHONHASHSEED": "0",
            "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def merge(base: dict, over: dict) -> dict:
    """`over` merged into `base` (nested dicts key by key); returns `base`."""
    for k, v in over.items():
        base[k] = merge(base.get(k, {}), v) if isinstance(v, dict) else v
    return base


def copy_repo(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True, text=True).stdout.splitlines()
    for f in files:
        if f.startswith(("outputs/", "reports/")) or f == "dvc.lock":  # a developer's own run stays out of the copy
            continue
        src = ROOT / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)


def run(args, cwd, env, timeout=1800) -> str:
    """Run a command to the end; its stdout, or a failure with the output's tail."""
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(args)} failed:\n{out.stdout[-6000:]}\n{out.stderr[-6000:]}"
    return out.stdout


def checkout(dest: Path, env: dict | None = None, params: dict | None = None) -> Path:
    """A copy of the working tree as a one-commit git repository, its params.yaml the `SMOKE` study (and
    `params` merged over it)."""
    env = env or repro_env()
    dest.mkdir(parents=True)
    copy_repo(dest)
    values = yaml.safe_load((dest / "params.yaml").read_text())
    values = merge(values, SMOKE)
    values["scaling"]["sources"] = SMOKE_SCALING
    values = merge(values, params or {})
    (dest / "params.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
    cache = ROOT / ".cache"
    if cache.exists():  # reuse fetched assets (fer weights, plots template)
        shutil.copytree(cache, dest / ".cache")
    run(["git", "init", "-q"], dest, env)
    run(["git", "add", "-A"], dest, env)
    run(["git", "commit", "-qm", "smoke"], dest, env)
    return dest


def out_hashes(lock: Path) -> dict[str, str]:
    """{stage: out path -> md5} of a dvc.lock."""
    stages = yaml.safe_load(lock.read_text())["stages"]
    return {f"{name}: {o['path']}": o.get("md5", "") for name, st in stages.items() for o in st.get("outs", [])}


def differing_files(a: Path, b: Path) -> list[str]:
    """Files (relative paths) that are in one tree only or differ in bytes; a file compared with a file."""
    if a.is_file() or b.is_file():
        return [] if a.is_file() and b.is_file() and a.read_bytes() == b.read_bytes() else [str(a)]
    fa = {str(p.relative_to(a)) for p in a.rglob("*") if p.is_file()}
    fb = {str(p.relative_to(b)) for p in b.rglob("*") if p.is_file()}
    return sorted((fa ^ fb) | {f for f in fa & fb if (a / f).read_bytes() != (b / f).read_bytes()})
