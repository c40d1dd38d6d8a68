"""`make bench`'s start-up rows (`python -m aslfr.bench --startup-only`): on a tiny dataset each
command's figure is a number, the converter's run resumed every shard, and the rows say how far it is
from the goal. No figure is asserted."""

from __future__ import annotations

import re

import pytest

from aslfr.bench import startup
from aslfr.bench.cli import main

NUMBER = r"\d+\.\d\d"


def test_startup_rows_on_a_tiny_dataset(tmp_path):
    rows = startup.startup_rows(tmp_path, repeat=1, size=(2, 4, 8))
    assert rows[0][1] == "2 x 4 (8)"
    figures = {k.strip(): v for k, v in rows[1:]}
    assert list(figures) == ['python -c "import torch"', "converter with nothing to do (every shard resumed)",
                             "aslfr convert --help", "aslfr verify (the same small folder)"]
    for label, value in figures.items():
        extra = rf"   over import torch [+-]{NUMBER} \(target <= 1.5\)" if "nothing to do" in label else ""
        assert re.fullmatch(rf"{NUMBER} \[{NUMBER}-{NUMBER}\]{extra}", value), (label, value)
    assert (tmp_path / "startup-out" / "tfrecords" / "train" / "manifest.json").is_file()


@pytest.mark.parametrize("others", [["--readers-only"], ["--tf-python", "python", "--ref-src", "src"]])
def test_startup_only_runs_alone(others, capsys):
    with pytest.raises(SystemExit):
        main(["--startup-only", *others])
    assert "--startup-only runs alone" in capsys.readouterr().err
