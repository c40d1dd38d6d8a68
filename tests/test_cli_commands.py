"""The commands as a user of the real data runs them: the Makefile targets, one `out_dir=` convention,
`merge` with its own config, one-line errors everywhere, `train_demo`'s input checks and the `aslfr`
console script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, tree_bytes

PY = sys.executable
needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _make(*args, cwd=ROOT):
    return subprocess.run(["make", "--no-print-directory", "-C", str(cwd), *args], capture_output=True, text=True)


@needs_make
def test_make_demo_and_test_do_what_the_readme_says(tmp_path):
    venv = tmp_path / "venv"
    demo = _make("-n", "demo", f"VENV={venv}").stdout.splitlines()
    assert demo[0] == f"python3 -m venv {venv}"
    assert demo[-3:] == [f"{venv}/bin/python -m aslfr.synthetic data/synthetic",
                         f"{venv}/bin/python -m aslfr.convert data_dir=data/synthetic out_dir=out/demo",
                         f"{venv}/bin/python -m aslfr.convert data_dir=data/synthetic out_dir=out/demo split=supplemental"]
    test = _make("-n", "test", f"VENV={venv}").stdout.splitlines()
    assert test[0] == f"python3 -m venv {venv}" and test[-1] == f"{venv}/bin/python -m pytest -q"


@needs_make
def test_make_convert_verify_inspect_on_real_layout(small_data, converted, tmp_path):
    out = tmp_path / "out"
    common = [f"PY={PY}", f"DATA={small_data}", f"OUT={out}"]
    res = _make("convert", *common, "ARGS=progress=false num_workers=0")
    assert res.returncode == 0, res.stderr
    assert tree_bytes(out / "tfrecords/train") == tree_bytes(converted / "tfrecords/train")
    res = _make("convert", *common, "SPLIT=supplemental", "FOLD=1", "ARGS=progress=false num_workers=0")
    assert res.returncode == 0, res.stderr
    # fold 1 of each of the 2 supplemental files: shard numbers 1 and 5; no manifest until all folds exist
    assert sorted(p.name.split(".")[0] for p in (out / "tfrecords/sup").glob("*.tfrec")) == ["1", "5"]
    assert not (out / "tfrecords/sup/manifest.json").exists()
    res = _make("convert", *common, "SPLIT=supplemental", "ARGS=progress=false num_workers=0")
    assert res.returncode == 0, res.stderr
    assert tree_bytes(out / "tfrecords/sup") == tree_bytes(converted / "tfrecords/sup")
    res = _make("verify", *common)
    assert res.returncode == 0, res.stderr
    assert sorted(ln.split(":")[0] for ln in res.stdout.splitlines() if ": OK" in ln) == \
        [str(out / "tfrecords/sup"), str(out / "tfrecords/train")]
    res = _make("inspect", *common)
    assert res.returncode == 0, res.stderr
    assert "train" in res.stdout and "sup" in res.stdout and "lost EOS" in res.stdout


@needs_make
def test_make_verify_fails_on_a_broken_folder(converted, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(converted, out)
    next((out / "tfrecords/train").glob("*.tfrec")).unlink()
    res = _make("verify", f"PY={PY}", f"OUT={out}")
    assert res.returncode != 0 and "FAIL" in res.stdout


def _run(*args, cwd=None, timeout=300):
    return subprocess.run([PY, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout)


@pytest.mark.parametrize("command", ["verify", "stats"])
def test_out_dir_spellings_agree(command, converted, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(converted, out)
    runs = [_run("-m", f"aslfr.{command}", arg) for arg in (f"out_dir={out}", str(out))]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr
    assert runs[0].stdout == runs[1].stdout
    assert str(out / "tfrecords/train") in runs[0].stdout and str(out / "tfrecords/sup") in runs[0].stdout
    missing = _run("-m", f"aslfr.{command}", f"out_dir={tmp_path / 'nothing'}")
    assert missing.returncode == 1 and f"{tmp_path / 'nothing'}:" in missing.stdout + missing.stderr


def test_inspect_takes_a_bare_path_first(converted):
    runs = [_run("-m", "aslfr.inspect", arg) for arg in (f"out_dir={converted}", str(converted))]
    assert [r.returncode for r in runs] == [0, 0], runs[1].stderr
    assert runs[0].stdout == runs[1].stdout and "lost EOS" in runs[0].stdout


def test_train_demo_takes_out_dir(converted, capsys):
    from aslfr import train_demo

    train_demo.main([f"out_dir={converted}", "--steps", "1", "--workers", "0"])
    out = capsys.readouterr().out
    # shard names are {file*4 + fold}.{count}: training reads train folds 1..3 and all supplemental records
    train = sum(int(p.name.split(".")[1]) for p in converted.glob("tfrecords/*/*.tfrec")
                if p.parent.name == "sup" or int(p.name.split(".")[0]) % 4 != 0)
    assert f"training on {train} records" in out and "over 1 steps" in out
