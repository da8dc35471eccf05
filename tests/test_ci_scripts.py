""".ci/install-browser: as root with apt-get, a failed install fails the script (CI must not turn the browser
test into a silent skip); not root or no apt-get, it explains and exits 0 (the browser test then skips, and the
skip is printed in the reliability summary)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from faults import TALLY

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / ".ci" / "install-browser"


def _tool(folder: Path, name: str, body: str) -> None:
    p = folder / name
    p.write_text(f"#!/bin/bash\n{body}\n")
    p.chmod(0o755)


def _run(tmp_path: Path, *, uid: int, apt: str | None, **extra: str) -> subprocess.CompletedProcess:
    """The script with a fake `id` (uid) and a fake `apt-get` (its body; None: no apt-get on PATH)."""
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    _tool(fake, "id", f"echo {uid}")
    if apt is not None:
        _tool(fake, "apt-get", apt)
    env = {"PATH": str(fake), "SYNTFER_CHROMIUM": str(tmp_path / "chromium"),
           "SYNTFER_CHROMEDRIVER": str(tmp_path / "chromedriver"), "HOME": str(tmp_path), **extra}
    return subprocess.run(["/bin/bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(not Path("/bin/bash").exists(), reason="needs /bin/bash")
def test_root_with_apt_and_a_failing_install_fails_loudly(tmp_path):
    done = _run(tmp_path, uid=0, apt="exit 100")
    assert done.returncode == 1, done.stderr
    assert "install-browser: error: running as root with apt-get" in done.stderr
    TALLY["faults injected (CI install)"] += 1


def test_root_with_apt_that_installs_nothing_fails(tmp_path):
    done = _run(tmp_path, uid=0, apt="exit 0")
    assert done.returncode == 1 and "still missing" in done.stderr, done.stderr
    TALLY["faults injected (CI install)"] += 1


def test_root_with_apt_that_installs_succeeds(tmp_path):
    installs = (f'if [ "$1" = install ]; then printf "#!/bin/bash\\necho ChromeDriver 1.2\\n" > {tmp_path}/chromedriver; '
                f'/bin/cp {tmp_path}/chromedriver {tmp_path}/chromium; /bin/chmod +x {tmp_path}/chromium '
                f'{tmp_path}/chromedriver; fi')
    done = _run(tmp_path, uid=0, apt=installs)
    assert done.returncode == 0 and "ChromeDriver 1.2" in done.stdout, done.stderr


@pytest.mark.parametrize("uid,apt,reason", [(1000, "exit 100", "not root"), (0, None, "no apt-get here")])
def test_without_root_or_apt_it_explains_and_exits_0(tmp_path, uid, apt, reason):
    done = _run(tmp_path, uid=uid, apt=apt)
    assert done.returncode == 0 and f"install-browser: {reason}; the browser test will skip" in done.stderr


def test_already_installed_is_a_no_op(tmp_path):
    for name in ("chromium", "chromedriver"):
        _tool(tmp_path, name, "true")
    done = _run(tmp_path, uid=0, apt="exit 100")  # apt-get is never called
    assert done.returncode == 0 and not done.stderr


def test_an_explicit_opt_out_is_said_and_exits_0(tmp_path):
    done = _run(tmp_path, uid=0, apt="exit 100", SYNTFER_SKIP_BROWSER="1")
    assert done.returncode == 0 and "SYNTFER_SKIP_BROWSER=1, not installing" in done.stderr
