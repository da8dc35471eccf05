"""The package's one image loader.

A manifest `path` is one of
- an image file;
- a row of a FER2013-style CSV written as ``/path/fer2013.csv#row=N`` (N = 0-based data row, i.e. file
  line N+2): the 48x48 grey pixels of that row become an image without ever being extracted to disk;
- a face box inside a larger image, ``/path/img.jpg#box=x,y,w,h`` (AffectNet's face_x, face_y,
  face_width, face_height): the crop is taken at load time, clipped to the image.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

CSV_ROW = "#row="
BOX = "#box="


class ImageError(OSError):
    """An image that cannot be loaded; the message names the file (and row) and why."""


def split_fragment(path: str | os.PathLike) -> tuple[str, str]:
    """('file', '#row=N' / '#box=x,y,w,h' / '') — the file part and the loader's fragment."""
    s = str(path)
    for marker in (CSV_ROW, BOX):
        if marker in s:
            file, _, rest = s.rpartition(marker)
            return file, marker + rest
    return s, ""


def split_csv_row(path: str) -> tuple[str, int] | None:
    """('file.csv', N) for 'file.csv#row=N', else None."""
    s = str(path)
    if CSV_ROW not in s:
        return None
    file, _, row = s.rpartition(CSV_ROW)
    try:
        return file, int(row)
    except ValueError as e:
        raise ImageError(f"{s}: row fragment {row!r} is not an integer") from e


def csv_row_path(csv_file: str | os.PathLike, row: int) -> str:
    return f"{csv_file}{CSV_ROW}{int(row)}"


def box_path(image_file: str | os.PathLike, x: int, y: int, w: int, h: int) -> str:
    """The manifest path of a face box inside `image_file`."""
    return f"{image_file}{BOX}{int(x)},{int(y)},{int(w)},{int(h)}"


def split_box(path: str) -> tuple[str, tuple[int, int, int, int]] | None:
    """('img.jpg', (x, y, w, h)) for 'img.jpg#box=x,y,w,h', else None."""
    s = str(path)
    if BOX not in s:
        return None
    file, _, box = s.rpartition(BOX)
    parts = box.split(",")
    try:
        x, y, w, h = (int(v) for v in parts)
    except ValueError as e:
        raise ImageError(f"{s}: box fragment {box!r} is not four integers x,y,w,h") from e
    if w <= 0 or h <= 0:
        raise ImageError(f"{s}: box width and height must be positive, got {w}x{h}")
    return file, (x, y, w, h)


@functools.lru_cache(maxsize=4)
def _pixel_table(csv_file: str, mtime_ns: int) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd  # lazy: only FER2013's CSV rows need it; the image loader is a light foundation

    df = pd.read_csv(csv_file, usecols=["pixels"], dtype={"pixels": str}, keep_default_na=False)
    return df["pixels"].to_numpy(), np.zeros(len(df), dtype=bool)


def pixels_to_array(pixels: str, *, where: str) -> np.ndarray:
    """Parse a FER2013 `pixels` string (space-separated 0..255, square) into a uint8 HxW array."""
    tokens = pixels.split()
    try:
        values = np.array(tokens, dtype=np.int64)
    except ValueError as e:
        bad = next((t for t in tokens if not t.lstrip("+-").isdigit()), tokens[0])
        raise ImageError(f"{where}: pixels field is not space-separated integers (found {bad[:20]!r})") from e
    side = int(round(np.sqrt(values.size)))
    if values.size == 0 or side * side != values.size:
        raise ImageError(f"{where}: pixels field has {values.size} values; expected a square count (48x48 = 2304)")
    if values.min() < 0 or values.max() > 255:
        raise ImageError(f"{where}: pixel values outside 0..255 (min {values.min()}, max {values.max()})")
    return values.astype(np.uint8).reshape(side, side)


def load_image(path: str | os.PathLike, mode: str = "RGB") -> Image.Image:
    """Load an image fully (truncated or corrupt files raise ImageError naming the file)."""
    spec = split_csv_row(str(path))
    if spec is not None:
        file, row = spec
        try:
            table, _ = _pixel_table(file, os.stat(file).st_mtime_ns)
        except FileNotFoundError as e:
            raise ImageError(f"{file}: CSV file not found") from e
        except (ValueError, KeyError) as e:
            raise ImageError(f"{file}: cannot read a 'pixels' column ({e})") from e
        if not 0 <= row < len(table):
            raise ImageError(f"{file}: row {row} out of range (file has {len(table)} data rows)")
        arr = pixels_to_array(table[row], where=f"{file} line {row + 2}")
        return Image.fromarray(arr, mode="L").convert(mode)
    box = split_box(str(path))
    p = Path(box[0] if box else path)
    try:
        with Image.open(p) as im:
            im.load()
            im = im.convert(mode)
    except FileNotFoundError as e:
        raise ImageError(f"{p}: image file not found") from e
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ImageError(f"{p}: unreadable or truncated image ({e})") from e
    if box is None:
        return im
    x, y, w, h = box[1]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, im.width), min(y + h, im.height)
    if x1 <= x0 or y1 <= y0:
        raise ImageError(f"{p}: face box {box[1]} lies outside the {im.width}x{im.height} image")
    return im.crop((x0, y0, x1, y1))


def load_array(path: str | os.PathLike, mode: str = "RGB") -> np.ndarray:
    """`load_image` as a uint8 array (HxWxC, or HxW for mode 'L')."""
    return np.asarray(load_image(path, mode))
