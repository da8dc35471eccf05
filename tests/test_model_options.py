"""Model options are per model (syntfer.engine.models.model_options): params.yaml's ``train.model_kwargs`` /
``instruments.model_kwargs`` name the model each option belongs to, so switching ``train.model`` never hands one
model's options to another; an option a model does not take is an error naming both; the default run builds the
same cnn_tiny as before (48 px, flatten head)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from syntfer import cli as dispatch
from syntfer.core.params_schema import load_yaml
from syntfer.engine.models import ModelOptionsError, create_model, model_options
from syntfer.engine.models.registry import builder_options
from syntfer.engine.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)


def _params() -> dict:
    return load_yaml((ROOT / "params.yaml").read_text())


@pytest.mark.parametrize("section", ["train", "instruments"])
def test_the_default_run_builds_the_same_cnn_tiny(section):
    """params.yaml's default resolves to the options the study always used, and the built model is the same."""
    sec = _params()[section]
    assert sec["model"] == "cnn_tiny"
    options = model_options(sec["model"], sec["model_kwargs"])
    assert options == {"img_size": 48, "head": "flatten"}
    torch.manual_seed(0)
    new = create_model("cnn_tiny", **options)
    torch.manual_seed(0)
    old = create_model("cnn_tiny", img_size=48, head="flatten")  # what json.loads of the old flat string gave
    assert new.cfg == old.cfg
    assert all(torch.equal(a, b) for a, b in zip(new.state_dict().values(), old.state_dict().values()))
    # and the training config (its resume fingerprint included) is the one of the old flat form
    a = TrainConfig.from_recipe("fast", model="cnn_tiny", model_kwargs=options)
    b = TrainConfig.from_recipe("fast", model="cnn_tiny", model_kwargs={"img_size": 48, "head": "flatten"})
    assert a.fingerprint() == b.fingerprint()


def test_switching_the_model_does_not_pass_another_models_options():
    spec = _params()["train"]["model_kwargs"]
    assert model_options("ir50", spec) == {}  # cnn_tiny's head never reaches ir50
    assert model_options("poster", spec) == {}
    assert model_options("ir_tiny", spec) == {}  # no entry: the builder's defaults
    model = create_model("ir50", **model_options("ir50", spec))
    assert model.cfg.input_size == (3, 224, 224)


@pytest.mark.parametrize("name,spec,fragments", [
    ("ir50", '{"img_size": 48, "head": "flatten"}', ["model 'ir50' does not take the option(s) ['head']",
                                                     "img_size", "keep_output_layer"]),
    ("cnn_tiny", '{"cnn_tiny": {}, "ir50": {"head": "flatten"}}', ["model_kwargs['ir50']", "['head']"]),
    ("cnn_tiny", '{"cnn_tiny": {"img_size": "48"}}', ["img_size='48'", "'cnn_tiny'", "expected int"]),
    ("cnn_tiny", '{"cnn_tiny": {"drop_rate": true}}', ["drop_rate=True", "expected float"]),
    ("cnn_tiny", '{"cnn_tiny": {}, "img_size": 48}', ["['img_size'] are neither registered models"]),
    ("cnn_tiny", '{"cnn_tiny": {"pretrained": "w.pth"}}', ["['pretrained']", "train.pretrained"]),
    ("cnn_tiny", '{"cnn_tiny": 48}', ["must be a JSON object"]),
    ("cnn_tiny", "[48]", ["is not a JSON object"]),
    ("cnn_tiny", "{img_size: 48}", ["is not JSON"]),
    ("resnet9000", '{"cnn_tiny": {}}', ["unknown model 'resnet9000'"]),
])
def test_an_option_the_model_does_not_take_is_named(name, spec, fragments):
    with pytest.raises(ModelOptionsError) as e:
        model_options(name, spec)
    assert all(f in str(e.value) for f in fragments), str(e.value)


def test_flat_options_are_the_chosen_models():
    """A one-model command line (syntfer train --model-kwargs) may give the options flat."""
    assert model_options("cnn_tiny", '{"img_size": 16}') == {"img_size": 16}
    assert model_options("cnn_tiny", {"img_size": 16}) == {"img_size": 16}
    assert model_options("cnn_tiny", "") == {} and model_options("cnn_tiny", None) == {}
    assert model_options("poster", '{"poster": {"landmark_weights": "/w/m.tar"}}') == {"landmark_weights": "/w/m.tar"}


def test_options_are_the_builders_keyword_parameters():
    assert set(builder_options("ir50")) == {"img_size", "keep_output_layer"}
    assert {"img_size", "head", "hidden", "drop_rate"} <= set(builder_options("cnn_tiny"))
    assert {"landmark_weights", "ir_weights", "img_size"} <= set(builder_options("poster"))
    assert "pretrained" not in builder_options("ir50") and "num_classes" not in builder_options("ir50")
    # timm builders hand options they do not name to timm: only the named ones are checked
    assert model_options("timm", '{"timm": {"arch": "resnet18", "drop_rate": 0.1}}') == {"arch": "resnet18",
                                                                                        "drop_rate": 0.1}
    with pytest.raises(ModelOptionsError, match="img_size"):
        model_options("timm", '{"timm": {"img_size": "big"}}')


def test_a_train_config_checks_its_models_options():
    with pytest.raises(ModelOptionsError, match="model 'ir50' does not take the option"):
        TrainConfig.from_recipe("upstream_ir50", model="ir50", model_kwargs={"head": "flatten"})


def test_the_train_command_reads_options_per_model_or_flat(tmp_path, capsys):
    """`syntfer train --model-kwargs`: the options go through model_options before any data is read."""
    argv = ["train", "--train", str(tmp_path / "none.csv"), "--out", str(tmp_path / "o"), "--model", "ir50"]
    assert dispatch.main(argv + ["--model-kwargs", '{"img_size": 48, "head": "flatten"}']) == 1
    err = capsys.readouterr().err
    assert "model 'ir50' does not take the option(s) ['head']" in err and "--model-kwargs" in err
    # per model: ir50's entry is used and the cnn_tiny entry is ignored; the run then fails on the missing file
    assert dispatch.main(argv + ["--model-kwargs", json.dumps({"cnn_tiny": {"head": "flatten"},
                                                               "ir50": {"img_size": 112}})]) == 1
    assert "none.csv" in capsys.readouterr().err


@pytest.mark.parametrize("nb", ["01_instruments.py", "02_baseline.py", "07_scaling.py"])
def test_the_notebooks_read_model_kwargs_through_model_options(nb):
    text = (ROOT / "notebooks" / nb).read_text()
    assert "kwargs = model_options(model, model_kwargs)" in text
    assert "json.loads(model_kwargs)" not in text
