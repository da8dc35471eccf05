"""Mixed-SYN and hybrids: counts, seeded draws, prefixes, alias and collision guards, materialisation."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from syntfer.core import labels as L
from syntfer.study import mixing as M
from syntfer.core.manifest import read_manifest
from syntfer.core.seeding import derive_seed


def _png(path, value=0, size=4):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, dtype=np.uint8)).save(path)
    return str(path.resolve())


def _source(root, per_class, folder_names=None):
    """A class-folder set; `per_class` maps canonical class -> n images; rows carry the folder alias as label."""
    rows = []
    for c, n in per_class.items():
        folder = (folder_names or {}).get(c, c)
        for i in range(n):
            rows.append({"path": _png(root / folder / f"{i}.png", value=i), "label": folder})
    return pd.DataFrame(rows)


@pytest.fixture
def two_sources(tmp_path):
    a = _source(tmp_path / "a", {c: 5 for c in L.CLASSES}, folder_names={"anger": "angry", "happy": "happiness"})
    b_counts = {c: 5 for c in L.CLASSES} | {"disgust": 2}
    b = _source(tmp_path / "b", b_counts, folder_names={"surprise": "surprised"})
    return {"gan_f": a, "diffusion_sd": b}


def test_mixed_syn_counts_and_shortfalls(two_sources):
    res = M.mix_sources(two_sources, n_train=3, n_val=1, seed=0)
    f = res.frame
    assert len(f) == 7 * 4 + 6 * 4 + 2
    assert set(f["label"]) == set(L.CLASSES)
    per = f.groupby(["source", "split"]).size().to_dict()
    assert per == {("gan_f", "train"): 21, ("gan_f", "val"): 7, ("diffusion_sd", "train"): 20,
                   ("diffusion_sd", "val"): 6}
    short = res.shortfalls
    assert len(short) == 1
    row = short.iloc[0]
    assert (row["source"], row["label"], row["available"], row["train"], row["val"], row["shortfall"]) == \
        ("diffusion_sd", "disgust", 2, 2, 0, 2)
    assert res.class_counts()["train"] == {c: 6 for c in L.CLASSES} | {"disgust": 5}
    with pytest.raises(M.MixingError, match="strict"):
        M.mix_sources(two_sources, n_train=3, n_val=1, seed=0, strict=True)


def test_mixed_syn_is_seeded_and_order_independent(two_sources):
    r1 = M.mix_sources(two_sources, 2, 1, seed=7)
    shuffled = {k: v.sample(frac=1.0, random_state=3).reset_index(drop=True) for k, v in two_sources.items()}
    r2 = M.mix_sources(shuffled, 2, 1, seed=7)
    pd.testing.assert_frame_equal(r1.frame, r2.frame)
    r3 = M.mix_sources(two_sources, 2, 1, seed=8)
    assert set(r3.frame["path"]) != set(r1.frame["path"])
    # The draw is exactly the documented one: sorted pool, permutation from derive_seed(seed, 'mixed_syn', src, class).
    pool = sorted(two_sources["gan_f"].loc[two_sources["gan_f"]["label"] == "happiness", "path"])
    order = np.random.default_rng(derive_seed(7, "mixed_syn", "gan_f", "happy")).permutation(len(pool))
    sel = r1.frame[(r1.frame["source"] == "gan_f") & (r1.frame["label"] == "happy")]
    assert sorted(sel.loc[sel["split"] == "train", "source_path"]) == sorted(pool[i] for i in order[:2])
    assert list(sel.loc[sel["split"] == "val", "source_path"]) == [pool[order[2]]]


def test_names_are_prefixed_by_source_and_unique(two_sources):
    f = M.mix_sources(two_sources, 5, 0, seed=0).frame
    assert all(n.startswith(f"{s}__") for s, n in zip(f["source"], f["name"]))
    assert f["name"].is_unique
    # Both sources hold e.g. 'neutral/0.png'; the prefix keeps them apart.
    assert {"gan_f__neutral__0.png", "diffusion_sd__neutral__0.png"} <= set(f["name"])


def test_alias_folders_give_one_class(tmp_path):
    # One source whose folders say 'angry' and 'anger', another with 'Anger ' labels and 'surprised'.
    root = tmp_path / "src"
    _png(root / "angry" / "1.png")
    _png(root / "anger" / "1.png")
    _png(root / "surprised" / "1.png")
    frame = M.load_source(root)
    other = pd.DataFrame({"path": [_png(tmp_path / "o" / "x.png")], "label": ["Anger "]})
    res = M.mix_sources({"s": frame, "o": other}, n_train=5, n_val=0, seed=0)
    assert sorted(set(res.frame["label"])) == ["anger", "surprise"]
    assert L.counts(res.frame["label"])["anger"] == 3
    raw = pd.DataFrame({"path": [_png(tmp_path / "r" / "1.png"), _png(tmp_path / "r" / "2.png")],
                        "label": ["angry", "anger"]})
    hyb = M.hybrid_set(raw, other, "pseudolabel_x", "rafdb")
    assert set(hyb.frame["label"]) == {"anger"} and len(hyb.frame) == 3


def test_unknown_or_empty_label_raises_with_source_and_row(tmp_path):
    bad = pd.DataFrame({"path": [_png(tmp_path / "1.png"), _png(tmp_path / "2.png")], "label": ["happy", "contempt"]})
    with pytest.raises(M.MixingError, match=r"source 'x' row 1 .*contempt"):
        M.mix_sources({"x": bad}, 1, 0, seed=0)
    empty = pd.DataFrame({"path": [_png(tmp_path / "3.png")], "label": [""]})
    with pytest.raises(M.MixingError, match="empty label"):
        M.mix_sources({"x": empty}, 1, 0, seed=0)


def test_collision_guard(tmp_path):
    # Flattening 'id__1/0.png' and 'id/1__0.png' gives the same name: must raise, not overwrite.
    f = pd.DataFrame({"path": [_png(tmp_path / "s" / "id__1" / "0.png"), _png(tmp_path / "s" / "id" / "1__0.png")],
                      "label": ["happy", "happy"]})
    with pytest.raises(M.MixingError, match="share an output file name"):
        M.mix_sources({"src": f}, 5, 0, seed=0)
    dup = pd.DataFrame({"path": [_png(tmp_path / "d.png")] * 2, "label": ["sad", "sad"]})
    with pytest.raises(M.MixingError, match="duplicate paths"):
        M.mix_sources({"src": dup}, 5, 0, seed=0)
    with pytest.raises(M.MixingError, match="source name"):
        M.mix_sources({"Bad__name": f}, 5, 0, seed=0)


def test_hybrid_union_guards_and_counts(tmp_path):
    syn = _source(tmp_path / "syn" / "Image" / "aligned", {"happy": 2, "sad": 1})
    real = _source(tmp_path / "raf" / "Image" / "aligned", {"happy": 3, "disgust": 1})
    real["split"] = "train"
    res = M.hybrid_set(syn, real, "gan_v", "rafdb")
    assert len(res.frame) == 7 and res.frame["name"].is_unique
    assert set(res.frame["split"]) == {"train"}
    assert L.counts(res.frame["label"]) == {c: 0 for c in L.CLASSES} | {"happy": 5, "sad": 1, "disgust": 1}
    c = res.counts.set_index(["source", "label"])
    assert c.loc[("gan_v", "happy"), "available"] == 2 and c.loc[("rafdb", "happy"), "available"] == 3
    # same relative file names in both sets ('happy/0.png') never collide
    assert {"gan_v__happy__0.png", "rafdb__happy__0.png"} <= set(res.frame["name"])
    leaked = real.assign(split=["train", "train", "test", "train"])
    with pytest.raises(M.MixingError, match="train split only"):
        M.hybrid_set(syn, leaked, "gan_v", "rafdb")


@pytest.mark.parametrize("link", ["hardlink", "copy", "symlink"])
def test_materialize_layout_manifest_and_resume(two_sources, tmp_path, link):
    res = M.mix_sources(two_sources, 2, 1, seed=0)
    out = tmp_path / "mix"
    done = M.materialize(res, out, link=link, progress=False)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_images"] == len(res.frame) == summary["files_written"]
    assert [(r["source"], r["label"], r["shortfall"]) for r in summary["shortfalls"]] == [("diffusion_sd", "disgust", 1)]
    assert summary["link"] == link
    for row in done.frame.itertuples():
        p = out / row.split / row.label / row.name
        assert str(p.absolute()) == row.path if link == "symlink" else str(p.resolve()) == row.path
        assert np.array_equal(np.asarray(Image.open(p)), np.asarray(Image.open(row.source_path)))
        if link == "hardlink":
            assert os.path.samefile(p, row.source_path)
        assert p.is_symlink() == (link == "symlink")
    back = read_manifest(out / "manifest.csv")
    assert len(back) == len(res.frame) and set(back["label"]) <= set(L.CLASSES)
    assert pd.read_csv(out / "counts.csv")["shortfall"].sum() == 1
    again = M.materialize(res, out, link=link, progress=False)
    assert json.loads((out / "summary.json").read_text())["files_written"] == 0
    assert list(again.frame["path"]) == list(done.frame["path"])
    # A different draw into the same folder removes the previous draw's files.
    M.materialize(M.mix_sources(two_sources, 2, 1, seed=1), out, link=link, progress=False)
    s2 = json.loads((out / "summary.json").read_text())
    on_disk = sorted(str(p.relative_to(out)) for p in out.glob("*/*/*"))
    assert s2["stale_removed"] > 0 and len(on_disk) == s2["n_images"]


def test_materialize_csv_rows_as_png(tmp_path):
    csv = tmp_path / "fer" / "fer2013.csv"
    csv.parent.mkdir()
    pd.DataFrame({"emotion": [3, 4], "pixels": [" ".join(["10"] * 16), " ".join(["200"] * 16)],
                  "Usage": ["Training", "Training"]}).to_csv(csv, index=False)
    f = pd.DataFrame({"path": [f"{csv}#row=0", f"{csv}#row=1"], "label": ["happy", "sad"], "split": ["train"] * 2})
    res = M.hybrid_set(pd.DataFrame({"path": [_png(tmp_path / "s" / "a.png")], "label": ["fear"]}), f,
                       "gan_f", "fer2013")
    done = M.materialize(res, tmp_path / "out", progress=False)
    row = done.frame[done.frame["source"] == "fer2013"].sort_values("name").iloc[0]
    assert row["name"] == "fer2013__fer2013_row0.png"
    assert np.asarray(Image.open(row["path"])).mean() == 10


def test_whole_set_keeps_every_row_and_provenance(two_sources, tmp_path):
    src = two_sources["gan_f"].assign(source_path=lambda f: "/faces/" + f["label"])
    res = M.whole_set(src, "gan_f")
    f = res.frame
    assert len(f) == len(src) and set(f["split"]) == {"train"}
    assert res.counts["shortfall"].sum() == 0 and res.counts["available"].sum() == len(src)
    # the edit's original face survives as origin_path; source_path is the file the set was copied from
    assert set(f["origin_path"]) == {"/faces/" + c for c in src["label"]}
    assert set(f["source_path"]) == set(src["path"])
    out = M.materialize(res, tmp_path / "set")
    assert all(Path(p).is_file() for p in out.frame["path"])


def test_cli_whole_and_sets_by_name(two_sources, tmp_path):
    from syntfer.core.manifest import write_manifest

    sets = tmp_path / "sets"
    for name, frame in two_sources.items():
        write_manifest(frame, sets / name / "manifest.csv")
    p = argparse.ArgumentParser()
    M.add_arguments(p)
    assert M.run(p.parse_args(["--whole", "--sets", "gan_f", "--sets-dir", str(sets), "--out",
                               str(tmp_path / "copy")])) == 0
    assert len(pd.read_csv(tmp_path / "copy" / "manifest.csv")) == len(two_sources["gan_f"])
    assert M.run(p.parse_args(["--sets", "gan_f,diffusion_sd", "--sets-dir", str(sets), "--n-train", "2",
                               "--n-val", "1", "--out", str(tmp_path / "mix")])) == 0
    mixed = pd.read_csv(tmp_path / "mix" / "manifest.csv")
    assert set(mixed["source"]) == {"gan_f", "diffusion_sd"} and len(mixed) == 2 * 7 * 3 - 1  # diffusion_sd: 2 disgust
    with pytest.raises(M.MixingError, match="exactly one source"):
        M.run(p.parse_args(["--whole", "--sets", "gan_f,diffusion_sd", "--sets-dir", str(sets), "--out",
                            str(tmp_path / "x")]))
    with pytest.raises(M.MixingError, match="no sources"):
        M.run(p.parse_args(["--out", str(tmp_path / "y")]))


def test_sized_set_balanced_stratified_nested_and_short(tmp_path):
    """A source drawn at N: class-balanced (N/7 each) or with its own class shares (a real split); draws of several
    sizes with one seed are nested; a class short of its count, or a balanced N not divisible by 7, raises."""
    real = _source(tmp_path / "real", {"neutral": 40, "happy": 60, "sad": 20, "surprise": 10, "fear": 5,
                                       "disgust": 5, "anger": 10})
    strat = M.sized_set(real, "real_rafdb", 75, seed=0, stratified=True)
    counts = L.counts(strat.frame["label"])
    assert sum(counts.values()) == 75 and counts["happy"] == 30 and counts["neutral"] == 20 and counts["fear"] >= 2
    assert set(strat.frame["split"]) == {"train"} and strat.kind == "sized"
    small = M.sized_set(real, "real_rafdb", 35, seed=0, stratified=True).frame
    assert set(small["source_path"]) <= set(strat.frame["source_path"])  # nested
    other_seed = M.sized_set(real, "real_rafdb", 35, seed=1, stratified=True).frame
    assert set(other_seed["source_path"]) != set(small["source_path"])
    syn = _source(tmp_path / "syn", {c: 12 for c in L.CLASSES})
    bal = M.sized_set(syn, "gan_f", 70, seed=0).frame
    assert L.counts(bal["label"]) == {c: 10 for c in L.CLASSES}
    assert set(M.sized_set(syn, "gan_f", 28, seed=0).frame["source_path"]) <= set(bal["source_path"])
    with pytest.raises(M.MixingError, match="multiple of 7"):
        M.sized_set(syn, "gan_f", 50, seed=0)
    with pytest.raises(M.MixingError, match=r"'gan_f': 12 anger image\(s\), 13 needed"):
        M.sized_set(syn, "gan_f", 91, seed=0)
    with pytest.raises(M.MixingError, match="holds only 150 images"):
        M.sized_set(real, "real_rafdb", 151, seed=0, stratified=True)


def test_cli_n_total_and_stratify(tmp_path):
    from syntfer.core.manifest import write_manifest

    real = _source(tmp_path / "real", {c: 4 + 3 * i for i, c in enumerate(L.CLASSES)})
    write_manifest(real, tmp_path / "real.csv")
    p = argparse.ArgumentParser()
    M.add_arguments(p)
    assert M.run(p.parse_args(["--source", f"real_rafdb={tmp_path / 'real.csv'}", "--n-total", "42",
                               "--stratify", "real_rafdb", "--out", str(tmp_path / "m")])) == 0
    got = read_manifest(tmp_path / "m" / "manifest.csv")
    assert len(got) == 42 and L.counts(got["label"]) != {c: 6 for c in L.CLASSES}  # its own shares
    assert M.run(p.parse_args(["--source", f"real_rafdb={tmp_path / 'real.csv'}", "--n-total", "28",
                               "--out", str(tmp_path / "b")])) == 0
    assert L.counts(read_manifest(tmp_path / "b" / "manifest.csv")["label"]) == {c: 4 for c in L.CLASSES}
    with pytest.raises(M.MixingError, match="--n-total draws one source"):
        M.run(p.parse_args(["--source", f"a={tmp_path / 'real.csv'}", "--source", f"b={tmp_path / 'real.csv'}",
                            "--n-total", "14", "--out", str(tmp_path / "x")]))
