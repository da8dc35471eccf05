"""Layer 5, the project's tooling: the notebook runner, JupyterLab setup, asset fetching, params presets."""
