"""Classifier recipe search on the world: train one configuration on a labeled stand-in, test it on all three.

Each call trains (`syntfer.engine.training.train`, the `fast` recipe with overrides) on one world domain's training split
and appends one JSON line to ``--results``: seconds, best epoch, accuracy / balanced accuracy on the three test
splits, per-class recall and ECE in-domain, and the validation curve. The default study's recipe came out of runs of
this script (docs/decisions/classifier-recipe.md). Example, the recipe against the head and loss it replaced::

    syntfer world --preset default --out /tmp/w --domains rafdb affectnet fer2013
    for s in 0 1 2; do
      python benchmarks/bench_recipe.py --world /tmp/w --train rafdb --seed $s                         # the default
      python benchmarks/bench_recipe.py --world /tmp/w --train rafdb --seed $s --head avg --smoothing 0.4 --smoothing-weight 2
    done
    python benchmarks/bench_recipe.py --world /tmp/w --train affectnet --balance-method sampler     # vs logit_adjust
    python benchmarks/bench_recipe.py --world /tmp/w --train affectnet --balance-method none        # plain CE
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from syntfer.engine import evaluation as E
from syntfer.instruments.judge import reliability
from syntfer.engine.training import TrainConfig, train

NATIVE = {"rafdb": ("rafdb", "test"), "affectnet": ("affectnet", "val"), "fer2013": ("fer2013", "test")}


def manifests(world: Path, out: Path) -> dict[str, tuple[Path, Path]]:
    """(train, test) manifests of the three labeled domains, written once with `syntfer manifest`."""
    files = {}
    for name, (fmt, test) in NATIVE.items():
        tr, te = out / f"{name}_train.csv", out / f"{name}_test.csv"
        for split, f in (("train", tr), (test, te)):
            if not f.is_file():
                subprocess.run([sys.executable, "-m", "syntfer", "manifest", "--format", fmt, "--root",
                                str(world / name), "--split", split, "--out", str(f)], check=True,
                               capture_output=True)
        files[name] = (tr, te)
    return files


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--world", required=True, type=Path, help="a rendered world (rafdb, affectnet, fer2013)")
    p.add_argument("--train", default="rafdb", choices=sorted(NATIVE))
    p.add_argument("--model", default="cnn_tiny")
    p.add_argument("--size", type=int, default=48)
    p.add_argument("--head", default="flatten", choices=("flatten", "avg"))
    p.add_argument("--epochs", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--smoothing", type=float, default=0.0, help="label smoothing epsilon")
    p.add_argument("--smoothing-weight", type=float, default=0.0, help="weight of the smoothed CE term")
    p.add_argument("--balance-method", default="logit_adjust", choices=("logit_adjust", "sampler", "none"),
                   help="how the AffectNet stand-in is trained for balanced error; none: plain cross-entropy")
    p.add_argument("--affine", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", type=Path, default=None, help="folder for manifests and runs (default: a temp dir)")
    p.add_argument("--results", type=Path, default=Path("recipe_results.jsonl"))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    work = a.work or Path(tempfile.mkdtemp(prefix="recipe-"))
    files = manifests(a.world, work)
    # AffectNet's validation split is balanced; the default study trains it so
    balanced = a.train == "affectnet" and a.balance_method != "none"
    cfg = TrainConfig.from_recipe("fast", model=a.model, model_kwargs={"img_size": a.size, "head": a.head},
                                  epochs=a.epochs, lr=a.lr, label_smoothing=a.smoothing,
                                  smoothing_weight=a.smoothing_weight, balanced=balanced,
                                  balance_method=a.balance_method if balanced else "logit_adjust",
                                  affine=a.affine, seed=a.seed, progress=False)
    name = f"{a.train}_{a.model}{a.size}_{a.head}_e{a.epochs}_ls{a.smoothing}x{a.smoothing_weight}_{a.balance_method}_s{a.seed}"
    t0 = time.perf_counter()
    result = train(cfg, files[a.train][0], work / "runs" / name)
    row = {"name": name, "seconds": round(time.perf_counter() - t0, 1), "best_epoch": result.best_epoch}
    evaluated = E.evaluate(result.model, {t: f[1] for t, f in files.items()}, progress=False)
    for t, (pred, m) in evaluated.items():
        row[f"{t}_acc"], row[f"{t}_bal"] = round(m["accuracy"], 4), round(m["balanced_accuracy"], 4)
        if t == a.train:
            row |= {k: round(v, 3) for k, v in m.items() if k.startswith("recall_")}
            row["ece"] = round(reliability(pred.probs, pred.y_true)[1], 4)
    row["val_balanced_curve"] = [round(v, 3) for v in result.history["val_balanced_acc"]]
    with open(a.results, "a") as fh:
        fh.write(json.dumps(row) + "\n")
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
