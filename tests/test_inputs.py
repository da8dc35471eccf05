"""Every input is a parameter, and each input's kind (world or real) is read from the data (syntfer.core.provenance).

- `dvc.yaml` names `outputs/world` only in the world stage: every other stage reads its inputs through parameters
  whose defaults (in params.yaml) are the world's stand-ins.
- A world domain is `world`, the same images copied out in their native format are `real`, a committed world-trained
  model is `world`; a run of both is `mixed`, and the banner says which input is which.
- World truth is found only for world inputs: a truth-based measurement on the user's data is skipped, never computed
  from world files (`world_truth_file`, `audit.world_truth_for`).
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from syntfer.core import provenance as PV
from syntfer.instruments import audit as A
from syntfer.instruments.build import InstrumentError, parse_references, reference_frame
from syntfer.sources.world import render_world

ROOT = Path(__file__).resolve().parents[1]


def _stages_naming(text: str, needle: str) -> set[str]:
    """Top-level stages of dvc.yaml whose block contains `needle`."""
    found, stage = set(), None
    for line in text.splitlines():
        m = re.match(r"^  (\w+):\s*$", line)
        if m:
            stage = m.group(1)
        elif re.match(r"^\S", line):
            stage = None
        if stage and needle in line:
            found.add(stage)
    return found


def test_only_the_world_stage_names_the_world_in_dvc_yaml():
    text = (ROOT / "dvc.yaml").read_text()
    assert _stages_naming(text, "outputs/world") == {"world"}, (
        "a stage other than `world` names outputs/world: read it through a datasets.* parameter instead")
    # ... and the parameters do default to the world's stand-ins, so a fresh clone runs the world
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    d = params["datasets"]
    assert d["gan_faces"].startswith("outputs/world/") and d["captioned"].startswith("outputs/world/")
    assert all(r["root"].startswith("outputs/world/") for r in d["references"].values())
    assert all(r["root"].startswith("outputs/world/") for r in d["labeled"].values())
    assert "kind" not in d, "no switch says real: the kind is read from the data"


def test_the_fault_is_seen(tmp_path):
    """The check above fails on a stage that hard-wires a world path (what the pipeline did before)."""
    bad = (ROOT / "dvc.yaml").read_text().replace("-p ffhq_dir ${datasets.gan_faces}", "-p ffhq_dir outputs/world/ffhq")
    assert _stages_naming(bad, "outputs/world") == {"world", "gan"}


@pytest.fixture(scope="module")
def small_world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("w") / "world"
    render_world(out, preset="smoke", seed=0, workers=1, domains=["rafdb", "ref_web"], progress=False)
    return out


def _native_copy(world: Path, dest: Path) -> Path:
    """RAF-DB's own files out of a world domain (no truth.csv, no markers): what a user holding the data has."""
    shutil.copytree(world / "rafdb" / "EmoLabel", dest / "EmoLabel")
    shutil.copytree(world / "rafdb" / "Image", dest / "Image")
    return dest


def test_kinds_are_read_from_the_data(small_world, tmp_path):
    real = _native_copy(small_world, tmp_path / "rafdb")
    img = next((small_world / "rafdb" / "Image" / "aligned").glob("*.jpg"))
    assert PV.input_kind(small_world / "rafdb") == "world"
    assert PV.input_kind(img) == "world"
    assert PV.input_kind(small_world) == "world"
    assert PV.input_kind(real) == "real"
    assert PV.input_kind(str(small_world / "rafdb" / "Image" / "aligned" / img.name) + "#box=0,0,4,4") == "world"
    assert PV.input_kind(ROOT / "models" / "gan" / "world_flow48") == "world"  # committed, world-trained
    assert PV.input_kind(ROOT / "models" / "identity" / "world32" / "encoder.json") == "world"
    with pytest.raises(PV.ProvenanceError, match="not found"):
        PV.input_kind(tmp_path / "absent")
    d = PV.describe({"rafdb": real, "ref_web": small_world / "ref_web", "sd_model": ""})
    assert {k: v["kind"] for k, v in d.items()} == {"rafdb": "real", "ref_web": "world", "sd_model": "unused"}
    assert PV.run_kind(d) == "mixed" and PV.run_kind({"a": d["rafdb"]}) == "real"
    assert PV.run_kind({"a": d["ref_web"], "b": d["sd_model"]}) == "world" and PV.run_kind({}) == "none"
    banner = PV.banner(d, "this test")
    assert "part world, part real" in banner and "world stand-ins — ref_web" in banner and "real data — rafdb" in banner
    assert "every input" not in PV.banner(d).lower()  # never "real" (or "world") for all


def test_manifest_kind_follows_the_images(small_world, tmp_path):
    from syntfer.sources.readers import read_dataset

    real = _native_copy(small_world, tmp_path / "rafdb")
    for root, kind in ((small_world / "rafdb", "world"), (real, "real")):
        frame = read_dataset("rafdb", root, split="test", check="exists").frame
        man = tmp_path / f"{kind}.csv"
        frame.assign(path=[str(Path(p).resolve()) for p in frame["path"]]).to_csv(man, index=False)
        assert PV.manifest_kind(man) == kind
    both = pd.concat([pd.read_csv(tmp_path / "world.csv"), pd.read_csv(tmp_path / "real.csv")])
    both.to_csv(tmp_path / "both.csv", index=False)
    assert PV.manifest_kind(tmp_path / "both.csv") == "mixed"


def test_truth_exists_only_for_world_inputs(small_world, tmp_path):
    real = _native_copy(small_world, tmp_path / "rafdb")
    img = next((small_world / "rafdb" / "Image" / "aligned").glob("*.jpg"))
    assert PV.world_truth_file(img) == small_world / "rafdb" / "truth.csv"
    assert PV.world_truth_file(real / "Image" / "aligned" / img.name) is None
    (real / "truth.csv").write_text("path,expression\n")  # a stray truth file in the user's folder is not world truth
    assert PV.world_truth_file(real / "Image" / "aligned" / img.name) is None
    world_rows = pd.DataFrame({"path": [str(img)], "label": ["happy"]})
    real_rows = pd.DataFrame({"path": [str(real / "Image" / "aligned" / img.name)], "label": ["happy"]})
    truth = A.world_truth_for({"w": world_rows, "r": real_rows})
    assert truth is not None and set(truth["domain"]) == {"rafdb"}
    assert A.world_truth_for({"r": real_rows}) is None


def test_references_in_any_format(small_world, tmp_path):
    real = _native_copy(small_world, tmp_path / "rafdb")
    refs = parse_references(f"ref_web:truth:{small_world / 'ref_web'},ref_ffhq:rafdb:{real}")
    assert refs == {"ref_web": ("truth", small_world / "ref_web"), "ref_ffhq": ("rafdb", real)}
    world = reference_frame(refs["ref_web"][1], "train", refs["ref_web"][0])
    assert {"path", "label", "split", "gender", "age", "skin_tone"} <= set(world.columns)  # demographic truth
    theirs = reference_frame(real, "test", "rafdb")
    assert list(theirs.columns) == ["path", "label", "split"] and len(theirs) > 0  # no demographics: reader skipped
    assert all(Path(p).is_absolute() for p in theirs["path"])
    for bad, match in (("ref_web=truth:x", "expected name:format:root"), ("a:truth:x,a:truth:y", "given twice"),
                       ("", "is empty")):
        with pytest.raises(InstrumentError, match=match):
            parse_references(bad)
