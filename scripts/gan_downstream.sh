#!/usr/bin/env bash
# What a classifier trained on an editor's edits reads (issue #30's last criterion), against the same number of
# truth-labelled faces of the sources' look. Run in a checkout whose pipeline has run (`make repro`: outputs/world,
# outputs/oracles, outputs/tests), with the project's environment active:
#
#   [PER_CLASS=300] [SEEDS="0 1 2"] scripts/gan_downstream.sh OUT EDITOR|MANIFEST.csv [...]
#
# OUT        a scratch folder: OUT/sets/<editor name> (the edits and their manifest), OUT/train/<name>/s<seed>,
#            OUT/summary.csv (one row per editor and test set), OUT/recall.csv
# EDITOR     editor folders (models/gan/world_flow48, ...), each edited with the pipeline's intensity (interpolate,
#            γ 0.5), F control, full-resolution path, on the same (face, class) pairs
# MANIFEST   a training manifest made some other way (scripts/gan_probes.py: a selection or a transplant), trained
#            as it is under the name of its file (A.csv: A) or, for a manifest.csv, of its folder
# PER_CLASS  a seeded class-balanced draw of (face, class) pairs from recipe 70 (every FFHQ-stand-in face x 7)
# SEEDS      training seeds
#
# Both sets are trained with the pipeline's recipe (params.yaml `train:`: cnn_tiny, 24 epochs, ...) and tested on
# the RAF-DB stand-in (balanced accuracy) and on the held-out real FFHQ-look faces (ref_ffhq test split). The oracle
# is outputs/oracles/oracle_ffhq/pool.csv, the whole ref_ffhq training split (300 per class): at another PER_CLASS it
# is drawn to PER_CLASS per class with the same seed. Each (set, seed) is skipped when its evaluation exists, so an
# interrupted run continues. One thread per process (OMP_NUM_THREADS, default 1).
set -euo pipefail
out=${1:?output folder}; shift; [ $# -ge 1 ] || { echo "usage: scripts/gan_downstream.sh OUT EDITOR|MANIFEST.csv [...]" >&2; exit 2; }
per_class=${PER_CLASS:-300}; seeds=${SEEDS:-0 1 2}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${OMP_NUM_THREADS:-1}
for f in outputs/world/ffhq/boxes.csv outputs/world/ffhq/truth.csv outputs/world/ref_ffhq/truth.csv \
         outputs/oracles/oracle_ffhq/pool.csv outputs/tests/rafdb.csv; do
  [ -f "$f" ] || { echo "scripts/gan_downstream.sh: $f not found (run the pipeline first: make repro)" >&2; exit 2; }
done
mkdir -p "$out"
names=(); manifests=()
for editor in "$@"; do
  name=$(basename "$editor"); manifest="$out/sets/$name/manifest.csv"
  if [[ "$editor" == *.csv ]]; then
    [ -f "$editor" ] || { echo "scripts/gan_downstream.sh: $editor not found" >&2; exit 2; }
    name=${name%.csv}; [ "$name" != manifest ] || name=$(basename "$(dirname "$editor")"); manifest=$editor
  fi
  for n in oracle_ffhq "${names[@]}"; do
    [ "$n" != "$name" ] || { echo "scripts/gan_downstream.sh: two sets would be named $name ($editor)" >&2; exit 2; }
  done
  names+=("$name"); manifests+=("$manifest")
  [[ "$editor" == *.csv ]] && continue
  [ -f "$manifest" ] || syntfer gan edit --editor "$editor" --intensity interpolate \
    --intensity-gamma 0.5 --boxes outputs/world/ffhq/boxes.csv --truth outputs/world/ffhq/truth.csv --recipe 70 \
    --draw-per-class "$per_class" --variant F --restorer none --seed 0 --out "$out/sets/$name"
done
python - "$out" "$per_class" <<'EOF'
import os
import sys
import pandas as pd
from syntfer.core.manifest import read_manifest, write_manifest
out, n = sys.argv[1], int(sys.argv[2])
pool = read_manifest("outputs/oracles/oracle_ffhq/pool.csv")  # paths made absolute by the reader
short = {c: k for c, k in pool["label"].value_counts().items() if k < n}
if short:
    raise SystemExit(f"outputs/oracles/oracle_ffhq/pool.csv: fewer than {n} faces for {short}")
if (pool["label"].value_counts() > n).any():  # the same seeded draw per class
    pool = pool.groupby("label").sample(n, random_state=0).sort_index()
write_manifest(pool.reset_index(drop=True), f"{out}/oracle.csv")
truth = pd.read_csv("outputs/world/ref_ffhq/truth.csv")
test = truth[truth["split"] == "test"]
write_manifest(pd.DataFrame({"path": [os.path.abspath(f"outputs/world/ref_ffhq/{p}") for p in test["path"]],
                             "label": test["expression"]}),
               f"{out}/ref_ffhq_test.csv")
EOF
train() {  # name manifest seed
  local d="$out/train/$1/s$3"
  [ -f "$d/eval/cross_dataset.csv" ] && return 0
  syntfer train --train "$2" --out "$d/train" --recipe fast --model cnn_tiny \
    --model-kwargs '{"cnn_tiny": {"img_size": 48, "head": "flatten"}}' --epochs 24 --batch-size 64 --lr 0.002 \
    --weight-decay 0.05 --optimizer adamw --scheduler cosine --label-smoothing 0 --smoothing-weight 0 \
    --val-fraction 0.1 --seed "$3" --num-workers 0 --eval-batch-size 256 --cache-images --no-progress
  local ck="$d/train/best"; [ -d "$ck" ] || ck="$d/train"
  syntfer evaluate --checkpoint "$ck" --test rafdb=outputs/tests/rafdb.csv --test ref_ffhq=$out/ref_ffhq_test.csv \
    --out "$d/eval" --train-set "$1" --seed "$3" --batch-size 256 --num-workers 0
}
for s in $seeds; do
  train oracle_ffhq "$out/oracle.csv" "$s"
  for i in "${!names[@]}"; do train "${names[$i]}" "${manifests[$i]}" "$s"; done
done
python - "$out" "${names[@]}" <<'EOF'
import glob, sys
import numpy as np
import pandas as pd
from scipy import stats
out, names = sys.argv[1], sys.argv[2:]
d = pd.concat(pd.read_csv(f) for f in sorted(glob.glob(f"{out}/train/*/s*/eval/cross_dataset.csv")))
ba = d[d["metric"] == "balanced_accuracy"].pivot_table(index=["test_set", "train_set"], columns="seed", values="value")
rows = []
for test, name in [(t, n) for t in ba.index.get_level_values(0).unique() for n in names]:
    o, e = ba.loc[(test, "oracle_ffhq")], ba.loc[(test, name)]
    r = (e / o).dropna()
    half = stats.t.ppf(0.975, len(r) - 1) * r.std(ddof=1) / np.sqrt(len(r)) if len(r) > 1 else float("nan")
    rows.append({"test_set": test, "editor": name, "seeds": len(r), "edits_mean": e.mean(), "edits_sd": e.std(ddof=1),
                 "oracle_mean": o.mean(), "oracle_sd": o.std(ddof=1), "ratio_mean": r.mean(),
                 "ratio_lo": r.mean() - half, "ratio_hi": r.mean() + half})
s = pd.DataFrame(rows)
s.to_csv(f"{out}/summary.csv", index=False)
rec = d[d["metric"].str.startswith("recall_")].groupby(["test_set", "train_set", "metric"])["value"].mean().unstack()
rec.to_csv(f"{out}/recall.csv")
print(s.round(3).to_string(index=False))
print(rec.round(2).to_string())
EOF
