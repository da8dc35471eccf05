"""Fidelity along training: sample a fixed stratified set of grid prompts with the EMA weights and judge them.

`fidelity_probe(judge_dir, …)` returns the `evaluate` callback of `training.train_embedded`: every call
samples the same prompts with the same per-image seeds (text only, and with FineFace's AU vectors when the model
has an AU encoder), reads them with the project's judge (`syntfer.instruments.judge`) and returns mean-class expression
fidelity plus per-class values. The judge is a measuring instrument only: nothing of it reaches the gradients.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from syntfer.core import labels as L
from syntfer.strategies.diffusion.sampling import sample_images
from syntfer.strategies.diffusion.text import adapt_prompt
from syntfer.instruments.judge import Judge, fidelity_table, mean_class_fidelity
from syntfer.strategies.diffusion.prompts import au_matrix, prompt_grid, stratified_subset


def fidelity_probe(judge_dir: str, *, per_emotion: int = 10, steps: int = 30, guidance: float = 3.0,
                   seed: int = 0) -> Callable:
    """The `evaluate(model, step) -> dict` callback for `train_embedded` (module docstring)."""
    judge = Judge.load(judge_dir)
    prompts = stratified_subset(prompt_grid(), per_emotion, seed=seed)
    texts = [adapt_prompt(t) for t in prompts["prompt"]]
    labels = prompts["label"].tolist()
    seeds = [seed * 100_003 + i for i in range(len(texts))]
    aus = au_matrix(prompts["emotion"].tolist())

    def evaluate(model, step: int) -> dict[str, float]:
        out: dict[str, float] = {}
        modes = {"text": None, "au": aus} if model.cfg.use_aus else {"text": None}
        for mode, a in modes.items():
            images, _ = sample_images(model, texts, seeds, aus=a, steps=steps, guidance=guidance)
            table = fidelity_table(judge.probs(np.ascontiguousarray(images)), labels, where=f"probe {mode}")
            out[f"fidelity_{mode}"] = mean_class_fidelity(table)
            for r in table.itertuples():
                if r[1] in L.CLASSES:
                    out[f"{mode}_{r[1]}"] = float(r.fidelity)
        return out

    return evaluate
