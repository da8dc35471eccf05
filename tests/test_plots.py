"""syntfer.core.plots.show: one render, saved where asked, the figure closed; plots.Figures: a notebook's figure folder."""
from __future__ import annotations

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402
from PIL import Image  # noqa: E402

from syntfer.core import plots  # noqa: E402


def test_show_saves_the_png_and_closes_the_figure(tmp_path):
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [1, 0])
    path = tmp_path / "sub" / "line.png"
    expected = plots.figure_png(fig, dpi=50)
    assert plots.show(fig, path, dpi=50) is None  # a figure cell ends with show(): nothing to echo after the image
    assert path.read_bytes() == expected and expected[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.fignum_exists(fig.number)
    with Image.open(path) as im:
        assert 40 <= im.size[0] <= 110  # ~2 in at 50 dpi, trimmed by bbox 'tight'


def test_show_accepts_a_seaborn_grid_and_no_path(tmp_path):
    g = sns.relplot(x=[0, 1, 2], y=[1, 0, 1], kind="line", height=1.5)
    assert plots.show(g) is None and not plt.fignum_exists(g.figure.number)
    assert list(tmp_path.iterdir()) == []


def test_only_hides_the_other_panels_during_the_block_and_restores_them():
    fig, axes = plt.subplots(1, 3)
    axes[2].set_visible(False)  # a panel hidden before stays hidden
    with plots.only(axes[1]) as ax:
        assert ax is axes[1]
        assert [a.get_visible() for a in axes] == [False, True, False]
        sns.heatmap([[0.1, 0.9], [0.5, 0.5]], annot=True, ax=ax, cbar=False)
    assert [a.get_visible() for a in axes] == [True, True, False]
    assert len(axes[1].texts) == 4  # the heatmap and its annotations landed on the right panel
    plt.close(fig)


def test_figures_saves_each_figure_by_name_at_the_notebooks_dpi(tmp_path):
    figs = plots.Figures(tmp_path / "out" / "figures", dpi=40)
    assert (tmp_path / "out" / "figures").is_dir() and figs.written == []  # the folder exists before any figure
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [1, 0])
    expected = plots.figure_png(fig, dpi=40)  # what plots.show(fig, path, dpi=40) writes
    assert figs.show(fig, "line") is None and not plt.fignum_exists(fig.number)
    assert (tmp_path / "out" / "figures" / "line.png").read_bytes() == expected
    g = sns.relplot(x=[0, 1, 2], y=[1, 0, 1], kind="line", height=1.5)
    figs.show(g, "grid")  # a seaborn grid too
    fig2, _ = plt.subplots(figsize=(1, 1))
    figs.show(fig2, "line")  # a cell run again overwrites its figure; listed once
    assert figs.written == [tmp_path / "out" / "figures" / "line.png", tmp_path / "out" / "figures" / "grid.png"]
    assert sorted(p.name for p in (tmp_path / "out" / "figures").iterdir()) == ["grid.png", "line.png"]


@pytest.mark.parametrize("name", ["", "sub/line", "..", "line.png", "x\\y"])
def test_figures_rejects_names_that_are_not_a_bare_file_stem(tmp_path, name):
    figs = plots.Figures(tmp_path)
    fig, _ = plt.subplots()
    with pytest.raises(ValueError, match="figure name"):
        figs.show(fig, name)
    plt.close(fig)
    assert list(tmp_path.iterdir()) == [] and figs.written == []
