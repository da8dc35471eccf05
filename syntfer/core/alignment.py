"""Face alignment: a similarity transform that puts the eyes and the nose tip on a fixed template.

RAF-DB's "aligned" images, FFHQ and the diffusion strategy's training crops are all faces warped so that a
few landmarks land on fixed positions; this module is the one place that does it. The anchors are the two
eye centres and the nose tip — not the mouth corners, which move with the expression (a smile widens them),
so aligning on them would undo part of what a FER model must see.

Landmarks come as 5 points (eye L, eye R, nose tip, mouth L, mouth R: the world's truth files, dlib's 5-point
model, MTCNN) or 68 points (iBUG/dlib/AffectNet order), in pixels of the image they belong to.
`TEMPLATE` is the mean position of those anchors in the world's RAF-DB stand-in (100 px aligned crops),
in units of the crop size, so aligned crops are framed like RAF-DB's.
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

TEMPLATE = np.array([[0.369, 0.468], [0.631, 0.468], [0.500, 0.616]], np.float32)
"""Eye centres and nose tip in units of the aligned crop (measured: mean of world v2 rafdb truth landmarks)."""


class AlignmentError(ValueError):
    """Landmarks that cannot be read or used (wrong count, non-finite, degenerate)."""


def parse_landmarks(text: str) -> np.ndarray:
    """``"x1;y1;x2;y2;..."`` (the world's truth files, AffectNet's `facial_landmarks`) -> (N, 2) float32."""
    try:
        values = np.array([float(v) for v in str(text).split(";") if v.strip() != ""], np.float32)
    except ValueError as e:
        raise AlignmentError(f"landmarks {str(text)[:60]!r}: not a ';'-separated list of numbers") from e
    if len(values) % 2 or len(values) == 0:
        raise AlignmentError(f"landmarks {str(text)[:60]!r}: {len(values)} numbers, expected x;y pairs")
    return values.reshape(-1, 2)


def anchors(points: np.ndarray) -> np.ndarray:
    """The three alignment anchors (eye L, eye R, nose tip) from 5 or 68 landmarks."""
    pts = np.asarray(points, np.float32)
    if pts.shape == (5, 2):
        out = pts[:3]
    elif pts.shape == (68, 2):
        out = np.stack([pts[36:42].mean(0), pts[42:48].mean(0), pts[30]])
    else:
        raise AlignmentError(f"landmarks of shape {pts.shape}: expected 5 or 68 (x, y) points")
    if not np.isfinite(out).all():
        raise AlignmentError("non-finite landmark coordinates")
    if np.linalg.norm(out[1] - out[0]) < 1e-3:
        raise AlignmentError(f"degenerate landmarks: both eyes at {out[0].tolist()}")
    return out


def similarity(points: np.ndarray, size: int) -> np.ndarray:
    """The 2x3 least-squares similarity (rotation, uniform scale, shift) taking the anchors onto the template."""
    src = anchors(points).astype(np.float64)
    dst = TEMPLATE.astype(np.float64) * float(size)
    # closed-form least squares over all anchors (Umeyama 1991, no reflection); deterministic, unlike
    # OpenCV's robust estimators, which fit subsets
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    cov = b.T @ a / len(src)
    u, d, vt = np.linalg.svd(cov)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rot = u @ sign @ vt
    var = (a ** 2).sum() / len(src)
    scale = float(np.trace(np.diag(d) @ sign) / var)
    m = np.hstack([scale * rot, (mu_d - scale * rot @ mu_s)[:, None]])
    return m.astype(np.float32)


def align_face(image: np.ndarray, points: np.ndarray, size: int) -> np.ndarray:
    """An aligned `size`×`size` crop of `image` (H,W[,C] uint8); borders outside the image are reflected."""
    if size < 8:
        raise AlignmentError(f"aligned crop size {size}: expected >= 8")
    m = similarity(points, size)
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(np.ascontiguousarray(image), m, (size, size), flags=interp, borderMode=cv2.BORDER_REFLECT)


def align_faces(images: Sequence[np.ndarray], points: Sequence[np.ndarray], size: int) -> np.ndarray:
    """`align_face` over a list: uint8 (N, size, size, C)."""
    if len(images) != len(points):
        raise AlignmentError(f"{len(images)} images but {len(points)} landmark sets")
    return np.stack([align_face(im, p, size) for im, p in zip(images, points)]) if len(images) else \
        np.zeros((0, size, size, 3), np.uint8)
