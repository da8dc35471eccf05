"""syntfer: a reproducible compendium for facial expression recognition with synthetic data."""
__version__ = "0.1.0"
