"""Model registry and architectures. Importing this package registers every built-in model."""
from syntfer.models.registry import ModelConfig, create_model, list_models, register_model

__all__ = ["ModelConfig", "create_model", "list_models", "register_model"]
