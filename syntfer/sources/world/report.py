"""Tables and figures describing a rendered world (used by notebooks/00_world.py).

Everything here reads a world folder written by `render_world` (its truth files included: this is an audit)
or renders fresh faces; nothing here is used by training code.
"""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from PIL import Image

from syntfer.core import labels as L
from syntfer.core.images import box_path, load_image
from syntfer.sources.world.expression import AU_DESCRIPTIONS, AU_NAMES, EXPRESSION_AUS, nearest_prototype
from syntfer.sources.world.identity import Identity, sample_identity
from syntfer.sources.world.render import render_face
from syntfer.sources.world.writers import DOMAIN_NAMES

LABELED_REFERENCE: dict[tuple[str, str], str] = {
    ("rafdb", "train"): "rafdb", ("rafdb", "test"): "rafdb_test", ("affectnet", "train"): "affectnet",
    ("fer2013", "Training"): "fer2013",
}
"""(world domain, split) -> key of `labels.REAL_TRAIN_COUNTS` whose class shares it imitates."""


def read_truth(world_dir: str | os.PathLike, domain: str) -> pd.DataFrame:
    """A domain's truth.csv with absolute image paths (FER2013 rows as `fer2013.csv#row=N`)."""
    file = Path(world_dir) / domain / "truth.csv"
    if not file.is_file():
        raise FileNotFoundError(f"{file}: no truth file; render the world first (syntfer world --out {world_dir})")
    df = pd.read_csv(file, keep_default_na=False)
    df["abs_path"] = [str(Path(world_dir) / domain / p) for p in df["path"]]
    return df


def annotated_label(truth: pd.DataFrame) -> pd.Series:
    """The label a dataset's native files carry: the annotators' label in labeled domains (world >= 3, which
    may differ from the expression the face shows), the true expression elsewhere."""
    if "annotation" not in truth.columns:
        return truth["expression"]
    ann = truth["annotation"].astype(str)
    return ann.where(ann != "", truth["expression"])


def summary_table(world_dir: str | os.PathLike, domains=DOMAIN_NAMES) -> pd.DataFrame:
    """Per domain: images, image size, splits, identities and the share of each true expression."""
    rows = []
    for d in domains:
        t = read_truth(world_dir, d)
        first = load_image(t["abs_path"].iloc[0])
        row = {"domain": d, "images": len(t), "size": f"{first.size[0]}x{first.size[1]}",
               "splits": ", ".join(f"{k or '-'}:{v}" for k, v in t["split"].value_counts().sort_index().items()),
               "identities": t["identity"].nunique()}
        row.update({c: round(float((t["expression"] == c).mean()), 3) for c in L.CLASSES})
        rows.append(row)
    return pd.DataFrame(rows).set_index("domain")


def class_share_table(world_dir: str | os.PathLike) -> pd.DataFrame:
    """Long table of class shares: each labeled world split next to the real dataset it imitates."""
    rows = []
    for (domain, split), key in LABELED_REFERENCE.items():
        t = read_truth(world_dir, domain)
        label = annotated_label(t)
        keep = (t["split"] == split) & label.isin(L.CLASSES)
        label = label[keep]
        world = L.shares(L.counts(label))
        real = L.shares(L.REAL_TRAIN_COUNTS[key])
        for c in L.CLASSES:
            rows.append({"dataset": f"{domain}/{split}", "class": c, "world": world[c], "real": real[c],
                         "world_n": int((label == c).sum())})
    return pd.DataFrame(rows)


def oracle_table(world_dir: str | os.PathLike, domains=("rafdb", "affectnet", "fer2013"), split: str | None = None
                 ) -> pd.DataFrame:
    """Per labeled domain: the AU oracle — the class whose prototype is nearest to a face's hidden AU intensities
    (`expression.nearest_prototype`) — scored against the dataset's labels, and how often those labels differ from
    the expression the face shows (annotation noise, world >= 3). The oracle sees the rendered AUs exactly, so its
    accuracy bounds what pixels can give, short of blends and faint faces; against the labels it also pays the
    annotation noise, as every classifier tested on the labels does."""
    rows = []
    for d in domains:
        t = read_truth(world_dir, d)
        label = annotated_label(t)
        keep = label.isin(L.CLASSES) & t["expression"].isin(L.CLASSES)
        if split is not None:
            keep &= t["split"].astype(str) == split
        t, label = t[keep], label[keep].to_numpy()
        oracle = np.array([nearest_prototype(r) for r in t[list(AU_NAMES)].to_dict("records")])
        shown = t["expression"].to_numpy()
        recalls = [float((oracle[label == c] == c).mean()) for c in L.CLASSES if (label == c).any()]
        rows.append({"domain": d, "images": int(len(t)), "label_noise": float((label != shown).mean()),
                     "oracle_vs_shown": float((oracle == shown).mean()),
                     "oracle_vs_label": float((oracle == label).mean()),
                     "oracle_vs_label_balanced": float(np.mean(recalls))})
    return pd.DataFrame(rows).set_index("domain")


def au_prototype_table() -> pd.DataFrame:
    """Classes × AUs prototype intensities (0..5), with the AU names in the column labels."""
    df = pd.DataFrame([[EXPRESSION_AUS[c].get(a, 0.0) for a in AU_NAMES] for c in L.CLASSES],
                      index=list(L.CLASSES), columns=[f"{a} {AU_DESCRIPTIONS[a]}" for a in AU_NAMES])
    return df


def au_means_table(world_dir: str | os.PathLike, domain: str) -> pd.DataFrame:
    """Mean rendered AU intensity per true class in one domain (prototypes after intensity, jitter, blends)."""
    t = read_truth(world_dir, domain)
    t = t[t["expression"].isin(L.CLASSES)]
    return t.groupby("expression")[list(AU_NAMES)].mean().reindex(list(L.CLASSES)).round(2)


def attribute_table(world_dir: str | os.PathLike, attribute: str, domains=DOMAIN_NAMES) -> pd.DataFrame:
    """Share of each value of an identity attribute (e.g. 'id_gender', 'id_age', 'id_skin_tone') per domain."""
    frames = []
    for d in domains:
        t = read_truth(world_dir, d)
        if attribute not in t.columns:
            raise KeyError(f"{d}/truth.csv has no column {attribute!r}")
        s = t.drop_duplicates("identity")[attribute].astype(str).value_counts(normalize=True)
        frames.append(s.rename(d))
    return pd.concat(frames, axis=1).fillna(0.0).T.round(3)


def domain_expression_grid(world_dir: str | os.PathLike, domains=DOMAIN_NAMES, cell: int = 72, seed: int = 0,
                           crop_boxes: bool = True) -> tuple[np.ndarray, list[str], list[str]]:
    """A domains × expressions image grid (one random image per cell with that true expression; blank if none).

    Returns (RGB uint8 array, row labels, column labels)."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in domains:
        t = read_truth(world_dir, d)
        cells = []
        for c in L.CLASSES:
            pool = t[t["expression"] == c]
            if len(pool):
                r = pool.iloc[int(rng.integers(len(pool)))]
                path = r["abs_path"]
                if d == "affectnet" and crop_boxes:  # the face box, as the reader crops it
                    path = box_path(path, r["face_x"], r["face_y"], r["face_width"], r["face_height"])
                img = load_image(path, "RGB")
                cells.append(np.asarray(img.resize((cell, cell), Image.BILINEAR)))
            else:
                cells.append(np.full((cell, cell, 3), 255, np.uint8))
        rows.append(np.concatenate(cells, 1))
    return np.concatenate(rows, 0), list(domains), list(L.CLASSES)


def identity_expression_grid(n_identities: int = 4, size: int = 96, seed: int = 0, yaw: float = 0.0,
                             **render_kw) -> tuple[np.ndarray, list[Identity]]:
    """The same identities re-rendered with every class prototype (rows = identities, columns = classes)."""
    rows, ids = [], []
    for i in range(n_identities):
        idt = sample_identity(np.random.default_rng([seed, i]), id=f"grid-{seed}-{i}")
        ids.append(idt)
        rows.append(np.concatenate([render_face(idt, EXPRESSION_AUS[c], size=size, yaw=yaw,
                                                rng=np.random.default_rng(seed), **render_kw)
                                    for c in L.CLASSES], 1))
    return np.concatenate(rows, 0), ids


def intensity_strip(identity: Identity, label: str, steps: int = 6, size: int = 96) -> np.ndarray:
    """One identity's class prototype at intensities 0 .. 1.25 × prototype (how faint faces look)."""
    scales = np.linspace(0.0, 1.25, steps)
    return np.concatenate([render_face(identity, {a: min(5.0, v * s) for a, v in EXPRESSION_AUS[label].items()},
                                       size=size) for s in scales], 1)


def show_grid(grid: np.ndarray, row_labels: list[str], col_labels: list[str], title: str = "") -> plt.Figure:
    """Plot an image grid with row/column labels (cells are equal squares); save/show it with `syntfer.core.plots.show`."""
    n_r, n_c = len(row_labels), len(col_labels)
    h, w = grid.shape[0] // n_r, grid.shape[1] // n_c
    fig, ax = plt.subplots(figsize=(1.3 * n_c + 1, 1.3 * n_r + 0.6))
    ax.imshow(grid)
    ax.set_xticks([w * (j + 0.5) for j in range(n_c)], col_labels, rotation=0)
    ax.set_yticks([h * (i + 0.5) for i in range(n_r)], row_labels)
    ax.tick_params(length=0)
    for s in ax.spines.values():
        s.set_visible(False)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_class_shares(table: pd.DataFrame) -> plt.Figure:
    """Seaborn bars: world vs real class shares per labeled dataset."""
    long = table.melt(id_vars=["dataset", "class"], value_vars=["world", "real"], var_name="source",
                      value_name="share")
    g = sns.catplot(data=long, x="class", y="share", hue="source", col="dataset", kind="bar", col_wrap=2,
                    height=2.6, aspect=1.6)
    g.set_xticklabels(rotation=30)
    return g.figure


def plot_heatmap(table: pd.DataFrame, title: str, fmt: str = ".1f", cmap: str = "viridis") -> plt.Figure:
    """A seaborn heatmap of a table (AU prototypes, attribute shares)."""
    fig, ax = plt.subplots(figsize=(0.55 * table.shape[1] + 2.5, 0.45 * table.shape[0] + 1.5))
    sns.heatmap(table, annot=True, fmt=fmt, cmap=cmap, cbar=False, ax=ax)
    ax.set_title(title)
    fig.tight_layout()
    return fig
