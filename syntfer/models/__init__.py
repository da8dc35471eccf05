"""Model registry and architectures. Importing this package registers every built-in model."""
from syntfer.models.registry import ModelConfig, create_model, list_models, register_model
from syntfer.models import cnn, ir, poster, timm_models  # noqa: F401  (registers ir50, ir_tiny, cnn_tiny, poster, timm …)
from syntfer.models.checkpoint import LoadReport, load_checkpoint, load_pretrained, save_checkpoint

__all__ = ["LoadReport", "ModelConfig", "create_model", "list_models", "load_checkpoint", "load_pretrained",
           "register_model", "save_checkpoint"]
