"""Resumable, sharded generation of a prompt list into images + manifest.

Layout: ``<out>/<class>/<prompt_id>_<k>.png`` (readable as a class-folder set) and ``<out>/manifest.csv``
with path, label, prompt_id, prompt, encoder_text, seed, backend, model_id, revision, scheduler, steps,
guidance, dtype, height, width, the prompt's attribute columns and n_unknown_words.

- Seeds: ``derive_seed(seed, "diffusion", prompt_id, k)`` per image, recorded per row.
- Resume: an image file present means done (files are written atomically), so a rerun generates only
  what is missing; the manifest is rebuilt deterministically from the prompt rows.
- Sharding: under ``accelerate launch`` each process takes items ``rank::world_size`` and writes
  ``manifest.part-RRR-of-WWW.csv``; the main process merges after a barrier. A plain run is one shard. Images are
  functions of their own seed, not of the batch they were drawn in, so any number of shards writes the same
  image up to `BATCH_GROUPING_GREY_LEVELS` (tests/test_scaling.py). `generate_launched` runs this under a launcher from a notebook; it also leaves
  ``prompts.csv`` (its input) and ``generation.json`` (counts over all shards) in the folder.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from syntfer.core import labels as L
from syntfer.strategies.diffusion.backends import Backend, create_backend
from syntfer.engine.launch import run_launched
from syntfer.core.manifest import read_manifest, write_manifest
from syntfer.strategies.diffusion.prompts import read_grid, write_grid
from syntfer.core.seeding import derive_seed
from syntfer.core.storage import remove_stale_temporaries, save_image, write_json

MANIFEST_COLUMNS = ("path", "label", "prompt_id", "prompt", "encoder_text", "seed", "backend", "model_id",
                    "revision", "scheduler", "steps", "guidance", "dtype", "height", "width")
# How far (max |difference| in 8-bit grey levels, any pixel and channel) an image may move when its row is drawn
# in another batch: alone vs in a batch, by 1 vs 2 processes, or by a resumed run that regroups what is left. The
# initial noise and the solver are per row, but a CPU's batched kernels may round a batch of 4 differently from
# a batch of 7 (measured on the 2026-12-06 CI machine: 1 of 7 images, 1 level; byte-identical on earlier
# machines). Every test that compares images drawn in different batches uses this one value.
BATCH_GROUPING_GREY_LEVELS = 1
ATTRIBUTE_COLUMNS = ("gender", "age", "race", "emotion", "head_pose", "cue_key", "identity_trait")


class GenerationError(ValueError):
    """Bad generation input (prompt file without required columns, …)."""


def image_seed(seed: int, prompt_id: str, k: int = 0) -> int:
    """The per-image seed recorded in the manifest."""
    return derive_seed(seed, "diffusion", str(prompt_id), int(k))


def plan_items(prompts: pd.DataFrame, seed: int, images_per_prompt: int = 1) -> pd.DataFrame:
    """One row per image to make: prompt columns + k, seed, relative path `<class>/<id>_<k>.png`."""
    missing = [c for c in ("id", "prompt", "emotion") if c not in prompts.columns]
    if missing:
        raise GenerationError(f"prompt table lacks column(s) {missing}; has {list(prompts.columns)}")
    if prompts["id"].duplicated().any():
        raise GenerationError(f"duplicate prompt ids, e.g. {prompts['id'][prompts['id'].duplicated()].iloc[0]!r}")
    reps = [prompts.assign(k=k) for k in range(images_per_prompt)]
    items = pd.concat(reps, ignore_index=True).sort_values(["id", "k"], kind="stable").reset_index(drop=True)
    items["label"] = [L.canonical(e) for e in items["emotion"]]
    items["seed"] = [image_seed(seed, i, k) for i, k in zip(items["id"], items["k"])]
    items["relpath"] = [f"{lab}/{i}_{k}.png" for lab, i, k in zip(items["label"], items["id"], items["k"])]
    return items


def _shard_state():
    """(process_index, num_processes, barrier) from accelerate when launched with it, else a single shard."""
    from accelerate import PartialState  # lazy: importing accelerate takes over a second

    state = PartialState(cpu=True) if not _cuda() else PartialState()
    return state.process_index, state.num_processes, state.wait_for_everyone


def _cuda() -> bool:
    return torch.cuda.is_available()


def manifest_rows(items: pd.DataFrame, backend: Backend, out_dir: Path) -> pd.DataFrame:
    """The manifest rows for `items` (absolute paths; written relative by `write_manifest`)."""
    desc = backend.describe()
    df = pd.DataFrame({"path": [str((out_dir / p).resolve()) for p in items["relpath"]],
                       "label": items["label"].to_numpy(), "prompt_id": items["id"].to_numpy(),
                       "prompt": items["prompt"].to_numpy(),
                       "encoder_text": [backend.encoder_text(r) for _, r in items.iterrows()],
                       "seed": items["seed"].to_numpy()})
    for k in MANIFEST_COLUMNS[6:]:
        df[k] = desc[k]
    for c in ATTRIBUTE_COLUMNS:
        if c in items.columns:
            df[c] = items[c].to_numpy()
    df["n_unknown_words"] = backend.unknown_words(items) if hasattr(backend, "unknown_words") else 0
    return df


@dataclasses.dataclass
class GenerationResult:
    manifest: pd.DataFrame
    generated: int
    skipped: int
    seconds: float

    @property
    def images_per_s(self) -> float:
        return self.generated / self.seconds if self.seconds > 0 else float("nan")


def generate(prompts: pd.DataFrame, backend: Backend, out_dir: str | Path, *, seed: int = 0,
             images_per_prompt: int = 1, batch_size: int = 64, progress: bool = True,
             shard: tuple[int, int] | None = None) -> GenerationResult:
    """Generate every missing image of `prompts` into `out_dir` and write the manifest.

    `shard` = (index, count) overrides accelerate's process state (tests, manual splitting).
    Returns the merged manifest (main process) or this shard's rows, and counts/time for this shard.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    items = plan_items(prompts, seed, images_per_prompt)
    if shard is None:
        rank, world, barrier = _shard_state()
    else:
        (rank, world), barrier = shard, (lambda: None)
    if rank == 0:
        remove_stale_temporaries(out_dir)  # what a killed run left half-written, before any shard writes
    barrier()
    mine = items.iloc[rank::world]
    todo = mine[[not (out_dir / p).exists() for p in mine["relpath"]]]
    skipped = len(mine) - len(todo)
    t0 = time.perf_counter()
    bar = tqdm(total=len(todo), desc=f"generate {backend.describe()['backend']} [{rank + 1}/{world}]",
               disable=not progress)
    for b0 in range(0, len(todo), batch_size):
        batch = todo.iloc[b0:b0 + batch_size]
        images = backend.generate(batch, batch["seed"].tolist())
        if len(images) != len(batch):
            raise GenerationError(f"backend returned {len(images)} images for {len(batch)} prompts")
        for rel, im in zip(batch["relpath"], images):
            save_image(out_dir / rel, im)
        bar.update(len(batch))
    bar.close()
    seconds = time.perf_counter() - t0
    part = manifest_rows(mine, backend, out_dir)
    part_file = out_dir / f"manifest.part-{rank:03d}-of-{world:03d}.csv"
    write_manifest(part, part_file)
    barrier()
    result_df = part
    if rank == 0:
        parts = [read_manifest(out_dir / f"manifest.part-{r:03d}-of-{world:03d}.csv") for r in range(world)]
        merged = pd.concat(parts, ignore_index=True)
        order = {p: i for i, p in enumerate(items["relpath"])}
        merged = merged.iloc[sorted(range(len(merged)), key=lambda i: order[
            str(Path(merged["path"].iloc[i]).relative_to(out_dir.resolve()))])].reset_index(drop=True)
        if len(merged) != len(items):
            raise GenerationError(f"merged manifest has {len(merged)} rows; expected {len(items)}")
        write_manifest(merged, out_dir / "manifest.csv")
        result_df = merged
    return GenerationResult(result_df, len(todo), skipped, seconds)


def regenerate_row(row: pd.Series, backend: Backend):
    """Regenerate one manifest row's image alone from its recorded prompt and seed (a PIL image)."""
    desc = backend.describe()
    for k in ("backend", "model_id", "scheduler", "steps", "guidance", "dtype"):
        if str(row[k]) != str(desc[k]):
            raise GenerationError(f"manifest row {row.get('prompt_id')}: {k}={row[k]!r} but backend has {desc[k]!r}")
    frame = pd.DataFrame([{c: row[c] for c in ATTRIBUTE_COLUMNS if c in row.index}
                          | {"id": row["prompt_id"], "prompt": row["prompt"]}])
    return backend.generate(frame, [int(row["seed"])])[0]


# backend settings a launched run can pass through `syntfer diffusion generate` (setting -> CLI flag)
LAUNCH_SETTINGS = {"steps": "--steps", "guidance": "--guidance", "batch_size": "--backend-batch-size",
                   "fineface_weights": "--fineface-weights"}


def generate_from_args(args: argparse.Namespace) -> int:
    """`syntfer diffusion generate` entry point (every process of a launch runs it; the main one reports)."""
    from accelerate.utils import gather_object  # lazy: importing accelerate takes over a second

    if args.threads:
        torch.set_num_threads(args.threads)
    prompts = read_grid(args.prompts)
    backend = create_backend(args.backend, args.model, steps=args.steps, guidance=args.guidance,
                             batch_size=args.backend_batch_size, fineface_weights=args.fineface_weights)
    res = generate(prompts, backend, args.out, seed=args.seed, batch_size=args.batch_size)
    rank, world, _ = _shard_state()
    counts = gather_object([(res.generated, res.skipped, res.seconds)]) if world > 1 else [
        (res.generated, res.skipped, res.seconds)]
    if rank != 0:
        return 0
    generated, skipped = sum(c[0] for c in counts), sum(c[1] for c in counts)
    seconds = max(c[2] for c in counts)  # the shards run side by side
    summary: dict[str, Any] = {**backend.describe(), "processes": world, "generated": generated,
                               "skipped": skipped, "seconds": round(seconds, 2),
                               "images_per_s": generated / seconds if seconds > 0 else float("nan")}
    write_json(Path(args.out) / "generation.json", summary)
    print(summary)
    return 0


def generate_launched(prompts: pd.DataFrame, backend: str, model: str, out_dir: str | Path, *, launcher: str,
                      seed: int = 0, batch_size: int = 64, settings: dict[str, Any] | None = None,
                      echo: bool = True) -> GenerationResult:
    """`generate` in the processes `launcher` starts (``accelerate launch --multi_gpu --num_processes 4``: 4 shards).

    Runs ``<launcher> -m syntfer diffusion generate`` on `prompts` (written to ``<out_dir>/prompts.csv``) with the
    backend `backend` built from `model` and `settings` (the keyword arguments `create_backend` would get; see
    `LAUNCH_SETTINGS`), then reads the merged manifest and the counts over all shards back. Same images, same
    manifest and same resume behaviour as `generate` in this process.
    """
    settings = {k: v for k, v in (settings or {}).items() if v is not None}
    unknown = sorted(set(settings) - set(LAUNCH_SETTINGS))
    if unknown:
        raise GenerationError(f"backend setting(s) {unknown} cannot be passed to a launched run; "
                              f"known: {sorted(LAUNCH_SETTINGS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    prompt_file = write_grid(out_dir / "prompts.csv", prompts)
    argv = ["diffusion", "generate", "--prompts", str(prompt_file), "--out", str(out_dir), "--backend", backend,
            "--model", str(model), "--seed", str(seed), "--batch-size", str(batch_size)]
    for key, value in settings.items():
        argv += [LAUNCH_SETTINGS[key], str(value)]
    run_launched(launcher, argv, echo=echo)
    summary = json.loads((out_dir / "generation.json").read_text())
    return GenerationResult(read_manifest(out_dir / "manifest.csv"), int(summary["generated"]),
                            int(summary["skipped"]), float(summary["seconds"]))
