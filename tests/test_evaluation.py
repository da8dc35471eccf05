"""Evaluation: metrics against hand-computed values, confusion rows, label permutation, tidy tables, CLI."""
from __future__ import annotations

import argparse
import json
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402

from syntfer.core import labels as L  # noqa: E402
from syntfer.engine.evaluation import (CROSS_COLUMNS, EvaluationError, add_arguments, aggregate_seeds,  # noqa: E402
                                       compute_metrics, confusion_rows, confusion_table, cross_dataset_matrix,
                                       evaluate, flat_metrics, plot_confusion, plot_cross_dataset, predict,
                                       read_cross_dataset, recall_vs_frequency, run, tidy_rows)
from syntfer.core.manifest import write_manifest  # noqa: E402
from syntfer.engine.models.checkpoint import save_checkpoint  # noqa: E402
from syntfer.engine.models.registry import ModelConfig, list_models, register_model  # noqa: E402

MODEL = "colour_oracle_for_evaluation_tests"
# the tiny example: 6 samples, classes anger(0), disgust(1), fear(2)
Y_TRUE = [0, 0, 0, 1, 1, 2]
Y_PRED = [0, 0, 1, 1, 2, 2]


class _Oracle(nn.Module):
    """Predicts output index = round(mean red value * 6) (images are built so this is the class)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.scale = nn.Parameter(torch.tensor(1.0))

    def forward(self, x):
        red = x[:, 0].mean(dim=(1, 2)) * self.scale  # mean 0, std 1 normalisation: red in [0, 1]
        k = torch.round(red * 6).long().clamp(0, 6)
        return nn.functional.one_hot(k, 7).float() * 10


if MODEL not in list_models():
    @register_model
    def colour_oracle_for_evaluation_tests(num_classes: int = 7, pretrained: str | None = None,
                                           order: str = "canonical"):
        labels = L.CLASSES if order == "canonical" else L.RAFDB_ORDER
        cfg = ModelConfig(MODEL, input_size=(3, 8, 8), mean=(0.0,) * 3, std=(1.0,) * 3, labels=labels,
                          num_classes=num_classes, kwargs={"order": order})
        return _Oracle(cfg)


def _images(tmp_path, classes: list[int]) -> pd.DataFrame:
    rows = []
    for i, k in enumerate(classes):
        p = tmp_path / f"img{i}.png"
        Image.new("RGB", (12, 12), (round(k / 6 * 255), 0, 0)).save(p)
        rows.append({"path": str(p), "label": L.CLASSES[k]})
    return pd.DataFrame(rows)


def test_metrics_match_hand_computation():
    m = compute_metrics(Y_TRUE, Y_PRED)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    # F1 anger: P 2/2, R 2/3 -> 0.8; disgust: P 1/2, R 1/2 -> 0.5; fear: P 1/2, R 1 -> 2/3
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert m["recall_anger"] == pytest.approx(2 / 3)
    assert m["recall_disgust"] == pytest.approx(0.5)
    assert m["recall_fear"] == 1.0
    assert all(math.isnan(m[f"recall_{c}"]) for c in ("happy", "neutral", "sad", "surprise"))
    assert m["n"] == 6


def test_metrics_reject_bad_labels():
    with pytest.raises(EvaluationError, match=r"y_true\[1\] = -1"):
        compute_metrics([0, -1], [0, 0])
    with pytest.raises(EvaluationError, match="equal-length"):
        compute_metrics([0, 1], [0])
    with pytest.raises(EvaluationError, match=r"y_pred\[0\] = 7"):
        confusion_rows([0], [7])


def test_confusion_rows_and_table():
    rows = confusion_rows(Y_TRUE, Y_PRED)
    assert list(rows.columns) == ["actual", "predicted"]
    assert rows.values.tolist() == [["anger", "anger"], ["anger", "anger"], ["anger", "disgust"],
                                    ["disgust", "disgust"], ["disgust", "fear"], ["fear", "fear"]]
    t = confusion_table(Y_TRUE, Y_PRED)
    assert t.shape == (7, 7) and list(t.index) == list(L.CLASSES)
    assert t.loc["anger", "anger"] == 2 and t.loc["anger", "disgust"] == 1 and t.to_numpy().sum() == 6
    tn = confusion_table(Y_TRUE, Y_PRED, normalize="true")
    assert tn.loc["disgust", "fear"] == 0.5 and np.isnan(tn.loc["happy", "happy"])


def test_predict_maps_native_output_order_to_canonical(tmp_path):
    classes = [0, 1, 2, 3, 4, 5, 6, 3]
    df = _images(tmp_path, classes)
    canon = predict(torch_model("canonical"), df, progress=False)
    assert canon.y_pred.tolist() == classes and canon.probs.shape == (8, 7)
    np.testing.assert_allclose(canon.probs.sum(1), 1.0, rtol=1e-6)
    # same outputs read in RAF-DB order: output k means RAFDB_ORDER[k]
    raf = predict(torch_model("rafdb"), df, progress=False)
    assert [L.CLASSES[i] for i in raf.y_pred] == [L.RAFDB_ORDER[k] for k in classes]
    assert raf.frame()["predicted"].tolist() == [L.RAFDB_ORDER[k] for k in classes]
    res = evaluate(torch_model("canonical"), {"a": df}, progress=False)
    assert res["a"][1]["accuracy"] == 1.0


def torch_model(order: str) -> nn.Module:
    from syntfer.engine.models import create_model

    return create_model(MODEL, order=order)


def test_tidy_rows_aggregate_and_matrix(tmp_path):
    t1 = tidy_rows("rafdb", "ir_tiny", 0, {"rafdb": {"accuracy": 0.5}, "fer2013": {"accuracy": 0.2}})
    t2 = tidy_rows("rafdb", "ir_tiny", 1, {"rafdb": {"accuracy": 0.7}, "fer2013": {"accuracy": 0.2}})
    assert tuple(t1.columns) == CROSS_COLUMNS and len(t1) == 2
    for i, t in enumerate((t1, t2)):
        t.to_csv(tmp_path / f"c{i}.csv", index=False)
    tidy = read_cross_dataset([tmp_path / "c0.csv", tmp_path / "c1.csv"])
    agg = aggregate_seeds(tidy).set_index("test_set")
    assert agg.loc["rafdb", "mean"] == pytest.approx(0.6)
    assert agg.loc["rafdb", "sd"] == pytest.approx(math.sqrt(0.02))
    assert agg.loc["fer2013", "sd"] == 0.0 and agg.loc["rafdb", "n_seeds"] == 2
    mat = cross_dataset_matrix(tidy)
    assert mat.loc["rafdb", "rafdb"] == "0.600 ± 0.141"
    assert aggregate_seeds(t1)["sd"].isna().all()  # one seed: no sd
    ax = plot_cross_dataset(tidy)
    assert ax.get_xlabel() == "test set"
    with pytest.raises(EvaluationError, match="duplicate"):
        read_cross_dataset([tmp_path / "c0.csv", tmp_path / "c0.csv"])
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(EvaluationError, match="columns"):
        read_cross_dataset([tmp_path / "bad.csv"])


def test_flat_metrics_and_recall_vs_frequency():
    m = compute_metrics(Y_TRUE, Y_PRED)
    flat = flat_metrics({"rafdb": m})
    assert flat["rafdb_accuracy"] == pytest.approx(4 / 6) and flat["rafdb_recall_happy"] is None
    json.dumps(flat)  # serialisable
    rv = recall_vs_frequency(m, {"anger": 3, "disgust": 1, "fear": 0, "happy": 4})
    assert rv.loc[rv["class"] == "happy", "train_share"].item() == 0.5
    assert rv.loc[rv["class"] == "anger", "recall"].item() == pytest.approx(2 / 3)
    assert plot_confusion(Y_TRUE, Y_PRED, title="x").get_title() == "x"


def test_cli_evaluates_a_checkpoint(tmp_path, capsys):
    df = _images(tmp_path, [0, 1, 2, 3, 4, 5, 6, 6])
    write_manifest(df.assign(split="test"), tmp_path / "m.csv")
    save_checkpoint(torch_model("canonical"), tmp_path / "ckpt", epoch=1)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--checkpoint", str(tmp_path / "ckpt"), "--test", f"w={tmp_path / 'm.csv'}@test",
                              "--out", str(tmp_path / "ev"), "--train-set", "rafdb", "--seed", "2"])
    assert run(args) == 0
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["w_accuracy"] == 1.0 and metrics["w_n"] == 8
    rows = pd.read_csv(tmp_path / "ev" / "confusion_w.csv")
    assert len(rows) == 8 and (rows["actual"] == rows["predicted"]).all()
    tidy = pd.read_csv(tmp_path / "ev" / "cross_dataset.csv")
    assert tuple(tidy.columns) == CROSS_COLUMNS and set(tidy["seed"]) == {2}
    with pytest.raises(EvaluationError, match="NAME=MANIFEST"):
        run(parser.parse_args(["--checkpoint", str(tmp_path / "ckpt"), "--test", "nope", "--out", "x",
                               "--train-set", "a", "--seed", "0"]))
