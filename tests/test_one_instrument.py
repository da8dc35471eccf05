"""One instrument of each kind (issue 27): one softmax/temperature path (`syntfer.engine.models.softmax`), one
reliability table and ECE (`syntfer.instruments.judge.reliability`), one judge-space feature definition
(`syntfer.instruments.distances.judge_space`, tested in tests/test_distances.py) and one ceiling lookup
(`syntfer.instruments.judge.judge_ceiling`) — each checked on a case computed by hand, and each guarded against a
second copy appearing in the package or the notebooks."""
from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import numpy as np
import pytest
import torch

from syntfer.engine.models.softmax import probabilities

ROOT = Path(__file__).resolve().parents[1]


def code_of(path: Path) -> str:
    """The file's code without comments and strings (docstrings name the instruments they describe)."""
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if tok.type not in (tokenize.COMMENT, tokenize.STRING):
            out.append(tok.string)
    return " ".join(out)


def project_files() -> list[Path]:
    return sorted([*ROOT.joinpath("syntfer").rglob("*.py"), *ROOT.joinpath("notebooks").glob("*.py")])


def files_matching(pattern: str) -> set[str]:
    rx = re.compile(pattern)
    return {p.relative_to(ROOT).as_posix() for p in project_files() if rx.search(code_of(p))}


# ---- softmax ---------------------------------------------------------------------------------------
def test_probabilities_by_hand():
    z = np.array([[0.0, np.log(3.0)], [2.0, 2.0]])
    np.testing.assert_allclose(probabilities(z), [[0.25, 0.75], [0.5, 0.5]], rtol=1e-15)
    # a temperature of 2 halves the logits: exp(log 3 / 2) = sqrt 3
    np.testing.assert_allclose(probabilities(z, 2.0)[0], [1 / (1 + 3 ** 0.5), 3 ** 0.5 / (1 + 3 ** 0.5)], rtol=1e-15)
    t = probabilities(torch.tensor(z, dtype=torch.float32), 2.0)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    np.testing.assert_allclose(t.numpy(), probabilities(z, 2.0), rtol=1e-6)
    assert probabilities(z.astype(np.float32)).dtype == np.float32
    assert probabilities(np.array([[1, 1]])).dtype == np.float64
    with pytest.raises(ValueError, match="temperature"):
        probabilities(z, 0.0)


def test_probabilities_keep_the_numbers_of_the_copies_they_replace():
    """Bit for bit what the judge (torch) and the calibration / teachers (numpy) computed before: committed results
    do not move."""
    rng = np.random.default_rng(0)
    z32 = (rng.normal(size=(2000, 7)) * 3).astype(np.float32)
    t = 1.37
    lg = torch.from_numpy(z32)
    assert torch.equal(probabilities(lg, t), torch.softmax(lg / t, 1))
    assert torch.equal(probabilities(lg), torch.softmax(lg, dim=1))

    def old_calibration(z):
        z = z - z.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)

    def old_teacher(x):
        x = np.asarray(x, dtype=np.float64)
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    np.testing.assert_array_equal(probabilities(z32, t), old_calibration(z32 / t))
    np.testing.assert_array_equal(probabilities(z32.astype(np.float64), t), old_teacher(z32.astype(np.float64) / t))


# Softmaxes that are not class probabilities of a classifier: the GAN's training losses (differentiable, on its own
# discriminator's heads) and the diffusion text encoder's attention over words.
SOFTMAX_ELSEWHERE = {"syntfer/strategies/gan/training.py", "syntfer/strategies/diffusion/text.py"}


def test_softmax_is_written_once():
    """``softmax(`` (torch's, a method, a helper of that name) or the max shift of a hand-written one
    (``z - z.max(``) appear only in the owning module."""
    found = files_matching(r"softmax\s*\(|\b(\w+)\s*-\s*\1\s*\.\s*max\s*\(")
    assert found - SOFTMAX_ELSEWHERE == {"syntfer/engine/models/softmax.py"}, (
        "a second softmax: call syntfer.engine.models.softmax.probabilities(logits, temperature) instead")


def test_the_softmax_test_sees_a_second_copy(tmp_path):
    for code in ("p = torch.softmax(lg / t, 1)\n", "p = logits.softmax(1)\n", "z = z - z.max(1, keepdims=True)\n",
                 "e = np.exp(x - x.max(axis=1, keepdims=True))\n"):
        f = tmp_path / "copy.py"
        f.write_text('"""softmax( in a docstring is fine"""\n' + code)
        assert re.search(r"softmax\s*\(|\b(\w+)\s*-\s*\1\s*\.\s*max\s*\(", code_of(f)), code
    f.write_text('"""softmax(x) only in words"""\n# torch.softmax(x) in a comment\n')
    assert not re.search(r"softmax\s*\(", code_of(f))


# ---- reliability / ECE --------------------------------------------------------------------------------
def test_reliability_by_hand():
    from syntfer.instruments.judge import RELIABILITY_COLUMNS, JudgeError, reliability

    # confidences 0.25 (wrong), 0.6 (right), 0.7 (wrong), 0.9 (right), 1.0 (right); 4 bins [0,.25] (.25,.5] ...
    probs = np.array([[0.25, 0.25, 0.25, 0.25], [0.6, 0.4, 0, 0], [0.3, 0.7, 0, 0], [0, 0, 0.9, 0.1], [0, 0, 0, 1.0]])
    y = np.array([1, 0, 0, 2, 3])  # row 0: argmax is class 0 (first of the ties), so wrong
    table, ece = reliability(probs, y, bins=4)
    assert list(table.columns) == list(RELIABILITY_COLUMNS)
    assert table["n"].tolist() == [1, 0, 2, 2]
    assert table["bin_low"].tolist() == [0.0, 0.25, 0.5, 0.75] and table["bin_high"].tolist()[-1] == 1.0
    np.testing.assert_allclose(table.loc[[0, 2, 3], "confidence"], [0.25, 0.65, 0.95])
    np.testing.assert_allclose(table.loc[[0, 2, 3], "accuracy"], [0.0, 0.5, 1.0])
    assert np.isnan(table.loc[1, "confidence"]) and np.isnan(table.loc[1, "accuracy"])
    assert ece == pytest.approx((1 * 0.25 + 2 * 0.15 + 2 * 0.05) / 5)
    assert np.isnan(reliability(np.zeros((0, 4)), np.zeros(0, int), 4)[1])
    with pytest.raises(JudgeError, match="bins"):
        reliability(probs, y, bins=0)


def test_the_pseudolabel_reliability_is_the_instruments_one():
    """Same table and ECE from the teacher's scores against the world's truth as from the instruments' function."""
    import pandas as pd

    from syntfer.core import labels as L
    from syntfer.instruments.judge import reliability
    from syntfer.strategies import pseudolabel as P
    from syntfer.strategies.pseudolabel.scoring import PROB_COLUMNS

    rng = np.random.default_rng(0)
    probs = probabilities(rng.normal(size=(300, 7)) * 2)
    y = rng.integers(0, 7, 300)
    scores = pd.DataFrame(probs, columns=list(PROB_COLUMNS))
    scores.insert(0, "path", [f"{i}.png" for i in range(300)])
    scores["truth"] = [L.CLASSES[i] for i in y]
    unreadable = scores.copy()
    unreadable.loc[len(unreadable)] = ["x.png", *[np.nan] * 7, "happy"]  # an unreadable image is left out
    for frame in (scores, unreadable):
        table, ece = P.reliability(frame, bins=10)
        want, want_ece = reliability(probs, y, 10)
        pd.testing.assert_frame_equal(table, want)
        assert ece == want_ece


def test_ece_is_binned_once():
    """The binning of an ECE (``linspace(0, 1, bins + 1)`` edges) is written only in `syntfer.instruments.judge`."""
    found = files_matching(r"linspace\s*\(\s*0(\.0)?\s*,\s*1(\.0)?\s*,\s*bins")
    assert found == {"syntfer/instruments/judge.py"}, "a second ECE: call syntfer.instruments.judge.reliability"


# ---- the judge ceiling --------------------------------------------------------------------------------
def test_the_ceiling_is_looked_up_once():
    """A domain's ceiling (the ``mean_class`` row of the table `build.measure_ceiling` writes) is read only by
    `syntfer.instruments.judge.judge_ceiling`; every notebook given the ceiling table calls it."""
    pick = re.compile(r"""==\s*["']mean_class["']|\.loc\[\s*["']mean_class["']|\.at\[\s*["']mean_class["']""")
    by_hand = {p.relative_to(ROOT).as_posix() for p in project_files() if pick.search(p.read_text())}
    assert by_hand == {"syntfer/instruments/judge.py"}, "read a ceiling with syntfer.instruments.judge.judge_ceiling"
    given = [p for p in ROOT.joinpath("notebooks").glob("*.py") if re.search(r"^ceilings\s*=", p.read_text(), re.M)]
    assert given, "no notebook takes the ceiling table any more: update this test"
    # a notebook calls judge_ceiling itself, or a function of the study layer that does (notebook 06: its tables)
    through = {"06_sets.py": ("STAB.judge_sets", ROOT / "syntfer" / "study" / "sets_tables.py")}
    for nb in given:
        if nb.name in through:
            call, module = through[nb.name]
            assert re.search(re.escape(call).replace(r"\.", r"\s*\.\s*") + r"\s*\(", code_of(nb)), (
                f"{nb.name}: ceilings given, {call} never called")
            assert re.search(r"judge_ceiling\s*\(", code_of(module)), f"{module.name}: judge_ceiling never called"
        else:
            assert re.search(r"judge_ceiling\s*\(", code_of(nb)), (
                f"{nb.name}: ceilings given, judge_ceiling never called")
    assert re.search(r"judge_ceiling\s*\(", code_of(ROOT / "notebooks" / "01_instruments.py"))  # writes the table
    assert re.search(r"judge_ceiling\s*\(", code_of(ROOT / "syntfer" / "instruments" / "build.py"))
