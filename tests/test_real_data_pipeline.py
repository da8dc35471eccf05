"""The paper's pipeline for a researcher who has the data: native-format trees, every input a parameter, `dvc repro`.

What a user holding RAF-DB, AffectNet, FER2013, unlabeled collections, FFHQ and labeled faces of each generator's look
does: put them in a folder outside the project, point `datasets.*`, `pseudolabel.sources.*` and `study.oracles.*` at
them, and run `dvc repro`. The trees here are built from a separately rendered world, in each dataset's own format and
with nothing else — no truth.csv, no boxes.csv, no world markers — so to the pipeline they are the user's data. The
committed embedded generators, the GAN editor and the identity encoder stand in for hub weights; they are world-trained,
so the run is `mixed` and every notebook and the report say which input is which.

Checked: the run completes through `findings.csv`; every data input is `real`; every truth-based measurement (pseudo-label
precision and calibration, the attribute reader and the demographic claims, the GAN hidden-truth rows) is skipped with
its reason — in the stage's metrics.json, in the summary, and as a `skipped` row of findings.csv — and never computed
from world files the user does not have.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from syntfer.sources.readers import IMAGE_SUFFIXES
from syntfer.sources.world import render_world
from pipeline_copy import DVC, checkout, repro_env, run

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3000)]
UNLABELED = ("digiface", "dcface", "emonet_face")
WEIGHTS = {"editor", "landmark_predictor", "identity_encoder", "embedded_model"}  # model weights (world-trained, committed)


def _copy_images(src: Path, dest: Path) -> None:
    """Only the images of a folder tree (identity sub-folders kept): an unlabeled collection or FFHQ as published."""
    for p in sorted(src.rglob("*")):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            (dest / p.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, dest / p.relative_to(src))


def _class_folders(domain: Path, dest: Path) -> None:
    """Labeled faces of a generator's look as `<split>/<class>/<image>` (format `folder`), no demographics."""
    truth = pd.read_csv(domain / "truth.csv", dtype=str, keep_default_na=False)
    for r in truth.itertuples():
        d = dest / r.split / r.expression
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy2(domain / r.path, d / Path(r.path).name)


def native_trees(world: Path, data: Path) -> dict[str, Path]:
    """Each dataset in its own published format, from a rendered world, with none of the world's extra files."""
    shutil.copytree(world / "rafdb" / "EmoLabel", data / "rafdb" / "EmoLabel")
    shutil.copytree(world / "rafdb" / "Image", data / "rafdb" / "Image")
    (data / "affectnet").mkdir(parents=True)
    for f in ("training.csv", "validation.csv"):
        shutil.copy2(world / "affectnet" / f, data / "affectnet" / f)
    shutil.copytree(world / "affectnet" / "Manually_Annotated_Images", data / "affectnet" / "Manually_Annotated_Images")
    (data / "fer2013").mkdir()
    shutil.copy2(world / "fer2013" / "fer2013.csv", data / "fer2013" / "fer2013.csv")
    for name in (*UNLABELED, "ffhq"):
        _copy_images(world / name, data / name)
    for name in ("ref_web", "ref_ffhq"):
        _class_folders(world / name, data / name)
    leaked = [str(p) for p in data.rglob("*") if p.name in ("truth.csv", "boxes.csv", "world.json", ".world-done.json")]
    assert not leaked, f"world files in the user's trees: {leaked[:3]}"
    return {n: data / n for n in ("rafdb", "affectnet", "fer2013", *UNLABELED, "ffhq", "ref_web", "ref_ffhq")}


def test_native_format_trees_through_dvc_repro_to_the_findings(tmp_path):
    env = repro_env()
    repo = checkout(tmp_path / "repo", env)
    source = tmp_path / "rendered"  # another world (seed 1): the "licensed data" the user holds
    render_world(source, "smoke", seed=1, workers=2, progress=False)
    trees = native_trees(source, tmp_path / "data")  # outside the project
    shutil.rmtree(source)  # the user never had the world's truth: nothing may read it

    params = yaml.safe_load((repo / "params.yaml").read_text())
    d = params["datasets"]
    for name in ("rafdb", "affectnet", "fer2013"):
        d["labeled"][name]["root"] = str(trees[name])
    d["gan_faces"] = str(trees["ffhq"])
    for name in ("ref_web", "ref_ffhq"):
        d["references"][name] = {"format": "folder", "root": str(trees[name])}
    params["study"]["oracles"] = {"oracle_web": {"format": "folder", "root": str(trees["ref_web"])},
                                  "oracle_ffhq": {"format": "folder", "root": str(trees["ref_ffhq"])}}
    params["pseudolabel"]["sources"] = {n: {"images": str(trees[n]), "truth": ""} for n in UNLABELED}
    params["train"]["seeds"] = [0]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run([DVC, "repro"], repo, env)

    out = repo / "outputs"
    summary = json.loads((out / "results/summary/metrics.json").read_text())
    kinds = {k: v["kind"] for k, v in summary["inputs"].items()}
    weights = {k: v for k, v in kinds.items() if k.rsplit(".", 1)[-1] in WEIGHTS}
    data_inputs = {k: v for k, v in kinds.items() if k not in weights}
    assert weights and set(weights.values()) == {"world"}, weights  # the committed stand-ins for hub weights
    assert len(data_inputs) >= 10 and set(data_inputs.values()) == {"real"}, data_inputs
    assert summary["data_kind"] == "mixed"

    # truth-based measurements: skipped with a reason, at the stage and in the summary
    skipped = summary["skipped"]
    for n in UNLABELED:
        pl = json.loads((out / f"sets/pseudolabel_{n}/metrics.json").read_text())
        assert "real data" in pl["skipped"]["precision"] and not any(k.startswith("world_") for k in pl)
        assert pl["truth_csv"] == "" and skipped[f"pseudolabel_{n}"]["precision"] == pl["skipped"]["precision"]
    assert "demographic truth" in skipped["instruments"]["reader"]
    assert json.loads((out / "instruments/reader/skipped.json").read_text())["reason"] == skipped["instruments"]["reader"]
    assert not (out / "instruments/reader/ceiling.json").exists()
    assert "demographic_fidelity" in skipped["diffusion"] and "truth" in skipped["gan"]
    gan = json.loads((out / "gan/metrics.json").read_text())
    assert gan["pool_faces"] + gan["pool_skipped_no_face"] == len(list(trees["ffhq"].glob("*.png")))
    assert "identity_sim_truth_edit_V" not in gan  # no hidden truth to compare with

    findings = pd.read_csv(out / "results/report/findings.csv", keep_default_na=False)
    rows = findings[findings["verdict"] == "skipped"]
    assert set(rows["kind"]) == {"pseudo-label threshold", "demographic balance"}
    assert len(rows[rows["kind"] == "pseudo-label threshold"]) == len(UNLABELED)
    assert len(rows[rows["kind"] == "demographic balance"]) == 2 * 3  # two diffusion sets × gender, age, race
    assert (rows["reason"].str.len() > 20).all() and (rows["verdict_holm"] == "skipped").all()
    tested = findings[findings["verdict"] != "skipped"]
    assert len(tested) > 0 and (tested["reason"] == "").all()
    report = (out / "nb/08_report/08_report.ipynb").read_text()
    assert "part world stand-ins, part real data" in report and "licensed real datasets" not in report
    skipped_csv = pd.read_csv(out / "results/report/skipped.csv")
    assert {"instruments", "diffusion", "gan"} <= set(skipped_csv["stage"])
