"""Lint the DVC pipeline against the notebooks and params.yaml (docs/style.md, conventions 1-3)."""
import re
import shlex
from pathlib import Path

import pytest
import yaml

from syntfer.tools.notebook import parameters_cell, read_notebook

ROOT = Path(__file__).resolve().parents[1]
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
REF = re.compile(r"^\$\{([^}]+)\}$")


def lookup(dotted: str):
    node = PARAMS
    for part in dotted.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def stage_cmds():
    """(stage name, cmd) for every stage; foreach/matrix stages yield their template cmd."""
    for name, stage in DVC["stages"].items():
        body = stage.get("do", stage)
        cmds = body["cmd"] if isinstance(body["cmd"], list) else [body["cmd"]]
        for cmd in cmds:
            yield name, stage, body, cmd


def notebook_calls():
    for name, stage, body, cmd in stage_cmds():
        argv = shlex.split(cmd)
        if "notebook" not in argv:
            continue
        nb = argv[argv.index("notebook") + 1]
        params = {}
        for i, a in enumerate(argv):
            if a in ("-p", "--parameter"):
                params[argv[i + 1]] = argv[i + 2]
            elif a in ("-P", "--params-key"):  # a params.yaml key passed by name (lists)
                params[argv[i + 1]] = "${" + argv[i + 2] + "}"
        yield name, stage, body, nb, params


def test_params_keys_passed_by_name_are_tracked():
    """`-P NAME KEY` reads KEY from params.yaml in the runner, where DVC cannot see it: the stage must list KEY
    under `params:` so that changing it reruns the stage."""
    for name, stage, body, cmd in stage_cmds():
        argv = shlex.split(cmd)
        keys = [argv[i + 2] for i, a in enumerate(argv) if a in ("-P", "--params-key")]
        declared = {str(k) for k in body.get("params", [])}
        for key in keys:
            lookup(key)  # exists
            assert key in declared, f"stage {name}: -P ... {key} but {key} is not under its params:"


def test_every_numbered_notebook_has_a_stage():
    used = {nb for _, _, _, nb, _ in notebook_calls()}
    missing = [p.name for p in NOTEBOOKS if f"notebooks/{p.name}" not in used]
    assert not missing, f"notebooks without a DVC stage: {missing}"
    assert NOTEBOOKS, "no notebooks found"


@pytest.mark.parametrize("call", list(notebook_calls()), ids=lambda c: c[0])
def test_stage_parameters_exist_with_params_yaml_defaults(call):
    name, stage, body, nb, params = call
    assert (ROOT / nb).exists(), f"stage {name}: notebook {nb} not found"
    _, defaults = parameters_cell(read_notebook(ROOT / nb))
    for pname, value in params.items():
        assert pname in defaults, f"stage {name}: -p {pname} is not in {nb}'s parameters cell"
        m = REF.match(value)
        if m and not m.group(1).startswith("item") and "key" not in m.group(1):
            expected = lookup(m.group(1))
            assert defaults[pname] == expected, (f"stage {name}: {nb} default {pname}={defaults[pname]!r} "
                                                 f"differs from params.yaml {m.group(1)}={expected!r}")
    # the notebook depends on itself, and on the package
    deps = [str(d) for d in body.get("deps", [])]
    assert nb in deps, f"stage {name}: {nb} is not among its deps"


def test_no_stage_writes_under_data():
    for name, stage, body, cmd in stage_cmds():
        for out in body.get("outs", []) + body.get("metrics", []) + body.get("plots", []):
            path = out if isinstance(out, str) else next(iter(out))
            assert not str(path).startswith("data"), f"stage {name} writes under data/: {path}"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_do_not_read_params_chdir_or_call_dvc(nb):
    text = nb.read_text()
    for bad in ("params.yaml", "os.chdir", "!dvc", "subprocess"):
        assert bad not in text, f"{nb.name} uses {bad!r}"
    assert 'tags=["parameters"]' in text


def test_dvc_config_is_offline_and_quiet():
    cfg = (ROOT / ".dvc" / "config").read_text()
    assert "analytics = false" in cfg
    assert "html_template" in cfg


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_papermill_sees_every_parameter(nb):
    """papermill's own parser must read the parameters cell (else it warns and misreports them)."""
    from papermill.translators import PythonTranslator

    notebook = read_notebook(nb)
    idx, values = parameters_cell(notebook)
    assert [p.name for p in PythonTranslator.inspect(notebook.cells[idx])] == list(values)


# Notebook parameters no stage passes, each with why: they change how a notebook runs or shows, never a number
# it writes (a result-changing knob belongs in params.yaml, where `dvc exp run -S` and `dvc exp show` see it).
NOT_PASSED = {
    "notebooks/00_world.py": {
        "grid_cell": "pixel size of the sample grids (figures only)",
        "n_identities": "rows of the same-identity figure",
        "classifier_size": "the 'what a classifier sees' figure (the study's input size, shown)",
    },
    "notebooks/07_scaling.py": {
        "eval_batch_size": "evaluation batch size: speed only",
        "progress": "progress bars in logs",
        "keep_runs": "keeps each run's weights, state and split on disk (the curve's numbers are the same)",
    },
    "notebooks/02_baseline.py": {
        "cache_images": "decoded images kept in memory: speed only (TrainConfig._NEUTRAL)",
        "eval_batch_size": "evaluation batch size: speed only",
        "progress": "progress bars in logs",
    },
    "notebooks/06_sets.py": {
        "batch_size": "feature extraction batch size: speed only",
        "threads": "torch CPU threads: speed only",
    },
    "notebooks/05_gan_editing.py": {
        "crop_size": "face-context crop size of the seam measurement (a display-level choice of the notebook)",
    },
}


def test_every_notebook_parameter_is_passed_or_allowed():
    """Both directions: a stage passes only parameters its notebook has (above), and a notebook parameter no stage
    passes is on NOT_PASSED with a reason — a knob that bypasses params.yaml is an error."""
    passed: dict[str, set[str]] = {}
    for _, _, _, nb, params in notebook_calls():
        passed.setdefault(nb, set()).update(params)
    problems = []
    for nb, names in passed.items():
        _, defaults = parameters_cell(read_notebook(ROOT / nb))
        allowed = NOT_PASSED.get(nb, {})
        for name in sorted(set(defaults) - names - set(allowed)):
            problems.append(f"{nb}: parameter {name!r} is neither passed by its stage nor on NOT_PASSED")
        for name in sorted(set(allowed) & names):
            problems.append(f"{nb}: parameter {name!r} is on NOT_PASSED but a stage passes it")
        for name in sorted(set(allowed) - set(defaults)):
            problems.append(f"{nb}: NOT_PASSED names {name!r}, which is not a parameter")
    assert not problems, "\n".join(problems)
