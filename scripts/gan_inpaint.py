"""An experimental class-conditional inner-face inpainter (issue #30): what a local editor that *draws* the target
expression's brows, eyes and mouth (instead of warping the source's) gives downstream.

    python scripts/gan_inpaint.py train --truth outputs/world/affectnet/truth.csv --out DIR [--minutes 30]
    python scripts/gan_inpaint.py edit --model DIR --manifest A.csv --source-truth outputs/world/ffhq/truth.csv --out DIR \\
        [--rho 1.0]
    python scripts/gan_inpaint.py export --model DIR --out models/gan/NAME

train  labelled faces (a world truth.csv: path, split, expression, landmarks — the AffectNet stand-in's training
       split; real AffectNet ships 68 landmarks, from which the same 5 points follow) aligned to a 64-px template by
       their 5 landmarks (similarity transform); the inner face (brows to mouth: `gan_probes.face_ellipse`) masked
       out; a small U-Net given the rest of the face and the class fills it in (L1 in the mask + a class-projected
       hinge critic; ``--lambda-cls``: and the critic's expression head, as GANmut's). Class-balanced draws,
       mirrored half the time. ``--critic-depth 4`` (a deeper critic whose head learns the classes), ``--critic-warmup
       N`` (the head trained alone first), ``--retarget P`` (a share P of each batch drawn for another class: an edit,
       as at use). Resumable: DIR/state.pt every 500 steps (atomic), DIR/log.csv (step, l1, g_adv, d_loss, d_cls,
       g_cls, seconds); rerun the same command to continue.
edit   each row of a manifest (``label``, ``source_path``; e.g. `gan_probes.py select`) becomes the source with its
       inner face drawn for ``label`` at intensity ``--rho`` (the class condition interpolated from neutral):
       aligned as in training, filled in, warped back at the source's resolution and blended under the feathered
       mask (outside it the source is unchanged). Writes DIR/images and DIR/manifest.csv (with ``rho``); an existing
       image is kept (rerun to resume).
export the generator of a training folder in fp16, for committing (models/gan/README.md)

World only (landmarks from truth.csv), scratch-sized (CPU, 2 threads), measured in models/gan/README.md; not a
generator of the pipeline.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gan_probes as P  # noqa: E402

from syntfer.core import labels as L  # noqa: E402
from syntfer.core.images import load_array  # noqa: E402
from syntfer.core.manifest import ManifestError, read_manifest, write_manifest  # noqa: E402
from syntfer.core.storage import atomic_path, load_torch, save_image  # noqa: E402

SIZE = 64
TEMPLATE = np.array([[20.5, 25.0], [43.5, 25.0], [32.0, 36.0], [23.5, 46.0], [40.5, 46.0]])  # 5 points in 64 px


def align(image: np.ndarray, lm: np.ndarray, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """The face warped onto the template (least-squares similarity of its 5 points); (crop, 2×3 matrix)."""
    m, _ = cv2.estimateAffinePartial2D(lm.astype(np.float32), (TEMPLATE * size / SIZE).astype(np.float32),
                                       ransacReprojThreshold=1e3)
    if m is None:
        raise P.ProbeError("no similarity transform from the face's landmarks to the template")
    flags = cv2.INTER_AREA if abs(m[0, 0]) < 1 else cv2.INTER_CUBIC
    return cv2.warpAffine(image, m, (size, size), flags=flags, borderMode=cv2.BORDER_REFLECT), m


def inner_mask(size: int = SIZE) -> np.ndarray:
    """The feathered inner-face mask on the template (1 inside, 0 outside; float32)."""
    e = P.face_ellipse((size, size), TEMPLATE * size / SIZE)
    a = np.clip((1.0 - e) / P.FEATHER, 0, 1)
    return (a * a * (3 - 2 * a)).astype(np.float32)


def _block(i: int, o: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(i, o, 3, stride, 1), nn.GroupNorm(4, o), nn.SiLU())


class Inpainter(nn.Module):
    """A 4-level U-Net: input the masked crop, the mask and the class (one-hot planes, again at the bottleneck);
    output the crop with the mask's pixels drawn (the rest passed through)."""

    def __init__(self, c: int = 24, classes: int = L.NUM_CLASSES) -> None:
        super().__init__()
        self.k = classes
        self.e0, self.e1 = _block(3 + 1 + classes, c), _block(c, 2 * c, 2)
        self.e2, self.e3 = _block(2 * c, 4 * c, 2), _block(4 * c, 4 * c, 2)
        self.mid = nn.Sequential(_block(4 * c + classes, 4 * c), _block(4 * c, 4 * c))
        self.d3, self.d2, self.d1 = _block(8 * c, 4 * c), _block(8 * c, 2 * c), _block(4 * c, c)
        self.out = nn.Conv2d(2 * c, 3, 3, 1, 1)

    def forward(self, x: torch.Tensor, m: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """`y`: class indices (N,) or class weights (N, classes) — `condition`'s blend of neutral and a target."""
        n, _, h, w = x.shape
        m = m.expand(n, 1, h, w)
        oh = (F.one_hot(y, self.k).float() if y.dim() == 1 else y.float())[:, :, None, None]
        h0 = self.e0(torch.cat([x * (1 - m), m, oh.expand(-1, -1, h, w)], 1))
        h1 = self.e1(h0)
        h2 = self.e2(h1)
        h3 = self.e3(h2)
        z = self.mid(torch.cat([h3, oh.expand(-1, -1, h3.shape[2], h3.shape[3])], 1))
        u = self.d3(torch.cat([z, h3], 1))
        u = self.d2(torch.cat([F.interpolate(u, scale_factor=2.0), h2], 1))
        u = self.d1(torch.cat([F.interpolate(u, scale_factor=2.0), h1], 1))
        o = torch.tanh(self.out(torch.cat([F.interpolate(u, scale_factor=2.0), h0], 1)))
        return x * (1 - m) + o * m


class Critic(nn.Module):
    """Patch critic with a class projection (hinge loss) and an expression head on its pooled features (trained on
    real faces; the generator is asked to draw what it reads as the target: StarGAN/GANmut's classification loss).
    `depth` stride-2 convolutions (3: the first runs' 8×8 critic; 4: down to 4×4 with twice the features)."""

    def __init__(self, c: int = 32, classes: int = L.NUM_CLASSES, depth: int = 3) -> None:
        super().__init__()
        layers, i = [], 3
        for k in range(depth):
            layers += [nn.Conv2d(i, c * 2 ** k, 4, 2, 1), nn.LeakyReLU(0.2)]
            i = c * 2 ** k
        self.f = nn.Sequential(*layers)
        self.lin = nn.Conv2d(i, 1, 1)
        self.emb = nn.Embedding(classes, i)
        self.head = nn.Linear(i, classes)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(patch realism scores, expression logits)"""
        h = self.f(x)
        return self.lin(h) + (h * self.emb(y)[:, :, None, None]).sum(1, keepdim=True), self.head(h.mean((2, 3)))


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
          channels: int = 24, critic_depth: int = 3, warmup: int = 0, retarget: float = 0.0) -> int:
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
        if int(s.get("critic_depth", 3)) != critic_depth or int(s.get("channels", 24)) != channels:
            raise P.ProbeError(f"{state}: trained with channels {s.get('channels', 24)}, critic depth "
                               f"{s.get('critic_depth', 3)}; asked for {channels}, {critic_depth}")
        g.load_state_dict(s["g"]), d.load_state_dict(s["d"]), og.load_state_dict(s["og"]), od.load_state_dict(s["od"])
        step, warm = int(s["step"]), int(s.get("warm", 0))

    def save() -> None:
        with atomic_path(state) as tmp:
            torch.save({"g": g.state_dict(), "d": d.state_dict(), "og": og.state_dict(), "od": od.state_dict(),
                        "step": step, "warm": warm, "channels": channels, "critic_depth": critic_depth}, tmp)

    def draw(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.multinomial(weights, batch, replacement=True, generator=generator)
        x = torch.where((torch.rand(batch, generator=generator) < 0.5)[:, None, None, None], x_all[idx].flip(3),
                        x_all[idx])
        return x, y_all[idx]

    m = torch.from_numpy(inner_mask())[None, None]
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


def condition(label: str, rho: float = 1.0) -> torch.Tensor:
    """The class condition of intensity `rho` (1, K): (1 − ρ)·neutral + ρ·`label` — ρ = 1 the trained one-hot, 0
    neutral, between them an interpolated condition the generator never saw in training (it is continuous in it;
    whether the drawn expression weakens with ρ is measured, models/gan/README.md), above 1 extrapolated."""
    c = torch.zeros(1, L.NUM_CLASSES)
    c[0, L.CLASS_TO_INDEX["neutral"]] += 1.0 - rho
    c[0, L.CLASS_TO_INDEX[label]] += rho
    return c


def load_inpainter(folder: str | os.PathLike) -> Inpainter:
    """The inpainter of a training folder (``state.pt``) or of a committed one (``generator.pt``: the generator's
    weights in fp16, ``channels``, ``step``; training cannot resume from it)."""
    folder = Path(folder)
    path = folder / "state.pt" if (folder / "state.pt").is_file() else folder / "generator.pt"
    if not path.is_file():
        raise P.ProbeError(f"{folder}: neither state.pt nor generator.pt (an inpainter folder)")
    s = load_torch(path, "inpainter")
    g = Inpainter(int(s.get("channels", 24)))
    g.load_state_dict({k: v.float() for k, v in s["g"].items()})
    return g.eval()


def edit(g: Inpainter, m: pd.DataFrame, source_truth: pd.DataFrame, out: str | os.PathLike, rho: float = 1.0
         ) -> pd.DataFrame:
    """Draw each row's inner face for its ``label`` on its ``source_path`` (absolute) at intensity `rho`
    (`condition`); see the module's doc."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    mask = inner_mask()
    mt = torch.from_numpy(mask)[None, None]
    rows = []
    for i, r in enumerate(m.itertuples(index=False)):
        if r.source_path not in source_truth.index:
            raise P.ProbeError(f"{r.source_path}: not in the source truth (landmarks needed)")
        if r.label not in L.CLASS_TO_INDEX:
            raise P.ProbeError(f"row {i}: label {r.label!r} is not one of {list(L.CLASSES)}")
        name = f"images/{i:05d}_{r.label}.png"
        if not (out / name).is_file():
            img = load_array(r.source_path, "RGB")
            crop, mat = align(img, P.landmarks(source_truth.at[r.source_path, "landmarks"], r.source_path))
            x = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 127.5 - 1
            with torch.no_grad():
                o = g(x, mt, condition(r.label, rho))
            o = ((o[0].permute(1, 2, 0).numpy() + 1) * 127.5).astype(np.float32)
            inv = cv2.invertAffineTransform(mat)
            h, w = img.shape[:2]
            back = cv2.warpAffine(o, inv, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
            a = cv2.warpAffine(mask, inv, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)[..., None]
            res = np.clip(img * (1 - a) + back * a, 0, 255).round().astype(np.uint8)
            save_image(out / name, Image.fromarray(res))
        rows.append({"path": str(out / name), "label": r.label, "source_path": r.source_path, "rho": rho})
    man = pd.DataFrame(rows)
    write_manifest(man, out / "manifest.csv")
    return man


def export(folder: str | os.PathLike, out: str | os.PathLike) -> Path:
    """A training folder's generator as a committed file: `out`/generator.pt = {"g": fp16 weights, "channels",
    "step"} (written atomically; `load_inpainter` reads it; training cannot resume from it)."""
    state = Path(folder) / "state.pt"
    if not state.is_file():
        raise P.ProbeError(f"{folder}: no state.pt (a training folder)")
    s = load_torch(state, "inpainter resume state")
    Path(out).mkdir(parents=True, exist_ok=True)
    with atomic_path(Path(out) / "generator.pt") as tmp:
        torch.save({"g": {k: v.half() for k, v in s["g"].items()}, "channels": int(s.get("channels", 24)),
                    "step": int(s["step"])}, tmp)
    return Path(out) / "generator.pt"


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
                         critic_depth=a.critic_depth, warmup=a.critic_warmup, retarget=a.retarget)
            print(f"{a.out}: step {step}")
        else:
            torch.set_num_threads(a.threads)
            m = read_manifest(a.manifest, ("label", "source_path"))
            man = edit(load_inpainter(a.model), m, P.read_truth(a.source_truth), a.out, a.rho)
            print(f"{a.out}/manifest.csv: {len(man)} images")
    except (P.ProbeError, ManifestError) as err:
        print(f"gan_inpaint: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
