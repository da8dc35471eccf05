"""The committed run, readable without running anything: its executed notebooks copied into ``reports/``.

``syntfer publish --nb-dir outputs/nb --out reports`` takes the executed narrative notebooks a run left under
``outputs/nb/<stage>/<name>.ipynb`` (00, 01, 03–08; a fan-out stage such as 03's pseudo-label sources, each member as
``<stage>-<member>.ipynb``) and, for the training grid (02, one executed copy per training set
under ``outputs/nb/02_baseline/<set>/``), one member (``--grid-example``) with the whole grid's numbers as a table
(from ``--metrics``). Each copy:

- keeps its markdown, code and outputs, with every embedded figure re-encoded at display size (at most
  ``--max-width`` px wide; PNG with a reduced palette or JPEG, whichever is smaller; see `shrink_image`);
- loses what only a live kernel needs: widget state and widget views (their text fallback stays), and the
  source's jupytext pairing, so that JupyterLab and any notebook viewer open it;
- opens with a stamp cell: the run's date, the machine and the commit of the code that ran (`Stamp`).

Then ``reports/README.md`` indexes them, and the whole folder must fit ``--budget-mb`` (5 MB): over it, the command
fails naming the largest files. ``--figure NAME=PATH`` copies a figure file (e.g. the headline comparison) to
``reports/figures/NAME.png`` under the same rules. The output is a function of the notebooks, the stamp and the
options: no timestamp of its own, so publishing the same run twice writes the same bytes.
"""
from __future__ import annotations

import argparse
import base64
import io
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from syntfer.core.storage import write_text

BUDGET_MB = 5.0
MAX_WIDTH = 900
GRID_STAGE = "02_baseline"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class PublishError(RuntimeError):
    """A run that cannot be published as asked (no notebooks, over the size budget, a bad option)."""


# ---- the stamp -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stamp:
    """When, where and from which code the published run was executed."""
    date: str
    machine: str
    commit: str

    def markdown(self, source: str) -> str:
        return (f"> **Executed copy of the committed run** — run {self.date}, on {self.machine}, code at commit "
                f"`{self.commit}`. Source: `{source}`; written by `syntfer publish` from the stage's executed notebook "
                "(figures at display size). Regenerated with each committed run, never edited by hand.")


def _git(root: Path, *args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return ""
    return out.stdout.strip()


def machine_description() -> str:
    """'<OS> <arch>, <CPU model>, <n> CPUs' (no host name, no user)."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    parts = [f"{platform.system()} {platform.machine()}", cpu, f"{os.cpu_count()} CPUs"]
    return ", ".join(p for p in parts if p)


def current_stamp(root: str | Path = ".", date: str | None = None, machine: str | None = None,
                  commit: str | None = None) -> Stamp:
    """The stamp of a run executed here: commit = HEAD; date = `date`, else ``SOURCE_DATE_EPOCH``, else HEAD's
    commit date (so that two publications of one commit on one machine are the same bytes); machine = this one."""
    root = Path(root)
    if not date:  # None or "" (a DVC stage passes an empty parameter)
        epoch = os.environ.get("SOURCE_DATE_EPOCH")
        if epoch:
            date = datetime.fromtimestamp(int(epoch), tz=timezone.utc).strftime("%Y-%m-%d")
        else:
            date = _git(root, "log", "-1", "--format=%cs") or "unknown date"
    return Stamp(date=date, machine=machine or machine_description(),
                 commit=commit or _git(root, "rev-parse", "--short=12", "HEAD") or "unknown")


# ---- figures -------------------------------------------------------------------------------------------------
def shrink_image(data: bytes, max_width: int = MAX_WIDTH, jpeg_quality: int = 82) -> tuple[str, bytes]:
    """(mime type, bytes) of an image at display size: at most `max_width` px wide, then the smallest of a
    256-colour PNG and a JPEG (images with transparency stay PNG). Never larger than the input unless resized."""
    from PIL import Image  # lazy: only publishing needs it

    img = Image.open(io.BytesIO(data))
    img.load()
    if img.width > max_width:
        img = img.resize((max_width, max(1, round(img.height * max_width / img.width))), Image.LANCZOS)
        resized = True
    else:
        resized = False
    has_alpha = img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info)
    candidates: list[tuple[str, bytes]] = []
    if not resized:
        candidates.append(("image/png", data))
    buf = io.BytesIO()
    rgb = img.convert("RGBA" if has_alpha else "RGB")
    rgb.quantize(colors=256, method=Image.Quantize.FASTOCTREE if has_alpha else Image.Quantize.MEDIANCUT).save(
        buf, format="PNG", optimize=True)
    candidates.append(("image/png", buf.getvalue()))
    if not has_alpha:
        buf = io.BytesIO()
        rgb.save(buf, format="JPEG", quality=jpeg_quality, optimize=True, progressive=True)
        candidates.append(("image/jpeg", buf.getvalue()))
    return min(candidates, key=lambda c: len(c[1]))


def _shrink_outputs(nb, max_width: int) -> None:
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data")
            if not data:
                continue
            data.pop(WIDGET_VIEW, None)  # a live widget; its text/plain fallback stays
            if "image/png" in data:
                raw = base64.b64decode(data["image/png"])
                mime, small = shrink_image(raw, max_width)
                del data["image/png"]
                data[mime] = base64.b64encode(small).decode("ascii")
                out.setdefault("metadata", {}).pop("image/png", None)


# ---- notebooks -----------------------------------------------------------------------------------------------
def title_of(nb) -> str:
    """The notebook's first markdown heading (without '#')."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return ""


def question_of(nb) -> str:
    """The first sentence after '**Question.**' in the header cell, or ''."""
    for cell in nb.cells[:3]:
        if cell.cell_type == "markdown" and "**Question.**" in cell.source:
            text = " ".join(cell.source.split("**Question.**", 1)[1].split())
            m = re.match(r"(.+?[.?])(\s|$)", text)
            return (m.group(1) if m else text)[:300]
    return ""


def prepare(nb, stamp: Stamp, source: str, max_width: int = MAX_WIDTH, extra_md: str = "") -> Any:
    """The published form of an executed notebook (in place; returned)."""
    import nbformat  # lazy: the Jupyter stack

    from syntfer.tools.notebook import unpair

    unpair(nb)
    nb.metadata.pop("widgets", None)
    _shrink_outputs(nb, max_width)
    cells = [nbformat.v4.new_markdown_cell(stamp.markdown(source))]
    if extra_md:
        cells.append(nbformat.v4.new_markdown_cell(extra_md))
    nb.cells = cells + list(nb.cells)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:03d}"
    return nb


def grid_table(metrics_path: Path | None) -> str:
    """Markdown: every training set of the grid, accuracy ± sd per test set, from the summary metrics file."""
    if metrics_path is None or not metrics_path.is_file():
        return ""
    from syntfer.study.docs_numbers import BLOCKS, Numbers

    n = Numbers.load(".", {"metrics": str(metrics_path.resolve())})
    return ("**The whole training grid** (this notebook is one member; each training set has its own executed copy "
            f"under `outputs/nb/{GRID_STAGE}/<set>/`), mean ± sd over seeds, from `{metrics_path.as_posix()}`:\n\n"
            + BLOCKS["training"](n))


@dataclass
class Published:
    path: Path
    title: str
    question: str
    source: str
    size: int


def _source_of(nb, fallback: str) -> str:
    return str(nb.metadata.get("papermill", {}).get("input_path") or fallback)


def find_notebooks(nb_dir: Path, grid_example: str) -> list[tuple[str, Path]]:
    """(published name, executed .ipynb) in stage order: a stage's ``<stage>/<stage>.ipynb``; a fan-out stage's
    members ``<stage>/<member>/<stage>.ipynb`` each as ``<stage>-<member>`` (e.g. one per pseudo-label source),
    except the training grid, shown by one member (`grid_example`, else the first)."""
    found: list[tuple[str, Path]] = []
    for stage in sorted(p for p in nb_dir.iterdir() if p.is_dir()):
        own = stage / f"{stage.name}.ipynb"
        members = sorted(stage.glob(f"*/{stage.name}.ipynb"))
        if stage.name == GRID_STAGE:
            example = stage / grid_example / f"{GRID_STAGE}.ipynb"
            pick = example if example.is_file() else (members[0] if members else None)
            if pick is not None:
                found.append((GRID_STAGE, pick))
        elif own.is_file():
            found.append((stage.name, own))
        else:
            found += [(f"{stage.name}-{m.parent.name}", m) for m in members]
    return found


def publish(nb_dir: str | Path, out: str | Path, *, stamp: Stamp, metrics: str | Path | None = None,
            figures: Sequence[tuple[str, Path]] = (), grid_example: str = "real_rafdb", max_width: int = MAX_WIDTH,
            budget_mb: float = BUDGET_MB) -> list[Published]:
    """Write the published notebooks, figures and index under `out` (replacing what was there)."""
    import nbformat

    nb_dir, out = Path(nb_dir), Path(out)
    if not nb_dir.is_dir():
        raise PublishError(f"{nb_dir}: no such folder (run the pipeline first: make repro)")
    found = find_notebooks(nb_dir, grid_example)
    if not found:
        raise PublishError(f"{nb_dir}: no executed notebooks (<stage>/<stage>.ipynb) found")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    published = []
    for name, path in found:
        nb = nbformat.read(path, as_version=4)
        source = _source_of(nb, f"notebooks/{name.split('-')[0]}.py")
        extra = grid_table(Path(metrics) if metrics else None) if name == GRID_STAGE else ""
        prepare(nb, stamp, source, max_width, extra)
        dest = out / f"{name}.ipynb"
        write_text(dest, nbformat.writes(nb) + "\n")
        published.append(Published(dest, title_of(nb), question_of(nb), source, dest.stat().st_size))
    for fig_name, fig_path in figures:
        if not Path(fig_path).is_file():
            raise PublishError(f"--figure {fig_name}={fig_path}: no such file")
        mime, data = shrink_image(Path(fig_path).read_bytes(), max_width)
        dest = out / "figures" / f"{fig_name}.{'png' if mime == 'image/png' else 'jpg'}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    write_text(out / "README.md", index(published, stamp, [f for f, _ in figures], out))
    enforce_budget(out, budget_mb)
    return published


def index(published: Sequence[Published], stamp: Stamp, figures: Sequence[str], out: Path) -> str:
    lines = ["# The committed run, executed", "",
             f"Run {stamp.date}, on {stamp.machine}, code at commit `{stamp.commit}`. Every notebook below is the "
             "executed copy a DVC stage wrote under `outputs/nb/`, with its figures at display size; it opens on "
             "any git host and in JupyterLab. These files are written by `syntfer publish` with each committed run "
             "(never by hand); the numbers are world numbers (procedural stand-ins, never RAF-DB/AffectNet/FER2013 "
             "results).", "",
             "| notebook | question | source | size |", "|---|---|---|---:|"]
    for p in published:
        lines.append(f"| [{p.title or p.path.stem}]({p.path.name}) | {p.question.replace('|', '/')} | "
                     f"`{p.source}` | {p.size / 1e6:.2f} MB |")
    for f in figures:
        match = sorted((out / "figures").glob(f"{f}.*"))
        if match:
            lines += ["", f"![{f}](figures/{match[0].name})"]
    return "\n".join(lines) + "\n"


def enforce_budget(out: Path, budget_mb: float) -> int:
    files = sorted((p for p in out.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size, reverse=True)
    total = sum(p.stat().st_size for p in files)
    if total > budget_mb * 1e6:
        largest = ", ".join(f"{p.relative_to(out)} ({p.stat().st_size / 1e6:.2f} MB)" for p in files[:5])
        raise PublishError(f"{out}: {total / 1e6:.2f} MB is over the budget of {budget_mb:g} MB; largest: {largest} "
                           "(lower --max-width, or show fewer or smaller figures in those notebooks)")
    return total


# ---- command line --------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nb-dir", type=Path, default=Path("outputs/nb"), help="the run's executed notebooks")
    parser.add_argument("--out", type=Path, default=Path("reports"))
    parser.add_argument("--metrics", type=Path, default=Path("outputs/results/summary/metrics.json"),
                        help="summary metrics: the training grid's table in the published 02 notebook")
    parser.add_argument("--figure", action="append", default=[], metavar="NAME=PATH",
                        help="copy an image to <out>/figures/NAME.png|jpg (display size)")
    parser.add_argument("--grid-example", default="real_rafdb", help="the training set whose 02 notebook is shown")
    parser.add_argument("--max-width", type=int, default=MAX_WIDTH)
    parser.add_argument("--budget-mb", type=float, default=BUDGET_MB)
    parser.add_argument("--date", help="run date (default: SOURCE_DATE_EPOCH, else HEAD's commit date)")
    parser.add_argument("--machine", help="machine description (default: this machine's OS, CPU and CPU count)")
    parser.add_argument("--commit", help="commit of the code that ran (default: HEAD)")


def run(args: argparse.Namespace) -> int:
    try:
        figures = []
        for spec in args.figure:
            name, sep, path = spec.partition("=")
            if not sep or not re.fullmatch(r"[A-Za-z0-9_-]+", name):
                raise PublishError(f"--figure {spec!r}: expected NAME=PATH with NAME of letters, digits, _ or -")
            figures.append((name, Path(path)))
        stamp = current_stamp(".", args.date, args.machine, args.commit)
        done = publish(args.nb_dir, args.out, stamp=stamp, metrics=args.metrics, figures=figures,
                       grid_example=args.grid_example, max_width=args.max_width, budget_mb=args.budget_mb)
    except PublishError as e:
        print(f"syntfer publish: error: {e}", file=sys.stderr)
        return 1
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"published {len(done)} notebooks to {args.out} ({total / 1e6:.2f} MB of {args.budget_mb:g} MB)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m syntfer.study.publish", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
