"""Tables in notebooks: read an input table that must be there, write a CSV output, show a captioned table.

A notebook reads tables other stages wrote and writes its own. Reading fails loudly: a missing file raises
FileNotFoundError naming the path and what it should have held, a file without the expected columns raises
`TableError` naming the file, the missing columns and the ones it has. Writing is atomic (`syntfer.core.storage`), so
a failed cell never leaves half a CSV behind for DVC to track.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from syntfer.core.storage import write_text


class TableError(ValueError):
    """A table that lacks the columns its reader needs, or cannot be parsed as CSV."""


def require_file(path: str | os.PathLike, what: str) -> Path:
    """`path` as a Path when it is a file; else FileNotFoundError ``<path>: <what> not found``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} not found")
    return path


def require_columns(frame: pd.DataFrame, columns: Iterable[str], source: str | os.PathLike) -> pd.DataFrame:
    """`frame` itself when it has every one of `columns`; else TableError naming `source` and what is missing."""
    missing = sorted(set(columns) - set(frame.columns))
    if missing:
        raise TableError(f"{source}: lacks column(s) {missing}; has {list(frame.columns)}")
    return frame


def read_table(path: str | os.PathLike, columns: Iterable[str] = (), *, what: str = "table",
               **read_csv_kwargs) -> pd.DataFrame:
    """The CSV at `path` (``pandas.read_csv`` with `read_csv_kwargs`), checked to have `columns`.

    A missing file is a FileNotFoundError ``<path>: <what> not found``; an empty file or missing columns are a
    TableError naming the file."""
    path = require_file(path, what)
    try:
        frame = pd.read_csv(path, **read_csv_kwargs)
    except pd.errors.EmptyDataError as e:
        raise TableError(f"{path}: empty file; expected a CSV {what} with a header row") from e
    return require_columns(frame, columns, path)


def write_csv(frame: pd.DataFrame, path: str | os.PathLike, *, index: bool = False) -> Path:
    """Write `frame` as CSV at `path`, atomically, folders created (UTF-8, '\\n' line ends); returns the path."""
    path = Path(path)
    write_text(path, frame.to_csv(index=index))
    return path


def styled(frame: pd.DataFrame, caption: str, *, precision: int = 4):
    """`frame` as a pandas Styler with `caption` above it and floats shown with `precision` decimals."""
    return frame.style.set_caption(caption).format(precision=precision)


def show(frame: pd.DataFrame, caption: str, *, precision: int = 4) -> None:
    """Display `styled(frame, caption)` in IPython (outside IPython: nothing); returns None, like `plots.show`."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return
    if get_ipython() is not None:
        display(styled(frame, caption, precision=precision))
