"""scripts/gan_downstream.sh end to end on a smoke world: edits of two editors at N per class, the oracle drawn to N,
training and evaluation per seed, the summary with its ratios — and a second run that trains nothing again."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from syntfer.core import labels as L
from syntfer.sources.world import render_world
from syntfer.strategies.gan.networks import EditorConfig, Generator, save_generator

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gan_downstream.sh"
TINY = dict(image_size=16, conv_dim=4, repeat_num=1, d_conv_dim=4, d_repeat_num=2, flow_grid=4)


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    e = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
         "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **env}
    return subprocess.run(args, cwd=cwd, env=e, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_gan_downstream_script_measures_editors_against_the_oracle_and_resumes(tmp_path):
    world = tmp_path / "outputs" / "world"
    render_world(world, preset="smoke", seed=0, workers=1, domains=["ffhq", "ref_ffhq", "rafdb"], progress=False)
    for args in (["manifest", "--format", "truth", "--root", str(world / "ref_ffhq"), "--split", "train",
                  "--out", "outputs/oracles/oracle_ffhq/pool.csv"],
                 ["manifest", "--format", "rafdb", "--root", str(world / "rafdb"), "--split", "test",
                  "--out", "outputs/tests/rafdb.csv"]):
        r = _run([sys.executable, "-m", "syntfer", *args], tmp_path)
        assert r.returncode == 0, r.stderr[-2000:]
    editors = []
    for name, scale in (("still", 0.0), ("moving", 0.3)):
        g = Generator(EditorConfig(**TINY))
        torch.manual_seed(0)
        for p in g.parameters():
            p.data.add_(scale * torch.randn_like(p))
        save_generator(tmp_path / "ed" / name, g, {})
        editors.append(str(tmp_path / "ed" / name))

    r = _run(["bash", str(SCRIPT), "out", *editors], tmp_path, PER_CLASS="3", SEEDS="0")
    assert r.returncode == 0, r.stderr[-3000:]
    for name in ("still", "moving"):
        m = pd.read_csv(tmp_path / "out" / "sets" / name / "manifest.csv")
        assert m["label"].value_counts().to_dict() == {c: 3 for c in L.CLASSES}
    oracle = pd.read_csv(tmp_path / "out" / "oracle.csv")
    assert oracle["label"].value_counts().to_dict() == {c: 3 for c in L.CLASSES}  # the 4-per-class pool, drawn to 3
    s = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert sorted(zip(s["test_set"], s["editor"])) == [(t, e) for t in ("rafdb", "ref_ffhq") for e in ("moving", "still")]
    assert (s["seeds"] == 1).all() and s["ratio_mean"].equals(s["edits_mean"] / s["oracle_mean"])
    assert s[["edits_mean", "oracle_mean"]].stack().between(0, 1).all()

    evals = sorted((tmp_path / "out" / "train").glob("*/s0/eval/cross_dataset.csv"))
    assert [p.parts[-4] for p in evals] == ["moving", "oracle_ffhq", "still"]
    before = [p.stat().st_mtime_ns for p in evals]
    r = _run(["bash", str(SCRIPT), "out", *editors], tmp_path, PER_CLASS="3", SEEDS="0")
    assert r.returncode == 0 and [p.stat().st_mtime_ns for p in evals] == before  # nothing trained again

    # a ready manifest (scripts/gan_probes.py writes them) is trained as it is, under its file's name
    probe = pd.read_csv(tmp_path / "out" / "sets" / "still" / "manifest.csv")
    probe["path"] = [str(tmp_path / "out" / "sets" / "still" / p) for p in probe["path"]]
    probe.iloc[::2].to_csv(tmp_path / "probe.csv", index=False)
    r = _run(["bash", str(SCRIPT), "out", editors[0], str(tmp_path / "probe.csv")], tmp_path, PER_CLASS="3", SEEDS="0")
    assert r.returncode == 0, r.stderr[-3000:]
    assert [p.stat().st_mtime_ns for p in evals] == before and not (tmp_path / "out" / "sets" / "probe").exists()
    s = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert sorted(s["editor"].unique()) == ["probe", "still"]
    assert (tmp_path / "out" / "train" / "probe" / "s0" / "eval" / "cross_dataset.csv").is_file()
    r = _run(["bash", str(SCRIPT), "out", str(tmp_path / "absent.csv")], tmp_path, PER_CLASS="3", SEEDS="0")
    assert r.returncode == 2 and "absent.csv not found" in r.stderr

    r = _run(["bash", str(SCRIPT), "out", editors[0], editors[0]], tmp_path, PER_CLASS="3", SEEDS="0")
    assert r.returncode == 2 and "two sets would be named still" in r.stderr
    r = _run(["bash", str(SCRIPT), str(tmp_path / "elsewhere"), editors[0]], tmp_path / "ed")
    assert r.returncode == 2 and "outputs/world/ffhq/boxes.csv not found" in r.stderr
