"""Trust in what is on disk: resume never keeps stale shards, readers believe only the manifest,
concurrent runs into one out_dir leave a correct tree, and index files are checked before use."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest

from aslfr.data.datasets import TFRecordIndexed, TFRecordShards, fold_files
from aslfr.format.manifest import ManifestError
from aslfr.format.tfrecord import CorruptRecordError
from aslfr.source.synthetic import SplitSpec, generate
from conftest import convert, tree_bytes


@pytest.fixture
def data(tmp_path) -> Path:
    return generate(tmp_path / "data", SplitSpec(3, 10, 6, 6), None, seed=11)


def _fresh(data: Path, tmp_path: Path, name: str) -> dict[str, bytes]:
    out = tmp_path / name
    shutil.rmtree(out, ignore_errors=True)
    convert(data, out, "num_workers=0")
    return tree_bytes(out / "tfrecords/train")


def _change_phrase(data: Path) -> None:
    csv = pd.read_csv(data / "train.csv", keep_default_na=False)
    csv.loc[4, "phrase"] = "a changed phrase"
    csv.to_csv(data / "train.csv", index=False)


def _change_participant(data: Path) -> None:
    csv = pd.read_csv(data / "train.csv", keep_default_na=False)
    csv.loc[csv.participant_id == csv.participant_id.iloc[0], "participant_id"] = 999
    csv.to_csv(data / "train.csv", index=False)


def _change_column(data: Path) -> None:
    path = data / pd.read_csv(data / "train.csv").path.iloc[-1]
    df = pd.read_parquet(path)
    df["x_right_hand_0"] = df["x_right_hand_0"] + 0.25
    df.to_parquet(path)


@pytest.mark.parametrize("change", [_change_phrase, _change_participant, _change_column])
def test_rerun_after_an_input_change_equals_a_fresh_conversion(data, tmp_path, change):
    out = tmp_path / "out"
    convert(data, out, "num_workers=0")
    before = tree_bytes(out / "tfrecords/train")
    change(data)
    r = convert(data, out, "num_workers=0")  # defaults: resume=true
    after = tree_bytes(out / "tfrecords/train")
    assert after != before
    assert after == _fresh(data, tmp_path, "fresh")
    assert r["shards_written"] > 0
    subprocess.run([sys.executable, "-m", "aslfr.verify", str(out)], check=True, capture_output=True)


def test_resume_rewrites_exactly_the_changed_file(data, tmp_path):
    """A parquet column changes in the last file: only that file's shards are rewritten."""
    out = tmp_path / "out"
    convert(data, out, "num_workers=0")
    d = out / "tfrecords/train"
    before = tmp_path / "before"  # hard links keep the old files' inodes alive, so none is reused
    before.mkdir()
    for p in d.glob("*.tfrec"):
        os.link(p, before / p.name)
    _change_column(data)
    r = convert(data, out, "num_workers=0")
    assert r["files_resumed"] == 2 and r["shards_resumed"] + r["shards_written"] == 12
    rewritten = {p.name for p in d.glob("*.tfrec")
                 if not (before / p.name).exists() or not os.path.samefile(before / p.name, p)}
    assert rewritten and {int(n.split(".")[0]) // 4 for n in rewritten} == {2}
    assert r["shards_written"] == 4


# -- the reader believes the manifest -------------------------------------------------------------

@pytest.fixture
def finished(data, tmp_path) -> Path:
    convert(data, tmp_path / "out", "num_workers=0")
    return tmp_path / "out/tfrecords/train"


def test_fold_count_mismatch_is_an_error(data, tmp_path):
    convert(data, tmp_path / "out", "num_workers=0", "folds=5")
    d = tmp_path / "out/tfrecords/train"
    with pytest.raises(ManifestError, match=r"folds=4 given, but its manifest.json says .* 5 folds"):
        fold_files(d, valid_fold=0, folds=4)
    train, valid = fold_files(d, valid_fold=4)
    assert {x["fold"] for x in TFRecordShards(valid, torch_values=False)} == {4}


def test_partial_tree_is_an_error_unless_allowed(data, tmp_path):
    """A run that failed on a later file leaves shards and no manifest: not read as complete."""
    convert(data, tmp_path / "out", "num_workers=0", "shard_index=0", "shard_count=2", finalize=False)
    d = tmp_path / "out/tfrecords/train"
    assert list(d.glob("*.tfrec")) and not (d / "manifest.json").exists()
    for make in (lambda: TFRecordShards(d), lambda: TFRecordIndexed(d), lambda: fold_files(d, folds=4)):
        with pytest.raises(ManifestError, match=f"{d}: no manifest.json"):
            make()
    with pytest.warns(UserWarning, match="allow_partial: reading the"):
        ds = TFRecordShards(d, allow_partial=True, torch_values=False)
    assert len(list(ds)) == len(ds) > 0
    with pytest.raises(ManifestError, match="no manifest.json to take the fold count from; pass folds="):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fold_files(d, allow_partial=True)


def test_extra_or_missing_or_resized_shards_are_errors(finished):
    d = finished
    shards = sorted(d.glob("*.tfrec"))
    extra = d / "99.1.tfrec"
    shutil.copyfile(shards[0], extra)
    with pytest.raises(ManifestError, match="1 shard\\(s\\) not in manifest.json, first 99.1.tfrec"):
        TFRecordShards(d)
    extra.unlink()
    data = shards[0].read_bytes()
    shards[0].write_bytes(data[:-3])
    with pytest.raises(ManifestError, match=f"shard {shards[0].name} has {len(data) - 3} bytes, manifest.json says {len(data)}"):
        TFRecordShards(d)
    with pytest.raises(ManifestError, match="manifest.json says"):
        TFRecordShards(shards[0])  # a single shard file is checked against its folder's manifest too
    shards[0].unlink()
    with pytest.raises(ManifestError, match=f"shard {shards[0].name} listed in manifest.json is missing"):
        fold_files(d)


def test_wrong_empty_or_missing_paths_are_errors(finished, tmp_path):
    out = finished.parent.parent
    with pytest.raises(ManifestError, match=f"{out}: no manifest.json .*records folders are"):
        TFRecordShards(out)  # the output folder instead of out/tfrecords/train
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match="no manifest.json"):
        TFRecordShards(tmp_path / "empty")
    with pytest.raises(ManifestError, match="no shard files"):
        TFRecordShards(tmp_path / "empty", allow_partial=True)
    with pytest.raises(ManifestError, match="no such records folder or shard file"):
        TFRecordShards(tmp_path / "nope")
    with pytest.raises(ManifestError, match="no such records folder or shard file"):
        fold_files(finished, sup_dir=tmp_path / "nope")


# -- index files ------------------------------------------------------------------------------------

def _biggest(d: Path) -> Path:
    return max(d.glob("*.tfrec"), key=lambda p: int(p.name.split(".")[1]))


def test_index_cut_to_half_its_lines(finished):
    shard = _biggest(finished)
    idx = shard.with_suffix(".tfindex")
    lines = idx.read_text().splitlines(keepends=True)
    idx.write_text("".join(lines[: len(lines) // 2]))
    with pytest.raises(CorruptRecordError, match=f"{idx}: index file differs from manifest.json"):
        TFRecordIndexed(finished)
    res = subprocess.run([sys.executable, "-m", "aslfr.verify", str(finished)], capture_output=True, text=True)
    assert res.returncode == 1 and idx.name in res.stdout


def test_index_cut_mid_line(finished):
    shard = _biggest(finished)
    idx = shard.with_suffix(".tfindex")
    idx.write_bytes(idx.read_bytes()[:-4])
    with pytest.raises(CorruptRecordError, match=str(idx)):
        TFRecordIndexed(finished)
    with pytest.raises(CorruptRecordError, match=str(idx)):
        list(TFRecordShards(shard, rank=1, world_size=3))  # split over ranks: needs the index
    res = subprocess.run([sys.executable, "-m", "aslfr.verify", str(finished)], capture_output=True, text=True)
    assert res.returncode == 1 and idx.name in res.stdout


def test_index_without_manifest_entry_is_still_validated(finished, tmp_path):
    """With allow_partial (no manifest to compare with), the index is checked against the shard."""
    (finished / "manifest.json").unlink()
    shard = _biggest(finished)
    idx = shard.with_suffix(".tfindex")
    lines = idx.read_text().splitlines(keepends=True)
    idx.write_text("".join(lines[:-1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(CorruptRecordError, match=f"{idx}: {len(lines) - 1} entries, its shard has {len(lines)}"):
            TFRecordIndexed(finished, allow_partial=True)


def test_indexed_errors_name_the_record_within_its_file(finished):
    shards = sorted(finished.glob("*.tfrec"), key=lambda p: int(p.name.split(".")[0]))
    ds = TFRecordIndexed(finished)
    last = shards[-1]
    n = int(last.name.split(".")[1])
    data = bytearray(last.read_bytes())
    data[-6] ^= 0xFF  # inside the last record's payload
    last.write_bytes(bytes(data))  # same size: the manifest's size check passes, the CRC does not
    with pytest.raises(CorruptRecordError, match=f"{last}: record {n - 1} at byte"):
        ds[len(ds) - 1]


# -- concurrent runs --------------------------------------------------------------------------------

def test_two_identical_runs_at_once(data, tmp_path):
    clean = _fresh(data, tmp_path, "clean")
    for trial in range(4):
        out = tmp_path / f"out{trial}"
        cmd = [sys.executable, "-m", "aslfr.convert", f"data_dir={data}", f"out_dir={out}", "progress=false",
               f"num_workers={trial % 2 * 2}"]
        procs = [subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        results = [p.communicate(timeout=300) for p in procs]
        assert all(p.returncode == 0 for p in procs), results
        res = subprocess.run([sys.executable, "-m", "aslfr.verify", str(out)], capture_output=True, text=True)
        assert res.returncode == 0, res.stdout
        assert tree_bytes(out / "tfrecords/train") == clean
        assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
