"""Shared test hooks: the reliability tally (tests/faults.py) printed at the end of a run."""
from __future__ import annotations

from faults import TALLY


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if TALLY:
        terminalreporter.section("reliability")
        for name, n in sorted(TALLY.items()):
            terminalreporter.write_line(f"{n:6d}  {name}")
