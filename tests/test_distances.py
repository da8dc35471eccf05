"""FD / KID values against closed forms and direct computations; feature spaces on tiny models."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from syntfer.instruments import distances as D


def _rng(seed=0):
    return np.random.default_rng(seed)


# --- Fréchet distance ---------------------------------------------------------------------------
def test_fd_identical_sets_is_zero():
    x = _rng().normal(size=(300, 8))
    assert abs(D.frechet_distance(x, x)) < 1e-8


def test_fd_matches_closed_form_for_given_gaussians():
    # Non-commuting full covariances: closed form tr(S1 + S2 - 2 (S1^{1/2} S2 S1^{1/2})^{1/2}).
    r = _rng(1)
    a, b = r.normal(size=(4, 4)), r.normal(size=(4, 4))
    s1, s2 = a @ a.T + 0.5 * np.eye(4), b @ b.T + 0.5 * np.eye(4)
    mu1, mu2 = np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 1.0, 0.0, -1.0])
    w, v = np.linalg.eigh(s1)
    r1 = v @ np.diag(np.sqrt(w)) @ v.T
    w2, v2 = np.linalg.eigh(r1 @ s2 @ r1)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(w2))
    res = D.frechet_distance_from_stats(mu1, s1, mu2, s2)
    assert res.value == pytest.approx(expected, rel=1e-10)
    assert res.regularized is False


def test_fd_of_sampled_gaussians_near_closed_form():
    # Diagonal Gaussians: FD = |mu1-mu2|^2 + sum (s1 + s2 - 2 sqrt(s1 s2)) with s = variances.
    r = _rng(2)
    n, d = 200_000, 3
    sd1, sd2 = np.array([1.0, 2.0, 0.5]), np.array([2.0, 1.0, 0.5])
    mu2 = np.array([1.0, 0.0, -2.0])
    x = r.normal(size=(n, d)) * sd1
    y = r.normal(size=(n, d)) * sd2 + mu2
    expected = np.sum(mu2**2) + np.sum(sd1**2 + sd2**2 - 2 * sd1 * sd2)  # 5 + 2 = 7
    assert expected == pytest.approx(7.0)
    assert D.frechet_distance(x, y) == pytest.approx(expected, abs=0.05)


def test_fd_retries_with_eps_on_non_finite(monkeypatch):
    calls = []
    real = D._sqrtm

    def flaky(m):
        calls.append(m.copy())
        return np.full_like(m, np.nan) if len(calls) == 1 else real(m)

    monkeypatch.setattr(D, "_sqrtm", flaky)
    s = np.eye(2)
    res = D.frechet_distance_from_stats(np.zeros(2), s, np.ones(2), s)
    assert res.regularized is True
    assert len(calls) == 2
    np.testing.assert_allclose(calls[1], (np.eye(2) * (1 + 1e-6)) @ (np.eye(2) * (1 + 1e-6)))
    # As pytorch-fid: traces of the unregularised covariances, square root of the regularised ones:
    # |mu|^2 + tr(I) + tr(I) - 2 tr((1+eps) I) = 2 + 2 + 2 - 4 (1 + 1e-6)
    assert res.value == pytest.approx(2.0 - 4e-6, abs=1e-12)


def test_fd_rejects_bad_input():
    with pytest.raises(D.DistanceError, match="2-D"):
        D.frechet_distance(np.zeros(5), np.zeros(5))
    with pytest.raises(D.DistanceError, match="at least 2"):
        D.frechet_distance(np.zeros((1, 3)), np.zeros((4, 3)))
    with pytest.raises(D.DistanceError, match="NaN"):
        D.frechet_distance(np.full((3, 2), np.nan), np.zeros((4, 2)))


# --- KID -----------------------------------------------------------------------------------------
def _direct_mmd2(x, y):
    """Unbiased MMD^2 with k(a,b) = (a.b/d + 1)^3 written as explicit sums over pairs."""
    m, d = len(x), x.shape[1]
    k = lambda a, b: (float(np.dot(a, b)) / d + 1.0) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_equals_direct_unbiased_estimate_on_whole_sets():
    r = _rng(3)
    x, y = r.normal(size=(7, 5)), r.normal(size=(7, 5)) + 0.5
    res = D.kernel_distance(x, y, n_subsets=3, subset_size=2000, seed=0)
    assert res.subset_size == 7  # capped at the smaller set
    expected = _direct_mmd2(x, y)
    np.testing.assert_allclose(res.values, expected, rtol=1e-12)  # every subset is the whole (permuted) set
    assert res.sd == pytest.approx(0.0, abs=1e-12)


def test_kid_subsets_follow_seed_zero_protocol():
    r = _rng(4)
    x, y = r.normal(size=(40, 6)), r.normal(size=(30, 6))
    res = D.kernel_distance(x, y, n_subsets=5, subset_size=10, seed=0)
    assert res.subset_size == 10 and res.n_subsets == 5 and len(res.values) == 5
    g = np.random.default_rng(0)
    for i in range(5):
        xs, ys = x[g.choice(40, 10, replace=False)], y[g.choice(30, 10, replace=False)]
        assert res.values[i] == pytest.approx(_direct_mmd2(xs, ys), rel=1e-10)
    assert res.mean == pytest.approx(np.mean(res.values))
    again = D.kernel_distance(x, y, n_subsets=5, subset_size=10, seed=0)
    np.testing.assert_array_equal(again.values, res.values)
    other = D.kernel_distance(x, y, n_subsets=5, subset_size=10, seed=1)
    assert not np.array_equal(other.values, res.values)


def test_kid_separates_same_from_shifted_distribution():
    r = _rng(5)
    x, x2, y = r.normal(size=(400, 4)), r.normal(size=(400, 4)), r.normal(size=(400, 4)) + 1.0
    same = D.kernel_distance(x, x2, n_subsets=20, subset_size=200).mean
    shifted = D.kernel_distance(x, y, n_subsets=20, subset_size=200).mean
    assert abs(same) < 0.05 < shifted


def test_distribution_distances_keys_are_named_by_space():
    r = _rng(6)
    d = D.distribution_distances(r.normal(size=(50, 3)), r.normal(size=(20, 3)), "identity", n_subsets=4)
    assert set(d) == {"fd_identity", "fd_identity_regularized", "kid_identity", "kid_identity_sd",
                      "kid_identity_subset_size", "n", "n_reference"}
    assert d["kid_identity_subset_size"] == 20 and d["n"] == 50 and d["n_reference"] == 20
    with pytest.raises(D.DistanceError, match="must match"):
        D.distribution_distances(r.normal(size=(5, 3)), r.normal(size=(5, 3)), "FID space")


# --- feature spaces ------------------------------------------------------------------------------
class _Net(nn.Module):
    """A classifier without forward_features: the pre-hook on its last Linear gives the features."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(4, 7)

    def forward(self, x):
        return self.fc(self.body(x))


def _images(tmp_path, n=5, size=20):
    r = _rng(7)
    paths = []
    for i in range(n):
        p = tmp_path / f"im{i}.png"
        Image.fromarray(r.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    return paths


def _to_tensor(img):
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)


def _net_space(net):
    """A space of a bare test net (no ModelConfig): its body's output, images through `_to_tensor`."""

    @torch.no_grad()
    def embed(batch):
        return net.body(batch)

    return D.FeatureSpace("baseline", embed, _to_tensor, fingerprint=D.module_fingerprint(net))


def test_extract_features_in_order_and_cached(tmp_path):
    torch.manual_seed(0)
    net = _Net()
    space = _net_space(net)
    paths = _images(tmp_path)
    cache = tmp_path / "cache" / "f.npz"
    f = D.extract_features(space, paths, batch_size=2, cache=cache, progress=False)
    assert f.shape == (5, 4) and f.dtype == np.float32
    with torch.no_grad():
        direct = net.body(torch.stack([_to_tensor(Image.open(p).convert("RGB")) for p in paths])).numpy()
    np.testing.assert_allclose(f, direct, rtol=1e-5, atol=1e-6)
    assert cache.is_file()
    # Same space, weights and paths: a cache hit (the stored array comes back even though embed changed).
    calls = []
    hit = D.FeatureSpace("baseline", lambda b: calls.append(1) or torch.zeros(len(b), 4), _to_tensor,
                         fingerprint=space.fingerprint)
    np.testing.assert_array_equal(D.extract_features(hit, paths, cache=cache, progress=False), f)
    assert calls == []
    # Changed weights give a new fingerprint and recompute; so does a different path list.
    with torch.no_grad():
        net.body[0].weight.add_(1.0)
    space2 = _net_space(net)
    assert space2.fingerprint != space.fingerprint
    f2 = D.extract_features(space2, paths, cache=cache, progress=False)
    assert not np.allclose(f2, f)
    g = D.extract_features(space2, paths[:3], cache=cache, progress=False)
    np.testing.assert_allclose(g, f2[:3], rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # 3 samples in 3-D: singular covariance
def test_callable_space_and_compare_sets(tmp_path):
    paths = _images(tmp_path, n=6)

    def embed(images):
        return np.stack([np.asarray(im, dtype=np.float64).mean(axis=(0, 1)) for im in images])

    space = D.callable_space("pixelmean", embed)
    table = D.compare_sets(space, {"a": paths[:3], "b": paths[3:]}, paths, reference_name="all", n_subsets=3)
    assert list(table["set"]) == ["a", "b"]
    assert set(table.columns) >= {"set", "reference", "space", "fd", "kid", "kid_sd", "kid_subset_size"}
    feats = embed([Image.open(p).convert("RGB") for p in paths])
    assert table.loc[0, "fd"] == pytest.approx(D.frechet_distance(feats[:3], feats))
    assert int(table.loc[0, "kid_subset_size"]) == 3


def test_clip_space_with_tiny_config_model(tmp_path):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    cfg = CLIPVisionConfig(image_size=16, patch_size=8, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                           num_attention_heads=4, projection_dim=12)
    model = CLIPVisionModelWithProjection(cfg).eval()
    folder = tmp_path / "clip"
    model.save_pretrained(folder)
    space = D.clip_space(folder)
    paths = _images(tmp_path, n=4, size=24)
    f = D.extract_features(space, paths, batch_size=3, progress=False)
    assert f.shape == (4, 12)
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, rtol=1e-5)
    # Same numbers as a direct call with CLIP's resize/centre-crop/normalisation.
    x = torch.stack([space.transform(Image.open(p).convert("RGB")) for p in paths])
    assert x.shape == (4, 3, 16, 16)
    with torch.no_grad():
        z = torch.nn.functional.normalize(model(pixel_values=x).image_embeds, dim=-1).numpy()
    np.testing.assert_allclose(f, z, rtol=1e-5, atol=1e-6)
    with pytest.raises(D.DistanceError, match="config.json"):
        D.clip_space(tmp_path / "missing")


def test_cli_writes_named_keys(tmp_path):
    from syntfer.core.manifest import write_manifest
    import pandas as pd

    paths = _images(tmp_path, n=6)
    write_manifest(pd.DataFrame({"path": paths[:3]}), tmp_path / "a.csv")
    write_manifest(pd.DataFrame({"path": paths}), tmp_path / "ref.csv")
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    cfg = CLIPVisionConfig(image_size=16, patch_size=8, hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                           num_attention_heads=4, projection_dim=8)
    CLIPVisionModelWithProjection(cfg).save_pretrained(tmp_path / "clip")
    import argparse

    parser = argparse.ArgumentParser()
    D.add_arguments(parser)
    args = parser.parse_args(["--space", "clip", "--clip", str(tmp_path / "clip"), "--set", f"gan_f={tmp_path / 'a.csv'}",
                              "--reference", f"ffhq={tmp_path / 'ref.csv'}", "--out", str(tmp_path / "out"),
                              "--n-subsets", "2"])
    assert D.run(args) == 0
    nested = json.loads((tmp_path / "out" / "distances.json").read_text())
    assert set(nested) == {"gan_f"} and set(nested["gan_f"]) == {"fd_clip", "kid_clip", "kid_clip_sd"}


def test_judge_space_is_the_judges_own_features(tmp_path):
    """One definition of judge-space features: the space gives what `Judge.outputs` gives for the same files (its
    batched eval transform, the input of its classifier layer), whatever the batching."""
    from syntfer.engine.models import create_model
    from syntfer.instruments.judge import Judge

    torch.manual_seed(0)
    model = create_model("ir_tiny")
    judge = Judge(model, 1.7, "judge")
    space = D.judge_space(judge)
    assert space.name == "judge" and space.mode == judge.mode and space.info["kind"] == "judge"
    paths = _images(tmp_path, n=3, size=30)
    f = D.extract_features(space, paths, batch_size=2, progress=False)
    assert f.shape == (3, model.num_features) and f.dtype == np.float32
    np.testing.assert_allclose(f, judge.outputs(paths).features, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(f[:2], judge.outputs(paths[:2]).features)  # same batch: the same bits


def test_feature_cache_is_the_same_bytes_in_two_checkouts(tmp_path):
    torch.manual_seed(0)
    space = _net_space(_Net())
    caches = []
    for where in ("a", "b/deeper"):
        (tmp_path / where / "sets").mkdir(parents=True)
        paths = _images(tmp_path / where / "sets")
        caches.append(tmp_path / where / "results" / "f.npz")
        D.extract_features(space, paths, batch_size=2, cache=caches[-1], progress=False)
    assert caches[0].read_bytes() == caches[1].read_bytes()
    with np.load(caches[0]) as z:
        assert z["paths"].tolist()[0] == "../sets/im0.png"
