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
# # 03 · Strategy (ii): prompt-driven diffusion synthesis
#
# **Question.** Sampling the paper's demographic prompt grid (METHOD.md §4) with a text-conditioned diffusion
# model, and with its action-unit variant (FineFace's idea), how often does a generated face show the prompted
# expression (expression fidelity, per class), how far is the generated set from the real stand-ins in a
# classifier's feature space (FD-*space*, not FID), how balanced are the kept images over gender, age and race,
# and what does curation remove?
#
# Default = the **embedded** generator: a small text(+AU)-conditioned latent diffusion model trained on the
# procedural world's captioned `web` domain (`syntfer.diffusion.embedded`; committed checkpoint under
# `models/diffusion/`, retrained when `train=True`). **Every number here is a world result.** The paper's
# generator (Stable Diffusion "Realistic Vision v5.1", 50 steps, guidance 10, fp16, 512 px; FineFace on SD 2.1)
# runs through the same interface with `backends="sd"` / `"fineface"` and local weights (`sd_model`).

# %% tags=["parameters"]
world_root = "outputs/world"  # world domains: web/ (captions.csv, truth.csv), rafdb/ (judge + FD reference)
model_dir = "models/diffusion/embedded"  # embedded checkpoint (model.safetensors + config.json)
train = False  # True: retrain the embedded model on world_root/web instead of using model_dir
train_steps = 800  # training steps when retraining
train_minutes = 0.0  # > 0: wall-time guard when retraining (checkpoint and stop; rerun resumes)
train_arch = "latent-mlp"  # latent-mlp | unet (pixels, optionally space-to-depth folded) | latent-unet (VAE + UNet)
train_patch_size = 1  # unet: fold p x p pixel blocks into channels (2: a 32-px image becomes 12 x 16 x 16)
train_channels = ""  # UNet block channels, e.g. "32,64,128" (empty: the arch's default)
train_batch_size = 128
train_lr = 0.001
backends = "embedded,embedded-au"  # comma list of: embedded, embedded-au, sd, fineface
sd_model = ""  # local folder or hub id for sd/fineface backends
fineface_weights = ""  # AU adapter weights for the fineface backend
per_emotion = 40  # prompts per emotion (stratified subset of the 57,960-prompt grid)
steps = 20  # sampler steps (DPM-Solver++ for embedded)
guidance = 3.0  # classifier-free guidance scale (embedded); sd/fineface use the paper's 10 / 7.5
batch_size = 70
launcher = ""  # empty: generate in this kernel; e.g. "accelerate launch --multi_gpu --num_processes 4": 4 shards
judge_checkpoint = ""  # baseline classifier checkpoint dir (syntfer.models.checkpoint); empty: quick judge
judge_data = "rafdb"  # quick judge trained on: rafdb (labelled stand-in) | web-truth (audit judge, truth labels)
judge_size = 32
judge_epochs = 8
dedup_bits = 4  # dHash Hamming distance counted as duplicate (-1: off)
teacher_filter = False  # drop images the judge does not label as prompted
min_confidence = 0.0  # drop images whose judge probability of the prompted class is below this
balance = "min"  # per-class balancing of the kept set: min, an integer, or empty (off)
min_fidelity = 0.0  # closing check: overall fidelity of the first backend must reach this
threads = 2
seed = 0
out_dir = "outputs/diffusion"

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import display

from syntfer import labels as L
from syntfer import plots
from syntfer import prompts as P
from syntfer.diffusion import curation as C
from syntfer.diffusion import embedded as E
from syntfer.diffusion import judge as J
from syntfer.diffusion import report as R
from syntfer.diffusion.backends import BACKENDS, create_backend
from syntfer.diffusion.generation import generate, generate_launched
from syntfer.seeding import seed_everything
from syntfer.storage import write_json

kinds = [b.strip() for b in backends.split(",") if b.strip()]
bad = [b for b in kinds if b not in BACKENDS]
if bad or not kinds:
    raise ValueError(f"backends={backends!r}: expected a comma list of {BACKENDS}")
if judge_data not in ("rafdb", "web-truth"):
    raise ValueError(f"judge_data={judge_data!r}: expected 'rafdb' or 'web-truth'")
web_dir = Path(world_root) / "web"
if not (web_dir / "captions.csv").is_file():
    raise FileNotFoundError(f"{web_dir}/captions.csv not found: render the world first (syntfer world)")
seed_everything(seed)
torch.set_num_threads(threads)
out = Path(out_dir)
figures = out / "figures"
figures.mkdir(parents=True, exist_ok=True)
world = (web_dir / "truth.csv").is_file()


def show(fig, name):
    """Save a figure as PNG next to the outputs and show it."""
    plots.show(fig, figures / f"{name}.png", dpi=130)


# %% [markdown]
# ## Prompts: a stratified subset of the paper's grid
# Balanced over emotion × gender × race × age; every prompt checked against CLIP's 77-token limit (lower bound
# without the checkpoint's tokenizer; the SD backend re-checks with its own tokenizer and refuses overflow).

# %%
grid = P.prompt_grid()
prompts = P.check_prompt_lengths(P.stratified_subset(grid, per_emotion, seed=seed))
display(prompts.groupby(["label", "gender"]).size().unstack())
print(f"{len(prompts)} of {len(grid)} prompts; max {prompts['n_tokens'].max()} tokens")

# %% [markdown]
# ## The embedded model (committed checkpoint, or retrained here when `train=True`)

# %%
if train:
    data = E.load_captioned(web_dir / "captions.csv", 32)
    mcfg = E.default_config(E.build_vocab(data.captions), use_aus=True, au_scale=5.0, arch=train_arch,
                            patch_size=train_patch_size,
                            block_out_channels=[int(c) for c in train_channels.split(",")] if train_channels else None)
    tcfg = E.TrainConfig(steps=train_steps, batch_size=train_batch_size, lr=train_lr, seed=seed, threads=threads,
                         max_minutes=train_minutes or None)
    summary = E.train_embedded(data, mcfg, tcfg, out / "train")
    model_path = out / "train" / "ema"
    train_log = pd.read_csv(out / "train" / "train_log.csv")
else:
    model_path = Path(model_dir)
    train_log = pd.read_csv(model_path / "train_log.csv")
meta = json.loads((model_path / "config.json").read_text())
fig, ax = plt.subplots(figsize=(6, 2.5))
ax.plot(train_log["step"], train_log["loss"])
ax.set(xlabel="step", ylabel="loss (min-SNR weighted)", title=f"embedded model training ({model_path})")
show(fig, "train_loss")
arch_keys = {"latent-mlp": ("latent_dim", "mlp_dim", "mlp_blocks"), "unet": ("patch_size", "block_out_channels"),
             "latent-unet": ("vae_block_out_channels", "latent_channels", "block_out_channels")}
print({k: meta["model"].get(k) for k in ("arch", "image_size", *arch_keys.get(meta["model"]["arch"], ()), "use_aus")},
      "steps:", meta.get("steps"))

# %% [markdown]
# ## Generation (resumable; per-image seeds in the manifest)
# With a `launcher`, the processes it starts each generate a shard (several GPUs or nodes): the same images.

# %%
manifests, speed = {}, []
for kind in kinds:
    settings = {"steps": steps, "guidance": guidance, "batch_size": batch_size}
    if kind in ("sd", "fineface"):
        settings = {"fineface_weights": fineface_weights or None} if kind == "fineface" else {}
    model = sd_model if kind in ("sd", "fineface") else str(model_path)
    if launcher:
        res = generate_launched(prompts, kind, model, out / "generated" / kind, launcher=launcher, seed=seed,
                                batch_size=batch_size, settings=settings)
    else:
        res = generate(prompts, create_backend(kind, model, **settings), out / "generated" / kind, seed=seed,
                       batch_size=batch_size)
    manifests[kind] = res.manifest
    # no timings: this notebook and metrics.json are tracked outputs (`syntfer notebook` prints the stage's time)
    speed.append({"backend": kind, "generated": res.generated, "skipped": res.skipped})
display(pd.DataFrame(speed))

# %%
for kind, man in manifests.items():
    show(R.sample_grid(man, f"{kind}: emotion × (age, gender) — world result"), f"grid_{kind}")

# %% [markdown]
# ## Expression fidelity
# Judge = the baseline classifier when `judge_checkpoint` is given, else a quick CNN trained here (said below).
# The same judge's accuracy on the *real* web images (truth labels, an audit) is the reference ceiling.

# %%
if judge_checkpoint:
    from syntfer.models.checkpoint import load_checkpoint as load_classifier

    judge = J.from_classifier(load_classifier(judge_checkpoint), "baseline")
    space_name = "baseline"
else:
    truth = pd.read_csv(web_dir / "truth.csv")
    if judge_data == "rafdb":
        from syntfer.readers import read_dataset

        frame = read_dataset("rafdb", Path(world_root) / "rafdb").frame
        jtrain, jval = frame[frame["split"] == "train"], frame[frame["split"] == "test"]
    else:  # audit judge: the web domain's true expressions, first 80 % for training
        wt = pd.DataFrame({"path": [str(web_dir / p) for p in truth["path"]], "label": truth["expression"]})
        cut = int(0.8 * len(wt))
        jtrain, jval = wt.iloc[:cut], wt.iloc[cut:]
    judge = J.train_judge(jtrain, size=judge_size, epochs=judge_epochs, seed=seed, val_frame=jval, arch="tiny-cnn")
    space_name = "quickjudge"
print(judge.name, judge.info)

# %%
tables = []
for kind, man in manifests.items():
    probs = judge.predict_paths(man["path"].tolist())
    man["judge_pred"] = [L.CLASSES[i] for i in probs.argmax(1)]
    tables.append(J.fidelity(probs, man["label"].tolist()).assign(set=kind))
if world:
    truth = pd.read_csv(web_dir / "truth.csv")
    ref = truth.iloc[int(0.8 * len(truth)):] if judge_data == "web-truth" and not judge_checkpoint else truth
    ref_probs = judge.predict_paths([str(web_dir / p) for p in ref["path"]])
    tables.append(J.fidelity(ref_probs, ref["expression"].tolist()).assign(set="real_web_audit"))
fid = pd.concat(tables, ignore_index=True)
display(fid.pivot(index="class", columns="set", values="fidelity").round(3))
show(R.fidelity_plot(fid, f"expression fidelity, judge = {judge.name} (world result)"), "fidelity")

# %% [markdown]
# ## Distance to the real stand-ins in the judge's feature space (FD-*space*, not FID)

# %%
from syntfer.distances import classifier_space, compare_sets
from torchvision.transforms import v2


def judge_transform(im):
    t = v2.Compose([v2.Resize((judge.size, judge.size)), v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True),
                    v2.Normalize(J.MEAN, J.STD)])
    return t(im)


space = classifier_space(judge.model, name=space_name, transform=judge_transform)
from syntfer.readers import read_dataset  # noqa: E402

reference = read_dataset("rafdb", Path(world_root) / "rafdb").frame
reference = reference[reference["split"] == "train"]["path"].tolist()
sets = {k: m["path"].tolist() for k, m in manifests.items()}
if world:
    sets["real_web"] = [str(web_dir / p) for p in pd.read_csv(web_dir / "captions.csv")["path"]][:len(prompts)]
n_min = min(len(v) for v in sets.values())
dist = compare_sets(space, sets, reference, reference_name="rafdb_train", n_subsets=20,
                    subset_size=min(200, n_min), seed=seed)
display(dist.round(4))

# %% [markdown]
# ## Curation: label = prompted emotion; filters, de-duplication, balancing

# %%
curated, removed_tables = {}, []
for kind, man in manifests.items():
    res = C.curate(man, out / "curated" / kind, teacher=judge.predict_paths if (teacher_filter or min_confidence)
                   else None, require_agreement=teacher_filter, min_confidence=min_confidence,
                   dedup_bits=None if dedup_bits < 0 else dedup_bits,
                   per_class=(balance if balance in ("", "min") else int(balance)) or None, seed=seed)
    curated[kind] = res.manifest
    removed_tables.append(pd.Series(res.report["removed_by_reason"], name=kind, dtype=int))
removed = pd.concat(removed_tables, axis=1).fillna(0).astype(int) if removed_tables else pd.DataFrame()
display(removed)
display(pd.DataFrame({k: L.counts(m["label"]) for k, m in curated.items()}))

# %%
first = kinds[0]
bal = R.demographic_balance(curated[first])
display(bal.groupby(["attribute", "value"])["n"].sum().unstack(0))
show(R.balance_plot(bal, f"{first}: demographic balance of the kept set (prompted attributes)"), "balance")

# %% [markdown]
# ## Metrics and closing checks

# %%
metrics = {"world": world, "judge": judge.name, "prompts": len(prompts)}
for r in fid.to_dict("records"):
    metrics[f"fidelity.{r['set'].replace(' ', '_')}.{r['class']}"] = r["fidelity"]
for r in dist.to_dict("records"):
    metrics[f"fd_{space_name}.{r['set']}"] = r["fd"]
    metrics[f"kid_{space_name}.{r['set']}"] = r["kid"]
for k, m in curated.items():
    metrics[f"kept.{k}"] = len(m)
write_json(out / "metrics.json", metrics)
fid.to_csv(out / "fidelity.csv", index=False)
dist.to_csv(out / "distances.csv", index=False)
print(json.dumps(metrics, indent=1))

# %%
for kind, man in manifests.items():
    assert len(man) == len(prompts), f"{kind}: {len(man)} manifest rows for {len(prompts)} prompts"
    assert all(Path(p).is_file() for p in man["path"]), f"{kind}: manifest points at missing images"
    assert man["seed"].is_unique, f"{kind}: repeated seeds"
    assert (man["label"] == man["emotion"].map(L.canonical)).all(), f"{kind}: label is not the prompted emotion"
for kind, m in curated.items():
    assert len(m) > 0, f"{kind}: curation kept nothing"
    if balance:
        assert m["label"].value_counts().nunique() == 1, f"{kind}: kept set not balanced"
overall = float(fid[(fid["set"] == kinds[0]) & (fid["class"] == "all")]["fidelity"].iloc[0])
assert np.isfinite(overall) and overall >= min_fidelity, f"fidelity {overall:.3f} < min_fidelity {min_fidelity}"
assert np.isfinite(dist["fd"]).all(), "non-finite FD"
print("checks passed")
