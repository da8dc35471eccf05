"""Data pipeline for classifiers: manifest datasets, transforms from a model's config, splits, loaders.

Randomness never comes from global state: an `EpochSampler` draws the order of epoch ``e`` and one
augmentation seed per drawn sample from ``(seed, e)``, and the dataset applies the transform under that
seed. So a run resumed at any epoch or step sees exactly the batches and augmentations an uninterrupted run
sees, whatever the number of loader workers.

Training augmentation follows upstream (docs/method.md §7): with p 0.5 either a horizontal flip or additive
Gaussian noise (upstream ``add_gaussian_noise(var=30)`` on 0..255 pixels, i.e. sigma sqrt(30)/255 in [0, 1]
units), then RandomHorizontalFlip, resize to the model's input size, normalisation, RandomErasing
(p 0.5, scale 0.02-0.1).

Two ways to run it: `train_transform` applies it per sample with torchvision (upstream's order: noise before
the resize), and `BatchCollate` + `BatchAugment` apply the same operations with the same probabilities to a
whole batch of images already resized to the model's input (so noise is added at the model's resolution).
The batched path costs a few microseconds per image instead of ~1 ms (measured in
`benchmarks/bench_models.py --loader`); on 2 CPU cores that is the difference between a loader that keeps
up with a small net and one that halves its speed. Each batch's random numbers come from a generator seeded
by the batch's per-sample seeds, so results still depend only on (seed, epoch, position), never on workers.
"""
from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler
from tqdm import tqdm

from syntfer.core import labels as L
from syntfer.core.images import load_image
from syntfer.core.manifest import read_manifest
from syntfer.engine.models.registry import ModelConfig
from syntfer.core.seeding import derive_seed, numpy_rng, torch_generator

UPSTREAM_NOISE_STD = math.sqrt(30.0) / 255.0  # POSTER/SCN image_utils.add_gaussian_noise(var=30)
UNLABELED = -1


class DataError(ValueError):
    """Bad input to the data pipeline; the message names the manifest/row/value and what was expected."""


# --------------------------------------------------------------------------- transforms
# torchvision is imported only where the per-image training chain needs it (`train_transform`): importing it
# pulls in torch._dynamo (~2.5 s on these CPUs), paid by every notebook and CLI call that only evaluates.
INTERPOLATIONS = ("nearest", "nearest-exact", "bilinear", "bicubic")


def _interpolation(name: str) -> str:
    mode = str(name).lower()
    if mode not in INTERPOLATIONS:
        raise DataError(f"model config interpolation {name!r} is not one of {list(INTERPOLATIONS)}")
    return mode


def pil_to_uint8(img: Image.Image) -> torch.Tensor:
    """A PIL image as a uint8 CxHxW tensor (what torchvision's ``pil_to_tensor`` returns for L/RGB)."""
    a = np.array(img, dtype=np.uint8)  # a writable copy
    a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(a))


@functools.lru_cache(maxsize=None)
def _native_uint8(mode: str, device_type: str) -> bool:
    """Whether torchvision's v2 ``resize`` interpolates a uint8 tensor directly (else via float32 + round).
    Cached: it is asked once per decoded image."""
    if mode in ("nearest", "nearest-exact"):
        return True
    if device_type != "cpu":
        return False
    if mode == "bilinear":
        import platform

        return torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512") or platform.machine() in (
            "aarch64", "arm64")
    return mode == "bicubic"


def resize_tensor(x: torch.Tensor, size: Sequence[int], interpolation: str = "bilinear") -> torch.Tensor:
    """Resize a CxHxW or BxCxHxW tensor to `size` (h, w) with antialiasing, exactly as torchvision's v2
    ``resize`` does (same dtype out; uint8 interpolated natively where torchvision does, else in float32 and
    rounded), so decode-time resizing needs no torchvision import."""
    mode = _interpolation(interpolation)
    h, w = (int(v) for v in size)
    y = x if x.ndim == 4 else x.unsqueeze(0)
    if tuple(y.shape[-2:]) == (h, w):
        return x
    aa = mode in ("bilinear", "bicubic")
    kw = {"align_corners": False} if aa else {}
    cast = y.dtype == torch.uint8 and not _native_uint8(mode, y.device.type)
    z = F.interpolate(y.float() if cast else y, size=(h, w), mode=mode, antialias=aa, **kw)
    if cast:
        z = z.clamp_(0, 255).round_().to(torch.uint8)
    return z if x.ndim == 4 else z.squeeze(0)


class EvalTransform:
    """Resize to the model's input size and normalise: a PIL image or uint8 CxHxW tensor in, float CxHxW out.

    The same operations as torchvision's ``v2.Compose([ToImage(), ToDtype(float32, scale=True),
    Resize(size, interpolation, antialias=True), Normalize(mean, std)])`` (tests/test_data.py checks the
    equality) in plain torch, so evaluation does not import torchvision."""

    def __init__(self, cfg: ModelConfig):
        _, h, w = cfg.input_size
        self.size = (int(h), int(w))
        self.interpolation = _interpolation(cfg.interpolation)
        self.mean = torch.tensor(cfg.mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(cfg.std, dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, img: Image.Image | torch.Tensor) -> torch.Tensor:
        x = pil_to_uint8(img) if isinstance(img, Image.Image) else img
        if x.dtype == torch.uint8:
            x = x.float().mul_(1.0 / 255)  # torchvision's ToDtype(scale=True), bit for bit
        x = resize_tensor(x, self.size, self.interpolation)
        return (x - self.mean) / self.std

    def __repr__(self) -> str:
        return f"EvalTransform(size={self.size}, interpolation={self.interpolation!r})"


def image_mode(cfg: ModelConfig) -> str:
    """PIL mode a model wants ('L' for 1-channel inputs, else 'RGB')."""
    channels = cfg.input_size[0]
    if channels not in (1, 3):
        raise DataError(f"model {cfg.name}: input_size {cfg.input_size} has {channels} channels; expected 1 or 3")
    if len(cfg.mean) != channels or len(cfg.std) != channels:
        raise DataError(f"model {cfg.name}: mean/std lengths {len(cfg.mean)}/{len(cfg.std)} != {channels} channels")
    return "L" if channels == 1 else "RGB"


def eval_transform(cfg: ModelConfig) -> EvalTransform:
    """Resize to the model's input size and normalise (PIL image or uint8 tensor in, float CHW out)."""
    return EvalTransform(cfg)


def train_transform(cfg: ModelConfig, *, noise_std: float = UPSTREAM_NOISE_STD, flip_or_noise_p: float = 0.5,
                    flip_p: float = 0.5, erasing_p: float = 0.5,
                    erasing_scale: tuple[float, float] = (0.02, 0.1)):
    """Upstream's training augmentation (see module docstring), sized and normalised for `cfg`: a torchvision
    ``v2.Compose``."""
    from torchvision.transforms import InterpolationMode, v2

    _, h, w = cfg.input_size
    return v2.Compose([
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.RandomApply([v2.RandomChoice([v2.RandomHorizontalFlip(p=1.0),
                                         v2.GaussianNoise(mean=0.0, sigma=noise_std, clip=True)])],
                       p=flip_or_noise_p),
        v2.RandomHorizontalFlip(p=flip_p),
        v2.Resize((h, w), interpolation=InterpolationMode(_interpolation(cfg.interpolation)), antialias=True),
        v2.Normalize(list(cfg.mean), list(cfg.std)),
        v2.RandomErasing(p=erasing_p, scale=erasing_scale, value=0),
    ])


class BatchAugment:
    """`train_transform`'s operations vectorised over a uint8 batch (B,C,H,W) at the model's input size.

    Per sample, with the probabilities of `train_transform`: flip-or-noise (p `flip_or_noise_p`, then one of
    the two with p 0.5), a horizontal flip (p `flip_p`), normalisation, one erased rectangle (p `erasing_p`,
    area `erasing_scale` of the image, aspect ratio log-uniform in (0.3, 3.3), value 0) — torchvision's
    RandomErasing parameters, drawn once instead of by rejection.
    """

    def __init__(self, cfg: ModelConfig, *, train: bool = True, noise_std: float = UPSTREAM_NOISE_STD,
                 flip_or_noise_p: float = 0.5, flip_p: float = 0.5, erasing_p: float = 0.5,
                 erasing_scale: tuple[float, float] = (0.02, 0.1), affine: float = 0.0):
        if affine < 0:
            raise DataError(f"BatchAugment affine={affine!r}; expected >= 0")
        self.train = train
        self.affine = affine
        self.noise_std, self.flip_or_noise_p, self.flip_p = noise_std, flip_or_noise_p, flip_p
        self.erasing_p, self.erasing_scale = erasing_p, erasing_scale
        self.mean = torch.tensor(cfg.mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(cfg.std, dtype=torch.float32).view(1, -1, 1, 1)

    def __call__(self, x: torch.Tensor, seeds: torch.Tensor | None = None) -> torch.Tensor:
        x = x.float().div_(255.0)
        if self.train:
            if seeds is None or len(seeds) != len(x):
                raise DataError("BatchAugment(train=True) needs one seed per image")
            g = torch.Generator().manual_seed(int(derive_seed(*[int(s) for s in seeds[:4]], len(seeds))))
            b, _, h, w = x.shape
            u = torch.rand(b, 7, generator=g)
            first = u[:, 0] < self.flip_or_noise_p
            noisy = first & (u[:, 1] < 0.5)
            flip = (first & ~noisy) ^ (u[:, 2] < self.flip_p)  # two flips cancel, as in the per-sample chain
            if self.noise_std > 0 and noisy.any():
                noise = torch.randn(x.shape, generator=g) * self.noise_std
                x = torch.where(noisy.view(-1, 1, 1, 1), (x + noise).clamp_(0.0, 1.0), x)
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
            if self.affine > 0:
                x = self._jitter(x, g)
            x = (x - self.mean) / self.std
            erase = u[:, 3] < self.erasing_p
            if erase.any():
                lo, hi = self.erasing_scale
                area = (lo + (hi - lo) * u[:, 4]) * h * w
                log_r = math.log(0.3) + (math.log(3.3) - math.log(0.3)) * u[:, 5]
                eh = torch.sqrt(area * torch.exp(log_r)).round().clamp(1, h)
                ew = torch.sqrt(area / torch.exp(log_r)).round().clamp(1, w)
                top = ((h - eh + 1) * u[:, 6]).floor()
                left = ((w - ew + 1) * torch.rand(b, generator=g)).floor()
                rows = torch.arange(h).view(1, h, 1)
                cols = torch.arange(w).view(1, 1, w)
                box = ((rows >= top.view(-1, 1, 1)) & (rows < (top + eh).view(-1, 1, 1))
                       & (cols >= left.view(-1, 1, 1)) & (cols < (left + ew).view(-1, 1, 1)))
                x = x.masked_fill((box & erase.view(-1, 1, 1)).unsqueeze(1), 0.0)
            return x
        return (x - self.mean) / self.std


    def _jitter(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Per image, a random similarity: shift up to `affine` of the size, scale 1 ± affine, rotation up to
        100·affine degrees (0.05 -> ±5 % shift and scale, ±5°); borders reflect. Faces in FER datasets are
        aligned only roughly; this keeps a position-aware head from tying a cue to one pixel."""
        b = len(x)
        a = self.affine
        r = torch.rand(b, 4, generator=g) * 2 - 1
        angle = r[:, 0] * math.radians(100 * a)
        scale = 1 + a * r[:, 1]
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, 2 * a * r[:, 2]], 1),
                             torch.stack([sin, cos, 2 * a * r[:, 3]], 1)], 1)
        grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
        return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="reflection",
                                               align_corners=False)


class BatchCollate:
    """DataLoader `collate_fn` for a `ManifestDataset` built with ``transform=None``: stacks the uint8 images
    and applies a `BatchAugment` (picklable, so it runs inside loader workers)."""

    def __init__(self, augment: BatchAugment):
        self.augment = augment

    def __call__(self, items: list[tuple[torch.Tensor, int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.stack([it[0] for it in items])
        y = torch.tensor([it[1] for it in items], dtype=torch.long)
        seeds = torch.tensor([it[2] for it in items], dtype=torch.long)
        return self.augment(x, seeds), y


# --------------------------------------------------------------------------- frames and splits
def as_frame(data: pd.DataFrame | str | os.PathLike, *, split: str | None = None,
             require_labels: bool = True) -> pd.DataFrame:
    """A manifest DataFrame from a frame or a manifest path, optionally restricted to one `split`.

    With `require_labels`, every row must carry a canonical label (DataError names the first bad row).
    """
    if isinstance(data, pd.DataFrame):
        df, where = data.copy(), "manifest frame"
        if "path" not in df.columns:
            raise DataError(f"{where}: no 'path' column; has {list(df.columns)}")
    else:
        where = str(data)
        df = read_manifest(data, required=("path", "label") if require_labels else ("path",))
    if split is not None:
        if "split" not in df.columns:
            raise DataError(f"{where}: split {split!r} requested but the manifest has no 'split' column")
        keep = df["split"].astype(str) == split
        if not keep.any():
            raise DataError(f"{where}: no rows with split {split!r}; splits present: "
                            f"{sorted(df['split'].astype(str).unique())}")
        df = df[keep]
    if require_labels:
        if "label" not in df.columns:
            raise DataError(f"{where}: no 'label' column; training and evaluation need labels")
        lab = df["label"].astype(str)
        bad = ~lab.isin(L.CLASSES)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{where} row {df.index[i]}: label {lab.iloc[i]!r} is not one of {list(L.CLASSES)}")
    if df.empty:
        raise DataError(f"{where}: no rows")
    return df.reset_index(drop=True)


def label_indices(frame: pd.DataFrame) -> np.ndarray:
    """Canonical label indices of a frame (-1 for empty labels / no label column)."""
    if "label" not in frame.columns:
        return np.full(len(frame), UNLABELED, dtype=np.int64)
    lookup = {c: i for i, c in enumerate(L.CLASSES)} | {"": UNLABELED}
    try:
        return np.array([lookup[str(x)] for x in frame["label"]], dtype=np.int64)
    except KeyError as e:
        raise DataError(f"label {e.args[0]!r} is not one of {list(L.CLASSES)} (or empty)") from e


def split_validation(frame: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded stratified hold-out: (train, val) frames, disjoint, with a ``split`` column 'train'/'val'.

    Per class, rows are ordered by path (so the split does not depend on manifest row order) and
    ``round(fraction * n)`` of them, clamped to [1, n-1] for classes with >= 2 images, go to validation,
    chosen by a generator derived from (seed, class). A class with a single image stays in training.
    """
    if not 0.0 < fraction < 1.0:
        raise DataError(f"validation fraction {fraction!r} must be in (0, 1)")
    if frame["path"].duplicated().any():
        dup = frame["path"][frame["path"].duplicated()].iloc[0]
        raise DataError(f"manifest lists {dup!r} more than once; a hold-out split would leak it")
    is_val = np.zeros(len(frame), dtype=bool)
    labels = frame["label"].astype(str).to_numpy()
    paths = frame["path"].astype(str).to_numpy()
    for cls in L.CLASSES:
        rows = np.flatnonzero(labels == cls)
        n = rows.size
        if n < 2:
            continue
        rows = rows[np.argsort(paths[rows], kind="stable")]
        n_val = min(max(int(round(fraction * n)), 1), n - 1)
        pick = numpy_rng(seed, "validation-split", cls).permutation(n)[:n_val]
        is_val[rows[pick]] = True
    out = frame.copy()
    out["split"] = np.where(is_val, "val", "train")
    return out[~is_val].reset_index(drop=True), out[is_val].reset_index(drop=True)


def class_counts(frame: pd.DataFrame) -> dict[str, int]:
    """Per-class counts in canonical order (zeros included)."""
    return L.counts(frame["label"].astype(str))


# --------------------------------------------------------------------------- dataset and sampler
class DecodedImages(dict):
    """Decoded uint8 images keyed by (path, mode, size), shared by datasets within one process."""


class ManifestDataset(Dataset):
    """Images of a manifest as (tensor, canonical label index or -1).

    Items are either an int index or ``(index, seed)``; with a seed the transform runs under a torch RNG
    seeded with it (global RNG state is restored afterwards). With ``cache=True``, decoded images are kept
    in memory as uint8 tensors (call `preload()` before forking loader workers so they share it); a
    `DecodedImages` store passed as `cache` is shared with other datasets (several seeds of one training set,
    the test sets of several models), so each image is decoded once per process.
    With ``size=(h, w)`` images are resized (antialiased) to that size when decoded, before caching. With
    ``transform=None`` items are ``(uint8 image, label, seed)`` for a `BatchCollate`.
    """

    def __init__(self, frame: pd.DataFrame, transform, *, mode: str = "RGB", cache: "bool | DecodedImages" = False,
                 size: tuple[int, int] | None = None):
        self.paths = frame["path"].astype(str).tolist()
        self.labels = label_indices(frame)
        self.transform = transform
        self.mode = mode
        self.size = list(size) if size is not None else None
        self.store = cache if isinstance(cache, DecodedImages) else None
        use = self.store is not None or bool(cache)  # an empty shared store is falsy but still a cache
        self.cache: list[torch.Tensor | None] | None = [None] * len(self.paths) if use else None

    def __len__(self) -> int:
        return len(self.paths)

    def _load(self, i: int) -> torch.Tensor:
        if self.cache is not None and self.cache[i] is not None:
            return self.cache[i]
        key = (self.paths[i], self.mode, tuple(self.size) if self.size is not None else None)
        img = self.store.get(key) if self.store is not None else None
        if img is None:
            img = pil_to_uint8(load_image(self.paths[i], self.mode))
            if self.size is not None and list(img.shape[-2:]) != self.size:
                img = resize_tensor(img, self.size)
            if self.store is not None:
                self.store[key] = img
        if self.cache is not None:
            self.cache[i] = img
        return img

    def preload(self, progress: bool = True) -> None:
        """Decode every image into the cache (no-op without cache)."""
        if self.cache is None:
            return
        for i in tqdm(range(len(self)), desc="decode", disable=not progress, leave=False, mininterval=2):
            self._load(i)

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        if isinstance(item, tuple):
            i, seed = item
        else:
            i, seed = item, None
        img = self._load(int(i))
        if self.transform is None:
            return img, int(self.labels[i]), int(seed or 0)
        if seed is None:
            x = self.transform(img)
        else:
            # torchvision transforms draw from the global CPU generator: seed it for this sample and put
            # its state back (torch.random.fork_rng does the same but costs ~1 ms through torch.manual_seed)
            gen = torch.default_generator
            saved = gen.get_state()
            gen.manual_seed(int(seed))
            try:
                x = self.transform(img)
            finally:
                gen.set_state(saved)
        return x, int(self.labels[i])


class EpochSampler(Sampler):
    """Yields ``(index, augmentation_seed)`` with order and seeds a pure function of (seed, epoch).

    ``shuffle=False`` keeps manifest order; ``balanced=True`` draws ``len`` indices with replacement,
    weight 1/class count (a class-balanced sampler). `set_position(epoch, start)` selects the epoch and
    skips its first `start` items (resuming mid-epoch).
    """

    def __init__(self, labels: Sequence[int] | np.ndarray, seed: int, *, shuffle: bool = True,
                 balanced: bool = False):
        self.labels = np.asarray(labels, dtype=np.int64)
        if balanced and (self.labels < 0).any():
            raise DataError("a class-balanced sampler needs every sample labelled")
        self.seed, self.shuffle, self.balanced = int(seed), shuffle, balanced
        self.epoch, self.start = 0, 0

    def set_position(self, epoch: int, start: int = 0) -> None:
        # deliberately not named set_epoch: accelerate's DataLoaderShard calls sampler.set_epoch(<times
        # iterated>) on every pass, which would tie the order to the process's history, not to the epoch
        n = len(self.labels)
        if not 0 <= start <= n:
            raise DataError(f"sampler start {start} outside 0..{n}")
        self.epoch, self.start = int(epoch), int(start)

    def order(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(indices, augmentation seeds) of the whole current epoch."""
        n = len(self.labels)
        g = torch_generator(derive_seed(self.seed, "order", self.epoch))
        if self.balanced:
            counts = np.bincount(self.labels, minlength=L.NUM_CLASSES).astype(np.float64)
            weights = torch.from_numpy(1.0 / counts[self.labels])
            idx = torch.multinomial(weights, n, replacement=True, generator=g)
        elif self.shuffle:
            idx = torch.randperm(n, generator=g)
        else:
            idx = torch.arange(n)
        seeds = torch.randint(0, 2**62, (n,), generator=torch_generator(derive_seed(self.seed, "augment", self.epoch)))
        return idx, seeds

    def __iter__(self) -> Iterator[tuple[int, int]]:
        idx, seeds = self.order()
        yield from zip(idx[self.start:].tolist(), seeds[self.start:].tolist())

    def __len__(self) -> int:
        return len(self.labels) - self.start


def build_loader(dataset: ManifestDataset, *, batch_size: int, train: bool, seed: int = 0, balanced: bool = False,
                 num_workers: int = 0, drop_last: bool | None = None, pin_memory: bool = False,
                 collate_fn: BatchCollate | None = None) -> DataLoader:
    """A DataLoader over `dataset`.

    Training loaders shuffle (or class-balance) through an `EpochSampler` (call ``loader.batch_sampler.sampler
    .set_position(e)`` each epoch) and drop a last partial batch when at least one full batch exists (BatchNorm
    cannot train on a batch of one). Evaluation loaders keep manifest order and apply no randomness.
    """
    if batch_size < 1:
        raise DataError(f"batch_size {batch_size} must be >= 1")
    if (dataset.transform is None) != (collate_fn is not None):
        raise DataError("a dataset without a per-sample transform needs a BatchCollate, and only it")
    kw = dict(num_workers=num_workers, pin_memory=pin_memory, persistent_workers=num_workers > 0,
              collate_fn=collate_fn)
    if not train:
        return DataLoader(dataset, batch_size=batch_size, shuffle=False, drop_last=False, **kw)
    sampler = EpochSampler(dataset.labels, seed, shuffle=True, balanced=balanced)
    if drop_last is None:
        drop_last = len(dataset) >= batch_size
    return DataLoader(dataset, batch_sampler=BatchSampler(sampler, batch_size, drop_last=drop_last), **kw)


def epoch_sampler(loader: DataLoader) -> EpochSampler:
    """The `EpochSampler` inside a training loader from `build_loader` (also through accelerate's wrapper)."""
    bs = loader.batch_sampler
    while bs is not None and not isinstance(bs, BatchSampler) and hasattr(bs, "batch_sampler"):
        bs = bs.batch_sampler  # accelerate's BatchSamplerShard
    sampler = getattr(bs, "sampler", None)
    if not isinstance(sampler, EpochSampler):
        raise DataError("loader was not built by build_loader(train=True): no EpochSampler found")
    return sampler


def loader_throughput(loader: DataLoader, *, max_batches: int = 20, warmup: int = 2) -> float:
    """Images per second the loader delivers alone (decode + transform + collate), after `warmup` batches."""
    n, t0, it = 0, None, iter(loader)
    for b, (x, _) in enumerate(it):
        if b == warmup:
            t0 = time.perf_counter()
        if b >= warmup:
            n += x.shape[0]
        if b + 1 >= warmup + max_batches:
            break
    if t0 is None or n == 0:
        raise DataError(f"loader yielded fewer than {warmup + 1} batches; cannot time it")
    return n / (time.perf_counter() - t0)


def describe_frame(frame: pd.DataFrame, name: str = "") -> pd.DataFrame:
    """One-row table of per-class counts plus total and imbalance ratio (largest/smallest non-empty class)."""
    c = class_counts(frame)
    nz = [v for v in c.values() if v > 0]
    row = {"set": name, **c, "total": sum(c.values()),
           "imbalance": (max(nz) / min(nz)) if nz else float("nan")}
    return pd.DataFrame([row])

