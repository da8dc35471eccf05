"""`syntfer models`: list the registered classifiers, or build one and report how a weight file loads into it.

    syntfer models                                   # table: name, input size, parameters
    syntfer models ir50 --pretrained ir50.pth --keep-output-layer
    syntfer models poster --landmark-weights mobilefacenet_model_best.pth.tar --pretrained rafdb_best.pth
"""
from __future__ import annotations

import argparse
import json
import sys

from syntfer.engine.models import create_model, list_models
from syntfer.engine.models.checkpoint import CheckpointError, LoadReport
from syntfer.engine.models.ir import count_used_parameters


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", default=None, help="a registered model; omit to list them all")
    parser.add_argument("--pretrained", default=None, help="weight file to load by name and shape")
    parser.add_argument("--landmark-weights", default=None, help="POSTER: mobilefacenet_model_best.pth.tar")
    parser.add_argument("--ir-weights", default=None, help="POSTER: ir50.pth")
    parser.add_argument("--keep-output-layer", action="store_true",
                        help="ir50/POSTER: keep IR-50's unused output layer (upstream's layout)")
    parser.add_argument("--arch", default=None, help="timm architecture for the 'timm' model")
    parser.add_argument("--num-classes", type=int, default=7)
    parser.add_argument("--show-skipped", action="store_true", help="list every skipped tensor name")


def _describe(name: str, **kw) -> dict:
    model = create_model(name, **kw)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"model": name, "input_size": list(model.cfg.input_size), "parameters": total,
            "trainable": trainable, "used": count_used_parameters(model), "_model": model}


def _print_report(label: str, report: LoadReport, show_skipped: bool) -> None:
    print(f"{label}: {report.summary()}")
    if show_skipped:
        for k in report.skipped:
            print(f"  skipped {k}")
        for k in report.missing:
            print(f"  not loaded {k}")


def run(args: argparse.Namespace) -> int:
    if args.name is None:
        print(f"{'model':24s} {'input':>12s} {'parameters':>12s}")
        for name in list_models():
            if name == "timm":
                print(f"{name:24s} {'(any)':>12s} {'arch=...':>12s}")
                continue
            d = _describe(name)
            print(f"{name:24s} {'x'.join(map(str, d['input_size'])):>12s} {d['parameters']:>12,d}")
        return 0
    kw = {"num_classes": args.num_classes, "pretrained": args.pretrained}
    if args.arch:
        kw["arch"] = args.arch
    if args.name.startswith("poster"):
        kw.update(landmark_weights=args.landmark_weights, ir_weights=args.ir_weights,
                  keep_output_layer=args.keep_output_layer)
    elif args.name in ("ir50", "ir50_gap"):
        kw["keep_output_layer"] = args.keep_output_layer
    try:
        d = _describe(args.name, **kw)
    except (CheckpointError, FileNotFoundError, KeyError, TypeError, ValueError) as e:
        # a KeyError's str() is its key's repr (quoted): print the message itself
        print(f"syntfer models: error: {e.args[0] if isinstance(e, KeyError) and e.args else e}", file=sys.stderr)
        return 1
    model = d.pop("_model")
    print(json.dumps(d))
    reports = getattr(model, "pretrained_report", None)
    if isinstance(reports, LoadReport):
        _print_report("pretrained", reports, args.show_skipped)
    elif isinstance(reports, dict):
        for label, report in reports.items():
            _print_report(label, report, args.show_skipped)
    return 0
