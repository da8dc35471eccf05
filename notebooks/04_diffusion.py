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
# # 04 · Strategy (ii): prompt-driven diffusion synthesis
#
# **Question.** Sampling the paper's demographic prompt grid (docs/method.md §4) with a text-conditioned diffusion
# model, and with its action-unit variant (FineFace's idea): does a generated face show the prompted expression
# (expression fidelity, per class, read against the judge's ceiling on real faces of the same domain), does it
# show the prompted gender, age and race (demographic fidelity), how far is the generated set from real faces of
# its domain (FD in the judge's feature space — not FID), and what does curation remove?
#
# Default = the **embedded** generator: a small text(+AU)-conditioned latent diffusion model trained offline on
# the procedural world's captioned `web` domain, as aligned 48-px face crops (`syntfer.strategies.diffusion.embedded`,
# variant `pool48`; committed under `models/diffusion/`, its training curve and rebuild command beside it). **Every
# number here is a world result** (the banner below lists each input's kind). The paper's generator (Stable Diffusion "Realistic Vision v5.1", 50 steps,
# guidance 10, fp16, 512 px; FineFace on SD 2.1) runs through the same interface with `backends="sd"` /
# `"fineface"` and local weights (`sd_model`). The measuring instruments (judge, attribute reader) come from
# 01_instruments and never see the generator's gradients.

# %% tags=["parameters"]
captioned = "outputs/world/web"  # captioned faces (captions.csv) the embedded model retrains on (only when train is True)
model_dir = "models/diffusion/embedded"  # embedded checkpoint (model.safetensors + config.json, eval_log.csv)
train = False  # True: retrain the embedded model on `captioned` here instead of using model_dir (slow)
train_steps = 800  # training steps when retraining
train_minutes = 0.0  # > 0: wall-time guard when retraining (checkpoint and stop; rerun resumes)
train_batch_size = 256
train_lr = 0.0005
train_filler_words = "a,an,of,with"  # retrain: function words added to captions (prompts are long; captions short)
train_filler_max = 8  # retrain: at most this many filler words per caption
backends = "embedded,embedded-au"  # comma list of: embedded, embedded-au, sd, fineface
sd_model = ""  # local folder or hub id for sd/fineface backends
fineface_weights = ""  # AU adapter weights for the fineface backend
per_emotion = 240  # prompts per emotion (stratified subset of the 57,960-prompt grid)
steps = 30  # sampler steps (DDIM for embedded)
guidance = 3.0  # classifier-free guidance scale (embedded); sd/fineface use the paper's 10 / 7.5
batch_size = 70
launcher = ""  # empty: generate in this kernel; e.g. "accelerate launch --multi_gpu --num_processes 4": 4 shards
judge = "outputs/instruments/judge/checkpoint"  # the project's one judge (01_instruments)
ceilings = "outputs/instruments/judge/ceiling.csv"  # the judge's accuracy on held-out real faces per domain
references = "ref_web:truth:outputs/world/ref_web,ref_ffhq:truth:outputs/world/ref_ffhq"  # name:format:root
reference_domain = "ref_web"  # the reference of the generator's look (one of `references`): ceiling and FD reference
real_train = "outputs/sets/real_rafdb/manifest.csv"  # the real training split the demographic finding compares with: read by the same reader
reader = "outputs/instruments/reader"  # attribute reader (gender, age, skin tone; 01_instruments); absent: demographics skipped
dedup_bits = 4  # dHash Hamming distance counted as duplicate (-1: off)
teacher_filter = False  # drop images the judge does not label as prompted
min_confidence = 0.0  # drop images whose judge probability of the prompted class is below this
balance = "min"  # per-class balancing of the kept set: min, an integer, or empty (off)
min_fidelity = 0.6  # closing check: mean-class fidelity of the first backend must reach this
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
from IPython.display import Markdown, display

from syntfer.core import labels as L
from syntfer.core import plots
from syntfer.strategies.diffusion import STRATEGY
from syntfer.strategies.diffusion import prompts as PROMPTS
from syntfer.instruments.attributes import demographic_fidelity, load_reader
from syntfer.strategies.diffusion import curation as CUR
from syntfer.strategies.diffusion import embedded as EMB
from syntfer.strategies.diffusion import figures as DFIG
from syntfer.strategies.diffusion.backends import BACKENDS, create_backend
from syntfer.strategies.diffusion.generation import generate, generate_launched
from syntfer.instruments.distances import frechet_distance
from syntfer.instruments.build import parse_references, reference_frame
from syntfer.core import provenance as PV
from syntfer.instruments.judge import Judge, fidelity_table, judge_ceiling, mean_class_fidelity
from syntfer.core.manifest import read_manifest
from syntfer.core.seeding import numpy_rng, seed_everything
from syntfer.core.storage import write_json

kinds = [b.strip() for b in backends.split(",") if b.strip()]
bad = [b for b in kinds if b not in BACKENDS]
if bad or not kinds:
    raise ValueError(f"backends={backends!r}: expected a comma list of {BACKENDS}")
refs = parse_references(references)
if reference_domain not in refs:
    raise ValueError(f"reference_domain={reference_domain!r} is not one of the references {list(refs)}")
web_dir = Path(captioned)
for what, path in ((("captions", web_dir / "captions.csv"),) if train else ()) + (
        ("judge", Path(judge)), ("ceilings", Path(ceilings)), ("reference", refs[reference_domain][1]),
        ("real training split", Path(real_train))):
    if not path.exists():
        raise FileNotFoundError(f"{what}: {path} not found (world and instruments stages write it)")
inputs = PV.describe({"captioned": captioned if train else "", f"reference.{reference_domain}": refs[reference_domain][1],
                      "sd_model": sd_model if {"sd", "fineface"} & set(kinds) else "",
                      "fineface_weights": fineface_weights if "fineface" in kinds else "",
                      "embedded_model": model_dir if {"embedded", "embedded-au"} & set(kinds) else ""})
skipped: dict[str, str] = {}
has_reader = (Path(reader) / "ceiling.json").is_file()
if not has_reader:
    skipped["demographic_fidelity"] = (f"{reader}: no attribute reader (01_instruments skipped it: no reference with "
                                       "demographic truth), so who was drawn is not read")
display(Markdown(PV.banner(inputs, "04_diffusion")))
seed_everything(seed)
torch.set_num_threads(threads)
out = Path(out_dir)
figs = plots.Figures(out / "figures", dpi=130)  # every figure: out_dir/figures/<name>.png

# %% [markdown]
# ## Prompts: a stratified subset of the paper's grid
# Balanced over emotion × gender × race × age; every prompt checked against CLIP's 77-token limit (lower bound
# without the checkpoint's tokenizer; the SD backend re-checks with its own tokenizer and refuses overflow).

# %%
grid = PROMPTS.prompt_grid()
prompts = PROMPTS.check_prompt_lengths(PROMPTS.stratified_subset(grid, per_emotion, seed=seed))
display(prompts.groupby(["label", "gender"]).size().unstack())
print(f"{len(prompts)} of {len(grid)} prompts; max {prompts['n_tokens'].max()} tokens")

# %% [markdown]
# ## The embedded model and how it learned
# Loss along training and — measured by a judge trained like this run's on the same reference renders — the
# expression fidelity of a fixed probe of 70 grid prompts every 500–1,000 steps (`eval_log.csv`): the curve that says
# whether the conditioning was learned and whether training longer helps. The committed model is a base run
# (8,000 steps) fine-tuned for 2,000 steps with filler words added to the captions (dashed line;
# `models/diffusion/README.md`): grid prompts are long and full of words like "with" that the short captions tie to
# beards, which drew men for "a woman with white ethnicity". The two parts' probes used two judges of the same recipe.

# %%
if train:
    data = EMB.load_captioned(web_dir / "captions.csv", 48, align=True)
    mcfg = EMB.default_config(EMB.build_vocab(data.captions), use_aus=True, au_scale=5.0, variant="pool48")
    tcfg = EMB.TrainConfig(steps=train_steps, batch_size=train_batch_size, lr=train_lr, seed=seed, threads=threads,
                         max_minutes=train_minutes or None, warmup=500, ema_decay=0.999, word_dropout=0.15,
                         filler_words=tuple(w for w in train_filler_words.split(",") if w), filler_max=train_filler_max)
    EMB.train_embedded(data, mcfg, tcfg, out / "train")
    model_path = out / "train" / "ema"
    logs = out / "train"
else:
    model_path = logs = Path(model_dir)
# a train_minutes (max_minutes) run that stopped early exports a partial model: refused here, never used as complete
meta = EMB.require_finished(model_path)
train_log = pd.read_csv(logs / "train_log.csv")
eval_log = pd.read_csv(logs / "eval_log.csv") if (logs / "eval_log.csv").is_file() else None
finetuned_at = None
if (logs / "base_train_log.csv").is_file():  # a fine-tuned model: its base's curves first, then the fine-tune's
    base_log = pd.read_csv(logs / "base_train_log.csv")
    finetuned_at = int(base_log["step"].max())
    train_log = pd.concat([base_log, train_log.assign(step=train_log["step"] + finetuned_at)], ignore_index=True)
    if eval_log is not None and (logs / "base_eval_log.csv").is_file():
        eval_log = pd.concat([pd.read_csv(logs / "base_eval_log.csv"),
                              eval_log.assign(step=eval_log["step"] + finetuned_at)], ignore_index=True)
fig, axes = plt.subplots(1, 2 if eval_log is not None else 1, figsize=(11 if eval_log is not None else 6, 3),
                         squeeze=False)
axes[0, 0].plot(train_log["step"], train_log["loss"])
axes[0, 0].set(xlabel="step", ylabel="loss (min-SNR weighted)", title="training loss")
if eval_log is not None:
    for col in [c for c in eval_log.columns if c.startswith("fidelity_")]:
        axes[0, 1].plot(eval_log["step"], eval_log[col], marker="o", label=col.removeprefix("fidelity_"))
    axes[0, 1].set(xlabel="step", ylabel="mean-class fidelity", ylim=(0, 1), title="probe fidelity along training")
    axes[0, 1].legend()
if finetuned_at is not None:
    for ax in axes[0]:
        ax.axvline(finetuned_at, color="grey", ls="--", lw=1)
        ax.annotate("fine-tune", (finetuned_at, 0.02), xycoords=("data", "axes fraction"), fontsize=8, color="grey")
figs.show(fig, "training")
print({k: meta["model"].get(k) for k in ("arch", "image_size", "text_encoder", "latent_dim", "mlp_dim", "mlp_blocks",
                                         "prediction_type", "use_aus")}, "steps:", meta.get("steps"))

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

# %% [markdown]
# ## What was drawn: the prompted emotion (rows) for each age and gender (columns)

# %%
for kind, man in manifests.items():
    figs.show(DFIG.sample_grid(man, f"{kind}: emotion × (age, gender) — {PV.run_kind(inputs)} inputs"), f"grid_{kind}")
real = reference_frame(refs[reference_domain][1], "test", refs[reference_domain][0])
real_demographics = {"age", "gender"} <= set(real.columns)  # world references carry truth; the user's faces do not
figs.show(DFIG.sample_grid(real, f"real {reference_domain} faces (held out): emotion × (age, gender)"), "grid_real")

# %% [markdown]
# ## Expression fidelity against the judge's ceiling
# Fidelity = share of a backend's images the judge classifies as the prompted emotion, per class; the mean over
# classes is read against the judge's **ceiling** — its mean-class accuracy on held-out *real* faces of the
# generator's domain (01_instruments). A generator whose images were indistinguishable from real ones would score
# about the ceiling; one that draws no expression, about 1/7. A ratio *above* 1 means the generated faces are easier
# for the judge than real faces of the domain — stronger, more prototypical expressions than the real ones, whose
# faint and blended expressions the judge misreads — not that they are more real; the distance to real faces (FD,
# below) and the pictures say how real they look.

# %%
judge_ = Judge.load(judge)
ceiling_table = pd.read_csv(ceilings)
ceiling_rows = ceiling_table[ceiling_table["domain"] == reference_domain].set_index("class")
ceiling = judge_ceiling(ceiling_table, reference_domain)
outputs, tables = {}, []
for kind, man in manifests.items():
    outputs[kind] = judge_.outputs(man["path"].tolist())
    man["judge_pred"] = [L.CLASSES[i] for i in outputs[kind].predicted]
    tables.append(fidelity_table(outputs[kind].probs, man["label"].tolist(), kind).assign(set=kind))
tables.append(ceiling_rows.reset_index()[["class", "n", "fidelity", "p_label"]]
              .query("`class` != 'mean_class'").assign(set=f"real {reference_domain} (ceiling)"))
fid = pd.concat(tables, ignore_index=True)
display(fid.pivot(index="class", columns="set", values="fidelity").round(3))
mean_fid = {k: mean_class_fidelity(fid[fid["set"] == k]) for k in kinds}
print({k: f"{v:.3f} = {v / ceiling:.2f} of the ceiling {ceiling:.3f}" for k, v in mean_fid.items()})
figs.show(DFIG.fidelity_plot(fid, f"expression fidelity, judge = {judge_.name} ({PV.run_kind(inputs)} inputs)"), "fidelity")

# %% [markdown]
# ## Demographic fidelity: who was drawn
# The attribute reader (01_instruments) reads gender, age group and skin tone of every generated face; race is read
# as the world renders it (a skin-tone level inside the prompted race word's range). Next to it, the reader on
# held-out real faces of the domain: its ceiling. A generated set read above that ceiling (gender can be) draws the
# attribute more plainly than real faces of the domain show it; it is not more correct than the truth. Age reads
# low everywhere: the world draws its young, adult and middle-aged faces nearly alike (docs/world.md), so no
# generator can show age better than the reader reads real faces.

# %%
demo_rows = []
if has_reader:
    reader_ = load_reader(reader)
    for kind, man in manifests.items():
        read = reader_.predict(man["path"].tolist())
        demo_rows.append({"set": kind, **demographic_fidelity(read, man)})
        read.to_csv(out / f"attributes_{kind}.csv", index=False)  # per image: the report's demographic finding
    if real_demographics:
        real_read = reader_.predict(real["path"].tolist())
        demo_rows.append({"set": f"real {reference_domain} (ceiling)", **demographic_fidelity(real_read, real)})
    else:
        skipped["demographic_ceiling"] = f"reference {reference_domain}: {PV.NO_TRUTH}"
else:
    print("SKIPPED:", skipped["demographic_fidelity"])
demographics = pd.DataFrame(demo_rows, columns=["set", "gender", "age", "race"]).set_index("set")
display(demographics.round(3))

# %% [markdown]
# ## Distance to real faces of the domain (FD in the judge's feature space; not FID)
# Fréchet distance between the judge's penultimate features of each generated set and of held-out real reference
# faces, at the same n; next to it, the distance between two disjoint halves of real faces (what "as close as real
# is to real" measures at this n).

# %%
real_feats = judge_.outputs(real["path"].tolist()).features
n = min([len(o.features) for o in outputs.values()] + [len(real_feats) // 2])
pick = numpy_rng(seed, "diffusion", "fd").permutation(len(real_feats))
dist_rows = [{"set": kind, "n": n, "fd_judge": frechet_distance(o.features[:n], real_feats[pick[:n]])}
             for kind, o in outputs.items()]
dist_rows.append({"set": f"real {reference_domain} (other half)", "n": n,
                  "fd_judge": frechet_distance(real_feats[pick[n:2 * n]], real_feats[pick[:n]])})
dist = pd.DataFrame(dist_rows)
display(dist.round(3))

# %% [markdown]
# ## Curation: label = prompted emotion; filters, de-duplication, balancing

# %%
curated, removed_tables = {}, []
for kind, man in manifests.items():
    res = CUR.curate(man, out / "curated" / kind, teacher=(lambda paths: judge_.probs(list(paths)))
                   if (teacher_filter or min_confidence) else None, require_agreement=teacher_filter,
                   min_confidence=min_confidence, dedup_bits=None if dedup_bits < 0 else dedup_bits,
                   per_class=(balance if balance in ("", "min") else int(balance)) or None, seed=seed)
    curated[kind] = res.manifest
    removed_tables.append(pd.Series(res.report["removed_by_reason"], name=kind, dtype=int))
removed = pd.concat(removed_tables, axis=1).fillna(0).astype(int) if removed_tables else pd.DataFrame()
display(removed)
display(pd.DataFrame({k: L.counts(m["label"]) for k, m in curated.items()}))

# %%
first = kinds[0]
bal = DFIG.demographic_balance(curated[first])
display(bal.groupby(["attribute", "value"])["n"].sum().unstack(0))
figs.show(DFIG.balance_plot(bal, f"{first}: demographic balance of the kept set (prompted attributes)"), "balance")

# %% [markdown]
# ## Whom the real training split shows, read by the same reader
# The report's demographic finding compares how balanced the generated sets are with the real training split
# (`real_train`). Both sides are read by the one attribute reader, so an instrument's bias cannot pass for a
# difference between the sets; where the real split has a known truth (the world's truth files), the report shows
# it next to the reading.

# %%
real_train_frame = read_manifest(real_train, required=("path", "label"), check_labels=False)
if has_reader:
    real_train_read = reader_.predict(real_train_frame["path"].tolist())
    real_train_read.to_csv(out / "attributes_real_train.csv", index=False)
    display(real_train_read[["gender", "age", "skin_tone"]].apply(lambda c: c.value_counts(normalize=True)).round(3))
else:
    print("SKIPPED:", skipped["demographic_fidelity"])

# %% [markdown]
# ## Metrics and closing checks

# %%
metrics = {"prompts": len(prompts), "judge": judge_.describe()["judge"], "judge_ceiling": ceiling}
for kind in kinds:
    metrics[f"expression_fidelity.{kind}"] = mean_fid[kind]
    metrics[f"fidelity_over_ceiling.{kind}"] = mean_fid[kind] / ceiling
    for a in ("gender", "age", "race") if kind in demographics.index else ():
        metrics[f"demographic_fidelity.{kind}.{a}"] = float(demographics.loc[kind, a])
for r in dist.to_dict("records"):
    metrics[f"fd_judge.{r['set'] if r['set'] in kinds else 'real_halves'}"] = r["fd_judge"]
for k, m in curated.items():
    metrics[f"kept.{k}"] = len(m)
write_json(out / "metrics.json", {**metrics, "inputs": inputs, "skipped": skipped})
fid.to_csv(out / "fidelity.csv", index=False)
dist.to_csv(out / "distances.csv", index=False)
demographics.reset_index().to_csv(out / "demographics.csv", index=False)
# per curated set, what the summary stage reads (`syntfer summarize --synthetic`): set names of the study
set_name = {k: STRATEGY.prefix + k.replace("-", "_") for k in kinds}  # backend embedded-au -> diffusion_embedded_au
# next to each demographic fidelity, the reader's ceiling (the same reading of held-out real faces of the domain):
# a generator cannot show an attribute more legibly than the reader reads it on real faces
ceiling_row = f"real {reference_domain} (ceiling)"
write_json(out / "synthetic.json", {set_name[k]: {**{f"demographic_fidelity.{a}": float(demographics.loc[k, a])
                                                     for a in ("gender", "age", "race") if k in demographics.index},
                                                  **{f"demographic_ceiling.{a}": float(demographics.loc[ceiling_row, a])
                                                     for a in ("gender", "age", "race")
                                                     if ceiling_row in demographics.index},
                                                  "fd_judge_domain": float(dist.set_index("set").loc[k, "fd_judge"])}
                                    for k in kinds})
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
assert not has_reader or len(real_train_read) == len(real_train_frame), "the reader skipped real training faces"
assert np.isfinite(mean_fid[kinds[0]]) and mean_fid[kinds[0]] >= min_fidelity, (
    f"fidelity {mean_fid[kinds[0]]:.3f} < min_fidelity {min_fidelity}")
assert np.isfinite(dist["fd_judge"]).all(), "non-finite FD"
print("checks passed")
