"""Models: registry, exact parameter counts, upstream semantics, checkpoints and published-weight loading."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from syntfer.engine.models import create_model, list_models, load_checkpoint, load_pretrained, save_checkpoint
from syntfer.engine.models.checkpoint import CheckpointError, read_state_dict
from syntfer.engine.models.ir import IR50_STAGES, IRBackbone, count_used_parameters
from syntfer.engine.models.mobilefacenet import MobileFaceNet
from syntfer.engine.models.poster import CrossAttention

torch.set_num_threads(1)


def n_params(module: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


@pytest.fixture(scope="module")
def face_ir50(tmp_path_factory) -> tuple[dict[str, torch.Tensor], str]:
    """A random full 4-stage face-recognition IR-50 with face.evoLVe names (like POSTER's ir50.pth): (state, file)."""
    torch.manual_seed(0)
    full = IRBackbone(IR50_STAGES + ((512, 3),), 64, keep_output_layer=True)
    for m in full.modules():  # make running stats distinguishable from a fresh model's
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.num_batches_tracked.fill_(7)
    state = full.state_dict()
    path = tmp_path_factory.mktemp("weights") / "ir50.pth"
    torch.save(state, path)
    return state, str(path)

# ------------------------------------------------------------------------------------------------ registry
EXPECTED = {"ir50", "ir50_gap", "ir_tiny", "ir_small", "cnn_tiny", "cnn_small", "poster", "poster_base", "poster_small", "timm",
            "timm_resnet18", "timm_mobilenetv3_small"}


def test_registry_lists_every_builtin_model():
    assert EXPECTED <= set(list_models())
    assert list_models("poster*") == ["poster", "poster_base", "poster_small"]


def test_create_model_rejects_unknown_names_and_options():
    with pytest.raises(KeyError, match="unknown model 'resnet9000'"):
        create_model("resnet9000")
    with pytest.raises(TypeError, match="unknown options"):
        create_model("ir_tiny", widht=3)
    with pytest.raises(ValueError, match="needs arch"):
        create_model("timm")
    with pytest.raises(KeyError, match="unknown timm architecture"):
        create_model("timm", arch="no_such_net")
    with pytest.raises(FileNotFoundError, match="x.pth"):
        create_model("ir_tiny", pretrained="x.pth")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_forward_shape_every_registered_model(name):
    if name == "poster":
        pytest.skip("the large POSTER is built and run once in test_poster_parameter_counts_match_upstream")
    kw = {"arch": "resnet18"} if name == "timm" else {}
    model = create_model(name, num_classes=5, **kw).eval()
    size = model.cfg.input_size[-1]
    if name.startswith(("poster", "ir50")):
        size = 112  # the nets resize to 112 themselves; feed 112 to keep the test fast
    if name.startswith("timm"):
        size = 32
    with torch.no_grad():
        out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, 5)
    assert torch.isfinite(out).all()
    assert model.cfg.num_classes == 5 and model.cfg.name == name


def test_every_model_has_a_complete_config():
    for name in ("ir50", "ir_tiny", "ir_small", "timm_resnet18"):
        cfg = create_model(name).cfg
        assert cfg.input_size[0] == 3 and len(cfg.mean) == 3 and len(cfg.std) == 3
        assert cfg.labels == ("anger", "disgust", "fear", "happy", "neutral", "sad", "surprise")
    assert create_model("ir_tiny").cfg.input_size == (3, 48, 48)
    assert create_model("ir_small").cfg.input_size == (3, 64, 64)
    assert create_model("ir50").cfg.input_size == (3, 224, 224)  # upstream resizes to 224, the net to 112


# ------------------------------------------------------------------------------------------------ counts
def test_ir50_parameter_counts_match_upstream():
    model = create_model("ir50")
    assert n_params(model.head) == 7_175  # Linear(1024, 7)
    assert n_params(model) - n_params(model.head) == 17_611_968
    with_out = create_model("ir50", keep_output_layer=True)
    assert n_params(with_out) == 17_619_143 + 12_847_616  # + BN2d(512), Linear(25088, 512), BN1d(512)
    assert count_used_parameters(with_out) == 17_619_143


def test_mobilefacenet_parameter_count():
    assert n_params(MobileFaceNet(136)) == 1_007_248


def test_poster_parameter_counts_match_upstream():
    model = create_model("poster")
    assert n_params(model, trainable_only=True) == 70_843_151  # upstream's printout (counts ir_back.output_layer)
    assert n_params(model.face_landback) == 1_007_248
    assert not any(p.requires_grad for p in model.face_landback.parameters())
    assert count_used_parameters(model) - n_params(model.face_landback) == 57_995_535
    small = create_model("poster_small")
    lean = create_model("poster_small", keep_output_layer=False)
    assert n_params(small, trainable_only=True) - n_params(lean, trainable_only=True) == 12_847_616
    # one forward of the large model, batch 1
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 112, 112)).shape == (1, 7)


# ------------------------------------------------------------------------------------------------ semantics
def test_ir50_head_reinterprets_memory_like_upstream_view():
    torch.manual_seed(0)
    model = create_model("ir50", img_size=112).eval()
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        body = model.body(model.input_layer(x))
        assert body.shape == (2, 256, 14, 14)
        expected = model.head(body.view(-1, 49, 1024).mean(dim=1))
        torch.testing.assert_close(model(x), expected, rtol=0, atol=0)
        # channels_last must not change the reinterpretation (upstream saw NCHW memory)
        cl = model.to(memory_format=torch.channels_last)
        torch.testing.assert_close(cl(x.contiguous(memory_format=torch.channels_last)), expected,
                                   rtol=1e-5, atol=1e-5)


def test_ir50_resizes_with_nearest_to_112():
    torch.manual_seed(0)
    model = create_model("ir50").eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        # nearest 224 -> 112 picks every second pixel starting at 0
        torch.testing.assert_close(model(x), model(x[:, :, ::2, ::2].contiguous()), rtol=0, atol=0)


def test_cross_attention_matches_the_explicit_formula():
    torch.manual_seed(0)
    att = CrossAttention(64, 8, kv_first=True, n_first=5)
    x = torch.randn(2, 10, 64)
    img, lm = x[:, :5], x[:, 5:]
    k, v = att.kv(img).reshape(2, 5, 2, 8, 8).permute(2, 0, 3, 1, 4)
    q = lm.reshape(2, 5, 8, 8).permute(0, 2, 1, 3)
    attn = ((q @ k.transpose(-2, -1)) * 8 ** -0.5).softmax(-1)
    expected = att.proj((attn @ v).transpose(1, 2).reshape(2, 5, 64))
    torch.testing.assert_close(att(x), expected, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------------ checkpoints
def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = create_model("ir_tiny", num_classes=7, drop_rate=0.1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(8, 3, 48, 48)
    F.cross_entropy(model(x), torch.arange(8) % 7).backward()
    opt.step()  # weights and BN running stats move away from init
    model.eval()
    save_checkpoint(model, tmp_path / "ck", epoch=3, note="test")
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["config.json", "weights.pt"]
    cfg = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert cfg["model"]["name"] == "ir_tiny" and cfg["model"]["kwargs"]["drop_rate"] == 0.1
    assert cfg["meta"] == {"epoch": 3, "note": "test"}
    loaded = load_checkpoint(tmp_path / "ck").eval()
    assert loaded.checkpoint_meta == {"epoch": 3, "note": "test"}
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    # the weights file is a plain state dict, loadable without pickled code
    state = torch.load(tmp_path / "ck" / "weights.pt", weights_only=True)
    assert set(state) == set(model.state_dict())
    # and it initialises a fresh model by name (fine-tuning from a syntfer checkpoint)
    warm = create_model("ir_tiny", pretrained=str(tmp_path / "ck" / "weights.pt")).eval()
    assert len(warm.pretrained_report.matched) == len(state) and not warm.pretrained_report.missing
    with torch.no_grad():
        torch.testing.assert_close(warm(x), model(x), rtol=0, atol=0)


def test_checkpoint_round_trip_timm_by_arch(tmp_path):
    model = create_model("timm", arch="resnet18", num_classes=3, img_size=32).eval()
    save_checkpoint(model, tmp_path)
    loaded = load_checkpoint(tmp_path).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert loaded.cfg.kwargs["arch"] == "resnet18" and loaded.cfg.num_classes == 3


def test_load_checkpoint_rejects_weights_of_another_model(tmp_path):
    save_checkpoint(create_model("ir_tiny"), tmp_path)
    cfg_path = tmp_path / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["model"]["name"] = "ir_small"
    cfg["model"]["kwargs"]["img_size"] = 64
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="does not fit ir_small"):
        load_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_checkpoint(tmp_path / "nowhere")


# ------------------------------------------------------------------------------------------------ published weights
def test_ir50_loads_face_recognition_checkpoint_by_name(face_ir50):
    state, path = face_ir50
    model = create_model("ir50", keep_output_layer=True, pretrained=path)
    report = model.pretrained_report
    # 304 = input_layer 7 (conv, BN w/b/mean/var/count, PReLU)
    #     + body stages 1-3: 3 + 3 + 13 identity-shortcut units × 13 + 2 conv-shortcut units × 19 = 285
    #     + output_layer 12 (BN2d 5, Linear 2, BN1d 5)
    assert len(report.matched) == 304
    assert len(report.unexpected) == 19 + 2 * 13  # stage 4 (body.21-23), removed upstream
    assert all(k.startswith(("body.21.", "body.22.", "body.23.")) for k in report.unexpected)
    assert report.missing == ["head.bias", "head.weight"]
    torch.testing.assert_close(model.body[20].res_layer[3].weight, state["body.20.res_layer.3.weight"])
    torch.testing.assert_close(model.input_layer[1].running_mean, state["input_layer.1.running_mean"])
    # the default ir50 leaves out the never-called output layer: 292 match, 12 more are skipped
    lean = create_model("ir50", pretrained=path)
    assert len(lean.pretrained_report.matched) == 292
    assert len(lean.pretrained_report.skipped) == 45 + 12
    # wrapper prefixes (DataParallel, backbone containers) are stripped
    for prefix in ("module.", "backbone.", "module.backbone."):
        report = load_pretrained(lean, {prefix + k: v for k, v in state.items()})
        assert len(report.matched) == 292, prefix
        assert report.matched[prefix + "body.0.res_layer.1.weight"] == "body.0.res_layer.1.weight"


def test_load_pretrained_reports_shape_mismatches_and_unwraps_containers(tmp_path):
    src = create_model("ir_tiny", num_classes=8)
    path = tmp_path / "ck.pth.tar"
    torch.save({"epoch": 5, "state_dict": {"module." + k: v for k, v in src.state_dict().items()}}, path)
    dst = create_model("ir_tiny", num_classes=7)
    report = load_pretrained(dst, path)
    assert sorted(report.shape_mismatch) == ["module.head.bias", "module.head.weight"]
    assert report.missing == ["head.bias", "head.weight"]
    assert len(report.matched) == len(src.state_dict()) - 2
    with pytest.raises(CheckpointError, match="strict"):
        load_pretrained(dst, path, strict=True)


def test_checkpoint_matching_nothing_raises(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"encoder.layer.0.weight": torch.zeros(3, 3)}, path)
    with pytest.raises(CheckpointError, match="no tensor matches"):
        create_model("ir50", pretrained=str(path))
    torch.save({"epoch": 1, "lr": 0.1}, path)
    with pytest.raises(CheckpointError, match="contains no tensors"):
        read_state_dict(path)
    with pytest.raises(FileNotFoundError):
        read_state_dict(tmp_path / "missing.pth")


def test_poster_loads_official_checkpoint_layout(tmp_path):
    torch.manual_seed(0)
    src = create_model("poster_small").eval()
    keys = set(src.state_dict())
    # names of the official code (models/emotion_hyp.py, hyp_crossvit.py, mobilefacenet.py, ir50.py)
    for k in ("pyramid_fuse.cls_token", "pyramid_fuse.pos_embed", "pyramid_fuse.downsample_s.weight",
              "pyramid_fuse.blocks.3.block_l.attn_img.kv.weight", "pyramid_fuse.blocks.0.block_s.attn_lm.proj.bias",
              "pyramid_fuse.blocks.0.block_m.mlp1.fc2.weight", "pyramid_fuse.blocks.0.block_l.norm4.weight",
              "pyramid_fuse.blocks.0.block_l.conv.weight", "pyramid_fuse.blocks.3.upsample_m.weight",
              "pyramid_fuse.norm.bias", "face_landback.conv_3.model.3.project.bn.running_var",
              "face_landback.output_layer.conv_6_dw.conv.weight", "face_landback.output_layer.bn.weight",
              "ir_back.input_layer.0.weight", "ir_back.body.20.res_layer.4.running_mean",
              "ir_back.output_layer.3.weight", "ir_layer.weight", "se_block.linear2.bias", "head.linear.weight"):
        assert k in keys, k
    assert len([k for k in keys if k.startswith("pyramid_fuse.blocks.")]) == 4 * (3 * 26 + 4)
    path = tmp_path / "poster_rafdb.pth"
    torch.save({"iter": 12, "model_state_dict": {"module." + k: v for k, v in src.state_dict().items()},
                "optimizer_state_dict": {}}, path)
    dst = create_model("poster_small", pretrained=str(path)).eval()
    report = dst.pretrained_report["poster"]
    assert len(report.matched) == len(keys) and not report.skipped and not report.missing
    x = torch.randn(1, 3, 112, 112)
    with torch.no_grad():
        torch.testing.assert_close(dst(x), src(x), rtol=0, atol=0)


def test_poster_loads_mobilefacenet_and_ir50_weights(tmp_path, face_ir50):
    torch.manual_seed(1)
    mfn = MobileFaceNet(136)
    mfn_path = tmp_path / "mobilefacenet_model_best.pth.tar"
    torch.save({"epoch": 100, "state_dict": mfn.state_dict()}, mfn_path)
    model = create_model("poster_small", landmark_weights=str(mfn_path), ir_weights=face_ir50[1])
    assert len(model.pretrained_report["landmark"].matched) == len(mfn.state_dict())
    assert len(model.pretrained_report["ir"].matched) == 304
    torch.testing.assert_close(model.face_landback.conv_6_sep.conv.weight, mfn.conv_6_sep.conv.weight)
    assert not any(p.requires_grad for p in model.face_landback.parameters())
    bad = tmp_path / "wrong_landmarks.pth.tar"
    torch.save({"state_dict": MobileFaceNet(10).state_dict()}, bad)  # 5 landmarks: head shape differs
    with pytest.raises(CheckpointError, match="strict"):
        create_model("poster_small", landmark_weights=str(bad))


def test_models_cli_reports_how_weights_load(tmp_path, capsys):
    import argparse

    from syntfer.engine.models import cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    path = tmp_path / "tiny.pth"
    torch.save({"module." + k: v for k, v in create_model("ir_tiny").state_dict().items()}, path)
    assert cli.run(parser.parse_args(["ir_tiny", "--num-classes", "7"])) == 0
    assert '"parameters": 77879' in capsys.readouterr().out
    assert cli.run(parser.parse_args(["timm", "--arch", "resnet18", "--pretrained", str(path)])) == 1
    assert "no tensor matches" in capsys.readouterr().err  # errors go to stderr
    assert cli.run(parser.parse_args(["ir50", "--pretrained", str(tmp_path / "missing.pth")])) == 1
