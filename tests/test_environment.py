"""pyproject.toml and environment.yml pin the same packages; the lock agrees with both."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _norm(req: str) -> tuple[str, str]:
    name, _, version = req.partition("==")
    return re.sub(r"[-_.]+", "-", name.strip().lower()), version.strip()


def test_pyproject_and_environment_yml_name_the_same_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    pip = next(d["pip"] for d in env if isinstance(d, dict))
    assert all("==" in r for r in project), "every dependency is pinned"
    assert dict(map(_norm, project)) == dict(map(_norm, pip))


def test_lock_contains_every_direct_pin():
    project = dict(map(_norm, tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]))
    lock = dict(_norm(line) for line in (ROOT / "requirements-lock.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    mismatched = {k: (v, lock.get(k)) for k, v in project.items() if lock.get(k) != v}
    assert not mismatched, f"pyproject pins missing or different in requirements-lock.txt: {mismatched}"
