"""The procedural face world: a self-rendered stand-in for every dataset of the study.

Identities (`Identity`, `sample_identity`, `identity_from_prompt_attributes`), expressions as FACS action units
(`EXPRESSION_AUS`, `sample_expression`), a numpy renderer (`render_face`), the domains' looks and native
on-disk formats (`DOMAINS`, `render_world`). Every image has ground truth (expression, AUs, identity,
attributes, pose, light, render seed) in its domain's `truth.csv`, which training code never reads.
See `syntfer.sources.world.identity` for how prompt words map to renderer attributes.
"""
from syntfer.sources.world.domains import DOMAINS, DomainSpec, make_sample
from syntfer.sources.world.expression import AU_NAMES, EXPRESSION_AUS, sample_expression, validate_aus
from syntfer.sources.world.identity import Identity, identity_from_prompt_attributes, sample_identity
from syntfer.sources.world.presets import PRESETS, Preset, class_counts
from syntfer.sources.world.render import Light, face_geometry, render_face
from syntfer.sources.world.writers import DOMAIN_NAMES, plan_domain, render_world

__all__ = [
    "AU_NAMES", "DOMAINS", "DOMAIN_NAMES", "DomainSpec", "EXPRESSION_AUS", "Identity", "Light", "PRESETS",
    "Preset", "class_counts", "face_geometry", "identity_from_prompt_attributes", "make_sample", "plan_domain",
    "render_face", "render_world", "sample_expression", "sample_identity", "validate_aus",
]
