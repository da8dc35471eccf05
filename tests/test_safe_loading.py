"""Every torch file the project reads back is loaded with ``weights_only=True``: the committed models load that
way, and a state carrying a hostile global is refused with a message naming the file (its code never runs)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from faults import TALLY
from syntfer.core.storage import StateFileError, load_torch, save_torch

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ["models/gan/world_flow48/state.pt", "models/gan/world_flow48/generator.pt",
             "models/gan/world_linear48/state.pt", "models/gan/world_linear48/generator.pt",
             "models/gan/world_flow48_classifier/checkpoint/weights.pt", "models/identity/world32/encoder.pt",
             "models/gan/world_inpaint64_cls/generator.pt", "models/gan/world_inpaint64_d4/generator.pt",
             "models/gan/world_inpaint64_face/generator.pt"]
TINY = dict(image_size=16, conv_dim=4, repeat_num=1, d_conv_dim=4, d_repeat_num=2)


class Payload:
    """Unpickling this writes a marker file: the proof that a load ran code from the file."""

    marker = ""

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _hostile(file: Path, marker: Path, **extra) -> None:
    Payload.marker = str(marker)
    file.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**extra, "evil": Payload()}, file)


def _refused(call, file: Path, marker: Path) -> StateFileError:
    with pytest.raises(StateFileError, match="weights_only") as e:
        call()
    assert str(file) in str(e.value) and "GLOBAL posix.system" in str(e.value), str(e.value)
    assert not marker.exists(), "the hostile global ran while loading"
    TALLY["bad inputs tried"] += 1
    return e.value


@pytest.mark.parametrize("rel", COMMITTED)
def test_committed_checkpoints_load_weights_only(rel):
    obj = load_torch(ROOT / rel)
    assert isinstance(obj, dict) and obj


def test_committed_editors_resume_state_loads_into_a_trainer():
    """The committed editors' full resume states (both optimisers, the RNG, configs) load weights_only and
    into a trainer, as `syntfer gan train --init-from` and a resume do."""
    from syntfer.strategies.gan.networks import EditorConfig, load_generator
    from syntfer.strategies.gan.training import EditorTrainer, TrainConfig

    for name in ("world_flow48", "world_linear48"):
        state = load_torch(ROOT / "models/gan" / name / "state.pt")
        assert {"G", "D", "opt_g", "opt_d", "step", "rng", "config", "train_config"} <= set(state)
        cfg = EditorConfig.from_dict(state["config"])
        assert load_generator(ROOT / "models/gan" / name).cfg.to_dict() == cfg.to_dict()
        s = cfg.image_size
        tr = EditorTrainer(cfg, TrainConfig(steps=1, batch_size=2), torch.zeros((7, 3, s, s), dtype=torch.uint8),
                           torch.arange(7))
        tr.load_state_dict(state)
        assert tr.step_no == state["step"] > 0
        assert torch.equal(tr.G.state_dict()[next(iter(state["G"]))], next(iter(state["G"].values())))


def test_load_torch_refuses_a_hostile_global_and_names_the_file(tmp_path):
    file, marker = tmp_path / "state.pt", tmp_path / "pwned"
    _hostile(file, marker, step=3)
    _refused(lambda: load_torch(file, "resume state"), file, marker)
    save_torch(tmp_path / "cut.pt", {"w": torch.zeros(1000)})
    data = (tmp_path / "cut.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])  # a truncated file (a disk that filled up)
    with pytest.raises(StateFileError, match=r"cut.pt: state is not a readable torch file"):
        load_torch(tmp_path / "cut.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file at all")  # not a pickle: no global to refuse
    with pytest.raises(StateFileError, match=r"junk.pt: state is not a readable torch file"):
        load_torch(tmp_path / "junk.pt")
    (tmp_path / "notes.pt").write_text("hello")  # text: torch's unpickler raised a bare KeyError
    with pytest.raises(StateFileError, match=r"notes.pt: state is not a readable torch file"):
        load_torch(tmp_path / "notes.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt: state file not found"):
        load_torch(tmp_path / "missing.pt")
    numpy_state = tmp_path / "numpy.pt"
    torch.save({"ids": np.arange(3)}, numpy_state)  # numpy arrays are not plain values either
    with pytest.raises(StateFileError, match="numpy"):
        load_torch(numpy_state)


def test_gan_resume_state_and_init_from_refuse_a_hostile_global(tmp_path):
    from syntfer.strategies.gan.networks import EditorConfig
    from syntfer.strategies.gan.training import TrainConfig, train_editor

    cfg = EditorConfig(**TINY)
    crops = torch.randint(0, 256, (14, 3, 16, 16), dtype=torch.uint8)
    labels = torch.arange(14) % 7
    tcfg = dict(batch_size=4, n_critic=1, d_warmup_steps=0, log_every=1, ckpt_every=1, n_random=1)
    file, marker = tmp_path / "ed" / "state.pt", tmp_path / "pwned"
    _hostile(file, marker, step=1)
    _refused(lambda: train_editor(crops, labels, tmp_path / "ed", cfg, TrainConfig(steps=2, **tcfg),
                                  progress=False), file, marker)
    # --init-from takes a user's editor folder: the same refusal
    init = tmp_path / "other" / "state.pt"
    _hostile(init, marker, config=cfg.to_dict())
    _refused(lambda: train_editor(crops, labels, tmp_path / "fresh", cfg,
                                  TrainConfig(steps=2, init_from=str(tmp_path / "other"), **tcfg),
                                  progress=False), init, marker)


def _captioned_data(tmp_path: Path):
    """Seven tiny captioned images (the embedded diffusion model's training data)."""
    import pandas as pd
    from PIL import Image

    from syntfer.strategies.diffusion import prompts as P
    from syntfer.strategies.diffusion import embedded as E

    folder = tmp_path / "web"
    (folder / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(7):
        Image.fromarray((rng.random((20, 20, 3)) * 255).astype(np.uint8)).save(folder / "images" / f"{i}.png")
        rows.append({"path": f"images/{i}.png", "caption": f"a {['happy', 'sad'][i % 2]} man",
                     **{a: 1.0 for a in P.FINEFACE_AUS}})
    pd.DataFrame(rows).to_csv(folder / "captions.csv", index=False)
    return E.load_captioned(folder / "captions.csv", 16)


def test_diffusion_resume_state_refuses_a_hostile_global(tmp_path):
    from syntfer.strategies.diffusion import embedded as E

    data = _captioned_data(tmp_path)
    cfg = E.default_config(E.build_vocab(data.captions), tiny=True)
    file, marker = tmp_path / "work" / "state.pt", tmp_path / "pwned"
    _hostile(file, marker, model_cfg=cfg.to_dict())
    _refused(lambda: E.train_embedded(data, cfg, E.TrainConfig(steps=2, batch_size=4), tmp_path / "work"),
             file, marker)


def test_identity_cache_is_read_weights_only(tmp_path, monkeypatch):
    from syntfer.instruments import identity_encoder as I

    out, cache = tmp_path / "enc", tmp_path / "ids.pt"
    args = argparse.Namespace(out=str(out), train_ids=3, val_ids=2, per_id=2, size=16, width=4, embed_dim=8,
                              steps=2, batch_size=4, seed=0, threads=1, cache=str(cache))
    marker = tmp_path / "pwned"
    _hostile(cache, marker, key=[3, 2, 2, 16, 0])
    err = _refused(lambda: I.run(args), cache, marker)
    assert "delete it" in str(err)
    cache.unlink()
    calls = []
    real = I.render_identity_set
    monkeypatch.setattr(I, "render_identity_set", lambda *a, **k: calls.append(a) or real(*a, **k, progress=False))
    assert I.run(args) == 0 and len(calls) == 2
    stored = load_torch(cache)  # what the cache holds now loads weights_only (identities as tensors)
    assert stored["tr_ids"].dtype == torch.int64 and stored["key"] == [3, 2, 2, 16, 0]
    first = (out / "validation.json").read_text()
    assert I.run(args) == 0 and len(calls) == 2  # read back from the cache, not rendered again
    assert _strip_seconds(first) == _strip_seconds((out / "validation.json").read_text())


def _strip_seconds(text: str) -> dict:
    import json

    d = json.loads(text)
    return {k: v for k, v in d.items() if not k.endswith("_seconds")}


def test_saved_states_hold_only_plain_values(tmp_path):
    """What `save_torch` writes for a trainer round-trips through weights_only (a guard for new state keys)."""
    from syntfer.strategies.gan.networks import EditorConfig
    from syntfer.strategies.gan.training import EditorTrainer, TrainConfig

    crops = torch.randint(0, 256, (14, 3, 16, 16), dtype=torch.uint8)
    tr = EditorTrainer(EditorConfig(**TINY), TrainConfig(steps=1, batch_size=4, n_critic=1, d_warmup_steps=0),
                       crops, torch.arange(14) % 7)
    tr.step()
    save_torch(tmp_path / "s.pt", tr.state_dict())
    back = load_torch(tmp_path / "s.pt")
    assert back["step"] == 1 and torch.equal(back["rng"], tr.gen.get_state())
