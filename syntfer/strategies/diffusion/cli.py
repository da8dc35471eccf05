"""`syntfer diffusion {train,generate,curate}` — the strategy (ii) command line.

train     train (or resume) the embedded text/AU-conditioned model on a captioned domain, export fp16 weights
generate  sample a prompt list with a backend (resumable; sharded when launched with `accelerate launch`, e.g.
          `accelerate launch --multi_gpu --num_processes 4 -m syntfer diffusion generate …`)
curate    filter / de-duplicate / balance a generated set into a class-folder dataset + manifest
"""
from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

import torch

from syntfer.strategies.diffusion import embedded as E
from syntfer.strategies.diffusion.curation import curate_from_args
from syntfer.strategies.diffusion.generation import generate_from_args
from syntfer.strategies.diffusion.probe import fidelity_probe
from syntfer.core.storage import remove_stale_temporaries, write_json
from syntfer.core.storage import sha256_file as sha256


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)

    t = sub.add_parser("train", help="train the embedded diffusion model")
    t.add_argument("--captions", required=True, help="captions.csv of a captioned domain (world web/)")
    t.add_argument("--work", required=True, help="work folder (resume state, log, EMA export)")
    t.add_argument("--export", default=None, help="folder for the fp16 checkpoint (model.safetensors+config.json)")
    t.add_argument("--use-aus", action="store_true", help="AU variant: condition on FineFace's 12 AUs too")
    t.add_argument("--au-scale", type=float, default=5.0, help="AU intensities are divided by this (0..5 scale)")
    t.add_argument("--variant", choices=("v1", "pool48"), default="v1",
                   help="pool48: aligned 48-px crops, weighted-bag-of-words text, v-prediction (model.VARIANTS)")
    t.add_argument("--align", action="store_true", help="train on aligned face crops (captions' landmarks column)")
    t.add_argument("--image-size", type=int, default=None, help="default: the variant's (v1 32, pool48 48)")
    t.add_argument("--word-dropout", type=float, default=0.0, help="mask each caption word with this probability")
    t.add_argument("--ema-decay", type=float, default=0.998)
    t.add_argument("--init-from", default=None, help="fine-tune: start from this exported checkpoint (same options)")
    t.add_argument("--filler-words", default="", help="comma-separated words that say nothing about the image "
                   "(e.g. a,an,of,with); each caption gets 0..--filler-max of them (pool encoder)")
    t.add_argument("--filler-max", type=int, default=0)
    t.add_argument("--eval-judge", default=None, help="judge checkpoint: fidelity of EMA samples along training")
    t.add_argument("--eval-every", type=int, default=1000, help="with --eval-judge: every N steps (eval_log.csv)")
    t.add_argument("--eval-per-emotion", type=int, default=10, help="grid prompts per emotion for the probe")
    t.add_argument("--warmup", type=int, default=100)
    t.add_argument("--arch", choices=("latent-mlp", "latent-unet", "unet"), default="latent-mlp",
                   help="latent-unet: SD's design (AutoencoderKL trained first, UNet on its latents)")
    t.add_argument("--patch-size", type=int, default=1, help="unet: space-to-depth fold of the pixels (2: 16x16x12)")
    t.add_argument("--channels", default=None, help="UNet block channels, e.g. 32,64,128 (default: per arch)")
    t.add_argument("--vae-steps", type=int, default=400, help="latent-unet: autoencoder training steps")
    t.add_argument("--steps", type=int, default=4000)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--max-minutes", type=float, default=None, help="checkpoint and stop after this wall time")
    t.add_argument("--checkpoint-every", type=int, default=250, help="save the resume state every N steps")
    t.add_argument("--log-every", type=int, default=50, help="one train_log.csv row per N steps")
    t.add_argument("--threads", type=int, default=None)
    t.add_argument("--limit", type=int, default=None, help="use only the first N captioned images")

    g = sub.add_parser("generate", help="generate images for a prompt CSV")
    g.add_argument("--prompts", required=True, help="prompt CSV (syntfer prompts --out …)")
    g.add_argument("--out", required=True)
    g.add_argument("--backend", choices=("embedded", "embedded-au", "sd", "fineface"), default="embedded")
    g.add_argument("--model", required=True, help="checkpoint folder or hub id")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--steps", type=int, default=None)
    g.add_argument("--guidance", type=float, default=None)
    g.add_argument("--batch-size", type=int, default=64, help="prompts handed to the backend at a time")
    g.add_argument("--backend-batch-size", type=int, default=None,
                   help="the backend's own sampling batch (default: the backend's)")
    g.add_argument("--fineface-weights", default=None, help="fineface backend: the AU adapter's weight file")
    g.add_argument("--threads", type=int, default=None)

    c = sub.add_parser("curate", help="curate a generated set")
    c.add_argument("--manifest", required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--per-class", default=None, help="images per class, or 'min' (smallest class)")
    c.add_argument("--dedup-bits", type=int, default=0, help="max Hamming distance of 64-bit hashes to call a duplicate")
    c.add_argument("--seed", type=int, default=0)




def _train(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    channels = tuple(int(c) for c in args.channels.split(",")) if args.channels else None
    size = args.image_size or (48 if args.variant == "pool48" else 32)
    data = E.load_captioned(args.captions, size, limit=args.limit, align=args.align)
    vocab = E.build_vocab(data.captions)
    mcfg = E.default_config(vocab, use_aus=args.use_aus, au_scale=args.au_scale, image_size=size,
                            arch=args.arch, patch_size=args.patch_size, block_out_channels=channels,
                            variant=args.variant)
    tcfg = E.TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                         max_minutes=args.max_minutes, threads=args.threads, vae_steps=args.vae_steps,
                         checkpoint_every=args.checkpoint_every, log_every=args.log_every,
                         word_dropout=args.word_dropout, ema_decay=args.ema_decay, warmup=args.warmup,
                         eval_every=args.eval_every if args.eval_judge else 0, init_from=args.init_from,
                         filler_words=tuple(w for w in args.filler_words.split(",") if w),
                         filler_max=args.filler_max)
    evaluate = None
    if args.eval_judge:
        evaluate = fidelity_probe(args.eval_judge, per_emotion=args.eval_per_emotion, seed=args.seed)
    summary = E.train_embedded(data, mcfg, tcfg, args.work, evaluate=evaluate)
    print(json.dumps(summary, indent=1))
    if args.export:
        remove_stale_temporaries(args.export)  # what a killed export left half-written
        model = E.load_checkpoint(Path(args.work) / "ema")
        # the exact rebuild: the steps actually done, no wall-time guard (CPU results depend on --threads)
        cmd = " ".join(["python -m syntfer diffusion train", "--captions", shlex.quote(str(args.captions)),
                        "--work", shlex.quote(str(args.work)), "--export", shlex.quote(str(args.export)),
                        *(["--use-aus"] if args.use_aus else []), "--au-scale", str(args.au_scale),
                        "--variant", args.variant, *(["--align"] if args.align else []),
                        "--image-size", str(size), "--arch", args.arch,
                        "--word-dropout", str(args.word_dropout), "--ema-decay", str(args.ema_decay),
                        "--warmup", str(args.warmup),
                        *(["--init-from", shlex.quote(str(args.init_from))] if args.init_from else []),
                        *(["--filler-words", args.filler_words, "--filler-max", str(args.filler_max)]
                          if args.filler_max else []),
                        *(["--eval-judge", shlex.quote(str(args.eval_judge)), "--eval-every", str(args.eval_every),
                           "--eval-per-emotion", str(args.eval_per_emotion)] if args.eval_judge else []),
                        *(["--vae-steps", str(args.vae_steps)] if args.arch == "latent-unet" else []),
                        *(["--patch-size", str(args.patch_size)] if args.patch_size != 1 else []),
                        *(["--channels", args.channels] if args.channels else []),
                        "--steps", str(summary["steps"]), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
                        "--seed", str(args.seed), *(["--threads", str(args.threads)] if args.threads else [])])
        E.save_checkpoint(model, args.export, dtype=torch.float16,
                          extra={"steps": summary["steps"], "finished": summary["finished"],
                                 "train": {**tcfg.__dict__}, "captions": str(args.captions),
                                 "captions_sha256": sha256(args.captions), "images": len(data.captions)})
        for name in ("train_log.csv", "eval_log.csv"):
            if (Path(args.work) / name).is_file():
                Path(args.export, name).write_bytes((Path(args.work) / name).read_bytes())
        write_json(Path(args.export) / "build.json",
                   {"weights_sha256": sha256(Path(args.export) / E.WEIGHTS), "steps": summary["steps"],
                    "elapsed_s": summary["elapsed_s"], "images_per_s": summary["images_per_s"],
                    "parameters": summary["parameters"], "rebuild_command": cmd})
        print(f"exported {args.export}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.action == "train":
        return _train(args)
    if args.action == "generate":
        return generate_from_args(args)
    if args.action == "curate":
        return curate_from_args(args)
    raise ValueError(f"unknown action {args.action!r}")
