"""JupyterLab on the project, with real parts: a Jupyter server on a loopback port serves notebooks/08_report.py as
a notebook and runs its cells in the `syntfer` kernel from the project root (REST + kernel websocket), and headless
Chromium loads the Lab page on that notebook and sees its rendered title cell. The same for an *executed* copy as the
runner writes it (`syntfer.tools.notebook`, what DVC stages leave under outputs/nb/): the server's contents API opens it
(it once answered HTTP 500, "Unable to read paired notebook", for every executed copy) and Chromium renders it.

The server gets empty per-user Jupyter folders, so what it does comes from the environment's own (sys-prefix)
configuration that `make setup` writes (`syntfer.tools.lab install`), as for a user of the project.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from syntfer.tools import lab
from syntfer.tools.notebook import parameters_cell, read_notebook

ROOT = Path(__file__).resolve().parents[1]
NB_PATH = "notebooks/08_report.py"
TITLE = "08 · Report"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
START_TIMEOUT_S = 90.0


@dataclass
class Server:
    """A running Jupyter server: where it listens, its token and its log file."""
    url: str
    token: str
    log: Path

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """A REST call with the token; returns the decoded JSON (None for an empty body)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Authorization": f"token {self.token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
        return json.loads(raw) if raw else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server and everything it started (kernels share its process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # the server shuts its kernels down on SIGTERM
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # anything left in the group (a kernel that did not exit)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


@contextlib.contextmanager
def _jupyter(root: Path, tmp: Path) -> Iterator[Server]:
    """`jupyter lab` on 127.0.0.1:<free port> with a token, rooted at `root`; always stopped afterwards."""
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           # per-user folders empty: only the environment's own configuration applies
           "JUPYTER_CONFIG_DIR": str(tmp / "config"), "JUPYTER_DATA_DIR": str(tmp / "data"),
           "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"), "JUPYTERLAB_SETTINGS_DIR": str(tmp / "lab-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "lab-workspaces")}
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    log = tmp / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    srv = Server(f"http://127.0.0.1:{port}", token, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                srv.request("GET", "/api/status")
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"jupyter lab did not answer /api/status within {START_TIMEOUT_S:.0f} s:\n"
                                       f"{log.read_text()[-3000:]}") from None
                time.sleep(0.25)
        yield srv
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    """`jupyter lab` rooted at the project."""
    with _jupyter(ROOT, tmp_path_factory.mktemp("jupyter")) as srv:
        yield srv


# A tiny narrative notebook, executed by the runner as a DVC stage executes the real ones: its executed copy carries
# everything the real executed copies carry (papermill metadata, the injected-parameters cell, a figure, a table).
TINY_NB = '''# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     name: syntfer
#     display_name: syntfer
#     language: python
# ---

# %% [markdown]
# # 99 · Tiny executed report

# %% tags=["parameters"]
n = 3

# %%
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from syntfer.core.plots import show

fig, ax = plt.subplots(figsize=(2, 1.5))
ax.plot(range(n))
show(fig)
pd.DataFrame({"n": [n]})
'''
TINY_TITLE = "99 · Tiny executed report"


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> Path:
    """A folder holding `nb/99_tiny/99_tiny.ipynb` (+ .html), executed by `syntfer.tools.notebook.run_notebook`."""
    from syntfer.tools.notebook import run_notebook

    root = tmp_path_factory.mktemp("executed")
    (root / "notebooks").mkdir()
    (root / "notebooks" / "99_tiny.py").write_text(TINY_NB)
    cwd = os.getcwd()
    os.chdir(root)  # the runner executes in the caller's working directory, as a stage does in the project root
    try:
        run_notebook(Path("notebooks/99_tiny.py"), Path("nb/99_tiny"), {"n": 4})
    finally:
        os.chdir(cwd)
    return root


@pytest.fixture(scope="module")
def executed_server(executed, tmp_path_factory) -> Iterator[Server]:
    """`jupyter lab` rooted at the folder of the executed copy (as `make lab` is at the project with outputs/nb/)."""
    with _jupyter(executed, tmp_path_factory.mktemp("jupyter-executed")) as srv:
        yield srv


def _execute(srv: Server, kernel_id: str, code: str, timeout: float = 60.0) -> tuple[str, dict[str, Any]]:
    """Run `code` in a kernel through the server's websocket; returns (stdout, execute_reply content)."""
    import websocket  # websocket-client (pinned in requirements-lock.txt)

    ws_url = srv.url.replace("http://", "ws://") + f"/api/kernels/{kernel_id}/channels"
    ws = websocket.create_connection(ws_url, header=[f"Authorization: token {srv.token}"], timeout=timeout)
    try:
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({
            "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                       "msg_type": "execute_request", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        stdout, reply, idle = [], None, False
        deadline = time.monotonic() + timeout
        while not (reply is not None and idle):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no execute_reply within {timeout} s (stdout so far: {''.join(stdout)!r})")
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            if kind == "stream" and msg["content"]["name"] == "stdout":
                stdout.append(msg["content"]["text"])
            elif kind == "error":
                raise AssertionError("cell failed in the kernel:\n" + "\n".join(msg["content"]["traceback"]))
            elif kind == "execute_reply":
                reply = msg["content"]
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                idle = True
        return "".join(stdout), reply
    finally:
        ws.close()


def test_install_writes_sys_prefix_config_and_keeps_other_settings(tmp_path):
    overrides = tmp_path / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    overrides.parent.mkdir(parents=True)
    overrides.write_text(json.dumps({"@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"},
                                     "@jupyterlab/docmanager-extension:plugin": {"autosave": False}}))
    server_cfg = tmp_path / "etc" / "jupyter" / "jupyter_server_config.json"
    server_cfg.parent.mkdir(parents=True)
    server_cfg.write_text(json.dumps({"ServerApp": {"jpserver_extensions": {"other_ext": True}}}))
    assert lab.install(tmp_path) == [server_cfg, overrides]
    cfg = json.loads(server_cfg.read_text())
    assert cfg["ServerApp"]["jpserver_extensions"] == {"other_ext": True, "jupyterlab_jupytext": True}
    assert cfg["ServerApp"]["kernel_manager_class"] == "syntfer.tools.lab.ProjectKernelManager"
    assert cfg["MappingKernelManager"]["transport_encryption"] == "auto"
    settings = json.loads(overrides.read_text())
    assert settings["@jupyterlab/apputils-extension:themes"] == {"theme": "JupyterLab Dark"}
    assert settings["@jupyterlab/docmanager-extension:plugin"] == {
        "autosave": False, "defaultViewers": {"python": "Jupytext Notebook"}}
    overrides.write_text("{not json")
    with pytest.raises(SystemExit, match="not valid JSON"):
        lab.install(tmp_path)


@pytest.mark.slow
def test_server_serves_the_report_as_a_notebook_and_runs_its_cells_in_the_syntfer_kernel(server):
    model = server.request("GET", "/api/contents/" + NB_PATH)
    assert model["type"] == "notebook", f"{NB_PATH} served as {model['type']!r}: jupytext's extension is not active"
    nb = model["content"]
    assert nb["metadata"]["kernelspec"]["name"] == "syntfer"
    assert nb["cells"][0]["cell_type"] == "markdown" and nb["cells"][0]["source"].startswith(f"# {TITLE}")
    param_cells = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
    assert len(param_cells) == 1
    _, defaults = parameters_cell(read_notebook(ROOT / NB_PATH))

    session = server.request("POST", "/api/sessions", {"path": NB_PATH, "name": "08_report.py", "type": "notebook",
                                                       "kernel": {"name": "syntfer"}})
    try:
        assert session["kernel"]["name"] == "syntfer"
        # the served parameters cell, then where and in which Python it ran
        code = (param_cells[0]["source"] + "\nimport json as _j, os as _o, sys as _s\n"
                "print(_j.dumps({'cwd': _o.getcwd(), 'prefix': _s.prefix, 'out_dir': out_dir}))")
        stdout, reply = _execute(server, session["kernel"]["id"], code)
    finally:
        server.request("DELETE", f"/api/sessions/{session['id']}")
    assert reply["status"] == "ok"
    ran = json.loads(stdout.strip().splitlines()[-1])
    assert ran["out_dir"] == defaults["out_dir"]
    assert Path(ran["prefix"]) == Path(sys.prefix), "the kernel is not the project's environment"
    assert Path(ran["cwd"]) == ROOT, "kernels must start in the project root (the notebooks' paths point there)"
    log = server.log.read_text()
    assert "without encryption" not in log, "kernel traffic is not encrypted (MappingKernelManager.transport_encryption)"


def _browser_missing() -> str | None:
    """Why the browser test cannot run here, or None."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        return (f"{' and '.join(missing)} not installed: `make browser` (.ci/install-browser) installs Debian's "
                "chromium + chromium-driver when run as root with apt-get")
    return None


@pytest.mark.slow
def test_executed_copy_opens_through_the_contents_api(executed, executed_server):
    """What `make lab` serves from outputs/nb/: the executed .ipynb, not its source, through jupytext's contents
    manager (the one that failed on the kept pairing), with its outputs and parameters."""
    path = "nb/99_tiny/99_tiny.ipynb"
    try:
        model = executed_server.request("GET", "/api/contents/" + path)
    except urllib.error.HTTPError as e:
        raise AssertionError(f"GET /api/contents/{path}: HTTP {e.code} {e.read()[:500]!r}") from None
    assert model["type"] == "notebook"
    nb = model["content"]
    assert "formats" not in nb["metadata"].get("jupytext", {}), "the executed copy still claims a py:percent pair"
    assert nb["metadata"]["papermill"]["parameters"] == {"n": 4}
    assert nb["cells"][0]["source"].startswith(f"# {TINY_TITLE}")
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the figure did not survive"
    # the listing of its folder (what Lab's file browser asks first) works too
    listing = executed_server.request("GET", "/api/contents/nb/99_tiny")
    assert {c["name"] for c in listing["content"]} >= {"99_tiny.ipynb", "99_tiny.html"}


@pytest.mark.slow
def test_readers_html_hides_code_and_ipynb_keeps_it(executed):
    html = (executed / "nb/99_tiny/99_tiny.html").read_text()
    assert TINY_TITLE in html and "data:image/png;base64" in html
    assert "from syntfer.core.plots import show" not in html, "the reader's HTML shows code cells"
    ipynb = json.loads((executed / "nb/99_tiny/99_tiny.ipynb").read_text())
    assert any("from syntfer.core.plots import show" in "".join(c["source"]) for c in ipynb["cells"])


def _chromium(tmp_path: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    # without the background-networking flags Chromium's own requests fail slowly on a closed network
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,900", f"--user-data-dir={tmp_path / 'chromium'}"):
        opts.add_argument(flag)
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not try to download a driver
    return webdriver.Chrome(options=opts, service=Service(executable_path=str(CHROMEDRIVER)))


def _rendered_title(driver, srv: Server, path: str, title: str):
    """Open `path` in Lab and wait for its rendered markdown h1 `title`; fails with what the page shows."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{srv.url}/lab/tree/{path}?token={srv.token}")
    xpath = "//div[contains(@class,'jp-Notebook')]//div[contains(@class,'jp-MarkdownOutput')]//h1"
    try:
        return WebDriverWait(driver, 90, poll_frequency=0.5).until(
            lambda d: next((e for e in d.find_elements(By.XPATH, xpath) if title in e.text), None))
    except TimeoutException:
        body = driver.find_element(By.TAG_NAME, "body").text
        raise AssertionError(f"no rendered notebook title {title!r} in the Lab page within 90 s; the page "
                             f"shows:\n{body[:2000]}") from None


def _stop_sessions(srv: Server) -> None:
    for s in srv.request("GET", "/api/sessions"):  # the page started a kernel; stop it now
        srv.request("DELETE", f"/api/sessions/{s['id']}")


@pytest.mark.slow
def test_lab_page_in_headless_chromium_renders_the_report_notebook(server, tmp_path):
    reason = _browser_missing()
    if reason:
        pytest.skip(reason)
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _chromium(tmp_path)
    try:
        h1 = _rendered_title(driver, server, NB_PATH, TITLE)
        assert h1.text.startswith(TITLE)
        kernel = WebDriverWait(driver, 60, poll_frequency=0.5).until(
            lambda d: next((e.text for e in d.find_elements(By.CSS_SELECTOR, ".jp-Toolbar-kernelName")
                            if e.text.strip()), None))
        assert kernel.strip() == "syntfer"
    finally:
        driver.quit()
        _stop_sessions(server)


@pytest.mark.slow
def test_lab_page_in_headless_chromium_renders_an_executed_copy(executed_server, tmp_path):
    """The reading path of the README: an executed copy opened in Lab shows its title and its figure."""
    reason = _browser_missing()
    if reason:
        pytest.skip(reason)
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _chromium(tmp_path)
    try:
        h1 = _rendered_title(driver, executed_server, "nb/99_tiny/99_tiny.ipynb", TINY_TITLE)
        assert h1.text.startswith(TINY_TITLE)
        WebDriverWait(driver, 30, poll_frequency=0.5).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output img"))
        assert "Unable to read" not in driver.find_element(By.TAG_NAME, "body").text
    finally:
        driver.quit()
        _stop_sessions(executed_server)
