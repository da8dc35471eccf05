"""Every `syntfer` command, run as a real process on bad input: exit status 1, exactly one line on stderr
(``syntfer COMMAND: error: …``) that names the file or value and what was expected, and no traceback.

tests/test_errors.py checks the messages of many more bad inputs in-process; this file checks what a user (or
DVC) sees from the process: the status, the single line, no ``Traceback``.
"""
from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from faults import TALLY, cli, job_env
from syntfer import cli as dispatch

ROOT = Path(__file__).resolve().parents[1]


def _png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((20, 20, 3), 90, np.uint8)).save(path)
    return path


def _good(t: Path) -> Path:
    pd.DataFrame({"path": [str(_png(t / "i" / "a.png")), str(_png(t / "i" / "b.png"))],
                  "label": ["happy", "sad"]}).to_csv(t / "good.csv", index=False)
    return t / "good.csv"


def _badcol(t: Path) -> Path:
    pd.DataFrame({"path": [str(_png(t / "i" / "a.png"))], "lbl": ["happy"]}).to_csv(t / "badcol.csv", index=False)
    return t / "badcol.csv"


def _checkpoint(t: Path) -> Path:
    import torch

    from syntfer.engine.models import create_model
    from syntfer.engine.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    return save_checkpoint(create_model("cnn_tiny", img_size=16), t / "ckpt")


def _unclosed(t: Path) -> Path:
    (t / "README.md").write_text("<!-- numbers:glance:begin -->\nstale\n")
    return t


# (id, argv builder, fragments the error line must contain); the first argv word is the command
CASES: list[tuple[str, Callable[[Path], list], Callable[[Path], list[str]]]] = [
    ("manifest-missing-root", lambda t: ["manifest", "--format", "rafdb", "--root", t / "nowhere", "--out", t / "m.csv"],
     lambda t: [str(t / "nowhere"), "not found"]),
    ("world-workers", lambda t: ["world", "--out", t / "w", "--workers", "0"], lambda t: ["workers", "got 0"]),
    ("notebook-missing", lambda t: ["notebook", t / "none.py", "--out", t / "nb"],
     lambda t: [str(t / "none.py"), "not found"]),
    ("pseudolabel-missing-images", lambda t: ["pseudolabel", "--teacher", t, "--images", t / "none.csv", "--out",
                                              t / "o"], lambda t: [str(t / "none.csv"), "not found"]),
    ("prompts-per-emotion", lambda t: ["prompts", "--out", t / "p.csv", "--per-emotion", "-1"],
     lambda t: ["-1", "expected"]),
    ("train-wrong-column", lambda t: ["train", "--train", _badcol(t), "--out", t / "o"],
     lambda t: [str(t / "badcol.csv"), "['label']"]),
    ("train-bad-epochs", lambda t: ["train", "--train", _good(t), "--out", t / "o", "--epochs", "0"],
     lambda t: ["epochs = 0", "expected > 0"]),
    ("evaluate-missing-checkpoint", lambda t: ["evaluate", "--checkpoint", t / "none", "--test",
                                               f"rafdb={_good(t)}", "--out", t / "o", "--train-set", "x", "--seed", "0"],
     lambda t: [str(t / "none"), "config.json"]),
    ("evaluate-wrong-column", lambda t: ["evaluate", "--checkpoint", _checkpoint(t), "--test",
                                         f"rafdb={_badcol(t)}", "--out", t / "o", "--train-set", "x", "--seed", "0"],
     lambda t: [str(t / "badcol.csv"), "['label']"]),
    ("models-unknown", lambda t: ["models", "resnet9000"], lambda t: ["'resnet9000'", "registered"]),
    ("diffusion-train-missing-captions", lambda t: ["diffusion", "train", "--captions", t / "none.csv", "--work",
                                                    t / "w"], lambda t: [str(t / "none.csv"), "not found"]),
    ("diffusion-generate-missing-prompts", lambda t: ["diffusion", "generate", "--prompts", t / "none.csv",
                                                      "--out", t / "o", "--model", t / "m"],
     lambda t: [str(t / "none.csv"), "not found"]),
    ("gan-train-missing-data", lambda t: ["gan", "train", "--data", t / "none", "--out", t / "o"],
     lambda t: [str(t / "none"), "not found"]),
    ("gan-edit-missing-editor", lambda t: ["gan", "edit", "--editor", t / "none", "--boxes", t / "b.csv", "--out",
                                           t / "o"], lambda t: [str(t / "none"), "editor config not found"]),
    ("identity-too-few-ids", lambda t: ["identity", "--out", t / "o", "--train-ids", "1"],
     lambda t: ["--train-ids 1", "expected >= 2"]),
    ("instrument-missing-world", lambda t: ["instrument", "judge", "--world", t / "none", "--out", t / "o"],
     lambda t: [str(t / "none"), "truth"]),
    ("mix-wrong-column", lambda t: ["mix", "--source", f"gan_f={_badcol(t)}", "--out", t / "o"],
     lambda t: [str(t / "badcol.csv"), "['label']"]),
    ("distance-missing-set", lambda t: ["distance", "--space", "baseline", "--checkpoint", _checkpoint(t), "--set",
                                        f"a={t / 'none.csv'}", "--reference", f"r={_good(t)}", "--out", t / "o"],
     lambda t: [str(t / "none.csv"), "not found"]),
    ("audit-missing-set", lambda t: ["audit", "--set", f"a={t / 'none.csv'}", "--out", t / "o"],
     lambda t: [str(t / "none.csv"), "not found"]),
    ("publish-no-run", lambda t: ["publish", "--nb-dir", t / "nowhere", "--out", t / "reports"],
     lambda t: [str(t / "nowhere"), "no such folder"]),
    ("numbers-unclosed-block", lambda t: ["numbers", "--root", _unclosed(t)],
     lambda t: ["README.md", "'glance'", "no end marker"]),
    ("preset-missing-files", lambda t: ["preset", "paper", "--print", "--params", ROOT / "params.yaml",
                                        "--presets-dir", ROOT / "presets"],
     lambda t: ["presets/paper.yaml", "--set train.pretrained=PATH", "--set diffusion.sd_model=PATH"]),
    ("summarize-no-match", lambda t: ["summarize", "--eval", str(t / "none*.csv"), "--out", t / "o"],
     lambda t: [str(t / "none*.csv")]),
]


def test_every_command_has_a_process_case():
    tried = {next(c for c in dispatch.COMMANDS if cid.startswith(c + "-")) for cid, _, _ in CASES}
    assert tried == set(dispatch.COMMANDS), f"commands without a process case: {set(dispatch.COMMANDS) - tried}"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_ends_the_process_with_one_line_and_status_1(tmp_path, case):
    cid, argv, expect = case
    args = [str(a) for a in argv(tmp_path)]
    done = subprocess.run(cli(*args), cwd=tmp_path, env=job_env(), capture_output=True, text=True, timeout=300)
    both = done.stdout + done.stderr
    assert "Traceback" not in both, both[-3000:]
    assert done.returncode == 1, (done.returncode, both[-3000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{done.stderr[-3000:]}"
    assert lines[0].startswith(f"syntfer {args[0]}: error: "), lines[0]
    missing = [f for f in expect(tmp_path) if f not in lines[0]]
    assert not missing, f"{cid}: {lines[0]!r} does not name {missing}"
    TALLY["bad inputs tried"] += 1


def test_a_bug_keeps_its_traceback_and_an_expected_error_can_show_one(monkeypatch, capsys):
    """Only the bad-input error types become one line: anything else is a bug and is raised as it is;
    SYNTFER_TRACEBACK=1 raises the bad-input ones too."""
    import syntfer.sources.world.cli as world_cli

    def boom(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(world_cli, "run", boom)
    with pytest.raises(ZeroDivisionError):
        dispatch.main(["world", "--out", "x"])

    def bad(args):
        raise FileNotFoundError(2, "No such file or directory", "in.csv")

    monkeypatch.setattr(world_cli, "run", bad)
    assert dispatch.main(["world", "--out", "x"]) == 1
    assert capsys.readouterr().err == "syntfer world: error: in.csv: file not found\n"
    monkeypatch.setenv("SYNTFER_TRACEBACK", "1")
    with pytest.raises(FileNotFoundError):
        dispatch.main(["world", "--out", "x"])


def test_error_line_joins_a_multi_line_message():
    assert dispatch.error_line("gan", ValueError("first\n\n  second  \nthird")) == \
        "syntfer gan: error: first | second | third"
