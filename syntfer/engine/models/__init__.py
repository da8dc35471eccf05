"""Model registry and architectures. Importing this package registers every built-in model."""
from syntfer.engine.models.registry import (ModelConfig, ModelOptionsError, create_model, list_models, model_options,
                                            register_model)
from syntfer.engine.models import cnn, ensemble, ir, poster, timm_models  # noqa: F401  (registers ir50, cnn_tiny, ensemble …)
from syntfer.engine.models.checkpoint import LoadReport, load_checkpoint, load_pretrained, save_checkpoint
from syntfer.engine.models.ensemble import Ensemble

__all__ = ["Ensemble", "LoadReport", "ModelConfig", "ModelOptionsError", "create_model", "list_models", "load_checkpoint",
           "load_pretrained", "model_options", "register_model", "save_checkpoint"]
