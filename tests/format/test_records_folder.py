"""`RecordsFolder`: the manifest read and checked once. Readers refuse a manifest whose shard names
leave the folder or disagree with its folds, before reading any shard; a reader over N shards in a
bucket (moto's S3 server on 127.0.0.1) reads the manifest once and each index once."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from conftest import convert

import aslfr
from aslfr.data.datasets import shard_files
from aslfr.format.folder import RecordsFolder
from aslfr.format.manifest import ManifestError
from aslfr.format.store import FsspecStore, LocalStore
from aslfr.source.synthetic import SplitSpec, generate

READERS = {
    "fold_files": lambda d: aslfr.fold_files(d, valid_fold=0),
    "shard_files": shard_files,
    "TFRecordShards": aslfr.TFRecordShards,
    "TFRecordIndexed": aslfr.TFRecordIndexed,
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("folder")
    data = generate(root / "data", SplitSpec(2, 8, 4, 6), SplitSpec(1, 8, 4, 4), seed=3)
    convert(data, root / "out", "num_workers=0")
    return root / "out" / "tfrecords" / "train"


@pytest.fixture
def train(finished, tmp_path) -> Path:
    """A private copy of the records folder, beside an empty folder `outside`."""
    d = Path(shutil.copytree(finished, tmp_path / "train"))
    (tmp_path / "outside").mkdir()
    return d


def _edit(d: Path, fn) -> None:
    m = json.loads((d / "manifest.json").read_text())
    fn(m)
    (d / "manifest.json").write_text(json.dumps(m, indent=1, sort_keys=True) + "\n")


def _reads(monkeypatch) -> Counter:
    """Every file read through any store, by name, from now on."""
    seen: Counter = Counter()
    for kind in (LocalStore, FsspecStore):
        for method in ("read_bytes", "open_read"):
            real = getattr(kind, method)

            def counted(self, name, *a, _real=real, **kw):
                seen[name] += 1
                return _real(self, name, *a, **kw)

            monkeypatch.setattr(kind, method, counted)
    return seen


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("outside", ["../outside/{}", "/{dir}/outside/{}"])
def test_a_shard_name_outside_the_folder_is_refused_before_any_shard_is_read(train, reader, outside, monkeypatch):
    first = sorted(train.glob("*.tfrec"), key=lambda p: int(p.name.split(".")[0]))[0]
    shutil.move(first, train.parent / "outside" / first.name)  # what the name points at, and only there
    name = outside.format(first.name, dir=str(train.parent).strip("/"))
    _edit(train, lambda m: m["shards"][0].update(name=name))
    seen = _reads(monkeypatch)
    with pytest.raises(ManifestError) as e:
        READERS[reader](train)
    assert str(e.value).startswith(f"{train / 'manifest.json'}: {name}: not a shard name "), str(e.value)
    assert set(seen) == {"manifest.json"}


@pytest.mark.parametrize("reader", READERS)
def test_folds_that_disagree_with_the_shard_numbers_are_refused(train, reader, monkeypatch):
    """Two entries of different folds swap their folds: fold 0's files would be others."""
    def swap(m):
        a = m["shards"][0]
        b = next(s for s in m["shards"] if s["fold"] != a["fold"])
        a["fold"], b["fold"] = b["fold"], a["fold"]

    _edit(train, swap)
    seen = _reads(monkeypatch)
    with pytest.raises(ManifestError, match=r"do not give shard number \d+ with folds=4 \(\d+ problem\(s\); "
                                            r"`aslfr verify` lists them\)$"):
        READERS[reader](train)
    assert set(seen) == {"manifest.json"}


def test_the_index_of_a_shard_is_read_once_and_checked(train):
    folder = RecordsFolder.at(train)
    name = folder.shards()[0]
    assert folder.index(name) is folder.index(name) and len(folder.index(name)) == int(name.split(".")[1])
    assert RecordsFolder.at(train.parent).manifest is None


def test_an_indexed_reader_over_a_bucket_reads_the_manifest_once_and_each_index_once(train, s3_env, monkeypatch):
    """TFRecordIndexed over the N shards of a bucket folder: 1 manifest read, 1 listing, N index
    reads, and nothing else (before: N + 1 manifest loads and 2 reads of each index)."""
    from buckets import new_bucket

    url = f"{new_bucket(train, 'train')}/train"
    seen = _reads(monkeypatch)
    listings = []
    real = FsspecStore._entries
    monkeypatch.setattr(FsspecStore, "_entries", lambda self: listings.append(self.root) or real(self))
    ds = aslfr.TFRecordIndexed(url)
    n = len(ds.files)
    assert n > 4 and seen.pop("manifest.json") == 1 and listings == [url]
    assert seen == Counter({p.name.replace(".tfrec", ".tfindex"): 1 for p in train.glob("*.tfrec")})
    assert len(ds) == sum(int(p.name.split(".")[1]) for p in train.glob("*.tfrec"))


def test_a_reader_over_shard_files_of_one_folder_lists_it_once(train, s3_env, monkeypatch):
    """fold_files' lists given to a reader: each shard named, one listing and one manifest read for
    all of them."""
    from buckets import new_bucket

    url = f"{new_bucket(train, 'train')}/train"
    files, _ = aslfr.fold_files(url, valid_fold=0)
    seen = _reads(monkeypatch)
    listings = []
    real = FsspecStore._entries
    monkeypatch.setattr(FsspecStore, "_entries", lambda self: listings.append(self.root) or real(self))
    ds = aslfr.TFRecordShards(files)
    assert ds.files == files and len(files) > 4
    assert seen == Counter({"manifest.json": 1}) and listings == [url]
