"""Layer 2, the ML engine: data loading, models, training, evaluation, the subprocess launcher."""
