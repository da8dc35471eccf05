"""The set-measurement notebook's tables (notebook 06): its inputs resolved and checked, the sets read, and the
frames it shows and writes — images per class, expression fidelity against the judge's ceiling, identity similarity
of edits, demographics, the tidy ``synthetic.csv`` rows and ``metrics.json``.

The measurements themselves live below: the judge's fidelity table and ceiling (`syntfer.instruments.judge`), FD/KID
per feature space and the subset draw (`syntfer.instruments.setmetrics`, `syntfer.instruments.distances`), the
privacy check and the demographic audit (`syntfer.instruments.audit`). This module runs them over every set and
puts their results together, so that notebook 06 reads as the story. Nothing here writes a file or draws: the
notebook writes every table (`syntfer.core.tables.write_csv`) and `syntfer.study.sets_figures` draws every figure.
A missing input or a bad set raises naming it, as the notebook did before.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from syntfer.core import labels as L
from syntfer.core import provenance as PV
from syntfer.core.manifest import read_manifest
from syntfer.instruments import audit as AUDIT
from syntfer.instruments import distances as DIST
from syntfer.instruments import identity_encoder as IDENT
from syntfer.instruments import setmetrics as SETM
from syntfer.instruments.judge import fidelity_table, judge_ceiling, label_indices
from syntfer.sources.readers import read_dataset
from syntfer.strategies.gan.measurements import manifest_crops
from syntfer.study import summary as SUM

WHERE: dict[str, str] = {"world": "procedural world", "real": "real data", "mixed": "part world, part real inputs"}
"""How a title says where the numbers come from, by data kind (`syntfer.core.provenance.run_kind`)."""

IDSIM_COLUMNS = ["set", "path", "source_face", "label", "similarity"]
"""Columns of identity_similarity.csv (one row per edited image)."""

DEMOGRAPHIC_COLUMNS = ["set", "basis", "label", "attribute", "value", "count", "share", "n_unmatched"]
"""Columns of demographics.csv (`syntfer.instruments.audit.audit_sets`)."""


# ---- inputs ------------------------------------------------------------------------------------------------------
def set_names(synthetic: str) -> list[str]:
    """The set names of a comma-separated list (``'gan_f, gan_v'``), in order; none, or a name given twice,
    raises naming the parameter's value."""
    names = [s.strip() for s in synthetic.split(",") if s.strip()]
    if not names:
        raise ValueError(f"synthetic={synthetic!r}: no set names")
    if len(set(names)) != len(names):
        raise ValueError(f"synthetic={synthetic!r}: a set is named twice")
    return names


def manifest_files(sets_dir: str | os.PathLike, names: Sequence[str]) -> dict[str, Path]:
    """{name: ``<sets_dir>/<name>/manifest.csv``}; FileNotFoundError listing every manifest that does not exist."""
    files = {n: Path(sets_dir) / n / "manifest.csv" for n in names}
    missing = [str(f) for f in files.values() if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"synthetic set manifest(s) not found: {missing}")
    return files


def require_inputs(**paths: str | os.PathLike) -> None:
    """FileNotFoundError ``<name>=<path> not found`` for the first of the named `paths` that does not exist."""
    for what, p in paths.items():
        if not Path(p).exists():
            raise FileNotFoundError(f"{what}={p!r} not found")


def describe_inputs(*, reference: str, identity_dir: str, clip_weights: str, real_train: str) -> dict:
    """Each input's path and kind (world, real or unused; `syntfer.core.provenance.describe`), the real training
    faces' kind read from where their manifest's images come from."""
    inputs = PV.describe({"reference": reference, "identity_encoder": identity_dir, "clip_weights": clip_weights})
    inputs["real_train"] = {"path": real_train, "kind": PV.manifest_kind(real_train)}
    return inputs


# ---- the sets ----------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Sets:
    """Every set's manifest (`frames`, in the order named), the row positions of its seeded measurement subset
    (`positions`) and that subset (`subsets`, index reset): FD/KID and the privacy check measure the subset."""

    frames: dict[str, pd.DataFrame]
    positions: dict[str, np.ndarray]
    subsets: dict[str, pd.DataFrame]

    @property
    def names(self) -> list[str]:
        return list(self.frames)


def read_sets(files: Mapping[str, str | os.PathLike], max_images: int, seed: int) -> Sets:
    """Each set's manifest (``path``, ``label`` required) and its subset of at most `max_images` rows
    (`syntfer.instruments.setmetrics.subset_positions`, seeded by (`seed`, name)). A set without rows, or with a
    label outside the 7 canonical classes, raises naming its manifest."""
    frames, positions, subsets = {}, {}, {}
    for name, file in files.items():
        frame = read_manifest(file, required=("path", "label"))
        if frame.empty:
            raise ValueError(f"{file}: set {name!r} has no images")
        label_indices(frame["label"].tolist(), f"{file}")  # raises on empty or non-canonical labels
        frames[name] = frame
        positions[name] = SETM.subset_positions(len(frame), max_images, seed, name)
        subsets[name] = frame.iloc[positions[name]].reset_index(drop=True)
    return Sets(frames, positions, subsets)


def counts_table(sets: Sets) -> pd.DataFrame:
    """Images per class of each set (rows: sets; columns: the 7 classes), their total (``all``) and the size of
    the measured subset (``measured (FD/KID/privacy)``)."""
    counts = pd.DataFrame({n: L.counts(f["label"]) for n, f in sets.frames.items()}).T
    counts["all"] = counts.sum(axis=1)
    counts["measured (FD/KID/privacy)"] = [len(sets.subsets[n]) for n in counts.index]
    return counts


def reference_frame(reference: str | os.PathLike, max_images: int, seed: int) -> pd.DataFrame:
    """The reference faces (an unlabeled image folder, `syntfer.sources.readers`): the seeded subset of at most
    `max_images` of them drawn as set ``reference``, at the sets' sample size."""
    frame = read_dataset("unlabeled", reference, check="exists").frame
    return frame.iloc[SETM.subset_positions(len(frame), max_images, seed, "reference")]


# ---- expression fidelity -----------------------------------------------------------------------------------------
def set_domain(name: str, domains: Mapping[str, str]) -> str | None:
    """The domain a set's generator imitates: the value of the first `domains` prefix (``{'gan_': 'ref_ffhq'}``)
    that `name` starts with; None when none does (pseudo-labeled and mixed sets)."""
    return next((d for prefix, d in domains.items() if name.startswith(prefix)), None)


@dataclasses.dataclass
class Fidelity:
    """The judge over every set: ``set, class, n, fidelity, p_label`` per class and ``all`` (`table`), each set's
    judge-space features of its measured subset (`features`), and {set: (domain, ceiling)} for the sets whose
    generator imitates one domain (`ceilings`)."""

    table: pd.DataFrame
    features: dict[str, np.ndarray]
    ceilings: dict[str, tuple[str, float]]


def judge_sets(judge, sets: Sets, *, ceilings: pd.DataFrame, set_domains: str, batch_size: int, workers: int
               ) -> Fidelity:
    """Run the judge (an object with ``outputs(paths, batch_size=, workers=)`` giving ``probs`` and ``features``,
    `syntfer.instruments.judge.Judge`) once over every image of every set: its fidelity table
    (`syntfer.instruments.judge.fidelity_table`), the features of the set's measured subset, and the ceiling of the
    domain its generator imitates (`set_domains`, ``prefix:domain,…``; `syntfer.instruments.judge.judge_ceiling`)."""
    domains = SUM.parse_pairs(set_domains, ":")
    tables, features, set_ceiling = [], {}, {}
    for name, frame in sets.frames.items():
        res = judge.outputs(frame["path"].tolist(), batch_size=batch_size, workers=workers)
        tables.append(fidelity_table(res.probs, frame["label"].tolist(), name).assign(set=name))
        features[name] = res.features[sets.positions[name]]
        domain = set_domain(name, domains)
        if domain is not None:
            set_ceiling[name] = (domain, judge_ceiling(ceilings, domain))
    table = pd.concat(tables, ignore_index=True)[["set", "class", "n", "fidelity", "p_label"]]
    return Fidelity(table, features, set_ceiling)


def fidelity_wide(fidelity: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """Fidelity as set × class (the 7 classes, then ``all``), sets in the order of `names`."""
    return fidelity.pivot(index="set", columns="class", values="fidelity").loc[list(names), [*L.CLASSES, "all"]]


def mean_class(fidelity: pd.DataFrame) -> pd.Series:
    """Each set's mean-class fidelity: the mean of its class rows (classes without images left out), by set name."""
    return fidelity[fidelity["class"].isin(L.CLASSES)].groupby("set")["fidelity"].mean()


def against_ceiling(mean_class: pd.Series, ceilings: Mapping[str, tuple[str, float]], names: Sequence[str]
                    ) -> pd.DataFrame:
    """Per set (in the order of `names`): its mean-class fidelity, its ceiling as text (``'0.700 (ref_ffhq)'``;
    ``—`` without one) and fidelity / ceiling (NaN without one)."""
    return pd.DataFrame(
        {"mean-class fidelity": mean_class.reindex(names),
         "ceiling (domain)": [f"{ceilings[n][1]:.3f} ({ceilings[n][0]})" if n in ceilings else "—" for n in names],
         "fidelity / ceiling": [mean_class[n] / ceilings[n][1] if n in ceilings else np.nan for n in names]},
        index=list(names))


# ---- FD / KID ----------------------------------------------------------------------------------------------------
Spaces = dict[str, tuple[dict[str, np.ndarray], np.ndarray]]
"""{space: ({set: features of its measured subset}, features of the reference faces)}."""


def feature_spaces(judge_features: Mapping[str, np.ndarray], reference_judge: np.ndarray, sets: Sets,
                   reference: pd.DataFrame, identity_embed, *, features_dir: str | os.PathLike,
                   clip_weights: str = "", batch_size: int = 256) -> Spaces:
    """The feature spaces FD/KID are measured in: ``judge`` (the features the judge gave, `judge_features` and
    `reference_judge`), ``identity`` (`identity_embed`, `syntfer.instruments.audit.embed_set`; each set's
    features cached in `features_dir` where the privacy check looks for them, the reference's not cached) and,
    when `clip_weights` names a local CLIP folder, ``clip`` (`syntfer.instruments.distances.clip_space`)."""
    spaces: Spaces = {"judge": (dict(judge_features), reference_judge)}
    spaces["identity"] = ({n: AUDIT.embed_set(identity_embed, s["path"].tolist(), space="identity", name=n,
                                              cache_dir=features_dir, batch_size=batch_size)
                           for n, s in sets.subsets.items()},
                          AUDIT.embed_set(identity_embed, reference["path"].tolist(), space="identity",
                                          batch_size=batch_size))
    if clip_weights:
        clip = DIST.clip_space(clip_weights, name="clip")
        spaces["clip"] = ({n: DIST.extract_features(clip, s["path"].tolist(), batch_size=batch_size, progress=False)
                           for n, s in sets.subsets.items()},
                          DIST.extract_features(clip, reference["path"].tolist(), batch_size=batch_size,
                                                progress=False))
    return spaces


# ---- identity similarity of edits ----------------------------------------------------------------------------------
def identity_similarity(frames: Mapping[str, pd.DataFrame], encoder) -> tuple[pd.DataFrame, pd.DataFrame]:
    """For every expression-edit set (`syntfer.instruments.setmetrics.edit_sources`), the cosine similarity of each
    edited face and its source face in `encoder` (`syntfer.instruments.identity_encoder`), both cropped at the
    manifest's face box (`syntfer.strategies.gan.measurements.manifest_crops`). Returns the per-image table
    (`IDSIM_COLUMNS`; no rows when no set is an edit set) and one status row per set: ``set,
    identity_similarity`` (measured / skipped), ``n``, ``reason`` (why a set was skipped)."""
    size = int(encoder.cfg.image_size)
    rows, status = [], []
    for name, frame in frames.items():
        sources, why = SETM.edit_sources(frame)
        if sources is None:
            status.append({"set": name, "identity_similarity": "skipped", "n": 0, "reason": why})
            continue
        e_edit = IDENT.embed(encoder, manifest_crops(frame, size))
        e_src = IDENT.embed(encoder, manifest_crops(frame.assign(source_face=sources), size, path_column="source_face"))
        sim = IDENT.cosine(e_edit, e_src)
        rows.append(pd.DataFrame({"set": name, "path": frame["path"], "source_face": sources,
                                  "label": frame["label"], "similarity": sim.astype(np.float64)}))
        status.append({"set": name, "identity_similarity": "measured", "n": len(frame), "reason": ""})
    table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=IDSIM_COLUMNS)
    return table, pd.DataFrame(status)


def identity_by_class(idsim: pd.DataFrame) -> pd.DataFrame:
    """Mean, sd and count of the identity similarity per target class (rows) and set (column groups)."""
    return idsim.groupby(["set", "label"])["similarity"].agg(["mean", "std", "size"]).unstack(0)


# ---- privacy -----------------------------------------------------------------------------------------------------
def privacy_threshold(real_features: np.ndarray, given: float, quantile: float) -> tuple[float, str]:
    """The privacy flag threshold and its basis: `given` when > 0 (``'given'``), else the `quantile` of the real
    training faces' similarity to their nearest other training face
    (`syntfer.instruments.audit.leave_one_out_threshold`; ``'real leave-one-out q<quantile>'``)."""
    if given > 0:
        return float(given), "given"
    return AUDIT.leave_one_out_threshold(real_features, quantile), f"real leave-one-out q{quantile}"


# ---- demographics ------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Demographics:
    """The demographic audit of every set (`table`, `DEMOGRAPHIC_COLUMNS`). Without world truth (no set image comes
    from a rendered world), `no_truth` says why the truth basis is skipped and `without_basis` lists the sets with
    no prompted row (not audited at all); both are None when there is truth."""

    table: pd.DataFrame
    no_truth: str | None = None
    without_basis: list[str] | None = None


def prompted_rows(frames: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """{set: its rows with every prompt attribute (`syntfer.instruments.audit.PROMPT_COLUMNS`) non-empty}, for
    the sets that have such rows."""
    prompted = {}
    for name, frame in frames.items():
        if all(c in frame.columns for c in AUDIT.PROMPT_COLUMNS):
            keep = frame[list(AUDIT.PROMPT_COLUMNS)].astype(str).ne("").all(axis=1)
            if keep.any():
                prompted[name] = frame[keep]
    return prompted


def demographics(frames: Mapping[str, pd.DataFrame]) -> Demographics:
    """`syntfer.instruments.audit.audit_sets` of every set on the world truth its images come from
    (`syntfer.instruments.audit.world_truth_for`); without any (the user's data), of the prompted rows only
    (`prompted_rows`), the reason and the sets left without a basis recorded."""
    truth = AUDIT.world_truth_for(frames)  # None: no set image comes from a rendered world (no truth exists)
    if truth is not None:
        return Demographics(AUDIT.audit_sets(frames, truth))
    prompted = prompted_rows(frames)
    table = AUDIT.audit_sets(prompted) if prompted else pd.DataFrame(columns=DEMOGRAPHIC_COLUMNS)
    return Demographics(table, f"the sets' source images: {PV.NO_TRUTH}; prompted rows only",
                        sorted(set(frames) - set(prompted)))


def unmatched_rows(demographics: pd.DataFrame) -> pd.DataFrame:
    """Rows without a truth match (counted as unknown) per (set, basis): the audit's ``n_unmatched``."""
    return demographics.groupby(["set", "basis"])["n_unmatched"].max().to_frame()


def attribute_shares(demographics: pd.DataFrame, attribute: str) -> pd.DataFrame:
    """Share of each value of `attribute` over all a set's images: (set, basis) × value, 0 where absent."""
    shares = demographics[(demographics["attribute"] == attribute) & (demographics["label"] == "all")]
    return shares.pivot_table(index=["set", "basis"], columns="value", values="share", fill_value=0.0)


# ---- synthetic.csv and metrics.json ------------------------------------------------------------------------------
def synthetic_rows(names: Sequence[str], frames: Mapping[str, pd.DataFrame], mean_class: pd.Series,
                   ceilings: Mapping[str, tuple[str, float]], distances: pd.DataFrame, idsim: pd.DataFrame
                   ) -> pd.DataFrame:
    """synthetic.csv: tidy ``set, metric, value`` per set in the order of `names` — ``n_images``,
    ``expression_fidelity`` (mean-class), ``judge_ceiling`` and ``fidelity_over_ceiling`` where the set has a
    ceiling, ``fd_<space>`` and ``kid_<space>`` per row of `distances`, and ``identity_similarity`` (the mean over
    its edits) where `idsim` has the set (what `syntfer summarize --synthetic` reads)."""
    rows = []
    for name in names:
        rows.append({"set": name, "metric": "n_images", "value": len(frames[name])})
        rows.append({"set": name, "metric": "expression_fidelity", "value": float(mean_class[name])})
        if name in ceilings:
            rows.append({"set": name, "metric": "judge_ceiling", "value": ceilings[name][1]})
            rows.append({"set": name, "metric": "fidelity_over_ceiling",
                         "value": float(mean_class[name]) / ceilings[name][1]})
        for r in distances[distances["set"] == name].itertuples():
            rows += [{"set": name, "metric": f"fd_{r.space}", "value": r.fd},
                     {"set": name, "metric": f"kid_{r.space}", "value": r.kid}]
        if len(idsim) and (idsim["set"] == name).any():
            rows.append({"set": name, "metric": "identity_similarity",
                         "value": float(idsim.loc[idsim["set"] == name, "similarity"].mean())})
    return pd.DataFrame(rows, columns=["set", "metric", "value"])


def synthetic_metrics(synthetic: pd.DataFrame, privacy_summary: pd.DataFrame) -> dict:
    """metrics.json's per-set keys: ``<metric>.<set>`` of every synthetic.csv row (``n_images`` as an int) and
    ``privacy_share_flagged.<set>`` of the privacy summary."""
    metrics = {f"{r.metric}.{r.set}": int(r.value) if r.metric == "n_images" else r.value
               for r in synthetic.itertuples()}
    return metrics | {f"privacy_share_flagged.{r.set}": r.share_flagged for r in privacy_summary.itertuples()}


def run_metrics(*, data_kind: str, inputs: Mapping, skipped: Mapping[str, str], names: Sequence[str],
                judge_model: str, max_images: int, n_reference: int, threshold: float, idsim_status: pd.DataFrame,
                synthetic: pd.DataFrame, privacy_summary: pd.DataFrame) -> dict:
    """metrics.json of the stage: where the numbers come from (`data_kind`, `inputs`, what was `skipped` and why),
    the run's settings (sets, judge, subset size, reference size, privacy threshold), how many sets had their
    identity similarity measured or skipped (`idsim_status`, `identity_similarity`'s status), then
    `synthetic_metrics`' per-set keys."""
    n_skipped = int((idsim_status["identity_similarity"] == "skipped").sum())
    metrics = {"data_kind": data_kind, "inputs": inputs, "skipped": skipped, "n_sets": len(names),
               "judge_model": judge_model, "max_images": max_images, "n_reference": n_reference,
               "privacy_threshold": threshold, "identity_similarity_measured": len(names) - n_skipped,
               "identity_similarity_skipped": n_skipped}
    return metrics | synthetic_metrics(synthetic, privacy_summary)


def expected_metrics(spaces: Sequence[str]) -> set[str]:
    """The metrics every set must have in synthetic.csv: size, expression fidelity, FD and KID in each space."""
    return {"n_images", "expression_fidelity", *(f"{s}_{sp}" for s in ("fd", "kid") for sp in spaces)}
