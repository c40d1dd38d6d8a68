"""A finalized split whose shards are rewritten: the manifest (the split's commit point) is withdrawn
before the first shard is replaced, so readers refuse the folder instead of mixing two configurations;
a rerun that rewrites nothing keeps it. And strict=true holds on resume as on a fresh run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import aslfr
from aslfr.errors import InputError
from aslfr.format.manifest import ManifestError
from aslfr.source.synthetic import SplitSpec, generate
from conftest import ROOT, convert, tree_bytes


@pytest.fixture
def data(tmp_path) -> Path:
    return generate(tmp_path / "data", SplitSpec(2, 12, 6, 6), SplitSpec(3, 12, 6, 6), seed=11)


def _readers_refuse(records: Path) -> None:
    with pytest.raises(ManifestError):
        aslfr.fold_files(records, valid_fold=0)
    with pytest.raises(ManifestError):
        aslfr.TFRecordShards(records)


def test_rerun_of_one_fold_with_other_settings_withdraws_the_manifest(data, tmp_path):
    convert(data, tmp_path, "split=supplemental", "num_workers=0")
    sup = tmp_path / "tfrecords/sup"
    assert (sup / "manifest.json").is_file()
    r = convert(data, tmp_path, "split=supplemental", "sup_weight=0.5", "+fold=0", "num_workers=0")
    assert r["shards_written"] == 3 and not r["finalized"]
    assert not (sup / "manifest.json").exists()
    _readers_refuse(sup)


def test_interrupted_full_rerun_with_other_settings_withdraws_the_manifest(data, tmp_path):
    convert(data, tmp_path, "split=supplemental", "num_workers=0")
    sup = tmp_path / "tfrecords/sup"
    paused = tmp_path / "paused.txt"
    # stopped for good inside file 1's first shard: file 0's four shards are rewritten with shuffle_seed=7
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests/hooks/paused_convert.py"), f"data_dir={data}",
                             f"out_dir={tmp_path}", "split=supplemental", "shuffle_seed=7", "num_workers=0",
                             "progress=false"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "ASLFR_TEST_PAUSE_AT": "4",
                                 "ASLFR_TEST_PAUSED": str(paused)}, start_new_session=True)
    try:
        deadline = time.monotonic() + 300  # a hang guard only: the pause is permanent
        while not paused.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-2000:]
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    assert not (sup / "manifest.json").exists()
    _readers_refuse(sup)


def test_rerun_that_rewrites_nothing_keeps_the_manifest(data, tmp_path):
    convert(data, tmp_path, "num_workers=0")
    manifest = tmp_path / "tfrecords/train/manifest.json"
    before = manifest.read_bytes()
    r = convert(data, tmp_path, "num_workers=0", "+fold=1")
    assert r["shards_written"] == 0 and r["finalized"]
    assert manifest.read_bytes() == before


def test_strict_holds_on_resume(data, tmp_path):
    csv = pd.read_csv(data / "train.csv")
    extra = csv.iloc[[0]].assign(sequence_id=123456789)
    pd.concat([csv, extra]).to_csv(data / "train.csv", index=False)
    fresh = tmp_path / "fresh"
    assert convert(data, fresh, "num_workers=0")["missing_in_parquet"] == 1
    kept = tree_bytes(fresh)
    with pytest.raises(InputError) as e:
        convert(data, fresh, "num_workers=0", "strict=true")
    parquet = data / csv.path.iloc[0]
    assert str(e.value) == f"{parquet}: sequence 123456789: in the CSV but not in the parquet file (strict=true)"
    assert tree_bytes(fresh) == kept  # nothing was rewritten, the manifest included
