"""The documents: their numbers are the result files' (syntfer.study.docs_numbers), the README leads and stays short, and
nothing in the repository points at a file outside it."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from syntfer.study import docs_numbers as D

ROOT = Path(__file__).resolve().parents[1]


def _copy_repo_docs(dst: Path) -> Path:
    """The documents and the result files they quote, copied to `dst` (the repository is never edited)."""
    for rel in ["README.md", *D.SOURCES.values()]:
        if (ROOT / rel).is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dst / rel)
    for doc in D.documents(ROOT):
        rel = doc.relative_to(ROOT)
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(doc, dst / rel)
    return dst


def test_every_block_in_the_documents_matches_the_result_files():
    problems = D.check(ROOT)
    assert not problems, "\n".join(problems) + "\n(run `syntfer numbers` after a new run)"


def test_documents_have_blocks():
    """The README and each model card quote the run through blocks (else the check above proves nothing)."""
    for rel in ("README.md", "models/diffusion/README.md", "models/gan/README.md", "models/identity/README.md",
                "docs/results.md"):
        text = (ROOT / rel).read_text()
        assert D.BLOCK.search(text), f"{rel} has no numbers block"


def test_a_number_edited_by_hand_fails_the_check(tmp_path):
    root = _copy_repo_docs(tmp_path)
    assert D.check(root) == []
    readme = root / "README.md"
    text = readme.read_text()
    block = next(m for m in D.BLOCK.finditer(text) if m.group("name") == "glance")
    body = block.group("body")
    number = re.search(r"\d\.\d{3}", body)
    assert number, "the glance block quotes no number"
    edited = body[:number.start()] + ("1.000" if number.group() != "1.000" else "0.999") + body[number.end():]
    readme.write_text(text[:block.start("body")] + edited + text[block.end("body"):])
    problems = D.check(root)
    assert len(problems) == 1 and "README.md: block 'glance' differs" in problems[0]
    D.write(root)
    assert D.check(root) == [] and readme.read_text() == text


def test_a_changed_result_file_fails_the_check(tmp_path):
    root = _copy_repo_docs(tmp_path)
    path = root / D.SOURCES["metrics"]
    metrics = json.loads(path.read_text())
    metrics["eval"]["real_rafdb"]["rafdb"]["acc"] += 0.05
    path.write_text(json.dumps(metrics))
    assert any("block 'training'" in p for p in D.check(root))


def test_new_keys_get_rows_and_columns_and_missing_keys_a_dash():
    n = D.Numbers({"metrics": {
        "eval": {"real_rafdb": {"rafdb": {"acc": 0.8, "acc_sd": 0.01, "n_seeds": 3}},
                 "new_set": {"rafdb": {"acc": 0.5}}},
        "synthetic": {"gan_f": {"n_images": 10.0, "expression_fidelity": 0.5, "oracle_ratio": 0.75,
                                "some_future_key": 1.0},
                      "gan_v": {"n_images": 10.0}}},
        "findings": {"x_vs_y_new_metric.effect": 0.1, "x_vs_y_new_metric.ci_low": 0.05,
                     "x_vs_y_new_metric.ci_high": 0.2, "supported": 1}})
    training = D.BLOCKS["training"](n)
    assert "`new_set` | 0.500 | —" in training and "0.800 ± 0.010" in training
    synthetic = D.BLOCKS["synthetic"](n)
    assert "oracle ratio" in synthetic and "real ratio" not in synthetic  # optional: shown once a set has it
    assert "| `gan_v` | 10 | — |" in synthetic and "| 0.75 |" in synthetic
    gan = D.BLOCKS["gan"](n)
    assert "`gan_v`" in gan and "—" in gan
    # a finding of a kind no row declares: listed in the full table, verdict only if the file or a rule gives one
    assert "`x_vs_y_new_metric` | +0.100 [0.050, 0.200] | —" in D.BLOCKS["findings"](n)
    n.data["findings"]["x_vs_y_new_metric.verdict"] = "supported"
    assert "`x_vs_y_new_metric` | +0.100 [0.050, 0.200] | — | supported | — / — vs — / —" in D.BLOCKS["findings"](n)
    # every block renders from nothing at all
    empty = D.Numbers({})
    for name, fn in D.BLOCKS.items():
        assert isinstance(fn(empty), str), name


def test_verdict_rule_is_the_reports():
    from syntfer.study.report import verdict

    for lo, hi in [(0.1, 0.2), (-0.2, -0.1), (-0.1, 0.1), (0.0, 0.1)]:
        for expected in (">", "<"):
            assert D.verdict(lo, hi, expected) == verdict(lo, hi, expected), (lo, hi, expected)


def test_unknown_or_unclosed_blocks_are_errors():
    n = D.Numbers({})
    with pytest.raises(D.NumbersError, match="unknown block 'nope'"):
        D.render_text("<!-- numbers:nope:begin -->\nx\n<!-- numbers:nope:end -->\n", n)
    with pytest.raises(D.NumbersError, match="no end marker"):
        D.render_text("<!-- numbers:glance:begin -->\nx\n", n)
    with pytest.raises(D.NumbersError, match="without its begin"):
        D.render_text("x\n<!-- numbers:glance:end -->\n", n)


def test_lookup_reads_nested_and_dotted_keys():
    data = {"a": {"b.c": {"d": 1}}, "x.y": 2, "teacher.ece": 3}
    assert D.lookup(data, "a.b.c.d") == 1 and D.lookup(data, "x.y") == 2 and D.lookup(data, "teacher.ece") == 3
    assert D.lookup(data, "a.zz") is D.MISSING


def test_readme_leads_and_is_short():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200, "README.md over 200 lines: move detail to docs/"
    head = text[:text.index("## ", text.index("\n"))] if "## " in text else text
    assert "make repro" in text and "make test" in text
    assert text.index("<!-- numbers:glance:begin -->") < text.index("## Where everything is")
    assert "reports/figures/headline.png" in text
    assert "make repro" in text[:4000] and "procedural" in head.lower()


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_relative_links_in_the_documents_resolve():
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "models").glob("*/README.md")),
            ROOT / "benchmarks" / "README.md"]
    missing = []
    for doc in docs:
        for target in LINK.findall(doc.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # a web address
            if target.startswith("reports/") or "/reports/" in target:
                continue  # written by `syntfer publish` with the committed run
            if not (doc.parent / target).exists():
                missing.append(f"{doc.relative_to(ROOT)} -> {target}")
    assert not missing, "links to files that do not exist:\n" + "\n".join(missing)


def test_the_published_run_is_in_git():
    """reports/ is read on a git host without running anything: every file its index links to, and every link
    into reports/ from the documents, is a file git tracks (a `.gitignore` rule such as `*.ipynb` must not keep
    the executed notebooks out of the commit)."""
    tracked = set(subprocess.run(["git", "ls-files", "reports"], cwd=ROOT, capture_output=True, text=True,
                                 check=True).stdout.split())
    index = ROOT / "reports" / "README.md"
    assert "reports/README.md" in tracked
    links = [(index, t) for t in LINK.findall(index.read_text()) if not re.match(r"[a-z]+:", t)]
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        links += [(doc, t) for t in LINK.findall(doc.read_text()) if "reports/" in t and not re.match(r"[a-z]+:", t)]
    assert len(links) > 10, "the reports index links to the executed notebooks"
    untracked = sorted({f"{d.relative_to(ROOT)} -> {t}" for d, t in links
                        if (d.parent / t).resolve().relative_to(ROOT).as_posix() not in tracked
                        and not (d.parent / t).resolve().is_dir()})
    assert not untracked, "links to published files git does not track:\n" + "\n".join(untracked)


OUTSIDE = re.compile(r"\b(?:METHOD|STYLE)\.md\b")
EDITABLE_LATER: set[str] = set()


def test_no_reference_to_files_outside_the_repository():
    """The method and the house style are docs/method.md and docs/style.md; the upper-case names are files outside
    this repository. EDITABLE_LATER: files whose references are changed with the pipeline's next edit (empty it
    then)."""
    import subprocess

    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    found = []
    for rel in files:
        path = ROOT / rel
        if rel in EDITABLE_LATER or rel.startswith("outputs/") or not path.is_file() or path.suffix in (
                ".pt", ".png", ".safetensors", ".lock"):
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        found += [f"{rel}:{i}" for i, line in enumerate(text.splitlines(), 1) if OUTSIDE.search(line)]
    assert not found, "references to files outside the repository (use docs/method.md, docs/style.md):\n" + "\n".join(found)


def test_licence_and_citation():
    import yaml

    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License") and "the syntfer authors" in licence
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT"
    paper = cff["preferred-citation"]
    assert paper["title"] == "On Applicability of Synthetic Datasets for Facial Expression Recognition"
    assert [a["family-names"] for a in paper["authors"]] == ["Azmoudeh", "Sarıtaş", "Yıldırım", "Ekenel"]
    assert paper["year"] == 2026 and "2605.17483" in paper["identifiers"][0]["value"]


def test_exchange_and_scaling_blocks_from_the_flat_keys():
    n = D.Numbers({"findings": {
        "exchange.gan_f.real280.equivalent_images": 610.0, "exchange.gan_f.real280.ci_low": 400.0,
        "exchange.gan_f.real280.ci_high": None, "exchange.gan_f.real280.share_not_reached": 0.1,
        "exchange.gan_f.real1400.equivalent_images": None, "exchange.gan_f.real1400.share_not_reached": 0.9,
        "exchange.gan_f.real2100.equivalent_images": 280.0, "exchange.gan_f.real2100.smallest_measured": 280,
        "scaling.gan_f.n280.balanced_accuracy": 0.31, "scaling.gan_f.n280.ci_low": 0.28,
        "scaling.gan_f.n280.ci_high": 0.34, "supported": 0}})
    ex = D.BLOCKS["exchange"](n)
    assert "| `gan_f` | 610 [400, open] | not reached (90% of draws) | ≤ 280 (its smallest draw already reaches it) |" in ex
    assert "N = 1,400" in ex
    assert "| `gan_f` | 0.310 [0.280, 0.340] |" in D.BLOCKS["scaling"](n)
    assert D.claims(n) == {}  # curve keys are not claims
    assert "No data-scaling curve" in D.BLOCKS["exchange"](D.Numbers({}))
