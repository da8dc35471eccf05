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
# # 02 · Real-data baselines and the cross-dataset gap
#
# **Question.** Trained on one labelled FER dataset's training split, how well does a classifier do on its
# own test split and on the other two datasets' test splits, and how does the training set's class
# imbalance show up in per-class recall? This is the reference every synthetic training set is compared with.
#
# One run = one training set × one model × every seed of `seeds`, trained one after another in this kernel
# (decoded images are shared between them); the DVC stage fans this notebook out over training sets, and
# every number below is a mean ± sd over seeds (sd with ddof 1). The training set is any labelled manifest (the
# real datasets' training splits here; the synthetic sets later use the same notebook). Test sets are
# manifests `<test_dir>/<name>.csv`: RAF-DB `test`, AffectNet-7 `validation` (AffectNet's test set is not
# public), FER2013 `PrivateTest`. Validation for checkpoint selection is a stratified held-out part of the
# training manifest; test sets are touched once, at the end.
#
# When the test sets are the procedural world's stand-ins (the default; the banner below reads each test set's kind
# from its images), **every number here is a world result**, named `world_<set>`, never a RAF-DB/AffectNet/FER2013
# number.

# %% tags=["parameters"]
train_set = "real_rafdb"  # name of the training set; real_<dataset> is that dataset's training split
train_manifest = "outputs/sets/real_rafdb/manifest.csv"  # labelled manifest (path,label[,split])
test_dir = "outputs/tests"  # holds <name>.csv test manifests
test_sets = "rafdb,affectnet,fer2013"  # comma-separated test manifest names
model = "cnn_tiny"  # any registered model (syntfer.engine.models.list_models())
model_kwargs = '{"cnn_tiny": {"img_size": 48, "head": "flatten"}, "ir50": {}, "poster": {}}'  # per model; `model`'s entry is used
pretrained = ""  # weight file for the model builder (empty: random init)
recipe = "fast"  # fast | upstream_ir50 | poster (syntfer.engine.training.RECIPES); knobs below override it
epochs = 24
steps_source = "real_rafdb"  # a set mixing this source with others (a hybrid) trains as many optimizer steps as this source's rows alone get in `epochs` epochs (equal compute); empty: off
batch_size = 64
lr = 0.002
weight_decay = 0.05
optimizer = "adamw"  # adam | adamw | sam_adam | sam_adamw
scheduler = "cosine"  # exponential | cosine | constant
label_smoothing = 0.0  # epsilon of the smoothed CE term
smoothing_weight = 0.0  # weight of the smoothed CE term added to CE (upstream: 2.0, with epsilon 0.4)
balanced = False  # class-balanced sampling
balanced_sets = "real_affectnet"  # comma-separated training sets trained for balanced error (e.g. the ≈35:1 AffectNet-7)
balance_method = "logit_adjust"  # logit_adjust (logits + log prior in the loss) | sampler (class-balanced sampling)
val_fraction = 0.1
seeds = [0, 1, 2]  # training seeds, run one after another
threads = 2  # torch CPU threads
num_workers = 0  # data loader worker processes
cache_images = True  # keep decoded images in memory (small sets only), shared by the seeds
eval_batch_size = 256
out_dir = "outputs/train/real_rafdb"  # metrics.json, cross_dataset.csv, confusion_*.csv, log.csv, s<seed>/, figures/
min_in_domain_accuracy = 0.2  # closing check on in-domain accuracy (weak: predicting the majority class may pass)
min_in_domain_balanced_accuracy = 0.17  # closing check: mean-class accuracy above chance (1/7 ≈ 0.143)
progress = False  # tqdm bars (off in pipeline logs)
launcher = ""  # empty: train in this kernel; "accelerate launch --multi_gpu --num_processes 4": data-parallel

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from IPython.display import Markdown, display

from syntfer.engine import evaluation as EV
from syntfer.core import labels as L
from syntfer.engine.data import DecodedImages, as_frame, describe_frame
from syntfer.core.manifest import read_manifest
from syntfer.core import provenance as PV
from syntfer.core.plots import show
from syntfer.core.seeding import seed_everything
from syntfer.core.storage import write_json, write_text
from syntfer.engine.training import LOG_COLUMNS, TrainConfig, step_matched_epochs, train, train_launched
from syntfer.engine.models import model_options

test_names = [t.strip() for t in test_sets.split(",") if t.strip()]
if not test_names:
    raise ValueError("test_sets is empty")
seed_list = [int(s) for s in (seeds if isinstance(seeds, (list, tuple)) else [seeds])]
if not seed_list or len(set(seed_list)) != len(seed_list):
    raise ValueError(f"seeds={seeds!r}: expected a list of distinct integers")
for path in [Path(train_manifest)] + [Path(test_dir) / f"{t}.csv" for t in test_names]:
    if not path.is_file():
        raise FileNotFoundError(f"manifest {path} not found (stage `manifests` writes them)")
# where the numbers come from: each test set's images (and a real_<dataset> training split's), read from the data
inputs = {f"test.{t}": {"path": str(Path(test_dir) / f"{t}.csv"),
                        "kind": PV.manifest_kind(Path(test_dir) / f"{t}.csv")} for t in test_names}
if train_set.removeprefix("real_") in test_names:  # a labeled dataset's own training split (a draw of one, such as
    inputs["train"] = {"path": train_manifest, "kind": PV.manifest_kind(train_manifest)}  # real_rafdb_matched, is not)
data_kind = PV.run_kind(inputs)  # world | real | mixed
display(Markdown(PV.banner(inputs, f"02_baseline ({train_set})")))
balanced = bool(balanced) or train_set in {b.strip() for b in balanced_sets.split(",") if b.strip()}
kwargs = model_options(model, model_kwargs)  # the chosen model's options, checked against its builder
prefix = "world_" if data_kind == "world" else ""
torch.set_num_threads(threads)


def config_for(seed: int) -> TrainConfig:
    return TrainConfig.from_recipe(
        recipe, model=model, model_kwargs=kwargs, pretrained=pretrained or None, epochs=epochs_run,
        batch_size=batch_size, lr=lr, weight_decay=weight_decay, optimizer=optimizer, scheduler=scheduler,
        label_smoothing=label_smoothing, smoothing_weight=smoothing_weight, balanced=balanced,
        balance_method=balance_method,
        val_fraction=val_fraction, seed=seed, num_workers=num_workers, cache_images=cache_images,
        eval_batch_size=eval_batch_size, progress=progress)


out = Path(out_dir)
figures = out / "figures"
figures.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## The data: class counts and imbalance
# The training manifest and the test manifests (imbalance = largest / smallest class).

# %%
frames = {"train": as_frame(train_manifest)}
for name in test_names:
    frames[prefix + name] = as_frame(Path(test_dir) / f"{name}.csv")
counts = pd.concat([describe_frame(f, f"{prefix}{train_set} train" if k == "train" else f"{k} test")
                    for k, f in frames.items()], ignore_index=True).set_index("set")
counts.to_csv(out / "class_counts.csv")
counts

# %% [markdown]
# ## Training, one seed after another
# Validation = a seeded stratified `val_fraction` of the training split (a different one per seed); the best
# epoch by 0.67·macro-F1 + 0.33·accuracy on it is kept (`s<seed>/train/best/`: state_dict + JSON config).
# Every seed's model is tested once on every test split. Rerun by `syntfer notebook` (or in JupyterLab) after an
# interruption and each seed resumes from its `s<seed>/train/state.pt` (finished seeds are reloaded, not retrained);
# under `dvc repro` the stage reruns from scratch (docs/decisions/resume-under-dvc.md). With a `launcher` the
# trainer runs data-parallel in the processes it starts (several GPUs or nodes) and writes the same files.

# %%
train_frame, val_frame = frames["train"], None
if "split" in train_frame.columns and (train_frame["split"].astype(str) == "val").any():
    # a set that ships its own validation split (Mixed-SYN: 125 per source and class) is validated on it
    val_frame = train_frame[train_frame["split"].astype(str) == "val"].reset_index(drop=True)
    train_frame = train_frame[train_frame["split"].astype(str) != "val"].reset_index(drop=True)
    print(f"validation: the set's own 'val' split ({len(val_frame)} images)")
# Equal compute for a set that adds images to a real split (a hybrid): as many optimizer steps as the real part
# alone gets in `epochs` epochs, so a difference between the two is the added data's, not extra training.
sources = set(train_frame["source"].astype(str)) if "source" in train_frame.columns else set()
epochs_run, matched_steps = epochs, None
if steps_source and steps_source in sources and len(sources) > 1:
    epochs_run, matched_steps = step_matched_epochs(train_frame, steps_source, epochs, batch_size, val_fraction,
                                                    seed_list[0], own_validation=val_frame is not None)
    print(f"step-matched to {steps_source} alone: {epochs_run} epochs (≈ {matched_steps} optimizer steps) "
          f"instead of {epochs}")
print(pd.DataFrame([config_for(seed_list[0]).to_dict()]).T.rename(columns={0: "value"}).to_string())
tests = {k: f for k, f in frames.items() if k != "train"}
images = DecodedImages()
runs: dict[int, dict] = {}
for seed in seed_list:
    seed_everything(seed)
    if launcher:
        result = train_launched(config_for(seed), train_frame, out / f"s{seed}" / "train", launcher=launcher,
                                val_data=val_frame)
    else:
        result = train(config_for(seed), train_frame, out / f"s{seed}" / "train", val_data=val_frame,
                       image_cache=images)
    evaluated = EV.evaluate(result.model, tests, batch_size=eval_batch_size, num_workers=num_workers,
                           progress=progress, image_cache=images)
    runs[seed] = {"result": result, "evaluated": evaluated}
    # no wall time here: this notebook is a tracked output (`syntfer notebook` prints the stage's time)
    print(f"seed {seed}: best epoch {result.best_epoch}/{epochs_run} (val score {result.best_score:.3f}), "
          f"resumed from {result.resumed_from}")
history = pd.concat([r["result"].history.assign(seed=s) for s, r in runs.items()], ignore_index=True)
write_text(out / "log.csv", history.to_csv(index=False))  # per-epoch curves of every seed (`dvc plots`)

# %% [markdown]
# ## Learning curves
# Training objective and validation metrics per epoch, one line per seed.

# %%
long = history.melt(id_vars=["epoch", "seed"], value_vars=["train_loss", "val_loss", "val_acc",
                                                           "val_balanced_acc", "val_macro_f1"])
long["panel"] = np.where(long["variable"].str.endswith("loss"), "loss", "validation metric")
g = sns.relplot(data=long, x="epoch", y="value", hue="variable", style="seed", col="panel", kind="line",
                facet_kws={"sharey": False}, height=3.2, aspect=1.3)
g.figure.suptitle(f"{prefix}{train_set} · {model} · seeds {seed_list}", y=1.03)
show(g, figures / "learning_curves.png")

# %% [markdown]
# ## Test: every test split, once per seed
# Overall accuracy, mean-class (balanced) accuracy and macro-F1 of each seed's selected model, then the mean ± sd.

# %%
tidy = pd.concat([EV.tidy_rows(train_set, model, s, {k.removeprefix(prefix): m for k, (_, m) in r["evaluated"].items()})
                  for s, r in runs.items()], ignore_index=True)
write_text(out / "cross_dataset.csv", tidy.to_csv(index=False))
for s, r in runs.items():
    for name, (pred, _) in r["evaluated"].items():
        write_text(out / f"s{s}" / f"confusion_{name.removeprefix(prefix)}.csv",
                   EV.confusion_rows(pred.y_true, pred.y_pred).to_csv(index=False))
for name in tests:  # all seeds' predictions together: the confusion DVC plots (counts summed over seeds)
    short = name.removeprefix(prefix)
    rows = pd.concat([EV.confusion_rows(r["evaluated"][name][0].y_true, r["evaluated"][name][0].y_pred)
                      for r in runs.values()], ignore_index=True)
    write_text(out / f"confusion_{short}.csv", rows.to_csv(index=False))
agg = EV.aggregate_seeds(tidy)
headline = agg[agg["metric"].isin(EV.HEADLINE_METRICS)].pivot(index="test_set", columns="metric",
                                                              values=["mean", "sd"]).round(3)
headline

# %%
ax = EV.plot_cross_dataset(tidy, metric="accuracy")
ax.set_title(f"accuracy ({data_kind} data), mean ± sd over {len(seed_list)} seed(s)")
ax.figure.tight_layout()
show(ax.figure, figures / "cross_dataset_accuracy.png")

# %% [markdown]
# ## The imbalance story: per-class recall against class frequency
# Each point is a class: its share of the training split (x) and its recall on a test split (y), the mean over
# seeds. Frequent classes (happy, neutral) are recalled well, rare ones (disgust, fear) poorly — and the gap
# widens off-domain.

# %%
train_counts = counts.loc[f"{prefix}{train_set} train", list(L.CLASSES)].astype(int).to_dict()
recall_means = {name.removeprefix(prefix): {f"recall_{c}": float(np.nanmean([r["evaluated"][name][1][f"recall_{c}"]
                                                                                for r in runs.values()]))
                                            for c in L.CLASSES} for name in tests}
rvf = pd.concat([EV.recall_vs_frequency(m, train_counts).assign(test_set=name) for name, m in recall_means.items()],
                ignore_index=True)
rvf.to_csv(out / "recall_vs_frequency.csv", index=False)
fig, ax = plt.subplots(figsize=(6.5, 4))
sns.scatterplot(data=rvf, x="train_share", y="recall", hue="test_set", style="test_set", s=70, ax=ax)
for _, r in rvf[rvf["test_set"] == rvf["test_set"].iloc[0]].iterrows():
    ax.annotate(r["class"], (r["train_share"], r["recall"]), fontsize=8, xytext=(3, 3), textcoords="offset points")
ax.set_xscale("log")
ax.set_xlabel(f"share of {prefix}{train_set} training images (log)")
ax.set_ylim(-0.02, 1.02)
fig.tight_layout()
show(fig, figures / "recall_vs_frequency.png")

# %% [markdown]
# ## Confusion matrices
# Row-normalised, every seed's predictions together (rows: true class; the diagonal is per-class recall).

# %%
fig, axes = plt.subplots(1, len(tests), figsize=(5.2 * len(tests), 4.4))
for ax, name in zip(np.atleast_1d(axes), tests):
    y_true = np.concatenate([r["evaluated"][name][0].y_true for r in runs.values()])
    y_pred = np.concatenate([r["evaluated"][name][0].y_pred for r in runs.values()])
    EV.plot_confusion(y_true, y_pred, ax=ax, title=f"test: {name}")
fig.suptitle(f"trained on {prefix}{train_set} · {model} · seeds {seed_list}")
fig.tight_layout()
show(fig, figures / "confusion.png")

# %% [markdown]
# ## Closing checks

# %%
metrics = {"seeds": seed_list, "n_seeds": len(seed_list), "train_images": int(len(frames["train"])),
           "epochs": epochs_run, "step_matched_to": steps_source if matched_steps else "", "data_kind": data_kind,
           "inputs": inputs}
for r in agg.itertuples():
    metrics[f"{r.test_set}_{r.metric}"] = float(r.mean)
    metrics[f"{r.test_set}_{r.metric}_sd"] = None if np.isnan(r.sd) else float(r.sd)
for s, r in runs.items():
    metrics[f"s{s}_best_epoch"] = r["result"].best_epoch
    run_summary = json.loads((out / f"s{s}" / "train" / "summary.json").read_text())
    metrics[f"s{s}_optimizer_steps"] = int(run_summary["optimizer_steps"])
    metrics[f"s{s}_fitted_images"] = int(run_summary["train_images"])
    log = pd.read_csv(out / f"s{s}" / "train" / "log.csv")
    assert tuple(log.columns) == LOG_COLUMNS, list(log.columns)
    assert len(log) == epochs_run, f"seed {s}: log.csv has {len(log)} rows, expected {epochs_run}"
    assert np.isfinite(log.drop(columns="epoch").to_numpy()).all(), f"seed {s}: non-finite values in log.csv"
    split = read_manifest(out / f"s{s}" / "train" / "split.csv")
    assert set(split["split"]) == {"train", "val"}, "selection must use a held-out part of the training split"
    for name, f in tests.items():
        leaked = set(f["path"]) & set(split["path"])
        assert not leaked, f"{len(leaked)} test images of {name} were used in training/validation"
        m = r["evaluated"][name][1]
        for k in EV.HEADLINE_METRICS:
            assert 0.0 <= m[k] <= 1.0, (s, name, k, m[k])
        assert m["n"] == len(f), f"{name}: scored {m['n']} of {len(f)} images"
home = train_set.removeprefix("real_")
if prefix + home in tests:  # a real dataset's training split: its own test split is in-domain
    in_domain = metrics[f"{home}_balanced_accuracy"]
    assert metrics[f"{home}_accuracy"] >= min_in_domain_accuracy, (
        f"in-domain accuracy {metrics[f'{home}_accuracy']:.3f} < {min_in_domain_accuracy}")
    assert in_domain >= min_in_domain_balanced_accuracy, (
        f"{home}: balanced accuracy {in_domain:.3f} < {min_in_domain_balanced_accuracy}: the model did not "
        "learn beyond the class prior")
else:  # a synthetic set has no test split of its own. Whether its labels can be learned from its images
    # (held-out validation) and how far that transfers are results about the set, not preconditions: a set
    # whose images do not show their labels is reported loudly, and the check is that the trainer optimised.
    home = f"{train_set} validation (best epoch)"
    vals = []
    for s, r in runs.items():
        h = r["result"].history
        vals.append(float(h.loc[h["epoch"] == r["result"].best_epoch, "val_balanced_acc"].iloc[0]))
        losses = h["train_loss"]
        assert len(losses) < 2 or losses.min() < losses.iloc[0], f"{train_set} seed {s}: the training loss never fell"
    in_domain = float(np.mean(vals))
    if in_domain < min_in_domain_balanced_accuracy:
        print(f"NOT LEARNABLE: {train_set}'s held-out balanced accuracy is {in_domain:.3f} < "
              f"{min_in_domain_balanced_accuracy}: its labels cannot be told from its images by this model "
              "(compare its expression fidelity in 06_sets)")
metrics["learnable"] = bool(in_domain >= min_in_domain_balanced_accuracy)
write_json(out / "metrics.json", metrics)
assert len(pd.read_csv(out / "cross_dataset.csv")) == len(tidy)
print(f"checks passed; in-domain balanced accuracy {in_domain:.3f} (mean of {len(seed_list)} seeds, {data_kind} data)")
