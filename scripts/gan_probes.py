"""Probes of what holds GAN-edited training sets back downstream (issue #30), on the procedural world.

Each probe writes a training manifest that `scripts/gan_downstream.sh OUT MANIFEST.csv ...` trains and tests
beside the oracle, exactly as it does an editor's edits:

    python scripts/gan_probes.py select --edits DIR --out A.csv --per-class 300 \\
        [--source-truth outputs/world/ffhq/truth.csv --source-expression neutral] [--scores SCORES.csv]
    python scripts/gan_probes.py transplant --manifest A.csv --out DIR --bank-truth outputs/world/ref_ffhq/truth.csv \\
        --source-truth outputs/world/ffhq/truth.csv [--onto sources] [--upper-only] [--region face]
    python scripts/gan_probes.py identity --manifest A.csv --boxes outputs/world/ffhq/boxes.csv
    python scripts/gan_probes.py measure --manifest A.csv --boxes outputs/world/ffhq/boxes.csv [--out T.csv] \\
        [--judge outputs/instruments/judge/checkpoint --ceilings outputs/instruments/judge/ceiling.csv] \\
        [--domain ref_ffhq]

select      a class-balanced draw from an edit set (`syntfer gan edit ... --recipe 70`, every face into every class):
            only edits whose source face has a given world-truth expression (``--source-expression``), or the
            top N per class by a teacher's probability of the target (``--scores``: `syntfer pseudolabel ...
            --threshold 0 --per-class 0 --link none` over the edit set's manifest)
transplant  each image of a manifest gets the mouth of a truth-labelled face of its class (a seeded draw from the
            bank's training split), aligned by the two mouth corners (similarity transform), colour-matched on a ring
            around the mouth and blended under a feathered ellipse; ``--onto sources`` puts it on the unedited
            source instead of the edit, ``--upper-only`` keeps the edit only above the nose (the source below it),
            ``--region face`` transplants the whole inner face (brows to mouth, aligned by all five points): what
            a perfect local editor could at best give, with the donor's features in place of the source's
identity    the mean identity similarity (world identity encoder) of each image of a manifest to its source
measure     issue #30's criteria for any edit set, however made: the judge's fidelity per class over its ceiling on
            real faces of the domain, the mean-class fidelity over the mean ceiling, the median sharpness ratio
            (Laplacian variance in the source's face box, edit over source; at native size and at 64 px) and the
            identity similarity; ``--out`` writes the per-class table

World only: landmarks come from the world's truth.csv (5 points: eyes, nose, mouth corners). These are measuring
instruments for the model card (models/gan/README.md), not generators of the pipeline.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from syntfer.core import labels as L
from syntfer.core.images import load_array
from syntfer.core.manifest import PATH_COLUMNS, ManifestError, read_manifest, write_manifest
from syntfer.core.storage import save_image
from syntfer.core.tables import write_csv
from syntfer.instruments.judge import Judge, JudgeError
from syntfer.strategies.gan.inpaint import FEATHER, face_ellipse  # the inner face's ellipse, the blend's feather
from syntfer.strategies.gan.measurements import FACE_BOX


class ProbeError(ValueError):
    """A probe's input is not what it needs (names the file and what was expected)."""


def landmarks(cell: str, where: str) -> np.ndarray:
    """A world truth ``landmarks`` cell (``x;y`` × 5: left eye, right eye, nose, left and right mouth corner)."""
    try:
        v = np.array([float(x) for x in str(cell).split(";")], dtype=np.float64)
    except ValueError:
        raise ProbeError(f"{where}: landmarks {cell!r} are not numbers") from None
    if v.size != 10:
        raise ProbeError(f"{where}: landmarks {cell!r} have {v.size} numbers, expected 10 (5 points)")
    return v.reshape(5, 2)


MANIFEST = ("path", "label", "source_path")  # what a probe reads and writes (paths as `read_manifest` makes them)


def read_truth(path: str | os.PathLike) -> pd.DataFrame:
    """A world truth.csv indexed by the image's absolute path (`read_manifest`: the file and its columns checked)."""
    t = read_manifest(path, required=("path", "expression", "landmarks"), check_labels=False)
    return t.set_index("path", drop=False)


def per_class_draw(m: pd.DataFrame, n: int, seed: int, where: str) -> pd.DataFrame:
    """`n` rows of every class, a seeded draw; a class with fewer is an error naming it."""
    counts = m["label"].value_counts()
    short = {c: int(counts.get(c, 0)) for c in L.CLASSES if counts.get(c, 0) < n}
    if short:
        raise ProbeError(f"{where}: fewer than {n} rows for {short}")
    return m.groupby("label").sample(n, random_state=seed).sort_values(["label", "path"]).reset_index(drop=True)


def select(edits: pd.DataFrame, per_class: int, seed: int, *, source_truth: pd.DataFrame | None = None,
           source_expression: str = "", scores: pd.DataFrame | None = None, where: str = "edits") -> pd.DataFrame:
    """The edits whose source has `source_expression` (by `source_truth`), drawn to `per_class`; or, with `scores`
    (absolute ``path`` + ``p_<class>``), the `per_class` edits of each class with the highest p(target)."""
    m = edits
    if source_expression:
        if source_truth is None:
            raise ProbeError("--source-expression needs --source-truth")
        missing = [p for p in m["source_path"] if p not in source_truth.index]
        if missing:
            raise ProbeError(f"{where}: {len(missing)} source(s) not in the source truth, e.g. {missing[0]}")
        m = m[source_truth.loc[m["source_path"], "expression"].to_numpy() == source_expression]
    if scores is None:
        return per_class_draw(m, per_class, seed, where)
    s = scores.set_index("path")
    missing = [p for p in m["path"] if p not in s.index]
    if missing:
        raise ProbeError(f"{where}: {len(missing)} edit(s) without a teacher score, e.g. {missing[0]}")
    cols = [f"p_{c}" for c in L.CLASSES]
    absent = [c for c in cols if c not in s.columns]
    if absent:
        raise ProbeError(f"scores: no column(s) {absent}")
    probs = s.loc[m["path"], cols].to_numpy()
    m = m.assign(p_target=probs[np.arange(len(m)), [L.CLASS_TO_INDEX[c] for c in m["label"]]])
    short = {c: k for c, k in m["label"].value_counts().items() if k < per_class}
    if short or set(m["label"]) != set(L.CLASSES):
        raise ProbeError(f"{where}: fewer than {per_class} edits for some class: {short}")
    top = m.sort_values(["p_target", "path"], ascending=[False, True]).groupby("label").head(per_class)
    return top.sort_values(["label", "path"]).reset_index(drop=True)


# ---- mouth transplant -----------------------------------------------------------------------------------------
RING = (0.6, 1.0)       # colour matched on the ellipse's ring (normalised radius)
AXES = (0.85, 0.6)      # semi-axes over the mouth width (horizontal, vertical)
DROP = 0.1              # the ellipse's centre: this much of the mouth width below the corners' midpoint
GAIN = (0.5, 2.0)       # the colour match's contrast gain (target ring sd over donor ring sd), clipped to this


def mouth_ellipse(shape: tuple[int, int], corners: np.ndarray) -> np.ndarray:
    """Normalised elliptic radius of every pixel around the mouth whose corners are `corners` (2 × (x, y))."""
    d = float(np.linalg.norm(corners[1] - corners[0]))
    c = corners.mean(0) + np.array([0.0, DROP * d])
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    return np.sqrt(((xx - c[0]) / (AXES[0] * d)) ** 2 + ((yy - c[1]) / (AXES[1] * d)) ** 2)


REGIONS = ("mouth", "face")


def transplant(target: np.ndarray, target_lm: np.ndarray, donor: np.ndarray, donor_lm: np.ndarray,
               region: str = "mouth") -> np.ndarray:
    """`target` (H, W, 3 uint8) with the `region` of `donor` — ``mouth``: aligned by the two mouth corners, under the
    ellipse of `mouth_ellipse`; ``face``: the inner face (brows to mouth), aligned by all five points, under
    `face_ellipse` — by a similarity transform, its colours matched to the target's on the ellipse's ring (mean per
    channel, and sd within `GAIN`), blended under the feathered ellipse. Outside the ellipse the target is unchanged."""
    if region not in REGIONS:
        raise ProbeError(f"region {region!r}: expected one of {REGIONS}")
    pts = slice(3, 5) if region == "mouth" else slice(0, 5)
    src, dst = donor_lm[pts].astype(np.float32), target_lm[pts].astype(np.float32)
    if np.linalg.norm(src[-1] - src[0]) < 1 or np.linalg.norm(dst[-1] - dst[0]) < 1:
        raise ProbeError(f"{region} landmarks less than a pixel apart")
    m, _ = cv2.estimateAffinePartial2D(src, dst, ransacReprojThreshold=1e3)  # every point an inlier: least squares
    if m is None:
        raise ProbeError(f"no similarity transform between the {region} landmarks")
    h, w = target.shape[:2]
    moved = cv2.warpAffine(donor, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT).astype(np.float64)
    tgt = target.astype(np.float64)
    e = mouth_ellipse((h, w), target_lm[3:5]) if region == "mouth" else face_ellipse((h, w), target_lm)
    ring = (e > RING[0]) & (e < RING[1])
    if ring.sum() < 8:
        raise ProbeError(f"the {region} ring holds {int(ring.sum())} pixels (too small for the image)")
    gain = np.clip((tgt[ring].std(0) + 1.0) / (moved[ring].std(0) + 1.0), *GAIN)  # never flattens the mouth away
    moved = (moved - moved[ring].mean(0)) * gain + tgt[ring].mean(0)
    a = np.clip((1.0 - e) / FEATHER, 0.0, 1.0)
    a = (a * a * (3 - 2 * a))[..., None]
    return np.clip(tgt * (1 - a) + moved * a, 0, 255).round().astype(np.uint8)


def upper_only(edit: np.ndarray, source: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """The edit above the nose, the source from half a mouth width below it (a smooth ramp between)."""
    y0 = float(lm[2, 1])
    y1 = y0 + 0.5 * float(np.linalg.norm(lm[4] - lm[3]))
    ramp = np.clip((np.arange(edit.shape[0], dtype=np.float64) - y0) / (y1 - y0), 0, 1)
    ramp = (ramp * ramp * (3 - 2 * ramp))[:, None, None]
    return (edit * (1 - ramp) + source * ramp).round().astype(np.uint8)


def transplant_set(m: pd.DataFrame, out: str | os.PathLike, bank: pd.DataFrame, source_truth: pd.DataFrame, *,
                   onto: str = "edits", upper: bool = False, region: str = "mouth", seed: int = 0) -> pd.DataFrame:
    """`transplant` of `region` over a manifest (absolute ``path``, ``label``, ``source_path``): the donor of row i is a
    draw from the bank's training faces of its class with the generator ``(seed, i)``. Writes OUT/images/ and
    OUT/manifest.csv (with the donor's path); an existing image is kept (rerun to resume)."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    train = bank[bank["split"] == "train"] if "split" in bank.columns else bank
    donors = {c: train[train["expression"] == c] for c in L.CLASSES}
    empty = [c for c, d in donors.items() if d.empty]
    if empty:
        raise ProbeError(f"bank: no training face of class(es) {empty}")
    rows = []
    for i, r in enumerate(m.itertuples(index=False)):
        if r.source_path not in source_truth.index:
            raise ProbeError(f"{r.source_path}: not in the source truth (landmarks needed)")
        lm = landmarks(source_truth.at[r.source_path, "landmarks"], r.source_path)
        pick = donors[r.label]
        d = pick.iloc[int(np.random.default_rng([seed, i]).integers(len(pick)))]
        name = f"images/{i:05d}_{r.label}.png"
        if not (out / name).is_file():
            img = load_array(r.source_path if onto == "sources" else r.path, "RGB")
            if upper:
                img = upper_only(img, load_array(r.source_path, "RGB"), lm)
            res = transplant(img, lm, load_array(d.name, "RGB"), landmarks(d["landmarks"], d.name), region)
            save_image(out / name, Image.fromarray(res))
        rows.append({"path": str(out / name), "label": r.label, "source_path": r.source_path, "donor": d.name})
    man = pd.DataFrame(rows)
    write_manifest(man, out / "manifest.csv", (*PATH_COLUMNS, "donor"))
    return man


def source_boxes(m: pd.DataFrame, boxes: pd.DataFrame) -> list[list[float]]:
    """The face box (x, y, w, h) of each row's ``source_path`` in `boxes` (indexed by absolute path); a source
    without one is an error naming how many and the first."""
    missing = [q for q in m["source_path"] if q not in boxes.index]
    if missing:
        raise ProbeError(f"{len(missing)} source(s) without a face box, e.g. {missing[0]}")
    return boxes.loc[m["source_path"], list(FACE_BOX)].astype(float).values.tolist()


def identity_kept(m: pd.DataFrame, boxes: pd.DataFrame, encoder_dir: str | os.PathLike) -> float:
    """Mean cosine similarity, in the world identity encoder's space, between each image of a manifest (absolute
    ``path``, ``source_path``) and its source, both cropped to the source's face box (`boxes`: indexed by the
    source's absolute path)."""
    from syntfer.instruments.identity_encoder import embed, load_identity_encoder
    from syntfer.strategies.gan.training import crop_square

    all_faces = source_boxes(m, boxes)
    enc = load_identity_encoder(encoder_dir)
    size, sims = enc.cfg.image_size, []
    for start in range(0, len(m), 256):
        part, faces = m.iloc[start:start + 256], all_faces[start:start + 256]
        a = embed(enc, np.stack([crop_square(load_array(q, "RGB"), f, size) for q, f in zip(part["source_path"], faces)]))
        b = embed(enc, np.stack([crop_square(load_array(q, "RGB"), f, size) for q, f in zip(part["path"], faces)]))
        sims.append((a * b).sum(1))
    return float(np.concatenate(sims).mean())


def measure(m: pd.DataFrame, boxes: pd.DataFrame, judge, ceilings: str | os.PathLike, domain: str,
            encoder_dir: str | os.PathLike) -> tuple[dict[str, float], pd.DataFrame]:
    """(summary, per-class table) of an edit manifest (absolute ``path``, ``label``, ``source_path``; `boxes`
    indexed by the source's absolute path) read by `judge` (`syntfer.instruments.judge.Judge`): see the module's
    doc. The per-class table has the judge module's
    ``class, n, fidelity, p_label`` plus ``ceiling`` and ``over_ceiling``; the summary ``fidelity`` is the mean over
    the classes present, ``ceiling`` the mean of their ceilings."""
    from syntfer.instruments.judge import fidelity_table, mean_class_fidelity
    from syntfer.strategies.gan.measurements import class_ceilings, laplacian_variance, laplacian_variance_at

    faces = source_boxes(m, boxes)
    ceil = class_ceilings(ceilings, domain)
    tab = fidelity_table(judge.outputs(list(m["path"])).probs, list(m["label"]), "manifest")
    tab = tab[(tab["class"] != "all") & (tab["n"] > 0)].copy()
    tab["ceiling"] = tab["class"].map(ceil)
    tab["over_ceiling"] = tab["fidelity"] / tab["ceiling"]
    ratio, ratio64 = [], []
    for q, src, box in zip(m["path"], m["source_path"], faces):
        a, b = load_array(q, "RGB"), load_array(src, "RGB")
        ratio.append(laplacian_variance(a, box) / max(laplacian_variance(b, box), 1e-9))
        ratio64.append(laplacian_variance_at(a, box, 64) / max(laplacian_variance_at(b, box, 64), 1e-9))
    fid, cei = mean_class_fidelity(tab), float(tab["ceiling"].mean())
    return ({"images": len(m), "fidelity": fid, "ceiling": cei, "fidelity_over_ceiling": fid / cei,
             "worst_class_over_ceiling": float(tab["over_ceiling"].min()),
             "sharpness_ratio": float(np.median(ratio)), "sharpness_ratio_64px": float(np.median(ratio64)),
             "identity": identity_kept(m, boxes, encoder_dir)}, tab.reset_index(drop=True))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="probe", required=True)
    s = sub.add_parser("select")
    s.add_argument("--edits", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--per-class", type=int, default=300)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--source-truth", default="")
    s.add_argument("--source-expression", default="", choices=("", *L.CLASSES))
    s.add_argument("--scores", default="")
    t = sub.add_parser("transplant")
    t.add_argument("--manifest", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--bank-truth", required=True)
    t.add_argument("--source-truth", required=True)
    t.add_argument("--onto", choices=("edits", "sources"), default="edits")
    t.add_argument("--upper-only", action="store_true")
    t.add_argument("--region", choices=REGIONS, default="mouth")
    t.add_argument("--seed", type=int, default=0)
    i = sub.add_parser("identity")
    i.add_argument("--manifest", required=True)
    i.add_argument("--boxes", required=True, help="the sources' boxes.csv (outputs/world/ffhq/boxes.csv)")
    i.add_argument("--encoder", default="models/identity/world32")
    me = sub.add_parser("measure")
    me.add_argument("--manifest", required=True)
    me.add_argument("--boxes", required=True, help="the sources' boxes.csv (outputs/world/ffhq/boxes.csv)")
    me.add_argument("--judge", default="outputs/instruments/judge/checkpoint")
    me.add_argument("--ceilings", default="outputs/instruments/judge/ceiling.csv")
    me.add_argument("--domain", default="ref_ffhq", help="the ceiling table's domain of the sources' look")
    me.add_argument("--encoder", default="models/identity/world32")
    me.add_argument("--out", default="", help="a CSV for the per-class table")
    a = p.parse_args(argv)
    try:
        if a.probe == "select":
            scores = None
            if a.scores:
                scores = read_manifest(a.scores, check_labels=False)
            truth = read_truth(a.source_truth) if a.source_truth else None
            sel = select(read_manifest(Path(a.edits) / "manifest.csv", MANIFEST), a.per_class, a.seed,
                         source_truth=truth, source_expression=a.source_expression, scores=scores, where=a.edits)
            write_manifest(sel[list(MANIFEST)], a.out)
            print(f"{a.out}: {len(sel)} edits, {sel['source_path'].nunique()} source faces")
        elif a.probe == "identity":
            m = read_manifest(a.manifest, MANIFEST)
            b = read_manifest(a.boxes, ("path", *FACE_BOX)).set_index("path")
            print(f"{a.manifest}: identity source -> image {identity_kept(m, b, a.encoder):.3f} ({len(m)} images)")
        elif a.probe == "measure":
            m = read_manifest(a.manifest, MANIFEST)
            b = read_manifest(a.boxes, ("path", *FACE_BOX)).set_index("path")
            summary, tab = measure(m, b, Judge.load(a.judge), a.ceilings, a.domain, a.encoder)
            print(tab.round(3).to_string(index=False))
            print("\n".join(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}" for k, v in summary.items()))
            if a.out:
                write_csv(tab, a.out)
        else:
            man = transplant_set(read_manifest(a.manifest, MANIFEST), a.out, read_truth(a.bank_truth),
                                 read_truth(a.source_truth), onto=a.onto, upper=a.upper_only, region=a.region,
                                 seed=a.seed)
            print(f"{a.out}/manifest.csv: {len(man)} images")
    except (ProbeError, ManifestError, JudgeError) as e:
        print(f"gan_probes: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
