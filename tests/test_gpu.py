"""What only a CUDA machine can check, prepared to be run once on a lent GPU (``scripts/gpu_checks.sh``): the trainer's
bf16 autocast and channels_last actually in use, IR-50 at 112 px and POSTER v1 forward/backward on CUDA, data-parallel
training in two processes (two GPUs), and Stable Diffusion's shape (512 px, 64x64 latents) sampled at fp16.

Every test is marked ``gpu`` and skips without CUDA: ``make test`` deselects them (``-m "not gpu"``), a plain
``pytest`` reports them as skipped. No weights are downloaded: models are built from configs with random weights
(same shapes and FLOPs as the real ones where it matters). The helpers take the device, so their logic can be tried
on CPU (``_train_observed(tmp, device="cpu")``).
"""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from imagesets import colour_set
from syntfer.core import labels as L
from syntfer.engine import training as T
from syntfer.engine.models import create_model

CUDA = torch.cuda.is_available()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not CUDA, reason="needs a CUDA device (scripts/gpu_checks.sh)")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


# ------------------------------------------------------------------------------------------------ the trainer
def _fresh_accelerate_state() -> None:
    """accelerate keeps one mixed-precision setting per process (a second `Accelerator` with another one raises):
    each trainer run here starts from a clean state and leaves one."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()


@pytest.fixture(autouse=True)
def _accelerate_state_per_test():
    _fresh_accelerate_state()
    yield
    _fresh_accelerate_state()


def _train_observed(tmp_path: Path, monkeypatch, *, device: str = "cuda", **overrides) -> dict:
    """Train cnn_tiny a few steps through `syntfer.engine.training.train` and record, from inside the model, what
    the trainer set up: the first convolution's weight memory format, its input's memory format, whether autocast
    is on around it and at which dtype, and the dtype of its output."""
    seen: dict = {"calls": 0}
    real_create = T.create_model

    def create_and_watch(*args, **kwargs):
        model = real_create(*args, **kwargs)
        conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
        seen["model"], seen["conv"] = model, conv

        def before(module, inputs):
            (x,) = inputs
            if module.training:
                kind = x.device.type
                seen.update(calls=seen["calls"] + 1, device=kind, input_channels_last=bool(
                    x.is_contiguous(memory_format=torch.channels_last)),
                    autocast=torch.is_autocast_enabled(kind), autocast_dtype=torch.get_autocast_dtype(kind))

        def after(module, inputs, output):
            if module.training:
                seen["output_dtype"] = output.dtype

        conv.register_forward_pre_hook(before)
        conv.register_forward_hook(after)
        return model

    monkeypatch.setattr(T, "create_model", create_and_watch)
    _fresh_accelerate_state()
    frame = colour_set(tmp_path / "img", n_per_class=8, size=48)
    cfg = T.TrainConfig.from_recipe("fast", model="cnn_tiny", model_kwargs={"img_size": 48, "head": "flatten"},
                                    epochs=2, batch_size=8, val_fraction=0.25, progress=False, seed=0,
                                    cpu=(device == "cpu"), **overrides)
    result = T.train(cfg, frame, tmp_path / "run")
    seen["weight_channels_last"] = bool(seen["conv"].weight.is_contiguous(memory_format=torch.channels_last))
    seen["weight_device"] = seen["conv"].weight.device.type
    seen["result"] = result
    return seen


def test_the_trainer_uses_bf16_autocast_and_channels_last_on_cuda(tmp_path, monkeypatch):
    """The defaults (mixed_precision auto, channels_last auto) on CUDA: bf16 autocast, channels_last weights and
    batches, and a finished run with finite losses."""
    seen = _train_observed(tmp_path, monkeypatch)
    assert seen["calls"] > 0 and seen["device"] == "cuda" and seen["weight_device"] == "cuda"
    assert seen["autocast"] and seen["autocast_dtype"] == torch.bfloat16, seen
    assert seen["output_dtype"] == torch.bfloat16, seen
    assert seen["weight_channels_last"] and seen["input_channels_last"], seen
    log = pd.read_csv(tmp_path / "run" / "log.csv")
    assert log["epoch"].tolist() == [1, 2] and np.isfinite(log.drop(columns="epoch").to_numpy()).all()
    assert seen["result"].model.cfg.input_size == (3, 48, 48)


def test_no_mixed_precision_and_contiguous_when_asked(tmp_path, monkeypatch):
    seen = _train_observed(tmp_path, monkeypatch, mixed_precision="no", channels_last="no")
    assert seen["device"] == "cuda" and not seen["autocast"] and seen["output_dtype"] == torch.float32
    assert not seen["weight_channels_last"] and not seen["input_channels_last"]


# ------------------------------------------------------------------------------------------------ the paper's nets
def _forward_backward(name: str, size: int, device: str = "cuda", batch: int = 4, **options) -> dict:
    """One bf16-autocast forward + backward of a registered model built from its config (random weights)."""
    torch.manual_seed(0)
    model = create_model(name, **options).to(device).to(memory_format=torch.channels_last).train()
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, L.NUM_CLASSES, (batch,), device=device)
    with torch.autocast(device_type=device, dtype=torch.bfloat16):
        logits = model(x)
    loss = nn.functional.cross_entropy(logits.float(), y)
    loss.backward()
    return {"logits": logits, "loss": float(loss.detach()), "model": model,
            "grads_finite": all(bool(torch.isfinite(p.grad).all()) for p in model.parameters() if p.grad is not None),
            "unused": sorted(n for n, p in model.named_parameters() if p.requires_grad and p.grad is None),
            "frozen_without_grad": all(p.grad is None for p in model.parameters() if not p.requires_grad)}


def test_ir50_at_112_px_forward_backward_on_cuda():
    out = _forward_backward("ir50", 112, img_size=112)
    assert out["logits"].shape == (4, L.NUM_CLASSES) and out["logits"].dtype == torch.bfloat16
    assert np.isfinite(out["loss"]) and out["grads_finite"] and out["unused"] == []
    assert out["model"].cfg.input_size == (3, 112, 112)


def test_poster_forward_backward_on_cuda():
    """POSTER v1 large (depth 8) at 224 px; the landmark network stays frozen. Unused, as upstream's: IR-50's kept
    output layer (keep_output_layer, for loading ir50.pth as published) and the pyramid's class token."""
    out = _forward_backward("poster", 224, img_size=224)
    assert out["logits"].shape == (4, L.NUM_CLASSES) and np.isfinite(out["loss"])
    assert out["grads_finite"] and out["frozen_without_grad"]
    assert all(n.startswith("ir_back.output_layer.") or n == "pyramid_fuse.cls_token" for n in out["unused"]), out["unused"]


# ------------------------------------------------------------------------------------------------ two GPUs
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA devices")
def test_two_gpus_train_data_parallel_through_accelerate(tmp_path):
    """`train.launcher: accelerate launch --multi_gpu --num_processes 2` (docs/real-data.md): the trainer runs in
    two processes, one GPU each, and writes the run's files once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launcher = (f"accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision bf16 "
                f"--dynamo_backend no --main_process_port {port}")
    frame = colour_set(tmp_path / "img", n_per_class=8, size=48)  # 42 training images, 14 validation
    cfg = T.TrainConfig.from_recipe("fast", model="cnn_tiny", model_kwargs={"img_size": 48, "head": "flatten"},
                                    epochs=2, batch_size=4, val_fraction=0.25, progress=False, seed=3)
    result = T.train_launched(cfg, frame, tmp_path / "two", launcher=launcher, echo=False)
    state = torch.load(tmp_path / "two" / "state.pt", weights_only=True)
    assert state["fingerprint"]["num_processes"] == 2
    assert state["global_step"] == 2 * (42 // (4 * 2))  # each process took half of every epoch's batches
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["epochs"] == 2 and 1 <= result.best_epoch <= 2
    assert np.isfinite(pd.read_csv(tmp_path / "two" / "log.csv").drop(columns="epoch").to_numpy()).all()


# ------------------------------------------------------------------------------------------------ SD at 512 px
def sd_shaped_pipeline(width: int = 32):
    """A StableDiffusionPipeline with SD 1.5's *shapes* - 512 px images, a VAE with 4 levels (8x down), 4-channel
    64x64 latents, a cross-attention UNet on 77-token text - but narrow random layers (no download)."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    from test_diffusion import char_tokenizer

    vocab, tok = char_tokenizer()
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), hidden_size=width, intermediate_size=2 * width,
                                        num_hidden_layers=2, num_attention_heads=4, bos_token_id=0, eos_token_id=1,
                                        pad_token_id=1, max_position_embeddings=77))
    unet = UNet2DConditionModel(sample_size=64, in_channels=4, out_channels=4, block_out_channels=(width, 2 * width),
                                layers_per_block=1, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=width,
                                attention_head_dim=8, norm_num_groups=16)
    vae = AutoencoderKL(block_out_channels=(16, 16, 32, 32), in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        norm_num_groups=16, sample_size=512)
    sched = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                          set_alpha_to_one=False, steps_offset=1)
    return StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet, scheduler=sched,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def _sample_sd_shaped(device: str = "cuda", dtype: str = "auto", n: int = 2) -> dict:
    """The project's SD backend (syntfer.strategies.diffusion.backends) on the SD-shaped pipeline, 2 steps."""
    from syntfer.strategies.diffusion import prompts as P
    from syntfer.strategies.diffusion.backends import StableDiffusionBackend

    backend = StableDiffusionBackend("sd-shaped-from-config", steps=2, guidance=10.0, height=512, width=512,
                                     dtype=dtype, pipeline=sd_shaped_pipeline(), device=device, batch_size=n)
    rows = P.stratified_subset(P.prompt_grid(), 1, seed=0).iloc[:n].copy()
    rows["prompt"] = [f"a {e} {a} {g}" for e, a, g in zip(rows["emotion"], rows["age"], rows["gender"])]
    images = backend.generate(rows.reset_index(drop=True), seeds=list(range(n)))
    return {"backend": backend, "images": images, "describe": backend.describe()}


def test_sd_shaped_unet_samples_512_px_at_fp16_on_cuda():
    out = _sample_sd_shaped()
    pipe = out["backend"].pipeline
    assert out["describe"]["dtype"] == "float16" and pipe.unet.dtype == torch.float16 and pipe.vae.dtype == torch.float16
    assert pipe.unet.device.type == "cuda" and pipe.unet.config.sample_size == 64
    assert [im.size for im in out["images"]] == [(512, 512)] * 2
    arrays = [np.asarray(im.convert("RGB")) for im in out["images"]]
    assert all(a.std() > 0 for a in arrays), "an all-flat image: fp16 overflow (NaN decoded as black)"
    assert not np.array_equal(arrays[0], arrays[1]), "two seeds gave one image"
