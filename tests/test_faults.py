"""Crash-resume of every long job through its CLI: SIGKILL between checkpoints, resume, compare byte for byte.

Each test runs a tiny job three times as `syntfer …` subprocesses (tests/faults.py): uninterrupted, killed at
a seeded random point between two checkpoints, and resumed. The resumed run's files must equal the
uninterrupted run's — weights, EMA weights and optimiser state tensor by tensor, logs less their timing
columns, manifests and images byte for byte, and no file left over by the kill. The jobs are small configs of
the real CLIs, so another architecture behind the same CLI is tested the same way.
"""
from __future__ import annotations

import json

import pandas as pd
import pytest

from faults import FilesPresent, FileWrites, assert_same_outputs, cli, colour_set, crash_and_resume, run_ok
from syntfer.strategies.diffusion.generation import BATCH_GROUPING_GREY_LEVELS
from syntfer.core.manifest import write_manifest

pytestmark = pytest.mark.slow



@pytest.fixture(scope="module")
def colour_manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("colours")
    return write_manifest(colour_set(root / "images"), root / "manifest.csv")


# --------------------------------------------------------------------------- the trainer
TRAIN_PATHS = {
    # the default recipe: batched augmentation on cached images, AdamW, cosine; dropout on
    "fast": ["--recipe", "fast", "--model-kwargs", '{"img_size": 16, "drop_rate": 0.3}'],
    # the paper recipes' path: per-image torchvision augmentation, SAM around Adam, exponential decay, plus the
    # class-balanced sampler and two loader worker processes
    "upstream_ir50+balanced+workers": ["--recipe", "upstream_ir50", "--lr", "1e-3", "--balanced", "--num-workers", "2",
                                       "--model-kwargs", '{"img_size": 16, "drop_rate": 0.3}'],
}


@pytest.mark.parametrize("path", sorted(TRAIN_PATHS))
def test_trainer_killed_between_checkpoints_resumes_bit_identically(tmp_path, colour_manifest, path):
    out = tmp_path / "run"
    args = cli("train", "--train", colour_manifest, "--out", out, "--model", "cnn_tiny", "--epochs", "3",
               "--batch-size", "8", "--val-fraction", "0.2", "--checkpoint-every", "2", "--seed", "5", "--no-progress",
               *TRAIN_PATHS[path])
    where = crash_and_resume(args, out, tmp_path / "reference", FileWrites(out / "state.pt"), after=3 + len(path) % 4,
                             seed=len(path))
    assert_same_outputs(tmp_path / "reference", out)  # the trainer's files hold no timings: every byte equal
    log = pd.read_csv(out / "log.csv")
    assert log["epoch"].tolist() == [1, 2, 3], where


# --------------------------------------------------------------------------- pseudo-label scoring
def test_pseudolabel_scoring_killed_between_shards_resumes_identically(tmp_path):
    from syntfer.engine.models import create_model
    from syntfer.engine.models.checkpoint import save_checkpoint

    import torch

    torch.manual_seed(0)
    save_checkpoint(create_model("cnn_tiny", img_size=16), tmp_path / "teacher")
    frame = colour_set(tmp_path / "pool", n_per_class=12).assign(label="", split="")
    images = write_manifest(frame, tmp_path / "pool" / "manifest.csv")
    out = tmp_path / "labeled"
    args = cli("pseudolabel", "--teacher", tmp_path / "teacher", "--images", images, "--out", out,
               "--threshold", "0.0", "--per-class", "5", "--batch-size", "4", "--shard-size", "6", "--no-progress")
    crash_and_resume(args, out, tmp_path / "reference", FilesPresent(out / "scores", "part-*.csv"), after=5, seed=11)
    assert_same_outputs(tmp_path / "reference", out)
    assert len(pd.read_csv(out / "scores.csv")) == 7 * 12


# --------------------------------------------------------------------------- world, diffusion, GAN
@pytest.fixture(scope="module")
def smoke_world(tmp_path_factory):
    """The smoke world's captioned web images (diffusion), AffectNet stand-in (GAN training), FFHQ stand-in
    (GAN edits)."""
    out = tmp_path_factory.mktemp("world") / "world"
    run_ok(cli("world", "--preset", "smoke", "--out", out, "--workers", "1", "--quiet",
               "--domains", "web", "affectnet", "ffhq"))
    return out


def test_world_render_killed_mid_domain_resumes_identically(tmp_path):
    out = tmp_path / "world"
    args = cli("world", "--preset", "smoke", "--out", out, "--workers", "2", "--quiet")
    crash_and_resume(args, out, tmp_path / "reference", FilesPresent(out, "*.*"), after=90, seed=3)
    assert_same_outputs(tmp_path / "reference", out)


# checkpoints every 7 steps, log rows every 4: most checkpoints fall between two log rows (a resume must
# carry the steps since the last row)
DIFFUSION_TRAIN = ("--image-size", "16", "--batch-size", "4", "--lr", "1e-3", "--seed", "2", "--threads", "1",
                   "--checkpoint-every", "7", "--log-every", "4")
# timing columns and keys: the only values a resumed run may change (these logs record wall time)
DIFFUSION_VOLATILE = {"state.pt": ["elapsed"], "train_log.csv": ["elapsed_s"],
                      "build.json": ["elapsed_s", "images_per_s"]}


@pytest.mark.parametrize("variant", [("--arch", "latent-mlp"), ("--arch", "latent-mlp", "--use-aus")],
                         ids=["text", "text+au"])
def test_embedded_diffusion_training_killed_between_checkpoints_resumes_identically(tmp_path, smoke_world, variant):
    work = tmp_path / "work"
    args = cli("diffusion", "train", "--captions", smoke_world / "web" / "captions.csv", "--work", work,
               "--export", work / "export", "--steps", "40", *DIFFUSION_TRAIN, *variant)
    crash_and_resume(args, work, tmp_path / "reference", FileWrites(work / "state.pt"), after=3, seed=len(variant))
    # the EMA weights that are exported and sampled, the raw weights, optimiser, scheduler and RNG state
    assert_same_outputs(tmp_path / "reference", work, volatile=DIFFUSION_VOLATILE)


@pytest.fixture(scope="module")
def embedded_model(tmp_path_factory, smoke_world):
    work = tmp_path_factory.mktemp("embedded") / "work"
    run_ok(cli("diffusion", "train", "--captions", smoke_world / "web" / "captions.csv", "--work", work,
               "--export", work / "export", "--steps", "12", "--use-aus", *DIFFUSION_TRAIN))
    return work / "export"


@pytest.mark.parametrize("backend", ["embedded", "embedded-au"])
def test_diffusion_sampling_killed_between_images_resumes_identically(tmp_path, embedded_model, backend):
    prompts = tmp_path / "prompts.csv"
    run_ok(cli("prompts", "--out", prompts, "--per-emotion", "2"))
    out = tmp_path / "generated"
    args = cli("diffusion", "generate", "--prompts", prompts, "--out", out, "--backend", backend, "--model",
               embedded_model, "--steps", "4", "--batch-size", "3", "--seed", "1", "--threads", "1")
    crash_and_resume(args, out, tmp_path / "reference", FilesPresent(out, "*.png"), after=4, seed=len(backend))
    # the resume regroups the images left into new batches: the one batch-grouping tolerance (0 on most machines)
    assert_same_outputs(tmp_path / "reference", out, volatile={"generation.json": ["seconds", "images_per_s",
                                                                                    "generated", "skipped"]},
                        grey_levels=BATCH_GROUPING_GREY_LEVELS)
    assert len(pd.read_csv(out / "manifest.csv")) == 14


GAN_TRAIN = ("--size", "16", "--conv-dim", "4", "--repeat-num", "1", "--d-conv-dim", "4", "--d-repeat-num", "2",
             "--n-critic", "2", "--batch-size", "4", "--d-warmup-steps", "6", "--per-class-cap", "4", "--threads", "1",
             "--checkpoint-every", "7", "--log-every", "4", "--seed", "3")


@pytest.mark.parametrize("control", ["linear", "gaussian"])
def test_gan_training_killed_between_checkpoints_resumes_identically(tmp_path, smoke_world, control):
    out = tmp_path / "editor"
    args = cli("gan", "train", "--data", smoke_world / "affectnet", "--out", out, "--steps", "40",
               "--control", control, *GAN_TRAIN)
    crash_and_resume(args, out, tmp_path / "reference", FileWrites(out / "state.pt"), after=3, seed=len(control))
    # generator, critic, both optimisers and the RNG state; the log less its timing column
    assert_same_outputs(tmp_path / "reference", out, volatile={"log.csv": ["seconds"]})


FLOW = ("--flow-grid", "4", "--flow-max", "0.1", "--no-residual", "--lambda-flow-tv", "5", "--lambda-fold", "10",
        "--lambda-aux", "2")


def test_flow_editor_fine_tuning_killed_between_checkpoints_resumes_identically(tmp_path, smoke_world):
    """The committed default editor's recipe (models/gan/world_flow48: flow grid, flow-TV and fold losses, the
    frozen aux classifier, `--init-from`) at a tiny size: a base run, then a fine-tune killed and resumed."""
    import torch

    from syntfer.engine.models import create_model
    from syntfer.engine.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    aux = save_checkpoint(create_model("cnn_tiny", img_size=16), tmp_path / "aux")
    common = (*GAN_TRAIN, *FLOW, "--aux-classifier", aux)
    run_ok(cli("gan", "train", "--data", smoke_world / "affectnet", "--out", tmp_path / "base", "--steps", "10",
               *common))
    out = tmp_path / "editor"
    args = cli("gan", "train", "--data", smoke_world / "affectnet", "--out", out, "--steps", "30",
               "--init-from", tmp_path / "base", *common)
    crash_and_resume(args, out, tmp_path / "reference", FileWrites(out / "state.pt"), after=2, seed=48)
    assert_same_outputs(tmp_path / "reference", out, volatile={"log.csv": ["seconds"]})
    log = pd.read_csv(out / "log.csv")
    assert {"g_flow_tv", "g_fold", "g_aux"} <= set(log.columns)  # the flow and aux losses were in the run


@pytest.fixture(scope="module")
def gan_editor(tmp_path_factory, smoke_world):
    out = tmp_path_factory.mktemp("editor") / "editor"
    run_ok(cli("gan", "train", "--data", smoke_world / "affectnet", "--out", out, "--steps", "12", *GAN_TRAIN))
    return out


@pytest.mark.parametrize("variant", ["F", "V"])
def test_gan_editing_killed_between_images_resumes_identically(tmp_path, smoke_world, gan_editor, variant):
    out = tmp_path / "edited"
    ffhq = smoke_world / "ffhq"
    args = cli("gan", "edit", "--editor", gan_editor, "--boxes", ffhq / "boxes.csv", "--truth", ffhq / "truth.csv",
               "--recipe", "10", "--per-class", "1", "--variant", variant, "--restorer", "denoise",
               "--batch-size", "2", "--seed", "4", "--out", out)
    crash_and_resume(args, out, tmp_path / "reference", FilesPresent(out / "images", "*.png"), after=3,
                     seed=ord(variant))
    # the resume edits the images left in new batches: the one batch-grouping tolerance, as for batched vs single
    # edits (tests/test_gan_sharp.py) and resumed diffusion sampling
    assert_same_outputs(tmp_path / "reference", out, grey_levels=BATCH_GROUPING_GREY_LEVELS)
    assert json.loads((out / "summary.json").read_text())["images"] == 7
