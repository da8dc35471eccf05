"""Shared test hooks: the reliability tally (tests/faults.py) printed at the end of a run."""
from __future__ import annotations

from faults import TALLY


BROWSER_TEST = "test_lab_page_in_headless_chromium"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    skipped_browser = [r for r in terminalreporter.stats.get("skipped", []) if BROWSER_TEST in r.nodeid]
    if TALLY or skipped_browser:
        terminalreporter.section("reliability")
        for name, n in sorted(TALLY.items()):
            terminalreporter.write_line(f"{n:6d}  {name}")
        for r in skipped_browser:  # not a silent skip: say which check did not run, and why
            reason = r.longrepr[2] if isinstance(r.longrepr, tuple) else str(r.longrepr)
            terminalreporter.write_line(f"NOT RUN: the browser test ({r.nodeid}): {reason}", yellow=True, bold=True)
