"""Five facial points (eye centres, nose tip, mouth corners) for the inpainting editor's alignment (`inpaint.align`).

The pipeline has a face box for every source face, not landmarks; the inpainter needs the face's five points (a
box-relative template is 3.3 px off on the FFHQ stand-in at 64 px, mean, and 6.6 px on the AffectNet stand-in:
models/landmarks/README.md). The points come from a dlib shape predictor (an ensemble of regression trees, Kazemi &
Sullivan 2014) run inside the face box:

- trained here (`train_predictor`) on the labelled set's own landmark annotations — AffectNet ships 68 points per
  face (the world's AffectNet stand-in writes the 5 that follow from them, in the same column), the same faces the
  editor is trained on; or
- a user's dlib predictor file with 68 parts (e.g. dlib's ``shape_predictor_68_face_landmarks.dat``): the 5 points
  follow from the 68 as from AffectNet's (`five_points`). dlib's own 5-part model marks eye *corners* and no mouth,
  so it is not accepted.

A predictor is only as good as the agreement between the boxes it was trained with and the boxes it is given:
train it on boxes drawn the way the pool's are (the world writes one convention for both; dlib's detector boxes
for real photos need a predictor trained on dlib boxes, as dlib's own are).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from syntfer.core.storage import atomic_path

POINTS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")  # image left/right, as the world writes them


class LandmarkError(ValueError):
    """Landmarks or a predictor that cannot be used; names the file, row or value and what was expected."""


def five_points(cell: str | Sequence[float], where: str = "") -> np.ndarray:
    """(5, 2) points from a landmarks cell: ``x;y`` × 5 (the world's AffectNet stand-in) or × 68 (AffectNet, the
    iBUG 68-point scheme: eye centres = means of points 36–41 and 42–47, nose tip 30, mouth corners 48 and 54)."""
    try:
        v = np.array([float(x) for x in (str(cell).split(";") if isinstance(cell, str) else cell)], np.float64)
    except ValueError:
        raise LandmarkError(f"{where}: landmarks {str(cell)[:60]!r} are not numbers separated by ';'") from None
    if v.size == 10:
        return v.reshape(5, 2)
    if v.size == 136:
        p = v.reshape(68, 2)
        return np.stack([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]])
    raise LandmarkError(f"{where}: {v.size} landmark numbers; expected 10 (5 points) or 136 (68 points)")


def read_affectnet_landmarks(root: str | os.PathLike, split: str = "train") -> pd.DataFrame:
    """An AffectNet-format folder's faces with their annotated landmarks: columns ``path`` (absolute), ``box``
    (x, y, w, h) and ``points`` ((5, 2) array), from ``training.csv`` (split 'train') or ``validation.csv``."""
    root = Path(root)
    name = {"train": "training.csv", "val": "validation.csv", "test": "validation.csv"}.get(split)
    if name is None:
        raise LandmarkError(f"split {split!r}; expected 'train' or 'val'")
    csv = root / name
    if not csv.is_file():
        raise LandmarkError(f"{csv}: missing (an AffectNet folder has training.csv and validation.csv)")
    t = pd.read_csv(csv)
    need = ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "facial_landmarks"]
    missing = [c for c in need if c not in t.columns]
    if missing:
        raise LandmarkError(f"{csv}: lacks column(s) {missing}; has {list(t.columns)}")
    images = root / "Manually_Annotated_Images"
    base = images if images.is_dir() else root
    return pd.DataFrame({
        "path": [str((base / p).resolve()) for p in t["subDirectory_filePath"]],
        "box": [tuple(float(v) for v in b) for b in t[need[1:5]].to_numpy()],
        "points": [five_points(c, f"{csv}, line {i + 2}") for i, c in enumerate(t["facial_landmarks"])]})


def _rect(box: Sequence[float]):
    import dlib

    x, y, w, h = (float(v) for v in box)
    return dlib.rectangle(int(round(x)), int(round(y)), int(round(x + w)) - 1, int(round(y + h)) - 1)


def train_predictor(images: Sequence[np.ndarray], boxes: Sequence[Sequence[float]], points: Sequence[np.ndarray],
                    out: str | os.PathLike, *, trees: int = 200, cascade: int = 10, depth: int = 4,
                    oversampling: int = 10, threads: int = 2, seed: int = 0) -> Path:
    """A dlib shape predictor for the 5 points, trained on RGB uint8 `images` with their face `boxes` and `points`
    ((5, 2) each), written to `out` (atomically). dlib's defaults except the tree count (200 per cascade level,
    500 by default: a file a third the size, a small loss)."""
    import dlib

    if not (len(images) == len(boxes) == len(points)) or not len(images):
        raise LandmarkError(f"train_predictor: {len(images)} images, {len(boxes)} boxes, {len(points)} point sets; "
                            "expected equal, non-zero counts")
    objects = [[dlib.full_object_detection(_rect(b), [dlib.point(int(round(x)), int(round(y))) for x, y in p])]
               for b, p in zip(boxes, points)]
    opt = dlib.shape_predictor_training_options()
    opt.num_trees_per_cascade_level, opt.cascade_depth, opt.tree_depth = trees, cascade, depth
    opt.oversampling_amount, opt.num_threads, opt.random_seed = oversampling, threads, str(seed)
    opt.be_verbose = False
    predictor = dlib.train_shape_predictor([np.ascontiguousarray(im) for im in images], objects, opt)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        predictor.save(str(tmp))
    return out


class LandmarkPredictor:
    """A dlib shape predictor file (5 parts as `train_predictor` writes, or 68) → (5, 2) points inside a face box."""

    def __init__(self, path: str | os.PathLike) -> None:
        import dlib

        self.path = Path(path)
        if not self.path.is_file():
            raise LandmarkError(f"{self.path}: landmark predictor not found (a dlib shape predictor .dat file)")
        try:
            self.predictor = dlib.shape_predictor(str(self.path))
        except RuntimeError as e:
            raise LandmarkError(f"{self.path}: not a dlib shape predictor ({e})") from None

    def __call__(self, image: np.ndarray, box: Sequence[float]) -> np.ndarray:
        s = self.predictor(np.ascontiguousarray(image), _rect(box))
        if s.num_parts not in (5, 68):
            raise LandmarkError(f"{self.path}: a predictor with {s.num_parts} parts; expected 5 (eye centres, nose "
                                "tip, mouth corners) or 68 (iBUG)")
        return five_points([c for i in range(s.num_parts) for c in (s.part(i).x, s.part(i).y)], str(self.path))


def errors(pred: np.ndarray, true: np.ndarray) -> pd.DataFrame:
    """Per face (N, 5, 2 each): the mean point error over the inter-ocular distance (``nme``, the field's
    normalised mean error) and in the 64-px template's pixels (``px64``: the same error at the inpainter's scale,
    whose eyes are 23 px apart)."""
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    iod = np.linalg.norm(true[:, 1] - true[:, 0], axis=1)
    err = np.linalg.norm(pred - true, axis=2).mean(1)
    return pd.DataFrame({"nme": err / iod, "px64": err / iod * 23.0})
