"""The readers' cases and buckets, the same against every store: test_object_storage.py (s3://, moto)
and test_gcs.py (gs://, fake-gcs-server) import them, and pytest runs them there with that module's
`store` fixture ((scheme, the server's environment)) and its per-test environment.
The local reader over the same records is what every URL read is compared with."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
from torch.utils.data import DataLoader

from buckets import client, new_bucket
from conftest import convert, tree_bytes
from compare import same_items

from aslfr.data.datasets import TFRecordIndexed, TFRecordShards, fold_files
from aslfr.format import storage
from aslfr.format.manifest import ManifestError
from aslfr.format.stats import StatsError, load_stats


def _filled(store, local, folder: str, **kw) -> str:
    """new_bucket of the module's store, from a session fixture (outside the per-test environment)."""
    scheme, env = store
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        return new_bucket(local, folder, scheme=scheme, **kw)


@pytest.fixture(scope="session")
def bucket(store, converted):
    """A bucket holding the `converted` fixture's output under `out/` (receipts left out)."""
    return _filled(store, converted, "out", skip=(".aslfr", ".hydra"))


@pytest.fixture(scope="session")
def data_bucket(store, small_data):
    """A bucket holding the `small_data` competition folder under `data/`."""
    return _filled(store, small_data, "data")


@pytest.mark.parametrize("sub", ["train", "sup"])
@pytest.mark.parametrize("shuffle", [False, True])
def test_shards_from_a_bucket_equal_the_local_folder(converted, bucket, sub, shuffle):
    kw = dict(shuffle=shuffle, seed=5, shuffle_buffer=8)
    local = list(TFRecordShards(converted / "tfrecords" / sub, **kw))
    remote_ds = TFRecordShards(f"{bucket}/out/tfrecords/{sub}/", **kw)
    assert all(isinstance(f, str) and f.startswith(f"{bucket}/out/tfrecords/{sub}/") for f in remote_ds.files)
    remote = list(remote_ds)
    assert len(remote) == len(local) > 0
    for a, b in zip(remote, local):
        same_items(a, b)


@pytest.mark.parametrize("world", [1, 2])
def test_each_record_once_over_forked_workers_and_ranks(converted, bucket, world):
    """The parent lists the bucket (its client used) before the workers fork: each worker must build
    its own. Ranks 1 and 2 start inside files, through the index (a ranged stream)."""
    expected = sorted(int(x["sequence_id"]) for x in TFRecordShards(converted / "tfrecords/train"))
    seen = []
    for rank in range(world):
        ds = TFRecordShards(f"{bucket}/out/tfrecords/train", shuffle=True, seed=3, shuffle_buffer=4,
                            rank=rank, world_size=world)
        loader = DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context="fork", timeout=120)
        seen += [int(x["sequence_id"]) for x in loader]
    assert sorted(seen) == expected and len(expected) == 48


def test_indexed_random_access_equals_local(converted, bucket):
    local = TFRecordIndexed(converted / "tfrecords/train")
    remote = TFRecordIndexed(f"{bucket}/out/tfrecords/train")
    assert len(remote) == len(local) == 48
    for i in (0, 47, 13, -1, 30, 1):
        same_items(remote[i], local[i])


def test_fold_files_and_stats_from_a_bucket_equal_local(converted, bucket):
    local = fold_files(converted / "tfrecords/train", valid_fold=1, sup_dir=converted / "tfrecords/sup")
    remote = fold_files(f"{bucket}/out/tfrecords/train", valid_fold=1, sup_dir=f"{bucket}/out/tfrecords/sup")
    for r, lo in zip(remote, local):
        assert [storage.name(u) for u in r] == [p.name for p in lo] and len(lo) > 0
        assert all(u.startswith(f"{bucket}/out/tfrecords/") for u in r)
    for r, lo in zip(load_stats(f"{bucket}/out/tfrecords/train"), load_stats(converted / "tfrecords/train")):
        assert r.dtype == np.float32 and np.array_equal(r, lo)


def test_missing_bucket_key_and_empty_objects_name_the_url(converted, bucket):
    scheme = bucket.split("://")[0]
    url = f"{scheme}://no-such-bucket-aslfr/out/tfrecords/train"
    with pytest.raises(ManifestError, match=f"^{url}: no such records folder or shard file$"):
        TFRecordShards(url)
    shard = f"{bucket}/out/tfrecords/train/999.1.tfrec"
    with pytest.raises(ManifestError, match=f"^{shard}: no such records folder or shard file$"):
        TFRecordIndexed(shard)
    with pytest.raises(FileNotFoundError, match=f"^{bucket}/out/tfrecords: no means.npy"):
        load_stats(f"{bucket}/out/tfrecords")

    empty = f"{bucket}/empty-{uuid.uuid4().hex[:8]}"
    for name in ("means.npy", "stds.npy", "manifest.json"):
        client(scheme).pipe_file(f"{empty}/{name}", b"")
    with pytest.raises(StatsError, match=f"^{empty}/means.npy: not a NumPy .npy array file$"):
        load_stats(empty)
    with pytest.raises(ManifestError, match=f"^{empty}/manifest.json: unreadable manifest"):
        TFRecordShards(empty)

    # a folder whose manifest lists a shard that is a 0-byte object
    broken = f"{bucket}/broken-{uuid.uuid4().hex[:8]}"
    train = converted / "tfrecords/train"
    first = sorted(train.glob("*.tfrec"), key=lambda p: int(p.name.split(".")[0]))[0]
    client(scheme).pipe_file(f"{broken}/manifest.json", (train / "manifest.json").read_bytes())
    for p in train.glob("*.tfrec"):
        client(scheme).pipe_file(f"{broken}/{p.name}", b"" if p == first else p.read_bytes())
    with pytest.raises(ManifestError, match=f"^{broken}: shard {first.name} has 0 bytes, manifest.json says "
                                            f"{first.stat().st_size}$"):
        TFRecordShards(broken)


def test_convert_from_a_bucket_equals_the_local_conversion(converted, data_bucket, tmp_path):
    """CSV and parquet read from the store by 2 forked workers (the parent's client used first, for the CSV
    and the parquet identities); the records, and the receipts' relative sources, as from disk."""
    src = f"{data_bucket}/data/"  # a trailing "/" is the same prefix
    for split in ("train", "supplemental"):
        convert(src, tmp_path, f"split={split}", "num_workers=2", "multiprocessing_context=fork")
    for sub in ("train", "sup"):
        local = tree_bytes(converted / "tfrecords" / sub)
        assert tree_bytes(tmp_path / "tfrecords" / sub) == local and len(local) > 3
        receipts = sorted((tmp_path / "tfrecords" / sub / ".aslfr").glob("*.json"))
        assert [r.read_bytes() for r in receipts] == \
               [(converted / "tfrecords" / sub / ".aslfr" / r.name).read_bytes() for r in receipts] and receipts
        assert json.loads(receipts[0].read_text())["source"].endswith(".parquet")
    assert (tmp_path / "inference_args.json").read_bytes() == (converted / "inference_args.json").read_bytes()
