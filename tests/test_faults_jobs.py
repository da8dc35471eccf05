"""Crash-resume of the long jobs tests/test_faults.py and tests/test_faults_more.py did not cover (issue #29).

As there: each job runs as a `syntfer …` subprocess, uninterrupted, then SIGKILLed (its whole process group, at a
seeded point between two of its checkpoints or inside a checkpoint's write-then-rename) and rerun; the rerun's
files must equal the uninterrupted run's (tests/faults.py: tensors with `torch.equal`, logs less their timing
columns, every other file byte for byte, no file left over by the kill).

- the embedded diffusion model's UNet architectures (`--arch unet`, `--arch latent-unet`: the autoencoder is
  trained first, then the UNet on its latents) and a fine-tune with filler words (`--init-from`, `--filler-words`);
- the instruments' trainer + calibration: `syntfer instrument judge` (one model) and `syntfer gan classifier`
  (a 2-member ensemble on editor-framed crops);
- the pseudo-label copy phase (stateless: it rebuilds `images/` from scratch, so a kill among its copies leaves
  nothing a rerun trusts);
- feature extraction for FD/KID (`syntfer distance`) and for the privacy audit (`syntfer audit`), whose resume
  state is one feature cache per set.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest

from faults import (FilesPresent, FileWrites, assert_same_outputs, cli, colour_set, crash_and_resume,
                    kill_inside_rename, run_ok)
from syntfer.core.manifest import write_manifest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
IDENTITY = ROOT / "models" / "identity" / "world32"  # the committed identity encoder: a real embedding, small


@pytest.fixture(scope="module")
def smoke_world(tmp_path_factory):
    """The smoke world's captioned web images, AffectNet stand-in and reference domains."""
    out = tmp_path_factory.mktemp("world") / "world"
    run_ok(cli("world", "--preset", "smoke", "--out", out, "--workers", "1", "--quiet",
               "--domains", "web", "affectnet", "ref_web", "ref_ffhq"))
    return out


# --------------------------------------------------------------------------- diffusion: UNets, fine-tuning
# states every 7 steps, log rows every 4 (a resume carries the steps since the last row); 16 px, a tiny UNet
UNET_TRAIN = ("--image-size", "16", "--batch-size", "4", "--lr", "1e-3", "--seed", "2", "--threads", "1",
              "--checkpoint-every", "7", "--log-every", "4", "--steps", "21", "--channels", "8,16")
UNET_ARCHS = {"unet-p2": ("--arch", "unet", "--patch-size", "2"),
              "latent-unet": ("--arch", "latent-unet", "--vae-steps", "6")}
# wall-time values: the only ones a rerun may change
DIFFUSION_VOLATILE = {"state.pt": ["elapsed"], "train_log.csv": ["elapsed_s"],
                      "build.json": ["elapsed_s", "images_per_s"]}


@pytest.mark.parametrize("arch", sorted(UNET_ARCHS))
def test_unet_diffusion_training_killed_between_checkpoints_resumes_identically(tmp_path, smoke_world, arch):
    """Kill point: after the 2nd `state.pt` write of the UNet's steps (latent-unet writes one more first, right
    after its autoencoder: the resume must not train the autoencoder again)."""
    work = tmp_path / "work"
    args = cli("diffusion", "train", "--captions", smoke_world / "web" / "captions.csv", "--work", work,
               "--export", work / "export", *UNET_TRAIN, *UNET_ARCHS[arch])
    after = 3 if arch == "latent-unet" else 2
    crash_and_resume(args, work, tmp_path / "reference", FileWrites(work / "state.pt"), after=after, seed=len(arch))
    # UNet (and autoencoder) weights, EMA weights, optimiser, scheduler, RNG state, the logs
    assert_same_outputs(tmp_path / "reference", work, volatile=DIFFUSION_VOLATILE)
    assert pd.read_csv(work / "train_log.csv")["step"].tolist() == [4, 8, 12, 16, 20, 21]
    if arch == "latent-unet":
        assert (work / "vae_log.csv").is_file()


def test_latent_unet_killed_between_its_autoencoder_and_the_first_state_retrains_it_identically(tmp_path, smoke_world):
    """The autoencoder phase keeps no state of its own: its trained weights reach disk first in the state written
    right after it. Killed inside that write (complete temporary, no rename), the rerun finds no state, trains the
    autoencoder again from its seed and ends with the uninterrupted run's files (its vae_log.csv rewritten)."""
    work = tmp_path / "work"
    args = cli("diffusion", "train", "--captions", smoke_world / "web" / "captions.csv", "--work", work,
               "--export", work / "export", *UNET_TRAIN, *UNET_ARCHS["latent-unet"])
    run_ok(args)
    work.rename(tmp_path / "reference")
    kill_inside_rename(args, "state.pt", 1, tmp_path / "marker")
    assert not (work / "state.pt").exists() and len(list(work.glob(".state.pt.*.tmp"))) == 1
    run_ok(args)
    assert_same_outputs(tmp_path / "reference", work, volatile=DIFFUSION_VOLATILE)


def test_filler_word_fine_tuning_killed_between_checkpoints_resumes_identically(tmp_path, smoke_world):
    """The committed model's recipe in small: a pool48 (bag-of-words) base run, then a fine-tune from it with
    filler words appended to captions (`--init-from`, `--filler-words`, `--filler-max`) killed and resumed.

    It starts from the base run's float32 EMA folder, not its float16 export: fitted on 21 images, the PCA codec's
    384 components include some with a ~1e-9 spread, which float16 stores as 0 (a fine-tune or sampler reading
    that export divides by it: NaN at step 1). The real base model's codec is fitted on thousands of images."""
    captions = smoke_world / "web" / "captions.csv"
    common = ("--variant", "pool48", "--image-size", "16", "--batch-size", "4", "--lr", "1e-3", "--seed", "2",
              "--threads", "1", "--log-every", "4")
    run_ok(cli("diffusion", "train", "--captions", captions, "--work", tmp_path / "base", "--steps", "8", *common))
    work = tmp_path / "fine"
    args = cli("diffusion", "train", "--captions", captions, "--work", work, "--export", work / "export",
               "--steps", "28", "--checkpoint-every", "7", "--init-from", tmp_path / "base" / "ema",
               "--filler-words", "a,an,of,with", "--filler-max", "3", "--word-dropout", "0.15", *common)
    crash_and_resume(args, work, tmp_path / "reference", FileWrites(work / "state.pt"), after=2, seed=17)
    assert_same_outputs(tmp_path / "reference", work, volatile=DIFFUSION_VOLATILE)
    build = json.loads((work / "export" / "build.json").read_text())
    assert "--filler-words a,an,of,with --filler-max 3" in build["rebuild_command"]


# --------------------------------------------------------------------------- instruments: trainer + calibration
class WritesBelow:
    """Writes of every file named `name` below a folder (one `FileWrites` per file found so far)."""

    def __init__(self, folder: Path, name: str):
        self.folder, self.name, self.probes = Path(folder), name, {}

    def __call__(self) -> int:
        if self.folder.exists():
            for p in self.folder.rglob(self.name):
                self.probes.setdefault(p, FileWrites(p))
        return sum(probe() for probe in self.probes.values())


SMALL_CNN = '{"img_size": 16, "head": "flatten"}'


def test_instrument_judge_killed_between_epochs_resumes_identically(tmp_path, smoke_world):
    """`syntfer instrument judge`: the trainer's state at each epoch end, then calibration and ceilings."""
    out = tmp_path / "judge"
    args = cli("instrument", "judge", "--world", smoke_world, "--out", out, "--epochs", "4", "--model-kwargs",
               SMALL_CNN, "--seed", "3")
    crash_and_resume(args, out, tmp_path / "reference", FileWrites(out / "train" / "state.pt"), after=2, seed=31)
    # weights, optimiser state, split, log, best checkpoint, the calibrated checkpoint, T, ceilings: every byte
    assert_same_outputs(tmp_path / "reference", out)
    assert json.loads((out / "calibration.json").read_text())["epochs"] == 4


def test_gan_classifier_ensemble_killed_between_members_epochs_resumes_identically(tmp_path, smoke_world):
    """`syntfer gan classifier`: editor-framed crops, a 2-member mirrored ensemble on one split, one temperature.
    Killed after 3 of the members' 6 epoch-end states (inside member 1); the rerun keeps the crops, reloads the
    finished member, resumes the other and calibrates as the uninterrupted run did."""
    out = tmp_path / "classifier"
    args = cli("gan", "classifier", "--data", smoke_world / "affectnet", "--size", "16", "--epochs", "3",
               "--members", "2", "--seed", "2", "--threads", "1", "--out", out)
    crash_and_resume(args, out, tmp_path / "reference", WritesBelow(out / "train", "state.pt"), after=4, seed=41)
    assert_same_outputs(tmp_path / "reference", out)
    meta = json.loads((out / "checkpoint" / "config.json").read_text())
    assert json.loads((out / "calibration.json").read_text())["members"] == 2, meta


# --------------------------------------------------------------------------- pseudo-label copies
def test_pseudolabel_copy_phase_killed_between_copies_leaves_nothing_a_rerun_trusts(tmp_path):
    """The copy phase keeps no state: a rerun deletes `images/` and copies every selected image again (the score
    shards, complete, are reused). Killed among its copies, the rerun ends with the uninterrupted run's files."""
    import torch

    from syntfer.engine.models import create_model
    from syntfer.engine.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(create_model("cnn_tiny", img_size=16), tmp_path / "teacher")
    frame = colour_set(tmp_path / "pool", n_per_class=40, size=32).assign(label="", split="")
    images = write_manifest(frame, tmp_path / "pool" / "manifest.csv")
    out = tmp_path / "labeled"
    args = cli("pseudolabel", "--teacher", tmp_path / "teacher", "--images", images, "--out", out, "--threshold",
               "0.0", "--per-class", "0", "--batch-size", "64", "--shard-size", "140", "--no-progress")
    # progress: the copies (images/<label>/*.png); 280 of them after 2 score shards
    crash_and_resume(args, out, tmp_path / "reference", FilesPresent(out / "images", "*.png"),
                     after=random.Random(12).randint(20, 200), seed=12)
    assert_same_outputs(tmp_path / "reference", out)
    assert len(pd.read_csv(out / "manifest.csv")) == 7 * 40


# --------------------------------------------------------------------------- feature extraction (FD/KID, audit)
@pytest.fixture(scope="module")
def colour_sets(tmp_path_factory):
    """A reference and three sets of 7 x 24 learnable colour images (32 px), as manifests."""
    root = tmp_path_factory.mktemp("sets")
    return {name: write_manifest(colour_set(root / name, n_per_class=24, size=32, seed=i), root / f"{name}.csv")
            for i, name in enumerate(("ref", "a", "b", "c"))}


def _distance_args(sets, out):
    return cli("distance", "--space", "identity", "--identity", IDENTITY, "--reference", f"ref={sets['ref']}",
               *[a for n in "abc" for a in ("--set", f"{n}={sets[n]}")], "--n-subsets", "5", "--batch-size", "8",
               "--out", out)


def test_distance_killed_between_feature_caches_resumes_identically(tmp_path, colour_sets):
    """`syntfer distance`: one feature cache per set (reference first); killed after the 2nd, the rerun reuses
    the complete caches and computes the rest."""
    out = tmp_path / "distance"
    crash_and_resume(_distance_args(colour_sets, out), out, tmp_path / "reference",
                     FilesPresent(out / "features", "*.npz"), after=2, seed=5)
    assert_same_outputs(tmp_path / "reference", out)


def test_distance_killed_inside_a_feature_caches_write_resumes_identically(tmp_path, colour_sets):
    """Killed between the write and the rename of set b's cache: the complete temporary is not read as a cache,
    and the rerun leaves no temporary behind (it used to stay in `features/`, hashed into a DVC output)."""
    out = tmp_path / "distance"
    _killed_inside_set_bs_cache_write(_distance_args(colour_sets, out), out, tmp_path)


def _killed_inside_set_bs_cache_write(args, out, tmp_path) -> None:
    """Run once for the reference, kill a second run inside the rename of set b's identity cache (one temporary
    left), rerun, and compare every output with the reference."""
    run_ok(args)
    out.rename(tmp_path / "reference")
    kill_inside_rename(args, "identity__b.npz", 1, tmp_path / "marker")
    assert len(list(out.rglob(".*.tmp"))) == 1
    run_ok(args)
    assert_same_outputs(tmp_path / "reference", out)


def _audit_args(world, sets, out):
    return cli("audit", "--world", world, *[a for n in "abc" for a in ("--set", f"{n}={sets[n]}")],
               "--real", sets["ref"], "--holdout", sets["a"], "--embedding", f"identity:{IDENTITY}", "--out", out)


def test_audit_killed_between_feature_caches_resumes_identically(tmp_path, smoke_world, colour_sets):
    """`syntfer audit` (demographics, then the privacy check: held-out faces, real training faces, each set)."""
    out = tmp_path / "audit"
    crash_and_resume(_audit_args(smoke_world, colour_sets, out), out, tmp_path / "reference",
                     FilesPresent(out / "cache", "*.npz"), after=3, seed=6)
    assert_same_outputs(tmp_path / "reference", out)


def test_audit_killed_inside_a_feature_caches_write_resumes_identically(tmp_path, smoke_world, colour_sets):
    out = tmp_path / "audit"
    _killed_inside_set_bs_cache_write(_audit_args(smoke_world, colour_sets, out), out, tmp_path)
