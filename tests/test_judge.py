"""The one judge (syntfer.instruments.judge), the instruments trained around it, the attribute reader and face alignment."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from syntfer.core import labels as L
from syntfer.core.alignment import TEMPLATE, AlignmentError, align_face, anchors, parse_landmarks, similarity
from syntfer.engine.evaluation import predict
from syntfer.instruments.judge import (Judge, JudgeError, calibrate_temperature, fidelity_table, judge_ceiling,
                                       mean_class_fidelity, penultimate_features, reliability)
from syntfer.engine.models.checkpoint import save_checkpoint
from syntfer.engine.models.registry import create_model
from imagesets import colour_set, noise_images


@pytest.mark.parametrize("name,kw", [("cnn_tiny", {}), ("cnn_tiny", {"head": "flatten"}), ("ir_tiny", {})])
def test_judge_matches_predict_and_gives_the_classifier_layer_input(tmp_path, name, kw):
    torch.manual_seed(0)
    model = create_model(name, img_size=32, **kw).eval()
    paths = noise_images(tmp_path, [(40, 40), (64, 48), (40, 40), (32, 32), (64, 48)])  # batched per size
    out = Judge(model).outputs(paths, batch_size=3)
    ref = predict(model, pd.DataFrame({"path": paths}), progress=False)
    np.testing.assert_allclose(out.probs, ref.probs, rtol=1e-4, atol=1e-5)
    x = torch.stack([Judge(model).transform(Image.open(p).convert("RGB")) for p in paths[:1]])
    np.testing.assert_allclose(out.features[:1], penultimate_features(model, x).detach().numpy(), rtol=1e-4, atol=1e-5)
    # the same pixels as arrays give the same outputs as the files
    arrays = np.stack([np.asarray(Image.open(p).convert("RGB").resize((40, 40))) for p in paths])
    a = Judge(model).outputs(arrays)
    b = Judge(model).outputs([Image.fromarray(im) for im in arrays])
    np.testing.assert_allclose(a.probs, b.probs, rtol=1e-6)


def test_temperature_divides_logits_and_native_orders_are_permuted(tmp_path):
    torch.manual_seed(0)
    model = create_model("cnn_tiny", img_size=32).eval()
    paths = noise_images(tmp_path, [(32, 32)] * 4)
    raw = Judge(model).outputs(paths)
    hot = Judge(model, temperature=2.0).outputs(paths)
    np.testing.assert_allclose(hot.logits, raw.logits)
    np.testing.assert_allclose(hot.probs, torch.softmax(torch.tensor(raw.logits) / 2.0, 1).numpy(), rtol=1e-5)
    save_checkpoint(model, tmp_path / "ck", temperature=2.0)
    assert Judge.load(tmp_path / "ck").temperature == 2.0
    # a model trained in RAF-DB's native order reports in the canonical order
    model.cfg.labels = L.RAFDB_ORDER
    perm = Judge(model).outputs(paths).logits
    np.testing.assert_allclose(perm, raw.logits[:, L.permutation_to_canonical(L.RAFDB_ORDER)])
    with pytest.raises(JudgeError, match="temperature"):
        Judge(model, temperature=0.0)
    with pytest.raises(JudgeError, match="no images"):
        Judge(model).outputs([])


def test_fidelity_table_schema_and_mean_class():
    probs = np.eye(7)[[3, 3, 5, 0]]
    t = fidelity_table(probs, ["happy", "sad", "sad", "anger"]).set_index("class")
    assert list(t.columns) == ["n", "fidelity", "p_label"]
    assert t.loc["happy", "fidelity"] == 1.0 and t.loc["sad", "fidelity"] == 0.5 and t.loc["all", "fidelity"] == 0.75
    assert t.loc["sad", "n"] == 2 and np.isnan(t.loc["fear", "fidelity"])
    assert mean_class_fidelity(t.reset_index()) == pytest.approx((1.0 + 0.5 + 1.0) / 3)
    with pytest.raises(JudgeError, match="myset: row 2 has label ''"):
        fidelity_table(probs, ["happy", "sad", "", "anger"], "myset")
    with pytest.raises(JudgeError, match="3 predictions for 4 labels"):
        fidelity_table(probs[:3], ["happy", "sad", "sad", "anger"])


def test_judge_ceiling_reads_the_table_measure_ceiling_writes(tmp_path):
    """The one ceiling lookup: the mean_class fidelity of a domain, from measure_ceiling's table or its CSV."""
    from syntfer.instruments.build import measure_ceiling

    class Scripted:  # a judge that answers a fixed argmax per image
        def probs(self, paths):
            return np.eye(7)[[int(p.split("_")[1]) for p in paths]]

    labels = ["happy", "happy", "sad", "anger"]          # class indices 3, 3, 5, 0
    real = {"ref_web": pd.DataFrame({"path": ["a_3", "b_0", "c_5", "d_0"], "label": labels}),
            "ref_ffhq": pd.DataFrame({"path": ["a_3", "b_3", "c_5", "d_1"], "label": labels})}
    table = measure_ceiling(Scripted(), real)
    table.to_csv(tmp_path / "ceiling.csv", index=False)
    assert judge_ceiling(table, "ref_web") == pytest.approx((0.5 + 1.0 + 1.0) / 3)
    assert judge_ceiling(tmp_path / "ceiling.csv", "ref_ffhq") == pytest.approx((1.0 + 1.0 + 0.0) / 3)
    assert judge_ceiling(str(tmp_path / "ceiling.csv"), "ref_web") == judge_ceiling(table, "ref_web")
    with pytest.raises(JudgeError, match=r"ceiling.csv: 0 mean_class rows for domain 'ref_x' .*\['ref_ffhq', 'ref_web'\]"):
        judge_ceiling(tmp_path / "ceiling.csv", "ref_x")
    with pytest.raises(JudgeError, match="2 mean_class rows for domain 'ref_web'"):
        judge_ceiling(pd.concat([table, table]), "ref_web")
    with pytest.raises(JudgeError, match=r"no column\(s\) \['fidelity'\]"):
        judge_ceiling(table.drop(columns="fidelity"), "ref_web")
    broken = table.copy()
    broken.loc[(broken["domain"] == "ref_web") & (broken["class"] == "mean_class"), "fidelity"] = np.nan
    with pytest.raises(JudgeError, match="not a fidelity in"):
        judge_ceiling(broken, "ref_web")


def test_calibration_recovers_a_known_temperature_and_lowers_ece():
    rng = np.random.default_rng(0)
    n, true_t = 4000, 2.5
    base = rng.normal(0, 3, (n, 7))
    y = np.array([rng.choice(7, p=np.exp(b / true_t) / np.exp(b / true_t).sum()) for b in base])
    t = calibrate_temperature(base, y)
    assert t == pytest.approx(true_t, rel=0.1)
    p_raw = np.exp(base) / np.exp(base).sum(1, keepdims=True)
    p_cal = np.exp(base / t) / np.exp(base / t).sum(1, keepdims=True)
    table, ece_raw = reliability(p_raw, y)
    _, ece_cal = reliability(p_cal, y)
    assert ece_cal < ece_raw / 2 and table["n"].sum() == n


def test_loss_module_is_frozen_differentiable_and_canonical():
    torch.manual_seed(0)
    model = create_model("cnn_tiny", img_size=32).eval()
    model.cfg.labels = L.RAFDB_ORDER
    loss_net = Judge(model).loss_module()
    loss_net.train()  # stays in eval mode
    assert not loss_net.training and not loss_net.model.training
    x = (torch.rand(2, 3, 48, 48) * 2 - 1).requires_grad_(True)
    logits = loss_net(x)
    logits[:, L.index("happy")].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())
    direct = model(((torch.nn.functional.interpolate(x.detach() * 0.5 + 0.5, size=(32, 32), mode="bilinear",
                                                      antialias=True) - loss_net.mean) / loss_net.std))
    np.testing.assert_allclose(logits.detach().numpy(), direct[:, loss_net.perm].detach().numpy(), rtol=1e-5, atol=1e-6)


def test_train_instrument_calibrates_and_writes_a_loadable_checkpoint(tmp_path):
    from syntfer.instruments.build import CHECKPOINT, measure_ceiling, train_instrument
    from syntfer.engine.training import TrainConfig

    rng = np.random.default_rng(0)
    rows = []
    for i in range(140):  # an easy set: each class has its own colour
        c = i % 7
        arr = np.full((16, 16, 3), 30 * c, np.uint8) + rng.integers(0, 20, (16, 16, 3), dtype=np.uint8)
        p = tmp_path / f"{i}.png"
        Image.fromarray(arr).save(p)
        rows.append({"path": str(p), "label": L.CLASSES[c]})
    frame = pd.DataFrame(rows)
    # long enough to learn the colours (3 epochs at the default lr left some classes unread: mean-class 0.43)
    cfg = TrainConfig.from_recipe("fast", model="cnn_tiny", model_kwargs={"img_size": 16}, epochs=6, batch_size=16,
                                  lr=5e-3, label_smoothing=0.0, smoothing_weight=0.0, val_fraction=0.3, progress=False)
    summary = train_instrument(cfg, frame, tmp_path / "inst", name="judge")
    meta = json.loads((tmp_path / "inst" / CHECKPOINT / "config.json").read_text())["meta"]
    assert meta["temperature"] == pytest.approx(summary["temperature"]) and meta["instrument"] == "judge"
    assert summary["ece_after"] <= summary["ece_before"] + 1e-9
    judge = Judge.load(tmp_path / "inst" / CHECKPOINT)
    ceiling = measure_ceiling(judge, {"toy": frame})
    assert set(ceiling["class"]) == {*L.CLASSES, "all", "mean_class"} and (ceiling["domain"] == "toy").all()
    assert (tmp_path / "inst" / "reliability.csv").is_file()
    # it learned: the colours are separable, so the judge reads every class (chance is 1/7)
    by_class = ceiling.set_index("class")
    assert by_class.loc["mean_class", "fidelity"] > 0.9, ceiling
    assert (by_class.loc[list(L.CLASSES), "fidelity"] > 0.6).all(), ceiling


def test_ensemble_is_the_mean_of_its_members_logits_over_both_views_and_round_trips(tmp_path):
    from syntfer.engine.models import Ensemble, load_checkpoint

    torch.manual_seed(0)
    members = [create_model("cnn_tiny", img_size=16, head="flatten").eval() for _ in range(3)]
    x = torch.randn(5, 3, 16, 16)
    plain, mirrored = Ensemble.from_members(members).eval(), Ensemble.from_members(members, mirror=True).eval()
    with torch.no_grad():
        want = torch.stack([m(x) for m in members]).mean(0)
        want_mirror = torch.stack([m(v) for m in members for v in (x, x.flip(-1))]).mean(0)
        torch.testing.assert_close(plain(x), want)
        torch.testing.assert_close(mirrored(x), want_mirror)
        assert not torch.allclose(want, want_mirror)  # the mirror is a second view, not a no-op
    save_checkpoint(mirrored, tmp_path / "ens", temperature=2.0)
    back = load_checkpoint(tmp_path / "ens").eval()
    assert isinstance(back, Ensemble) and back.mirror and len(back.members) == 3
    with torch.no_grad():
        torch.testing.assert_close(back(x), want_mirror)
    paths = noise_images(tmp_path / "im", [(20, 20), (24, 24)])
    out = Judge.load(tmp_path / "ens").outputs(paths)
    assert out.features.shape == (2, 3 * 2 * L.NUM_CLASSES)  # the stacked member logits of both views
    np.testing.assert_allclose(out.probs, torch.softmax(torch.from_numpy(out.logits) / 2.0, 1).numpy(), rtol=1e-5)
    with pytest.raises(ValueError, match="member 1 has config"):
        Ensemble.from_members([members[0], create_model("cnn_tiny", img_size=20)])


def test_an_ensemble_instrument_trains_its_members_on_one_split_and_calibrates_them_as_one(tmp_path):
    from syntfer.instruments.build import CHECKPOINT, train_instrument
    from syntfer.engine.models import Ensemble
    from syntfer.engine.training import TrainConfig

    frame = colour_set(tmp_path / "im", n_per_class=10, size=16)
    cfg = TrainConfig.from_recipe("fast", model="cnn_tiny", model_kwargs={"img_size": 16}, epochs=2, batch_size=16,
                                  label_smoothing=0.0, smoothing_weight=0.0, val_fraction=0.3, seed=5,
                                  progress=False)
    summary = train_instrument(cfg, frame, tmp_path / "inst", name="teacher", members=2, mirror=True)
    splits = [pd.read_csv(tmp_path / "inst" / "train" / f"member{k}" / "split.csv") for k in range(2)]
    assert splits[0].equals(splits[1])  # one validation split, held out from every member
    assert summary["members"] == 2 and summary["val_images"] == int((splits[0]["split"] == "val").sum()) > 0
    seeds = [json.loads((tmp_path / "inst" / "train" / f"member{k}" / "config.json").read_text())["train"]["seed"]
             for k in range(2)]
    assert seeds == [5, 6]
    judge = Judge.load(tmp_path / "inst" / CHECKPOINT)
    assert isinstance(judge.model, Ensemble) and judge.model.mirror
    assert judge.temperature == pytest.approx(summary["temperature"])
    w = [m.head.weight for m in judge.model.members]
    assert not torch.equal(w[0], w[1])  # different seeds, different members
    with pytest.raises(Exception, match="members=0"):
        train_instrument(cfg, frame, tmp_path / "bad", name="teacher", members=0)


def test_attribute_reader_learns_and_reads_race_as_a_skin_tone_range(tmp_path):
    from syntfer.instruments.attributes import demographic_fidelity, load_reader, race_in_range, train_reader

    rng = np.random.default_rng(0)
    rows = []
    for i in range(120):  # gender = brightness of the top half, age group = of the bottom, skin tone = red level
        g, a, s = i % 2, (i // 2) % 5, 1 + (i // 10) % 6
        arr = np.zeros((16, 16, 3), np.uint8)
        arr[:8] = 60 + 150 * g
        arr[8:] = 30 + 40 * a
        arr[..., 0] = 20 + 35 * s
        arr = np.clip(arr.astype(int) + rng.integers(0, 10, arr.shape), 0, 255).astype(np.uint8)
        p = tmp_path / f"{i}.png"
        Image.fromarray(arr).save(p)
        rows.append({"path": str(p), "gender": ("male", "female")[g],
                     "age": ("child", "young", "adult", "middle-aged", "old")[a], "skin_tone": str(s)})
    frame = pd.DataFrame(rows)
    best = train_reader(frame, tmp_path / "reader", trunk_kwargs={"img_size": 16}, epochs=12, lr=5e-3)
    assert best["gender"] > 0.8
    reader = load_reader(tmp_path / "reader")
    read = reader.predict(frame["path"].tolist())
    assert (read["gender"] == frame["gender"]).mean() > 0.8
    assert list(race_in_range(["white", "black", "latino"], [2, 2, "5"])) == [True, False, True]
    asked = frame.assign(race="black")
    fid = demographic_fidelity(read, asked)
    assert set(fid) == {"gender", "age", "race"} and 0 <= fid["race"] <= 1


def test_alignment_puts_the_anchors_on_the_template():
    rng = np.random.default_rng(0)
    pts = np.array([[30, 40], [60, 42], [45, 60], [33, 75], [58, 76]], np.float32)
    m = similarity(pts, 48)
    moved = anchors(pts) @ m[:, :2].T + m[:, 2]
    assert np.abs(moved - TEMPLATE * 48).max() < 1.5
    img = rng.integers(0, 256, (100, 100, 3), dtype=np.uint8)
    assert align_face(img, pts, 48).shape == (48, 48, 3)
    pts68 = np.zeros((68, 2), np.float32)
    pts68[36:42], pts68[42:48], pts68[30] = pts[0], pts[1], pts[2]
    np.testing.assert_allclose(anchors(pts68), anchors(pts))
    np.testing.assert_allclose(parse_landmarks("1;2;3;4"), [[1, 2], [3, 4]])
    with pytest.raises(AlignmentError, match="expected x;y pairs"):
        parse_landmarks("1;2;3")
    with pytest.raises(AlignmentError, match="expected 5 or 68"):
        anchors(np.zeros((4, 2)))
    with pytest.raises(AlignmentError, match="degenerate"):
        anchors(np.zeros((5, 2)))
