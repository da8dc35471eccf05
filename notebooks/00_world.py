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
# # 00 · The procedural face world
#
# **Question.** None of the paper's datasets can be had offline, so the study runs on faces the project
# renders itself. Is that world fit for purpose? Concretely: do the stand-in domains (RAF-DB, AffectNet,
# FER2013, DigiFace, DCFace, EmoNet-Face, FFHQ, web captions) come out in their native formats with the
# intended class counts; can the seven expressions be told apart (by eye, and by a small CNN, but not
# perfectly); does the same identity re-render across expressions; and do the domains differ enough that a
# classifier trained on one loses accuracy on the others (the cross-dataset gap)?
#
# Every number below is a **world result** — a property of rendered faces, never a RAF-DB/AffectNet number.
# The world's truth files (true expression, action units, identity, attributes) are read here for the audit
# only; training code never reads them.
#
# How prompt words map to renderer attributes (documented in `syntfer.sources.world.identity`): gender -> gender
# presentation (proportions, hair and facial-hair sampling); age group -> proportions, wrinkles, grey hair;
# race word -> a *range of skin-tone levels* and nothing else (a crude proxy); identity trait -> explicit
# attribute settings (hair style, glasses, beard, ...).

# %% tags=["parameters"]
world_dir = "outputs/world"  # a world rendered by `syntfer world --preset PRESET --seed SEED --out world_dir`
preset = "default"  # the preset it was rendered with (intended counts are re-derived from it)
seed = 0  # the seed it was rendered with; also seeds this notebook's sampling
out_dir = "outputs/world_report"  # figures/, tables and metrics.json
grid_cell = 72  # pixels per cell of the image grids
n_identities = 4  # identities re-rendered across all expressions
probe_train = "rafdb/train"  # domain/split the audit CNN trains on ('' to skip the probe)
probe_epochs = 6
probe_size = 48
probe_test_limit = 700  # at most this many test images per domain
probe_threads = 2
classifier_size = 48  # the study classifiers' input size (a grid at this size shows what they see)
share_tolerance = 0.02  # closing check: |world share - real share| per class of the labeled datasets
max_probe_accuracy = 0.99  # closing check: the probe must not solve the world
min_probe_accuracy = 0.3  # closing check: ... but must learn it (chance is 1/7)
min_gap = 0.03  # closing check: in-domain accuracy minus mean accuracy on the other domains

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display
from PIL import Image

from syntfer.core import labels as L
from syntfer.core.plots import show
from syntfer.sources.readers import read_dataset
from syntfer.core.seeding import seed_everything
from syntfer.core.storage import write_json
from syntfer.sources.world import report as WREP
from syntfer.sources.world.presets import get_preset
from syntfer.sources.world.writers import DOMAIN_NAMES, plan_domain

world = Path(world_dir)
if not (world / "world.json").is_file():
    raise FileNotFoundError(f"{world}/world.json not found: render the world first "
                            f"(syntfer world --preset {preset} --seed {seed} --out {world_dir})")
pre = get_preset(preset)
if probe_train and probe_train.count("/") != 1:
    raise ValueError(f"probe_train={probe_train!r}: expected 'domain/split' or ''")
seed_everything(seed)
out = Path(out_dir)
figures = out / "figures"
figures.mkdir(parents=True, exist_ok=True)
metrics: dict[str, float | int] = {}

# %% [markdown]
# ## What was rendered
# One row per domain: images, size, splits, identities and the share of each *true* expression
# (for the unlabeled sources this is hidden from the pipeline).

# %%
summary = WREP.summary_table(world)
summary.to_csv(out / "summary.csv")
display(summary)

# %% [markdown]
# ## Sample grid: domains × expressions
# One random image per cell with that true expression (AffectNet shown as its face-box crop, as the reader
# crops it). A person should be able to tell the seven expressions apart most of the time; the domains
# should look different from each other.

# %%
grid, rows, cols = WREP.domain_expression_grid(world, cell=grid_cell, seed=seed)
show(WREP.show_grid(grid, rows, cols, title="world samples (true expression)"), figures / "domain_expression_grid.png")

# %% [markdown]
# ## What a classifier sees: the same grid at its input size
# The study's classifiers read 48-px images (`train.model_kwargs`); the cells below are the grid above downsized to
# that size and shown enlarged without smoothing — if an expression cannot be told here, no classifier of the
# study can tell it.

# %%
small, rows_s, cols_s = WREP.domain_expression_grid(world, cell=classifier_size, seed=seed)
enlarged = np.asarray(Image.fromarray(small).resize((small.shape[1] * 2, small.shape[0] * 2), Image.NEAREST))
show(WREP.show_grid(enlarged, rows_s, cols_s, title=f"at {classifier_size} px (what the classifier sees)"),
     figures / "domain_expression_grid_classifier_size.png")

# %% [markdown]
# ## How well can the labels be read at all? The AU oracle and annotation noise
# Real FER labels are noisy the way people confuse expressions (RAF-DB's 40 votes per image make it the cleanest;
# AffectNet's annotators agree on about 60 % of images; humans score about 65 % on FER2013). World version 3 renders
# that: a share of each labeled domain's images shows a confusable expression under its label
# (`DomainSpec.label_noise`). The **AU oracle** — the class prototype nearest to a face's hidden action units — scored
# against the labels bounds what a classifier can reach on each test split; the pixels lose more (pose, light,
# blur, resolution), which is what the classifiers measure.

# %%
oracle = WREP.oracle_table(world, split=None)
oracle.to_csv(out / "oracle.csv")
display(oracle.round(3))
metrics.update({f"oracle_{d}": float(r["oracle_vs_label_balanced"]) for d, r in oracle.iterrows()})
metrics.update({f"label_noise_{d}": float(r["label_noise"]) for d, r in oracle.iterrows()})

# %% [markdown]
# ## The same identity across expressions
# Identities are stable parameter vectors: re-rendering one with another expression changes only the face
# (GAN editing and identity metrics depend on this).

# %%
grid_id, identities = WREP.identity_expression_grid(n_identities, size=grid_cell * 4 // 3, seed=seed, ss=2,
                                                 face_scale=1.2, background="studio")
fig = WREP.show_grid(grid_id, [f"{i.gender}, {i.age}, tone {i.skin_tone}" for i in identities], list(L.CLASSES),
                  title="same identity, class prototypes")
show(fig, figures / "identity_expression_grid.png")

# %% [markdown]
# ## Expression intensity
# A share of faces is faint (prototype × 0.2–0.5) or blended with a confusable class, so classes overlap
# as in real data. Here one identity's `sad` and `surprise` from 0 to 1.25 × the prototype.

# %%
strips = np.concatenate([WREP.intensity_strip(identities[0], c, size=grid_cell) for c in ("sad", "surprise")], 0)
fig = WREP.show_grid(strips, ["sad", "surprise"], [f"{s:.2f}" for s in np.linspace(0, 1.25, 6)],
                  title="intensity × prototype")
show(fig, figures / "intensity_strip.png")

# %% [markdown]
# ## Class shares next to the real datasets'
# Labeled splits draw their per-class counts from the real datasets' training shares (docs/method.md §2).

# %%
shares = WREP.class_share_table(world)
shares.to_csv(out / "class_shares.csv", index=False)
show(WREP.plot_class_shares(shares), figures / "class_shares.png")
display(shares.pivot(index="class", columns="dataset", values="world_n"))

# %% [markdown]
# ## Action-unit prototypes and what was rendered
# EMFACS-style prototypes (intensity 0–5), and the mean rendered AU intensities per class in RAF-DB's
# stand-in after per-image intensity, jitter, blends and spurious activations.

# %%
show(WREP.plot_heatmap(WREP.au_prototype_table(), "AU prototypes (0-5)"), figures / "au_prototypes.png")
show(WREP.plot_heatmap(WREP.au_means_table(world, "rafdb"), "rafdb: mean rendered AU per true class"),
     figures / "au_means_rafdb.png")

# %% [markdown]
# ## Attribute balance
# Shares of gender presentation, age group and skin-tone level among each domain's identities.

# %%
for attr in ("id_gender", "id_age", "id_skin_tone"):
    tab = WREP.attribute_table(world, attr)
    tab.to_csv(out / f"attributes_{attr}.csv")
    show(WREP.plot_heatmap(tab, f"{attr} share per domain", fmt=".2f", cmap="mako"), figures / f"attributes_{attr}.png")

# %% [markdown]
# ## Read back through the real readers
# The readers of `syntfer.sources.readers` (the ones that read RAF-DB/AffectNet/FER2013 in their native formats) read
# each domain; the per-class counts must equal the intended ones.

# %%
readback = []
for name, fmt in (("rafdb", "rafdb"), ("affectnet", "affectnet"), ("fer2013", "fer2013"), ("digiface", "unlabeled"),
                  ("dcface", "unlabeled"), ("emonet_face", "unlabeled"), ("ffhq", "unlabeled"),
                  ("web", "unlabeled")):
    res = read_dataset(fmt, world / name, check="exists")
    planned = plan_domain(name, pre, seed)
    intended = L.counts(t.label for t in planned if t.label in L.CLASSES) if fmt != "unlabeled" else None
    got = L.counts(res.frame["label"]) if fmt != "unlabeled" else None
    readback.append({"domain": name, "read": len(res.frame), "planned": len(planned),
                     "excluded": sum(res.excluded.values()), "skipped": len(res.skipped),
                     "counts_match": (got == intended) if intended else None})
readback = pd.DataFrame(readback).set_index("domain")
display(readback)

# %% [markdown]
# ## Audit probe: learnable, not trivial, and a cross-domain gap
# A small CNN (≈100k parameters, grey 48 px) trains on one world split with true labels and is tested on a
# held-out split of every domain (unlabeled sources scored against their hidden truth).

# %%
if probe_train:
    from syntfer.sources.world.probe import DEFAULT_TESTS, cross_domain_probe

    dom, split = probe_train.split("/")
    probe = cross_domain_probe(world, (dom, split), DEFAULT_TESTS, size=probe_size, epochs=probe_epochs,
                               test_limit=probe_test_limit, seed=seed, threads=probe_threads)
    probe.to_csv(out / "probe.csv", index=False)
    display(probe)
    fig, ax = plt.subplots(figsize=(7, 3))
    import seaborn as sns

    sns.barplot(data=probe, x="test", y="accuracy", hue="in_domain", ax=ax)
    ax.set_title(f"world probe trained on {probe_train}")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    show(fig, figures / "probe.png")
    in_acc = float(probe.loc[probe["in_domain"], "accuracy"].iloc[0])
    other = float(probe.loc[~probe["in_domain"], "accuracy"].mean())
    metrics.update(probe_in_domain_accuracy=in_acc, probe_other_domains_accuracy=other, probe_gap=in_acc - other)

# %% [markdown]
# ## Closing checks

# %%
problems = []
for name in DOMAIN_NAMES:
    if readback.loc[name, "read"] + readback.loc[name, "excluded"] != readback.loc[name, "planned"]:
        problems.append(f"{name}: read {readback.loc[name, 'read']} + excluded {readback.loc[name, 'excluded']} "
                        f"!= planned {readback.loc[name, 'planned']}")
    if readback.loc[name, "counts_match"] is False:
        problems.append(f"{name}: per-class counts differ from the intended ones")
    if readback.loc[name, "skipped"]:
        problems.append(f"{name}: {readback.loc[name, 'skipped']} unreadable rows")
worst = float((shares["world"] - shares["real"]).abs().max())
metrics["max_share_deviation"] = worst
if worst > share_tolerance:
    problems.append(f"class shares deviate by {worst:.3f} > {share_tolerance}")
if probe_train:
    if not (min_probe_accuracy <= metrics["probe_in_domain_accuracy"] <= max_probe_accuracy):
        problems.append(f"probe in-domain accuracy {metrics['probe_in_domain_accuracy']:.3f} outside "
                        f"[{min_probe_accuracy}, {max_probe_accuracy}]")
    if metrics["probe_gap"] < min_gap:
        problems.append(f"cross-domain gap {metrics['probe_gap']:.3f} < {min_gap}")
metrics["images"] = int(summary["images"].sum())
write_json(out / "metrics.json", {f"world_{k}": v for k, v in metrics.items()})
display(pd.Series(metrics, name="world metrics"))
if problems:
    raise AssertionError("world checks failed:\n" + "\n".join(problems))
print("all world checks passed")
