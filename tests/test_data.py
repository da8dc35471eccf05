"""Data pipeline: transforms, seeded stratified validation split, epoch sampler, loaders."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from syntfer.core import labels as L
from syntfer.engine.data import (BatchAugment, BatchCollate, DataError, EpochSampler, ManifestDataset, as_frame, build_loader, epoch_sampler,
                                 eval_transform, image_mode, label_indices, loader_throughput, resize_tensor,
                                 split_validation, train_transform)
from syntfer.core.manifest import write_manifest
from syntfer.engine.models.registry import ModelConfig

CFG = ModelConfig("t", input_size=(3, 24, 32), mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.5))


def _frame(counts: dict[str, int]) -> pd.DataFrame:
    rows = [{"path": f"/x/{c}_{i:03d}.png", "label": c} for c, n in counts.items() for i in range(n)]
    return pd.DataFrame(rows)


def _images(tmp_path, n_per_class: int = 4, size: int = 40) -> pd.DataFrame:
    rows = []
    rng = np.random.default_rng(0)
    for k, c in enumerate(L.CLASSES):
        for i in range(n_per_class):
            a = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            p = tmp_path / f"{c}_{i}.png"
            Image.fromarray(a).save(p)
            rows.append({"path": str(p), "label": c})
    return pd.DataFrame(rows)


def test_eval_transform_resizes_and_normalises_exactly():
    img = Image.new("RGB", (50, 70), (51, 102, 204))
    x = eval_transform(CFG)(img)
    assert x.shape == (3, 24, 32) and x.dtype == torch.float32
    expected = (torch.tensor([51, 102, 204]) / 255 - torch.tensor(CFG.mean)) / torch.tensor(CFG.std)
    torch.testing.assert_close(x.mean(dim=(1, 2)), expected.float(), atol=1e-5, rtol=0)
    assert float(x.std(dim=(1, 2)).max()) < 1e-5  # constant image stays constant


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "nearest"])
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_eval_transform_equals_torchvision_chain(interpolation, mode):
    """The plain-torch eval transform does what torchvision's v2 chain does (evaluation avoids importing it)."""
    from torchvision.transforms import InterpolationMode, v2

    ch = 3 if mode == "RGB" else 1
    cfg = ModelConfig("t", input_size=(ch, 24, 32), mean=CFG.mean[:ch], std=CFG.std[:ch], interpolation=interpolation)
    ref = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
                      v2.Resize((24, 32), interpolation=InterpolationMode(interpolation), antialias=True),
                      v2.Normalize(list(cfg.mean), list(cfg.std))])
    rng = np.random.default_rng(1)
    for shape in ((70, 50), (12, 20), (24, 32)):
        a = rng.integers(0, 256, shape + ((3,) if ch == 3 else ()), dtype=np.uint8)
        img = Image.fromarray(a, mode)
        torch.testing.assert_close(eval_transform(cfg)(img), ref(img), atol=1e-5, rtol=0)
        u8 = v2.functional.pil_to_tensor(img)
        torch.testing.assert_close(eval_transform(cfg)(u8), ref(u8), atol=1e-5, rtol=0)
        # uint8 resizing at decode (ManifestDataset(size=...)) equals torchvision's uint8 resize
        assert torch.equal(resize_tensor(u8, (24, 32), interpolation),
                           v2.functional.resize(u8, [24, 32], interpolation=InterpolationMode(interpolation),
                                                antialias=True))
    with pytest.raises(DataError, match="interpolation 'lanczos'"):
        eval_transform(ModelConfig("t", input_size=(3, 8, 8), interpolation="lanczos"))


def test_evaluation_imports_neither_torchvision_nor_timm():
    import subprocess
    import sys

    code = ("import sys; import syntfer.engine.evaluation, syntfer.engine.training, syntfer.engine.models, syntfer.instruments.setmetrics; "
            "print(sorted(m for m in ('torchvision', 'timm', 'torch._dynamo') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_train_transform_shapes_and_seeded_randomness(tmp_path):
    df = _images(tmp_path, n_per_class=1)
    ds = ManifestDataset(df, train_transform(CFG), mode=image_mode(CFG))
    a, la = ds[(3, 1234)]
    b, lb = ds[(3, 1234)]
    c, _ = ds[(3, 999)]
    assert a.shape == (3, 24, 32) and la == lb == 3
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # the per-sample seed does not leak into the global generator
    torch.manual_seed(5)
    ref = torch.rand(3)
    torch.manual_seed(5)
    ds[(0, 77)]
    assert torch.equal(torch.rand(3), ref)


def test_train_transform_without_randomness_equals_eval(tmp_path):
    df = _images(tmp_path, n_per_class=1)
    tf = train_transform(CFG, flip_or_noise_p=0.0, flip_p=0.0, erasing_p=0.0)
    ds_t = ManifestDataset(df, tf)
    ds_e = ManifestDataset(df, eval_transform(CFG))
    assert torch.equal(ds_t[(2, 1)][0], ds_e[2][0])


def test_random_erasing_and_flip_happen_at_expected_rates():
    img = Image.fromarray(np.tile(np.arange(1, 41, dtype=np.uint8)[None, :, None] * 6, (40, 1, 3)))
    cfg = ModelConfig("t", input_size=(3, 40, 40), mean=(0, 0, 0), std=(1, 1, 1))
    tf = train_transform(cfg, flip_or_noise_p=0.0, flip_p=1.0, erasing_p=0.0)
    x = tf(img)
    assert x[0, 0, 0] > x[0, 0, -1]  # the ramp was flipped
    tf = train_transform(cfg, flip_or_noise_p=0.0, flip_p=0.0, erasing_p=1.0)
    erased = (tf(img) == 0).sum(dim=0).eq(3).float().mean()  # erased pixels are zero in every channel
    assert 0.02 * 0.9 <= float(erased) <= 0.1 * 1.1


def test_grey_model_gets_one_channel(tmp_path):
    cfg = ModelConfig("g", input_size=(1, 16, 16), mean=(0.5,), std=(0.5,))
    df = _images(tmp_path, n_per_class=1)
    assert image_mode(cfg) == "L"
    x, _ = ManifestDataset(df, eval_transform(cfg), mode=image_mode(cfg))[0]
    assert x.shape == (1, 16, 16)
    with pytest.raises(DataError, match="mean/std lengths"):
        image_mode(ModelConfig("bad", input_size=(1, 8, 8)))


def test_validation_split_is_stratified_disjoint_seeded_and_order_free():
    counts = {"anger": 50, "disgust": 7, "fear": 1, "happy": 200, "neutral": 2, "sad": 33, "surprise": 10}
    df = _frame(counts)
    tr, va = split_validation(df, 0.1, seed=3)
    assert len(tr) + len(va) == len(df)
    assert set(tr["path"]).isdisjoint(va["path"])
    assert set(tr["path"]) | set(va["path"]) == set(df["path"])
    got = va["label"].value_counts().to_dict()
    assert got == {"anger": 5, "disgust": 1, "happy": 20, "neutral": 1, "sad": 3, "surprise": 1}  # fear: 1 image stays
    assert (tr["split"] == "train").all() and (va["split"] == "val").all()
    _, va2 = split_validation(df.sample(frac=1.0, random_state=1), 0.1, seed=3)
    assert sorted(va2["path"]) == sorted(va["path"])  # independent of row order
    _, va3 = split_validation(df, 0.1, seed=4)
    assert sorted(va3["path"]) != sorted(va["path"])
    assert va3["label"].value_counts().to_dict() == got


def test_validation_split_rejects_bad_input():
    df = _frame({"anger": 4, "happy": 4})
    with pytest.raises(DataError, match="fraction"):
        split_validation(df, 0.0, 0)
    with pytest.raises(DataError, match="more than once"):
        split_validation(pd.concat([df, df.iloc[:1]]), 0.2, 0)


def test_as_frame_checks_labels_and_splits(tmp_path):
    df = _frame({"anger": 2, "happy": 2}).assign(split=["train", "test", "train", "test"])
    f = tmp_path / "m.csv"
    write_manifest(df, f)
    assert len(as_frame(f, split="train")) == 2
    with pytest.raises(DataError, match="no rows with split 'val'"):
        as_frame(f, split="val")
    bad = df.copy()
    bad.loc[2, "label"] = ""
    with pytest.raises(DataError, match="row 2: label ''"):
        as_frame(bad)
    assert list(label_indices(bad)) == [0, 0, -1, 3]


def test_epoch_sampler_is_a_function_of_seed_and_epoch():
    labels = np.array([0] * 90 + [3] * 10)
    s1, s2 = EpochSampler(labels, seed=7), EpochSampler(labels, seed=7)
    s1.set_position(2)
    s2.set_position(2)
    a, b = list(s1), list(s2)
    assert a == b and len(a) == 100
    assert sorted(i for i, _ in a) == list(range(100))
    s2.set_position(2, start=37)
    assert list(s2) == a[37:] and len(s2) == 63
    s2.set_position(3)
    assert [i for i, _ in s2] != [i for i, _ in a]
    with pytest.raises(DataError):
        s2.set_position(0, start=101)


def test_balanced_sampler_draws_classes_evenly():
    labels = np.array([0] * 900 + [3] * 100)
    s = EpochSampler(labels, seed=0, balanced=True)
    s.set_position(0)
    drawn = labels[[i for i, _ in s]]
    share = (drawn == 3).mean()
    assert 0.45 < share < 0.55  # 10 % of the data, half of the draws
    with pytest.raises(DataError, match="labelled"):
        EpochSampler(np.array([0, -1]), seed=0, balanced=True)


def test_loaders_batches_drop_last_and_throughput(tmp_path):
    df = _images(tmp_path, n_per_class=3)  # 21 images
    ds = ManifestDataset(df, train_transform(CFG), cache=True)
    ds.preload(progress=False)
    assert all(t is not None for t in ds.cache)
    train = build_loader(ds, batch_size=8, train=True, seed=1)
    batches = [y for _, y in train]
    assert [len(y) for y in batches] == [8, 8]  # 21 // 8 full batches, the partial one dropped
    sampler = epoch_sampler(train)
    sampler.set_position(0)
    first = torch.cat([y for _, y in train])
    sampler.set_position(0)
    assert torch.equal(first, torch.cat([y for _, y in train]))
    ev = build_loader(ManifestDataset(df, eval_transform(CFG)), batch_size=8, train=False)
    ys = torch.cat([y for _, y in ev])
    assert ys.tolist() == [k for k in range(7) for _ in range(3)]
    assert loader_throughput(ev, max_batches=1, warmup=1) > 0
    with pytest.raises(DataError, match="not built by build_loader"):
        epoch_sampler(ev)


def _uint8_batch(n: int = 32, h: int = 24, w: int = 32) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(1).integers(0, 256, (n, 3, h, w), dtype=np.uint8))


def test_batch_augment_without_randomness_equals_eval_normalisation():
    x = _uint8_batch()
    out = BatchAugment(CFG, train=False)(x)
    want = torch.stack([eval_transform(CFG)(img) for img in x])
    assert torch.allclose(out, want, atol=1e-6)
    off = BatchAugment(CFG, noise_std=0.0, flip_or_noise_p=0.0, flip_p=0.0, erasing_p=0.0)
    assert torch.allclose(off(x, torch.arange(len(x))), want, atol=1e-6)


def test_batch_augment_is_seeded_and_applies_each_operation():
    x = _uint8_batch(256)
    aug = BatchAugment(CFG)
    seeds = torch.arange(256) * 7919
    a, b = aug(x, seeds), aug(x, seeds)
    assert torch.equal(a, b)
    assert not torch.equal(a, aug(x, seeds + 1))
    plain = BatchAugment(CFG, train=False)(x)
    flipped = BatchAugment(CFG, train=False)(x.flip(-1))
    erased = (a == 0).all(1).flatten(1).any(1)  # a zero rectangle in every channel
    same = torch.isclose(a, plain, atol=1e-6).all(1).flatten(1).float().mean(1) > 0.85
    mirrored = torch.isclose(a, flipped, atol=1e-6).all(1).flatten(1).float().mean(1) > 0.85
    noisy = ~same & ~mirrored
    # rates: erasing 0.5; flip 0.5·0.5 + 0.5·(1-0.25)... net flip = P(flip xor flip) = 0.5; noise 0.25
    assert 0.38 < erased.float().mean() < 0.62
    assert 0.38 < mirrored.float().mean() < 0.62
    assert 0.15 < noisy.float().mean() < 0.35
    with pytest.raises(DataError, match="one seed per image"):
        aug(x)


def test_batch_collate_loader_resizes_at_decode_and_matches_workers(tmp_path):
    frame = _images(tmp_path, n_per_class=3, size=40)
    ds = ManifestDataset(frame, None, cache=True, size=(24, 32))
    collate = BatchCollate(BatchAugment(CFG))
    assert ds[(0, 5)][0].shape == (3, 24, 32) and ds[(0, 5)][0].dtype == torch.uint8
    loader = build_loader(ds, batch_size=8, train=True, seed=3, collate_fn=collate)
    epoch_sampler(loader).set_position(1)
    x0 = [b[0] for b in loader]
    loader2 = build_loader(ManifestDataset(frame, None, size=(24, 32)), batch_size=8, train=True, seed=3,
                           num_workers=1, collate_fn=collate)
    epoch_sampler(loader2).set_position(1)
    x1 = [b[0] for b in loader2]
    assert all(torch.equal(a, b) for a, b in zip(x0, x1)) and x0[0].shape == (8, 3, 24, 32)
    with pytest.raises(DataError, match="BatchCollate"):
        build_loader(ds, batch_size=8, train=True)
