"""`make setup`'s assets: without npm the plots template falls back to a CDN with a one-line notice, and is
replaced by the offline one once npm is there."""
from syntfer.tools import assets


def test_plots_template_without_npm_uses_a_cdn_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(assets.shutil, "which", lambda name: None)
    path = assets.build_plots_template(tmp_path / "offline_plots.html")
    page = path.read_text()
    assert assets.CDN_MARK in page and "{plot_divs}" in page and "cdn.jsdelivr.net/npm/vega@" in page
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "npm not found" in out
    # with npm present later, the CDN page is rebuilt offline
    monkeypatch.setattr(assets.shutil, "which", lambda name: "/usr/bin/npm")
    monkeypatch.setattr(assets, "_npm_pack", lambda name, version, member, workdir: f"/* {name} */")
    page = assets.build_plots_template(path).read_text()
    assert assets.CDN_MARK not in page and "<script>/* vega-embed */</script>" in page


def test_an_offline_template_is_kept(tmp_path, monkeypatch):
    path = tmp_path / "offline_plots.html"
    path.write_text("offline page {plot_divs}")
    monkeypatch.setattr(assets.shutil, "which", lambda name: None)
    assert assets.build_plots_template(path).read_text() == "offline page {plot_divs}"
