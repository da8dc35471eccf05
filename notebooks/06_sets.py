# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     name: syntfer
#     display_name: syntfer
#     language: python
# ---

# %% [markdown]
# # 06 · What is in each synthetic training set?
#
# **Question.** Before any classifier is trained on them, how do the study's synthetic training sets
# (pseudo-labeled, diffusion, GAN-edited, Mixed-SYN) compare on what can be measured from the images alone:
#
# 1. **expression fidelity** — how often the project's judge (`syntfer.instruments.judge`, trained by 01_instruments on real
#    reference faces of the generator domains) sees the expression a set's label claims, per class — read against
#    the judge's **ceiling**, its accuracy on held-out real faces of the domain a set's generator imitates;
# 2. **distance to real faces** — FD and KID against the FFHQ stand-in, in named feature spaces
#    (docs/method.md §8 protocol as implemented by `syntfer.instruments.distances`);
# 3. **identity preservation** of expression edits (GAN sets): does an edited face keep its source's identity?
# 4. **privacy** — how close each synthetic face comes to a real training face (nearest neighbour in an
#    identity embedding), flagged above a calibrated threshold;
# 5. **demographics** — gender, age and skin tone per set and class (docs/method.md §6 audit).
#
# When every input is rendered by the procedural face world (the default; the banner below lists each input's kind),
# **every number here is a procedural-world number** — it says how the methods behave on rendered faces, not what they
# give on DigiFace-1M, DCFace, EmoNet-Face, FFHQ or RAF-DB.

# %% tags=["parameters"]
sets_dir = "outputs/sets"  # one folder per training set, each with manifest.csv
synthetic = "pseudolabel_digiface,pseudolabel_dcface,pseudolabel_emonet_face,diffusion_embedded,diffusion_embedded_au,gan_f,gan_v,mixed_syn"  # comma list of set names under sets_dir
reference = "outputs/world/ffhq"  # FD/KID reference: a folder of face images (params datasets.gan_faces)
real_train = "outputs/sets/real_rafdb/manifest.csv"  # real training faces for the privacy nearest-neighbour check
judge = "outputs/instruments/judge/checkpoint"  # the one judge (syntfer.instruments.judge): fidelity and the judge feature space
ceilings = "outputs/instruments/judge/ceiling.csv"  # the judge on held-out real faces per domain (01_instruments)
set_domains = "diffusion_:ref_web,gan_:ref_ffhq"  # set-name prefix: the domain its generator imitates
identity_dir = "models/identity/world32"  # identity encoder: 'identity' space, privacy embedding, identity similarity
clip_weights = ""  # optional local CLIP folder (docs/method.md §8 space 'clip'); empty: not measured
max_images = 600  # per set and for the reference: seeded subset for FD, KID and privacy (0: all images)
privacy_threshold = 0.0  # > 0: flag similarity above this; 0: calibrate on the real training faces
privacy_quantile = 0.99  # calibration quantile of real faces' nearest-other-face similarity
min_set_fidelity = 0.3  # closing check: every set's mean-class fidelity (chance 1/7; 0: off)
batch_size = 256
threads = 2
seed = 0
out_dir = "outputs/results/sets"  # synthetic.csv, fidelity_per_class.csv, privacy_summary.csv, demographics.csv …

# %%
import json
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from IPython.display import Markdown, display

from syntfer.instruments import audit as AUDIT
from syntfer.instruments import distances as DIST
from syntfer.instruments import identity_encoder as IDENT
from syntfer.core import labels as L
from syntfer.core import provenance as PV
from syntfer.core import plots
from syntfer.instruments import setmetrics as SETM
from syntfer.study import summary as SUM
from syntfer.core import tables as T
from syntfer.strategies.gan.measurements import manifest_crops
from syntfer.core.manifest import read_manifest, write_manifest
from syntfer.instruments.judge import Judge, fidelity_table, judge_ceiling, label_indices
from syntfer.sources.readers import read_dataset
from syntfer.core.seeding import seed_everything
from syntfer.core.storage import write_json

names = [s.strip() for s in synthetic.split(",") if s.strip()]
if not names:
    raise ValueError(f"synthetic={synthetic!r}: no set names")
if len(set(names)) != len(names):
    raise ValueError(f"synthetic={synthetic!r}: a set is named twice")
manifest_files = {n: Path(sets_dir) / n / "manifest.csv" for n in names}
missing = [str(f) for f in manifest_files.values() if not f.is_file()]
if missing:
    raise FileNotFoundError(f"synthetic set manifest(s) not found: {missing}")
for what, p in (("reference", reference), ("real_train", real_train), ("judge", judge), ("ceilings", ceilings),
                ("identity_dir", identity_dir)):
    if not Path(p).exists():
        raise FileNotFoundError(f"{what}={p!r} not found")
inputs = PV.describe({"reference": reference, "identity_encoder": identity_dir, "clip_weights": clip_weights})
inputs["real_train"] = {"path": real_train, "kind": PV.manifest_kind(real_train)}  # where its images come from
data_kind = PV.run_kind(inputs)
where = {"world": "procedural world", "real": "real data", "mixed": "part world, part real inputs"}[data_kind]
skipped: dict[str, str] = {}
display(Markdown(PV.banner(inputs, "06_sets")))
seed_everything(seed)
torch.set_num_threads(threads)
out = Path(out_dir)
figs = plots.Figures(out / "figures", dpi=120)  # every figure: out_dir/figures/<name>.png
features_dir = out / "features"  # this run's identity embeddings, shared with the privacy check
shutil.rmtree(features_dir, ignore_errors=True)  # never reuse embeddings of images rendered by an earlier run
features_dir.mkdir()


print(f"{len(names)} sets ({where}), judge={judge}, identity={identity_dir}, reference={reference}, "
      f"max_images={max_images}, seed={seed}")

# %% [markdown]
# ## The sets
# Each set is its manifest (`<sets_dir>/<name>/manifest.csv`, the set's truth; paths relative to it). Every
# label must be one of the 7 canonical classes. FD/KID and the privacy check use a **seeded subset of at most
# `max_images` images per set, and as many reference images** (drawn with `derive_seed(seed, "sets", name)`), so
# the stage stays fast on two CPU cores and a set and the reference are compared at equal sample sizes;
# expression fidelity and the demographic audit use every image, the privacy check every real training face.

# %%
frames, positions, subsets = {}, {}, {}
for name, file in manifest_files.items():
    frame = read_manifest(file, required=("path", "label"))
    if frame.empty:
        raise ValueError(f"{file}: set {name!r} has no images")
    label_indices(frame["label"].tolist(), f"{file}")  # raises on empty or non-canonical labels
    frames[name] = frame
    positions[name] = SETM.subset_positions(len(frame), max_images, seed, name)
    subsets[name] = frame.iloc[positions[name]].reset_index(drop=True)
counts = pd.DataFrame({n: L.counts(f["label"]) for n, f in frames.items()}).T
counts["all"] = counts.sum(axis=1)
counts["measured (FD/KID/privacy)"] = [len(subsets[n]) for n in counts.index]
T.show(counts, f"images per class — {where}")

ref_frame = read_dataset("unlabeled", reference, check="exists").frame
ref_frame = ref_frame.iloc[SETM.subset_positions(len(ref_frame), max_images, seed, "reference")]
real_frame = read_manifest(real_train)
print(f"reference: {len(ref_frame)} images from {reference}; real training faces: {len(real_frame)} from {real_train}")

# %% [markdown]
# ## Expression fidelity (the project's judge)
# Fidelity = the share of a set's images that the judge classifies as the set's label (argmax), overall and per
# class; `p_label` is the judge's mean (calibrated) probability of the label. The judge's own errors count as
# infidelity, so a generated set is read against the **ceiling**: the judge's mean-class accuracy on held-out real
# faces of the domain its generator imitates (`set_domains`; 01_instruments). Pseudo-labeled and mixed sets have no
# single generator domain and no ceiling. One decode per image: the same forward pass also gives the judge's
# penultimate features, the `judge` feature space below.

# %%
judge_ = Judge.load(judge)
print(judge_.describe())
ceiling_table = pd.read_csv(ceilings)
domain_of = dict(pair.split(":") for pair in set_domains.split(",") if pair.strip())
ref_judge = judge_.outputs(ref_frame["path"].tolist(), batch_size=batch_size, workers=threads).features
fid_tables, judge_feats, set_ceiling = [], {}, {}
for name, frame in frames.items():
    res = judge_.outputs(frame["path"].tolist(), batch_size=batch_size, workers=threads)
    fid_tables.append(fidelity_table(res.probs, frame["label"].tolist(), name).assign(set=name))
    judge_feats[name] = res.features[positions[name]]
    domain = next((d for prefix, d in domain_of.items() if name.startswith(prefix)), None)
    if domain is not None:
        set_ceiling[name] = (domain, judge_ceiling(ceiling_table, domain))
fidelity = pd.concat(fid_tables, ignore_index=True)[["set", "class", "n", "fidelity", "p_label"]]
T.write_csv(fidelity, out / "fidelity_per_class.csv")
fid_wide = fidelity.pivot(index="set", columns="class", values="fidelity").loc[names, [*L.CLASSES, "all"]]
T.show(fid_wide, f"expression fidelity (judge argmax == label) — {where}")
fig, ax = plt.subplots(figsize=(9, 0.45 * len(names) + 1.5))
sns.heatmap(fid_wide, annot=True, fmt=".2f", vmin=0, vmax=1, cmap="viridis", ax=ax, cbar_kws={"label": "fidelity"})
ax.set(xlabel="", ylabel="", title=f"expression fidelity per class, judge = {judge_.name} — {where}")
figs.show(fig, "fidelity_per_class")
mean_class = fidelity[fidelity["class"].isin(L.CLASSES)].groupby("set")["fidelity"].mean()
against_ceiling = pd.DataFrame(
    {"mean-class fidelity": mean_class.reindex(names),
     "ceiling (domain)": [f"{set_ceiling[n][1]:.3f} ({set_ceiling[n][0]})" if n in set_ceiling else "—"
                          for n in names],
     "fidelity / ceiling": [mean_class[n] / set_ceiling[n][1] if n in set_ceiling else np.nan for n in names]},
    index=names)
T.show(against_ceiling, f"expression fidelity against the ceiling — {where}")

# %% [markdown]
# ## Distance to the reference faces: FD and KID in named feature spaces
# docs/method.md §8 measures FD/KID in CLIP image-embedding space; the default pipeline has no CLIP weights, so the
# sets are measured in two spaces that exist here, and every number carries its space's name (none of them is
# FID, which means Inception-v3 features):
#
# - `judge`: the judge's penultimate layer (expression-sensitive; `syntfer.instruments.judge`);
# - `identity`: the world identity encoder (`identity_dir`; L2-normalised embeddings of the whole image,
#   identity-sensitive, trained to ignore expression);
# - `clip`: only when `clip_weights` names a local CLIP checkpoint.
#
# Protocol (`syntfer.instruments.distances`): FD between Gaussians fitted in float64 (matrix square root, retried with
# 1e-6·I when not finite); KID = unbiased MMD² with the cubic kernel (xᵀy/d + 1)³, averaged over 100 subsets
# of min(2000, n, n_reference) drawn with seed `seed` — when a set and the reference have the same size and no
# more than 2,000 images, every subset is the whole of both and one evaluation gives that average
# (`kid_subsets` = 1 in `distances.csv`). Both statistics are biased by sample size: compare sets measured at the
# same n (the table shows n).

# %%
identity_embed = AUDIT.identity_embedding(identity_dir)
# each set's embeddings cached where audit.privacy_check looks for them: the privacy check below reuses them
spaces = {"judge": (judge_feats, ref_judge)}
spaces["identity"] = ({n: AUDIT.embed_set(identity_embed, s["path"].tolist(), space="identity", name=n,
                                      cache_dir=features_dir, batch_size=batch_size) for n, s in subsets.items()},
                      AUDIT.embed_set(identity_embed, ref_frame["path"].tolist(), space="identity", batch_size=batch_size))
if clip_weights:
    clip = DIST.clip_space(clip_weights, name="clip")
    spaces["clip"] = ({n: DIST.extract_features(clip, s["path"].tolist(), batch_size=batch_size, progress=False)
                       for n, s in subsets.items()},
                      DIST.extract_features(clip, ref_frame["path"].tolist(), batch_size=batch_size, progress=False))
dist_rows = []
for space, (feats, ref) in spaces.items():
    for name in names:
        whole = len(feats[name]) == len(ref) <= 2000  # every KID subset would be both whole sets
        kid_subsets = 1 if whole else 100
        d = DIST.distribution_distances(feats[name], ref, space, n_subsets=kid_subsets, subset_size=2000, seed=seed)
        dist_rows.append({"set": name, "space": space, "n": d["n"], "n_reference": d["n_reference"],
                          "fd": d[f"fd_{space}"], "kid": d[f"kid_{space}"], "kid_sd": d[f"kid_{space}_sd"],
                          "kid_subset_size": d[f"kid_{space}_subset_size"], "kid_subsets": kid_subsets,
                          "fd_regularized": d[f"fd_{space}_regularized"]})
distances = pd.DataFrame(dist_rows)
T.write_csv(distances, out / "distances.csv")
T.show(distances.set_index(["space", "set"]), f"FD / KID against {Path(reference).name} — {where}")
long = distances.melt(id_vars=["set", "space"], value_vars=["fd", "kid"], var_name="statistic")
g = sns.catplot(long, kind="bar", y="set", x="value", col="statistic", row="space", sharex=False,
                height=0.3 * len(names) + 1.0, aspect=5.0 / (0.3 * len(names) + 1.0), color="tab:blue")
g.set_titles("{row_name} space · {col_name}")
g.set_axis_labels("", "")
for ax in g.axes.flat:
    ax.xaxis.set_major_locator(plt.MaxNLocator(4))
g.figure.suptitle(f"distance to {Path(reference).name} (lower = closer) — {where}", y=1.02)
figs.show(g.figure, "distances")

# %% [markdown]
# ## Identity preservation of expression edits
# For sets whose every row is an expression edit of a source face (GAN sets: the editor's control values on
# every row; the source face in `origin_path` once the set is copied into `sets_dir`, else in `source_path`), the
# cosine similarity between the identity embeddings of each edited face and its source face, both cropped at the
# manifest's face box (the measurement of notebook 05). Other sets are skipped and listed with the reason:
# pseudo-labeled images are copies of their `source_path`, and a mix holds edits only in part.

# %%
encoder = IDENT.load_identity_encoder(identity_dir)
size = int(encoder.cfg.image_size)
idsim_rows, idsim_status = [], []
for name, frame in frames.items():
    sources, why = SETM.edit_sources(frame)
    if sources is None:
        idsim_status.append({"set": name, "identity_similarity": "skipped", "n": 0, "reason": why})
        continue
    e_edit = IDENT.embed(encoder, manifest_crops(frame, size))
    e_src = IDENT.embed(encoder, manifest_crops(frame.assign(source_face=sources), size, path_column="source_face"))
    sim = IDENT.cosine(e_edit, e_src)
    idsim_rows.append(pd.DataFrame({"set": name, "path": frame["path"], "source_face": sources,
                                    "label": frame["label"], "similarity": sim.astype(np.float64)}))
    idsim_status.append({"set": name, "identity_similarity": "measured", "n": len(frame), "reason": ""})
idsim_status = pd.DataFrame(idsim_status)
idsim = (pd.concat(idsim_rows, ignore_index=True) if idsim_rows
         else pd.DataFrame(columns=["set", "path", "source_face", "label", "similarity"]))
# image paths stored relative to the table, as in a manifest: the file is the same in every checkout
write_manifest(idsim, out / "identity_similarity.csv", path_columns=("path", "source_face"))
n_idsim_skipped = int((idsim_status["identity_similarity"] == "skipped").sum())
T.show(idsim_status.set_index("set"),
       f"identity similarity: measured or skipped ({n_idsim_skipped} skipped) — {where}")
if len(idsim):
    T.show(idsim.groupby(["set", "label"])["similarity"].agg(["mean", "std", "size"]).unstack(0),
           f"identity similarity edit ↔ source, per target class — {where}")
    g = sns.catplot(idsim, kind="box", x="label", y="similarity", hue="set", order=list(L.CLASSES), height=3,
                    aspect=2.4, fliersize=1)
    g.set_axis_labels("target expression", "cosine similarity edit ↔ source")
    g.figure.suptitle(f"identity preservation of expression edits — {where}", y=1.03)
    figs.show(g.figure, "identity_similarity")

# %% [markdown]
# ## Privacy: how close does a synthetic face come to a real training face?
# For every measured image of a set, the cosine similarity to its nearest neighbour among the real training faces
# (`real_train`) in the identity embedding (`syntfer.instruments.audit.privacy_check`). An image is flagged above a threshold:
# `privacy_threshold` when given, else calibrated here as the `privacy_quantile` of the real training faces'
# similarity to their nearest *other* training face ("closer to a training face than 99 % of real training faces
# are to any other one"; with one image per identity, as in the world's RAF-DB stand-in, that other face is
# another person). The identity encoder is trained on world identities: on the world it detects identity reuse,
# on real photos it is only a proxy.

# %%
real_paths = real_frame["path"].tolist()
real_feats = AUDIT.embed_set(identity_embed, real_paths, space="identity", name=AUDIT.REAL_TRAIN, cache_dir=features_dir,
                         batch_size=batch_size)
if privacy_threshold > 0:
    threshold, threshold_basis = float(privacy_threshold), "given"
else:
    threshold = AUDIT.leave_one_out_threshold(real_feats, privacy_quantile)
    threshold_basis = f"real leave-one-out q{privacy_quantile}"
privacy = AUDIT.privacy_check({n: s["path"].tolist() for n, s in subsets.items()}, real_paths, identity_embed,
                          space="identity", threshold=threshold, batch_size=batch_size, cache_dir=features_dir)
T.write_csv(privacy.summary, out / "privacy_summary.csv")
write_manifest(privacy.table, out / "privacy_images.csv", path_columns=("path", "nn_path"))
print(f"threshold {threshold:.4f} ({threshold_basis})")
T.show(privacy.summary.set_index("set"), f"nearest real training face (identity space) — {where}")
g = AUDIT.plot_privacy(privacy.table, threshold)
g.figure.suptitle(f"similarity to the nearest real training face — {where}", y=1.03)
figs.show(g.figure, "privacy_similarity")

# %% [markdown]
# ## Demographics per set and class
# `syntfer.instruments.audit.audit_sets`: rows with prompt attributes (diffusion images, also inside a mix) are audited on the
# words they were generated from (basis `prompt`); the other rows on the world's truth of the image they come from
# (basis `world truth`: matched by path, origin_path or source_path — an edit keeps its source's identity). On
# real data no attribute model ships, so only prompted rows can be audited there. The `basis` column says which.

# %%
world_truth = AUDIT.world_truth_for(frames)  # None: no set image comes from a rendered world (no truth exists)
if world_truth is not None:
    demographics = AUDIT.audit_sets(frames, world_truth)
else:
    skipped["demographics_truth_basis"] = f"the sets' source images: {PV.NO_TRUTH}; prompted rows only"
    prompted = {}
    for name, frame in frames.items():
        if all(c in frame.columns for c in AUDIT.PROMPT_COLUMNS):
            keep = frame[list(AUDIT.PROMPT_COLUMNS)].astype(str).ne("").all(axis=1)
            if keep.any():
                prompted[name] = frame[keep]
    print("no demographic basis (real data, no prompt attributes):", sorted(set(names) - set(prompted)) or "none")
    demographics = (AUDIT.audit_sets(prompted) if prompted else
                    pd.DataFrame(columns=["set", "basis", "label", "attribute", "value", "count", "share",
                                          "n_unmatched"]))
T.write_csv(demographics, out / "demographics.csv")
unmatched = demographics.groupby(["set", "basis"])["n_unmatched"].max()
T.show(unmatched.to_frame(), f"rows without a truth match (counted as unknown) — {where}")
for attribute in sorted(demographics["attribute"].unique()):
    shares = demographics[(demographics["attribute"] == attribute) & (demographics["label"] == "all")]
    T.show(shares.pivot_table(index=["set", "basis"], columns="value", values="share", fill_value=0.0),
           f"{attribute}: share of images per set — {where}")
    # one bar per set and basis (a mix is audited on prompts for its diffusion rows, on truth for the rest)
    g = AUDIT.plot_demographics(demographics.assign(set=demographics["set"] + " · " + demographics["basis"]), attribute)
    for ax in g.axes.flat:
        plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    g.figure.suptitle(f"{attribute} by set · basis — {where}", y=1.05)
    figs.show(g.figure, f"demographics_{attribute}")

# %% [markdown]
# ## The metrics file
# `synthetic.csv` is tidy `set,metric,value` (`syntfer summarize --synthetic` reads it: `synthetic.<set>.<metric>`,
# and `identity_similarity.<set>` for edit sets); `privacy_summary.csv` is `privacy_check`'s summary
# (`syntfer summarize --privacy`).

# %%
rows = []
for name in names:
    rows.append({"set": name, "metric": "n_images", "value": len(frames[name])})
    rows.append({"set": name, "metric": "expression_fidelity", "value": float(mean_class[name])})
    if name in set_ceiling:
        rows.append({"set": name, "metric": "judge_ceiling", "value": set_ceiling[name][1]})
        rows.append({"set": name, "metric": "fidelity_over_ceiling", "value": float(mean_class[name]) / set_ceiling[name][1]})
    for r in distances[distances["set"] == name].itertuples():
        rows += [{"set": name, "metric": f"fd_{r.space}", "value": r.fd},
                 {"set": name, "metric": f"kid_{r.space}", "value": r.kid}]
    if len(idsim) and (idsim["set"] == name).any():
        rows.append({"set": name, "metric": "identity_similarity",
                     "value": float(idsim.loc[idsim["set"] == name, "similarity"].mean())})
synthetic_table = pd.DataFrame(rows, columns=["set", "metric", "value"])
T.write_csv(synthetic_table, out / "synthetic.csv")
T.show(synthetic_table.pivot(index="set", columns="metric", values="value").loc[names],
       f"per-set metrics — {where}")
metrics = {"data_kind": data_kind, "inputs": inputs, "skipped": skipped, "n_sets": len(names), "judge_model": judge_.cfg.name,
           "max_images": max_images, "n_reference": len(ref_frame), "privacy_threshold": threshold,
           "identity_similarity_measured": len(names) - n_idsim_skipped,
           "identity_similarity_skipped": n_idsim_skipped}
metrics |= {f"{r.metric}.{r.set}": int(r.value) if r.metric == "n_images" else r.value
            for r in synthetic_table.itertuples()}
metrics |= {f"privacy_share_flagged.{r.set}": r.share_flagged for r in privacy.summary.itertuples()}
write_json(out / "metrics.json", metrics)
print(json.dumps(metrics, indent=1))

# %% [markdown]
# ## Closing checks

# %%
for name in names:
    assert len(frames[name]) > 0 and len(subsets[name]) > 0, f"set {name!r} is empty"
assert synthetic_table["value"].notna().all() and np.isfinite(synthetic_table["value"]).all(), (
    f"NaN/inf metrics: {synthetic_table[~np.isfinite(synthetic_table['value'])].to_dict('records')}")
expected = {"n_images", "expression_fidelity", *(f"{s}_{sp}" for s in ("fd", "kid") for sp in spaces)}
for name in names:
    have = set(synthetic_table.loc[synthetic_table["set"] == name, "metric"])
    assert expected <= have, f"set {name!r} lacks metrics {sorted(expected - have)}"
assert fidelity["fidelity"].dropna().between(0, 1).all(), "fidelity outside [0, 1]"
# a set whose labels the judge reads at chance is a label-mapping fault far more often than a finding
assert all(mean_class[name] >= min_set_fidelity for name in names), (
    f"sets read by the judge as their own labels below min_set_fidelity {min_set_fidelity} (chance "
    f"{1 / L.NUM_CLASSES:.3f}): {({n: round(float(mean_class[n]), 3) for n in names if mean_class[n] < min_set_fidelity})}"
    " — check their label mapping")
assert (fidelity["fidelity"].isna() == (fidelity["n"] == 0)).all(), "fidelity is NaN for a class with images"
assert idsim["similarity"].between(-1 - 1e-5, 1 + 1e-5).all(), "cosine similarity outside [-1, 1]"
assert privacy.summary["share_flagged"].between(0, 1).all() and (privacy.summary["n"] > 0).all(), "bad privacy summary"
sums = demographics.groupby(["set", "basis", "label", "attribute"])["share"].sum()
assert np.allclose(sums, 1.0), "demographic shares do not sum to 1"
# what the summary stage reads must read back, with valid key names
read_back = SUM.read_synthetic(out / "synthetic.csv")
assert len(read_back) == len(synthetic_table), "synthetic.csv does not read back"
summary_metrics, _ = SUM.build_summary(synthetic=read_back, privacy=SUM.read_privacy(out / "privacy_summary.csv"))
assert set(summary_metrics["synthetic"]) == set(names), "summary does not see every set"
print("checks passed")
