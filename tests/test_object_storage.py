"""Training from a bucket: the readers over `s3://` against moto's S3 server, started in this
process on 127.0.0.1 (fake credentials, no instance metadata: nothing leaves the machine). The
local reader over the same converted records is the reference each URL read is compared with."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid

import numpy as np
import pytest
from torch.utils.data import DataLoader

moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed (a test extra: pip install -e '.[test]')")
s3fs = pytest.importorskip("s3fs", reason="s3fs is not installed (the s3 extra: pip install -e '.[s3,test]')")

from conftest import ROOT, convert, tree_bytes  # noqa: E402
from test_reader import _same  # noqa: E402  (items equal, NaN included)

from aslfr.data.datasets import TFRecordIndexed, TFRecordShards, fold_files  # noqa: E402
from aslfr.format import storage  # noqa: E402
from aslfr.format.manifest import ManifestError  # noqa: E402
from aslfr.format.stats import StatsError, load_stats  # noqa: E402

ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
       "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.fixture(scope="session")
def s3_endpoint():
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _upload(fs, local, prefix: str, leave_out: str | None = None, skip=()) -> None:
    """Every file under `local` (but `leave_out`, and any under a folder named in `skip`) to `prefix`."""
    for p in sorted(local.rglob("*")):
        rel = p.relative_to(local)
        if p.is_file() and rel.as_posix() != leave_out and not set(skip) & set(rel.parts):
            assert p.stat().st_size <= 16 << 20  # moto reads a whole object per GET
            fs.pipe_file(f"{prefix}/{rel.as_posix()}", p.read_bytes())


def _new_bucket(s3_endpoint, local, folder: str, **upload):
    """s3://a-new-bucket holding `local` under `folder`/."""
    with pytest.MonkeyPatch.context() as mp:
        for k, v in {**ENV, "AWS_ENDPOINT_URL": s3_endpoint}.items():
            mp.setenv(k, v)
        fs = s3fs.S3FileSystem(skip_instance_cache=True)
        name = f"aslfr-{uuid.uuid4().hex[:12]}"
        fs.mkdir(name)
        _upload(fs, local, f"{name}/{folder}", **upload)
    return f"s3://{name}"


@pytest.fixture(scope="session")
def bucket(s3_endpoint, converted):
    """A bucket holding the `converted` fixture's output under `out/` (receipts left out)."""
    return _new_bucket(s3_endpoint, converted, "out", skip=(".aslfr", ".hydra"))


@pytest.fixture(scope="session")
def data_bucket(s3_endpoint, small_data):
    """A bucket holding the `small_data` competition folder under `data/`."""
    return _new_bucket(s3_endpoint, small_data, "data")


@pytest.fixture(autouse=True)
def s3_env(s3_endpoint, monkeypatch):
    for k, v in {**ENV, "AWS_ENDPOINT_URL": s3_endpoint}.items():
        monkeypatch.setenv(k, v)


def _put(url: str, data: bytes) -> None:
    s3fs.S3FileSystem(skip_instance_cache=True).pipe_file(url, data)




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
        _same(a, b)


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
        _same(remote[i], local[i])


def test_fold_files_and_stats_from_a_bucket_equal_local(converted, bucket):
    local = fold_files(converted / "tfrecords/train", valid_fold=1, sup_dir=converted / "tfrecords/sup")
    remote = fold_files(f"{bucket}/out/tfrecords/train", valid_fold=1, sup_dir=f"{bucket}/out/tfrecords/sup")
    for r, lo in zip(remote, local):
        assert [storage.name(u) for u in r] == [p.name for p in lo] and len(lo) > 0
        assert all(u.startswith(f"{bucket}/out/tfrecords/") for u in r)
    for r, lo in zip(load_stats(f"{bucket}/out/tfrecords/train"), load_stats(converted / "tfrecords/train")):
        assert r.dtype == np.float32 and np.array_equal(r, lo)


def test_missing_bucket_key_and_empty_objects_name_the_url(converted, bucket):
    url = "s3://no-such-bucket-aslfr/out/tfrecords/train"
    with pytest.raises(ManifestError, match=f"^{url}: no such records folder or shard file$"):
        TFRecordShards(url)
    shard = f"{bucket}/out/tfrecords/train/999.1.tfrec"
    with pytest.raises(ManifestError, match=f"^{shard}: no such records folder or shard file$"):
        TFRecordIndexed(shard)
    with pytest.raises(FileNotFoundError, match=f"^{bucket}/out/tfrecords: no means.npy"):
        load_stats(f"{bucket}/out/tfrecords")

    empty = f"{bucket}/empty-{uuid.uuid4().hex[:8]}"
    for name in ("means.npy", "stds.npy", "manifest.json"):
        _put(f"{empty}/{name}", b"")
    with pytest.raises(StatsError, match=f"^{empty}/means.npy: not a NumPy .npy array file$"):
        load_stats(empty)
    with pytest.raises(ManifestError, match=f"^{empty}/manifest.json: unreadable manifest"):
        TFRecordShards(empty)

    # a folder whose manifest lists a shard that is a 0-byte object
    broken = f"{bucket}/broken-{uuid.uuid4().hex[:8]}"
    train = converted / "tfrecords/train"
    first = sorted(train.glob("*.tfrec"), key=lambda p: int(p.name.split(".")[0]))[0]
    _put(f"{broken}/manifest.json", (train / "manifest.json").read_bytes())
    for p in train.glob("*.tfrec"):
        _put(f"{broken}/{p.name}", b"" if p == first else p.read_bytes())
    with pytest.raises(ManifestError, match=f"^{broken}: shard {first.name} has 0 bytes, manifest.json says "
                                            f"{first.stat().st_size}$"):
        TFRecordShards(broken)


def test_wrong_credentials_name_the_url(bucket, monkeypatch):
    """moto accepts any credentials unless its IAM checks are on (INITIAL_NO_AUTH_ACTION_COUNT=0, read
    per request); then an unknown access key is refused as real S3 refuses it."""
    from moto import settings

    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    url = f"{bucket}/out/tfrecords/train"
    wrong = {"key": "AKIAWRONGWRONGWRONG0", "secret": "wrong"}
    with pytest.raises(PermissionError, match=f"^{url}: "):
        TFRecordShards(url, storage_options=wrong)
    with pytest.raises(PermissionError, match=f"^{url}/means.npy: "):
        load_stats(url, storage_options=wrong)


def test_convert_from_a_bucket_equals_the_local_conversion(converted, data_bucket, tmp_path):
    """CSV and parquet read from s3:// by 2 forked workers (the parent's client used first, for the CSV
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


def test_a_missing_parquet_object_is_one_error_line_naming_the_url(small_data, s3_endpoint, tmp_path):
    """The command, as a user runs it, on a copy of the data without one parquet object."""
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    name = f"aslfr-gone-{uuid.uuid4().hex[:12]}"
    fs.mkdir(name)
    gone = sorted(p.relative_to(small_data).as_posix() for p in (small_data / "train_landmarks").glob("*.parquet"))[1]
    _upload(fs, small_data, f"{name}/data", leave_out=gone)
    res = subprocess.run([sys.executable, "-m", "aslfr.convert", f"data_dir=s3://{name}/data", f"out_dir={tmp_path}",
                          "progress=false"], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert res.returncode == 1, res.stderr[-2000:]
    assert res.stderr.strip().splitlines() == [f"aslfr: error: s3://{name}/data/{gone}: parquet file not found"]


def test_parts_converted_from_a_bucket_merge_with_the_data_dir_url(converted, data_bucket, tmp_path):
    """Two jobs' parts (finalize off, as in a sweep), then `python -m aslfr.merge data_dir=s3://...`,
    which re-reads the CSV and the parquet identities from the bucket."""
    src = f"{data_bucket}/data"
    for index in (0, 1):
        convert(src, tmp_path, f"shard_index={index}", "shard_count=2", "num_workers=0", finalize=False)
    assert not (tmp_path / "tfrecords/train/manifest.json").exists()
    res = subprocess.run([sys.executable, "-m", "aslfr.merge", f"out_dir={tmp_path}", f"data_dir={src}"],
                         capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert tree_bytes(tmp_path / "tfrecords/train") == tree_bytes(converted / "tfrecords/train")
