"""Each command's help names it as it was run; `aslfr --help | head` ends quietly; merge takes the
progress= that convert takes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, tree_bytes

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.mark.parametrize("command", ["convert", "merge", "inspect", "verify"])
def test_help_names_the_command_as_run(command):
    via_aslfr = subprocess.run([sys.executable, "-m", "aslfr", command, "--help"], capture_output=True, text=True, env=ENV)
    via_module = subprocess.run([sys.executable, "-m", f"aslfr.{command}", "--help"], capture_output=True, text=True, env=ENV)
    assert via_aslfr.returncode == via_module.returncode == 0
    first, other = via_aslfr.stdout.removeprefix("usage: "), via_module.stdout.removeprefix("usage: ")
    assert first.startswith(f"aslfr {command} ") and other.startswith(f"python -m aslfr.{command} ")


def test_help_into_a_closed_pipe_ends_quietly():
    proc = subprocess.Popen([sys.executable, "-m", "aslfr", "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=ENV)
    proc.stdout.close()  # as `| head` does once it has its lines
    err = proc.stderr.read().decode()
    proc.wait()
    assert "Traceback" not in err and "BrokenPipeError" not in err


def test_merge_takes_progress(small_data, converted, tmp_path):
    res = subprocess.run([sys.executable, "-m", "aslfr.merge", f"out_dir={converted}", f"data_dir={small_data}",
                          "progress=false"], capture_output=True, text=True, env=ENV, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("manifest.json, means.npy, stds.npy written") == 2


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_takes_an_out_dir_with_a_space(small_data, converted, tmp_path):
    out = tmp_path / "a b"
    res = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "convert", f"PY={sys.executable}",
                          f"DATA={small_data}", f"OUT={out}", "ARGS=progress=false num_workers=0"],
                         capture_output=True, text=True, env=ENV, timeout=600)
    assert res.returncode == 0, res.stderr
    assert tree_bytes(out / "tfrecords/train") == tree_bytes(converted / "tfrecords/train")
