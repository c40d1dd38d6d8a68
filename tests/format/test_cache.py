"""The readers' local cache (`cache_dir=`) owns `{cache_dir}/aslfr-cache-v1/` and nothing else:
a user's files and folders in `cache_dir` survive eviction. Its local faults name the cache file,
and an entry damaged on the local disk is fetched once more (moto's S3 server on 127.0.0.1)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

pytest.importorskip("moto.server", reason="moto[server] is not installed (a test extra: pip install -e '.[test]')")
pytest.importorskip("s3fs", reason="s3fs is not installed (the s3 extra: pip install -e '.[s3,test]')")

from buckets import new_bucket, s3  # noqa: E402

import aslfr  # noqa: E402
from aslfr.format import cache as cache_module  # noqa: E402
from aslfr.format.cache import OWNED  # noqa: E402
from aslfr.format.tfrecord import CorruptRecordError  # noqa: E402


@pytest.fixture(autouse=True)
def _env(s3_env):
    pass


@pytest.fixture
def train(converted) -> Path:
    return converted / "tfrecords" / "train"


@pytest.fixture
def url(train) -> str:
    return f"{new_bucket(train, 'train', skip=('.aslfr',))}/train"


def _ids(ds) -> list[int]:
    return [int(x["sequence_id"]) for x in ds]


def test_eviction_leaves_the_users_files_and_folders_alone(train, url, tmp_path):
    """The issue's reproduction: old files and a subfolder in cache_dir, a limit that forces evictions."""
    scratch = tmp_path / "scratch"
    (scratch / "sub").mkdir(parents=True)
    (scratch / "my_notes.txt").write_text("precious\n")
    (scratch / "checkpoint.pt").write_text("x\n")
    for p in (scratch / "my_notes.txt", scratch / "checkpoint.pt"):
        os.utime(p, (1577836800, 1577836800))  # 2020-01-01
    biggest = max(p.stat().st_size + p.with_suffix(".tfindex").stat().st_size for p in train.glob("*.tfrec"))
    train_files, _ = aslfr.fold_files(url, valid_fold=0)
    ds = aslfr.TFRecordShards(train_files, cache_dir=scratch, cache_limit=2 * biggest)
    assert _ids(ds) == _ids(aslfr.TFRecordShards(aslfr.fold_files(train, valid_fold=0)[0]))
    assert (scratch / "my_notes.txt").read_text() == "precious\n" and (scratch / "checkpoint.pt").read_text() == "x\n"
    assert (scratch / "sub").is_dir()
    kept = list((scratch / OWNED).iterdir())
    assert 0 < sum(p.stat().st_size for p in kept) <= 2 * biggest < sum(p.stat().st_size for p in train.iterdir()
                                                                        if p.suffix in (".tfrec", ".tfindex"))


def test_a_full_cache_disk_names_the_cache_file(url, tmp_path, monkeypatch):
    """Writes into the cache fail with ENOSPC (/dev/full): the error names the cache entry and says
    its file system is full, not the bucket's object."""
    real = open

    def full(path, mode="r", *a, **kw):
        return real("/dev/full", mode, *a, **kw) if "w" in mode and OWNED in str(path) else real(path, mode, *a, **kw)

    monkeypatch.setattr(cache_module, "open", full, raising=False)
    with pytest.raises(OSError) as e:
        list(aslfr.TFRecordShards(url, cache_dir=tmp_path / "cache"))
    assert e.value.errno == errno.ENOSPC and e.value.filename.startswith(str(tmp_path / "cache" / OWNED))
    assert "is full" in e.value.strerror and "s3://" not in str(e.value)


def test_a_damaged_cache_entry_is_fetched_once_more(train, url, tmp_path):
    cache = tmp_path / "cache"
    expected = _ids(aslfr.TFRecordShards(train))
    assert _ids(aslfr.TFRecordShards(url, cache_dir=cache)) == expected
    entries = sorted((cache / OWNED).glob("*.tfrec"))
    for p in entries:  # one byte flipped in every cached shard, sizes kept
        data = bytearray(p.read_bytes())
        data[len(data) // 2] ^= 0xFF
        p.write_bytes(bytes(data))
    assert _ids(aslfr.TFRecordShards(url, cache_dir=cache)) == expected
    assert {p.name.split(".", 2)[2]: p.read_bytes() for p in entries} == \
        {p.name: p.read_bytes() for p in train.glob("*.tfrec")}


def test_a_damaged_entry_of_a_damaged_object_is_an_error_naming_the_url(train, url, tmp_path):
    cache = tmp_path / "cache"
    shard = sorted(train.glob("*.tfrec"))[0]
    target = f"{url}/{shard.name}"
    list(aslfr.TFRecordShards(target, cache_dir=cache))
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (entry,) = (cache / OWNED).glob(f"*.{shard.name}")
    entry.write_bytes(bytes(data))
    s3().pipe_file(target.removeprefix("s3://"), bytes(data))
    with pytest.raises(CorruptRecordError, match=f"^{target}: downloaded {len(data)} bytes with CRC32C"):
        list(aslfr.TFRecordShards(target, cache_dir=cache))


def test_a_damaged_cached_index_is_fetched_once_more(train, url, tmp_path):
    cache = tmp_path / "cache"
    assert len(aslfr.TFRecordIndexed(url, cache_dir=cache)) == 48
    for p in (cache / OWNED).glob("*.tfindex"):
        p.write_bytes(p.read_bytes().replace(b"0", b"1", 1))
    ds = aslfr.TFRecordIndexed(url, cache_dir=cache)
    assert len(ds) == 48 and int(ds[47]["sequence_id"]) == int(aslfr.TFRecordIndexed(train)[47]["sequence_id"])
