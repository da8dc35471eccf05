"""The training loops learn: on easy data the loss falls and accuracy beats chance by far.

A trainer whose optimiser step did nothing (or whose gradients never reached the weights) passes every
resume test — it resumes to the same useless weights — so each loop is also required to learn something a
few steps can learn: the classifier trainer a colour-coded 7-class set, the embedded diffusion model to
denoise a handful of images, the GAN editor's critic to classify expressions and its generator to move
faces towards a target class as that critic sees it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from faults import colour_set
from syntfer.core import labels as L
from syntfer.engine.training import TrainConfig, train

pytestmark = pytest.mark.slow


def test_trainer_learns_a_separable_set(tmp_path):
    frame = colour_set(tmp_path / "images", n_per_class=12)
    cfg = TrainConfig.from_recipe("fast", model="cnn_tiny", model_kwargs={"img_size": 16}, epochs=8, batch_size=16,
                                  val_fraction=0.25, seed=1, progress=False)
    res = train(cfg, frame, tmp_path / "run")
    log = res.history
    # chance is 1/7: a trainer that does not update the weights stays near it
    assert res.best_metrics["val_acc"] >= 0.9, log.to_string()
    # at chance the objective is 3 ln 7 = 5.84 (CE + 2 smoothed CE); its floor with smoothing 0.4 is ~2.9
    assert log["train_loss"].iloc[-1] < log["train_loss"].iloc[0] - 1.5, log.to_string()
    assert log["val_loss"].iloc[-1] < log["val_loss"].iloc[0], log.to_string()


def test_trainer_learns_on_the_paper_recipe_path(tmp_path):
    """SAM around Adam with per-image torchvision augmentation (upstream_ir50 / poster) also learns."""
    frame = colour_set(tmp_path / "images", n_per_class=12)
    cfg = TrainConfig.from_recipe("upstream_ir50", model="cnn_tiny", model_kwargs={"img_size": 16}, lr=2e-3,
                                  epochs=6, batch_size=16, val_fraction=0.25, seed=1, progress=False)
    res = train(cfg, frame, tmp_path / "run")
    assert res.best_metrics["val_acc"] >= 0.9, res.history.to_string()


def _captioned(folder, n: int = 8):
    """A few captioned images, each a flat colour (easy to denoise towards)."""
    from syntfer.strategies.diffusion import prompts as P
    from syntfer.strategies.diffusion import embedded as E

    (folder / "images").mkdir(parents=True)
    rows = []
    for i in range(n):
        colour = np.array([(i * 67) % 256, (i * 29) % 256, 255 - (i * 41) % 256], dtype=np.uint8)
        Image.fromarray(np.broadcast_to(colour, (16, 16, 3)).copy()).save(folder / "images" / f"{i}.png")
        rows.append({"path": f"images/{i}.png", "caption": f"a {('happy', 'sad')[i % 2]} man",
                     **{a: 0.0 for a in P.FINEFACE_AUS}})
    pd.DataFrame(rows).to_csv(folder / "captions.csv", index=False)
    return E.load_captioned(folder / "captions.csv", 16)


def test_embedded_diffusion_loss_falls(tmp_path):
    from syntfer.strategies.diffusion import embedded as E

    data = _captioned(tmp_path / "web")
    cfg = E.default_config(E.build_vocab(data.captions), tiny=True)
    E.train_embedded(data, cfg, E.TrainConfig(steps=120, batch_size=16, lr=3e-3, warmup=10, log_every=20,
                                              checkpoint_every=1000, threads=1), tmp_path / "work")
    loss = pd.read_csv(tmp_path / "work" / "train_log.csv")["loss"].to_numpy()
    # the first 20 steps average against the last 20 (each row a 20-step mean of the min-SNR weighted MSE)
    assert loss[-1] < 0.6 * loss[0], loss


def _coloured_faces(n_per_class: int = 6, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Uint8 crops whose expression is a colour: class k is a flat colour plus noise."""
    g = torch.Generator().manual_seed(0)
    crops, labels = [], []
    for k in range(L.NUM_CLASSES):
        colour = torch.tensor([(k * 37) % 256, (k * 91) % 256, (k * 53) % 256], dtype=torch.float32)
        x = colour.view(1, 3, 1, 1) + 15 * torch.randn(n_per_class, 3, size, size, generator=g)
        crops.append(x.clamp(0, 255).to(torch.uint8))
        labels += [k] * n_per_class
    return torch.cat(crops), torch.tensor(labels)


@pytest.mark.parametrize("control", ["linear", "gaussian"])
def test_gan_editor_critic_and_generator_learn(tmp_path, control):
    from syntfer.strategies.gan.networks import EditorConfig
    from syntfer.strategies.gan.training import TrainConfig as GanConfig
    from syntfer.strategies.gan.training import CANON_TO_CODE, train_editor

    crops, labels = _coloured_faces()
    cfg = EditorConfig(control=control, image_size=16, conv_dim=8, repeat_num=1, d_conv_dim=8, d_repeat_num=2)
    tcfg = GanConfig(steps=160, batch_size=16, n_critic=2, d_warmup_steps=40, log_every=20, ckpt_every=1000,
                     g_lr=1e-3, d_lr=1e-3, seed=0, threads=1)
    log = train_editor(crops, labels, tmp_path / "editor", cfg, tcfg, progress=False).log
    warm = log[log["step"] <= tcfg.d_warmup_steps]
    game = log[log["step"] > tcfg.d_warmup_steps + 20]
    # the task-aware critic head learns the classes during its warm-up ...
    assert warm["d_cls"].iloc[-1] < 0.5 * warm["d_cls"].iloc[0], log.to_string()
    # ... and the generator then moves its edits towards the target class as that critic sees it (a frozen
    # generator measured: class loss 2.55 -> 2.08 and 3.5 -> 3.3, target accuracy 0.16 -> 0.21, chance 1/7)
    assert game["g_cls"].iloc[-1] < 0.5 * game["g_cls"].iloc[0], log.to_string()
    assert game["d_acc_fake_trg"].iloc[-1] > 0.5, log.to_string()


def test_embedded_diffusion_draws_what_the_prompt_asks(tmp_path):
    """Conditioning is learned, not only denoising: on a toy set where the caption decides the colour ("a red man"
    is red, "a blue man" blue), samples of the two prompts, from the same seeds, come out in the asked-for colour.
    A model that ignored its text (or classifier-free guidance that did nothing) draws the same images for both."""
    from syntfer.strategies.diffusion import embedded as E
    from syntfer.strategies.diffusion import prompts as P

    folder = tmp_path / "web"
    (folder / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    colours = {"red": np.array([220, 30, 30]), "blue": np.array([30, 30, 220])}
    rows = []
    for i in range(32):
        word = ("red", "blue")[i % 2]
        img = np.clip(colours[word] + rng.normal(0, 12, (16, 16, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / "images" / f"{i}.png")
        rows.append({"path": f"images/{i}.png", "caption": f"a {word} man", **{a: 0.0 for a in P.FINEFACE_AUS}})
    pd.DataFrame(rows).to_csv(folder / "captions.csv", index=False)
    data = E.load_captioned(folder / "captions.csv", 16)
    cfg = E.default_config(E.build_vocab(data.captions), tiny=True)
    E.train_embedded(data, cfg, E.TrainConfig(steps=800, batch_size=16, lr=3e-3, warmup=10, log_every=50,
                                              checkpoint_every=1000, threads=1), tmp_path / "work")
    model = E.load_checkpoint(tmp_path / "work" / "ema")
    seeds = list(range(6))
    drawn = {w: E.sample_images(model, [f"a {w} man"] * len(seeds), seeds, steps=10, guidance=3.0)[0]
             .reshape(len(seeds), -1, 3).mean(1) for w in colours}  # mean RGB per sample
    red_minus_blue = {w: d[:, 0] - d[:, 2] for w, d in drawn.items()}
    # every red sample redder than blue, every blue sample bluer than red; and the two samples of one seed (the same
    # initial noise) apart by a clear margin (measured: 137-196 grey levels of R - B; a model ignoring its text: 0)
    assert (red_minus_blue["red"] > 0).all() and (red_minus_blue["blue"] < 0).all(), red_minus_blue
    assert (red_minus_blue["red"] - red_minus_blue["blue"] > 60).all(), red_minus_blue


def _bar_faces(n_per_class: int = 8, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Uint8 crops whose class is a geometry a warp can change: a bright bar, 2 rows high, whose row is the class
    (class k at rows 5 + k, 6 + k), on a noisy dark ground."""
    g = torch.Generator().manual_seed(0)
    crops, labels = [], []
    for k in range(L.NUM_CLASSES):
        x = 30 + 8 * torch.randn(n_per_class, 3, size, size, generator=g)
        x[:, :, 4 + k:6 + k, 3:size - 3] = 230
        crops.append(x.clamp(0, 255).to(torch.uint8))
        labels += [k] * n_per_class
    return torch.cat(crops), torch.tensor(labels)


def _bar_class(images01: torch.Tensor) -> torch.Tensor:
    """An independent reader of the toy world: the class is where the bar is (its brightest pair of rows)."""
    rows = images01.mean(dim=(1, 3))  # (B, S)
    pair = rows[:, :-1] + rows[:, 1:]
    return (pair.argmax(1) - 4).clamp(0, L.NUM_CLASSES - 1)


def _rows_classifier(crops: torch.Tensor, labels: torch.Tensor) -> torch.nn.Module:
    """A frozen classifier of the toy that sees rows: two convolutions, then each row's mean (columns pooled) into a
    linear layer; trained on the crops shifted sideways with fresh noise. Takes [-1, 1] images, as the editor's aux
    classifier does (`Judge.loss_module`)."""
    torch.manual_seed(0)
    nn = torch.nn
    clf = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d((crops.shape[-2], 1)), nn.Flatten(), nn.Linear(16 * crops.shape[-2], 7))
    x = crops.float() / 127.5 - 1
    opt = torch.optim.Adam(clf.parameters(), 3e-3)
    for _ in range(300):
        xb = x.roll(int(torch.randint(-3, 4, ())), 3) + 0.1 * torch.randn_like(x)
        loss = torch.nn.functional.cross_entropy(clf(xb), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    clf.eval().requires_grad_(False)
    assert (clf(x).argmax(1) == labels).all()  # it reads the real crops right
    return clf


def _cnn_tiny_classifier(crops: torch.Tensor, labels: torch.Tensor, folder: Path) -> Path:
    """The same, as the registry's cnn_tiny saved as a syntfer checkpoint (what world_flow48_classifier is)."""
    from syntfer.engine.models.checkpoint import save_checkpoint
    from syntfer.engine.models.registry import create_model

    torch.manual_seed(0)
    clf = create_model("cnn_tiny", img_size=crops.shape[-1])
    mean = torch.tensor(clf.cfg.mean).view(1, -1, 1, 1)
    std = torch.tensor(clf.cfg.std).view(1, -1, 1, 1)
    x = crops.float() / 255
    opt = torch.optim.Adam(clf.parameters(), 3e-3)
    clf.train()
    for _ in range(200):
        xb = (x.roll(int(torch.randint(-3, 4, ())), 3) + 0.04 * torch.randn_like(x)).clamp(0, 1)
        loss = torch.nn.functional.cross_entropy(clf((xb - mean) / std), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    clf.eval()
    with torch.no_grad():
        assert (clf((x - mean) / std).argmax(1) == labels).all()  # it reads the real crops right
    return save_checkpoint(clf, folder)


def _toy_editor(tmp_path: Path, aux: str):
    """Train the flow editor on the bar toy with the repository's recipe (WGAN critic with a class head, cycle, flow
    smoothness, a frozen aux classifier at lambda_aux 5); returns the trained editor's folder and fidelity(g, ρ)."""
    from syntfer.strategies.gan.networks import EditorConfig, Generator
    from syntfer.strategies.gan.training import TrainConfig as GanConfig
    from syntfer.strategies.gan.training import CANON_TO_CODE, train_editor

    crops, labels = _bar_faces()
    cfg = EditorConfig(image_size=16, conv_dim=32, repeat_num=2, d_conv_dim=8, d_repeat_num=2, flow_grid=4,
                       flow_max=0.25)
    tcfg = GanConfig(steps=800, batch_size=16, n_critic=2, d_warmup_steps=40, log_every=50, ckpt_every=1000,
                     g_lr=2e-3, d_lr=1e-3, seed=0, threads=1, lambda_flow_tv=1.0, aux_classifier=aux,
                     lambda_aux=5.0, aux_lowpass=False)
    faces = crops.float() / 255
    targets = torch.where(labels < L.NUM_CLASSES - 1, labels + 1, labels - 1)  # every face asked for a neighbour row

    def edit(g: Generator, rho: float = 1.0) -> torch.Tensor:
        with torch.no_grad():
            return g.edit_rgb01(faces, g.class_code(CANON_TO_CODE[targets], rho))  # codes are GANmut-ordered

    def fidelity(g: Generator, rho: float = 1.0) -> float:
        return float((_bar_class(edit(g, rho)) == targets).float().mean())

    assert (_bar_class(faces) == labels).all()  # the reader reads the real crops right
    assert fidelity(Generator(cfg).eval()) <= 0.2  # the untrained editor: the identity map
    train_editor(crops, labels, tmp_path / "editor", cfg, tcfg, progress=False)
    return tmp_path / "editor", fidelity


def test_flow_editor_moves_faces_towards_the_target(tmp_path, monkeypatch):
    """The flow editor learns to draw the asked-for class with a warp alone: on a toy set whose class is a bar's row,
    trained with a frozen aux classifier that sees rows, the share of edits an independent reader (the bar's
    brightest pair of rows: neither the critic nor the aux classifier) reads as the target rises from the untrained
    editor's 0 to far above it, and with the interpolated intensity (how the pipeline edits) fidelity rises with ρ.

    Measured 2026-12-07 (targets one row away): 0.00 -> 0.57 (the two classes pushed against the crops' top and bottom
    bars stay); the same editor with the critic alone (lambda_aux 0) stays at the identity map, 0.00; the smaller editor
    of an earlier version of this test (conv_dim 8, one block) learned with neither. (That version also asked
    class_code for canonical indices; codes are in GANmut order: CANON_TO_CODE.)"""
    from syntfer.strategies.gan import training as GT
    from syntfer.strategies.gan.networks import load_generator

    crops, labels = _bar_faces()
    rows = _rows_classifier(crops, labels)
    monkeypatch.setattr(GT, "load_aux_classifier", lambda folder: rows)  # a module, not a checkpoint folder
    folder, fidelity = _toy_editor(tmp_path, "rows")
    after = fidelity(load_generator(folder))
    assert after >= 0.5, after
    g = load_generator(folder, intensity="interpolate")  # as the pipeline edits (params gan.intensity)
    by_rho = {rho: fidelity(g, rho) for rho in (0.25, 1.0)}
    assert by_rho[0.25] < by_rho[1.0], by_rho  # measured 0.39 < 0.57


@pytest.mark.xfail(strict=True, reason="measured 2026-12-07: with the registry's cnn_tiny as the frozen aux classifier "
                   "the editor fools it instead of moving the bar (cnn_tiny reads 0.41 of the edits as their target, "
                   "the bar reader 0.00): the failure issue #30 guards against. strict: this fails once it learns")
def test_flow_editor_does_not_fool_a_generic_classifier(tmp_path):
    """The same toy with the classifier the pipeline's recipe uses (a registry cnn_tiny checkpoint, as
    world_flow48_classifier): the independent bar reader must read the edits as their targets."""
    from syntfer.strategies.gan.networks import load_generator

    crops, labels = _bar_faces()
    aux = _cnn_tiny_classifier(crops, labels, tmp_path / "aux")
    folder, fidelity = _toy_editor(tmp_path, str(aux))
    assert fidelity(load_generator(folder)) >= 0.5
