"""Strategy (iii): task-aware GAN expression editing (GANmut-style), docs/method.md §5.

- `controls`: the paper's F/V control values, control spaces (linear ρ·θ, Gaussian x·y);
- `networks`: StarGAN-like generator + task-aware PatchGAN discriminator, GANmut checkpoint loading;
- `training`: WGAN-GP training with n_critic, classification, code and cycle losses (resumable);
- `editing`: crop → edit → paste, the seam's domain-adaptation degradation, pluggable restorers, dlib detection;
- `sets`: the _10/_70/_RAF recipes and the resumable, seeded set writer (manifest per image);
- `measurements` / `figures`: fidelity, identity and seam measurements and the notebook's figures;
- `cli`: ``syntfer gan train|edit``.
"""
from syntfer.core.strategy import Strategy

STRATEGY = Strategy("gan_", "GAN editing", "synthetic",
                    "strategy (iii): task-aware GAN expression editing", order=3,
                    commands=(("gan", "syntfer.strategies.gan.cli",
                               "train a GANmut-style editor / write GAN-edited sets (strategy iii)"),),
                    look="ref_ffhq")
"""How the study names this strategy's sets (`syntfer.core.strategy`): ``gan_<variant>``."""

