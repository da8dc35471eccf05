"""Notebook 06_sets end to end on a smoke world: every output is written, readable by the summary, and sane."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from syntfer.core import labels as L
from syntfer.core import provenance as PV
from syntfer.study import summary as SU
from syntfer.core.manifest import read_manifest, write_manifest
from syntfer.study.mixing import materialize, mix_sources, whole_set
from syntfer.engine.models.checkpoint import save_checkpoint
from syntfer.engine.models.registry import create_model
from syntfer.tools.notebook import NotebookError, run_notebook
from syntfer.sources.readers import read_dataset
from syntfer.sources.world.writers import render_world

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT / "notebooks" / "06_sets.py"
PRIVACY_COLUMNS = ["set", "space", "n", "similarity_mean", "similarity_p95", "similarity_max", "threshold",
                   "n_flagged", "share_flagged"]
BOX = ["face_x", "face_y", "face_width", "face_height"]
pytestmark = pytest.mark.slow  # a kernel per run and a smoke world: about a minute on 2 cores


def _truth(world: Path, domain: str) -> pd.DataFrame:
    t = pd.read_csv(world / domain / "truth.csv", dtype=str, keep_default_na=False)
    t["abs"] = [str((world / domain / p).resolve()) for p in t["path"]]
    return t


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> dict:
    """A smoke world, four small synthetic sets laid out as the pipeline writes them, a judge and a tiny CLIP."""
    tmp = tmp_path_factory.mktemp("sets_nb")
    world = tmp / "world"
    render_world(world, "smoke", seed=0, workers=1, progress=False, domains=["ffhq", "digiface", "rafdb", "web"])
    sets = tmp / "sets"
    # pseudo-labeled (written by notebook 03 into sets_dir): label = the teacher's (here: the truth)
    digi = _truth(world, "digiface")
    pseudo = pd.DataFrame({"path": digi["abs"], "label": digi["expression"], "score": 0.9,
                           "source_path": digi["abs"], "source": "digiface"})
    write_manifest(pseudo, sets / "pseudolabel_digiface" / "manifest.csv")
    # diffusion: generated images with the prompt's attribute words (the web domain's captions carry them),
    # copied whole into sets_dir
    cap = pd.read_csv(world / "web" / "captions.csv", dtype=str, keep_default_na=False)
    web = _truth(world, "web").set_index("path").loc[cap["path"]]
    diff = pd.DataFrame({"path": web["abs"].to_numpy(), "label": web["expression"].to_numpy(),
                         "prompt": cap["caption"], "gender": cap["gender"], "age": cap["age"], "race": cap["race"]})
    materialize(whole_set(diff, "diffusion_embedded"), sets / "diffusion_embedded", progress=False)
    # GAN: each FFHQ-stand-in face "edited" (darkened face box), a manifest with syntfer.strategies.gan.sets' columns,
    # copied whole into sets_dir (source_path becomes the edited file, origin_path the source face)
    boxes = pd.read_csv(world / "ffhq" / "boxes.csv")
    ffhq = _truth(world, "ffhq").set_index("path")
    rows = []
    for k, r in enumerate(boxes.itertuples()):
        src = world / "ffhq" / r.path
        a = np.asarray(Image.open(src).convert("RGB")).copy()
        a[r.face_y:r.face_y + r.face_height, r.face_x:r.face_x + r.face_width] //= 2
        label = ["happy", "sad", "anger", "surprise", "fear", "disgust", "neutral"][k % 7]
        dest = tmp / "gan" / "images" / label / f"{Path(r.path).stem}_{label}_F.png"
        dest.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(a).save(dest)
        rows.append({"path": str(dest), "label": label, "source_path": str(src.resolve()),
                     "identity": ffhq.loc[r.path, "identity"], "control_x": 0.5, "control_y": -0.25, "rho": 0.8,
                     "theta": 1.0, "variant": "F", "seed": k, "restorer": "denoise",
                     **{c: getattr(r, c) for c in BOX}})
    write_manifest(pd.DataFrame(rows), tmp / "gan" / "manifest.csv")
    materialize(whole_set(read_manifest(tmp / "gan" / "manifest.csv"), "gan_f"), sets / "gan_f", progress=False)
    # Mixed-SYN over the three sets
    sources = {n: read_manifest(sets / n / "manifest.csv") for n in ("pseudolabel_digiface", "diffusion_embedded",
                                                                    "gan_f")}
    materialize(mix_sources(sources, n_train=1, n_val=1, seed=0), sets / "mixed_syn", progress=False)
    real = read_dataset("rafdb", world / "rafdb", split="train").frame
    write_manifest(real, sets / "real_rafdb" / "manifest.csv")
    torch.manual_seed(0)
    judge = save_checkpoint(create_model("cnn_tiny", img_size=32), tmp / "judge", epoch=0)
    # the judge's ceilings per domain, as 01_instruments writes them (values made up, schema real)
    pd.DataFrame([{"domain": d, "class": "mean_class", "n": 70, "fidelity": f, "p_label": 0.5}
                  for d, f in (("ref_web", 0.8), ("ref_ffhq", 0.7))]).to_csv(tmp / "ceiling.csv", index=False)
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    cfg = CLIPVisionConfig(image_size=16, patch_size=8, hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                           num_attention_heads=4, projection_dim=8)
    CLIPVisionModelWithProjection(cfg).save_pretrained(tmp / "clip")
    names = ["pseudolabel_digiface", "diffusion_embedded", "gan_f", "mixed_syn"]
    params = {"sets_dir": str(sets), "synthetic": ",".join(names), "reference": str(world / "ffhq"),
              "real_train": str(sets / "real_rafdb" / "manifest.csv"), "judge": str(judge),
              "ceilings": str(tmp / "ceiling.csv"),
              "identity_dir": str(ROOT / "models" / "identity" / "world32"), "clip_weights": str(tmp / "clip"),
              "max_images": 12, "seed": 0,
              # the judge here is untrained (chance fidelity): the closing check on it is tested in
              # tests/test_closing_checks.py, not here
              "min_set_fidelity": 0.0,
              "out_dir": str(tmp / "results")}
    sizes = {n: len(read_manifest(sets / n / "manifest.csv")) for n in names}
    return {"tmp": tmp, "params": params, "names": names, "sizes": sizes, "world": world}


@pytest.fixture(scope="module")
def results(study) -> Path:
    run_notebook(NB, study["tmp"] / "nb", study["params"], html=False)
    return Path(study["params"]["out_dir"])


def test_synthetic_csv_reads_back_with_every_metric(study, results):
    syn = SU.read_synthetic(results / "synthetic.csv")
    assert set(syn["set"]) == set(study["names"])
    base = {"n_images", "expression_fidelity", "fd_judge", "kid_judge", "fd_identity", "kid_identity",
            "fd_clip", "kid_clip"}
    for name in study["names"]:
        metrics = dict(zip(*syn.loc[syn["set"] == name, ["metric", "value"]].T.to_numpy()))
        # identity similarity only for the edit set: pseudo-labeled copies and the mix are skipped; a ceiling only
        # for sets whose generator imitates one domain (set_domains: diffusion_, gan_)
        ceiling = {"judge_ceiling", "fidelity_over_ceiling"} if name.startswith(("diffusion_", "gan_")) else set()
        assert set(metrics) == base | ceiling | ({"identity_similarity"} if name == "gan_f" else set()), name
        if ceiling:
            want = 0.8 if name.startswith("diffusion_") else 0.7
            assert metrics["judge_ceiling"] == want
            assert np.isclose(metrics["fidelity_over_ceiling"], metrics["expression_fidelity"] / want)
        assert metrics["n_images"] == study["sizes"][name]
        assert 0.0 <= metrics["expression_fidelity"] <= 1.0
        assert np.isfinite(list(metrics.values())).all()
    sim = syn.loc[(syn["set"] == "gan_f") & (syn["metric"] == "identity_similarity"), "value"].iloc[0]
    assert -1.0 <= sim < 0.99  # edit vs its source face (origin_path), not vs its own copy (source_path)
    summary, _ = SU.build_summary(synthetic=syn)
    assert set(summary["identity_similarity"]) == {"gan_f"}


def test_privacy_summary_is_privacy_checks_and_reads_back(study, results):
    priv = SU.read_privacy(results / "privacy_summary.csv")
    assert list(priv.columns) == PRIVACY_COLUMNS
    assert set(priv["set"]) == set(study["names"]) and set(priv["space"]) == {"identity"}
    # max_images=12 caps the measured subset
    assert dict(zip(priv["set"], priv["n"])) == {n: min(12, s) for n, s in study["sizes"].items()}
    assert priv["threshold"].nunique() == 1 and priv["share_flagged"].between(0, 1).all()
    images = pd.read_csv(results / "privacy_images.csv")
    assert len(images) == priv["n"].sum()


def test_fidelity_demographics_metrics_and_figures(study, results):
    fid = pd.read_csv(results / "fidelity_per_class.csv")
    assert list(fid.columns) == ["set", "class", "n", "fidelity", "p_label"] and len(fid) == 4 * 8
    allrow = fid[fid["class"] == "all"].set_index("set")
    assert dict(allrow["n"]) == study["sizes"]
    demo = pd.read_csv(results / "demographics.csv")
    bases = demo.groupby("set")["basis"].agg(set)
    assert bases["diffusion_embedded"] == {"prompt"} and bases["gan_f"] == {"world truth"}
    # GAN rows are matched to their source face's truth, pseudo-labeled rows by path
    assert (demo["n_unmatched"] == 0).all()
    metrics = json.loads((results / "metrics.json").read_text())
    assert metrics["identity_similarity_skipped"] == 3
    # the world's images and encoder are world inputs; the CLIP weights this test made are not: a mixed run, per input
    assert {k: v["kind"] for k, v in metrics["inputs"].items()} == {
        "reference": "world", "identity_encoder": "world", "clip_weights": "real", "real_train": "world"}
    assert metrics["data_kind"] == "mixed" and metrics["skipped"] == {}
    # expression fidelity is the mean over classes (each class as much as any other), not the share of all images
    per_class = fid[(fid["set"] == "gan_f") & fid["class"].isin(L.CLASSES)]["fidelity"]
    assert metrics["expression_fidelity.gan_f"] == pytest.approx(per_class.mean())
    figs = {p.stem for p in (results / "figures").glob("*.png")}
    assert {"fidelity_per_class", "distances", "identity_similarity", "privacy_similarity",
            "demographics_gender", "demographics_age", "demographics_skin_tone"} <= figs
    cells = json.loads((study["tmp"] / "nb" / "06_sets.ipynb").read_text())["cells"]
    outputs = json.dumps([c.get("outputs", []) for c in cells], ensure_ascii=False)
    # the titles say what the inputs are: here part world (the images), part real (the CLIP weights this test made)
    assert "— part world, part real inputs" in outputs and "— procedural world" not in outputs
    assert "real data — clip_weights" in outputs  # the banner names each input's kind


def test_missing_set_is_an_error_naming_its_manifest(study, tmp_path):
    params = dict(study["params"], synthetic="pseudolabel_digiface,gan_x", out_dir=str(tmp_path / "res"))
    with pytest.raises(NotebookError, match=r"gan_x/manifest\.csv"):
        run_notebook(NB, tmp_path / "nb", params, html=False)


def test_real_data_kind_audits_prompted_rows_only(study, tmp_path):
    # The same images without the world's markers are the user's data (provenance is read from the data): no world
    # truth, so only rows with prompt words get a demographic basis, the truth basis is skipped with its reason, and
    # the titles say 'real data'. The identity encoder is a copy without its world-trained marker (else: mixed).
    markers = [*study["world"].rglob(PV.DOMAIN_MARKER), study["world"] / PV.WORLD_MARKER]
    encoder = shutil.copytree(ROOT / "models" / "identity" / "world32", tmp_path / "encoder",
                              ignore=shutil.ignore_patterns(PV.TRAINED_MARKER))
    params = dict(study["params"], identity_dir=str(encoder), clip_weights="", out_dir=str(tmp_path / "res"))
    hidden = [m.rename(m.with_name(m.name + ".hidden")) for m in markers]
    try:
        nb = run_notebook(NB, tmp_path / "nb", params, html=False)
    finally:
        for h in hidden:
            h.rename(h.with_name(h.name.removesuffix(".hidden")))
    metrics = json.loads((tmp_path / "res" / "metrics.json").read_text())
    assert metrics["data_kind"] == "real" and {v["kind"] for v in metrics["inputs"].values()} <= {"real", "unused"}
    assert "real data" in metrics["skipped"]["demographics_truth_basis"]
    demo = pd.read_csv(tmp_path / "res" / "demographics.csv")
    assert set(demo["basis"]) == {"prompt"} and set(demo["set"]) == {"diffusion_embedded", "mixed_syn"}
    syn = SU.read_synthetic(tmp_path / "res" / "synthetic.csv")
    assert "fd_clip" not in set(syn["metric"]) and {"fd_judge", "fd_identity"} <= set(syn["metric"])
    outputs = json.dumps([c.get("outputs", []) for c in json.loads(nb.read_text())["cells"]], ensure_ascii=False)
    assert "— real data" in outputs and "procedural world" not in outputs
