"""Behaviour checked against truths derived outside the code under test: commands' error paths,
the lock's wait, and the settings that change what is written (each against the reference
notebook's own code, sklearn, numpy or the bytes on disk)."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _inspect(tmp_path, *args):
    res = subprocess.run([sys.executable, "-m", "aslfr.inspect", *args], capture_output=True, text=True, cwd=tmp_path,
                         timeout=300)
    return res.returncode, res.stdout, res.stderr


def _one_error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("aslfr: error: "), stderr
    return lines[0]


# -- inspect's error paths ------------------------------------------------------------------------

@pytest.mark.parametrize("made", [True, False], ids=["empty-folder", "no-folder"])
def test_inspect_without_records_folder(tmp_path, made):
    out = tmp_path / "out"
    if made:
        out.mkdir()
    rc, stdout, stderr = _inspect(tmp_path, f"out_dir={out}")
    line = _one_error_line(stderr)
    assert rc == 1 and stdout == ""
    assert str(out) in line and "no finished records folder" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == (["out"] if made else [])  # nothing written


def test_inspect_unknown_sequence_id(converted, tmp_path):
    pytest.importorskip("matplotlib", reason="pictures need matplotlib (aslfr[viz])")
    rc, stdout, stderr = _inspect(tmp_path, f"out_dir={converted}", "+sequence_id=987654321", f"png={tmp_path}/x.png")
    line = _one_error_line(stderr)
    assert rc == 1 and stdout == ""
    assert "sequence 987654321 not found" in line and str(converted) in line
    assert list(tmp_path.iterdir()) == []
