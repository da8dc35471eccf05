"""`syntfer publish`: the run's executed notebooks as a small, stamped, readable record under reports/."""
from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path

import nbformat
import numpy as np
import pytest
from PIL import Image

from syntfer import cli
from syntfer.study.publish import PublishError, Stamp, publish, shrink_image

ROOT = Path(__file__).resolve().parents[1]
STAMP = Stamp(date="2026-12-07", machine="Linux x86_64, a test CPU, 2 CPUs", commit="0123456789ab")


def _png(width: int, height: int, seed: int = 0) -> bytes:
    """A figure-like image: smooth gradients plus noise (a photo grid compresses like this)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([(x * 255 / width), (y * 255 / height), ((x + y) % 64) * 4], -1)
    img = np.clip(img + rng.normal(0, 20, img.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def _executed(path: Path, title: str, png: bytes, source: str) -> None:
    """An executed notebook as `syntfer notebook` leaves it (kept pairing included, as older runs have)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["jupytext"] = {"formats": "py:percent"}
    nb.metadata["papermill"] = {"input_path": source, "parameters": {"n": 1}}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"0": {}}}}
    fig = nbformat.v4.new_output("display_data", data={"image/png": base64.b64encode(png).decode(),
                                                       "text/plain": "<Figure>"})
    bar = nbformat.v4.new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "0"},
                                                       "text/plain": "steps: 100%"})
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {title}\n\n**Question.** Does it work? More text."),
                nbformat.v4.new_code_cell("x = 1", outputs=[bar, fig])]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


@pytest.fixture()
def run_dir(tmp_path) -> Path:
    nb = tmp_path / "nb"
    _executed(nb / "00_world" / "00_world.ipynb", "00 · World", _png(2400, 1600), "notebooks/00_world.py")
    for s in ("real_rafdb", "gan_f"):
        _executed(nb / "02_baseline" / s / "02_baseline.ipynb", f"02 · Baseline {s}", _png(300, 200, 1),
                  "notebooks/02_baseline.py")
    for src in ("digiface", "dcface"):
        _executed(nb / "03_pseudolabel" / src / "03_pseudolabel.ipynb", f"03 · Pseudo-labels {src}", _png(200, 100, 4),
                  "notebooks/03_pseudolabel.py")
    _executed(nb / "08_report" / "08_report.ipynb", "08 · Report", _png(800, 600, 2), "notebooks/08_report.py")
    (nb / "08_report" / "08_report.html").write_text("<html></html>")  # HTML is not published
    return nb


def test_publish_writes_small_stamped_unpaired_notebooks_and_an_index(run_dir, tmp_path):
    out = tmp_path / "reports"
    fig = tmp_path / "headline.png"
    fig.write_bytes(_png(1800, 1200, 3))
    done = publish(run_dir, out, stamp=STAMP, metrics=ROOT / "outputs/results/summary/metrics.json",
                   figures=[("headline", fig)])
    assert [p.path.name for p in done] == ["00_world.ipynb", "02_baseline.ipynb", "03_pseudolabel-dcface.ipynb",
                                         "03_pseudolabel-digiface.ipynb", "08_report.ipynb"]
    world = json.loads((out / "00_world.ipynb").read_text())
    assert "jupytext" not in world["metadata"] and "widgets" not in world["metadata"]
    stamp = "".join(world["cells"][0]["source"])
    assert "2026-12-07" in stamp and "0123456789ab" in stamp and "a test CPU" in stamp
    assert "".join(world["cells"][1]["source"]).startswith("# 00 · World")
    data = world["cells"][2]["outputs"][1]["data"]
    (mime, b64), = [(k, v) for k, v in data.items() if k.startswith("image/")]
    img = Image.open(io.BytesIO(base64.b64decode(b64)))
    assert img.width == 900 and len(base64.b64decode(b64)) < len(_png(2400, 1600)) / 3
    assert world["cells"][2]["outputs"][0]["data"] == {"text/plain": ["steps: 100%"]}  # widget view dropped
    grid = json.loads((out / "02_baseline.ipynb").read_text())
    assert "Baseline real_rafdb" in json.dumps(grid) and "`real_rafdb`" in "".join(grid["cells"][1]["source"])
    index = (out / "README.md").read_text()
    assert "[00 · World](00_world.ipynb)" in index and "Does it work?" in index and "0123456789ab" in index
    assert (out / "figures").is_dir() and "![headline](figures/headline." in index
    assert not list(out.glob("*.html"))
    # the same inputs, the same bytes
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    publish(run_dir, out, stamp=STAMP, metrics=ROOT / "outputs/results/summary/metrics.json",
            figures=[("headline", fig)])
    assert before == {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}


def test_over_the_budget_fails_naming_the_largest_file(run_dir, tmp_path):
    with pytest.raises(PublishError, match=r"over the budget of 0.05 MB; largest: 08_report.ipynb \(0.2"):
        publish(run_dir, tmp_path / "reports", stamp=STAMP, budget_mb=0.05)


def test_cli(run_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["publish", "--nb-dir", str(run_dir), "--out", "rep", "--metrics", "none.json",
                     "--date", "2026-01-02", "--machine", "m", "--commit", "abc"]) == 0
    assert "Run 2026-01-02, on m, code at commit `abc`" in (tmp_path / "rep/README.md").read_text()
    assert cli.main(["publish", "--nb-dir", str(tmp_path / "missing"), "--out", "rep2"]) == 1
    assert cli.main(["publish", "--nb-dir", str(run_dir), "--out", "rep3", "--figure", "bad name=x.png"]) == 1


def test_shrink_image_keeps_small_images_and_never_grows_them():
    small = _png(120, 80)
    mime, data = shrink_image(small)
    assert len(data) <= len(small)
    rgba = io.BytesIO()
    Image.new("RGBA", (50, 50), (255, 0, 0, 128)).save(rgba, format="PNG")
    assert shrink_image(rgba.getvalue())[0] == "image/png"
