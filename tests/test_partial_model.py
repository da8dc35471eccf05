"""A time-limited (`max_minutes`) diffusion run exports a partial model; no consumer uses it as complete.

`train_embedded` stops at its wall-time guard, checkpoints, and exports the EMA weights it has with
``finished: false`` (and fewer `steps` than its config asked for). `require_finished` refuses such a folder with
one line naming its config.json and what to do; the embedded backend (`syntfer diffusion generate`, notebook 04's
generation) and notebook 04 itself call it before sampling. A rerun of the same training resumes to the end and
the model is accepted.
"""
from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from faults import TALLY, cli, job_env, run_ok
from syntfer.strategies.diffusion import prompts as P
from syntfer.strategies.diffusion import embedded as E
from syntfer.strategies.diffusion.backends import create_backend

ROOT = Path(__file__).resolve().parents[1]
PARTIAL = r"config\.json: a partial model \(1 of 5 training steps; the max_minutes wall-time guard stopped it\); " \
          r"rerun the same training \(it resumes from its state\.pt\) to finish it, or use a finished model$"


def _captioned(folder: Path, n: int = 14) -> E.CaptionedImages:
    rng = np.random.default_rng(0)
    (folder / "images").mkdir(parents=True)
    words = ["happy", "sad", "angry", "surprised", "scared", "disgusted", "neutral"]
    rows = []
    for i in range(n):
        Image.fromarray((rng.random((20, 20, 3)) * 255).astype(np.uint8)).save(folder / "images" / f"{i}.png")
        rows.append({"path": f"images/{i}.png", "caption": f"a {words[i % 7]} old man, wearing glasses",
                     **{a: float(rng.random() * 3) for a in P.FINEFACE_AUS}})
    pd.DataFrame(rows).to_csv(folder / "captions.csv", index=False)
    return E.load_captioned(folder / "captions.csv", 16)


@pytest.fixture(scope="module")
def partial_run(tmp_path_factory):
    """A 5-step training stopped by a tiny max_minutes after its first step (work folder, data, configs)."""
    root = tmp_path_factory.mktemp("partial")
    data = _captioned(root / "web")
    cfg = E.default_config(E.build_vocab(data.captions), tiny=True)
    tc = dict(steps=5, batch_size=4, checkpoint_every=2, log_every=1)
    summary = E.train_embedded(data, cfg, E.TrainConfig(max_minutes=1e-9, **tc), root / "work")
    return root, data, cfg, tc, summary


def test_a_max_minutes_run_exports_a_model_marked_unfinished(partial_run):
    root, *_, summary = partial_run
    assert summary["steps"] == 1 and summary["finished"] is False
    meta = json.loads((root / "work" / "ema" / "config.json").read_text())
    assert meta["finished"] is False and meta["steps"] == 1 and meta["train"]["steps"] == 5


def test_the_partial_model_is_refused_by_require_finished_and_the_backend(partial_run):
    root, *_ = partial_run
    with pytest.raises(E.PartialModelError, match=PARTIAL):
        E.require_finished(root / "work" / "ema")
    for kind in ("embedded", "embedded-au"):
        with pytest.raises(E.PartialModelError, match=PARTIAL):
            create_backend(kind, str(root / "work" / "ema"), steps=2)
    TALLY["bad inputs tried"] += 3


def test_a_model_whose_steps_fall_short_is_refused_without_a_finished_flag(tmp_path, partial_run):
    """An export of an older syntfer had no `finished` key: fewer steps than its config asked for is enough."""
    root, *_ = partial_run
    folder = tmp_path / "old"
    folder.mkdir()
    for f in ("model.safetensors", "config.json"):
        (folder / f).write_bytes((root / "work" / "ema" / f).read_bytes())
    meta = json.loads((folder / "config.json").read_text())
    del meta["finished"]
    (folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(E.PartialModelError, match=PARTIAL):
        E.require_finished(folder)
    TALLY["bad inputs tried"] += 1


@pytest.mark.slow  # a subprocess that imports torch and diffusers
def test_diffusion_generate_refuses_the_partial_model_with_one_line(tmp_path, partial_run):
    root, *_ = partial_run
    prompts = tmp_path / "prompts.csv"
    run_ok(cli("prompts", "--out", prompts, "--per-emotion", "1"))
    done = subprocess.run(cli("diffusion", "generate", "--prompts", prompts, "--out", tmp_path / "gen", "--model",
                              root / "work" / "ema", "--steps", "2"),
                          env=job_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert lines[0].startswith(f"syntfer diffusion: error: {root / 'work' / 'ema' / 'config.json'}: a partial "
                               "model (1 of 5 training steps"), lines[0]
    assert not (tmp_path / "gen").exists() or not list((tmp_path / "gen").rglob("*.png"))  # nothing sampled
    TALLY["bad inputs tried"] += 1


def test_rerunning_the_training_resumes_it_to_a_finished_model(tmp_path, partial_run):
    root, data, cfg, tc, _ = partial_run
    work = tmp_path / "work"
    work.mkdir()
    for f in ("state.pt", "train_log.csv"):
        (work / f).write_bytes((root / "work" / f).read_bytes())
    summary = E.train_embedded(data, cfg, E.TrainConfig(**tc), work)
    assert summary["steps"] == 5 and summary["finished"] is True
    meta = E.require_finished(work / "ema")
    assert meta["finished"] is True and meta["steps"] == 5
    create_backend("embedded", str(work / "ema"), steps=2)  # accepted now


def test_notebook_04_checks_the_model_before_it_reads_or_samples_it():
    """The notebook's model (retrained here or `model_dir`) goes through `E.require_finished` before its config is
    read and before any generation."""
    src = (ROOT / "notebooks" / "04_diffusion.py").read_text()
    tree = ast.parse(src)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]

    def line_of(pred) -> int:
        found = [n.lineno for n in calls if pred(n)]
        assert found, "call not found in notebooks/04_diffusion.py"
        return min(found)

    check = line_of(lambda n: isinstance(n.func, ast.Attribute) and n.func.attr == "require_finished"
                    and isinstance(n.args[0], ast.Name) and n.args[0].id == "model_path")
    first_generate = line_of(lambda n: isinstance(n.func, ast.Name) and n.func.id in ("generate", "generate_launched"))
    train = line_of(lambda n: isinstance(n.func, ast.Attribute) and n.func.attr == "train_embedded")
    assert train < check < first_generate
    assert "meta = EMB.require_finished(model_path)" in src  # the config the notebook prints is the checked one


@pytest.mark.slow  # three `syntfer diffusion train` subprocesses
def test_a_kill_between_an_exports_weights_and_config_leaves_no_config_that_vouches_for_them(tmp_path):
    """A finished run's `ema/` says `finished: true`. Its work folder is trained on (`--steps` raised) under a
    wall-time guard, which exports a partial model; the SIGKILL lands after the partial weights replaced the
    finished ones and before the new config.json (`finished: false`) is renamed into place. The folder must not
    pass as finished then (the old config.json would vouch for partial weights): no config, so it is refused,
    and the rerun (resuming from the state the killed run saved at step 4) exports its partial model as partial."""
    from faults import kill_inside_rename

    _captioned(tmp_path / "web")
    work = tmp_path / "work"
    base = cli("diffusion", "train", "--captions", tmp_path / "web" / "captions.csv", "--work", work,
               "--image-size", "16", "--batch-size", "4", "--seed", "1", "--threads", "1", "--checkpoint-every", "3")
    run_ok([*base, "--steps", "3"])
    assert E.require_finished(work / "ema")["steps"] == 3
    longer = [*base, "--steps", "9", "--max-minutes", "1e-9"]  # stops (and exports) after its first step
    kill_inside_rename(longer, "config.json", 1, tmp_path / "marker")
    assert len(list((work / "ema").glob(".config.json.*.tmp"))) == 1  # the killed export's config, never renamed
    with pytest.raises((E.PartialModelError, FileNotFoundError)):
        E.require_finished(work / "ema")
    with pytest.raises(E.EmbeddedModelError, match="missing config.json"):
        create_backend("embedded", str(work / "ema"), steps=2)
    run_ok(longer)
    with pytest.raises(E.PartialModelError, match=r"\(5 of 9 training steps"):
        E.require_finished(work / "ema")
    TALLY["bad inputs tried"] += 3
