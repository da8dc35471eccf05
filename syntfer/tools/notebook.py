"""The notebook runner behind every DVC stage.

``syntfer notebook notebooks/NN_name.py --out outputs/nb/NN_name -p key value ...`` reads the jupytext
(py:percent) notebook, checks that every ``-p`` parameter exists in its ``parameters`` cell, executes it with
papermill on the ``syntfer`` kernel with the repository root as working directory, and writes
``<out>/<name>.ipynb`` (executed, parameters in its metadata) and ``<out>/<name>.html`` (the reader's copy: code
cells hidden, their outputs shown; the ``.ipynb`` keeps the code). A failing cell fails the command with the cell's
error printed. Before anything runs, ``params.yaml`` in the working directory (the repository root, under DVC) is
checked against `syntfer.core.params_schema` (types, ranges, unknown keys).

The executed ``.ipynb`` is a notebook of its own, not the source's pair: the source's jupytext pairing metadata
(``jupytext.formats: py:percent``) is taken out, so JupyterLab with jupytext's server extension opens it (a kept
pairing made the server look for a ``.py`` twin next to it and answer HTTP 500 "Unable to read paired notebook").

The executed notebook is a DVC-tracked output, so it is made a function of its inputs alone
(`make_reproducible`): no execution timestamps or durations, no temporary paths, stable cell ids and
object reprs, and no stderr stream (warnings and progress bars go to the console instead, where `dvc repro`
shows them). Two runs of a stage in two checkouts then write the same bytes, and a clean clone's
`dvc repro` leaves `dvc.lock` as committed.

The kernel dies with the runner (`leashed`). jupyter_client starts a kernel in a session of its own, so a kill of
the stage's process group (``kill -9 -- -PGID``, a CI timeout, the fault tests) reached the runner but not the
kernel, nor what the kernel had started in turn (a ``train.launcher`` process training into the stage's outputs);
ipykernel noticed its parent's death only within a second, and its children not at all. Here the kernel runs
under a small supervisor (`leash_main`) that gets a signal from Linux the moment the runner dies and then kills
its own process group: the kernel and everything it started there.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from syntfer.core.params_schema import load_yaml
from syntfer.core.storage import write_text

KERNEL = "syntfer"
# CurveZMQ keys provisioned by the kernel manager for every kernel whose spec declares support (the `syntfer`
# kernelspec ipykernel writes does): the kernel's traffic is encrypted, and ipykernel no longer logs "Kernel is
# running over TCP without encryption" into every stage's output. 'auto' rather than 'required' so that a
# `--kernel` without Curve support still runs (and then warns, truthfully). JupyterLab uses the same policy
# (syntfer.tools.lab).
TRANSPORT_ENCRYPTION = "auto"


class NotebookError(RuntimeError):
    """A notebook that cannot be run as asked (bad parameter, missing kernel, failing cell)."""


def parse_value(text: str, default: Any = None) -> Any:
    """A CLI parameter value, typed by the notebook's default.

    A string default keeps the text as it is (so 'no' or '1e3' stay strings); otherwise the text is
    parsed as YAML (3 -> int, 0.5 -> float, true -> bool, [a, b] -> list). An int default accepts an
    integral float ("3.0"); a float default accepts an int.
    """
    if isinstance(default, str):
        return text
    value = load_yaml(text)  # 4e-05 is a float, as DVC writes it
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def parameters_cell(nb) -> tuple[int, dict[str, Any]]:
    """Index of the cell tagged `parameters` and its literal assignments (name -> value)."""
    found = [i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(found) != 1:
        raise NotebookError(f"expected exactly one cell tagged 'parameters', found {len(found)}")
    source = nb.cells[found[0]].source
    values: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.AnnAssign):
            targets, value = [node.target], node.value
        elif isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        else:
            raise NotebookError(f"parameters cell may hold only assignments of literals, found: "
                                f"{ast.get_source_segment(source, node)!r}")
        for t in targets:
            if not isinstance(t, ast.Name):
                raise NotebookError("parameters cell assigns to something other than a plain name")
            try:
                values[t.id] = ast.literal_eval(value)
            except ValueError as e:
                raise NotebookError(f"parameter {t.id!r} is not a plain literal (values derived in the "
                                    f"parameters cell are not recomputed when papermill injects new ones)") from e
    return found[0], values


def read_notebook(path: str | os.PathLike):
    import jupytext  # lazy: the Jupyter stack loads only when a notebook runs

    path = Path(path)
    if not path.exists():
        raise NotebookError(f"{path}: notebook not found")
    return jupytext.read(path)


def _check_kernel(name: str) -> None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel  # lazy: Jupyter stack

    try:
        KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel as e:
        raise NotebookError(f"Jupyter kernel {name!r} is not registered in this environment; run `make setup` "
                            f"(it runs `python -m ipykernel install --sys-prefix --name {name}`)") from e


# papermill's per-notebook and per-cell timings; nbclient adds `execution` timestamps to cell metadata
_TIMING_KEYS = ("start_time", "end_time", "duration")
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+>")  # default object reprs, e.g. <...Styler at 0x7f4b...>
_STYLER_ID = re.compile(r"\bT_[0-9a-f]{5}(?=[_\"'\s>#.])")  # the random uuid pandas' Styler puts in its HTML ids


def make_reproducible(nb, source: str | os.PathLike) -> str:
    """Strip what differs between two executions of the same notebook on the same inputs; in place.

    Removes papermill's start/end times and durations (notebook and cells) and nbclient's execution
    timestamps, records `source` (not the temporary copy papermill ran) as the input path, numbers the cells
    instead of the random ids jupytext and papermill draw, replaces memory addresses in plain-text reprs and
    the random table ids of pandas Styler HTML, and takes the stderr stream out: its progress-bar rates and
    the order in which it interleaves with stdout vary between runs, and warnings name absolute paths;
    adjacent stdout outputs are merged into one, since where a stream is cut depends on when it was flushed.
    Returns the removed stderr text (the caller prints it).
    """
    pm = nb.metadata.get("papermill", {})
    for k in _TIMING_KEYS:
        pm.pop(k, None)
    unpair(nb)
    if "input_path" in pm:
        pm["input_path"] = str(source)
    stderr = []
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:03d}"
        cell.metadata.pop("execution", None)
        for k in _TIMING_KEYS:
            cell.metadata.get("papermill", {}).pop(k, None)
        if "outputs" not in cell:
            continue
        kept = []
        for j, out in enumerate(cell.outputs):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                stderr.append(out.get("text", ""))
                continue
            data = out.get("data", {})
            if "text/plain" in data:
                data["text/plain"] = _ADDRESS.sub(">", data["text/plain"])
            if "text/html" in data:
                ids: dict[str, str] = {}
                data["text/html"] = _STYLER_ID.sub(
                    lambda m: ids.setdefault(m.group(0), f"T_c{i}o{j}n{len(ids)}"), data["text/html"])
            if (out.get("output_type") == "stream" and kept and kept[-1].get("output_type") == "stream"
                    and kept[-1].get("name") == out.get("name")):
                # how a stream is cut into outputs depends on flush timing: adjacent ones are merged
                kept[-1]["text"] = _text(kept[-1].get("text", "")) + _text(out.get("text", ""))
                continue
            kept.append(out)
        cell.outputs = kept
    _stable_widgets(nb)
    return "".join(stderr)


def unpair(nb) -> None:
    """Take the jupytext pairing out of a notebook's metadata (in place).

    The source's ``jupytext: {formats: py:percent, text_representation: ...}`` describes the text file, not the
    executed copy; kept, it makes jupytext's contents manager treat the ``.ipynb`` as one half of a pair whose
    ``.py`` half does not exist next to it, and the copy cannot be opened. The kernelspec and papermill's
    metadata stay.
    """
    jt = nb.metadata.get("jupytext")
    if isinstance(jt, dict):
        for key in ("formats", "text_representation"):
            jt.pop(key, None)
        if not jt:
            del nb.metadata["jupytext"]


def _text(text) -> str:
    return "".join(text) if isinstance(text, list) else text


_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\b")
_TQDM_TIMING = re.compile(r"\[[0-9:]+(?:&lt;|<)[^\]]*\]")  # "[00:01<00:00, 97.19it/s]": elapsed, left, rate


def _stable_widgets(nb) -> None:
    """ipywidgets (tqdm's bars in Lab) draw a random model id per widget and save a progress bar's elapsed time
    and rate in the notebook's widget state: ids are renumbered in order of appearance and timings dropped, so
    the bars still render in Lab from the saved state."""
    state = nb.metadata.get("widgets", {}).get(_WIDGET_STATE, {}).get("state", {})
    ids: dict[str, str] = {}
    queue: list[str] = []
    for cell in nb.cells:  # the displayed widgets in output order, then what they reference, breadth first
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get(_WIDGET_VIEW)
            if view and "model_id" in view and view["model_id"] not in ids:
                ids[view["model_id"]] = ""
                queue.append(view["model_id"])
    while queue:
        ref = json.dumps(state.get(queue.pop(0), {}), sort_keys=True)
        for key in re.findall(r"IPY_MODEL_([0-9a-f]+)", ref):
            if key not in ids:
                ids[key] = ""
                queue.append(key)
    for key in sorted(state):  # unreferenced models last, in an order their content decides
        if key not in ids:
            ids[key] = ""
    if not ids:
        return
    for n, key in enumerate(ids):
        ids[key] = f"{n:032x}"
    pattern = re.compile("|".join(re.escape(k) for k in sorted(ids, key=len, reverse=True)))

    def fix(text: str) -> str:
        return _TQDM_TIMING.sub("[]", pattern.sub(lambda m: ids[m.group(0)], text))

    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if _WIDGET_VIEW in out.get("data", {}):
                out["data"] = json.loads(fix(json.dumps(out["data"])))
    if state:
        nb.metadata["widgets"] = json.loads(fix(json.dumps(nb.metadata["widgets"])))


def export_html(ipynb: Path, html: Path, code: bool = False) -> None:
    """The reader's HTML of an executed notebook: markdown and outputs, code cells' inputs hidden (`code=False`;
    nbconvert's ``exclude_input``) so that it reads as a report; the ``.ipynb`` keeps the code."""
    import nbformat  # lazy: the Jupyter stack loads only when a notebook runs
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(exclude_input=not code, exclude_input_prompt=not code,
                            exclude_output_prompt=not code)
    body, _ = exporter.from_notebook_node(nbformat.read(ipynb, as_version=4))
    # nbconvert gives each widget output element a random uuid4 id: numbered instead (same bytes every run)
    ids: dict[str, str] = {}
    body = _UUID.sub(lambda m: ids.setdefault(m.group(0), f"widget-output-{len(ids):04d}"), body)
    write_text(html, body)


# --------------------------------------------------------------------------- the kernel's leash
_PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when the thread that started it ends


def leashed(cmd: list[str]) -> list[str]:
    """`cmd` (a kernel's command line) run under `leash_main`, tied to this process (Linux; elsewhere `cmd`)."""
    if not sys.platform.startswith("linux"):
        return cmd
    return [sys.executable, "-c", "from syntfer.tools.notebook import leash_main; leash_main()", str(os.getpid()),
            *cmd]


def leash_main(argv: list[str] | None = None) -> None:
    """``PARENT_PID CMD...``: run CMD (the kernel) in this process's group until it exits, and kill the group when
    the parent (the runner, which started this process from its main thread) dies.

    jupyter_client starts this process as the leader of a new session; the kernel and whatever it starts without a
    session of its own share its process group. Linux sends SIGTERM here when the runner dies
    (``prctl(PR_SET_PDEATHSIG)``), whatever killed it; SIGTERM from anyone (jupyter_client's own escalation when a
    kernel is slow to shut down) does the same: SIGKILL to the whole group, this process included. SIGINT is
    ignored here: jupyter_client interrupts a kernel by signalling its process group, and the interrupt is the
    kernel's. The exit status is the kernel's (128 + N when signal N ended it)."""
    import ctypes

    argv = sys.argv[1:] if argv is None else argv
    parent, cmd = int(argv[0]), argv[1:]

    def stop(*_) -> None:
        os.killpg(0, signal.SIGKILL)

    signal.signal(signal.SIGTERM, stop)
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent:  # the runner died before the signal was armed
        stop()
    # the kernel's own parent poller (ipykernel) then watches this process, not the runner it never knew
    kernel = subprocess.Popen(cmd, env={**os.environ, "JPY_PARENT_PID": str(os.getpid())})
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    code = kernel.wait()
    sys.exit(code if code >= 0 else 128 - code)


def _kernel_manager_class():
    """jupyter_client's async kernel manager (nbclient's default), its kernel command `leashed`."""
    from jupyter_client.manager import AsyncKernelManager  # lazy: Jupyter stack

    class LeashedKernelManager(AsyncKernelManager):
        def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
            return leashed(super().format_kernel_cmd(extra_arguments))

    return LeashedKernelManager


def run_notebook(notebook: str | os.PathLike, out_dir: str | os.PathLike, parameters: dict[str, Any] | None = None,
                 kernel: str = KERNEL, html: bool = True) -> Path:
    """Execute `notebook` with `parameters`; returns the executed .ipynb path. Raises NotebookError on failure."""
    import nbformat  # lazy: the Jupyter stack loads only when a notebook runs
    import papermill as pm
    from traitlets.config import Config

    notebook, out_dir = Path(notebook), Path(out_dir)
    parameters = dict(parameters or {})
    nb = read_notebook(notebook)
    _, defaults = parameters_cell(nb)
    unknown = sorted(set(parameters) - set(defaults))
    if unknown:
        raise NotebookError(f"{notebook}: parameter(s) {unknown} are not in its parameters cell "
                            f"(known: {sorted(defaults)})")
    _check_kernel(kernel)
    out_dir.mkdir(parents=True, exist_ok=True)  # papermill does not create it; DVC removes declared outs
    out_nb = out_dir / f"{notebook.stem}.ipynb"
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / f"{notebook.stem}.ipynb"
        nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
        nbformat.write(nb, src)
        try:
            pm.execute_notebook(str(src), str(out_nb), parameters=parameters, kernel_name=kernel,
                                cwd=os.getcwd(), progress_bar=False, log_output=False,
                                kernel_manager_class=_kernel_manager_class(),
                                config=Config({"KernelManager": {"transport_encryption": TRANSPORT_ENCRYPTION}}))
        except pm.PapermillExecutionError as e:
            raise NotebookError(f"{notebook}: cell {e.exec_count} failed:\n{e.ename}: {e.evalue}\n"
                                f"{''.join(e.traceback[-3:]) if e.traceback else ''}\n"
                                f"(executed notebook with the error: {out_nb})") from e
    executed = nbformat.read(out_nb, as_version=4)
    stderr = make_reproducible(executed, notebook)
    if stderr.strip():
        print(f"{notebook} stderr (not kept in {out_nb.name}):\n{stderr}", file=sys.stderr)
    write_text(out_nb, nbformat.writes(executed) + "\n")
    if html:
        export_html(out_nb, out_nb.with_suffix(".html"))
    return out_nb


PARAMS_FILE = "params.yaml"


def params_value(key: str, params_file: str | os.PathLike = PARAMS_FILE) -> Any:
    """The value of a dotted `key` (``train.seeds``) in a DVC params file.

    For `-P`: DVC interpolates scalars into a stage's command but not lists (``Cannot interpolate data of type
    'list'``), so a list-valued knob reaches its notebook by name; the stage declares the key under ``params:``
    so that DVC still tracks it (tests/test_pipeline.py checks that it does)."""
    path = Path(params_file)
    if not path.is_file():
        raise NotebookError(f"{path}: params file not found (needed for -P {key})")
    value: Any = load_yaml(path.read_text())
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise NotebookError(f"{path}: no key {key!r} (failed at {part!r})")
        value = value[part]
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("notebook", type=Path, help="py:percent notebook, e.g. notebooks/00_world.py")
    parser.add_argument("--out", required=True, type=Path, help="folder for the executed .ipynb and .html")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="papermill parameter (value parsed as YAML)")
    parser.add_argument("-P", "--params-key", nargs=2, action="append", default=[], metavar=("NAME", "KEY"),
                        help=f"papermill parameter NAME from the dotted KEY of {PARAMS_FILE} (for lists)")
    parser.add_argument("--kernel", default=KERNEL)
    parser.add_argument("--no-html", action="store_true")


def run(args: argparse.Namespace) -> int:
    from syntfer.core.params_schema import ParamsError, check_params_file

    t0 = time.perf_counter()
    try:
        if Path(PARAMS_FILE).is_file():  # a DVC stage runs at the repository root: check every knob first
            check_params_file(PARAMS_FILE)
        _, defaults = parameters_cell(read_notebook(args.notebook))
        params = {name: parse_value(value, defaults.get(name)) for name, value in args.parameter}
        for name, key in args.params_key:
            if name in params:
                raise NotebookError(f"parameter {name!r} given both by -p and by -P {key}")
            params[name] = params_value(key)
        out = run_notebook(args.notebook, args.out, params, kernel=args.kernel, html=not args.no_html)
    except (NotebookError, ParamsError) as e:
        print(f"syntfer notebook: error: {e}", file=sys.stderr)
        return 1
    print(f"executed {args.notebook} -> {out} in {time.perf_counter() - t0:.1f} s")
    return 0
