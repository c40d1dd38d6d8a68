"""Training from a bucket: the readers over `s3://` against moto's S3 server, started in this
process on 127.0.0.1 (fake credentials, no instance metadata: nothing leaves the machine). The
local reader over the same converted records is the reference each URL read is compared with."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("moto.server", reason="moto[server] is not installed (a test extra: pip install -e '.[test]')")
pytest.importorskip("s3fs", reason="s3fs is not installed (the s3 extra: pip install -e '.[s3,test]')")

from buckets import ENV, new_bucket, s3  # noqa: E402
from conftest import ROOT, convert, tree_bytes  # noqa: E402
from store_cases import (  # noqa: E402,F401  (run here against this module's store)
    bucket, data_bucket, test_convert_from_a_bucket_equals_the_local_conversion,
    test_each_record_once_over_forked_workers_and_ranks, test_fold_files_and_stats_from_a_bucket_equal_local,
    test_indexed_random_access_equals_local, test_missing_bucket_key_and_empty_objects_name_the_url,
    test_shards_from_a_bucket_equal_the_local_folder)

from aslfr.data.datasets import TFRecordShards  # noqa: E402
from aslfr.format.stats import load_stats  # noqa: E402


@pytest.fixture(scope="session")
def store(s3_endpoint):
    return "s3", {**ENV, "AWS_ENDPOINT_URL": s3_endpoint}


@pytest.fixture(autouse=True)
def _env(s3_env):
    pass



def test_wrong_credentials_name_the_url(bucket, monkeypatch):
    """moto accepts any credentials unless its IAM checks are on (INITIAL_NO_AUTH_ACTION_COUNT=0, read
    per request); then an unknown access key is refused as real S3 refuses it."""
    from moto import settings

    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    url = f"{bucket}/out/tfrecords/train"
    wrong = {"key": "AKIAWRONGWRONGWRONG0", "secret": "wrong"}
    with pytest.raises(PermissionError, match=f"^{url}/manifest.json: "):  # the first object read
        TFRecordShards(url, storage_options=wrong)
    with pytest.raises(PermissionError, match=f"^{url}/means.npy: "):
        load_stats(url, storage_options=wrong)


def test_a_missing_parquet_object_is_one_error_line_naming_the_url(small_data, s3_endpoint, tmp_path):
    """The command, as a user runs it, on a copy of the data without one parquet object."""
    gone = sorted(p.relative_to(small_data).as_posix() for p in (small_data / "train_landmarks").glob("*.parquet"))[1]
    name = new_bucket(small_data, "data", leave_out=gone).removeprefix("s3://")
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


def test_a_parquet_object_is_fetched_as_footer_and_selected_chunks_only(small_data, data_bucket):
    """Of 1,629 landmark columns the converter needs 384: the object's last MiB (its footer), then
    their chunks and the index's (chunks closer than 64 KiB merged), no byte twice: well under half
    of what lies before the footer's sample. What pyarrow reads from them equals the local file."""
    import pyarrow.parquet as pq

    from aslfr.format.vocab import SELECTED_COLUMNS

    local = sorted((small_data / "train_landmarks").glob("*.parquet"))[0]
    from aslfr.format.store import Store
    from aslfr.source.landmarks import prefetched

    store, name = Store.of_file(f"{data_bucket}/data/train_landmarks/{local.name}")
    f = prefetched(store, name, [*SELECTED_COLUMNS, "sequence_id"])
    spans = sorted(f.cache.data)
    size, tail = local.stat().st_size, spans[-1][0]
    assert spans[-1][1] == size and tail <= size - pq.read_metadata(local).serialized_size - 8  # the footer
    assert all(b0 <= a1 for (_, b0), (a1, _) in zip(spans, spans[1:]))  # no byte fetched twice
    assert all(len(f.cache.data[s]) == s[1] - s[0] for s in spans)
    assert sum(b - a for a, b in spans[:-1]) < tail / 2  # before the footer's sample, the selected chunks
    assert pq.ParquetFile(f).read(columns=SELECTED_COLUMNS).equals(pq.read_table(local, columns=SELECTED_COLUMNS))
