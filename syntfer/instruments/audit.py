"""Audits of a training set: who is in it (demographics per class) and whether it copies real faces (privacy).

Demographics (docs/method.md §6; upstream predicted age/gender/race with FaceXFormer). Three bases, always
named in the table's ``basis`` column so a reader knows what a share rests on:

- ``world truth``: the procedural world's ``truth.csv`` files (every domain writes one: gender, age group,
  skin-tone level 1..6, identity, …). A set's rows are matched to truth rows by ``path``, then by
  ``origin_path`` and ``source_path`` (mixes, pseudo-labeled and GAN-edited sets record where an image
  came from). Rows without a match are counted as ``unknown``, never dropped.
- ``prompt``: attributes a generator was asked for (diffusion manifests carry gender/age/race words).
  The race word is a prompt word, shown as such; the world renders it as a skin-tone range (a crude proxy,
  see `syntfer.sources.world.identity`).
- ``model``: a user-supplied attribute predictor for real data (`AttributeModel`: a callable taking a
  list of PIL images and returning one dict of attribute values per image), e.g. an adapter around
  FaceXFormer or any age/gender classifier the user has weights for. None ships here.

Privacy (beyond the paper): for every image of a synthetic set, the cosine similarity to its nearest
neighbour among the real training faces in an embedding ``embed(list[PIL.Image]) -> (N, D)`` of
L2-normalised vectors (the identity encoder of `syntfer.instruments.identity_encoder` when present). Images above a
threshold are flagged. The default embedding, `pixel_embedding`, needs no model: mean-centred 16×16 grey
thumbnails — a near-duplicate/copy detector, *not* an identity model, and named ``pixel`` in outputs.
An embedding function may carry a ``fingerprint`` attribute (its weights' hash) so feature caches are
never reused across weight changes. `holdout_threshold` calibrates a threshold as a high quantile of held-out real faces' similarity to the
training faces ("closer to a training face than 99 % of unseen real faces are").
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from syntfer.core import labels as L
from syntfer.core import provenance as PV
from syntfer.instruments.distances import callable_space, extract_features
from syntfer.instruments.identity_encoder import identity_embedding  # noqa: F401 (used by embedding_from_spec; re-exported)
from syntfer.core.images import load_image
from syntfer.core.manifest import read_manifest, write_manifest
from syntfer.core.storage import atomic_path, remove_stale_temporaries, write_json

UNKNOWN = "unknown"
ATTRIBUTES: tuple[str, ...] = ("gender", "age", "skin_tone")
# Column names accepted for each audited attribute (first present wins).
# World truth.csv files name identity attributes ``id_<field>`` (`syntfer.sources.world`); prompt manifests use the words.
ATTRIBUTE_ALIASES: dict[str, tuple[str, ...]] = {
    "gender": ("gender", "id_gender"),
    "age": ("age", "id_age", "age_group"),
    "skin_tone": ("skin_tone", "id_skin_tone"),
    "race": ("race", "word_race"),
    "identity": ("identity", "identity_id"),
}
MATCH_KEYS: tuple[str, ...] = ("path", "origin_path", "source_path")

AttributeModel = Callable[[list[Image.Image]], Sequence[Mapping[str, Any]]]
Embedding = Callable[[list[Image.Image]], np.ndarray]


class AuditError(ValueError):
    """Audit inputs that do not fit (missing truth files, unnormalised embeddings, bad thresholds)."""


# --- world truth ---------------------------------------------------------------------------------
def read_world_truth(world_root: str | os.PathLike, domains: Sequence[str] | None = None) -> pd.DataFrame:
    """Every domain's ``truth.csv`` under `world_root`, with absolute ``path`` and a ``domain`` column.

    `domains=None` reads every subfolder that has a truth.csv; a named domain without one raises.
    """
    root = Path(world_root)
    if not root.is_dir():
        raise AuditError(f"{root}: world folder not found")
    names = sorted(p.parent.name for p in root.glob("*/truth.csv")) if domains is None else list(domains)
    if not names:
        raise AuditError(f"{root}: no <domain>/truth.csv found")
    frames = []
    for d in names:
        file = root / d / "truth.csv"
        if not file.is_file():
            raise AuditError(f"{file}: truth file not found (domain {d!r})")
        t = pd.read_csv(file, dtype=str, keep_default_na=False)
        if "path" not in t.columns:
            raise AuditError(f"{file}: no 'path' column; has {list(t.columns)[:12]}")
        base = file.parent.resolve()
        t["path"] = [p if os.path.isabs(p) else os.path.normpath(str(base / p)) for p in t["path"]]
        t.insert(1, "domain", d)
        frames.append(t)
    return pd.concat(frames, ignore_index=True)


def world_truth_for(sets: Mapping[str, pd.DataFrame]) -> pd.DataFrame | None:
    """The world truth of the images the sets come from, found from the images themselves: the ``truth.csv`` of
    every world domain a row's ``path``, ``origin_path`` or ``source_path`` lies in (`syntfer.core.provenance`),
    read as `read_world_truth` does. None when no row comes from a rendered world — the user's data has no truth."""
    folders: set[str] = set()
    for frame in sets.values():
        for column in ("path", "origin_path", "source_path"):
            if column in frame.columns:
                folders |= {str(Path(str(p).split("#", 1)[0]).parent) for p in frame[column].fillna("") if str(p)}
    files = {PV.world_truth_file(f) for f in sorted(folders) if Path(f).is_dir()} - {None}
    if not files:
        return None
    by_root: dict[Path, list[str]] = {}
    for f in sorted(files):
        by_root.setdefault(f.parent.parent, []).append(f.parent.name)
    return pd.concat([read_world_truth(root, domains) for root, domains in by_root.items()], ignore_index=True)


def _attribute_column(frame: pd.DataFrame, attribute: str) -> str | None:
    for c in ATTRIBUTE_ALIASES.get(attribute, (attribute,)):
        if c in frame.columns:
            return c
    return None


def attach_truth(frame: pd.DataFrame, truth: pd.DataFrame, attributes: Sequence[str] = ATTRIBUTES,
                 optional: Sequence[str] = ("identity",)) -> pd.DataFrame:
    """Copy of `frame` with attribute columns taken from `truth` (matched by path, origin_path, source_path).

    `attributes` must exist in the truth table (else AuditError); `optional` ones are attached when present.
    Adds ``truth_match``: the key that matched ('path', 'origin_path', 'source_path'; with a ``-file``
    suffix when it matched only after dropping a ``#box=``/``#row=`` fragment from the set's path), or ''.
    """
    cols = {a: _attribute_column(truth, a) for a in attributes}
    missing = [a for a, c in cols.items() if c is None]
    if missing:
        raise AuditError(f"truth table has no column for {missing}; columns {list(truth.columns)[:20]}")
    cols |= {a: c for a in optional if (c := _attribute_column(truth, a)) is not None}
    table = truth.drop_duplicates("path").set_index("path")
    out = frame.copy()
    n = len(out)
    matched = np.full(n, "", dtype=object)
    values = {a: np.full(n, UNKNOWN, dtype=object) for a in cols}
    attempts = [(k, False) for k in MATCH_KEYS] + [(k, True) for k in MATCH_KEYS]
    for key, strip in attempts:
        if key not in out.columns:
            continue
        keys = out[key].astype(str).to_numpy(dtype=object)
        if strip:
            keys = np.array([k.split("#", 1)[0] for k in keys], dtype=object)
        hit = (matched == "") & pd.Index(keys).isin(table.index)
        if not hit.any():
            continue
        found = table.loc[keys[hit]]
        for a, c in cols.items():
            values[a][hit] = found[c].astype(str).to_numpy()
        matched[hit] = key + ("-file" if strip else "")
    for a in cols:
        out[a] = values[a]
    out["truth_match"] = matched
    return out


def predict_attributes(frame: pd.DataFrame, model: AttributeModel, attributes: Sequence[str] = ATTRIBUTES,
                       batch_size: int = 64) -> pd.DataFrame:
    """Copy of `frame` with attribute columns predicted by `model` (for real data without truth)."""
    out = frame.copy()
    preds: list[Mapping[str, Any]] = []
    paths = out["path"].tolist()
    for i in range(0, len(paths), batch_size):
        batch = [load_image(p, "RGB") for p in paths[i:i + batch_size]]
        res = list(model(batch))
        if len(res) != len(batch):
            raise AuditError(f"attribute model returned {len(res)} results for {len(batch)} images")
        preds.extend(res)
    for a in attributes:
        out[a] = [str(p.get(a, UNKNOWN)) for p in preds]
    return out


def demographic_table(frame: pd.DataFrame, set_name: str, basis: str,
                      attributes: Sequence[str] = ATTRIBUTES) -> pd.DataFrame:
    """Tidy shares: ``set, basis, label, attribute, value, count, share`` per class and for ``label='all'``.

    `share` is the count over the class's images (so shares of one attribute sum to 1 per class).
    Missing or empty values are counted as 'unknown'. Every canonical class appears (an empty class
    simply has no rows, and its size shows in the 'n' of the class summary).
    """
    rows = []
    labels = frame["label"].astype(str) if "label" in frame.columns else pd.Series("", index=frame.index)
    for attribute in attributes:
        col = _attribute_column(frame, attribute)
        vals = (frame[col].astype(str).replace({"": UNKNOWN, "nan": UNKNOWN}) if col is not None
                else pd.Series(UNKNOWN, index=frame.index))
        for label in (*L.CLASSES, "all"):
            sel = vals if label == "all" else vals[labels == label]
            n = len(sel)
            if n == 0:
                continue
            for value, count in sorted(sel.value_counts().items(), key=lambda kv: str(kv[0])):
                rows.append({"set": set_name, "basis": basis, "label": label, "attribute": attribute,
                             "value": str(value), "count": int(count), "share": count / n})
    return pd.DataFrame(rows, columns=["set", "basis", "label", "attribute", "value", "count", "share"])


# --- privacy ---------------------------------------------------------------------------------------
def pixel_embedding(size: int = 16) -> Embedding:
    """A model-free embedding for copy detection: mean-centred size×size grey thumbnail, L2-normalised."""

    def embed(images: list[Image.Image]) -> np.ndarray:
        a = np.stack([np.asarray(im.convert("L").resize((size, size), Image.Resampling.BILINEAR), np.float64)
                      for im in images]).reshape(len(images), -1)
        a = a - a.mean(axis=1, keepdims=True)
        norm = np.linalg.norm(a, axis=1, keepdims=True)
        return (a / np.where(norm > 0, norm, 1.0)).astype(np.float32)

    embed.fingerprint = f"pixel-{size}"  # read by feature caches
    return embed


def nearest_neighbours(query: np.ndarray, reference: np.ndarray, chunk: int = 2048,
                       exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Index and cosine similarity of each query vector's nearest reference vector (unit vectors in).

    `exclude_self` (query is reference) ignores the diagonal.
    """
    q, r = np.asarray(query, np.float32), np.asarray(reference, np.float32)
    for name, a in (("query", q), ("reference", r)):
        if a.ndim != 2 or len(a) == 0:
            raise AuditError(f"{name} embeddings must be a non-empty (N, D) array, got {a.shape}")
        norms = np.linalg.norm(a, axis=1)
        if not np.allclose(norms, 1.0, atol=1e-3):
            raise AuditError(f"{name} embeddings are not L2-normalised (norms {norms.min():.4f}..{norms.max():.4f})")
    if q.shape[1] != r.shape[1]:
        raise AuditError(f"embedding dimensions differ: {q.shape[1]} vs {r.shape[1]}")
    idx = np.empty(len(q), np.int64)
    sim = np.empty(len(q), np.float32)
    for s in range(0, len(q), chunk):
        block = q[s:s + chunk] @ r.T
        if exclude_self:
            rows = np.arange(block.shape[0])
            block[rows, rows + s] = -np.inf
        idx[s:s + chunk] = block.argmax(axis=1)
        sim[s:s + chunk] = block[np.arange(block.shape[0]), idx[s:s + chunk]]
    return idx, sim


def _nearest_similarity_quantile(query: np.ndarray, train: np.ndarray, quantile: float, exclude_self: bool) -> float:
    if not 0.0 < quantile <= 1.0:
        raise AuditError(f"quantile must be in (0, 1], got {quantile}")
    _, sim = nearest_neighbours(query, train, exclude_self=exclude_self)
    return float(np.quantile(sim, quantile))


def holdout_threshold(holdout: np.ndarray, train: np.ndarray, quantile: float = 0.99) -> float:
    """The `quantile` of held-out real faces' nearest-neighbour similarity to the training faces."""
    return _nearest_similarity_quantile(holdout, train, quantile, exclude_self=False)


def leave_one_out_threshold(train: np.ndarray, quantile: float = 0.99) -> float:
    """The `quantile` of the training faces' similarity to their nearest *other* training face: "closer to a
    training face than `quantile` of real training faces are to any other one" (no held-out faces needed)."""
    if len(train) < 2:
        raise AuditError(f"a leave-one-out threshold needs at least 2 training faces, got {len(train)}")
    return _nearest_similarity_quantile(train, train, quantile, exclude_self=True)


REAL_TRAIN = "real_train"
"""The set name under which `privacy_check` caches the real training faces' features."""


def feature_cache(cache_dir: str | os.PathLike, space: str, name: str) -> Path:
    """Where `privacy_check(..., space=space, cache_dir=cache_dir)` caches the features of set `name`:
    ``<cache_dir>/<space>__<name>.npz`` (the real training faces are set `REAL_TRAIN`)."""
    if not space or not name or any(sep in space + name for sep in ("/", "\\")):
        raise AuditError(f"feature cache: space {space!r} and set name {name!r} must be non-empty file-name parts")
    return Path(cache_dir) / f"{space}__{name}.npz"


def embed_set(embed: Embedding, paths: Sequence[str | os.PathLike], *, space: str, name: str = "",
              cache_dir: str | os.PathLike | None = None, batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """(N, D) features of the images at `paths` in `embed` (the feature space named `space`).

    With `cache_dir` the features are cached as set `name` exactly where `privacy_check` with the same `space`
    and `cache_dir` looks for them (`feature_cache`), so a notebook that embeds a set first (for FD/KID) and runs
    the privacy check afterwards embeds each image once. The cache is keyed by the embedding's ``fingerprint``
    and the path list (`syntfer.instruments.distances.extract_features`): it is never reused for other weights or images."""
    if cache_dir is not None and not name:
        raise AuditError(f"embed_set: caching features in {cache_dir} needs the set's name")
    fs = callable_space(space, embed, fingerprint=getattr(embed, "fingerprint", ""))
    cache = feature_cache(cache_dir, space, name) if cache_dir is not None else None
    return extract_features(fs, paths, batch_size=batch_size, cache=cache, progress=progress)


@dataclasses.dataclass
class PrivacyResult:
    """Per-image nearest real training face (`table`) and per-set `summary` (flat keys)."""

    table: pd.DataFrame
    summary: pd.DataFrame


def privacy_check(sets: Mapping[str, Sequence[str]], real_paths: Sequence[str], embed: Embedding, *,
                  space: str, threshold: float, batch_size: int = 64,
                  cache_dir: str | os.PathLike | None = None,
                  identities: Mapping[str, Sequence[str]] | None = None,
                  real_identities: Sequence[str] | None = None) -> PrivacyResult:
    """Nearest-neighbour similarity of every synthetic image to the real training faces, flagged above threshold.

    `space` names the embedding in the outputs (e.g. 'identity', 'pixel'). With `identities` (per set,
    one truth identity per image) and `real_identities`, also counts images whose true identity is one
    of the real training identities (``n_true_identity_overlap``; world only).
    Table columns: ``set, path, nn_path, similarity, flagged``; summary columns: ``set, space, n,
    similarity_mean, similarity_p95, similarity_max, threshold, n_flagged, share_flagged``
    (+ ``n_true_identity_overlap``).
    """
    real_paths = [str(p) for p in real_paths]
    ref = embed_set(embed, real_paths, space=space, name=REAL_TRAIN, cache_dir=cache_dir, batch_size=batch_size,
                    progress=True)
    tables, summaries = [], []
    real_ids = set(map(str, real_identities)) if real_identities is not None else None
    for name, paths in sets.items():
        paths = [str(p) for p in paths]
        feats = embed_set(embed, paths, space=space, name=name, cache_dir=cache_dir, batch_size=batch_size,
                          progress=True)
        idx, sim = nearest_neighbours(feats, ref)
        t = pd.DataFrame({"set": name, "path": paths, "nn_path": [real_paths[i] for i in idx],
                          "similarity": sim.astype(np.float64), "flagged": sim > threshold})
        s = {"set": name, "space": space, "n": len(t), "similarity_mean": float(t["similarity"].mean()),
             "similarity_p95": float(t["similarity"].quantile(0.95)), "similarity_max": float(t["similarity"].max()),
             "threshold": float(threshold), "n_flagged": int(t["flagged"].sum()),
             "share_flagged": float(t["flagged"].mean())}
        if identities is not None and real_ids is not None and name in identities:
            ids = list(map(str, identities[name]))
            if len(ids) != len(paths):
                raise AuditError(f"set {name!r}: {len(ids)} identities for {len(paths)} images")
            s["n_true_identity_overlap"] = int(sum(i in real_ids for i in ids if i not in ("", UNKNOWN)))
        tables.append(t)
        summaries.append(s)
    return PrivacyResult(table=pd.concat(tables, ignore_index=True), summary=pd.DataFrame(summaries))


# --- whole sets, plots, CLI -------------------------------------------------------------------------
PROMPT_COLUMNS = ("gender", "age", "race")


def audit_sets(sets: Mapping[str, pd.DataFrame], truth: pd.DataFrame | None = None,
               attribute_model: AttributeModel | None = None,
               attributes: Sequence[str] = ATTRIBUTES) -> pd.DataFrame:
    """Demographic tables of several sets, concatenated (`demographic_table` columns + ``n_unmatched``).

    With `attribute_model`, every image is audited on its predictions (basis ``model``). Otherwise rows
    whose manifest carries prompt words (non-empty gender/age/race columns, e.g. diffusion images, also
    inside a mix) are audited on those words (basis ``prompt``: gender, age, race word), and the other
    rows on world truth via `attach_truth` (basis ``world truth``; rows without a truth match are counted
    as unknown and in ``n_unmatched``). Shares are computed within each (set, basis).
    """
    tables = []
    for name, frame in sets.items():
        parts: list[tuple[str, pd.DataFrame, Sequence[str], int]] = []
        if attribute_model is not None:
            parts.append(("model", predict_attributes(frame, attribute_model, attributes), attributes, 0))
        else:
            if all(c in frame.columns for c in PROMPT_COLUMNS):
                prompted = frame[list(PROMPT_COLUMNS)].fillna("").astype(str).ne("").all(axis=1).to_numpy()
            else:
                prompted = np.zeros(len(frame), dtype=bool)
            if prompted.any():
                parts.append(("prompt", frame[prompted], ("gender", "age", "race"), 0))
            rest = frame[~prompted]
            if len(rest):
                if truth is None:
                    raise AuditError(f"set {name!r}: {len(rest)} images have no prompt attributes and no world "
                                     "truth was given")
                f = attach_truth(rest.drop(columns=[c for c in PROMPT_COLUMNS if c in rest.columns]), truth,
                                 attributes)
                parts.append(("world truth", f, attributes, int((f["truth_match"] == "").sum())))
        for basis, f, attrs, unmatched in parts:
            t = demographic_table(f, name, basis, attrs)
            t["n_unmatched"] = unmatched
            tables.append(t)
    return pd.concat(tables, ignore_index=True)


def plot_demographics(table: pd.DataFrame, attribute: str, label: str = "all"):
    """Seaborn bar chart: share of each value of `attribute` per set (for one class, default all images)."""
    import seaborn as sns  # lazy: seaborn takes a second to import; only the notebooks plot

    t = table[(table["attribute"] == attribute) & (table["label"] == label)]
    if t.empty:
        raise AuditError(f"no rows for attribute {attribute!r} and label {label!r}")
    g = sns.catplot(t, kind="bar", x="set", y="share", hue="value", height=3.2, aspect=2.2)
    g.set_axis_labels("", f"share of images ({label})")
    g.figure.suptitle(f"{attribute} by set — basis: {', '.join(sorted(t['basis'].unique()))}", y=1.03)
    return g


def plot_privacy(table: pd.DataFrame, threshold: float | None = None):
    """Seaborn histogram of nearest-real-face similarity per synthetic set (a dashed line at the threshold)."""
    import seaborn as sns  # lazy: seaborn takes a second to import; only the notebooks plot

    g = sns.displot(table, x="similarity", hue="set", kind="hist", element="step", stat="density",
                    common_norm=False, bins=40, height=3.2, aspect=2.0)
    if threshold is not None:
        for ax in g.axes.flat:
            ax.axvline(threshold, ls="--", c="k")
    g.set_axis_labels("cosine similarity to the nearest real training face", "density")
    return g


def embedding_from_spec(spec: str) -> tuple[str, Embedding]:
    """'pixel' -> `pixel_embedding`; 'identity:DIR' -> `identity_embedding(DIR)`."""
    if spec == "pixel":
        return "pixel", pixel_embedding()
    kind, _, where = spec.partition(":")
    if kind == "identity" and where:
        return "identity", identity_embedding(where)
    raise AuditError(f"embedding {spec!r}: expected 'pixel' or 'identity:DIR'")


def add_arguments(parser) -> None:
    parser.add_argument("--set", action="append", required=True, metavar="NAME=MANIFEST",
                        help="a set to audit (repeatable)")
    parser.add_argument("--world", help="world root with <domain>/truth.csv (demographics from world truth)")
    parser.add_argument("--real", metavar="MANIFEST", help="real training faces for the privacy check")
    parser.add_argument("--embedding", default="pixel", help="'pixel' (copy detector) or 'identity:DIR'")
    parser.add_argument("--threshold", type=float, default=None,
                        help="flag similarity above this (default: --holdout quantile, else 0.95)")
    parser.add_argument("--holdout", metavar="MANIFEST", help="held-out real faces to calibrate the threshold")
    parser.add_argument("--quantile", type=float, default=0.99)
    parser.add_argument("--out", required=True)


def run(args) -> int:
    sets = {}
    for spec in args.set:
        name, sep, file = spec.partition("=")
        if not sep or not name or not file:
            raise AuditError(f"expected NAME=MANIFEST, got {spec!r}")
        sets[name] = read_manifest(file, check_labels=False)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)  # what a killed run left half-written (a feature cache's temporary)
    truth = read_world_truth(args.world) if args.world else None
    demo = audit_sets(sets, truth)
    with atomic_path(out / "demographics.csv") as tmp:
        demo.to_csv(tmp, index=False)
    info: dict[str, Any] = {"sets": list(sets), "world": args.world}
    if args.real:
        space, embed = embedding_from_spec(args.embedding)
        real = read_manifest(args.real)["path"].tolist()
        threshold = args.threshold
        if threshold is None and args.holdout:
            fs = callable_space(space, embed, fingerprint=getattr(embed, "fingerprint", ""))
            threshold = holdout_threshold(
                extract_features(fs, read_manifest(args.holdout)["path"].tolist(), cache=out / "cache" / "holdout.npz"),
                embed_set(embed, real, space=space, name=REAL_TRAIN, cache_dir=out / "cache", progress=True),
                args.quantile)
        threshold = 0.95 if threshold is None else threshold
        res = privacy_check({k: v["path"].tolist() for k, v in sets.items()}, real, embed, space=space,
                            threshold=threshold, cache_dir=out / "cache")
        # per-image paths relative to the table, like a manifest's (the same bytes in every checkout)
        write_manifest(res.table, out / "privacy_images.csv", path_columns=("path", "nn_path"))
        with atomic_path(out / "privacy.csv") as tmp:
            res.summary.to_csv(tmp, index=False)
        info |= {"space": space, "threshold": threshold, "real": args.real}
        print(res.summary.to_string(index=False))
    write_json(out / "audit.json", info)
    return 0
