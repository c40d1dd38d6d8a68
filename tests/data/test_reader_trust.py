"""The readers believe only the manifest: a fold count that disagrees, a partial tree, extra,
missing or resized shards, wrong paths and damaged index files are errors naming the file."""

from __future__ import annotations
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
import pytest
from aslfr.data.datasets import TFRecordIndexed, TFRecordShards, fold_files
from aslfr.format.manifest import ManifestError
from aslfr.format.tfrecord import CorruptRecordError
from aslfr.source.synthetic import SplitSpec, generate
from conftest import convert


@pytest.fixture
def data(tmp_path) -> Path:
    return generate(tmp_path / "data", SplitSpec(3, 10, 6, 6), None, seed=11)


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
