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
# # 07 · Data scaling: how accuracy grows with the number of training images
#
# **Question.** How many images of one source (the real training split, a strategy's synthetic set, an oracle
# of a generator's look) does a classifier need to read the primary test set at a given balanced accuracy? One
# point of the curve compares nothing by itself; the curves together give the **exchange rate** between synthetic
# and real images (08_report): how many synthetic images of a strategy match the accuracy of N real ones.
#
# One run = one source: the source's set is drawn at each size in `sizes` — nested, seeded draws
# (`syntfer.study.mixing.sized_set`: the 280-image draw lies inside the 700-image one), class-balanced for a synthetic
# set or an oracle, with the real split's own class shares for a real one (`stratify`) — and each draw is
# trained with every seed by the grid's recipe (`02_baseline`'s knobs) and tested once on the primary test set.
# The size-N point of every source and the full real split are the grid's own runs (`train@<set>`); the report
# joins them to these. When the test set is the world's stand-in (the default; the banner says, from its images)
# **every number here is a world result**.

# %% tags=["parameters"]
source = "real_rafdb"  # the source's name: its set is outputs/sets/<source>
source_manifest = "outputs/sets/real_rafdb/manifest.csv"  # the set the sizes are drawn from
sizes = "280,700,2100"  # comma list of training-set sizes (each at most the set's size)
stratify = True  # True: keep the source's class shares (a real split); False: class-balanced, size / 7 per class
test_set = "rafdb"  # the primary test set (test_dir/<name>.csv)
test_dir = "outputs/tests"
model = "cnn_tiny"
model_kwargs = '{"cnn_tiny": {"img_size": 48, "head": "flatten"}, "ir50": {}, "poster": {}}'  # per model; `model`'s entry is used
pretrained = ""
recipe = "fast"
epochs = 24
batch_size = 64
lr = 0.002
weight_decay = 0.05
optimizer = "adamw"
scheduler = "cosine"
label_smoothing = 0.0
smoothing_weight = 0.0
val_fraction = 0.1
seeds = [0, 1, 2]  # training seeds of every size
min_in_domain_balanced_accuracy = 0.17  # closing check (train.*): a real split's largest draw beats chance (1/7) on its own test
threads = 2
num_workers = 0
seed = 0  # the draws' seed (base.seed: the same draws as the grid's size-N sets)
eval_batch_size = 256
progress = False
keep_runs = False  # False: a finished run keeps its summary, log and confusion, not its weights, state or split
out_dir = "outputs/scaling/real_rafdb"  # curve.csv, n<size>/s<seed>/confusion_<test>.csv, metrics.json, figures/

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
from IPython.display import Markdown, display

from syntfer.core import provenance as PV
from syntfer.engine import evaluation as EV
from syntfer.core import labels as L
from syntfer.core import plots
from syntfer.engine.data import DecodedImages, as_frame
from syntfer.core.manifest import read_manifest
from syntfer.study.mixing import sized_set
from syntfer.core.seeding import seed_everything
from syntfer.core.storage import write_json, write_text
from syntfer.engine.training import TrainConfig, train
from syntfer.engine.models import model_options

size_list = sorted({int(s) for s in str(sizes).split(",") if s.strip()})
if not size_list or min(size_list) <= 0:
    raise ValueError(f"sizes={sizes!r}: expected a comma list of positive set sizes")
seed_list = [int(s) for s in (seeds if isinstance(seeds, (list, tuple)) else [seeds])]
if not seed_list or len(set(seed_list)) != len(seed_list):
    raise ValueError(f"seeds={seeds!r}: expected a list of distinct integers")
test_file = Path(test_dir) / f"{test_set}.csv"
for path in (Path(source_manifest), test_file):
    if not path.is_file():
        raise FileNotFoundError(f"manifest {path} not found (the manifests / set stages write it)")
inputs = {f"test.{test_set}": {"path": str(test_file), "kind": PV.manifest_kind(test_file)}}
if source.startswith("real_"):
    inputs["source"] = {"path": source_manifest, "kind": PV.manifest_kind(source_manifest)}
data_kind = PV.run_kind(inputs)  # world | real | mixed, read from the images
display(Markdown(PV.banner(inputs, f"07_scaling ({source})")))
kwargs = model_options(model, model_kwargs)  # the chosen model's options, checked against its builder
torch.set_num_threads(threads)
prefix = "world_" if data_kind == "world" else ""
out = Path(out_dir)
figs = plots.Figures(out / "figures")
pool = read_manifest(source_manifest, required=("path", "label"), check_labels=False)
too_big = [n for n in size_list if n > len(pool)]
if too_big:
    raise ValueError(f"{source_manifest}: {len(pool)} images; sizes {too_big} are larger than the set")
test = as_frame(test_file)
print(f"{source}: {len(pool)} images; sizes {size_list}; seeds {seed_list}; test {prefix}{test_set} ({len(test)})")

# %% [markdown]
# ## The draws
# Images per class at each size (nested: every smaller draw lies inside the larger one).

# %%
draws = {n: sized_set(pool, source, n, seed, stratified=bool(stratify)).frame for n in size_list}
for small, large in zip(size_list, size_list[1:]):
    inside = set(draws[small]["source_path"]) <= set(draws[large]["source_path"])
    assert inside, f"the {small}-image draw is not inside the {large}-image draw"
composition = pd.DataFrame({n: L.counts(f["label"]) for n, f in draws.items()}).T
composition.index.name = "size"
composition

# %% [markdown]
# ## Training every size with every seed
# The grid's recipe (`02_baseline`): a seeded stratified `val_fraction` of each draw selects the epoch; the test
# split is touched once per run. Rerunning after an interruption resumes a run from its state and skips a finished
# one (its confusion file is written last).
#
# The curve's outputs are small and **committed to git** (`cache: false` in `dvc.yaml`): once a run is tested and
# checked (no test image in its training split), its weights, optimizer state and split file are deleted
# (`keep_runs=False`). A fresh clone's `dvc repro` therefore reuses the committed curve as long as the sets it draws
# from come out byte-identical, and DVC reruns it when they (or this notebook, or the code it imports) change.

# %%
images = DecodedImages()
rows = []
for n, frame in draws.items():
    for s in seed_list:
        seed_everything(s)
        cfg = TrainConfig.from_recipe(
            recipe, model=model, model_kwargs=kwargs, pretrained=pretrained or None, epochs=epochs,
            batch_size=batch_size, lr=lr, weight_decay=weight_decay, optimizer=optimizer, scheduler=scheduler,
            label_smoothing=label_smoothing, smoothing_weight=smoothing_weight, val_fraction=val_fraction, seed=s,
            num_workers=num_workers, cache_images=True, eval_batch_size=eval_batch_size, progress=progress)
        run_dir = out / f"n{n}" / f"s{s}"
        conf_file = run_dir / f"confusion_{test_set}.csv"
        if conf_file.is_file():  # finished before an interruption: read it back, do not retrain
            conf = pd.read_csv(conf_file)
            m = EV.compute_metrics([L.index(c) for c in conf["actual"]], [L.index(c) for c in conf["predicted"]])
            summary = json.loads((run_dir / "train" / "summary.json").read_text())
            best_epoch = int(summary["best_epoch"])
        else:
            result = train(cfg, frame, run_dir / "train", image_cache=images)
            split = read_manifest(run_dir / "train" / "split.csv")
            leaked = set(split["path"]) & set(test["path"])
            assert not leaked, f"n{n} s{s}: {len(leaked)} test images entered training, e.g. {sorted(leaked)[:3]}"
            (pred, m), = EV.evaluate(result.model, {test_set: test}, batch_size=eval_batch_size,
                                    num_workers=num_workers, progress=progress, image_cache=images).values()
            summary = json.loads((run_dir / "train" / "summary.json").read_text())
            best_epoch = result.best_epoch
            if not keep_runs:  # before the confusion file, so a file left behind means "not finished"
                for heavy in ("state.pt", "split.csv", "best/weights.pt"):
                    (run_dir / "train" / heavy).unlink(missing_ok=True)
            write_text(conf_file, EV.confusion_rows(pred.y_true, pred.y_pred).to_csv(index=False))
        steps = summary["optimizer_steps"]
        rows.append({"source": source, "size": n, "seed": s, "test_set": test_set, "accuracy": m["accuracy"],
                     "balanced_accuracy": m["balanced_accuracy"], "macro_f1": m["macro_f1"],
                     "optimizer_steps": int(steps), "best_epoch": best_epoch})
        print(f"n={n} seed {s}: balanced accuracy {m['balanced_accuracy']:.3f} ({steps} steps)")
curve = pd.DataFrame(rows)
write_text(out / "curve.csv", curve.to_csv(index=False))

# %% [markdown]
# ## The curve of this source
# Balanced accuracy on the primary test set against the number of training images (mean ± sd over seeds). The
# report (08) draws every source's curve together with the grid's size-N runs.

# %%
fig, ax = plt.subplots(figsize=(6, 4))
sns.lineplot(data=curve, x="size", y="balanced_accuracy", marker="o", errorbar="sd", ax=ax)
ax.set_xscale("log")
ax.set_xticks(size_list, [str(n) for n in size_list])
ax.set_ylim(0, 1)
ax.set_xlabel("training images")
ax.set_ylabel(f"balanced accuracy, {prefix}{test_set} test")
ax.set_title(f"{source} ({data_kind} data), mean ± sd over {len(seed_list)} seed(s)")
figs.show(fig, "curve")

# %% [markdown]
# ## Closing checks

# %%
assert len(curve) == len(size_list) * len(seed_list), "a size × seed run is missing"
for r in curve.itertuples():
    assert 0.0 <= r.balanced_accuracy <= 1.0, r
    conf = pd.read_csv(out / f"n{r.size}" / f"s{r.seed}" / f"confusion_{test_set}.csv")
    assert len(conf) == len(test), f"n{r.size} s{r.seed}: {len(conf)} predictions for {len(test)} test images"
    assert 0 < r.optimizer_steps and 0 <= r.best_epoch <= epochs, r
    log = pd.read_csv(out / f"n{r.size}" / f"s{r.seed}" / "train" / "log.csv")
    assert len(log) < 2 or log["train_loss"].min() < log["train_loss"].iloc[0], (
        f"n{r.size} s{r.seed}: the training loss never fell")
if source == f"real_{test_set}":  # a real split on its own test split: as 02_baseline, it must beat the class prior
    top = curve[curve["size"] == max(size_list)]["balanced_accuracy"].mean()
    assert top >= min_in_domain_balanced_accuracy, (
        f"{source}: balanced accuracy {top:.3f} at {max(size_list)} images < {min_in_domain_balanced_accuracy}: the "
        "model did not learn beyond the class prior")
if not keep_runs:
    heavy = sorted(str(p) for p in out.rglob("*") if p.suffix == ".pt" or p.name == "split.csv")
    assert not heavy, f"keep_runs=False but run files were kept: {heavy[:3]}"
write_json(out / "metrics.json", {"source": source, "sizes": size_list, "seeds": seed_list, "data_kind": data_kind,
                                  "inputs": inputs,
                                  **{f"n{n}_balanced_accuracy": float(g["balanced_accuracy"].mean())
                                     for n, g in curve.groupby("size")}})
print("checks passed")
