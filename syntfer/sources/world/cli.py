"""`syntfer world`: render the procedural face world (every stand-in domain) into a folder."""
from __future__ import annotations

import argparse
import json

from syntfer.sources.world.presets import PRESETS
from syntfer.sources.world.writers import DOMAIN_NAMES, REFERENCE_NAMES, render_world


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(PRESETS), default="smoke", help="world size (default: smoke)")
    parser.add_argument("--seed", type=int, default=0, help="world seed (same seed -> byte-identical files)")
    parser.add_argument("--out", required=True, help="output folder; domains go to OUT/<domain>/")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all usable cores)")
    parser.add_argument("--domains", nargs="+", choices=DOMAIN_NAMES + REFERENCE_NAMES, default=None,
                        help="render only these domains (default: all)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    summary = render_world(args.out, preset=args.preset, seed=args.seed, workers=args.workers,
                           domains=args.domains, progress=not args.quiet)
    print(json.dumps({k: v for k, v in summary.items() if k != "domains"}
                     | {"per_domain": {d: s["images"] for d, s in summary["domains"].items()}}))
    return 0
