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
# # 03 · Strategy (i): pseudo-labeling an unlabeled face collection
#
# **Question.** If a trained expression classifier (the *teacher*) labels an unlabeled face collection,
# keeping an image only when its top probability exceeds τ and then the K most confident images per
# class (docs/method.md §3; paper: τ = 0.3, K = 10,000), what labeled set comes out — how many images per
# class survive, which classes fall short of K, and (on the procedural world, where the true expression
# is known) how precise are the pseudo-labels and how well calibrated is the teacher?
#
# Results computed on the procedural world's stand-in domains (`outputs/world/...`) are **world
# results**: they say how the method behaves on rendered faces, not what it gives on DigiFace-1M,
# DCFace or EmoNet-Face.

# %% tags=["parameters"]
source = "digiface"  # name of the unlabeled collection, written to the manifest's source column
images = "outputs/world/digiface"  # a folder of unlabeled images (identity folders or flat) or a manifest CSV
truth_csv = "outputs/world/digiface/truth.csv"  # true expressions (world truth or the user's annotation); empty: skipped
teacher = "outputs/instruments/teacher/checkpoint"  # a (calibrated) checkpoint folder, onnx:PATH or minixception:PATH
threshold = 0.3  # keep an image when its max probability > threshold
per_class = 200  # keep the top K per class, 0 for no cap
sweep = "0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9"  # thresholds for the survivors / precision-recall curves
link = "copy"  # how selected images enter out_dir/images: copy, hardlink, symlink or none
batch_size = 64
shard_size = 512  # images per score shard (the unit of resumption)
reliability_bins = 10
min_world_precision = 0.5  # world only: overall precision at the threshold must reach this; 0 disables
seed = 0
out_dir = "outputs/pseudolabel/digiface"  # manifest.csv, images/, scores/, counts.json, metrics.json, figures/ …

# %%
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from syntfer.core import labels as L
from syntfer.core import plots
from syntfer.core import provenance as PV
from syntfer.strategies import pseudolabel as PL
from syntfer.core.manifest import read_manifest, write_manifest
from syntfer.sources.readers import read_dataset
from syntfer.core.seeding import seed_everything
from syntfer.core.storage import write_json
from syntfer.instruments.judge import RELIABILITY_COLUMNS

thresholds = sorted({float(t) for t in sweep.split(",") if t.strip()} | {float(threshold)})
PL.check_rule(threshold, per_class or None)
if link not in PL.LINK_MODES:
    raise ValueError(f"link={link!r}: expected one of {PL.LINK_MODES}")
if not Path(images).exists():
    raise FileNotFoundError(f"images={images!r} not found (render the world or provide the collection)")
if truth_csv and not Path(truth_csv).is_file():
    raise FileNotFoundError(f"truth_csv={truth_csv!r} not found")
# the run's own teacher (01_instruments) is an output of this run, not an input; a given one (onnx:, minixception:) is
inputs = PV.describe({"images": images, "truth": truth_csv,
                      **({"teacher": teacher.split(":", 1)[1]} if ":" in teacher else {})})
skipped: dict[str, str] = {}
if not truth_csv:
    skipped["precision"] = f"no truth_csv for {source}: {PV.NO_TRUTH}"
elif inputs["images"]["kind"] == "real" and inputs["truth"]["kind"] == "world":
    skipped["precision"] = (f"truth_csv={truth_csv!r} is a world render's truth, but images={images!r} are the user's "
                            f"data: {PV.NO_TRUTH} (set pseudolabel.sources.{source}.truth to an annotation of these "
                            "images, or leave it empty)")
world = "precision" not in skipped  # a truth to measure against (the variable keeps its old name: world metrics)
display(Markdown(PV.banner(inputs, f"03_pseudolabel ({source})")))
seed_everything(seed)
torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
out = Path(out_dir)
figs = plots.Figures(out / "figures", dpi=120)  # every figure: out_dir/figures/<name>.png
tag = inputs["images"]["kind"]
print(f"source={source} ({tag}), teacher={teacher}, threshold={threshold}, per_class={per_class}, "
      f"thresholds={thresholds}")

# %% [markdown]
# ## The unlabeled images
# A folder is read with `syntfer.sources.readers.read_dataset("unlabeled", ...)` (every image below it; identity
# = its sub-folder); a CSV is used as the manifest as it is. Labels in the input, if any, are ignored.

# %%
if Path(images).is_dir():
    read = read_dataset("unlabeled", images, skip_bad=True, check="exists")  # decoding happens when scoring
    print(read.summary())
    input_manifest = write_manifest(read.frame, out / "input_manifest.csv")
else:
    input_manifest = Path(images)
frame = read_manifest(input_manifest, check_labels=False)
display(frame.head(3).assign(path=lambda d: [os.path.relpath(p) for p in d["path"]]))  # not the checkout's path
print(f"{len(frame)} images")

# %% [markdown]
# ## Score every image with the teacher, select, write the labeled set
# Batched, resumable (score shards under `out_dir/scores/`); selection: max p > τ, label = argmax,
# top K per class by p with ties broken by path.

# %%
result = PL.pseudolabel(teacher, input_manifest, out, threshold=threshold, per_class=per_class or None,
                       source=source, link=link, batch_size=batch_size, shard_size=shard_size, skip_bad=True)
print(result.scores.summary())
counts = result.selection.counts
count_table = pd.DataFrame({k: counts[k] for k in ("argmax", "above_threshold", "selected")}).T[list(L.CLASSES)]
display(count_table)
print("short of K:", counts["short_classes"] or "none", counts["shortfall"])

# %% [markdown]
# ## Teacher confidence per predicted class

# %%
scores = PL.read_scores(out / "scores.csv")
figs.show(PL.plot_score_distributions(scores, threshold), "score_distributions")

# %% [markdown]
# ## What survives per class as τ varies (top-K cap applied)

# %%
surv = PL.survivors(scores, thresholds, per_class or None)
display(surv.pivot(index="threshold", columns="label", values="n")[list(L.CLASSES)])
figs.show(PL.plot_survivors(surv), "survivors")

# %% [markdown]
# ## Sample of the selected images per class (number = teacher probability)

# %%
manifest = read_manifest(out / "manifest.csv")
figs.show(PL.plot_sample_grid(manifest, per_class=8, seed=seed), "samples")

# %% [markdown]
# ## World only: pseudo-label precision and recall against the hidden truth
# Precision = share of the images kept with label c whose true expression is c; recall = share of all
# images truly showing c that were kept with label c. A world result, not a real-data one.

# %%
metrics = {"n_images": counts["n_images"], "n_unreadable": counts["n_unreadable"],
           "n_above_threshold": counts["n_above_threshold"], "n_selected": counts["n_selected"],
           "n_short_classes": len(counts["short_classes"]),
           **{f"selected_{c}": counts["selected"][c] for c in L.CLASSES}}
if world:
    truth_scores = PL.attach_truth(scores, truth_csv)
    pr = PL.precision_recall(truth_scores, thresholds, per_class or None)
    pr.to_csv(out / "precision_recall.csv", index=False)
    display(pr[np.isclose(pr["threshold"], threshold)].set_index("label")[
        ["selected", "correct", "true_total", "precision", "recall"]])
    figs.show(PL.plot_precision_recall(pr), "precision_recall")
else:  # header-only files keep the stage's declared plots present for real collections too
    pd.DataFrame(columns=["threshold", "label", "selected", "correct", "true_total", "precision", "recall"]).to_csv(
        out / "precision_recall.csv", index=False)
    pd.DataFrame(columns=list(RELIABILITY_COLUMNS)).to_csv(
        out / "reliability.csv", index=False)
    print("SKIPPED precision/recall:", skipped["precision"])

# %% [markdown]
# ## World only: is the teacher calibrated? (reliability diagram)

# %%
if world:
    rel, ece = PL.reliability(truth_scores, bins=reliability_bins)
    rel.to_csv(out / "reliability.csv", index=False)
    display(rel)
    figs.show(PL.plot_reliability(rel, ece), "reliability")
    metrics.update(PL.world_metrics(pr, threshold, ece))
metrics.update(truth_csv=truth_csv if world else "", inputs=inputs, skipped=skipped)
write_json(out / "metrics.json", metrics)
print(json.dumps(metrics, indent=1))

# %% [markdown]
# ## Closing checks

# %%
assert len(manifest) == counts["n_selected"] > 0, "nothing was selected"
assert (manifest["score"] > threshold).all(), "an image at or below the threshold was kept"
probs = manifest[list(PL.PROB_COLUMNS)].to_numpy(dtype=float)
assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-6), "probabilities do not sum to 1"
assert (np.asarray(L.CLASSES)[probs.argmax(axis=1)] == manifest["label"].to_numpy()).all(), "label != argmax"
assert np.allclose(probs.max(axis=1), manifest["score"].astype(float)), "score != max probability"
per = manifest["label"].value_counts()
assert all(per.get(c, 0) == counts["selected"][c] for c in L.CLASSES), "counts.json disagrees with the manifest"
if per_class:
    assert per.max() <= per_class, f"a class has more than K={per_class} images"
assert manifest["path"].map(lambda p: Path(p).exists()).all(), "a manifest image is missing on disk"
assert len(scores) == len(frame), "not every input image was scored"
if world:
    overall = metrics["world_precision_all"]
    assert overall >= min_world_precision, (
        f"world pseudo-label precision {overall:.3f} < {min_world_precision}: teacher or label mapping broken")
print("checks passed")
