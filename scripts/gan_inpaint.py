"""Train, try and export the class-conditional inner-face inpainter (issue #30; the editor itself, as the pipeline
runs it, is `syntfer.strategies.gan.inpaint`).

    python scripts/gan_inpaint.py train --truth outputs/world/affectnet/truth.csv --out DIR [--minutes 30]
    python scripts/gan_inpaint.py edit --model DIR --manifest A.csv --source-truth outputs/world/ffhq/truth.csv --out DIR \\
        [--rho 1.0]
    python scripts/gan_inpaint.py export --model DIR --out models/gan/NAME

train  labelled faces (a world truth.csv: path, split, expression, landmarks — the AffectNet stand-in's training
       split, whose landmarks its training.csv also carries; real AffectNet ships 68 landmarks, from which the same 5
       points follow) aligned to a 64-px template by their 5 landmarks (similarity transform); the inner face
       (``--mask TOP BOTTOM WIDTH FEATHER``: `inpaint.inner_mask`, brows to mouth) masked out; a small U-Net given the
       rest of the face and the class fills it in (L1 in the mask + a class-projected hinge critic;
       ``--lambda-cls``: and the critic's expression head, as GANmut's). Class-balanced draws, mirrored half the
       time. ``--critic-depth 4`` (a deeper critic whose head learns the classes), ``--critic-warmup N`` (the head
       trained alone first), ``--retarget P`` (a share P of each batch drawn for another class: an edit, as at
       use). Resumable: DIR/state.pt every 500 steps (atomic), DIR/log.csv (step, l1, g_adv, d_loss, d_cls, g_cls,
       seconds); rerun the same command to continue.
edit   each row of a manifest (``label``, ``source_path``; e.g. `gan_probes.py select`) becomes the source with its
       inner face drawn for ``label`` at intensity ``--rho`` (the class condition interpolated from neutral),
       aligned by the source's *true* landmarks (world truth; the pipeline finds them with a landmark predictor:
       `syntfer gan edit --landmarks`). Writes DIR/images and DIR/manifest.csv (with ``rho``); an existing image is
       kept (rerun to resume).
export a training folder's generator as a committed editor: fp16 generator.pt + editor.json
       (`inpaint.save_inpaint_editor`; models/gan/README.md)

World only (landmarks from truth.csv), CPU-sized; measured in models/gan/README.md.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gan_probes as P  # noqa: E402

from syntfer.core import labels as L  # noqa: E402
from syntfer.core.images import load_array  # noqa: E402
from syntfer.core.manifest import ManifestError, read_manifest, write_manifest  # noqa: E402
from syntfer.core.storage import atomic_path, load_torch, save_image  # noqa: E402
from syntfer.strategies.gan.controls import ControlValue  # noqa: E402
from syntfer.strategies.gan.inpaint import (FEATHER, SIZE, Critic, InpaintConfig, InpaintEditor,  # noqa: E402
                                            InpaintError, Inpainter, align, inner_mask, load_inpaint_editor,
                                            save_inpaint_editor)

DEFAULT_MASK = (1.0, 1.0, 1.0, FEATHER)  # `inner_mask`'s top, bottom, width, feather as world_inpaint64_d4 trained

def load_faces(truth_csv: str | os.PathLike, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Aligned crops in [-1, 1] (N, 3, 64, 64) and class indices of a truth file's `split` (classes of the label
    space only; other annotations are counted and left out)."""
    t = P.read_truth(truth_csv)
    if "split" in t.columns:
        t = t[t["split"] == split]
    keep = t["expression"].isin(L.CLASSES)
    if (~keep).any():
        print(f"{truth_csv}: {int((~keep).sum())} faces outside the 7 classes left out", file=sys.stderr)
    t = t[keep]
    if t.empty:
        raise P.ProbeError(f"{truth_csv}: no {split!r} face of the 7 classes")
    crops = [align(load_array(p, "RGB"), P.landmarks(r["landmarks"], p))[0] for p, r in t.iterrows()]
    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 127.5 - 1
    return x, torch.tensor([L.CLASS_TO_INDEX[c] for c in t["expression"]])


def train(truth_csv: str, out: str | os.PathLike, *, steps: int = 20000, minutes: float = 30.0, batch: int = 16,
          l1: float = 10.0, adv: float = 1.0, cls: float = 0.0, lr: float = 2e-4, seed: int = 0, threads: int = 2,
          channels: int = 24, critic_depth: int = 3, warmup: int = 0, retarget: float = 0.0,
          mask: tuple[float, float, float, float] = DEFAULT_MASK) -> int:
    """Train (or continue) an `Inpainter` in `out`; returns the step reached. `cls` > 0 adds the critic's expression
    head (cross-entropy on real faces for the critic, on the drawn faces toward their class for the generator);
    `warmup` steps train that head alone on real faces before the generator starts (so that its first gradients
    mean something; progress in DIR/warmup.csv: step, d_cls, accuracy); `retarget`: the share of each batch drawn
    for a random other class than the face's own (an edit as at use; no L1 on those, critic and head only)."""
    torch.set_num_threads(threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    x_all, y_all = load_faces(truth_csv)
    counts = np.bincount(y_all.numpy(), minlength=L.NUM_CLASSES)
    if (counts == 0).any():
        raise P.ProbeError(f"{truth_csv}: no training face of {[c for c, k in zip(L.CLASSES, counts) if k == 0]}")
    weights = torch.from_numpy(1.0 / counts[y_all.numpy()])
    torch.manual_seed(seed)
    g, d = Inpainter(channels), Critic(depth=critic_depth)
    og = torch.optim.Adam(g.parameters(), lr, betas=(0.5, 0.99))
    od = torch.optim.Adam(d.parameters(), lr, betas=(0.5, 0.99))
    step, warm, state = 0, 0, out / "state.pt"
    if state.is_file():
        s = load_torch(state, "inpainter resume state")
        was = tuple(float(v) for v in s.get("mask", DEFAULT_MASK))
        if int(s.get("critic_depth", 3)) != critic_depth or int(s.get("channels", 24)) != channels or \
                not np.allclose(was, mask):
            raise P.ProbeError(f"{state}: trained with channels {s.get('channels', 24)}, critic depth "
                               f"{s.get('critic_depth', 3)}, mask {was}; asked for {channels}, {critic_depth}, "
                               f"{tuple(mask)}")
        g.load_state_dict(s["g"]), d.load_state_dict(s["d"]), og.load_state_dict(s["og"]), od.load_state_dict(s["od"])
        step, warm = int(s["step"]), int(s.get("warm", 0))

    def save() -> None:
        with atomic_path(state) as tmp:
            torch.save({"g": g.state_dict(), "d": d.state_dict(), "og": og.state_dict(), "od": od.state_dict(),
                        "step": step, "warm": warm, "channels": channels, "critic_depth": critic_depth,
                        "mask": [float(v) for v in mask]}, tmp)

    def draw(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.multinomial(weights, batch, replacement=True, generator=generator)
        x = torch.where((torch.rand(batch, generator=generator) < 0.5)[:, None, None, None], x_all[idx].flip(3),
                        x_all[idx])
        return x, y_all[idx]

    m = torch.from_numpy(inner_mask(SIZE, *mask))[None, None]
    t0 = time.time()
    if warm < warmup:
        wgen = torch.Generator().manual_seed(seed * 1_000_003 + 999_983 + warm)
        with open(out / "warmup.csv", "a") as wlog:
            while warm < warmup and time.time() - t0 < minutes * 60:
                x, y = draw(wgen)
                logits = d(x, y)[1]
                d_cls = F.cross_entropy(logits, y)
                od.zero_grad()
                d_cls.backward()
                od.step()
                warm += 1
                if warm % 50 == 0:
                    wlog.write(f"{warm},{d_cls.item():.4f},{(logits.argmax(1) == y).float().mean().item():.3f}\n")
                    wlog.flush()
        save()
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step)  # a resumed run draws on from its step
    with open(out / "log.csv", "a") as log:
        while warm >= warmup and step < steps and time.time() - t0 < minutes * 60:
            x, y = draw(gen)
            t = y
            if retarget > 0:  # (no extra draws otherwise: the first runs' data stream stays as it was)
                other = (y + torch.randint(1, L.NUM_CLASSES, (batch,), generator=gen)) % L.NUM_CLASSES
                t = torch.where(torch.rand(batch, generator=gen) < retarget, other, y)
            own = (t == y).float()[:, None, None, None]
            fake = g(x, m, t)
            real_score, real_logits = d(x, y)
            ld = F.relu(1 - real_score).mean() + F.relu(1 + d(fake.detach(), t)[0]).mean()
            d_cls = F.cross_entropy(real_logits, y)
            od.zero_grad()
            (ld + cls * d_cls).backward()
            od.step()
            rec = ((fake - x).abs() * m * own).sum() / (m.sum() * 3 * own.sum()).clamp(min=1)
            fake_score, fake_logits = d(fake, t)
            g_adv, g_cls = -fake_score.mean(), F.cross_entropy(fake_logits, t)
            og.zero_grad()
            (l1 * rec + adv * g_adv + cls * g_cls).backward()
            og.step()
            step += 1
            if step % 50 == 0:
                log.write(f"{step},{rec.item():.4f},{g_adv.item():.4f},{ld.item():.4f},{d_cls.item():.4f},"
                          f"{g_cls.item():.4f},{time.time() - t0:.0f}\n")
                log.flush()
            if step % 500 == 0:
                save()
    save()
    return step


def load_inpainter(folder: str | os.PathLike) -> InpaintEditor:
    """The editor of a training folder (``state.pt``) or of a committed one (``generator.pt`` + ``editor.json``,
    `inpaint.load_inpaint_editor`)."""
    folder = Path(folder)
    if not (folder / "state.pt").is_file():
        return load_inpaint_editor(folder)
    s = load_torch(folder / "state.pt", "inpainter")
    cfg = InpaintConfig(channels=int(s.get("channels", 24)), critic_depth=int(s.get("critic_depth", 3)),
                        mask=tuple(float(v) for v in s.get("mask", DEFAULT_MASK)))
    g = Inpainter(cfg.channels)
    g.load_state_dict(s["g"])
    return InpaintEditor(g, cfg, int(s["step"]))


def edit(editor: InpaintEditor, m: pd.DataFrame, source_truth: pd.DataFrame, out: str | os.PathLike,
         rho: float = 1.0) -> pd.DataFrame:
    """Draw each row's inner face for its ``label`` on its ``source_path`` (absolute) at intensity `rho`
    (`condition`), aligned by the source's true landmarks; see the module's doc."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, r in enumerate(m.itertuples(index=False)):
        if r.source_path not in source_truth.index:
            raise P.ProbeError(f"{r.source_path}: not in the source truth (landmarks needed)")
        if r.label not in L.CLASS_TO_INDEX:
            raise P.ProbeError(f"row {i}: label {r.label!r} is not one of {list(L.CLASSES)}")
        name = f"images/{i:05d}_{r.label}.png"
        if not (out / name).is_file():
            img = load_array(r.source_path, "RGB")
            lm = P.landmarks(source_truth.at[r.source_path, "landmarks"], r.source_path)
            code = ControlValue.from_polar(r.label, rho, 0.0, "manual")
            res = editor.edit_batch([img], [(0, 0, 1, 1)], [code], None, None, [None], landmarks=[lm]).pasted[0]
            save_image(out / name, Image.fromarray(res))
        rows.append({"path": str(out / name), "label": r.label, "source_path": r.source_path, "rho": rho})
    man = pd.DataFrame(rows)
    write_manifest(man, out / "manifest.csv")
    return man


def export(folder: str | os.PathLike, out: str | os.PathLike) -> Path:
    """A training folder's generator as a committed editor (`inpaint.save_inpaint_editor`: fp16 generator.pt and
    editor.json; training cannot resume from it)."""
    if not (Path(folder) / "state.pt").is_file():
        raise P.ProbeError(f"{folder}: no state.pt (a training folder)")
    e = load_inpainter(folder)
    return save_inpaint_editor(out, e.g, e.cfg, e.step)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--truth", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--steps", type=int, default=20000)
    t.add_argument("--minutes", type=float, default=30.0)
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--lambda-l1", type=float, default=10.0)
    t.add_argument("--lambda-adv", type=float, default=1.0)
    t.add_argument("--lambda-cls", type=float, default=0.0)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--channels", type=int, default=24)
    t.add_argument("--critic-depth", type=int, default=3)
    t.add_argument("--critic-warmup", type=int, default=0, help="steps training the critic's head alone first")
    t.add_argument("--retarget", type=float, default=0.0, help="share of each batch drawn for another class")
    t.add_argument("--mask", type=float, nargs=4, default=DEFAULT_MASK,
                   metavar=("TOP", "BOTTOM", "WIDTH", "FEATHER"), help="the inner-face mask (inpaint.inner_mask)")
    e = sub.add_parser("edit")
    e.add_argument("--model", required=True)
    e.add_argument("--manifest", required=True)
    e.add_argument("--source-truth", required=True)
    e.add_argument("--out", required=True)
    e.add_argument("--threads", type=int, default=1)
    e.add_argument("--rho", type=float, default=1.0, help="intensity: 0 neutral, 1 the class as trained")
    x = sub.add_parser("export")
    x.add_argument("--model", required=True, help="a training folder (state.pt)")
    x.add_argument("--out", required=True)
    a = p.parse_args(argv)
    try:
        if a.cmd == "export":
            print(f"{export(a.model, a.out)}: fp16 generator")
        elif a.cmd == "train":
            step = train(a.truth, a.out, steps=a.steps, minutes=a.minutes, batch=a.batch_size, l1=a.lambda_l1,
                         adv=a.lambda_adv, cls=a.lambda_cls, seed=a.seed, threads=a.threads, channels=a.channels,
                         critic_depth=a.critic_depth, warmup=a.critic_warmup, retarget=a.retarget,
                         mask=tuple(a.mask))
            print(f"{a.out}: step {step}")
        else:
            torch.set_num_threads(a.threads)
            m = read_manifest(a.manifest, ("label", "source_path"))
            man = edit(load_inpainter(a.model), m, P.read_truth(a.source_truth), a.out, a.rho)
            print(f"{a.out}/manifest.csv: {len(man)} images")
    except (P.ProbeError, ManifestError, InpaintError) as err:
        print(f"gan_inpaint: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
