"""`dvc repro` of the whole pipeline on a smoke-sized world, in two throwaway copies of the repository.

This is what `make repro` runs, shrunk so it fits a test: the world's `smoke` preset, one epoch, loose
closing checks. It also checks that a second `dvc repro` does nothing and that `dvc exp show` lists params
and metrics. Then a second checkout at another path, holding the first one's `dvc.lock` as its committed
lock (a fresh clone of a commit), runs `dvc repro` too: its `dvc.lock` must come out byte-identical, i.e.
every DVC-tracked output (world, sets, trainings, executed notebooks, figures, reports) has the same bytes in
both checkouts, and `git status` stays clean after the README's own command.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from faults import TALLY

ROOT = Path(__file__).resolve().parents[1]

SMOKE = {
    "world": {"preset": "smoke", "probe_epochs": 1, "min_probe_accuracy": 0.0, "min_gap": -1.0, "share_tolerance": 1.0},
    # the default grid (real, pseudo-labeled, diffusion, GAN, Mixed-SYN, hybrid sets), one epoch each
    # two seeds: the seed loop and every mean ± sd path run, at half the cost of the default three
    "train": {"epochs": 1, "seeds": [0, 1], "min_in_domain_accuracy": 0.0, "min_in_domain_balanced_accuracy": 0.0},
    "instruments": {"teacher_epochs": 1, "judge_epochs": 1, "reader_epochs": 1, "min_judge_ceiling": 0.0,
                    "max_teacher_ece": 1.0},
    # every compared set at N = 21 (3 per class): strategies, oracles, the size-matched real split
    "study": {"set_size": 21, "mixed_n_train": 2, "mixed_n_val": 1, "max_images": 20, "draws": 50},
    "pseudolabel": {"per_class": 3, "threshold": 0.0, "min_world_precision": 0.0},
    # ≥ 3 images per class: every synthetic set is trained on, and its held-out validation needs 1 per class
    "diffusion": {"per_emotion": 3, "steps": 2, "batch_size": 21, "dedup_bits": -1, "min_fidelity": 0.0},
    "gan": {"per_class": 3, "curve_faces": 1, "seam_faces": 7},
    # the two checkouts differ in their last commit: one stamp for both, so reports/ is the same bytes
    "publish": {"date": "2026-01-01", "commit": "smoke"},
}
# the data-scaling curve at smoke size: two sources (real and one strategy), one size below N each (2 per class)
SMOKE_SCALING = {"real_rafdb": {"sizes": "14", "stratify": True}, "gan_f": {"sizes": "14", "stratify": False}}


def _merge(base: dict, over: dict) -> dict:
    for k, v in over.items():
        base[k] = _merge(base.get(k, {}), v) if isinstance(v, dict) else v
    return base


def _copy_repo(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True, text=True).stdout.splitlines()
    for f in files:
        if f.startswith(("outputs/", "reports/")) or f == "dvc.lock":  # a developer's own run stays out of the copy
            continue
        src = ROOT / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)


# DVC-tracked outputs allowed to differ between two checkouts of one commit (docs/pipeline.md, "Reproducibility"). None:
# timings and absolute paths are kept out of every tracked output (syntfer.tools.notebook.make_reproducible, the
# trainer's log, relative paths in tables, caches and score keys).
MAY_DIFFER: frozenset[str] = frozenset()


def _run(args, cwd, env, timeout=1800):
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(args)} failed:\n{out.stdout[-6000:]}\n{out.stderr[-6000:]}"
    return out.stdout


def _checkout(dest: Path, env: dict) -> Path:
    """A copy of the working tree as a one-commit git repository."""
    dest.mkdir(parents=True)
    _copy_repo(dest)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params = _merge(params, SMOKE)
    params["scaling"]["sources"] = SMOKE_SCALING
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    cache = ROOT / ".cache"
    if cache.exists():  # reuse fetched assets (fer weights, plots template)
        shutil.copytree(cache, dest / ".cache")
    _run(["git", "init", "-q"], dest, env)
    _run(["git", "add", "-A"], dest, env)
    _run(["git", "commit", "-qm", "smoke"], dest, env)
    return dest


def _out_hashes(lock: Path) -> dict[str, str]:
    """{stage: out path -> md5} of a dvc.lock."""
    stages = yaml.safe_load(lock.read_text())["stages"]
    return {f"{name}: {o['path']}": o.get("md5", "") for name, st in stages.items() for o in st.get("outs", [])}


def _differing_files(a: Path, b: Path) -> list[str]:
    if a.is_file() or b.is_file():
        return [] if a.is_file() and b.is_file() and a.read_bytes() == b.read_bytes() else [str(a)]
    fa = {str(p.relative_to(a)) for p in a.rglob("*") if p.is_file()}
    fb = {str(p.relative_to(b)) for p in b.rglob("*") if p.is_file()}
    return sorted((fa ^ fb) | {f for f in fa & fb if (a / f).read_bytes() != (b / f).read_bytes()})


@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_dvc_repro_smoke(tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
           "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    repo = _checkout(tmp_path / "repo", env)
    # the second checkout is copied now, so both hold the same sources even if the tree changes meanwhile
    clone = _checkout(tmp_path / "elsewhere" / "deeper" / "clone", env)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    dvc = str(Path(sys.executable).parent / "dvc")
    _run([dvc, "repro"], repo, env)
    summary = json.loads((repo / "outputs/results/summary/metrics.json").read_text())
    assert summary["data_kind"] == "world"
    assert set(summary["eval"]) == set(params["train"]["sets"])
    assert all(set(v) == {"rafdb", "affectnet", "fer2013"} for v in summary["eval"].values())
    assert set(summary["pseudolabel"]) == {"digiface", "dcface", "emonet_face"}
    synthetic = {s for s in params["train"]["sets"] if not s.startswith(("real_", "hybrid_", "oracle_"))}
    assert set(summary["synthetic"]) == synthetic
    assert all("real_ratio" in summary["synthetic"][s] for s in synthetic)
    assert set(summary["oracle"]) == set(params["study"]["oracles"])
    assert all("oracle_ratio" in summary["synthetic"][s] for s in synthetic if s.startswith(("gan_", "diffusion_")))
    findings = (repo / "outputs/results/report/findings.csv").read_text()
    assert "synthetic vs real, equal size" in findings and "synthetic vs oracle" in findings
    assert (repo / "outputs/results/report/exchange_rates.csv").is_file()
    assert set(summary["identity_similarity"]) == {"gan_f", "gan_v"}
    assert (repo / "outputs/nb/08_report/08_report.html").is_file()
    status = _run([dvc, "status", "dvc.yaml"], repo, env)  # data.dvc's licensed data is absent, by design
    assert "up to date" in status.lower(), status
    shown = _run([dvc, "exp", "show", "--no-pager", "--json"], repo, env)
    assert '"train.model"' in shown or '"model": "cnn_tiny"' in shown, shown[:2000]
    assert "balanced_acc" in shown, shown[:2000]
    # a second repro with nothing changed runs no stage
    again = _run([dvc, "repro"], repo, env)
    assert "Running stage" not in again, again

    # a fresh clone elsewhere, whose commit holds the run above (its dvc.lock and its git-tracked outputs, the
    # published reports/): `dvc repro` there rewrites no line and leaves the work tree clean
    shutil.copy2(repo / "dvc.lock", clone / "dvc.lock")
    shutil.copytree(repo / "reports", clone / "reports")
    _run(["git", "add", "dvc.lock", "reports"], clone, env)
    _run(["git", "commit", "-qm", "the committed run's lock"], clone, env)
    _run([dvc, "repro"], clone, env)
    ha, hb = _out_hashes(repo / "dvc.lock"), _out_hashes(clone / "dvc.lock")
    assert set(ha) == set(hb)
    differ = {k for k in ha if ha[k] != hb[k]}
    unexpected = {k: _differing_files(repo / k.split(": ", 1)[1], clone / k.split(": ", 1)[1])[:8]
                  for k in sorted(differ - MAY_DIFFER)}
    assert not unexpected, f"DVC-tracked outputs that differ between two checkouts: {unexpected}"
    if not MAY_DIFFER:
        assert (clone / "dvc.lock").read_bytes() == (repo / "dvc.lock").read_bytes()
        assert _run(["git", "status", "--porcelain"], clone, env).strip() == ""
    TALLY["DVC-tracked outputs identical in two checkouts"] += len(ha) - len(differ)
