"""The papermill runner: parameters reach the notebook, bad ones and failing cells fail loudly."""
import json

import pytest

from syntfer import cli
from syntfer.tools.notebook import (NotebookError, make_reproducible, parameters_cell, parse_value, read_notebook,
                                    run_notebook)

NB = '''# %% [markdown]
# # A tiny notebook

# %% tags=["parameters"]
n = 2
name = "x"
out_dir = "outputs/tmp"

# %%
import json, pathlib
pathlib.Path(out_dir).mkdir(parents=True, exist_ok=True)
pathlib.Path(out_dir, "result.json").write_text(json.dumps({"n2": n * n, "name": name}))
assert n >= 0, "n must be non-negative"
'''


@pytest.fixture()
def nb(tmp_path):
    p = tmp_path / "01_tiny.py"
    p.write_text(NB)
    return p


def test_parameters_cell_reads_literals(nb):
    idx, values = parameters_cell(read_notebook(nb))
    assert values == {"n": 2, "name": "x", "out_dir": "outputs/tmp"}


def test_parse_value_types_by_default():
    assert parse_value("no", "x") == "no"
    assert parse_value("3", 1) == 3 and parse_value("3", 1.0) == 3.0 and isinstance(parse_value("3", 1.0), float)
    assert parse_value("[1, 2]", [0]) == [1, 2]
    assert parse_value("true", False) is True
    # DVC writes `dvc exp run -S train.lr=4e-5` as `lr: 4e-05` (YAML 1.2), which YAML 1.1 reads as a string
    assert parse_value("4e-05", 0.002) == 4e-05 and parse_value("1e3", 1.0) == 1000.0
    assert parse_value("4e-05", "x") == "4e-05"


@pytest.mark.slow
def test_run_injects_parameters_and_exports_html(nb, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the runner executes with the caller's working directory
    rc = cli.main(["notebook", str(nb), "--out", "run1", "-p", "n", "5", "-p", "out_dir", "res", "-p", "name", "no"])
    assert rc == 0
    assert json.loads((tmp_path / "res/result.json").read_text()) == {"n2": 25, "name": "no"}
    assert (tmp_path / "run1/01_tiny.ipynb").exists() and (tmp_path / "run1/01_tiny.html").stat().st_size > 1000
    executed = json.loads((tmp_path / "run1/01_tiny.ipynb").read_text())
    assert executed["metadata"]["papermill"]["parameters"]["n"] == 5


@pytest.mark.slow
def test_failing_cell_fails_with_its_error(nb, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NotebookError, match="n must be non-negative"):
        run_notebook(nb, tmp_path / "run2", {"n": -1, "out_dir": "res2"}, html=False)


def test_unknown_parameter_is_rejected(nb, tmp_path):
    with pytest.raises(NotebookError, match=r"parameter\(s\) \['m'\] are not in its parameters cell"):
        run_notebook(nb, tmp_path / "run3", {"m": 1})


PROGRESS_NB = '''# %% tags=["parameters"]
n = 3

# %%
from tqdm.auto import tqdm

total = sum(i for i in tqdm(range(n), desc="steps"))
print("total", total)

# %%
import matplotlib.pyplot as plt
from syntfer.core.plots import show

fig, ax = plt.subplots(figsize=(2, 1.5))
ax.plot(range(n))
show(fig)
'''


VOLATILE_NB = '''# %% tags=["parameters"]
out_dir = "res"

# %%
import os, sys, time, warnings
import pandas as pd
from tqdm.auto import tqdm
for _ in tqdm(range(3)):
    time.sleep(0.01 * (os.getpid() % 5))
warnings.warn(f"a warning that names {os.getcwd()}")
print("stdout line", flush=True)
print("stderr line", file=sys.stderr, flush=True)
object()

# %%
pd.DataFrame({"a": [1.0, 2.5]}).style.format(precision=2)
'''


@pytest.mark.slow
def test_stage_log_and_executed_notebook_are_clean(tmp_path, monkeypatch, capfd):
    """No 'IProgress not found' (ipywidgets is installed) and no 'running over TCP without encryption' (the kernel
    manager provisions CurveZMQ keys): the kernel's stderr is this process's, so capfd sees what a stage log shows.
    In the executed notebook a progress bar is a widget and a figure cell shows its image and nothing else."""
    monkeypatch.chdir(tmp_path)
    nb_file = tmp_path / "02_progress.py"
    nb_file.write_text(PROGRESS_NB)
    out = run_notebook(nb_file, tmp_path / "run", {"n": 4}, html=False)
    log = capfd.readouterr()
    for text in ("without encryption", "IProgress not found", "TqdmWarning"):
        assert text not in log.out + log.err, f"stage log shows {text!r}:\n{log.err[-2000:]}"
    executed = json.loads(out.read_text())
    outputs = [o for c in executed["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("name") == "stderr"], "a cell wrote to stderr"
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs), \
        "the tqdm bar is not an ipywidgets progress bar"
    state = executed["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert any(m["model_name"] == "FloatProgressModel" for m in state.values()), "widget state not saved for Lab"
    assert any("total 6" in "".join(o.get("text", "")) for o in outputs)
    figure_cell = executed["cells"][-1]["outputs"]
    assert [o["output_type"] for o in figure_cell] == ["display_data"] and "image/png" in figure_cell[0]["data"], \
        f"the figure cell shows {[o['output_type'] for o in figure_cell]} (plots.show must display and return None)"


@pytest.mark.slow
def test_executed_notebook_is_the_same_bytes_in_two_checkouts(tmp_path, monkeypatch):
    """Timings, temporary paths, random cell ids, memory addresses, Styler ids and stderr stay out."""
    outs = []
    for where in ("a", "b/deeper"):
        root = tmp_path / where
        (root / "notebooks").mkdir(parents=True)
        (root / "notebooks" / "02_volatile.py").write_text(VOLATILE_NB)
        monkeypatch.chdir(root)
        assert cli.main(["notebook", "notebooks/02_volatile.py", "--out", "outputs/nb"]) == 0
        outs.append(root / "outputs" / "nb")
    for name in ("02_volatile.ipynb", "02_volatile.html"):
        a, b = (o.joinpath(name).read_bytes() for o in outs)
        assert a == b, name
    executed = json.loads(outs[0].joinpath("02_volatile.ipynb").read_text())
    texts = json.dumps([c.get("outputs", []) for c in executed["cells"]])
    assert "stdout line" in texts and "stderr line" not in texts and "0x" not in texts and "T_c" in texts
    assert executed["metadata"]["papermill"]["input_path"] == "notebooks/02_volatile.py"
    assert "duration" not in executed["metadata"]["papermill"]


def test_stdout_cut_at_different_flushes_is_one_output():
    """The same prints can arrive as one stream output or several (and stderr, taken out, may have sat between
    them): the executed notebook holds one stdout output per run of prints, whatever the flush timing was."""
    import nbformat

    def executed(*outs):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell("print('a'); print('b')", outputs=list(outs))]
        return nb

    def stream(name, text):
        return nbformat.v4.new_output("stream", name=name, text=text)

    display = nbformat.v4.new_output("display_data", data={"text/plain": "fig"})
    one = executed(stream("stdout", "a\nb\n"), display, stream("stdout", "c\n"))
    cut = executed(stream("stdout", "a\n"), stream("stderr", "warn\n"), stream("stdout", "b\n"), display,
                   stream("stdout", "c\n"))
    assert make_reproducible(one, "nb.py") == "" and make_reproducible(cut, "nb.py") == "warn\n"
    assert nbformat.writes(one) == nbformat.writes(cut)
    assert [o.get("text") for o in cut.cells[0].outputs] == ["a\nb\n", None, "c\n"]


def test_executed_copy_is_not_paired_with_a_py_file():
    """The source's jupytext pairing (`formats: py:percent`) describes the .py, not the executed .ipynb; kept, it
    makes JupyterLab's jupytext contents manager refuse the copy (tests/test_lab.py opens one through a server)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["jupytext"] = {"formats": "py:percent", "text_representation": {"extension": ".py"}}
    nb.metadata["kernelspec"] = {"name": "syntfer", "display_name": "syntfer", "language": "python"}
    make_reproducible(nb, "nb.py")
    assert "jupytext" not in nb.metadata and nb.metadata["kernelspec"]["name"] == "syntfer"
    nb.metadata["jupytext"] = {"formats": "ipynb,py:percent", "notebook_metadata_filter": "-all"}
    make_reproducible(nb, "nb.py")
    assert nb.metadata["jupytext"] == {"notebook_metadata_filter": "-all"}
