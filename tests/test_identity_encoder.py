"""Identity encoder (world identities) and dlib's face descriptor (real photos)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from syntfer.instruments.identity_encoder import (ArcFaceHead, DlibFaceDescriptor, IdentityConfig, IdentityEncoder,
                                                  IdentityTrainConfig, embed, load_identity_encoder, train_identity_encoder,
                                                  verification_scores)

torch.set_num_threads(1)


def test_embeddings_are_unit_norm_and_sizes_adapt():
    enc = IdentityEncoder(IdentityConfig(image_size=32, width=4, embed_dim=16)).eval()
    e = embed(enc, torch.randint(0, 256, (5, 3, 40, 40), dtype=torch.uint8))
    assert e.shape == (5, 16)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    hwc = embed(enc, np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8))
    assert hwc.shape == (2, 16)


def test_arcface_margin_only_on_target():
    head = ArcFaceHead(2, 3, scale=10.0, margin=0.5)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]))
    emb = torch.tensor([[1.0, 0.0]])
    logits = head(emb, torch.tensor([0]))
    assert logits[0, 0].item() == pytest.approx(10 * np.cos(0.5), abs=1e-2)
    assert logits[0, 1].item() == pytest.approx(0.0, abs=1e-4)
    assert logits[0, 2].item() == pytest.approx(-10.0, abs=1e-2)


def test_verification_scores_exact_on_constructed_embeddings():
    emb = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=np.float32)
    s = verification_scores(emb, np.array([0, 0, 1, 1]))
    assert s["auc"] == 1.0 and s["same_mean"] == 1.0 and s["diff_mean"] == 0.0
    assert s["pairs_same"] == 2 and s["pairs_diff"] == 4
    with pytest.raises(ValueError, match="both same-identity and different-identity"):
        verification_scores(emb, np.array([0, 1, 2, 3]))


def _toy_identities(n_ids: int, per_id: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """Each identity = a fixed random colour pattern; samples add noise and a brightness change."""
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 216, (n_ids, 4, 4, 3))
    imgs, ids = [], []
    for k in range(n_ids):
        for _ in range(per_id):
            im = np.kron(base[k], np.ones((8, 8, 1))) + rng.normal(0, 12, (32, 32, 3)) + rng.uniform(-20, 20)
            imgs.append(np.clip(im, 0, 255).astype(np.uint8))
            ids.append(k)
    return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous(), np.array(ids)


@pytest.mark.slow
def test_tiny_training_separates_held_out_samples(tmp_path):
    crops, ids = _toy_identities(6, 8, seed=0)
    cfg = IdentityConfig(image_size=32, width=8, embed_dim=16)
    enc, log = train_identity_encoder(crops, ids, tmp_path, cfg,
                                      IdentityTrainConfig(steps=60, batch_size=24, log_every=20), progress=False)
    assert list(log["step"]) == [20, 40, 60] and log["loss"].iloc[-1] < log["loss"].iloc[0]
    # new samples of the same six identities
    rng_crops, rng_ids = _toy_identities(6, 4, seed=0)
    test = verification_scores(embed(enc, rng_crops), rng_ids)
    assert test["auc"] > 0.9 and test["same_mean"] > test["diff_mean"]
    again = load_identity_encoder(tmp_path)
    np.testing.assert_allclose(embed(again, crops[:3]), embed(enc, crops[:3]), atol=1e-6)
    assert json.loads((tmp_path / "encoder.json").read_text())["n_identities"] == 6


def test_dlib_descriptor_on_a_real_photo():
    from skimage import data as skimage_data  # pinned in requirements-lock.txt: a missing one is a failure
    img = skimage_data.astronaut()
    d = DlibFaceDescriptor()
    a = d(img)
    assert a is not None and a.shape == (128,)
    shifted = np.ascontiguousarray(np.roll(img, 7, axis=1))
    b = d(shifted)
    assert d.distance(a, b) < DlibFaceDescriptor.THRESHOLD
    assert d(np.zeros((80, 80, 3), np.uint8)) is None
