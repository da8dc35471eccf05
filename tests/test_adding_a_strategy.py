"""Adding a strategy (README "Adding a strategy", docs/pipeline.md; issue 27): what a new strategy touches, proved
on a temp copy of the repository (syntfer/, notebooks/, dvc.yaml, params.yaml).

A toy strategy is added in four places — its package ``syntfer/strategies/toy/`` (declaring ``STRATEGY``), its
notebook ``notebooks/09_toy.py``, its stage in dvc.yaml and its ``toy:`` section of params.yaml — and nothing
else is edited. Then, in the copy:

- DVC reads the toy's stage, fanned out over its params section (``toy@small``, ``toy@small_big``);
- the layer check (tests/test_layers.py) passes and gives the package the strategies' layer;
- params.yaml, with the toy's section, passes the schema check every stage runs (`check_params_file`): the toy
  declares its section's rows (``Strategy.params``), so `syntfer/core/params_schema.py` is not edited;
- the set discovery picks the toy up: the study's strategies (`syntfer.study.report.discover_strategies`), its sets
  (`strategy_sets`: ``toy_<variant>`` from its params section), its look (`set_domains`), the CLI's commands
  (`syntfer.cli.COMMANDS`, from the declaration) and the report's names (`pretty`, its declared words);
- what DVC and the notebooks' defaults must still hold as literals (`literal_problems`: ``study.mixed_sources``,
  ``study.set_domains``, ``train.sets``, the ``mixed_syn`` stage's deps, notebook 06's/08's defaults) is checked
  against the derived lists and named: DVC cannot interpolate a list into a ``deps:`` or a ``cmd``. The real
  repository has none of these faults (`test_the_literal_lists_match_the_declarations`).

Skipping a place fails: a package with no ``STRATEGY`` fails the layer check; a section without its declared schema
rows, or a declaration whose params section is missing, fails the discovery; a notebook with no stage, or a stage
with no notebook, fails the stage check."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from importgraph import Graph, syntfer_dynamic
from test_layers import FOLDERS, problems

from syntfer.tools.notebook import parameters_cell, read_notebook

ROOT = Path(__file__).resolve().parents[1]

DISCOVER = textwrap.dedent("""
    import json, yaml
    from syntfer import cli
    from syntfer.core.params_schema import check_params_file
    from syntfer.study import report as R
    params = check_params_file("params.yaml")  # as `syntfer notebook` checks it before every stage
    sets = R.strategy_sets(params)
    print(json.dumps({"file": R.__file__, "strategies": [s.prefix for s in R.discover_strategies()],
                      "sets": sets, "domains": R.set_domains(),
                      "commands": {k: m for k, (m, _) in cli.COMMANDS.items()},
                      "pretty": {n: R.pretty(n) for n in sets}}))
""")


def discover(root: Path) -> dict:
    """The study's, the CLI's and the report's view of the strategies in `root` (a fresh interpreter, `root`'s
    package first on the path)."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", DISCOVER], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(out["file"]).resolve().is_relative_to(root.resolve()), out["file"]
    return out


def literal_problems(root: Path, found: dict) -> list[str]:
    """Where a literal list in dvc.yaml, params.yaml or a notebook default differs from what the declarations and
    params.yaml derive (`found`, from `discover`): each a message naming the place to edit."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    dvc = yaml.safe_load((root / "dvc.yaml").read_text())
    sets, study = found["sets"], params["study"]
    domains = ",".join(f"{k}:{v}" for k, v in found["domains"].items())
    out = []
    if study["mixed_sources"] != ",".join(sets):
        out.append(f"params.yaml study.mixed_sources: expected {','.join(sets)!r}")
    if study["set_domains"] != domains:
        out.append(f"params.yaml study.set_domains: expected {domains!r}")
    missing = [s for s in sets if s not in params["train"]["sets"]]
    if missing:
        out.append(f"params.yaml train.sets: misses {missing}")
    deps = dvc["stages"]["mixed_syn"]["deps"]
    missing = [f"outputs/sets/{s}" for s in sets if f"outputs/sets/{s}" not in deps]
    if missing:
        out.append(f"dvc.yaml mixed_syn deps: misses {missing}")
    for nb, name, expected in (("06_sets.py", "synthetic", ",".join([*sets, "mixed_syn"])),
                               ("06_sets.py", "set_domains", domains), ("08_report.py", "set_domains", domains)):
        _, defaults = parameters_cell(read_notebook(root / "notebooks" / nb))
        if defaults[name] != expected:
            out.append(f"notebooks/{nb} default {name}: expected {expected!r}")
    return out


def stageless_notebooks(root: Path) -> list[str]:
    """Numbered notebooks no dvc.yaml command runs (as tests/test_pipeline.py checks the real one)."""
    text = (root / "dvc.yaml").read_text()
    return [p.name for p in sorted((root / "notebooks").glob("[0-9][0-9]_*.py")) if f"notebooks/{p.name}" not in text]


def missing_notebooks(root: Path) -> list[str]:
    """Notebooks a dvc.yaml command runs that the repository does not have."""
    import re
    named = set(re.findall(r"notebooks/[0-9][0-9]_[a-z_]+\.py", (root / "dvc.yaml").read_text()))
    return sorted(n for n in named if not (root / n).is_file())


def dvc_stages(root: Path) -> list[str]:
    """The stages DVC itself reads from `root`'s dvc.yaml and params.yaml (foreach expanded: ``toy@small``)."""
    dvc = Path(sys.executable).parent / "dvc"
    if not dvc.is_file():
        pytest.skip(f"{dvc}: no DVC in this environment")
    if not (root / ".dvc").is_dir():
        subprocess.run([str(dvc), "init", "--no-scm", "-q"], cwd=root, check=True, capture_output=True, timeout=120)
    done = subprocess.run([str(dvc), "stage", "list", "--name-only"], cwd=root, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.split()


def layer_problems(root: Path) -> list[str]:
    return problems(Graph.build(root, "syntfer", syntfer_dynamic(root)), FOLDERS)


# ---- the toy strategy -----------------------------------------------------------------------------------------

TOY_INIT = '''"""A toy strategy: renames a labeled manifest's images (tests/test_adding_a_strategy.py)."""
from syntfer.core.strategy import Strategy

STRATEGY = Strategy("toy_", "toy", "synthetic", "a toy strategy", order=4,
                    commands=(("toy", "syntfer.strategies.toy.cli", "write a toy set"),),
                    words=(("_big", ", big"),), look="ref_web", sets_key="toy.variants",
                    params=(("toy.variants.*.size", "INT(1)"),))
'''
TOY_CLI = '''"""``syntfer toy``: write a toy set."""
from syntfer.core import manifest


def add_arguments(parser):
    parser.add_argument("--out", required=True)


def run(args):
    return 0
'''
TOY_NOTEBOOK = '''# %% [markdown]
# # 09 · A toy strategy

# %% tags=["parameters"]
variant = "small"  # which toy set
size = 7           # images
out_dir = "outputs/sets/toy_small"

# %%
from syntfer.strategies.toy import STRATEGY
print(STRATEGY.prefix + variant, size, out_dir)
'''
TOY_PARAMS = {"variants": {"small": {"size": 7}, "small_big": {"size": 14}}}
TOY_STAGE = {"foreach": "${toy.variants}", "do": {
    "cmd": "syntfer notebook notebooks/09_toy.py --out outputs/nb/09_toy/${key} -p variant ${key} "
           "-p size ${item.size} -p out_dir outputs/sets/toy_${key}",
    "deps": ["notebooks/09_toy.py", "syntfer/strategies/toy", "syntfer/core/strategy.py"],
    "outs": ["outputs/sets/toy_${key}", "outputs/nb/09_toy/${key}"]}}


def copy_repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    for d in ("syntfer", "notebooks"):
        shutil.copytree(ROOT / d, root / d, ignore=shutil.ignore_patterns("__pycache__"))
    for f in ("dvc.yaml", "params.yaml"):
        shutil.copy2(ROOT / f, root / f)
    return root


def add_toy(root: Path, *, skip: str = "") -> None:
    """The toy strategy in its four places (all but `skip`: package | declaration | schema (its declared params
    rows) | notebook | stage | params)."""
    pkg = root / "syntfer/strategies/toy"
    if skip != "package":
        pkg.mkdir()
        init = TOY_INIT if skip != "declaration" else TOY_INIT.split("STRATEGY =")[0]
        if skip == "schema":
            init = init.replace(''',\n                    params=(("toy.variants.*.size", "INT(1)"),))''', ")")
            assert "params=" not in init
        (pkg / "__init__.py").write_text(init)
        (pkg / "cli.py").write_text(TOY_CLI)
    if skip != "notebook":
        (root / "notebooks/09_toy.py").write_text(TOY_NOTEBOOK)
    if skip != "stage":
        dvc = yaml.safe_load((root / "dvc.yaml").read_text())
        dvc["stages"]["toy"] = TOY_STAGE
        (root / "dvc.yaml").write_text(yaml.safe_dump(dvc, sort_keys=False))
    if skip != "params":
        with open(root / "params.yaml", "a") as f:
            f.write("\n" + yaml.safe_dump({"toy": TOY_PARAMS}, sort_keys=False))


def edit_literal_lists(root: Path, new: list[str], domains: str) -> None:
    """The hand edits DVC still needs (`literal_problems` names them): the toy's sets in study.mixed_sources,
    train.sets and the mixed_syn deps, its look in study.set_domains, and notebook 06's/08's defaults."""
    p = (root / "params.yaml").read_text()
    old_sources = yaml.safe_load(p)["study"]["mixed_sources"]
    old_domains = yaml.safe_load(p)["study"]["set_domains"]
    p = p.replace(f'mixed_sources: "{old_sources}"', f'mixed_sources: "{old_sources},{",".join(new)}"')
    p = p.replace(f'set_domains: "{old_domains}"', f'set_domains: "{domains}"')
    p = p.replace("gan_f, gan_v, mixed_syn,", f"gan_f, gan_v, {', '.join(new)}, mixed_syn,")
    (root / "params.yaml").write_text(p)
    dvc = yaml.safe_load((root / "dvc.yaml").read_text())
    dvc["stages"]["mixed_syn"]["deps"] += [f"outputs/sets/{s}" for s in new]
    (root / "dvc.yaml").write_text(yaml.safe_dump(dvc, sort_keys=False))
    for nb in ("06_sets.py", "08_report.py"):
        f = root / "notebooks" / nb
        t = f.read_text().replace(f'set_domains = "{old_domains}"', f'set_domains = "{domains}"')
        f.write_text(t.replace(f'synthetic = "{old_sources},mixed_syn"',
                               f'synthetic = "{old_sources},{",".join(new)},mixed_syn"'))


# ---- tests ----------------------------------------------------------------------------------------------------

def test_the_literal_lists_match_the_declarations():
    """The real repository: every literal list of sets equals what params.yaml and the declarations derive."""
    found = discover(ROOT)
    assert found["strategies"] == ["pseudolabel_", "diffusion_", "gan_"]
    assert literal_problems(ROOT, found) == []
    assert missing_notebooks(ROOT) == [] and stageless_notebooks(ROOT) == []


def test_a_toy_strategy_in_four_places_is_picked_up(tmp_path):
    root = copy_repo(tmp_path)
    before = discover(root)
    add_toy(root)
    assert layer_problems(root) == []
    assert stageless_notebooks(root) == [] and missing_notebooks(root) == []
    assert {"toy@small", "toy@small_big"} <= set(dvc_stages(root))  # its stage fans out over its params section
    found = discover(root)
    assert found["strategies"] == [*before["strategies"], "toy_"]
    assert found["sets"] == [*before["sets"], "toy_small", "toy_small_big"]
    assert found["domains"] == {**before["domains"], "toy_": "ref_web"}
    assert found["commands"] == {**before["commands"], "toy": "syntfer.strategies.toy.cli"}
    assert found["pretty"]["toy_small_big"] == "toy (small, big)"
    # what DVC needs as literals is named, not silently stale ...
    named = literal_problems(root, found)
    assert [m.split(":")[0] for m in named] == [
        "params.yaml study.mixed_sources", "params.yaml study.set_domains", "params.yaml train.sets",
        "dvc.yaml mixed_syn deps", "notebooks/06_sets.py default synthetic", "notebooks/06_sets.py default set_domains",
        "notebooks/08_report.py default set_domains"], named
    # ... and once edited as named, nothing is left
    edit_literal_lists(root, ["toy_small", "toy_small_big"], ",".join(f"{k}:{v}" for k, v in found["domains"].items()))
    assert literal_problems(root, discover(root)) == []


@pytest.mark.parametrize("skip", ["declaration", "schema", "params", "notebook", "stage"])
def test_a_toy_strategy_skipping_a_place_fails(tmp_path, skip):
    root = copy_repo(tmp_path)
    add_toy(root, skip=skip)
    if skip == "declaration":
        assert any(p.startswith("syntfer.strategies.toy (syntfer/strategies/toy/__init__.py) declares no STRATEGY")
                   for p in layer_problems(root))
    elif skip == "schema":
        with pytest.raises(RuntimeError, match="toy.variants.small.size: unknown key"):
            discover(root)
    elif skip == "params":
        with pytest.raises(RuntimeError, match="params.yaml has no 'toy.variants'"):
            discover(root)
    elif skip == "stage":
        assert stageless_notebooks(root) == ["09_toy.py"]
    else:  # a stage that runs a notebook the repository does not have
        assert missing_notebooks(root) == ["notebooks/09_toy.py"]
