"""Trainer: loss formula, SAM, recipes, CSV log, validation-only selection, bit-exact resume, CLI."""
from __future__ import annotations

import argparse
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from syntfer.engine.data import ManifestDataset, eval_transform
from syntfer.engine.evaluation import compute_metrics, predict
from syntfer.core.manifest import write_manifest
from syntfer.engine.models.registry import ModelConfig, list_models, register_model
from syntfer.engine.training import (LOG_COLUMNS, RECIPES, SAM, TrainConfig, TrainError, add_arguments, fer_loss, run,
                                     selection_score, train)
from imagesets import colour_set

MODEL = "tiny_for_training_tests"


class _Tiny(nn.Module):
    def __init__(self, cfg: ModelConfig, drop_rate: float):
        super().__init__()
        self.cfg = cfg
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(8, cfg.num_classes)

    def forward(self, x):
        return self.head(self.drop(self.features(x)))


if MODEL not in list_models():
    @register_model
    def tiny_for_training_tests(num_classes: int = 7, pretrained: str | None = None, drop_rate: float = 0.2):
        cfg = ModelConfig(MODEL, input_size=(3, 16, 16), mean=(0.5,) * 3, std=(0.25,) * 3,
                          num_classes=num_classes, kwargs={"drop_rate": drop_rate})
        return _Tiny(cfg, drop_rate)


def _cfg(**kw) -> TrainConfig:
    base = dict(model=MODEL, epochs=3, batch_size=8, val_fraction=0.25, progress=False, lr=1e-2, seed=3)
    return TrainConfig.from_recipe("fast", **{**base, **kw})


def test_loss_is_ce_plus_two_smoothed_ce_by_hand():
    logits = torch.tensor([[2.0, 0.5, -1.0, 0.0, 0.0, 0.3, 1.0], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]])
    y = torch.tensor([0, 4])
    logp = torch.log_softmax(logits, 1)
    nll = -logp[torch.arange(2), y]
    eps = 0.4
    smoothed = (1 - eps) * nll + eps * (-logp).mean(1)
    expected = (nll + 2 * smoothed).mean()
    torch.testing.assert_close(fer_loss(logits, y, 0.4, 2.0), expected)
    torch.testing.assert_close(fer_loss(logits, y, 0.2, 0.0), nll.mean())


def test_sam_takes_the_gradient_at_the_perturbed_point():
    # f(w) = 0.5 ||w||^2: g = w, e = rho w/||w||, SGD(lr=1) with grad w+e gives w - (w+e) = -e exactly
    w0 = torch.tensor([3.0, 4.0])
    w = nn.Parameter(w0.clone())
    opt = SAM([w], torch.optim.SGD, rho=0.5, lr=1.0)
    (0.5 * w.pow(2).sum()).backward()
    opt.first_step(zero_grad=True)
    torch.testing.assert_close(w.detach(), w0 + 0.5 * w0 / 5.0)
    (0.5 * w.pow(2).sum()).backward()
    opt.second_step(zero_grad=True)
    torch.testing.assert_close(w.detach(), -0.5 * w0 / 5.0)


def test_sam_step_differs_from_plain_and_rho_zero_equals_plain():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3))
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))

    def one_step(kind: str, rho: float = 0.05) -> list[torch.Tensor]:
        m = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3))
        m.load_state_dict(net.state_dict())
        loss = lambda: nn.functional.cross_entropy(m(x), y)  # noqa: E731
        if kind == "plain":
            opt = torch.optim.Adam(m.parameters(), lr=0.1)
            loss().backward()
            opt.step()
        else:
            opt = SAM(m.parameters(), torch.optim.Adam, rho=rho, lr=0.1)
            loss().backward()
            opt.step(closure=lambda: loss().backward())
        return [p.detach().clone() for p in m.parameters()]

    plain, sam, sam0 = one_step("plain"), one_step("sam"), one_step("sam", rho=0.0)
    assert any(not torch.equal(a, b) for a, b in zip(plain, sam))
    assert all(not torch.equal(a, b) for a, b in zip(plain, [p for p in net.parameters()]))
    for a, b in zip(plain, sam0):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7)


def test_recipes_and_config_validation():
    up = TrainConfig.from_recipe("upstream_ir50")
    assert (up.model, up.optimizer, up.rho, up.weight_decay, up.scheduler, up.gamma, up.epochs, up.batch_size,
            up.label_smoothing) == ("ir50", "sam_adam", 0.05, 1e-4, "exponential", 0.98, 120, 64, 0.4)
    po = TrainConfig.from_recipe("poster", lr=None)
    assert (po.lr, po.label_smoothing, po.epochs, po.batch_size) == (4e-5, 0.2, 300, 200)
    assert set(RECIPES) == {"upstream_ir50", "poster", "fast"}
    with pytest.raises(TrainError, match="unknown recipe"):
        TrainConfig.from_recipe("nope")
    with pytest.raises(TrainError, match="unknown TrainConfig field"):
        TrainConfig.from_recipe("fast", learning_rate=1)
    with pytest.raises(TrainError, match="optimizer"):
        TrainConfig.from_recipe("fast", optimizer="sgd")
    with pytest.raises(TrainError, match="val_fraction"):
        TrainConfig.from_recipe("fast", val_fraction=1.0)
    assert _cfg().fingerprint() == _cfg(num_workers=2, progress=True).fingerprint()
    assert _cfg().fingerprint() != _cfg(lr=0.1).fingerprint()
    assert math.isclose(selection_score(accuracy=0.5, macro_f1=0.25), 0.67 * 0.25 + 0.33 * 0.5)


def test_train_writes_log_and_selects_best_on_validation(tmp_path):
    df = colour_set(tmp_path / "img")
    res = train(_cfg(), df, tmp_path / "run")
    log = pd.read_csv(tmp_path / "run" / "log.csv")
    assert tuple(log.columns) == LOG_COLUMNS
    assert log["epoch"].tolist() == [1, 2, 3]
    assert np.isfinite(log["train_loss"]).all() and res.seconds > 0  # timings stay out of the files
    scores = [selection_score(a, f) for a, f in zip(log["val_acc"], log["val_macro_f1"])]
    assert res.best_epoch == int(np.argmax(scores)) + 1  # first maximum of the validation score
    assert (tmp_path / "run" / "best" / "weights.pt").exists()
    split = pd.read_csv(tmp_path / "run" / "split.csv")
    assert split["split"].value_counts().to_dict() == {"train": 42, "val": 14}
    # the returned model is the selected one: its validation metrics are those logged for the best epoch
    val = split[split["split"] == "val"].assign(path=lambda d: [str(tmp_path / "run" / p) for p in d["path"]])
    pred = predict(res.model, val, progress=False)
    m = compute_metrics(pred.y_true, pred.y_pred)
    row = log.iloc[res.best_epoch - 1]
    assert m["accuracy"] == pytest.approx(row["val_acc"], abs=1e-12)
    assert m["macro_f1"] == pytest.approx(row["val_macro_f1"], abs=1e-12)
    # a finished run is not trained again
    again = train(_cfg(), df, tmp_path / "run")
    assert again.resumed_from == (3, 0) and again.best_epoch == res.best_epoch


def test_explicit_validation_set_must_not_overlap(tmp_path):
    df = colour_set(tmp_path / "img", n_per_class=4)
    with pytest.raises(TrainError, match="both training and validation"):
        train(_cfg(epochs=1), df, tmp_path / "run", val_data=df.iloc[:3])


@pytest.mark.parametrize("optimizer,stop_at", [("adamw", (1, 2)), ("sam_adam", (2, 0))])
def test_resume_after_interruption_is_bit_identical(tmp_path, optimizer, stop_at):
    df = colour_set(tmp_path / "img")
    cfg = _cfg(optimizer=optimizer, checkpoint_every=2)
    full = train(cfg, df, tmp_path / "full")

    class Interrupt(Exception):
        pass

    def crash(ev):
        if (ev.epoch, ev.step) == stop_at:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(cfg, df, tmp_path / "cut", callback=crash)
    resumed = train(cfg, df, tmp_path / "cut")
    assert resumed.resumed_from is not None and resumed.resumed_from != (0, 0)
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    sa = torch.load(tmp_path / "full" / "state.pt", weights_only=True)
    sb = torch.load(tmp_path / "cut" / "state.pt", weights_only=True)
    assert all(torch.equal(sa["model"][k], sb["model"][k]) for k in sa["model"])
    assert sa["optimizer"]["state"].keys() == sb["optimizer"]["state"].keys()
    pd.testing.assert_frame_equal(full.history, resumed.history, check_exact=True)


def test_run_folder_is_the_same_bytes_in_two_checkouts(tmp_path):
    """No timings, no absolute paths: a run's folder (a DVC-tracked output) is byte-identical elsewhere."""
    runs = []
    for where in ("a", "b/deeper"):
        (tmp_path / where).mkdir(parents=True)
        df = colour_set(tmp_path / where / "img", n_per_class=4)
        runs.append(tmp_path / where / "run")
        train(_cfg(epochs=2, checkpoint_every=2), df, runs[-1])
    files = sorted(str(p.relative_to(runs[0])) for p in runs[0].rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(runs[1])) for p in runs[1].rglob("*") if p.is_file())
    assert {"log.csv", "state.pt", "config.json", "summary.json", "best/weights.pt"} <= set(files)
    for f in files:
        assert (runs[0] / f).read_bytes() == (runs[1] / f).read_bytes(), f


def test_resume_refuses_a_different_config(tmp_path):
    df = colour_set(tmp_path / "img", n_per_class=4)
    train(_cfg(epochs=1), df, tmp_path / "run")
    with pytest.raises(TrainError, match="different run"):
        train(_cfg(epochs=1, lr=0.5), df, tmp_path / "run")


def test_cli_trains_from_a_manifest(tmp_path, capsys):
    df = colour_set(tmp_path / "img", n_per_class=4).assign(split="train")
    write_manifest(df, tmp_path / "m.csv")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--train", str(tmp_path / "m.csv"), "--split", "train", "--model", MODEL,
                              "--out", str(tmp_path / "cli"), "--epochs", "1", "--batch-size", "4",
                              "--val-fraction", "0.25", "--balanced", "--no-progress",
                              "--model-kwargs", '{"drop_rate": 0.0}'])
    assert run(args) == 0
    assert "best epoch 1/1" in capsys.readouterr().out
    assert pd.read_csv(tmp_path / "cli" / "log.csv").shape == (1, len(LOG_COLUMNS))
    ds = ManifestDataset(df.iloc[:2], eval_transform(ModelConfig(MODEL, input_size=(3, 16, 16))))
    assert ds[0][0].shape == (3, 16, 16)


def test_channels_last_is_a_speed_knob_on_cpu_too(tmp_path):
    from syntfer.engine.training import _use_channels_last

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert _use_channels_last(_cfg(), cpu) and _use_channels_last(_cfg(), cuda)  # auto: both devices
    assert not _use_channels_last(_cfg(channels_last="no"), cpu)
    assert _use_channels_last(_cfg(channels_last="yes"), cpu)
    df = colour_set(tmp_path / "img")
    runs = {fmt: train(_cfg(epochs=1, channels_last=fmt), df, tmp_path / fmt) for fmt in ("no", "yes")}
    a, b = runs["no"].model.state_dict(), runs["yes"].model.state_dict()
    # the same training up to float rounding: the format changes speed, not the model (the conv bias before
    # BatchNorm is left out: its gradient is rounding noise, which Adam's normalisation turns into full steps)
    for k in ("features.0.weight", "features.1.weight", "head.weight", "head.bias"):
        assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6), k
    assert runs["yes"].history["train_loss"].iloc[0] == pytest.approx(runs["no"].history["train_loss"].iloc[0],
                                                                      rel=1e-4)


def test_step_matched_epochs_give_a_hybrid_the_real_parts_steps():
    """A hybrid of 3,000 real + 1,400 synthetic images trains as many optimizer steps as the 3,000 alone at 24
    epochs: fewer epochs, the same compute (within half an epoch); a source it lacks raises."""
    import pandas as pd

    from syntfer.core import labels as L
    from syntfer.engine.training import TrainError, step_matched_epochs, steps_per_epoch

    def rows(source, n):
        return pd.DataFrame({"path": [f"{source}/{i}.png" for i in range(n)],
                             "label": [L.CLASSES[i % 7] for i in range(n)], "source": source})

    hybrid = pd.concat([rows("real_rafdb", 3000), rows("mixed_syn", 1400)], ignore_index=True)
    epochs, target = step_matched_epochs(hybrid, "real_rafdb", 24, 64, 0.1, seed=0)
    assert target == 24 * steps_per_epoch(2700, 64) == 24 * 42
    per_epoch = steps_per_epoch(3960, 64)
    assert epochs == 17 and abs(epochs * per_epoch - target) <= per_epoch / 2  # 1,008 / 61 steps an epoch
    own_val, _ = step_matched_epochs(hybrid, "real_rafdb", 24, 64, 0.1, seed=0, own_validation=True)
    assert own_val == round(target / steps_per_epoch(4400, 64))
    assert steps_per_epoch(63, 64) == 1 and steps_per_epoch(128, 64) == 2
    with pytest.raises(TrainError, match="no rows of source 'real_affectnet'"):
        step_matched_epochs(hybrid, "real_affectnet", 24, 64, 0.1, seed=0)
