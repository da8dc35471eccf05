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
#
# The cells below only call and show: the measurements are the instruments' (`syntfer.instruments`: the judge,
# `setmetrics`, `distances`, `audit`, `identity_encoder`), the tables built from them are
# `syntfer.study.sets_tables` (`STAB`) and the figures `syntfer.study.sets_figures` (`SFIG`), each tested on small
# inputs (tests/test_sets_tables.py, tests/test_sets_figures.py).

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

import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from syntfer.instruments import audit as AUDIT
from syntfer.instruments import identity_encoder as IDENT
from syntfer.core import labels as L
from syntfer.core import provenance as PV
from syntfer.core import plots
from syntfer.instruments import setmetrics as SETM
from syntfer.study import sets_figures as SFIG
from syntfer.study import sets_tables as STAB
from syntfer.study import summary as SUM
from syntfer.core import tables as T
from syntfer.core.manifest import read_manifest, write_manifest
from syntfer.instruments.judge import Judge
from syntfer.core.seeding import seed_everything
from syntfer.core.storage import write_json

names = STAB.set_names(synthetic)  # a name given twice, or none: an error
manifest_files = STAB.manifest_files(sets_dir, names)  # a missing manifest: an error naming it
STAB.require_inputs(reference=reference, real_train=real_train, judge=judge, ceilings=ceilings,
                    identity_dir=identity_dir)
# where the numbers come from: each input's kind (world, real), read from the data itself
inputs = STAB.describe_inputs(reference=reference, identity_dir=identity_dir, clip_weights=clip_weights,
                              real_train=real_train)
data_kind = PV.run_kind(inputs)
where = STAB.WHERE[data_kind]
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
sets = STAB.read_sets(manifest_files, max_images, seed)  # an empty set or a non-canonical label: an error
frames, subsets = sets.frames, sets.subsets
T.show(STAB.counts_table(sets), f"images per class — {where}")
ref_frame = STAB.reference_frame(reference, max_images, seed)  # as many reference images as a set's subset
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
ref_judge = judge_.outputs(ref_frame["path"].tolist(), batch_size=batch_size, workers=threads).features
judged = STAB.judge_sets(judge_, sets, ceilings=pd.read_csv(ceilings), set_domains=set_domains,
                         batch_size=batch_size, workers=threads)
fidelity, set_ceiling = judged.table, judged.ceilings
T.write_csv(fidelity, out / "fidelity_per_class.csv")
fid_wide = STAB.fidelity_wide(fidelity, names)
T.show(fid_wide, f"expression fidelity (judge argmax == label) — {where}")
figs.show(SFIG.fidelity_per_class(fid_wide, judge_.name, where), "fidelity_per_class")
mean_class = STAB.mean_class(fidelity)  # each set's mean over its classes: its expression fidelity
T.show(STAB.against_ceiling(mean_class, set_ceiling, names), f"expression fidelity against the ceiling — {where}")

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
# each set's identity embeddings cached where audit.privacy_check looks for them: the privacy check below reuses them
spaces = STAB.feature_spaces(judged.features, ref_judge, sets, ref_frame, identity_embed, features_dir=features_dir,
                             clip_weights=clip_weights, batch_size=batch_size)
distances = SETM.distance_table(spaces, names, seed=seed)
T.write_csv(distances, out / "distances.csv")
T.show(distances.set_index(["space", "set"]), f"FD / KID against {Path(reference).name} — {where}")
figs.show(SFIG.distances(distances, Path(reference).name, where), "distances")

# %% [markdown]
# ## Identity preservation of expression edits
# For sets whose every row is an expression edit of a source face (GAN sets: the editor's control values on
# every row; the source face in `origin_path` once the set is copied into `sets_dir`, else in `source_path`), the
# cosine similarity between the identity embeddings of each edited face and its source face, both cropped at the
# manifest's face box (the measurement of notebook 05). Other sets are skipped and listed with the reason:
# pseudo-labeled images are copies of their `source_path`, and a mix holds edits only in part.

# %%
idsim, idsim_status = STAB.identity_similarity(frames, IDENT.load_identity_encoder(identity_dir))
# image paths stored relative to the table, as in a manifest: the file is the same in every checkout
write_manifest(idsim, out / "identity_similarity.csv", path_columns=("path", "source_face"))
n_idsim_skipped = int((idsim_status["identity_similarity"] == "skipped").sum())
T.show(idsim_status.set_index("set"),
       f"identity similarity: measured or skipped ({n_idsim_skipped} skipped) — {where}")
if len(idsim):
    T.show(STAB.identity_by_class(idsim), f"identity similarity edit ↔ source, per target class — {where}")
    figs.show(SFIG.identity_similarity(idsim, where), "identity_similarity")

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
real_feats = AUDIT.embed_set(identity_embed, real_paths, space="identity", name=AUDIT.REAL_TRAIN,
                             cache_dir=features_dir, batch_size=batch_size)
threshold, threshold_basis = STAB.privacy_threshold(real_feats, privacy_threshold, privacy_quantile)
privacy = AUDIT.privacy_check({n: s["path"].tolist() for n, s in subsets.items()}, real_paths, identity_embed,
                              space="identity", threshold=threshold, batch_size=batch_size, cache_dir=features_dir)
T.write_csv(privacy.summary, out / "privacy_summary.csv")
write_manifest(privacy.table, out / "privacy_images.csv", path_columns=("path", "nn_path"))
print(f"threshold {threshold:.4f} ({threshold_basis})")
T.show(privacy.summary.set_index("set"), f"nearest real training face (identity space) — {where}")
figs.show(SFIG.privacy(privacy.table, threshold, where), "privacy_similarity")

# %% [markdown]
# ## Demographics per set and class
# `syntfer.instruments.audit.audit_sets`: rows with prompt attributes (diffusion images, also inside a mix) are audited on the
# words they were generated from (basis `prompt`); the other rows on the world's truth of the image they come from
# (basis `world truth`: matched by path, origin_path or source_path — an edit keeps its source's identity). On
# real data no attribute model ships, so only prompted rows can be audited there. The `basis` column says which.

# %%
audited = STAB.demographics(frames)  # on world truth; without any (real data): prompted rows only
if audited.no_truth is not None:
    skipped["demographics_truth_basis"] = audited.no_truth
    print("no demographic basis (real data, no prompt attributes):", audited.without_basis or "none")
demographics = audited.table
T.write_csv(demographics, out / "demographics.csv")
T.show(STAB.unmatched_rows(demographics), f"rows without a truth match (counted as unknown) — {where}")
for attribute in sorted(demographics["attribute"].unique()):
    T.show(STAB.attribute_shares(demographics, attribute), f"{attribute}: share of images per set — {where}")
    figs.show(SFIG.demographics(demographics, attribute, where), f"demographics_{attribute}")

# %% [markdown]
# ## The metrics file
# `synthetic.csv` is tidy `set,metric,value` (`syntfer summarize --synthetic` reads it: `synthetic.<set>.<metric>`,
# and `identity_similarity.<set>` for edit sets); `privacy_summary.csv` is `privacy_check`'s summary
# (`syntfer summarize --privacy`).

# %%
synthetic_table = STAB.synthetic_rows(names, frames, mean_class, set_ceiling, distances, idsim)
T.write_csv(synthetic_table, out / "synthetic.csv")
T.show(synthetic_table.pivot(index="set", columns="metric", values="value").loc[names],
       f"per-set metrics — {where}")
# provenance and settings, then <metric>.<set> of synthetic.csv and privacy_share_flagged.<set>
metrics = STAB.run_metrics(data_kind=data_kind, inputs=inputs, skipped=skipped, names=names,
                           judge_model=judge_.cfg.name, max_images=max_images, n_reference=len(ref_frame),
                           threshold=threshold, idsim_status=idsim_status, synthetic=synthetic_table,
                           privacy_summary=privacy.summary)
write_json(out / "metrics.json", metrics)
print(json.dumps(metrics, indent=1))

# %% [markdown]
# ## Closing checks

# %%
for name in names:
    assert len(frames[name]) > 0 and len(subsets[name]) > 0, f"set {name!r} is empty"
assert synthetic_table["value"].notna().all() and np.isfinite(synthetic_table["value"]).all(), (
    f"NaN/inf metrics: {synthetic_table[~np.isfinite(synthetic_table['value'])].to_dict('records')}")
expected = STAB.expected_metrics(list(spaces))
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
