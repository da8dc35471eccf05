"""Strategy (ii): prompt-driven diffusion synthesis (docs/method.md §4).

Modules: `embedded` (the small text/AU-conditioned model trained on the world's captioned `web` domain: one
import for its parts `model`, `captioned`, `training`, `sampling`, `text`, `codecs`, `denoisers`), `probe`
(fidelity along training), `backends` (one interface over Stable Diffusion via diffusers and the embedded model),
`fineface` (the AU adapter as diffusers attention processors), `generation` (resumable, sharded,
manifest-writing generation), `curation` (filters, de-duplication, balancing), `figures` (the notebook's
figures), `cli` (`syntfer diffusion ...`).
"""
from syntfer.core.strategy import Strategy

STRATEGY = Strategy("diffusion_", "diffusion", "synthetic",
                    "strategy (ii): prompt-driven diffusion synthesis", order=2,
                    commands=(("prompts", "syntfer.strategies.diffusion.prompts",
                               "write the paper's diffusion prompt grid (strategy ii)"),
                              ("diffusion", "syntfer.strategies.diffusion.cli",
                               "train the embedded model / generate / curate diffusion sets (strategy ii)")),
                    words=(("_au", ", AU"),), look="ref_web")
"""How the study names this strategy's sets (`syntfer.core.strategy`): ``diffusion_<variant>``."""

