"""Training from a bucket with a local cache (`cache_dir=`), against moto's S3 server on 127.0.0.1:
every record exactly once over 2 node processes x 2 workers (forked) and over spawned workers; the
cache holds the shards' exact bytes, serves later epochs with the store gone, evicts least recently
used files, never serves a changed object's old copy, and never keeps a download that disagrees
with the manifest. The cache owns `{cache_dir}/aslfr-cache-v1/` and nothing else: a user's files and
folders in `cache_dir` survive eviction. Its local faults name the cache file, and an entry damaged
on the local disk is fetched once more. The local reader over the same converted records is the
reference."""

from __future__ import annotations

import errno
import io
import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from torch.utils.data import DataLoader

pytest.importorskip("moto.server", reason="moto[server] is not installed (a test extra: pip install -e '.[test]')")
pytest.importorskip("s3fs", reason="s3fs is not installed (the s3 extra: pip install -e '.[s3,test]')")

from buckets import new_bucket, s3  # noqa: E402
from conftest import ROOT  # noqa: E402
from compare import same_items  # noqa: E402

from aslfr.data.datasets import TFRecordIndexed, TFRecordShards, fold_files  # noqa: E402
from aslfr.format import cache as cache_module  # noqa: E402
from aslfr.format import storage  # noqa: E402
from aslfr.format.cache import OWNED  # noqa: E402
from aslfr.format.store import FsspecStore  # noqa: E402
from aslfr.format.tfrecord import CorruptRecordError  # noqa: E402


@pytest.fixture(autouse=True)
def _env(s3_env):
    pass


@pytest.fixture
def train(converted) -> Path:
    return converted / "tfrecords" / "train"


@pytest.fixture
def url(train) -> str:
    """A fresh bucket (tests may change or delete its objects) holding the train records under `train/`."""
    return f"{new_bucket(train, 'train', skip=('.aslfr',))}/train"


def _shards(train: Path) -> list[Path]:
    return sorted(train.glob("*.tfrec"), key=lambda p: int(p.name.split(".")[0]))


def _records_files(train: Path) -> dict[str, bytes]:
    """The shards and their index files, by name: what a cache that read them all holds."""
    return {p.name: p.read_bytes() for p in train.iterdir() if p.suffix in (".tfrec", ".tfindex")}


def _cached(cache: Path) -> dict[str, bytes]:
    """The cache's files as {original file name: bytes} (entries are named `{url hash}.{crc}.{name}`);
    a file left under a temporary name (a leading ".") fails the test."""
    files = sorted((cache / OWNED).iterdir())
    assert not [p.name for p in files if p.name.startswith(".")]
    return {p.name.split(".", 2)[2]: p.read_bytes() for p in files}


def _ids(ds, **kw) -> list[int]:
    return [int(x["sequence_id"]) for x in DataLoader(ds, batch_size=None, timeout=120, **kw)]


_NODE = """
import json, sys
from torch.utils.data import DataLoader
from aslfr.data.datasets import TFRecordShards
ds = TFRecordShards(sys.argv[1], shuffle=True, seed=3, shuffle_buffer=4, cache_dir=sys.argv[2] or None)
out = []
for epoch in (0, 1):
    ds.set_epoch(epoch)
    loader = DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context="fork", timeout=120)
    out.append([int(x["sequence_id"]) for x in loader])
print(json.dumps(out))
"""


@pytest.mark.parametrize("cached", [False, True])
def test_two_node_processes_see_each_record_once(train, url, tmp_path, cached):
    """2 processes (RANK / WORLD_SIZE, as torchrun starts them) x 2 forked workers, run at once and
    sharing one cache folder; 2 epochs each. With the cache, it ends holding every shard's and every
    index's bytes."""
    expected = sorted(int(x["sequence_id"]) for x in TFRecordShards(train))
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WORLD_SIZE": "2"}
    nodes = [subprocess.Popen([sys.executable, "-c", _NODE, url, str(cache) if cached else ""], cwd=tmp_path,
                              env={**env, "RANK": str(rank)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for rank in (0, 1)]
    outs = []
    for node in nodes:
        out, err = node.communicate(timeout=300)
        assert node.returncode == 0, err[-3000:]
        outs.append(json.loads(out))
    for epoch in (0, 1):
        seen = outs[0][epoch] + outs[1][epoch]
        assert sorted(seen) == expected and len(expected) == 48
        assert set(outs[0][epoch]).isdisjoint(outs[1][epoch])
    if cached:
        expected = _records_files(train)
        assert _cached(cache) == expected and len(expected) == 24
    else:
        assert not cache.exists()


@pytest.mark.parametrize("cached", [False, True])
def test_spawned_workers_see_each_record_once(train, url, tmp_path, cached):
    """Spawned workers start with no client: each builds its own (the parent's was used to list)."""
    expected = sorted(int(x["sequence_id"]) for x in TFRecordShards(train))
    kw = dict(cache_dir=tmp_path / "cache") if cached else {}
    seen = []
    for rank in (0, 1):
        ds = TFRecordShards(url, shuffle=True, seed=5, shuffle_buffer=4, rank=rank, world_size=2, **kw)
        seen += _ids(ds, num_workers=2, multiprocessing_context="spawn")
    assert sorted(seen) == expected and len(expected) == 48
    if cached:
        assert _cached(tmp_path / "cache") == _records_files(train)


def test_later_epochs_read_the_cache_only(train, url, tmp_path):
    """Epoch 0 (2 forked workers) fills the cache; then every object is deleted from the store, and
    epochs 1 and 2, whose shuffles split other shards between the workers (through their indexes),
    equal the local reader's."""
    kw = dict(shuffle=True, seed=9, shuffle_buffer=8)
    local = TFRecordShards(train, **kw)
    remote = TFRecordShards(url, cache_dir=tmp_path / "cache", **kw)
    loader = dict(batch_size=None, num_workers=2, multiprocessing_context="fork", timeout=120)
    assert _ids(remote, num_workers=2, multiprocessing_context="fork") == _ids(local, num_workers=2)
    assert _cached(tmp_path / "cache") == _records_files(train)

    def split(epoch):  # the shards the 2 workers share in an epoch (read through their indexes)
        return {i for slot in (0, 1) for i, a, b in remote._ranges(slot, 2, epoch) if b - a < remote.counts[i]}
    assert split(1) - split(0) and split(2) - split(0)
    s3().rm(url.removeprefix("s3://"), recursive=True)
    assert not storage.glob(url, "*")
    for epoch in (1, 2):
        local.set_epoch(epoch)
        remote.set_epoch(epoch)
        a, b = list(DataLoader(remote, **loader)), list(DataLoader(local, **loader))
        assert len(a) == len(b) > 0
        for x, y in zip(a, b):
            same_items(x, y)


def test_indexed_reader_caches_shards_and_indexes_byte_for_byte(train, url, tmp_path):
    local = TFRecordIndexed(train)
    remote = TFRecordIndexed(url, cache_dir=tmp_path / "cache")
    assert len(remote) == len(local) == 48
    for i in range(48):
        same_items(remote[i], local[i])
    expected = _records_files(train)
    assert _cached(tmp_path / "cache") == expected and len(expected) == 24


def test_local_paths_ignore_the_cache(train, tmp_path):
    items = list(TFRecordShards(train, cache_dir=tmp_path / "cache", rank=0, world_size=3))
    assert len(items) == 16
    assert not (tmp_path / "cache").exists()


def test_the_size_limit_evicts_the_least_recently_used(train, url, tmp_path):
    """Shards a and s read (each with its index), a again (a use), then l: with room for a and l, the
    least recently used (s, then its index if need be) go. s is the smaller of s and l, so a and s fit.
    A shard larger than the limit is read from the store, not kept."""
    def size(p: Path) -> int:
        return p.stat().st_size + p.with_suffix(".tfindex").stat().st_size

    a, s, l = _shards(train)[0], *sorted(_shards(train)[1:3], key=size)
    assert size(s) < size(l)
    cache = tmp_path / "cache"

    def read(*files):
        ds = TFRecordShards([f"{url}/{f.name}" for f in files], cache_dir=cache, cache_limit=size(a) + size(l))
        return [int(x["sequence_id"]) for x in ds]

    assert read(a, s) == [int(x["sequence_id"]) for x in TFRecordShards([a, s])]
    assert set(_cached(cache)) == {a.name, s.name, a.with_suffix(".tfindex").name, s.with_suffix(".tfindex").name}
    read(a)
    read(l)
    assert _cached(cache) == {p.name: p.read_bytes() for f in (a, l) for p in (f, f.with_suffix(".tfindex"))}

    small = tmp_path / "small"
    big = max(_shards(train), key=lambda p: p.stat().st_size)
    ds = TFRecordShards(f"{url}/{big.name}", cache_dir=small, cache_limit=big.stat().st_size - 1)
    for x, y in zip(ds, TFRecordShards(big), strict=True):
        same_items(x, y)
    assert not small.exists()


def test_a_changed_object_is_not_served_stale(train, url, tmp_path):
    """Shards 0.3 and 1.3 (3 records each) swap contents in the store, and the manifest says so:
    a reader built afterwards, on the same cache, reads the new bytes."""
    a, b = train / "0.3.tfrec", train / "1.3.tfrec"
    cache = tmp_path / "cache"
    before = [int(x["sequence_id"]) for x in TFRecordShards(url, cache_dir=cache)]
    assert before == [int(x["sequence_id"]) for x in TFRecordShards(train)]
    assert _cached(cache)[a.name] == a.read_bytes()

    m = json.loads((train / "manifest.json").read_text())
    was = {e["name"]: dict(e) for e in m["shards"]}
    for e in m["shards"]:
        if e["name"] in (a.name, b.name):
            other = b.name if e["name"] == a.name else a.name
            e.update({k: was[other][k] for k in ("bytes", "crc32c", "index_bytes", "index_crc32c")})
    assert was[a.name]["crc32c"] != was[b.name]["crc32c"]
    fs = s3()
    fs.pipe_file(f"{url}/manifest.json".removeprefix("s3://"), json.dumps(m).encode())
    for name, other in ((a.name, b.name), (b.name, a.name)):
        fs.pipe_file(f"{url}/{name}".removeprefix("s3://"), (train / other).read_bytes())
        fs.pipe_file(f"{url}/{name}".removeprefix("s3://").replace(".tfrec", ".tfindex"),
                     (train / other.replace(".tfrec", ".tfindex")).read_bytes())

    after = [int(x["sequence_id"]) for x in TFRecordShards(f"{url}/{a.name}", cache_dir=cache)]
    assert after == [int(x["sequence_id"]) for x in TFRecordShards(b)] != before[:3]
    old_and_new = sorted(v for p, v in ((p.name, p.read_bytes()) for p in (cache / OWNED).iterdir())
                         if p.endswith(a.name))
    assert old_and_new == sorted([a.read_bytes(), b.read_bytes()])


def test_a_corrupted_download_is_an_error_naming_the_url_and_is_not_cached(train, url, tmp_path):
    """One byte flipped in the stored object (its size as the manifest says), then an object cut short
    after the reader was built: each download disagrees with the manifest's CRC32C, every try."""
    shard = _shards(train)[4]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target = f"{url}/{shard.name}"
    s3().pipe_file(target.removeprefix("s3://"), bytes(data))
    cache = tmp_path / "cache"
    with pytest.raises(CorruptRecordError, match=f"^{target}: downloaded {len(data)} bytes with CRC32C [0-9a-f]{{8}}, "
                                                 f"manifest.json says {len(data)} bytes with CRC32C [0-9a-f]{{8}} "
                                                 r"\(not cached\)$"):
        list(TFRecordShards(target, cache_dir=cache))
    assert list((cache / OWNED).iterdir()) == []

    other = _shards(train)[5]
    ds = TFRecordIndexed(f"{url}/{other.name}", cache_dir=cache)  # its index is cached as it is built
    s3().pipe_file(f"{url}/{other.name}".removeprefix("s3://"), other.read_bytes()[:-10])
    with pytest.raises(CorruptRecordError, match=f"^{url}/{other.name}: downloaded {other.stat().st_size - 10} bytes"):
        ds[0]
    assert set(_cached(cache)) == {other.name.replace(".tfrec", ".tfindex")}


def test_a_bad_first_download_is_retried(train, url, tmp_path, monkeypatch):
    """The first transfer returns zeros of the right size, the next the object: the read succeeds,
    and the cache holds the object's bytes."""
    real, calls = FsspecStore.open_read, []

    @contextmanager
    def flaky(store, name, *a, **kw):
        calls.append(store.where(name))
        if len(calls) == 1:
            n = store.size(name)
            yield io.BytesIO(bytes(n)), n
        else:
            with real(store, name, *a, **kw) as opened:
                yield opened

    shard = _shards(train)[2]
    ds, local = TFRecordShards(f"{url}/{shard.name}", cache_dir=tmp_path / "cache"), list(TFRecordShards(shard))
    monkeypatch.setattr(FsspecStore, "open_read", flaky)
    for a, b in zip(ds, local, strict=True):
        same_items(a, b)
    assert calls == [f"{url}/{shard.name}"] * 2 + [f"{url}/{shard.with_suffix('.tfindex').name}"]
    assert _cached(tmp_path / "cache")[shard.name] == shard.read_bytes()


def test_bad_cache_arguments(url, tmp_path):
    with pytest.raises(ValueError, match="^cache_limit must be a number of bytes >= 1"):
        TFRecordShards(url, cache_dir=tmp_path, cache_limit=0)
    with pytest.raises(ValueError, match="^cache_limit=100 given without cache_dir=$"):
        TFRecordIndexed(url, cache_limit=100)
    with pytest.raises(ValueError, match="^cache_dir must be a local folder, got s3://"):
        TFRecordShards(url, cache_dir="s3://b/cache")


def _read(ds) -> list[int]:
    """The sequence ids of a reader's items, read in this process."""
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
    train_files, _ = fold_files(url, valid_fold=0)
    ds = TFRecordShards(train_files, cache_dir=scratch, cache_limit=2 * biggest)
    assert _read(ds) == _read(TFRecordShards(fold_files(train, valid_fold=0)[0]))
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
        list(TFRecordShards(url, cache_dir=tmp_path / "cache"))
    assert e.value.errno == errno.ENOSPC and e.value.filename.startswith(str(tmp_path / "cache" / OWNED))
    assert "is full" in e.value.strerror and "s3://" not in str(e.value)


def test_a_damaged_cache_entry_is_fetched_once_more(train, url, tmp_path):
    cache = tmp_path / "cache"
    expected = _read(TFRecordShards(train))
    assert _read(TFRecordShards(url, cache_dir=cache)) == expected
    entries = sorted((cache / OWNED).glob("*.tfrec"))
    for p in entries:  # one byte flipped in every cached shard, sizes kept
        data = bytearray(p.read_bytes())
        data[len(data) // 2] ^= 0xFF
        p.write_bytes(bytes(data))
    assert _read(TFRecordShards(url, cache_dir=cache)) == expected
    assert {p.name.split(".", 2)[2]: p.read_bytes() for p in entries} == \
        {p.name: p.read_bytes() for p in train.glob("*.tfrec")}


def test_a_damaged_entry_of_a_damaged_object_is_an_error_naming_the_url(train, url, tmp_path):
    cache = tmp_path / "cache"
    shard = sorted(train.glob("*.tfrec"))[0]
    target = f"{url}/{shard.name}"
    list(TFRecordShards(target, cache_dir=cache))
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (entry,) = (cache / OWNED).glob(f"*.{shard.name}")
    entry.write_bytes(bytes(data))
    s3().pipe_file(target.removeprefix("s3://"), bytes(data))
    with pytest.raises(CorruptRecordError, match=f"^{target}: downloaded {len(data)} bytes with CRC32C"):
        list(TFRecordShards(target, cache_dir=cache))


def test_a_damaged_cached_index_is_fetched_once_more(train, url, tmp_path):
    cache = tmp_path / "cache"
    assert len(TFRecordIndexed(url, cache_dir=cache)) == 48
    for p in (cache / OWNED).glob("*.tfindex"):
        p.write_bytes(p.read_bytes().replace(b"0", b"1", 1))
    ds = TFRecordIndexed(url, cache_dir=cache)
    assert len(ds) == 48 and int(ds[47]["sequence_id"]) == int(TFRecordIndexed(train)[47]["sequence_id"])
