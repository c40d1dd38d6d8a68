"""Scale-out through Hydra launchers (submitit local, joblib): sweeps over parquet-file shards and
over folds give, once merged, the bytes of one full run; jobs only write their own shards."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import convert, needs, tree_bytes


def _sweep(data, out, cwd, *args):
    res = subprocess.run([sys.executable, "-m", "aslfr.convert", "-m", f"data_dir={data}", f"out_dir={out}",
                          "progress=false", *args], cwd=cwd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


@pytest.mark.parametrize("launcher", [
    pytest.param(["hydra/launcher=submitit_local"], marks=needs("hydra_plugins.hydra_submitit_launcher")),
    pytest.param(["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], marks=needs("hydra_plugins.hydra_joblib_launcher"))])
@pytest.mark.parametrize("sweep", [["shard_index=range(0,3)", "shard_count=3"], ["+fold=0,1,2,3"]])
def test_sweep_union_equals_full_run(small_data, converted, tmp_path, launcher, sweep):
    out = tmp_path / "out"
    res = _sweep(small_data, out, tmp_path, "num_workers=2", *launcher, *sweep)
    assert "train: manifest.json, means.npy, stds.npy written" in res.stdout
    assert tree_bytes(out / "tfrecords/train") == tree_bytes(converted / "tfrecords/train")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # Hydra's folders stay under out_dir


def test_shard_jobs_write_only_their_files(small_data, tmp_path):
    from aslfr.source.metadata import load_metadata, parquet_files

    files = parquet_files(load_metadata(small_data, "train"))
    r = convert(small_data, tmp_path, "shard_index=1", "shard_count=2", "num_workers=0", finalize=False)
    numbers = {int(p.name.split(".")[0]) for p in (tmp_path / "tfrecords/train").glob("*.tfrec")}
    assert {n // 4 for n in numbers} == {i for i in range(len(files)) if i % 2 == 1}
    assert r["files"] == len([i for i in range(len(files)) if i % 2 == 1])
    receipts = {int(p.stem) for p in (tmp_path / "tfrecords/train/.aslfr").glob("*.json")}
    assert {n // 4 for n in receipts} == {1}


def test_merge_command_reports_missing_parts(small_data, tmp_path):
    convert(small_data, tmp_path, "shard_index=0", "shard_count=2", "num_workers=0", finalize=False)
    res = subprocess.run([sys.executable, "-m", "aslfr.merge", f"data_dir={small_data}", f"out_dir={tmp_path}"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 1 and "8 of 12 shard units complete" in res.stderr, res.stdout + res.stderr
    assert not (tmp_path / "tfrecords/train/manifest.json").exists()
