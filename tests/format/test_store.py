"""`aslfr.format.store`: a location bound once. Folder names are never patterns (a folder `run[1]`
beside `run1`, locally and in a bucket on moto's S3 server on 127.0.0.1), `file://` is a local
path, a store pickles without its client, and a misspelled storage option is one line naming it."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, convert

from aslfr.format import storage
from aslfr.format.store import FsspecStore, LocalStore, Store, StoreOptionError, location
from aslfr.format.verify import records_dirs, verify_split
from aslfr.source.synthetic import SplitSpec, generate


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """2 train files x 8 sequences."""
    return generate(tmp_path_factory.mktemp("tiny"), SplitSpec(2, 8, 4, 6), SplitSpec(1, 8, 4, 4), seed=3)


def _shards(folder: str) -> list[str]:
    return [n for n in Store.at(f"{folder}/tfrecords/train").list() if n.endswith(".tfrec")]


def _own_verdicts(run1: str, bracketed: str, run1_shards: list[str]) -> None:
    """run1 kept its shards, run[1] has its 3-fold ones, and verify gives each its own verdict."""
    assert _shards(run1) == run1_shards and any(int(n.split(".")[0]) >= 6 for n in run1_shards)
    assert all(int(n.split(".")[0]) < 6 for n in _shards(bracketed))
    for folder, shards in ((run1, run1_shards), (bracketed, _shards(bracketed))):
        ok, line = verify_split(f"{folder}/tfrecords/train")
        assert ok and line.startswith(f"{folder}/tfrecords/train: OK {len(shards)} shards"), line


def test_a_bracketed_folder_is_itself_not_a_pattern_locally(tiny, tmp_path):
    run1, bracketed = f"{tmp_path}/run1", f"{tmp_path}/run[1]"
    convert(tiny, run1, "num_workers=0")
    before = _shards(run1)
    convert(tiny, f"'{bracketed}'", "num_workers=0", "folds=3")
    _own_verdicts(run1, bracketed, before)
    assert records_dirs(bracketed) == [Path(bracketed) / "tfrecords" / "train"]


def test_a_bracketed_folder_is_itself_not_a_pattern_in_a_bucket(tiny, s3_env):
    """Converting into `run[1]` (3 folds) beside `run1` (4 folds): run1 keeps all its shards,
    indexes and receipts, and verify gives each folder its own verdict."""
    from buckets import new_bucket, tree_bytes_url

    base = f"{new_bucket()}/p"
    run1, bracketed = f"{base}/run1", f"{base}/run[1]"
    convert(tiny, run1, "num_workers=0")
    before, shards = tree_bytes_url(run1, hidden=True), _shards(run1)
    convert(tiny, f"'{bracketed}'", "num_workers=0", "folds=3")
    assert tree_bytes_url(run1, hidden=True) == before
    _own_verdicts(run1, bracketed, shards)
    assert records_dirs(bracketed) == [f"{bracketed}/tfrecords/train"]


def test_glob_matches_file_names_only(tmp_path):
    """`storage.glob`'s pattern is the caller's, for names; the folder is taken as named."""
    for folder in ("run[1]", "run1"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / f"{folder}.tfrec").write_bytes(b"")
    assert storage.glob(tmp_path / "run[1]", "*.tfrec") == [tmp_path / "run[1]" / "run[1].tfrec"]
    assert Store.at(tmp_path).folders() == ["run1", "run[1]"] and Store.at(tmp_path).list() == []


@pytest.mark.parametrize("given, kind, root", [
    ("out", LocalStore, Path("out")), ("file:///tmp/x/", LocalStore, Path("/tmp/x/")),
    ("s3://b/x/", FsspecStore, "s3://b/x"), ("gs://b", FsspecStore, "gs://b")])
def test_the_scheme_picks_the_kind(given, kind, root):
    store = Store.at(given)
    assert type(store) is kind and store.root == root and location(given) == root


def test_the_kind_says_whether_the_folder_is_local():
    assert Store.at("out").is_local and Store.at("file:///tmp/x").is_local
    assert not Store.at("s3://b/x").is_local and not Store.at("gs://b").is_local


def test_the_converter_binds_its_folders_once_and_sends_them_to_workers_as_urls(s3_env):
    """`Settings` holds its folders as stores with the storage options; pickled for a worker, they
    carry the URL and options, no client."""
    from aslfr.convert.settings import Settings

    s = Settings("s3://in/data", "s3://out/run", split="supplemental", storage_options={"use_ssl": False})
    assert s.records is s.records and s.records.where() == s.records_dir == "s3://out/run/tfrecords/sup"
    assert s.receipts.where() == "s3://out/run/tfrecords/sup/.aslfr"
    assert {st.options["use_ssl"] for st in (s.data, s.out, s.records, s.receipts)} == {False}
    again = pickle.loads(pickle.dumps(s))
    assert again == s and again.records == s.records and "fs" not in vars(again.records)
    assert Store.of(s.data) is s.data and Store.of("s3://in/data") == Store.at("s3://in/data")


def test_file_urls_are_local_paths_for_the_converter(tiny, tmp_path):
    """`out_dir=file:///...` writes where the path says, as the same path would."""
    convert(tiny, f"file://{tmp_path}/out", "num_workers=0")
    ok, line = verify_split(tmp_path / "out" / "tfrecords" / "train")
    assert ok, line
    assert storage.read_bytes(f"file://{tmp_path}/out/inference_args.json").startswith(b"{")


def test_a_store_pickles_without_its_client(s3_env):
    from buckets import new_bucket

    store = Store.at(new_bucket(), {"use_ssl": False})
    store.write_bytes("a.txt", b"hello")
    assert store.fs is not None  # a client built in this process
    again = pickle.loads(pickle.dumps(store))
    assert vars(again) == vars(store) and "fs" not in vars(store)
    assert again.read_bytes("a.txt") == b"hello" and again.list() == ["a.txt"]


def test_a_reader_sends_its_workers_folders_not_clients(converted, s3_env):
    """What a DataLoader worker gets of a bucket reader: its shards' folders (URL, options, the
    manifest and the indexes read), no filesystem client, though the parent has used one."""
    import aslfr
    from buckets import new_bucket

    url = f"{new_bucket(converted / 'tfrecords' / 'train', 'train', skip=('.aslfr',))}/train"
    ds = aslfr.TFRecordShards(url, rank=0, world_size=3)
    assert len(list(ds)) == 16  # ranges inside files: the indexes are read, in this process
    sent = pickle.dumps(ds._shards)
    assert b"s3fs" not in sent and b"S3FileSystem" not in sent and url.encode() in sent
    assert len({id(s.folder) for s in pickle.loads(sent)}) == 1  # one folder, sent once


def test_a_misspelled_storage_option_is_one_line_naming_it_and_the_url(s3_env):
    from buckets import new_bucket

    import aslfr

    url = f"{new_bucket()}/out/tfrecords/train"
    with pytest.raises(StoreOptionError) as e:
        aslfr.TFRecordShards(url, storage_options={"endpoint": s3_env})
    assert str(e.value) == (f"{url}: 'endpoint' is not a storage option of the s3:// filesystem "
                            "(did you mean 'endpoint_url'?)")


def test_a_misspelled_storage_option_on_the_command_line_is_one_line(tiny, tmp_path, s3_env):
    from buckets import new_bucket

    url = new_bucket()
    res = subprocess.run([sys.executable, "-m", "aslfr.convert", f"data_dir={tiny}", f"out_dir={url}/out",
                          f"+storage_options.endpoint={s3_env}", "progress=false"], cwd=tmp_path,
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "'endpoint' is not a storage option of the s3:// filesystem" in res.stderr and url in res.stderr
