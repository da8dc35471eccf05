"""Pseudo-label teacher precision on the world's unlabeled domains, against their hidden truth.

Applies the pipeline's selection rule (`syntfer.strategies.pseudolabel.select`: argmax label, max p > threshold, the
`per_class` most confident per class; the checkpoint's own calibration temperature) to a checkpoint and prints one
JSON line: per domain the argmax accuracy, the kept count and precision, and the same at the strict threshold. On
the committed run's teacher it gives `03_pseudolabel`'s kept counts and precisions (700 / 700 / 700; 0.701 / 0.763 /
0.863 at K = 100); it compares candidate teachers without a run::

    syntfer world --preset default --out /tmp/wu --domains digiface dcface emonet_face
    python benchmarks/bench_teacher.py --world /tmp/wu --checkpoint outputs/instruments/teacher/checkpoint
    python benchmarks/bench_teacher.py --world /tmp/wu --checkpoint RUN0/best RUN1/best RUN2/best --mirror
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from syntfer.core import labels as L
from syntfer.strategies import pseudolabel as P
from syntfer.instruments.judge import Judge
from syntfer.engine.models import Ensemble, load_checkpoint

DOMAINS = ("digiface", "dcface", "emonet_face")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--world", required=True, type=Path, help="a rendered world holding the unlabeled domains")
    p.add_argument("--checkpoint", required=True, type=Path, nargs="+",
                   help="a checkpoint; several: scored as one `syntfer.engine.models.Ensemble` (mean logits, T = 1)")
    p.add_argument("--mirror", action="store_true", help="average each face with its mirror (Ensemble mirror)")
    p.add_argument("--threshold", type=float, default=0.3)
    p.add_argument("--strict", type=float, default=0.9)
    p.add_argument("--per-class", type=int, default=100, help="K (params.yaml pseudolabel.per_class)")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if len(a.checkpoint) == 1 and not a.mirror:
        judge = Judge.load(a.checkpoint[0], name="teacher")
    else:  # uncalibrated candidates: T = 1 (the pipeline calibrates the ensemble as one)
        judge = Judge(Ensemble.from_members([load_checkpoint(c) for c in a.checkpoint], mirror=a.mirror), 1.0,
                      "teacher")
    out: dict = {"checkpoint": [str(c) for c in a.checkpoint], "mirror": a.mirror, "temperature": judge.temperature}
    for dom in DOMAINS:
        truth = pd.read_csv(a.world / dom / "truth.csv")
        probs = judge.probs([str(a.world / dom / f) for f in truth["path"]])
        y = np.array([L.CLASSES.index(c) for c in truth["expression"]])
        pred, conf = probs.argmax(1), probs.max(1)
        scores = pd.DataFrame(probs, columns=list(P.PROB_COLUMNS)).assign(path=truth["path"].to_numpy())
        chosen = P.select(scores, a.threshold, a.per_class).frame  # the pipeline's own rule
        kept = truth["path"].isin(chosen["path"]).to_numpy()
        strict = conf > a.strict
        out[dom] = {"accuracy": round(float((pred == y).mean()), 3), "kept": int(kept.sum()),
                    "precision": round(float((pred[kept] == y[kept]).mean()), 3), "kept_strict": int(strict.sum()),
                    "precision_strict": round(float((pred[strict] == y[strict]).mean()), 3) if strict.any() else None}
    out["mean_precision"] = round(float(np.mean([out[d]["precision"] for d in DOMAINS])), 3)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
