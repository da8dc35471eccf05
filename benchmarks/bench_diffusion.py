"""Images/s of the Stable Diffusion backend: our settings (fp16, batched, channels_last) vs diffusers' plain
defaults (fp32, one prompt per call), on an SD-1.5-sized pipeline with random weights built from configs.

Random weights are fine for speed (the same FLOPs); no download. Run on a GPU:

    python benchmarks/bench_diffusion.py --out bench_diffusion.json            # 512x512, 50 steps, CFG 10
    python benchmarks/bench_diffusion.py --tiny --device cpu --out /tmp/b.json  # smoke run of the script itself

The JSON names the device (GPU model), torch/diffusers versions and each configuration's images/s.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import string
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402


def build_pipeline(tiny: bool):
    """SD-1.5-shaped pipeline (UNet 860M, VAE, CLIP ViT-L text encoder) with random weights, or a tiny one."""
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in string.ascii_lowercase + string.digits + ",.()'-":
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    tok = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    if tiny:
        text = CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=37,
                                            num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=77))
        unet = UNet2DConditionModel(sample_size=8, block_out_channels=(32, 64), layers_per_block=1,
                                    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                                    attention_head_dim=8, norm_num_groups=16)
        vae = AutoencoderKL(block_out_channels=(16, 32), latent_channels=4, norm_num_groups=16,
                            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
    else:
        text = CLIPTextModel(CLIPTextConfig(vocab_size=max(len(vocab), 49408), hidden_size=768,
                                            intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                                            max_position_embeddings=77, hidden_act="quick_gelu"))
        unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768)  # diffusers' default = SD-1.5 UNet
        vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), latent_channels=4, sample_size=512,
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    sched = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True,
                          steps_offset=1)
    return StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet, scheduler=sched,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def timed(fn, warmup: int, reps: int, sync) -> float:
    for _ in range(warmup):
        fn()
    sync()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    sync()
    return (time.perf_counter() - t0) / reps


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--guidance", type=float, default=10.0)
    ap.add_argument("--batch-sizes", default="1,4,8,16")
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args()
    dev = args.device
    sync = torch.cuda.synchronize if dev.startswith("cuda") else (lambda: None)
    size = 16 if args.tiny else 512
    prompt = "a close-up portrait of a happy young woman, wearing glasses"
    results = []

    def run(pipe, batch: int, dtype: str) -> float:
        gens = [torch.Generator("cpu").manual_seed(i) for i in range(batch)]
        sec = timed(lambda: pipe(prompt=[prompt] * batch, num_inference_steps=args.steps,
                                 guidance_scale=args.guidance, height=size, width=size, generator=gens,
                                 output_type="np"), warmup=1, reps=args.reps, sync=sync)
        results.append({"config": dtype, "batch": batch, "seconds_per_call": round(sec, 3),
                        "images_per_s": round(batch / sec, 3)})
        print(results[-1], flush=True)
        return batch / sec

    # 1) diffusers' plain defaults: fp32, one prompt per call
    pipe = build_pipeline(args.tiny).to(dev)
    pipe.set_progress_bar_config(disable=True)
    run(pipe, 1, "fp32-defaults")
    del pipe
    if dev.startswith("cuda"):
        torch.cuda.empty_cache()
    # 2) ours: fp16 (GPU) weights, channels_last UNet/VAE, batched prompts
    dtype = torch.float16 if dev.startswith("cuda") else torch.float32
    pipe = build_pipeline(args.tiny).to(dev, dtype)
    pipe.unet.to(memory_format=torch.channels_last)
    pipe.vae.to(memory_format=torch.channels_last)
    pipe.set_progress_bar_config(disable=True)
    for b in [int(x) for x in args.batch_sizes.split(",")]:
        run(pipe, b, f"{str(dtype).replace('torch.', '')}-channels_last-batched")
    info = {"device": torch.cuda.get_device_name() if dev.startswith("cuda") else platform.processor() or "cpu",
            "torch": torch.__version__, "diffusers": __import__("diffusers").__version__, "tiny": args.tiny,
            "resolution": size, "steps": args.steps, "guidance": args.guidance, "results": results}
    with open(args.out, "w") as f:
        json.dump(info, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
