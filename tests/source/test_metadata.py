"""Bad CSVs and a bad out_dir: one line naming the file, the line and the value as written."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from aslfr.errors import InputError
from aslfr.source.synthetic import SplitSpec, generate
from conftest import convert


@pytest.fixture
def tiny(tmp_path) -> Path:
    return generate(tmp_path / "data", SplitSpec(2, 8, 4, 6), None, seed=3)


def _error(data, out, *overrides) -> str:
    with pytest.raises(InputError) as e:
        convert(data, out, "num_workers=0", *overrides)
    assert "\n" not in str(e.value)
    return str(e.value)


@pytest.mark.parametrize("value", ["99999999999999999999", "9223372036854775808", "1.5", "", "12a"])
def test_an_id_that_is_no_int64_is_named_by_its_line_and_text(tiny, tmp_path, value):
    lines = (tiny / "train.csv").read_text().splitlines()
    header = lines[0].split(",")
    row = lines[3].split(",")  # data row 3, line 4
    row[header.index("sequence_id")] = value
    lines[3] = ",".join(row)
    (tiny / "train.csv").write_text("\n".join(lines) + "\n")
    assert _error(tiny, tmp_path / "out") == (f"{tiny / 'train.csv'}: column sequence_id must hold 64-bit integers "
                                              f"(line 4: {value!r})")


def test_a_tokenizing_error_is_one_line_naming_the_file(tiny, tmp_path):
    with open(tiny / "train.csv", "a") as f:
        f.write("a,b,c,d,e,f,g\n")
    msg = _error(tiny, tmp_path / "out")
    assert msg.startswith(f"{tiny / 'train.csv'}: unreadable CSV (Error tokenizing data.")


def test_two_spellings_of_one_parquet_file_are_refused(tiny, tmp_path):
    csv = pd.read_csv(tiny / "train.csv")
    first = csv.path.iloc[0]
    again = f"../{tiny.name}/{first}"
    csv.loc[csv.path == first, "path"] = [first if i % 2 else again for i in range((csv.path == first).sum())]
    csv.to_csv(tiny / "train.csv", index=False)
    msg = _error(tiny, tmp_path / "out")
    assert msg.startswith(f"{tiny / 'train.csv'}: paths ") and "name the same parquet file" in msg
    assert repr(again) in msg and repr(first) in msg


def test_out_dir_that_is_a_file(tiny, tmp_path):
    (tmp_path / "f").write_text("x")
    assert _error(tiny, tmp_path / "f") == f"out_dir={tmp_path / 'f'}: a file, not a folder"
    assert _error(tiny, tmp_path / "f" / "out") == f"out_dir={tmp_path / 'f' / 'out'}: cannot be a folder, a file is in its path"
