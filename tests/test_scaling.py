"""Past one machine, for real on CPU: `accelerate launch` of the diffusion generator and of the trainer, through the
same functions the notebooks call when a stage's `launcher` parameter is set (docs/real-data.md, "Scaling out").

On CPU, ``accelerate launch --cpu --num_processes 2`` starts ONE process (accelerate's simple launcher; several CPU
processes need MPI and ``--mpirun_hostfile``); ``--multi_gpu --num_processes 2`` starts two through torchrun, and on
a machine without CUDA accelerate runs them on CPU with gloo. `test_launch_cpu_flag_starts_one_process` pins that
fact down. Launched processes are fresh interpreters: accelerate's fork-based debug_launcher, run inside a pytest
process whose torch thread pools already exist, deadlocked (a forked child waits on a lock no thread will release).
"""
from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from syntfer.core import labels as L
from syntfer.strategies.diffusion import prompts as P
from syntfer.strategies.diffusion.backends import create_backend
from syntfer.strategies.diffusion.generation import BATCH_GROUPING_GREY_LEVELS, generate, generate_launched
from syntfer.engine.evaluation import compute_metrics, predict
from syntfer.engine.launch import LaunchError, command, launcher_argv, run_launched
from syntfer.engine.models.checkpoint import load_checkpoint
from syntfer.engine.training import LOG_COLUMNS, TrainConfig, train, train_launched
from imagesets import colour_set

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "diffusion" / "embedded"  # the committed checkpoint the pipeline samples
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _two_processes() -> str:
    """Two CPU processes (torchrun + gloo) on a free port: other test runs may share this machine."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return (f"accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no "
            f"--dynamo_backend no --main_process_port {port}")


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_launcher_is_resolved_next_to_this_python_and_failures_carry_the_output():
    cmd = command("accelerate launch --num_processes 2", ["train", "--help"])
    assert Path(cmd[0]).parent == Path(sys.executable).parent and cmd[1:] == [
        "launch", "--num_processes", "2", "-m", "syntfer", "train", "--help"]
    with pytest.raises(LaunchError, match="not found"):
        command("no-such-launcher-here --x", ["train"])
    with pytest.raises(LaunchError, match=r"(?s)exited with 2.*unknown command 'no-such-command'"):
        run_launched("python", ["no-such-command"], echo=False)  # `python -m syntfer no-such-command`


@pytest.mark.slow
def test_launch_cpu_flag_starts_one_process(tmp_path):
    """Why docs/real-data.md and these tests use --multi_gpu on CPU: --cpu --num_processes 2 runs the script once (the
    --multi_gpu runs below show two processes: two manifest parts, num_processes 2 in the trainer's state)."""
    script = tmp_path / "who.py"
    script.write_text("import os; print('RANK', os.environ.get('RANK', '-'))\n")
    res = subprocess.run([*launcher_argv("accelerate launch --cpu --num_processes 2"), str(script)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert [line for line in res.stdout.splitlines() if line.startswith("RANK")] == ["RANK -"]


@pytest.mark.slow
def test_two_launched_processes_write_the_images_one_process_writes(tmp_path):
    prompts = P.check_prompt_lengths(P.stratified_subset(P.prompt_grid(), 1, seed=0))  # 7 prompts, one per class
    settings = {"steps": 20, "guidance": 3.0, "batch_size": 70}  # params.yaml's diffusion.* (04_diffusion)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the launched processes run one thread each: the bytes must not depend on it
    try:
        one = generate(prompts, create_backend("embedded-au", str(MODEL), **settings), tmp_path / "one", seed=0,
                       batch_size=70, progress=False)
    finally:
        torch.set_num_threads(threads)
    two = generate_launched(prompts, "embedded-au", str(MODEL), tmp_path / "two", launcher=_two_processes(), seed=0,
                            batch_size=70, settings=settings, echo=False)
    a, b = _files(tmp_path / "one"), _files(tmp_path / "two")
    pngs = sorted(k for k in a if k.endswith(".png"))
    assert len(pngs) == len(prompts) == 7
    assert sorted(k for k in b if k.endswith(".png")) == pngs
    # every image is a function of its own seed, not of its batch: the same picture whichever process draws it, up
    # to the one batch-grouping tolerance (a CPU's batched kernels may round a batch of 4 differently from 7)
    gaps = {k: int(np.abs(np.asarray(Image.open(io.BytesIO(a[k])), dtype=int)
                          - np.asarray(Image.open(io.BytesIO(b[k])), dtype=int)).max()) for k in pngs}
    assert max(gaps.values()) <= BATCH_GROUPING_GREY_LEVELS, f"images that differ between 1 and 2 processes (max grey-level gap): {gaps}"
    print("max grey-level gap per image:", gaps)
    assert a["manifest.csv"] == b["manifest.csv"]
    assert {k for k in b if k.startswith("manifest.part-")} == {"manifest.part-000-of-002.csv",
                                                                "manifest.part-001-of-002.csv"}
    report = json.loads(b["generation.json"])
    assert (report["processes"], report["generated"], report["skipped"]) == (2, 7, 0)
    assert (two.generated, len(two.manifest)) == (7, 7)
    rel = [str(Path(p).relative_to(tmp_path / "two")) for p in two.manifest["path"]]
    assert rel == [str(Path(p).relative_to(tmp_path / "one")) for p in one.manifest["path"]]
    pd.testing.assert_frame_equal(two.manifest.drop(columns="path"), one.manifest.drop(columns="path"))


def test_train_cli_config_reproduces_a_runs_config(tmp_path, capsys):
    """`syntfer train --config <run>/config.json` is the same run (same fingerprint: it resumes the finished state)."""
    from syntfer.cli import main
    from syntfer.core.manifest import write_manifest

    frame = colour_set(tmp_path / "img", n_per_class=4)
    cfg = TrainConfig.from_recipe("fast", model="cnn_tiny", model_kwargs={"img_size": 16}, epochs=1, batch_size=8,
                                  val_fraction=0.25, progress=False, seed=5)
    train(cfg, frame, tmp_path / "run")
    write_manifest(frame, tmp_path / "train.csv")
    argv = ["train", "--config", str(tmp_path / "run" / "config.json"), "--train", str(tmp_path / "train.csv"),
            "--out", str(tmp_path / "run")]
    assert main(argv) == 0 and "best epoch 1/1" in capsys.readouterr().out
    # an override is another run: one error line on stderr, exit status 1
    assert main(argv + ["--lr", "0.5"]) == 1 and "different run" in capsys.readouterr().err
    assert main(argv + ["--recipe", "poster"]) == 1 and "contradicts" in capsys.readouterr().err


@pytest.mark.slow
def test_two_launched_processes_train_to_the_same_file_layout(tmp_path):
    frame = colour_set(tmp_path / "img", n_per_class=8)  # 42 training and 14 validation images
    cfg = TrainConfig.from_recipe("fast", model="cnn_tiny", model_kwargs={"img_size": 16}, epochs=2, batch_size=4,
                                  val_fraction=0.25, progress=False, seed=3)
    one = train(cfg, frame, tmp_path / "one")
    two = train_launched(cfg, frame, tmp_path / "two", launcher=_two_processes(), echo=False)
    layout_one = set(_files(tmp_path / "one"))
    layout_two = {k for k in _files(tmp_path / "two") if not k.startswith("launch/")}
    assert layout_two == layout_one, f"only one: {layout_one - layout_two}; only two: {layout_two - layout_one}"
    for run in ("one", "two"):
        log = pd.read_csv(tmp_path / run / "log.csv")
        assert tuple(log.columns) == LOG_COLUMNS and log["epoch"].tolist() == [1, 2]
        assert np.isfinite(log.drop(columns="epoch").to_numpy()).all()
    s1, s2 = (json.loads((tmp_path / r / "summary.json").read_text()) for r in ("one", "two"))
    assert s1.keys() == s2.keys() and s1["val_images"] == s2["val_images"] and s1["train_images"] == s2["train_images"]
    assert torch.load(tmp_path / "two" / "state.pt", weights_only=True)["fingerprint"]["num_processes"] == 2
    assert torch.load(tmp_path / "one" / "state.pt", weights_only=True)["fingerprint"]["num_processes"] == 1
    assert two.best_metrics.keys() == one.best_metrics.keys() and list(two.history.columns) == list(LOG_COLUMNS)
    assert two.config == cfg and 1 <= two.best_epoch <= 2 and two.resumed_from is None
    x = torch.zeros(1, 3, 16, 16)
    assert two.model(x).shape == one.model(x).shape == (1, L.NUM_CLASSES)
    # both processes stepped: 42 training images in batches of 4 per process are 5 steps per epoch, not 10
    assert torch.load(tmp_path / "two" / "state.pt", weights_only=True)["global_step"] == 2 * (42 // (4 * 2))
    # every validation image was scored once (gather_for_metrics drops the padding duplicates): the logged
    # validation metrics of the selected epoch are those of the saved model evaluated in one process
    split = pd.read_csv(tmp_path / "two" / "split.csv")
    val = split[split["split"] == "val"].assign(path=lambda d: [str(tmp_path / "two" / p) for p in d["path"]])
    assert len(val) == 14  # one evaluation batch: the second process is handed padding that must be dropped
    pred = predict(load_checkpoint(tmp_path / "two" / "best").eval(), val, progress=False)
    m = compute_metrics(pred.y_true, pred.y_pred)
    row = two.history.iloc[two.best_epoch - 1]
    assert m["accuracy"] == pytest.approx(row["val_acc"], abs=1e-12)
    assert m["macro_f1"] == pytest.approx(row["val_macro_f1"], abs=1e-12)
