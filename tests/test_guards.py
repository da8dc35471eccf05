"""Guards: a NaN/inf loss stops each training loop with an error naming the step (before the optimiser step, so
the last checkpoint stays the last good state), and empty inputs stop with a message instead of a crash deep in
torch. Each test injects the fault (a NaN at a chosen step, an empty set) and checks the message and what is
left on disk."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from faults import TALLY
from syntfer.core.guards import NonFiniteLossError, check_finite
from syntfer.core.storage import load_torch

torch.set_num_threads(1)
TINY = dict(image_size=16, conv_dim=4, repeat_num=1, d_conv_dim=4, d_repeat_num=2)


def _nan_on_call(real, k: int):
    """`real`, except that its k-th call (1-based) returns NaN of the same shape."""
    calls = {"n": 0}

    def wrapped(*a, **kw):
        calls["n"] += 1
        out = real(*a, **kw)
        return out * float("nan") if calls["n"] == k else out

    return wrapped


def _fault():
    TALLY["faults injected (NaN loss)"] += 1


def test_check_finite():
    assert check_finite(torch.tensor(2.5), "x") == 2.5
    for bad in (float("nan"), float("inf"), -float("inf"), torch.tensor([1.0, float("nan")])):
        with pytest.raises(NonFiniteLossError, match="step 7 loss is"):
            check_finite(bad, "step 7 loss")


def test_classifier_training_stops_at_a_nan_loss_with_the_step_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    import syntfer.engine.training as T
    from imagesets import colour_set
    from test_training import _cfg  # registers the tiny model

    frame = colour_set(tmp_path / "img", n_per_class=4)
    # 28 images, 7 in validation: 2 training batches of 8 per epoch, then the validation loss (fer_loss too);
    # the 5th call is epoch 2's second batch
    monkeypatch.setattr(T, "fer_loss", _nan_on_call(T.fer_loss, 5))
    with pytest.raises(NonFiniteLossError, match=r"run: epoch 2 step 2 \(global step 4\) training loss is nan"):
        T.train(_cfg(epochs=3, checkpoint_every=1), frame, tmp_path / "run")
    _fault()
    state = load_torch(tmp_path / "run" / "state.pt")
    assert (state["epoch"], state["step"]) == (1, 1)  # the state of the last good step
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    monkeypatch.undo()  # resuming from the kept state finishes the run
    assert T.train(_cfg(epochs=3, checkpoint_every=1), frame, tmp_path / "run").best_epoch >= 1


def test_editor_training_stops_at_a_nan_loss_with_the_step(tmp_path, monkeypatch):
    import syntfer.strategies.gan.training as G
    from syntfer.strategies.gan.networks import EditorConfig

    crops = torch.randint(0, 256, (14, 3, 16, 16), dtype=torch.uint8)
    labels = torch.arange(14) % 7
    kw = dict(batch_size=4, n_critic=1, d_warmup_steps=0, log_every=1, ckpt_every=1, n_random=1)
    monkeypatch.setattr(G, "gradient_penalty", _nan_on_call(G.gradient_penalty, 3))
    with pytest.raises(NonFiniteLossError, match="editor step 3: critic loss is nan"):
        G.train_editor(crops, labels, tmp_path / "ed", EditorConfig(**TINY), G.TrainConfig(steps=5, **kw),
                       progress=False)
    _fault()
    assert load_torch(tmp_path / "ed" / "state.pt")["step"] == 2
    monkeypatch.undo()
    # the generator loss has its own check
    tr = G.EditorTrainer(EditorConfig(**TINY), G.TrainConfig(steps=2, **kw), crops, labels)
    with torch.no_grad():
        tr.G.main[0].weight.fill_(float("nan"))  # the critic sees a NaN fake: both losses turn NaN
    with pytest.raises(NonFiniteLossError, match="editor step 1: critic loss"):
        tr.step()


def test_diffusion_training_stops_at_a_nan_loss_with_the_step(tmp_path, monkeypatch):
    import diffusers.training_utils as U

    from syntfer.strategies.diffusion import embedded as E
    from test_safe_loading import _captioned_data

    data = _captioned_data(tmp_path)
    cfg = E.default_config(E.build_vocab(data.captions), tiny=True)
    monkeypatch.setattr(U, "compute_snr", _nan_on_call(U.compute_snr, 3))
    with pytest.raises(NonFiniteLossError, match=r"work: diffusion step 3 loss is nan"):
        E.train_embedded(data, cfg, E.TrainConfig(steps=4, batch_size=4, checkpoint_every=1, log_every=1),
                         tmp_path / "work")
    _fault()
    assert load_torch(tmp_path / "work" / "state.pt")["step"] == 2


def test_identity_training_stops_at_a_nan_loss_with_the_step(tmp_path, monkeypatch):
    from syntfer.instruments import identity_encoder as I

    crops = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8)
    ids = np.repeat(np.arange(4), 2)
    monkeypatch.setattr(I.ArcFaceHead, "forward", _nan_on_call(I.ArcFaceHead.forward, 2))
    with pytest.raises(NonFiniteLossError, match=r"enc: identity encoder step 2 loss is nan"):
        I.train_identity_encoder(crops, ids, tmp_path / "enc", I.IdentityConfig(16, 4, 8),
                                 I.IdentityTrainConfig(steps=3, batch_size=4), progress=False)
    _fault()


# --------------------------------------------------------------------------- empty inputs
def _bad():
    TALLY["bad inputs tried"] += 1


def test_empty_training_sets_are_named(tmp_path):
    import syntfer.engine.training as T
    from syntfer.strategies.gan.networks import EditorConfig
    from syntfer.strategies.gan.training import EditorTrainer, TrainConfig
    from syntfer.instruments.identity_encoder import (IdentityConfig, IdentityEncoder, IdentityTrainConfig, embed,
                                                      train_identity_encoder)
    from test_training import _cfg

    (tmp_path / "empty.csv").write_text("path,label\n")
    from syntfer.engine.data import DataError

    with pytest.raises(DataError, match=r"empty.csv: no rows"):
        T.train(_cfg(), str(tmp_path / "empty.csv"), tmp_path / "run")
    _bad()
    with pytest.raises(ValueError, match=r"editor's training set is empty \(0 face crops\)"):
        EditorTrainer(EditorConfig(**TINY), TrainConfig(steps=1), torch.zeros((0, 3, 16, 16), dtype=torch.uint8),
                      torch.zeros(0, dtype=torch.long))
    _bad()
    with pytest.raises(ValueError, match=r"8 crops of 1 identities; expected at least 2 identities"):
        train_identity_encoder(torch.zeros((8, 3, 16, 16), dtype=torch.uint8), np.zeros(8), tmp_path / "e",
                               IdentityConfig(16, 4, 8), IdentityTrainConfig(steps=1), progress=False)
    _bad()
    with pytest.raises(ValueError, match=r"IdentityTrainConfig.lr = 0.0; expected > 0"):
        train_identity_encoder(torch.zeros((8, 3, 16, 16), dtype=torch.uint8), np.arange(8) % 2, tmp_path / "e",
                               IdentityConfig(16, 4, 8), IdentityTrainConfig(steps=1, lr=0.0), progress=False)
    _bad()
    with pytest.raises(ValueError, match="no images to embed"):
        embed(IdentityEncoder(IdentityConfig(16, 4, 8)), np.zeros((0, 16, 16, 3), np.uint8))
    _bad()


def test_empty_diffusion_set_is_named(tmp_path):
    from syntfer.strategies.diffusion import embedded as E
    from test_safe_loading import _captioned_data

    data = _captioned_data(tmp_path)
    cfg = E.default_config(E.build_vocab(data.captions), tiny=True)
    empty = E.CaptionedImages(data.images[:0], [], None if data.aus is None else data.aus[:0], data.au_names,
                              data.frame.iloc[:0])
    with pytest.raises(E.EmbeddedModelError, match=r"diffusion training set is empty \(0 captioned images\)"):
        E.train_embedded(empty, cfg, E.TrainConfig(steps=1, batch_size=4), tmp_path / "w")
    _bad()
    assert not (tmp_path / "w" / "state.pt").exists()


def test_empty_gan_pool_is_named(tmp_path):
    from syntfer.strategies.gan.editing import BOX_NAMES
    from syntfer.strategies.gan.sets import RecipeError, plan_recipe, source_pool_from_boxes

    (tmp_path / "boxes.csv").write_text("path," + ",".join(BOX_NAMES) + "\n")
    pool = source_pool_from_boxes(tmp_path / "boxes.csv")
    for recipe, kw in (("70", {}), ("10", {"per_class": 2}), ("RAF", {"total": 5})):
        with pytest.raises(RecipeError, match=r"source pool is empty \(0 faces\)"):
            plan_recipe(pool, recipe, **kw)
        _bad()


def test_distance_features_refuse_an_empty_set():
    from syntfer.instruments.distances import DistanceError, callable_space, extract_features

    space = callable_space("toy", lambda images: np.zeros((len(images), 2), np.float32), fingerprint="x")
    with pytest.raises(DistanceError, match="no images to embed in space 'toy'"):
        extract_features(space, [], progress=False)
    _bad()
