"""JupyterLab on the compendium: the notebooks open as notebooks and run in the `syntfer` kernel, from the project root.

``python -m syntfer.tools.lab install`` (run by ``make setup``) writes the environment's own Jupyter configuration under
``sys.prefix`` (never a per-user file), so every ``jupyter lab`` started from ``.venv`` behaves the same:

- the Jupyter server loads jupytext's server extension, whose contents manager serves ``notebooks/*.py``
  (py:percent) as notebooks; saving writes the py:percent text back (no ``.ipynb`` appears next to it);
- JupyterLab opens Python files with jupytext's "Jupytext Notebook" viewer on a double click (a package module
  still opens as text with right click → Open With → Editor) and fetches no news from the web;
- kernels start in the server's root folder (``make lab``: the project root), because every notebook's paths are
  relative to it, as in ``syntfer notebook`` (DVC) runs; without this a kernel would start in ``notebooks/``;
- kernel traffic is encrypted (CurveZMQ keys provisioned by the kernel manager; the ``syntfer`` kernelspec
  declares support), which is also what keeps ipykernel's "running over TCP without encryption" warning out of
  logs. `syntfer.tools.notebook` applies the same policy to papermill's kernels.

``make lab`` starts it on the project.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager

from syntfer.tools.notebook import TRANSPORT_ENCRYPTION  # the policy papermill runs use too

SERVER_CONFIG: dict[str, Any] = {
    "ServerApp": {"jpserver_extensions": {"jupyterlab_jupytext": True},
                  "kernel_manager_class": "syntfer.tools.lab.ProjectKernelManager"},
    "MappingKernelManager": {"transport_encryption": TRANSPORT_ENCRYPTION},
}
LAB_SETTINGS: dict[str, Any] = {
    "@jupyterlab/docmanager-extension:plugin": {"defaultViewers": {"python": "Jupytext Notebook"}},
    # no requests to jupyter.org from a reader's machine (and no "get notified about news?" prompt)
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
}


class ProjectKernelManager(AsyncMappingKernelManager):
    """Starts every kernel in the server's root folder instead of the notebook's folder.

    The notebooks (and their executed copies under ``outputs/nb/``) use paths relative to the project root, the
    working directory DVC and `syntfer notebook` run them in.
    """

    def cwd_for_path(self, path: str, **kwargs: Any) -> str:
        """The server's root folder, whatever the notebook's path."""
        return self.root_dir


def config_paths(prefix: str | Path = sys.prefix) -> tuple[Path, Path]:
    """(server config file, JupyterLab settings overrides file) of the environment at `prefix`."""
    prefix = Path(prefix)
    # the server's main config file: its `.d/` folder is read for `jpserver_extensions` only
    return (prefix / "etc" / "jupyter" / "jupyter_server_config.json",
            prefix / "share" / "jupyter" / "lab" / "settings" / "overrides.json")


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _merge_json(path: Path, settings: dict[str, Any]) -> None:
    """Merge `settings` into the JSON file at `path` (created if absent); its other keys are kept."""
    current: dict[str, Any] = {}
    if path.exists():
        try:
            current = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise SystemExit(f"{path} is not valid JSON ({e}); fix or remove it, then rerun") from e
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_merge(current, settings), indent=2) + "\n")


def install(prefix: str | Path = sys.prefix) -> list[Path]:
    """Merge the server config and the Lab settings into the environment at `prefix`; returns both paths.

    Keys already in those files (another package's, or a hand edit) are kept; ours are set.
    """
    server, overrides = config_paths(prefix)
    _merge_json(server, SERVER_CONFIG)
    _merge_json(overrides, LAB_SETTINGS)
    return [server, overrides]


def main(argv: list[str] | None = None) -> int:
    """`python -m syntfer.tools.lab install [--prefix DIR]`."""
    parser = argparse.ArgumentParser(prog="python -m syntfer.tools.lab", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("install",))
    parser.add_argument("--prefix", default=sys.prefix, help="environment to configure (default: this one)")
    args = parser.parse_args(argv)
    for path in install(args.prefix):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
