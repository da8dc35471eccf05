"""params.yaml against its schema (syntfer/core/params_schema.py): the repository's file passes, and each kind of bad
knob is refused with the key, the value and what was expected, by `syntfer notebook` before any cell runs."""
from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import pytest
import yaml

from faults import TALLY, cli, job_env
from syntfer.core import params_schema as S

ROOT = Path(__file__).resolve().parents[1]


def _params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_the_repository_params_yaml_follows_the_schema():
    """Fails with the key to add to SCHEMA when params.yaml gains a knob (or one to drop when it loses one)."""
    errors = S.validate(_params())
    assert not errors, "params.yaml vs syntfer/core/params_schema.py SCHEMA:\n  " + "\n  ".join(errors)


def test_schema_constants_match_the_code():
    from syntfer.core import labels as L
    from syntfer.strategies.pseudolabel.dataset import LINK_MODES
    from syntfer.engine.training import RECIPES

    assert S.CLASSES == L.CLASSES and S.LINK_MODES == LINK_MODES and set(S.RECIPES) == set(RECIPES)


BAD = [  # (dotted key, bad value or "<delete>", fragment of the expected message)
    ("train.epochs", 0, "train.epochs = 0; expected an integer >= 1"),
    ("train.epochs", "24", "train.epochs = '24'; expected an integer >= 1"),
    ("train.epochs", True, "train.epochs = True; expected an integer"),
    ("train.batch_size", -8, "train.batch_size = -8; expected an integer >= 1"),
    ("train.lr", 0.0, "train.lr = 0.0; expected a number > 0.0"),
    ("train.lr", ".nan", "train.lr = nan; expected a number > 0.0"),
    ("train.seeds", [], "train.seeds = []; expected a non-empty list"),
    ("train.seeds", [0, "one"], "train.seeds = [0, 'one']; expected a list of an integer >= 0 (item 'one')"),
    ("train.val_fraction", 1.0, "train.val_fraction = 1.0; expected a number > 0.0 and < 1.0"),
    ("train.model_kwargs", "{img_size: 48}", "train.model_kwargs = '{img_size: 48}'; expected a JSON object"),
    ("train.model_kwargs", '{"img_size": 48}', "expected a JSON object in a string of model name -> JSON object"),
    ("instruments.model_kwargs", '{"cnn_tiny": 48}', "instruments.model_kwargs = '{\"cnn_tiny\": 48}'; expected a "
                                                     "JSON object in a string of model name"),
    ("train.recipe", "quick", "train.recipe = 'quick'; expected one of ['fast', 'poster', 'upstream_ir50']"),
    ("train.balanced", "yes", "train.balanced = 'yes'; expected true or false"),
    ("world.max_probe_accuracy", 1.5, "world.max_probe_accuracy = 1.5; expected a number >= 0.0 and <= 1.0"),
    ("pseudolabel.threshold", -0.1, "pseudolabel.threshold = -0.1; expected a number >= 0.0 and <= 1.0"),
    ("pseudolabel.sweep", "0.2,,0.4", "expected comma-separated items, none empty"),
    ("pseudolabel.sweep", "0.2,x", "expected comma-separated numbers (item 'x')"),
    ("study.minority_classes", "disgust,contempt", "(item 'contempt')"),
    ("diffusion.backends", "embedded,dalle", "(item 'dalle')"),
    ("diffusion.min_fidelity", 2, "diffusion.min_fidelity = 2; expected a number >= 0.0 and <= 1.0"),
    ("gan.recipe", 10, "gan.recipe = 10; expected one of ['10', '70', 'RAF']"),
    ("datasets.labeled.rafdb.root", "", "datasets.labeled.rafdb.root = ''; expected a non-empty string"),
    ("train.epoch", 3, "train.epoch: unknown key (value 3)"),
    ("gan.intensity", "<delete>", "gan.intensity: missing"),
]


def _set(params: dict, key: str, value) -> dict:
    params = copy.deepcopy(params)
    *head, last = key.split(".")
    node = params
    for h in head:
        node = node[h]
    if value == "<delete>":
        del node[last]
    else:
        node[last] = float("nan") if value == ".nan" else value
    return params


@pytest.mark.parametrize("key,value,expect", BAD, ids=[f"{k}={v}" for k, v, _ in BAD])
def test_a_bad_knob_is_named(key, value, expect):
    with pytest.raises(S.ParamsError) as e:
        S.check_params(_set(_params(), key, value))
    assert expect in str(e.value) and "1 key(s)" in str(e.value), str(e.value)
    TALLY["bad inputs tried"] += 1


def test_every_breach_is_listed_at_once():
    p = _set(_set(_set(_params(), "train.epochs", 0), "train.seeds", []), "gan.per_class", -1)
    errors = S.validate(p)
    assert [e.split(" ")[0] for e in errors] == ["train.seeds", "train.epochs", "gan.per_class"], errors


def test_the_notebook_runner_checks_params_before_running_anything(tmp_path):
    """A stage with a bad knob stops at once: one error line naming the key, status 1, no cell executed."""
    (tmp_path / "notebooks").mkdir()
    nb = tmp_path / "notebooks" / "01_x.py"
    nb.write_text('# %% tags=["parameters"]\nout = "ran.txt"\n\n# %%\nopen(out, "w").write("ran")\n')
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(_set(_params(), "train.batch_size", 0)))
    done = subprocess.run(cli("notebook", nb, "--out", tmp_path / "nb"), cwd=tmp_path, env=job_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]
    assert done.stderr.strip() == ("syntfer notebook: error: params.yaml: 1 key(s) break the schema: "
                                   "train.batch_size = 0; expected an integer >= 1")
    assert not (tmp_path / "ran.txt").exists() and not (tmp_path / "nb").exists()
    TALLY["bad inputs tried"] += 1
    (tmp_path / "params.yaml").write_text("train: [unclosed\n")
    done = subprocess.run(cli("notebook", nb, "--out", tmp_path / "nb"), cwd=tmp_path, env=job_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "params.yaml: not valid YAML" in done.stderr and "Traceback" not in done.stderr
    TALLY["bad inputs tried"] += 1
