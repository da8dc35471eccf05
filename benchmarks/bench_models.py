"""Training throughput of syntfer's classifiers against a plain reference implementation, and data loading.

What it measures (images/s of forward + backward + Adam step, cross-entropy, synthetic inputs):
- ``ir50`` at 112 px and the default small net ``ir_tiny`` at 48 px, each as
  * ``reference``: the same network written the way upstream writes it (below: MaxPool2d(1, s) shortcuts,
    ``F.interpolate``, ``x.view(-1, 49, 1024)``), eager, fp32, NCHW — loaded with the *same weights*
    (outputs are checked equal first);
  * ``syntfer``: `syntfer.engine.models.create_model(...)` in fp32 NCHW, and in the recommended mode of the device:
    channels_last on CPU, bf16 autocast + channels_last on CUDA.
- data loading: the project's real pipeline (`syntfer.engine.data.ManifestDataset` + `train_transform` +
  `build_loader`) on 100×100 JPEGs written to a temporary folder, with 0 and 2 workers, resized for each model.

Usage::

    python benchmarks/bench_models.py                      # CPU, 2 threads, < 2 min on an idle 2-core machine
    python benchmarks/bench_models.py --device cuda        # GPU (bf16 + channels_last vs fp32 reference)
    python benchmarks/bench_models.py --out outputs/bench/bench_models_cpu.json

CPU numbers taken on a shared machine vary with what else runs: compare rows of the same run only (the
configurations are timed round-robin for that reason). On an oversubscribed machine set
``OMP_WAIT_POLICY=PASSIVE`` before starting Python: OpenMP's default spin-waiting made 2-thread training
~6x slower than with PASSIVE under load on the 2-core machines (ir_tiny: 26 vs 171 images/s).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout without installing the package
    sys.path.insert(0, str(ROOT))

from syntfer.engine.models import create_model  # noqa: E402
from syntfer.engine.models.ir import IR50_STAGES, IR_TINY_STAGES  # noqa: E402


# ----------------------------------------------------------------------------------------------------------------
# Reference implementation: plain eager code in upstream's style (face.evoLVe bottleneck_IR, POSTER's Backbone).
class RefBottleneckIR(nn.Module):
    def __init__(self, in_channel: int, depth: int, stride: int) -> None:
        super().__init__()
        if in_channel == depth:
            self.shortcut_layer = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(in_channel, depth, (1, 1), stride, bias=False),
                                                nn.BatchNorm2d(depth))
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channel), nn.Conv2d(in_channel, depth, (3, 3), (1, 1), 1, bias=False),
            nn.PReLU(depth), nn.Conv2d(depth, depth, (3, 3), stride, 1, bias=False), nn.BatchNorm2d(depth))

    def forward(self, x):
        shortcut = self.shortcut_layer(x)
        res = self.res_layer(x)
        return res + shortcut


class RefIRNet(nn.Module):
    """IR body + head. head='upstream': interpolate to 112, view(-1,49,1024), mean, Linear(1024); 'gap': pool."""

    def __init__(self, stages, stem_width: int, stem_stride: int, head: str, num_classes: int = 7) -> None:
        super().__init__()
        self.head_type = head
        self.input_layer = nn.Sequential(nn.Conv2d(3, stem_width, (3, 3), stem_stride, 1, bias=False),
                                         nn.BatchNorm2d(stem_width), nn.PReLU(stem_width))
        modules = []
        in_ch = stem_width
        for depth, units in stages:
            modules.append(RefBottleneckIR(in_ch, depth, 2))
            for _ in range(units - 1):
                modules.append(RefBottleneckIR(depth, depth, 1))
            in_ch = depth
        self.body = nn.Sequential(*modules)
        self.head = nn.Linear(1024 if head == "upstream" else in_ch, num_classes)

    def forward(self, x):
        if self.head_type == "upstream":
            x = F.interpolate(x, size=112)
            x = self.body(self.input_layer(x))
            x = x.view(-1, 49, 1024)
            x = torch.mean(x, dim=1)
        else:
            x = self.body(self.input_layer(x))
            x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.head(x)


def reference_for(name: str) -> nn.Module:
    if name == "ir50":
        return RefIRNet(IR50_STAGES, 64, 1, "upstream")
    if name == "ir_tiny":
        return RefIRNet(IR_TINY_STAGES, 16, 2, "gap")
    raise KeyError(f"no reference implementation for {name!r}")


# ----------------------------------------------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def check_equivalence(ours: nn.Module, ref: nn.Module, size: int, device: torch.device) -> float:
    """Load our weights into the reference and return the max |Δ| of eval-mode logits (fp32)."""
    ref.load_state_dict(ours.state_dict(), strict=True)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, size, size, generator=g).to(device)
    ours.eval()
    ref.eval()
    with torch.no_grad():
        diff = (ours(x) - ref(x)).abs().max().item()
    return diff


class TrainStep:
    """One configuration's training step (forward + backward + Adam step) on fixed random data."""

    def __init__(self, model: nn.Module, batch: int, size: int, device: torch.device, bf16: bool,
                 channels_last: bool) -> None:
        self.device = device
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.to(device).to(memory_format=fmt).train()
        self.opt = torch.optim.Adam([p for p in self.model.parameters() if p.requires_grad], lr=1e-4)
        g = torch.Generator().manual_seed(1)
        self.x = torch.randn(batch, 3, size, size, generator=g).to(device).contiguous(memory_format=fmt)
        self.y = torch.randint(0, 7, (batch,), generator=g).to(device)
        self.bf16 = bf16
        self.times: list[float] = []

    def __call__(self, record: bool) -> None:
        sync(self.device)
        t0 = time.perf_counter()
        self.opt.zero_grad(set_to_none=True)
        amp = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()
        with amp:
            loss = F.cross_entropy(self.model(self.x).float(), self.y)
        loss.backward()
        self.opt.step()
        sync(self.device)
        if record:
            self.times.append(time.perf_counter() - t0)
        if not torch.isfinite(loss):
            raise RuntimeError("non-finite loss in benchmark")


def run_interleaved(steps: dict, n: int, warmup: int) -> None:
    """Round-robin: each round times one step of every configuration, so load from other processes on a shared
    machine hits all configurations alike; images/s come from the median step time."""
    for _ in range(warmup):
        for step in steps.values():
            step(record=False)
    for _ in range(n):
        for step in steps.values():
            step(record=True)


def bench_model(name: str, size: int, batch: int, device: torch.device, steps: int, warmup: int) -> list[dict]:
    ours = create_model(name, img_size=size)
    ref = reference_for(name)
    diff = check_equivalence(ours, ref, size, torch.device("cpu"))
    if diff > 1e-4:
        raise RuntimeError(f"{name}: syntfer and reference outputs differ by {diff:.3g}")
    if device.type == "cuda":
        modes = [("reference", ref, False, False), ("syntfer", ours, False, False),
                 ("syntfer", ours, True, True)]
    else:
        # no bf16 on CPU: without AVX512-BF16/AMX it is emulated (measured 4-10x slower on this AVX2 machine)
        modes = [("reference", ref, False, False), ("syntfer", ours, False, False),
                 ("syntfer", ours, False, True)]
    rows = []
    configs = {}
    for impl, model, bf16, cl in modes:
        if impl == "syntfer" and any(k[0] == "syntfer" for k in configs):  # own copy: own optimizer and layout
            model = create_model(name, img_size=size)
            model.load_state_dict(ours.state_dict())
        configs[(impl, bf16, cl)] = TrainStep(model, batch, size, device, bf16, cl)
    run_interleaved(configs, steps, warmup)
    for (impl, bf16, cl), step in configs.items():
        t = float(np.median(step.times))
        r = {"images_per_s": batch / t, "step_s_median": t, "step_s_min": float(min(step.times)), "steps": steps}
        rows.append({"model": name, "impl": impl, "precision": "bf16-autocast" if bf16 else "fp32",
                     "memory_format": "channels_last" if cl else "NCHW", "batch": batch, "img_size": size,
                     "max_abs_logit_diff_vs_reference": diff, **r})
        print(f"  {name:8s} {impl:9s} {rows[-1]['precision']:13s} {rows[-1]['memory_format']:13s} "
              f"{r['images_per_s']:9.1f} img/s", flush=True)
    return rows


def timed_iteration(loader, warmup: int) -> float:
    """Images/s over the batches after the first `warmup` ones (timed from the end of batch `warmup`)."""
    n, t0 = 0, None
    for b, (x, _) in enumerate(loader):
        if b == warmup - 1:
            t0 = time.perf_counter()
        elif b >= warmup:
            n += x.shape[0]
    if t0 is None or n == 0:
        raise RuntimeError(f"loader gave fewer than {warmup + 1} batches; use more --loading-images")
    return n / (time.perf_counter() - t0)


def bench_loading(n_images: int, workers: list[int], model_names: list[str], batch: int) -> list[dict]:
    """The project's data pipeline on `n_images` 100×100 JPEGs (decode + upstream augmentation + collate)."""
    import pandas as pd
    from PIL import Image

    from syntfer.engine.data import BatchAugment, BatchCollate, ManifestDataset, build_loader, train_transform

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        base = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        paths = []
        for i in range(n_images):
            small = np.clip(base.astype(int) + rng.integers(-40, 40, base.shape), 0, 255).astype(np.uint8)
            img = Image.fromarray(small).resize((100, 100), Image.BICUBIC)  # smooth, JPEG-typical content
            p = Path(tmp) / f"{i:05d}.jpg"
            img.save(p, quality=90)
            paths.append(str(p))
        frame = pd.DataFrame({"path": paths, "label": [["anger", "happy", "neutral"][i % 3] for i in range(n_images)]})
        for name in model_names:
            cfg = create_model(name).cfg
            for nw in workers:
                ds = ManifestDataset(frame, train_transform(cfg))
                loader = build_loader(ds, batch_size=batch, train=True, seed=0, num_workers=nw)
                ips = timed_iteration(loader, warmup=2)
                del loader
                rows.append({"model_cfg": name, "img_size": cfg.input_size[-1], "num_workers": nw,
                             "batch": batch, "images_per_s": ips, "n_images": n_images, "what": "loader alone"})
                print(f"  loading for {name:8s} ({cfg.input_size[-1]} px) workers={nw}: {ips:8.1f} img/s", flush=True)
        # the default pipeline's path: decoded once into memory at the model's size, augmented per batch
        for name in model_names:
            cfg = create_model(name).cfg
            for mode in ("per-image (cached)", "batched (cached)"):
                if mode.startswith("batched"):
                    ds = ManifestDataset(frame, None, cache=True, size=cfg.input_size[1:])
                    collate = BatchCollate(BatchAugment(cfg))
                else:
                    ds, collate = ManifestDataset(frame, train_transform(cfg), cache=True), None
                ds.preload(progress=False)
                loader = build_loader(ds, batch_size=batch, train=True, seed=0, collate_fn=collate)
                ips = timed_iteration(loader, warmup=2)
                rows.append({"model_cfg": name, "img_size": cfg.input_size[-1], "num_workers": 0, "batch": batch,
                             "images_per_s": ips, "n_images": n_images, "what": f"loader alone, {mode}"})
                print(f"  loading for {name:8s} ({cfg.input_size[-1]} px) {mode}: {ips:8.1f} img/s", flush=True)
        # end to end: ir_tiny training fed by the real loader (2 workers share the cores with training)
        model = create_model("ir_tiny").train().to(memory_format=torch.channels_last)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        ds = ManifestDataset(frame, train_transform(model.cfg))
        loader = build_loader(ds, batch_size=batch, train=True, seed=0, num_workers=2)
        n, t0 = 0, None
        for b, (x, y) in enumerate(loader):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x.contiguous(memory_format=torch.channels_last)), y).backward()
            opt.step()
            if b == 1:
                t0 = time.perf_counter()
            elif b > 1:
                n += x.shape[0]
        ips = n / (time.perf_counter() - t0)
        del loader
        rows.append({"model_cfg": "ir_tiny", "img_size": 48, "num_workers": 2, "batch": batch,
                     "images_per_s": ips, "n_images": n_images, "what": "training fed by the loader"})
        print(f"  ir_tiny training fed by the loader (2 workers): {ips:8.1f} img/s", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (CPU runs)")
    ap.add_argument("--ir50-batch", type=int, default=None, help="default: 8 on CPU, 64 on CUDA")
    ap.add_argument("--small-batch", type=int, default=None, help="default: 64 on CPU, 256 on CUDA")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default: CPU 3 for ir50 / 8 small; CUDA 20)")
    ap.add_argument("--loading-images", type=int, default=640)
    ap.add_argument("--skip-loading", action="store_true")
    ap.add_argument("--out", default=None, help="JSON path (default: outputs/bench/bench_models_<device>.json)")
    args = ap.parse_args(argv)

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device visible")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    on_gpu = device.type == "cuda"
    ir50_batch = args.ir50_batch or (64 if on_gpu else 8)
    small_batch = args.small_batch or (256 if on_gpu else 64)
    t_start = time.perf_counter()
    print(f"device {device} ({torch.cuda.get_device_name(device) if on_gpu else platform.processor() or 'cpu'}), "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}", flush=True)
    rows = []
    rows += bench_model("ir_tiny", 48, small_batch, device, args.steps or (20 if on_gpu else 8), 2 if not on_gpu else 5)
    rows += bench_model("ir50", 112, ir50_batch, device, args.steps or (20 if on_gpu else 3), 1 if not on_gpu else 5)
    loading = [] if args.skip_loading else bench_loading(args.loading_images, [0, 2], ["cnn_tiny", "ir50"], 64)

    def ips(model, impl, precision, fmt):
        return next(r["images_per_s"] for r in rows if (r["model"], r["impl"], r["precision"], r["memory_format"])
                    == (model, impl, precision, fmt))

    best = ("bf16-autocast", "channels_last") if on_gpu else ("fp32", "channels_last")
    speedups = {}
    for m in ("ir_tiny", "ir50"):
        ref = ips(m, "reference", "fp32", "NCHW")
        speedups[m] = {"syntfer_fp32_nchw": ips(m, "syntfer", "fp32", "NCHW") / ref,
                       f"syntfer_{best[0]}_{best[1]}": ips(m, "syntfer", *best) / ref}
    result = {
        "device": str(device), "device_name": torch.cuda.get_device_name(device) if on_gpu else platform.processor(),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "command": " ".join(sys.argv),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset: ACTIVE spin-waiting)"),
        "note": "CPU numbers from a shared 2-core machine: compare rows of one run, not across runs",
        "train": rows, "speedup_vs_reference": speedups, "loading": loading,
        "seconds": time.perf_counter() - t_start,
    }
    out = Path(args.out or ROOT / "outputs" / "bench" / f"bench_models_{device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(out)

    print("\nmodel     impl       precision      memory_format  batch  img/s     x ref")
    for r in rows:
        ref = ips(r["model"], "reference", "fp32", "NCHW")
        print(f"{r['model']:9s} {r['impl']:10s} {r['precision']:14s} {r['memory_format']:14s} {r['batch']:5d} "
              f"{r['images_per_s']:8.1f}  {r['images_per_s'] / ref:5.2f}")
    timed = {r["model"] for r in rows}
    for r in loading:  # the loader is also timed for models not trained here (cnn_tiny: no reference twin)
        ratio = (f" ({r['images_per_s'] / ips(r['model_cfg'], 'syntfer', *best):.2f}x the model's training rate "
                 "on synthetic tensors)") if r["model_cfg"] in timed else ""
        print(f"{r['what']:27s} {r['model_cfg']:8s} workers={r.get('num_workers', '-')}: "
              f"{r['images_per_s']:8.1f} img/s{ratio}")
    print(f"wrote {out} ({result['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
