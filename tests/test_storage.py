"""Atomic writes: the same bytes for the same values, and nothing half-written left by a killed job."""
from __future__ import annotations

import io

import torch

from syntfer.core.storage import _TEMPORARY, atomic_path, remove_stale_temporaries, save_torch


def test_save_torch_bytes_depend_only_on_the_values(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    opt = torch.optim.AdamW(net.parameters(), lr=0.1)
    net(torch.randn(5, 3)).sum().backward()
    opt.step()
    state = {"model": net.state_dict(), "optimizer": opt.state_dict(), "step": 1}
    save_torch(tmp_path / "a.pt", state)
    save_torch(tmp_path / "sub" / "b.pt", state)  # another name and folder: the archive is not named after it
    # the same values reached another way (a state loaded back from a checkpoint, as a resumed run holds it)
    loaded = torch.load(io.BytesIO((tmp_path / "a.pt").read_bytes()), weights_only=True)
    opt2 = torch.optim.AdamW(net.parameters(), lr=0.1)
    opt2.load_state_dict(loaded["optimizer"])
    save_torch(tmp_path / "c.pt", {"model": loaded["model"], "optimizer": opt2.state_dict(), "step": 1})
    a = (tmp_path / "a.pt").read_bytes()
    assert a == (tmp_path / "sub" / "b.pt").read_bytes() == (tmp_path / "c.pt").read_bytes()
    back = torch.load(tmp_path / "c.pt", weights_only=True)
    assert back["model"]._metadata == net.state_dict()._metadata  # module versions survive
    net.load_state_dict(back["model"])


def test_stale_temporaries_are_removed_and_nothing_else(tmp_path):
    (tmp_path / "d").mkdir()
    stale = tmp_path / "d" / ".state.pt.ab3_x9zq.tmp"  # what atomic_path leaves behind when killed
    stale.write_bytes(b"half")
    keep = [tmp_path / "state.pt", tmp_path / ".hidden.tmp", tmp_path / "notes.tmp", tmp_path / ".x.toolong99.tmp"]
    for k in keep:
        k.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert not stale.exists() and all(k.exists() for k in keep)
    assert remove_stale_temporaries(tmp_path / "missing") == []
    with atomic_path(tmp_path / "d" / "f.txt") as tmp:
        tmp.write_text("ok")
        assert _TEMPORARY.match(tmp.name)  # the pattern is atomic_path's own
