"""Distribution distances between image sets, in named feature spaces (docs/method.md §8).

Two statistics, both computed in float64:

- **FD** (Fréchet distance between Gaussians fitted to the two feature sets):
  ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^{1/2})`` with ``scipy.linalg.sqrtm``; when the matrix square
  root is not finite, it is retried once with ``1e-6 * I`` added to both covariances (recorded in
  `FrechetResult.regularized`). A clearly complex square root raises (as pytorch-fid does).
- **KID**: the unbiased MMD² estimate with the cubic polynomial kernel ``k(x, y) = (x·y / d + 1)^3``,
  averaged over 100 random subsets of 2,000 from each set (numpy generator, seed 0). The subset size is
  capped at the smaller set's size; the size used is recorded in `KIDResult.subset_size`.

Feature spaces are *named* and every number carries the name: ``fd_baseline``, ``kid_identity``,
``fd_clip``. Standard FID means Inception-v3 pool features; no such weights exist here, so nothing in
this module is called FID. Spaces:

- `judge_space`: the penultimate layer of a syntfer classifier as the judge sees it
  (`syntfer.instruments.judge.Judge.outputs` features: the input of its classifier layer, its eval transform) — the
  one definition of judge-space features;
- `clip_space`: the projected image embedding of a local CLIP checkpoint
  (transformers ``CLIPVisionModelWithProjection``; L2-normalised unless ``normalize=False``);
- `callable_space`: any ``embed(list[PIL.Image]) -> (N, D) array`` (e.g. the identity encoder).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg
import torch
from PIL import Image
from tqdm.auto import tqdm

from syntfer.instruments.identity_encoder import identity_embedding
from syntfer.core.images import load_image, split_fragment
from syntfer.instruments.judge import Judge
from syntfer.core.manifest import read_manifest, relative_path
from syntfer.core.storage import atomic_path, module_fingerprint, write_json  # noqa: F401 (re-exported)
from syntfer.core.storage import remove_stale_temporaries

SPACE_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class DistanceError(ValueError):
    """Inputs a distance cannot be computed from (too few samples, mismatched dimensions, bad names)."""


# --- statistics ------------------------------------------------------------------------------
@dataclasses.dataclass
class FrechetResult:
    """A Fréchet distance and whether the 1e-6·I retry was needed."""

    value: float
    regularized: bool


@dataclasses.dataclass
class KIDResult:
    """KID (unbiased MMD², cubic kernel): mean and sd over subsets, with the protocol actually used."""

    mean: float
    sd: float
    subset_size: int
    n_subsets: int
    seed: int
    values: np.ndarray = dataclasses.field(repr=False)


def _as_features(x: np.ndarray | torch.Tensor, what: str) -> np.ndarray:
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.ndim != 2:
        raise DistanceError(f"{what}: features must be a 2-D array (N, D), got shape {a.shape}")
    a = a.astype(np.float64, copy=False)
    if not np.isfinite(a).all():
        raise DistanceError(f"{what}: features contain NaN or inf")
    return a


def feature_statistics(x: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Float64 mean and (unbiased, ddof=1) covariance of an (N, D) feature array, N >= 2."""
    a = _as_features(x, "feature_statistics")
    if len(a) < 2:
        raise DistanceError(f"need at least 2 feature vectors for a covariance, got {len(a)}")
    return a.mean(axis=0), np.cov(a, rowvar=False).reshape(a.shape[1], a.shape[1])


def _sqrtm(m: np.ndarray) -> np.ndarray:
    return np.asarray(scipy.linalg.sqrtm(m))


def frechet_distance_from_stats(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                                eps: float = 1e-6) -> FrechetResult:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), float64, with the 1e-6·I retry."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise DistanceError(f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}")
    diff = mu1 - mu2
    covmean = _sqrtm(s1 @ s2)
    regularized = False
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * eps
        covmean = _sqrtm((s1 + offset) @ (s2 + offset))
        regularized = True
        if not np.isfinite(covmean).all():
            raise DistanceError("matrix square root is not finite even after adding 1e-6·I to the covariances")
    if np.iscomplexobj(covmean):
        imag = np.max(np.abs(np.diagonal(covmean).imag))
        if imag > 1e-3:
            raise DistanceError(f"matrix square root has an imaginary component {imag:.3g} on its diagonal")
        covmean = covmean.real
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))
    return FrechetResult(value=value, regularized=regularized)


def frechet_distance(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, eps: float = 1e-6) -> float:
    """Fréchet distance between two (N, D) feature sets (Gaussian fits, float64)."""
    return frechet_distance_from_stats(*feature_statistics(x), *feature_statistics(y), eps=eps).value


def _cubic_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    k = a @ b.T
    k /= a.shape[1]
    k += 1.0
    k3 = k * k  # in-place products: several times faster than `** 3` on large matrices
    k3 *= k
    return k3


def _within_term(k: np.ndarray) -> float:
    m = k.shape[0]
    return float((k.sum() - np.trace(k)) / (m * (m - 1)))


def kernel_distance(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, n_subsets: int = 100,
                    subset_size: int = 2000, seed: int = 0) -> KIDResult:
    """KID: unbiased MMD² with the cubic kernel over `n_subsets` random subsets (without replacement).

    The subset size is ``min(subset_size, len(x), len(y))`` and is recorded in the result. When a set is
    no larger than the subset size, every subset is the whole set (its kernel term is computed once).
    """
    a, b = _as_features(x, "kernel_distance x"), _as_features(y, "kernel_distance y")
    if a.shape[1] != b.shape[1]:
        raise DistanceError(f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]}")
    if n_subsets < 1:
        raise DistanceError(f"n_subsets must be >= 1, got {n_subsets}")
    m = min(int(subset_size), len(a), len(b))
    if m < 2:
        raise DistanceError(f"KID needs at least 2 samples per set; sizes {len(a)} and {len(b)}, "
                            f"subset_size {subset_size}")
    rng = np.random.default_rng(seed)
    fixed_a = _within_term(_cubic_kernel(a, a)) if m == len(a) else None
    fixed_b = _within_term(_cubic_kernel(b, b)) if m == len(b) else None
    values = np.empty(n_subsets, dtype=np.float64)
    for i in range(n_subsets):
        xa = a[rng.choice(len(a), m, replace=False)]
        yb = b[rng.choice(len(b), m, replace=False)]
        kxx = fixed_a if fixed_a is not None else _within_term(_cubic_kernel(xa, xa))
        kyy = fixed_b if fixed_b is not None else _within_term(_cubic_kernel(yb, yb))
        values[i] = kxx + kyy - 2.0 * float(_cubic_kernel(xa, yb).mean())
    return KIDResult(mean=float(values.mean()), sd=float(values.std(ddof=1)) if n_subsets > 1 else 0.0,
                     subset_size=m, n_subsets=n_subsets, seed=seed, values=values)


def check_space_name(name: str) -> str:
    """Validate a feature-space name (lower-case identifier; 'inception' is reserved for real Inception)."""
    if not SPACE_NAME.match(name):
        raise DistanceError(f"feature space name {name!r} must match {SPACE_NAME.pattern}")
    return name


def distribution_distances(x: np.ndarray, y: np.ndarray, space: str, *, n_subsets: int = 100,
                           subset_size: int = 2000, seed: int = 0) -> dict[str, Any]:
    """FD and KID of set x against reference y in feature space `space`, as flat named keys.

    Keys: ``fd_<space>``, ``kid_<space>``, ``kid_<space>_sd``, ``kid_<space>_subset_size``,
    ``fd_<space>_regularized``, ``n``, ``n_reference``.
    """
    check_space_name(space)
    fd = frechet_distance_from_stats(*feature_statistics(x), *feature_statistics(y))
    kid = kernel_distance(x, y, n_subsets=n_subsets, subset_size=subset_size, seed=seed)
    return {f"fd_{space}": fd.value, f"fd_{space}_regularized": fd.regularized,
            f"kid_{space}": kid.mean, f"kid_{space}_sd": kid.sd, f"kid_{space}_subset_size": kid.subset_size,
            "n": int(len(x)), "n_reference": int(len(y))}


# --- feature spaces ----------------------------------------------------------------------------
@dataclasses.dataclass
class FeatureSpace:
    """A named embedding: `transform` turns one PIL image into a tensor, `embed` a batch into (B, D) features.

    With ``transform=None``, `embed` receives the list of PIL images itself (for callables that do
    their own preprocessing, e.g. a face-descriptor model).
    """

    name: str
    embed: Callable[[Any], torch.Tensor | np.ndarray]
    transform: Callable[[Image.Image], torch.Tensor] | None
    mode: str = "RGB"
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    fingerprint: str = ""  # identifies the weights; a feature cache is reused only for the same fingerprint

    def __post_init__(self) -> None:
        check_space_name(self.name)


def judge_space(judge: Judge, name: str = "judge") -> FeatureSpace:
    """The penultimate space of a syntfer classifier seen as the project's one judge: the features of
    `Judge.outputs` (the input of its classifier layer, from its own batched eval transform on the decoded images),
    so a distance computed here is the judge-space distance of the notebooks (`syntfer.instruments.judge`)."""

    def embed(images: list[Image.Image]) -> np.ndarray:
        return judge.outputs(images, batch_size=max(1, len(images))).features

    info = {"kind": "judge", **judge.describe()}
    return FeatureSpace(name=name, embed=embed, transform=None, mode=judge.mode, info=info,
                        fingerprint=module_fingerprint(judge.model))


def clip_space(weights: str | os.PathLike, name: str = "clip", normalize: bool = True,
               device: str | torch.device = "cpu") -> FeatureSpace:
    """CLIP image-embedding space from a local folder (``CLIPVisionModelWithProjection``; never a hub download).

    Preprocessing: the folder's ``preprocessor_config.json`` (CLIPImageProcessor) when present, else
    CLIP's standard resize (bicubic, shorter side) + centre crop to the config's image size + CLIP mean/std.
    """
    # lazy: importing transformers takes seconds; only the CLIP space needs it
    from torchvision.transforms import v2
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    weights = Path(weights)
    if not (weights / "config.json").is_file():
        raise DistanceError(f"{weights}: no config.json; expected a local CLIP checkpoint folder "
                            "(save_pretrained layout)")
    model = CLIPVisionModelWithProjection.from_pretrained(weights, local_files_only=True).to(device).eval()
    if (weights / "preprocessor_config.json").is_file():
        processor = CLIPImageProcessor.from_pretrained(weights, local_files_only=True)

        def transform(img: Image.Image) -> torch.Tensor:
            return processor(images=img, return_tensors="pt")["pixel_values"][0]
    else:
        size = int(model.config.image_size)
        transform = v2.Compose([v2.ToImage(), v2.Resize(size, interpolation=v2.InterpolationMode.BICUBIC),
                                v2.CenterCrop(size), v2.ToDtype(torch.float32, scale=True),
                                v2.Normalize(CLIP_MEAN, CLIP_STD)])

    @torch.no_grad()
    def embed(batch: torch.Tensor) -> torch.Tensor:
        z = model(pixel_values=batch.to(device)).image_embeds.float()
        return torch.nn.functional.normalize(z, dim=-1) if normalize else z

    info = {"kind": "clip", "weights": str(weights), "normalize": normalize}
    return FeatureSpace(name=name, embed=embed, transform=transform, info=info,
                        fingerprint=f"{module_fingerprint(model)}:normalize={normalize}")


def callable_space(name: str, embed: Callable[[list[Image.Image]], np.ndarray | torch.Tensor],
                   mode: str = "RGB", fingerprint: str = "") -> FeatureSpace:
    """A space from any function mapping a list of PIL images to (N, D) vectors (e.g. an identity encoder).

    Give a `fingerprint` of the function's weights if features are cached across weight changes.
    """
    return FeatureSpace(name=name, embed=embed, transform=None, mode=mode, info={"kind": "callable"},
                        fingerprint=fingerprint)


class _ImageList(torch.utils.data.Dataset):
    def __init__(self, paths: Sequence[str], transform: Callable | None, mode: str) -> None:
        self.paths, self.transform, self.mode = list(paths), transform, mode

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        img = load_image(self.paths[i], self.mode)
        return self.transform(img) if self.transform is not None else img


def _collate_images(items: list) -> list:
    return items


def extract_features(space: FeatureSpace, paths: Sequence[str | os.PathLike], *, batch_size: int = 64,
                     num_workers: int = 0, cache: str | os.PathLike | None = None,
                     progress: bool = True) -> np.ndarray:
    """(N, D) float32 features of the images at `paths` in `space`, in the order given.

    With `cache` (an ``.npz`` file), features are loaded from it when it was written for the same space
    name, fingerprint (weights) and path list, and written there (atomically) otherwise. The cache stores the
    paths relative to its own folder, so its bytes do not depend on where the project is checked out.
    """
    paths = [str(p) for p in paths]
    if not paths:
        raise DistanceError(f"no images to embed in space {space.name!r}")
    keys = None
    if cache is not None:
        base = Path(cache).parent.resolve()
        keys = [relative_path(os.path.abspath(f) + frag, base) for f, frag in map(split_fragment, paths)]
    if cache is not None and Path(cache).is_file():
        with np.load(cache, allow_pickle=False) as z:
            same = (str(z["space"]) == space.name and "fingerprint" in z.files
                    and str(z["fingerprint"]) == space.fingerprint and z["paths"].tolist() == keys)
            if same:
                return z["features"]
    loader = torch.utils.data.DataLoader(
        _ImageList(paths, space.transform, space.mode), batch_size=batch_size, shuffle=False,
        num_workers=num_workers, collate_fn=None if space.transform is not None else _collate_images)
    chunks = []
    for batch in tqdm(loader, desc=f"features[{space.name}]", disable=not progress, leave=False):
        f = space.embed(batch)
        f = f.detach().cpu().numpy() if isinstance(f, torch.Tensor) else np.asarray(f)
        if f.ndim != 2 or len(f) != (len(batch)):
            raise DistanceError(f"space {space.name!r}: embed returned shape {f.shape} for a batch of {len(batch)}")
        chunks.append(f.astype(np.float32))
    features = np.concatenate(chunks)
    if cache is not None:
        with atomic_path(cache) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, features=features, paths=np.array(keys), space=np.array(space.name),
                         fingerprint=np.array(space.fingerprint))
    return features


def compare_sets(space: FeatureSpace, sets: dict[str, Sequence[str]], reference: Sequence[str], *,
                 reference_name: str = "reference", n_subsets: int = 100, subset_size: int = 2000, seed: int = 0,
                 batch_size: int = 64, cache_dir: str | os.PathLike | None = None):
    """FD and KID of every named set against `reference` in one space, as a tidy DataFrame.

    Columns: ``set, reference, space, n, n_reference, fd, kid, kid_sd, kid_subset_size, fd_regularized``.
    Reference features are extracted once (cached under `cache_dir` when given).
    """
    def cache_for(set_name: str) -> Path | None:
        return Path(cache_dir) / f"{space.name}__{set_name}.npz" if cache_dir is not None else None

    ref = extract_features(space, reference, batch_size=batch_size, cache=cache_for(reference_name))
    rows = []
    for set_name, paths in sets.items():
        feats = extract_features(space, paths, batch_size=batch_size, cache=cache_for(set_name))
        d = distribution_distances(feats, ref, space.name, n_subsets=n_subsets, subset_size=subset_size,
                                   seed=seed)
        rows.append({"set": set_name, "reference": reference_name, "space": space.name, "n": d["n"],
                     "n_reference": d["n_reference"], "fd": d[f"fd_{space.name}"],
                     "kid": d[f"kid_{space.name}"], "kid_sd": d[f"kid_{space.name}_sd"],
                     "kid_subset_size": d[f"kid_{space.name}_subset_size"],
                     "fd_regularized": d[f"fd_{space.name}_regularized"]})
    return pd.DataFrame(rows)


# --- CLI: syntfer distance --------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--space", required=True, help="feature-space name used in keys (fd_<space>, kid_<space>)")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint",
                     help="syntfer classifier checkpoint folder (its penultimate-layer space, as the judge sees it)")
    src.add_argument("--clip", help="local CLIP folder (CLIPVisionModelWithProjection, save_pretrained layout)")
    src.add_argument("--identity", help="identity encoder folder (syntfer.instruments.identity_encoder; identity-embedding space)")
    parser.add_argument("--set", action="append", required=True, metavar="NAME=MANIFEST",
                        help="a set to measure (repeatable)")
    parser.add_argument("--reference", required=True, metavar="NAME=MANIFEST", help="reference set, e.g. ffhq=...")
    parser.add_argument("--out", required=True,
                        help="output folder: distances.csv + distances.json ({set: {fd_<space>, kid_<space>, …}})")
    parser.add_argument("--n-subsets", type=int, default=100)
    parser.add_argument("--subset-size", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)


def _named_manifest(spec: str) -> tuple[str, list[str]]:
    name, sep, file = spec.partition("=")
    if not sep or not name or not file:
        raise DistanceError(f"expected NAME=MANIFEST, got {spec!r}")
    return name, read_manifest(file)["path"].tolist()


def run(args: argparse.Namespace) -> int:
    if args.checkpoint:
        space = judge_space(Judge.load(args.checkpoint), name=args.space)
    elif args.identity:
        embed = identity_embedding(args.identity)
        space = callable_space(args.space, embed, fingerprint=embed.fingerprint)
    else:
        space = clip_space(args.clip, name=args.space)
    ref_name, ref_paths = _named_manifest(args.reference)
    sets = dict(_named_manifest(s) for s in args.set)
    out = Path(args.out)
    remove_stale_temporaries(out)  # what a killed run left half-written (a feature cache's temporary)
    table = compare_sets(space, sets, ref_paths, reference_name=ref_name, n_subsets=args.n_subsets,
                         subset_size=args.subset_size, seed=args.seed, batch_size=args.batch_size,
                         cache_dir=out / "features")
    with atomic_path(out / "distances.csv") as tmp:
        table.to_csv(tmp, index=False)
    nested = {r.set: {f"fd_{space.name}": r.fd, f"kid_{space.name}": r.kid, f"kid_{space.name}_sd": r.kid_sd}
              for r in table.itertuples()}
    write_json(out / "distances.json", nested)
    print(json.dumps(nested, indent=2))
    return 0
