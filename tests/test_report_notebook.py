"""Notebook 08 (the report) runs top to bottom on small, fake but well-formed inputs and exports its figures."""
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from syntfer.instruments import audit as A
from syntfer.engine import evaluation as E
from syntfer.core import labels as L
from syntfer.study import summary as S
from syntfer.tools.notebook import NotebookError, parameters_cell, read_notebook, run_notebook

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT / "notebooks" / "08_report.py"
TRAIN_SETS = ("real_rafdb", "real_affectnet", "real_rafdb_matched", "oracle_ffhq", "pseudolabel_dcface",
              "diffusion_embedded", "gan_f", "mixed_syn", "hybrid_gan_f")
REAL_SETS = {"real_rafdb", "real_affectnet", "real_rafdb_matched"}
TESTS = ("rafdb", "affectnet", "fer2013")
SEEDS = (0, 1)
MODEL = "ir_tiny"
REAL_ONLY = ("real_rafdb", "real_affectnet", "real_fer2013")  # the default pipeline's grid today
SYNTHETIC = [s for s in TRAIN_SETS if not s.startswith(("real_", "hybrid_", "oracle_"))]
RAFDB_Y = np.repeat(np.arange(L.NUM_CLASSES), [10, 4, 6, 30, 18, 14, 9])  # the fake rafdb test labels (j = 0 below)


def _scaling(root: Path) -> Path:
    """Notebook 07's runs for two sources: n<size>/s<seed>/confusion_rafdb.csv on the same fake test images."""
    rng = np.random.default_rng(5)
    for src, sizes in (("real_rafdb", (100, 200)), ("gan_f", (100,))):
        for k, n in enumerate(sizes):
            for seed in SEEDS:
                run = root / "scaling" / src / f"n{n}" / f"s{seed}"
                run.mkdir(parents=True)
                right = rng.random(len(RAFDB_Y)) < 0.2 + 0.1 * k
                pred = np.where(right, RAFDB_Y, rng.integers(0, L.NUM_CLASSES, len(RAFDB_Y)))
                E.confusion_rows(RAFDB_Y, pred).to_csv(run / "confusion_rafdb.csv", index=False)
    return root / "scaling"


def _runs(root: Path, train_sets) -> Path:
    """One run folder per training set × seed: cross_dataset.csv + confusion_<test>.csv, as notebook 02 writes."""
    rng = np.random.default_rng(0)
    for i, s in enumerate(train_sets):
        tidy = []
        for seed in SEEDS:
            run = root / "train" / s / f"s{seed}"
            run.mkdir(parents=True)
            metrics = {}
            for j, t in enumerate(TESTS):
                y = np.repeat(np.arange(L.NUM_CLASSES), [10, 4, 6, 30, 18, 14, 9 + 3 * j])  # skewed like RAF-DB
                right = rng.random(len(y)) < 0.35 + 0.05 * i - 0.1 * j + 0.02 * seed
                pred = np.where(right, y, rng.integers(0, L.NUM_CLASSES, len(y)))
                metrics[t] = E.compute_metrics(y, pred)
                E.confusion_rows(y, pred).to_csv(run / f"confusion_{t}.csv", index=False)
            tidy.append(E.tidy_rows(s, MODEL, seed, metrics))
        pd.concat(tidy).to_csv(root / "train" / s / "cross_dataset.csv", index=False)  # every seed, as 02 writes it
    return root / "train"


def _manifests(root: Path, train_sets) -> Path:
    sets = root / "sets"
    for s in tuple(train_sets) + ("pseudolabel_digiface",):  # one set without training results
        per = ([40, 10, 20, 160, 80, 60, 50] if s.endswith("_matched") else [300, 40, 90, 1200, 600, 500, 320]
               if s.startswith(("real_", "hybrid_")) else [60] * L.NUM_CLASSES)
        labels = np.repeat(L.CLASSES, per)
        split = np.where(np.arange(len(labels)) % 10 == 0, "val", "train")
        (sets / s).mkdir(parents=True)
        pd.DataFrame({"path": [f"img/{k:05d}.png" for k in range(len(labels))], "label": labels,
                      "split": split}).to_csv(sets / s / "manifest.csv", index=False)
    return sets


def _set_tables(root: Path) -> Path:
    """The tables notebook 06 writes: synthetic.csv, distances.csv, fidelity_per_class.csv, privacy_summary.csv,
    demographics.csv and metrics.json (its data kind)."""
    rng = np.random.default_rng(1)
    out = root / "results" / "sets"
    out.mkdir(parents=True)
    rows, dist, fid = [], [], []
    for s in SYNTHETIC:
        per_class = rng.uniform(0.2, 1.0, L.NUM_CLASSES)
        fid += [{"set": s, "class": c, "n": 60, "fidelity": f, "p_label": 0.5}
                for c, f in zip((*L.CLASSES, "all"), (*per_class, per_class.mean()))]
        values = {"n_images": 420, "expression_fidelity": per_class.mean()}
        for space in ("baseline", "identity"):
            values |= {f"fd_{space}": rng.uniform(5, 50), f"kid_{space}": rng.uniform(0.001, 0.05)}
            dist.append({"set": s, "space": space, "n": 420, "n_reference": 600, "fd": values[f"fd_{space}"],
                         "kid": values[f"kid_{space}"], "kid_sd": 0.001, "kid_subsets": 100})
        if s.startswith("gan_"):
            values["identity_similarity"] = rng.uniform(0.5, 0.9)
        rows += [{"set": s, "metric": k, "value": v} for k, v in values.items()]
    pd.DataFrame(rows).to_csv(out / "synthetic.csv", index=False)
    pd.DataFrame(dist).to_csv(out / "distances.csv", index=False)
    pd.DataFrame(fid).to_csv(out / "fidelity_per_class.csv", index=False)
    (out / "metrics.json").write_text(json.dumps({"data_kind": "world", "n_sets": len(SYNTHETIC)}))
    pd.DataFrame([{"set": s, "space": sp, "n": 420, "similarity_mean": rng.uniform(0.2, 0.6),
                   "similarity_p95": 0.7, "similarity_max": 0.8, "threshold": 0.9, "n_flagged": k,
                   "share_flagged": k / 420} for s in SYNTHETIC for sp, k in (("pixel", 0), ("identity", 3))]
                 ).to_csv(out / "privacy_summary.csv", index=False)
    demo = []
    for s in SYNTHETIC:
        frame = pd.DataFrame({"label": np.repeat(L.CLASSES, 6),
                              "gender": rng.choice(["female", "male"], 42),
                              "age": rng.choice(["20-29", "30-39", "60-69"], 42),
                              "skin_tone": rng.choice(["1", "3", "6"], 42)})
        demo.append(A.demographic_table(frame, s, "world truth").assign(n_unmatched=0))
    pd.concat(demo).to_csv(out / "demographics.csv", index=False)
    return out


def make_inputs(tmp_path: Path, train_sets=TRAIN_SETS) -> dict:
    """A complete fake study: runs, summary (via syntfer.study.summary.collect), manifests and set tables."""
    train = _runs(tmp_path, train_sets)
    sets_dir = _set_tables(tmp_path)
    pl = []
    for src, kept in (("dcface", 700), ("digiface", 650)):
        (tmp_path / "pl" / src).mkdir(parents=True)
        (tmp_path / "pl" / src / "metrics.json").write_text(json.dumps({"source": src, "kept": kept,
                                                                         "precision": 0.8}))
        pl.append(str(tmp_path / "pl" / src / "metrics.json"))
    summary = tmp_path / "results" / "summary"
    (tmp_path / "st").mkdir()  # the notebooks' inputs, as 01-07 list them in their metrics (all world here)
    (tmp_path / "st" / "instruments.json").write_text(json.dumps(
        {"inputs": {"reference.ref_web": {"path": "outputs/world/ref_web", "kind": "world"}}, "skipped": {}}))
    S.collect(summary, eval_files=sorted(map(str, train.glob("*/cross_dataset.csv"))),
              synthetic_files=[str(sets_dir / "synthetic.csv")], pseudolabel_files=pl,
              privacy_files=[str(sets_dir / "privacy_summary.csv")], primary_model=MODEL, data_kind="world",
              input_files=[str(tmp_path / "st" / "instruments.json")],
              matched_real="real_rafdb_matched" if "real_rafdb_matched" in train_sets else None,
              set_domains={"gan_": "ref_ffhq", "diffusion_": "ref_web"})
    return {"summary_dir": str(summary), "sets_dir": str(sets_dir),
            "train_sets_dir": str(_manifests(tmp_path, train_sets)),
            "runs_glob": str(train / "*" / "cross_dataset.csv"), "model": MODEL,
            "primary_test": "rafdb", "reference_set": "real_rafdb", "min_seeds": 2, "train_dir": str(train),
            "pseudolabel_dirs": str(tmp_path / "pl"),
            "diffusion_dir": str(tmp_path / "no_diffusion"), "draws": 100,
            "findings_metrics": str(tmp_path / "findings.json"), "out_dir": str(tmp_path / "report"),
            "set_size": 420, "scaling_dir": str(_scaling(tmp_path) if "gan_f" in train_sets else tmp_path / "none")}


@pytest.fixture()
def inputs(tmp_path):
    return make_inputs(tmp_path)


def test_parameters_are_plain_literals():
    _, values = parameters_cell(read_notebook(NB))
    assert {"summary_dir", "sets_dir", "train_sets_dir", "runs_glob", "primary_test",
            "out_dir"} <= set(values)


@pytest.mark.slow
def test_report_runs_and_exports_its_figures(inputs, tmp_path):
    nb = run_notebook(NB, tmp_path / "nb", inputs)
    report = Path(inputs["out_dir"])
    html = nb.with_suffix(".html").read_text()
    pngs = sorted((report / "figures").glob("*.png"))
    names = {p.stem for p in pngs}
    assert {"composition", "cross_dataset", "per_class_recall", "minority_gains", "strategies", "confusion",
            "distances", "fidelity_per_class", "privacy", "demographics_gender", "headline", "scaling"} <= names, names
    assert len(re.findall(r'<img[^>]+src="data:image/png;base64,', html)) >= len(pngs)
    assert "procedural-world stand-ins" in html and "no number here is a RAF-DB, AffectNet or FER2013 result" in html
    headline = pd.read_csv(report / "headline.csv")
    assert len(headline) == len(TRAIN_SETS) * len(TESTS)
    assert {"train_set", "test_set", "acc", "balanced_acc", "macro_f1"} <= set(headline.columns)
    assert (headline["data_kind"] == "world").all() and (headline["n_seeds"] == len(SEEDS)).all()
    # the headline numbers are the summary's seed means
    ev = pd.read_csv(Path(inputs["summary_dir"]) / "eval.csv")
    want = ev[(ev["metric"] == "macro_f1")].set_index(["train_set", "test_set"])["mean"]
    got = headline.set_index(["train_set", "test_set"])["macro_f1"]
    assert np.allclose(got, want.loc[got.index], atol=1e-4)
    sections = pd.read_csv(report / "sections.csv")
    assert (sections["status"] == "shown").all(), sections
    findings = pd.read_csv(report / "findings.csv")
    assert set(findings["set_a"]) == set(TRAIN_SETS) - REAL_SETS  # every non-real set
    assert {"synthetic vs real, equal size", "synthetic vs oracle", "oracle vs real, equal size"} <= set(findings["kind"])
    assert set(findings["verdict_holm"]) <= {"supported", "contradicted", "inconclusive", "skipped"}
    # no attribute reading of the diffusion set in this study (no diffusion_dir): its demographic claims are rows that
    # say why they were not tested, never a silent absence
    skipped = findings[findings["verdict"] == "skipped"]
    assert set(skipped["set_a"]) == {"diffusion_embedded"} and len(skipped) == 3
    assert skipped["reason"].str.contains("attributes_real_train.csv not written").all()
    assert (findings.loc[findings["verdict"] != "skipped", "reason"].fillna("") == "").all()
    rates = pd.read_csv(report / "exchange_rates.csv")
    assert set(rates["source"]) == {"gan_f"} and set(rates["real_images"]) == {100, 200, 420, 3050}
    assert (report / "ratios.csv").is_file() and "## 9 · Conclusions" in nb.read_text()
    assert set(findings["verdict"]) <= {"supported", "contradicted", "inconclusive", "skipped"}
    assert json.loads(Path(inputs["findings_metrics"]).read_text())["supported"] == (
        findings["verdict"] == "supported").sum()
    gains = pd.read_csv(report / "minority_gains.csv")
    assert set(gains["train_set"]) == set(TRAIN_SETS) - REAL_SETS
    assert set(gains["class"]) == {"disgust", "fear", "anger"}


@pytest.mark.slow
def test_optional_sections_say_not_produced(tmp_path):
    """Real training sets only and no set measurements (the default pipeline's state today); a demographic table
    with no rows (real data without an attribute basis) counts as not produced."""
    inputs = make_inputs(tmp_path, REAL_ONLY)
    demo = pd.read_csv(Path(inputs["sets_dir"]) / "demographics.csv").iloc[:0]
    shutil.rmtree(inputs["sets_dir"])
    Path(inputs["sets_dir"]).mkdir()
    demo.to_csv(Path(inputs["sets_dir"]) / "demographics.csv", index=False)
    (Path(inputs["summary_dir"]) / "pseudolabel.csv").unlink()
    nb = run_notebook(NB, tmp_path / "nb", inputs, html=False)
    sections = pd.read_csv(Path(inputs["out_dir"]) / "sections.csv").set_index("section")["status"]
    not_produced = set(sections[sections == "not produced by this run"].index)
    assert not_produced == {"findings", "minority-class gains", "synthetic-set measurements", "FD / KID per feature space", "expression fidelity",
                            "expression fidelity per class", "identity similarity (GAN sets)",
                            "pseudo-labeling survivors", "demographic audit", "privacy check",
                            "oracle and real ratios", "data scaling and exchange rates"}
    text = nb.read_text()
    assert text.count("not produced by this run") >= len(not_produced)
    assert f"{len(not_produced)} of {len(sections)} sections not produced" in text


@pytest.mark.slow
def test_missing_manifest_is_an_error_naming_its_path(inputs, tmp_path):
    (Path(inputs["train_sets_dir"]) / "gan_f" / "manifest.csv").unlink()
    with pytest.raises(NotebookError, match=r"gan_f/manifest\.csv: manifest of training set 'gan_f' not found"):
        run_notebook(NB, tmp_path / "nb", inputs, html=False)
