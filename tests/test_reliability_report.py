"""`--reliability-report FILE` (tests/conftest.py) writes the tally of the tests that ran as a Markdown table."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from faults import job_env

ROOT = Path(__file__).resolve().parents[1]


def test_the_report_counts_what_the_tests_tallied(tmp_path):
    out = tmp_path / "reliability.md"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_ci_scripts.py",
                           "--reliability-report", str(out)], cwd=ROOT, env=job_env(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    text = out.read_text()
    assert "| faults injected (CI install) | 2 |" in text, text
    assert "| tests/test_ci_scripts.py | 2 |" in text, text
    assert "7 passed" in text and "do not edit by hand" in text
