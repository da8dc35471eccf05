"""scripts/gan_inpaint.py: training and editing with the inner-face inpainter of issue #30 — training resumes from its state,
an edit changes the source only inside the (warped-back) inner-face mask, and bad rows are named."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from syntfer.core import labels as L
from syntfer.strategies.gan.inpaint import TEMPLATE, InpaintError, condition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
_spec = importlib.util.spec_from_file_location("gan_inpaint", ROOT / "scripts" / "gan_inpaint.py")
I = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(I)


def _world(tmp_path: Path, n: int = 14) -> Path:
    """n noisy 96-px faces (2 per class) with their 5 landmarks: the template scaled 1.2 and shifted."""
    rng = np.random.default_rng(0)
    lm = TEMPLATE * 1.2 + 8
    rows = []
    for i in range(n):
        Image.fromarray((rng.random((96, 96, 3)) * 255).astype(np.uint8)).save(tmp_path / f"{i}.png")
        rows.append({"path": f"{i}.png", "split": "train", "expression": L.CLASSES[i % L.NUM_CLASSES],
                     "landmarks": ";".join(f"{v:.2f}" for v in lm.ravel())})
    rows.append({"path": "0.png", "split": "validation", "expression": "contempt", "landmarks": rows[0]["landmarks"]})
    pd.DataFrame(rows).to_csv(tmp_path / "truth.csv", index=False)
    return tmp_path / "truth.csv"


def test_training_resumes_and_an_edit_changes_only_the_inner_face(tmp_path):
    truth = _world(tmp_path)
    assert I.train(str(truth), tmp_path / "m", steps=2, batch=4, threads=1, channels=8) == 2
    assert I.train(str(truth), tmp_path / "m", steps=3, batch=4, threads=1, channels=8) == 3  # continues
    assert I.train(str(truth), tmp_path / "c", steps=1, batch=4, cls=1.0, threads=1, channels=8) == 1  # + class head
    # the deeper critic, its head warmed up first, half of each batch drawn for another class
    assert I.train(str(truth), tmp_path / "d", steps=2, batch=4, cls=1.0, threads=1, channels=8, critic_depth=4,
                   warmup=3, retarget=0.5) == 2
    assert (tmp_path / "d" / "warmup.csv").is_file() and I.load_torch(tmp_path / "d" / "state.pt", "t")["warm"] == 3
    with pytest.raises(I.P.ProbeError, match=r"critic depth 4, mask .*; asked for 8, 3, "):
        I.train(str(truth), tmp_path / "d", steps=3, batch=4, threads=1, channels=8)
    with pytest.raises(I.P.ProbeError, match=r"mask \(1.0, 1.0, 1.0, 0.35\); asked for 8, 4, \(1.3, 1.0, 1.0, 0.25\)"):
        I.train(str(truth), tmp_path / "d", steps=3, batch=4, threads=1, channels=8, critic_depth=4,
                mask=(1.3, 1.0, 1.0, 0.25))
    I.export(tmp_path / "d", tmp_path / "x")  # fp16 generator, read back as the trained one up to fp16 rounding
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    mask = torch.from_numpy(I.inner_mask())[None, None]
    with torch.no_grad():
        a, b = I.load_inpainter(tmp_path / "d").g(x, mask, condition("fear")), I.load_inpainter(tmp_path / "x").g(
            x, mask, condition("fear"))
    assert torch.allclose(a, b, atol=2e-2) and not (tmp_path / "x" / "state.pt").exists()
    assert I.load_inpainter(tmp_path / "x").cfg.critic_depth == 4  # editor.json beside the weights
    with pytest.raises(I.P.ProbeError, match="no state.pt"):
        I.export(tmp_path / "x", tmp_path / "y")
    g = I.load_inpainter(tmp_path / "m")
    with pytest.raises(InpaintError, match="editor.json: missing"):
        I.load_inpainter(tmp_path)
    src = str((tmp_path / "1.png").resolve())
    m = pd.DataFrame({"label": ["happy", "sad"], "source_path": [src, src]})
    man = I.edit(g, m, I.P.read_truth(truth), tmp_path / "e")
    assert man["label"].tolist() == ["happy", "sad"] and (tmp_path / "e" / "manifest.csv").is_file()
    before, after = np.asarray(Image.open(src)), np.asarray(Image.open(tmp_path / "e" / man["path"][0]))
    changed = np.abs(after.astype(int) - before.astype(int)).max(2) > 0
    assert changed.any()
    ys, xs = np.nonzero(changed)  # inside the inner face: the template's ellipse, scaled 1.2 and shifted 8 px
    e = I.P.face_ellipse((96, 96), TEMPLATE * 1.2 + 8)
    assert e[ys, xs].max() < 1.05 and (before[e > 1.05] == after[e > 1.05]).all()
    stamp = (tmp_path / "e" / man["path"][0]).stat().st_mtime_ns
    I.edit(g, m, I.P.read_truth(truth), tmp_path / "e")
    assert (tmp_path / "e" / man["path"][0]).stat().st_mtime_ns == stamp  # kept: a rerun resumes
    with pytest.raises(I.P.ProbeError, match=r"row 0: label 'contempt' is not one of"):
        I.edit(g, m.assign(label="contempt"), I.P.read_truth(truth), tmp_path / "f")
    with pytest.raises(I.P.ProbeError, match="not in the source truth"):
        I.edit(g, m.assign(source_path=str(tmp_path / "x.png")), I.P.read_truth(truth), tmp_path / "f")


def test_a_class_without_faces_is_named(tmp_path):
    truth = _world(tmp_path, n=6)  # no 'surprise'
    with pytest.raises(I.P.ProbeError, match=r"no training face of \['surprise'\]"):
        I.train(str(truth), tmp_path / "m", steps=1, batch=2, threads=1, channels=8)


def test_the_inpainter_passes_the_unmasked_pixels_through():
    torch.manual_seed(0)
    g = I.Inpainter(8).eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    m = torch.from_numpy(I.inner_mask())[None, None]
    with torch.no_grad():
        o = g(x, m, torch.tensor([0, 3]))
    assert torch.equal(o[:, :, m[0, 0] == 0], x[:, :, m[0, 0] == 0]) and not torch.equal(o, x)
