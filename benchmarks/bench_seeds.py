"""The training grid's cost per training set: the seeds of one set, trained as the train stage trains them.

Trains ``--seeds`` seeds of the default recipe (params.yaml ``train``: cnn_tiny 48 px, flatten head) one after
another in one process (decoded images shared), on one world domain's training split, once per memory format
given, and prints one JSON line each: wall seconds for all seeds, seconds per epoch of one seed, and each seed's
best validation score (so a faster setting that learns differently shows). Example (docs/decisions/runtime.md; 2 idle cores,
53.5 s contiguous vs 43.3 s channels_last at 12 epochs)::

    syntfer world --preset default --out /tmp/w --domains rafdb affectnet fer2013
    python benchmarks/bench_seeds.py --world /tmp/w --epochs 12 --formats contiguous channels_last
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_recipe import manifests  # noqa: E402

from syntfer.engine.data import DecodedImages  # noqa: E402
from syntfer.engine.training import TrainConfig, train  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--world", required=True, type=Path, help="a rendered world (rafdb, affectnet, fer2013)")
    p.add_argument("--train", default="rafdb", choices=("rafdb", "affectnet", "fer2013"))
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--formats", nargs="+", default=["contiguous", "channels_last"],
                   choices=("contiguous", "channels_last"))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as tmp:
        train_csv = manifests(a.world, Path(tmp))[a.train][0]
        for fmt in a.formats:
            cfgs = [TrainConfig.from_recipe("fast", model="cnn_tiny", model_kwargs={"img_size": 48, "head": "flatten"},
                                            epochs=a.epochs, lr=2e-3, weight_decay=0.05, label_smoothing=0.0,
                                            smoothing_weight=0.0, seed=s, cache_images=True, progress=False,
                                            channels_last="yes" if fmt == "channels_last" else "no")
                    for s in range(a.seeds)]
            images = DecodedImages()
            t0 = time.perf_counter()
            results = [train(c, train_csv, Path(tmp) / fmt / f"s{c.seed}", image_cache=images) for c in cfgs]
            wall = time.perf_counter() - t0
            print(json.dumps({"format": fmt, "train": a.train, "seeds": a.seeds, "epochs": a.epochs,
                              "wall_s": round(wall, 1), "s_per_seed_epoch": round(wall / a.seeds / a.epochs, 2),
                              "best_val_score": [round(r.best_score, 3) for r in results]}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
