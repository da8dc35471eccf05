"""`syntfer preset` (syntfer/tools/preset.py) and presets/*.yaml: every preset key is a params.yaml key of a
compatible type; the printed `dvc exp run -S ...` arguments, parsed and applied by DVC's own code to a copy of
params.yaml, give the paper's values (docs/method.md); files only the user has are refused until given."""
from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest

from syntfer import cli as dispatch
from syntfer.core.params_schema import check_params, load_yaml
from syntfer.tools import preset as P

ROOT = Path(__file__).resolve().parents[1]
PRESETS = sorted(p.stem for p in (ROOT / "presets").glob("*.yaml"))
USER_FILES = {  # what a user with the weights passes (paths need not exist: the stages read them)
    "paper": ["train.pretrained=/w/ir50.pth", "diffusion.sd_model=/w/realistic-vision-v5.1",
              "gan.codeformer_weights=/w/codeformer.pth", "gan.official_checkpoint=/w/ganmut_linear-G.ckpt",
              "study.clip_weights=/w/clip-vit-large"],
    "paper_poster": ["train.model_kwargs.poster.ir_weights=/w/ir50.pth",
                     "train.model_kwargs.poster.landmark_weights=/w/mobilefacenet_model_best.pth.tar",
                     "diffusion.sd_model=/w/realistic-vision-v5.1", "gan.codeformer_weights=/w/codeformer.pth",
                     "gan.official_checkpoint=/w/ganmut_linear-G.ckpt", "study.clip_weights=/w/clip-vit-large"],
}


def _params() -> dict:
    return load_yaml((ROOT / "params.yaml").read_text())


def _resolve(name: str, sets=None, **kw) -> dict:
    return P.resolve(name, USER_FILES[name] if sets is None else sets, params_file=ROOT / "params.yaml",
                     presets_dir=ROOT / "presets", **kw)


def _compatible(preset_value, params_value) -> bool:
    if isinstance(params_value, bool) or isinstance(preset_value, bool):
        return isinstance(preset_value, bool) and isinstance(params_value, bool)
    if isinstance(params_value, float):
        return isinstance(preset_value, (int, float))
    return type(preset_value) is type(params_value)


def _dvc_applied(flat: dict, tmp_path: Path) -> dict:
    """params.yaml after `dvc exp run -S <each override>`, by DVC's code: its parser (no sweep: a comma in a value
    would make one) and its apply function on a copy of params.yaml, read back as the stages read it."""
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import apply_overrides, to_hydra_overrides

    argv = P.command(flat)
    # the printed command, split by a shell, gives the same arguments
    assert shlex.split(P.shell_command(argv).replace("\\\n", " ")) == argv
    s_args = [argv[i + 1] for i, a in enumerate(argv) if a == "-S"]
    by_file = to_path_overrides(s_args)
    assert list(by_file) == ["params.yaml"]
    parsed = to_hydra_overrides(by_file["params.yaml"])
    assert not [o.input_line for o in parsed if o.is_sweep_override()]
    copy = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", copy)
    apply_overrides(copy, by_file["params.yaml"])
    return load_yaml(copy.read_text())


def test_the_presets_are_there():
    assert {"paper", "paper_poster"} <= set(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_key_is_a_params_yaml_key_of_a_compatible_type(name):
    params = _params()
    flat = P.flatten(P.load_preset(name, ROOT / "presets"))
    for key, value in flat.items():
        found, current = P._lookup(params, key)
        assert found, f"presets/{name}.yaml: {key} is not in params.yaml"
        assert _compatible(value, current), (f"presets/{name}.yaml: {key} = {value!r} ({type(value).__name__}); "
                                             f"params.yaml holds {current!r} ({type(current).__name__})")
    # the whole merge passes params.yaml's schema and the model-option check (placeholders are strings)
    P.resolve(name, params_file=ROOT / "params.yaml", presets_dir=ROOT / "presets", require_files=False)


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_value_cites_the_method(name):
    """Each value says where it comes from: its line, or the comment-only lines right under it, cite
    docs/method.md (a §) — also where the value is not the paper's and the comment says why."""
    lines = (ROOT / "presets" / f"{name}.yaml").read_text().splitlines()
    for i, line in enumerate(lines):
        body = line.split("#")[0].strip()
        if not body or body.endswith(":") or body.startswith(f"{P.EXTENDS}:"):
            continue
        block = [line]
        for nxt in lines[i + 1:]:
            if not nxt.strip().startswith("#"):
                break
            block.append(nxt)
        assert "§" in "\n".join(block), f"presets/{name}.yaml:{i + 1}: {line.strip()!r} cites no docs/method.md §"


def test_the_paper_command_gives_the_papers_values_through_dvc(tmp_path):
    flat = _resolve("paper")
    applied = _dvc_applied(flat, tmp_path)
    for key, value in flat.items():  # every override arrives as itself, with its type
        found, got = P._lookup(applied, key)
        assert found and got == value and type(got) is type(value), (key, value, got)
    check_params(applied)  # what `syntfer notebook` checks before every stage
    t, d, g, s = applied["train"], applied["diffusion"], applied["gan"], applied["study"]
    # the classifier (docs/method.md §7): IR-50, 224 px resized to 112 inside, upstream's recipe
    assert (t["model"], t["recipe"], t["epochs"], t["batch_size"]) == ("ir50", "upstream_ir50", 120, 64)
    assert (t["optimizer"], t["scheduler"], t["weight_decay"]) == ("sam_adam", "exponential", 1e-4)
    assert (t["label_smoothing"], t["smoothing_weight"], t["lr"]) == (0.4, 2.0, 1.095e-6)
    assert t["seeds"] == [0, 1, 2] and t["pretrained"] == "/w/ir50.pth"
    from syntfer.engine.models import create_model, model_options
    from syntfer.engine.training import RECIPES

    options = model_options(t["model"], t["model_kwargs"])
    assert options == {"img_size": 224}
    model = create_model("ir50", **options)
    assert model.cfg.input_size == (3, 224, 224) and model.resize_to == 112
    recipe = RECIPES["upstream_ir50"]  # the keys that repeat the recipe repeat it exactly
    assert all(t[k] == recipe[k] for k in ("epochs", "batch_size", "lr", "weight_decay", "optimizer", "scheduler",
                                           "label_smoothing"))
    # pseudo-labeling (§3), diffusion (§4), GAN editing (§5), Mixed-SYN (§6), distances (§8)
    assert (applied["pseudolabel"]["per_class"], applied["pseudolabel"]["threshold"]) == (10000, 0.3)
    assert "sd" in d["backends"].split(",") and d["sd_model"] == "/w/realistic-vision-v5.1"
    assert (d["per_emotion"], d["steps"], d["guidance"]) == (8280, 50, 10.0)
    assert (g["recipe"], g["per_class"], g["restorer"]) == ("10", 10000, "codeformer")
    assert g["codeformer_weights"] == "/w/codeformer.pth" and g["official_checkpoint"] == "/w/ganmut_linear-G.ckpt"
    assert (s["mixed_n_train"], s["mixed_n_val"]) == (1250, 125)
    assert s["set_size"] >= 7 * (1250 + 125) and s["set_size"] % 7 == 0 and s["set_size"] <= 12271
    assert applied["world"]["preset"] == "large"
    # what the preset does not name keeps params.yaml's value
    assert applied["datasets"] == _params()["datasets"] and applied["instruments"] == _params()["instruments"]


def test_the_poster_preset_gives_posters_recipe_through_dvc(tmp_path):
    flat = _resolve("paper_poster")
    applied = _dvc_applied(flat, tmp_path)
    check_params(applied)
    t = applied["train"]
    assert (t["model"], t["recipe"], t["epochs"], t["batch_size"], t["lr"], t["label_smoothing"]) == (
        "poster", "poster", 300, 200, 4e-5, 0.2)
    assert isinstance(t["lr"], float) and t["pretrained"] == ""
    from syntfer.engine.models import model_options

    assert model_options("poster", t["model_kwargs"]) == {
        "img_size": 224, "ir_weights": "/w/ir50.pth", "landmark_weights": "/w/mobilefacenet_model_best.pth.tar"}
    assert applied["pseudolabel"]["per_class"] == 10000  # the rest is paper.yaml's (extends)


@pytest.mark.parametrize("name", PRESETS)
def test_missing_user_files_are_refused_naming_each_set(name):
    with pytest.raises(P.PresetError) as e:
        _resolve(name, [])
    msg = str(e.value)
    keys = [s.split("=")[0] for s in USER_FILES[name]]
    assert f"needs {len(keys)} file(s) only you have" in msg
    for k in keys:
        assert f"--set {k}=PATH" in msg, (k, msg)
    with pytest.raises(P.PresetError) as e:  # given some, the message lists the others only
        _resolve(name, USER_FILES[name][:2])
    assert all(f"--set {k}=" not in str(e.value) for k in keys[:2]) and f"--set {keys[-1]}=PATH" in str(e.value)


def test_the_cli_refuses_in_one_line_and_prints_once_given(capsys):
    common = ["--params", str(ROOT / "params.yaml"), "--presets-dir", str(ROOT / "presets")]
    assert dispatch.main(["preset", "paper", "--print", *common]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("syntfer preset: error: ") and "--set train.pretrained=PATH" in err[0]
    sets = [w for s in USER_FILES["paper"] for w in ("--set", s)]
    assert dispatch.main(["preset", "paper", "--print", *sets, "-n", "paper", *common]) == 0
    out = capsys.readouterr().out
    argv = shlex.split(out.replace("\\\n", " "))
    assert argv[:5] == ["dvc", "exp", "run", "-n", "paper"]
    assert "train.model=ir50" in argv and "train.seeds=[0,1,2]" in argv and "pseudolabel.per_class=10000" in argv
    assert "gan.recipe='10'" in argv  # quoted: unquoted, Hydra would read the integer 10


def test_run_calls_dvc_exp_run_with_the_arguments(monkeypatch, capsys):
    calls = []

    class Done:
        returncode = 0

    monkeypatch.setattr(P.subprocess, "run", lambda argv, check: calls.append(argv) or Done())
    monkeypatch.setattr(P.shutil, "which", lambda name: "/bin/dvc" if name == "dvc" else None)
    sets = [w for s in USER_FILES["paper"] for w in ("--set", s)]
    assert dispatch.main(["preset", "paper", "--run", *sets, "--params", str(ROOT / "params.yaml"),
                          "--presets-dir", str(ROOT / "presets")]) == 0
    (argv,) = calls
    assert argv[:3] == ["/bin/dvc", "exp", "run"] and argv[3:] == P.command(_resolve("paper"))[3:]


def _preset(tmp_path: Path, text: str) -> Path:
    (tmp_path / "presets").mkdir(exist_ok=True)
    (tmp_path / "presets" / "p.yaml").write_text(text)
    return tmp_path / "presets"


@pytest.mark.parametrize("text,sets,expect", [
    ("train:\n  epoch: 3\n", [], "train.epoch: not a key of params.yaml"),
    ("study:\n  synthetic: 3\n", [], "study.synthetic: a section of params.yaml"),
    ("train:\n  epochs: 3\n", ["train.epoch=4"], "--set train.epoch: not a key of params.yaml"),
    ("train:\n  epochs: 3\n", ["train.epochs"], "expected KEY=VALUE"),
    ("train:\n  epochs: 3\n", ["train.epochs=many"], "train.epochs = 'many'; expected an integer"),
    ("train:\n  epochs: 0\n", [], "train.epochs = 0; expected an integer >= 1"),
    ("train:\n  model_kwargs: '{\"img_size\": 48}'\n", [], "expected a JSON object in a string of model name"),
    ("train:\n  model_kwargs: '{\"ir50\": {\"head\": \"flatten\"}}'\n", [], "train.model_kwargs['ir50']"),
    ("extends: p\n", [], "'extends' loops"),
    ("extends: nothere\n", [], "preset 'nothere'"),
])
def test_a_preset_cannot_drift_from_params_yaml(tmp_path, text, sets, expect):
    presets = _preset(tmp_path, text)
    with pytest.raises(P.PresetError) as e:
        P.resolve("p", sets, params_file=ROOT / "params.yaml", presets_dir=presets)
    assert expect in str(e.value), str(e.value)


def test_switching_the_model_alone_is_valid():
    """params.yaml's options are per model: train.model=ir50 does not hand cnn_tiny's head to ir50."""
    flat = P.resolve("paper", ["train.model=ir50"], params_file=ROOT / "params.yaml", presets_dir=ROOT / "presets",
                     require_files=False)
    assert flat["train.model"] == "ir50"


@pytest.mark.parametrize("value", ["ir50", "10", "1e3", "true", "null", "a,b", "", "/w/x y", "x:y", "~/w",
                                   '{"ir50": {"img_size": 224}}', "it's", 3, 0.3, 1.095e-6, 4e-5, 1e-4, True,
                                   [0, 1, 2], ["a", "b,c"]])
def test_hydra_reads_each_value_back_as_itself(value):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    (override,) = OverridesParser.create().parse_overrides([f"k={P.hydra_value(value, 'k')}"])
    assert not override.is_sweep_override()
    got = override.value()
    assert got == value and type(got) is type(value), (value, got)


def test_values_dvc_cannot_take_are_refused():
    for bad in ("${x}", "a\\b", "it's \"q\""):
        with pytest.raises(P.PresetError):
            P.hydra_value(bad, "k")


def test_a_set_through_a_json_value_keeps_the_other_entries():
    params = _params()
    flat = P.apply_sets({}, ["train.model_kwargs.ir50.img_size=112"], params)
    from syntfer.engine.models import model_options

    assert model_options("ir50", flat["train.model_kwargs"]) == {"img_size": 112}
    assert model_options("cnn_tiny", flat["train.model_kwargs"]) == {"img_size": 48, "head": "flatten"}
    with pytest.raises(P.PresetError, match="no entry"):
        P.apply_sets({}, ["train.model.x=1"], params)
