"""More crash-resume tests through the CLIs (tests/faults.py): the identity encoder's resume state, several
seeded kills in one job, and a kill inside a checkpoint's write-then-rename.

Like tests/test_faults.py: an uninterrupted run, a run SIGKILLed (its whole process group) and resumed, and a
file-by-file comparison (tensors with `torch.equal`, logs less their timing columns, everything else byte for
byte, no file left over by a kill).
"""
from __future__ import annotations

import json
import subprocess

import pandas as pd
import pytest
import torch

from faults import (TALLY, FilesPresent, FileWrites, assert_same_outputs, cli, crash_and_resume, crash_several_times_and_resume,
                    job_env, kill_inside_rename, run_ok)

pytestmark = pytest.mark.slow

# --------------------------------------------------------------------------- identity encoder
# 4 + 2 identities, 3 crops each, 16 px; a state every 7 steps, log rows every 50: most states fall between two
# log rows (a resume must carry the losses since the last row)
IDENTITY = ("--train-ids", "4", "--val-ids", "2", "--per-id", "3", "--size", "16", "--width", "4", "--embed-dim", "8",
            "--steps", "120", "--batch-size", "8", "--checkpoint-every", "7", "--seed", "1", "--threads", "1")
# the only values a resumed run may change: wall times
IDENTITY_VOLATILE = {"log.csv": ["seconds"], "validation.json": ["render_seconds", "train_seconds"]}


def test_identity_encoder_killed_between_checkpoints_resumes_identically(tmp_path):
    out = tmp_path / "identity"
    args = cli("identity", "--out", out, *IDENTITY)
    where = crash_and_resume(args, out, tmp_path / "reference", FileWrites(out / "state.pt"), after=5, seed=29)
    # encoder weights (BN statistics included) tensor by tensor, its config, the log and validation numbers
    assert_same_outputs(tmp_path / "reference", out, volatile=IDENTITY_VOLATILE)
    assert not (out / "state.pt").exists(), "the resume state outlived the finished run"
    assert pd.read_csv(out / "log.csv")["step"].tolist() == [50, 100], where


def test_identity_resume_state_of_other_settings_is_refused(tmp_path):
    """A state.pt left by a run with other settings is not resumed from: one line naming it, exit 1."""
    out = tmp_path / "identity"
    torch.save({"key": {"config": {}, "train": {}, "ids": torch.zeros(1), "crops_sha256": ""}, "step": 3},
               out.mkdir() or out / "state.pt")
    done = subprocess.run(cli("identity", "--out", out, *IDENTITY), env=job_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    # stderr: the rendering's progress bars, then the one error line
    assert done.stderr.strip().splitlines()[-1] == (f"syntfer identity: error: {out / 'state.pt'}: resume state of other crops or "
                                   "settings; use another --out or delete it to start over")
    TALLY["bad inputs tried"] += 1


# --------------------------------------------------------------------------- several seeded kills in one job
def test_identity_encoder_killed_at_three_seeded_points_resumes_identically(tmp_path):
    """Killed three times (each after 3-5 checkpoints drawn from a seeded RNG, at a seeded point of the
    interval), resumed each time: the same files as one uninterrupted run."""
    out = tmp_path / "identity"
    args = cli("identity", "--out", out, *IDENTITY)
    where = crash_several_times_and_resume(args, out, tmp_path / "reference", lambda: FileWrites(out / "state.pt"), kills=3,
                                  seed=2929)
    assert len(where) == 3
    assert_same_outputs(tmp_path / "reference", out, volatile=IDENTITY_VOLATILE)


# --------------------------------------------------------------------------- a kill inside write-then-rename
def test_identity_encoder_killed_between_a_checkpoints_write_and_rename_resumes_identically(tmp_path):
    """The storage fault hook pauses the k-th `state.pt` write (k seeded) after its temporary is complete and
    before the rename; the SIGKILL lands there. The complete temporary is left beside the previous checkpoint;
    the resume never reads it (it resumes from the renamed one and deletes the temporary) and ends with the
    uninterrupted run's files, no temporary among them."""
    import random

    out = tmp_path / "identity"
    args = cli("identity", "--out", out, *IDENTITY)
    run_ok(args)
    (tmp_path / "identity").rename(tmp_path / "reference")
    k = random.Random(4).randint(2, 6)
    kill_inside_rename(args, "state.pt", k, tmp_path / "marker")
    stale = sorted(out.glob(".state.pt.*.tmp"))
    assert len(stale) == 1, sorted(p.name for p in out.iterdir())
    # the temporary is whole (checkpoint k); the file under the checkpoint's name is still checkpoint k - 1
    assert torch.load(stale[0], weights_only=True)["step"] == 7 * k
    assert torch.load(out / "state.pt", weights_only=True)["step"] == 7 * (k - 1)
    run_ok(args)
    assert not list(out.glob(".*.tmp"))
    assert_same_outputs(tmp_path / "reference", out, volatile=IDENTITY_VOLATILE)


# --------------------------------------------------------------------------- the batch-grouping tolerance
def test_the_image_tolerance_of_a_resume_comparison_is_the_one_batch_grouping_constant_and_can_fail(tmp_path):
    """`assert_same_outputs(grey_levels=...)` lets a PNG move by the documented batch-grouping tolerance and no
    further; without it (every other job) a one-level change is a difference."""
    import numpy as np
    from PIL import Image

    from syntfer.strategies.diffusion.generation import BATCH_GROUPING_GREY_LEVELS

    assert BATCH_GROUPING_GREY_LEVELS == 1
    base = np.full((4, 4, 3), 100, np.uint8)
    for name, shift in (("a", 0), ("b", BATCH_GROUPING_GREY_LEVELS), ("c", BATCH_GROUPING_GREY_LEVELS + 1)):
        for side, delta in (("ref", 0), ("got", shift)):
            (tmp_path / name / side).mkdir(parents=True)
            img = base.copy()
            img[1, 2, 0] += delta
            Image.fromarray(img).save(tmp_path / name / side / "x.png")
    tally = dict(TALLY)  # these comparisons are of made-up trees, not resumes: kept out of the reliability table
    try:
        assert_same_outputs(tmp_path / "a" / "ref", tmp_path / "a" / "got")
        assert_same_outputs(tmp_path / "b" / "ref", tmp_path / "b" / "got", grey_levels=BATCH_GROUPING_GREY_LEVELS)
        with pytest.raises(AssertionError, match="bytes differ"):
            assert_same_outputs(tmp_path / "b" / "ref", tmp_path / "b" / "got")
        with pytest.raises(AssertionError, match=r"x\.png: pixels differ by 2 grey levels \(allowed 1\)"):
            assert_same_outputs(tmp_path / "c" / "ref", tmp_path / "c" / "got",
                                grey_levels=BATCH_GROUPING_GREY_LEVELS)
    finally:
        TALLY.clear()
        TALLY.update(tally)


# --------------------------------------------------------------------------- mix and diffusion curate
@pytest.fixture(scope="module")
def colour_sources(tmp_path_factory):
    """Two 7-class sources of 16 images per class (PNG files, manifests)."""
    from faults import colour_set
    from syntfer.core.manifest import write_manifest

    root = tmp_path_factory.mktemp("sources")
    return [write_manifest(colour_set(root / name, n_per_class=16, seed=i), root / f"{name}.csv")
            for i, name in enumerate(("alpha", "beta"))]


def _mix_args(sources, out):
    return cli("mix", "--source", f"alpha={sources[0]}", "--source", f"beta={sources[1]}", "--n-train", "10",
               "--n-val", "3", "--link", "copy", "--seed", "3", "--out", out)


# what a run did, not what it made: a resumed run copies fewer files
MIX_VOLATILE = {"summary.json": ["files_written", "stale_removed"]}


def test_mix_killed_between_copies_resumes_identically(tmp_path, colour_sources):
    out = tmp_path / "mixed"
    crash_and_resume(_mix_args(colour_sources, out), out, tmp_path / "reference", FilesPresent(out, "*.png"),
                     after=40, seed=7)
    assert_same_outputs(tmp_path / "reference", out, volatile=MIX_VOLATILE)


@pytest.mark.parametrize("name", ["*", "manifest.csv"], ids=["an-image", "the-manifest"])
def test_mix_killed_between_a_writes_write_and_rename_resumes_identically(tmp_path, colour_sources, name):
    """Killed inside the k-th image copy (k seeded), or inside the manifest's write (after every image)."""
    import random

    out = tmp_path / "mixed"
    args = _mix_args(colour_sources, out)
    run_ok(args)
    out.rename(tmp_path / "reference")
    kill_inside_rename(args, name, random.Random(8).randint(5, 150) if name == "*" else 1, tmp_path / "marker")
    assert len(list(out.rglob(".*.tmp"))) == 1  # the complete copy, never renamed
    run_ok(args)
    assert_same_outputs(tmp_path / "reference", out, volatile=MIX_VOLATILE)


def _curate_args(manifest, out):
    return cli("diffusion", "curate", "--manifest", manifest, "--out", out, "--per-class", "12", "--dedup-bits", "0",
               "--seed", "2")


def test_diffusion_curate_killed_between_copies_resumes_identically(tmp_path, colour_sources):
    out = tmp_path / "curated"
    crash_and_resume(_curate_args(colour_sources[0], out), out, tmp_path / "reference", FilesPresent(out, "*.png"),
                     after=30, seed=9)
    assert_same_outputs(tmp_path / "reference", out)


def test_diffusion_curate_killed_between_a_copys_write_and_rename_resumes_identically(tmp_path, colour_sources):
    import random

    out = tmp_path / "curated"
    args = _curate_args(colour_sources[0], out)
    run_ok(args)
    out.rename(tmp_path / "reference")
    kill_inside_rename(args, "*", random.Random(10).randint(5, 80), tmp_path / "marker")
    assert len(list(out.rglob(".*.tmp"))) == 1  # the complete copy, never renamed
    run_ok(args)
    assert_same_outputs(tmp_path / "reference", out)


# --------------------------------------------------------------------------- the trainer, inside a rename
def test_trainer_killed_between_a_checkpoints_write_and_rename_resumes_identically(tmp_path, colour_sources):
    """`syntfer train` (the default recipe) killed inside the k-th `state.pt` write (k seeded): the resume reads
    the previous checkpoint, deletes the complete but unrenamed temporary, and ends byte-identical."""
    import random

    out = tmp_path / "run"
    args = cli("train", "--train", colour_sources[0], "--out", out, "--model", "cnn_tiny", "--epochs", "3",
               "--batch-size", "8", "--val-fraction", "0.2", "--checkpoint-every", "2", "--seed", "5", "--no-progress",
               "--recipe", "fast", "--model-kwargs", '{"img_size": 16, "drop_rate": 0.3}')
    run_ok(args)
    out.rename(tmp_path / "reference")
    k = random.Random(11).randint(3, 12)
    kill_inside_rename(args, "state.pt", k, tmp_path / "marker")
    stale = sorted(out.rglob(".state.pt.*.tmp"))
    assert len(stale) == 1, sorted(p.name for p in out.rglob("*"))
    assert torch.load(stale[0], weights_only=True)["global_step"] > torch.load(
        out / "state.pt", weights_only=True)["global_step"]  # the temporary is the newer, unrenamed checkpoint
    run_ok(args)
    assert_same_outputs(tmp_path / "reference", out)
    assert pd.read_csv(out / "log.csv")["epoch"].tolist() == [1, 2, 3]
