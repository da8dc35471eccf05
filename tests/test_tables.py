"""syntfer.core.tables: input tables that must be there (errors name the file and columns), atomic CSV outputs."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from syntfer.core import tables as T


def test_require_file_names_the_path_and_what_it_should_hold(tmp_path):
    f = tmp_path / "eval.csv"
    with pytest.raises(FileNotFoundError, match=r"eval\.csv: aggregated table \(syntfer summarize\) not found"):
        T.require_file(f, "aggregated table (syntfer summarize)")
    with pytest.raises(FileNotFoundError, match="not found"):
        T.require_file(tmp_path, "a file, not a folder")
    f.write_text("a\n1\n")
    assert T.require_file(str(f), "x") == f


def test_require_columns_names_the_source_the_missing_and_the_present_columns():
    frame = pd.DataFrame({"set": ["a"], "value": [1.0]})
    assert T.require_columns(frame, ["set"], "x.csv") is frame
    with pytest.raises(T.TableError, match=r"x\.csv: lacks column\(s\) \['metric'\]; has \['set', 'value'\]"):
        T.require_columns(frame, ["set", "metric", "value"], "x.csv")
    assert issubclass(T.TableError, ValueError)


def test_read_table_checks_file_and_columns_and_passes_read_csv_options(tmp_path):
    f = tmp_path / "demographics.csv"
    f.write_text("set,value\ngan_f,NA\n")
    kept = T.read_table(f, ["set", "value"], keep_default_na=False)
    assert kept["value"].tolist() == ["NA"]  # 'NA' is a value here, not a missing one
    assert np.isnan(T.read_table(f, ["set"])["value"].iloc[0])
    with pytest.raises(T.TableError, match=r"demographics\.csv: lacks column\(s\) \['share'\]"):
        T.read_table(f, ["set", "share"])
    with pytest.raises(FileNotFoundError, match=r"missing\.csv: confusion rows of gan_f seed 0 not found"):
        T.read_table(tmp_path / "missing.csv", ["actual"], what="confusion rows of gan_f seed 0")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(T.TableError, match=r"empty\.csv: empty file"):
        T.read_table(tmp_path / "empty.csv")


def test_write_csv_writes_what_to_csv_writes_atomically_with_folders(tmp_path):
    frame = pd.DataFrame({"set": ["a", "b"], "fd": [0.1234567890123, np.nan], "n": [3, 4]},
                         index=pd.Index(["x", "y"], name="key"))
    frame.to_csv(tmp_path / "pandas.csv", index=False)
    out = T.write_csv(frame, tmp_path / "sub" / "table.csv")
    assert out == tmp_path / "sub" / "table.csv"
    assert out.read_bytes() == (tmp_path / "pandas.csv").read_bytes()
    T.write_csv(frame, out, index=True)  # replaces the file
    assert out.read_text().splitlines()[0] == "key,set,fd,n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["table.csv"]  # no temporary file left behind


def test_styled_carries_caption_and_precision():
    html = T.styled(pd.DataFrame({"fd": [0.123456789]}), "FD — procedural world", precision=3).to_html()
    assert "FD — procedural world" in html and "0.123" in html and "0.1235" not in html
    assert T.show(pd.DataFrame({"a": [1]}), "outside IPython: nothing to display") is None
