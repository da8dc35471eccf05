"""Figures in notebooks: save once, show what was saved.

`plt.show()` under Jupyter's inline backend renders a figure a second time (its own PNG, bbox 'tight') after
the notebook has already saved it; for annotated heatmaps and facet grids that second render is most of the
cell's time. `show` writes the PNG (atomically, folders created) and displays those same bytes, then closes
the figure, so each figure is rendered once and the notebook shows exactly the file DVC tracks. `Figures` is a
notebook's figure folder: ``figs.show(fig, "name")`` saves ``<folder>/name.png`` at the notebook's resolution and
remembers what it wrote.
"""
from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib.pyplot as plt

from syntfer.core.storage import write_bytes


def figure_png(fig, *, dpi: int = 110, tight: bool = True) -> bytes:
    """`fig` rendered as PNG bytes (a seaborn FacetGrid/JointGrid is accepted for its figure)."""
    fig = getattr(fig, "figure", fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    return buf.getvalue()


def show(fig, path: str | os.PathLike | None = None, *, dpi: int = 110, tight: bool = True) -> None:
    """Render `fig` once: save it as a PNG at `path` (when given), display it (in IPython), close it.

    Returns None, like ``plt.show()``: notebooks end figure cells with this call, and a returned value would be
    displayed after the figure as its repr (the PNG's bytes, tens of kB of text per figure in every executed
    notebook and HTML page). The bytes are `figure_png`'s, or the file's at `path`."""
    fig = getattr(fig, "figure", fig)
    data = figure_png(fig, dpi=dpi, tight=tight)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_bytes(path, data)
    plt.close(fig)
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:  # plain Python: saving is all there is to do
        return
    if get_ipython() is not None:
        display(Image(data=data, format="png"))


class Figures:
    """A notebook's figure folder: ``figs = Figures(out / "figures", dpi=120)``, then ``figs.show(fig, "name")``.

    Every figure of a notebook is saved as ``<folder>/<name>.png`` with the same `dpi` and shown once (`show`);
    `written` lists the files saved, in order, each once (a cell run twice in Jupyter saves its figure again
    under the same name). The folder is created."""

    def __init__(self, folder: str | os.PathLike, *, dpi: int = 110, tight: bool = True) -> None:
        self.folder = Path(folder)
        self.dpi, self.tight = dpi, tight
        self.written: list[Path] = []
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        """``<folder>/<name>.png``; `name` is a bare file stem (no folder, no suffix)."""
        if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name:
            raise ValueError(f"figure name {name!r}: expected a bare file name such as 'distances' "
                             f"(saved as {self.folder}/<name>.png)")
        if name.lower().endswith(".png"):
            raise ValueError(f"figure name {name!r}: give it without '.png' (the suffix is added)")
        return self.folder / f"{name}.png"

    def show(self, fig, name: str) -> None:
        """Save `fig` (a figure or a seaborn grid) as ``<folder>/<name>.png``, display it, close it; returns None."""
        path = self.path(name)
        show(fig, path, dpi=self.dpi, tight=self.tight)
        if path not in self.written:
            self.written.append(path)


@contextmanager
def only(ax) -> Iterator:
    """Hide the other axes of `ax`'s figure for the duration of the block.

    `seaborn.heatmap` draws the whole figure to check whether tick labels overlap; filling n panels one after
    another therefore renders 1 + 2 + ... + n panels (12 annotated confusion matrices: 11 s instead of 1.5 s).
    Wrapping each call in ``with plots.only(ax):`` keeps that check to its own panel; the result is the same."""
    others = [a for a in ax.figure.axes if a is not ax and a.get_visible()]
    for a in others:
        a.set_visible(False)
    try:
        yield ax
    finally:
        for a in others:
            a.set_visible(True)
