"""`aslfr verify`, `inspect` and `stats` on `s3://` against moto's S3 server (started in this process on
127.0.0.1; fake credentials: nothing leaves the machine), run as users run them. Each command's output
on a bucket is compared with its output on the local folder the bucket was filled from, the location
replaced; faults are made in the bucket and, the same way, in a local copy, whose verdict is the expected."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("moto.server", reason="moto[server] is not installed (a test extra: pip install -e '.[test]')")
pytest.importorskip("s3fs", reason="s3fs is not installed (the s3 extra: pip install -e '.[s3,test]')")

from buckets import new_bucket, s3  # noqa: E402
from conftest import ROOT  # noqa: E402

from aslfr.convert.stats import from_records  # noqa: E402
from aslfr.format.folder import resolve_shards  # noqa: E402
from aslfr.format.manifest import load_manifest  # noqa: E402
from aslfr.format.tfrecord import count_records, file_crc32c, read_records  # noqa: E402


@pytest.fixture
def bucket(s3_env, converted):
    """A new bucket holding the `converted` fixture's output under `out/` (receipts left out)."""
    return new_bucket(converted, "out", skip=(".aslfr", ".hydra")) + "/out"


def aslfr(*args, cwd=None):
    """`python -m aslfr ARGS` with this tree first on the path and this process's (test server) env."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "aslfr", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def outputs(res) -> tuple[int, str, str]:
    return res.returncode, res.stdout, res.stderr


def first_shard(records: Path) -> str:
    return sorted(records.glob("*.tfrec"))[0].name


@pytest.mark.parametrize("arg", ["{}", "out_dir={}", "{}/tfrecords/train", "{}/tfrecords/sup/", "{}/tfrecords/train/SHARD"])
def test_verify_on_a_bucket_prints_the_local_verdicts(converted, bucket, arg):
    """The out_dir (also spelt `out_dir=`), a records folder (a trailing "/" too) and a shard file
    (an error): the bucket's output is the local output with the location replaced."""
    arg = arg.replace("SHARD", first_shard(converted / "tfrecords/train"))
    want = outputs(aslfr("verify", arg.format(converted)))
    assert want == ((1, "", want[2]) if arg.endswith(".tfrec") else (0, want[1], "")), want
    assert want[1].count(": OK ") == {"{}": 2, "out_dir={}": 2}.get(arg, 1) or "is a file" in want[2]
    assert outputs(aslfr("verify", arg.format(bucket))) == tuple(
        x.replace(str(converted), bucket) if isinstance(x, str) else x for x in want)


def test_inspect_on_a_bucket_prints_the_local_table(converted, bucket):
    want = outputs(aslfr("inspect", converted))
    assert want[0] == 0 and "[train]" in want[1] and "[sup]" in want[1], want
    assert outputs(aslfr("inspect", bucket)) == want
    assert outputs(aslfr("inspect", f"out_dir={bucket}/")) == want


def test_inspect_draws_a_sequence_from_a_bucket_into_the_current_folder(converted, bucket, tmp_path):
    pytest.importorskip("matplotlib")
    from aslfr.format.schema import read_shard

    sid = next(read_shard(converted / "tfrecords/train" / first_shard(converted / "tfrecords/train")))["sequence_id"]
    local_png = tmp_path / "local.png"
    want = outputs(aslfr("inspect", f"out_dir={converted}", f"+sequence_id={sid}", f"png={local_png}"))
    assert want[0] == 0, want
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    got = outputs(aslfr("inspect", f"out_dir={bucket}", f"+sequence_id={sid}", cwd=cwd))
    png = cwd / f"sequence_{sid}.png"
    assert got == (0, want[1].replace(str(local_png), png.name), "")
    assert png.read_bytes() == local_png.read_bytes()
    url_png = outputs(aslfr("inspect", f"out_dir={bucket}", f"+sequence_id={sid}", f"png={bucket}/x.png", cwd=cwd))
    assert url_png == (1, "", f"aslfr: error: png={bucket}/x.png: the PNG is written to a local path, not a URL\n")


def test_stats_reads_a_bucket_and_writes_into_it(converted, bucket, tmp_path):
    """Statistics recomputed from the bucket's shards equal those from the local shards and the
    converter's means.npy / stds.npy; the command writes them into the bucket with the bytes it writes
    into a local copy, and prints the same lines; nothing is written locally (no `s3:` folder)."""
    for sub in ("train", "sup"):
        shards = resolve_shards(f"{bucket}/tfrecords/{sub}")
        assert all(isinstance(p, str) and p.startswith(f"{bucket}/tfrecords/{sub}/") for p in shards)
        remote = from_records(shards)
        local = from_records(resolve_shards(converted / "tfrecords" / sub))
        assert [np.array_equal(a, b) for a, b in zip(remote.means_stds(), local.means_stds())] == [True, True]
        assert np.array_equal(remote.count, local.count) and remote.count.max() > 0
        for got, name in zip(remote.means_stds(), ("means.npy", "stds.npy")):
            assert np.allclose(got, np.load(converted / "tfrecords" / sub / name), rtol=1e-6)
    copy = tmp_path / "copy"
    shutil.copytree(converted, copy)
    want = outputs(aslfr("stats", copy))
    assert want[0] == 0 and want[1].count("means.npy and stds.npy written") == 2, want
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    assert outputs(aslfr("stats", bucket, cwd=cwd)) == (0, want[1].replace(str(copy), bucket), "")
    for sub in ("train", "sup"):
        for name in ("means.npy", "stds.npy"):
            assert s3().cat_file(f"{bucket}/tfrecords/{sub}/{name}") == (copy / "tfrecords" / sub / name).read_bytes()
    assert list(cwd.iterdir()) == []


def test_record_helpers_stream_a_url_as_they_read_the_file(converted, bucket):
    """read_records, count_records and file_crc32c over a URL: the local file's records, count and
    the manifest's CRC32C; a range of the file read from the bucket too."""
    d = converted / "tfrecords/train"
    m = load_manifest(d)
    for s in m.shards[:3]:
        url = f"{bucket}/tfrecords/train/{s.name}"
        local = [bytes(r) for r in read_records(d / s.name)]
        assert [bytes(r) for r in read_records(url)] == local and len(local) == s.records
        assert count_records(url) == count_records(d / s.name) == s.records
        assert file_crc32c(url) == s.crc32c
        second = 16 + len(local[0])
        assert [bytes(r) for r in read_records(url, start=second, first_record=1)] == local[1:]


def _damage(kind: str, name: str, data: bytes) -> tuple[dict[str, bytes | None], str]:
    """({file name in the records folder: its new bytes, or None to delete it}, what verify says of it)."""
    index = name.replace(".tfrec", ".tfindex")
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x20
    return {"flipped byte": ({name: bytes(flipped)}, f"{name}: checksum differs from the manifest"),
            "extra shard": ({"999.1.tfrec": data}, "1 shard(s) not in the manifest, first 999.1.tfrec"),
            "missing index": ({index: None}, f"{index}: index file missing"),
            "missing shard": ({name: None}, f"{name}: missing"),
            "short shard": ({name: data[:-1]}, f"{name}: {len(data) - 1} bytes, manifest says {len(data)}"),
            "0-byte shard": ({name: b""}, f"{name}: 0 bytes, manifest says {len(data)}"),
            "0-byte stds.npy": ({"stds.npy": b""}, "stds.npy: not a NumPy .npy array file"),
            "0-byte manifest": ({"manifest.json": b""}, "manifest.json: unreadable manifest")}[kind]


@pytest.mark.parametrize("kind", ["flipped byte", "extra shard", "missing index", "missing shard", "short shard",
                                  "0-byte shard", "0-byte stds.npy", "0-byte manifest"])
def test_verify_catches_in_a_bucket_what_it_catches_on_disk(converted, bucket, tmp_path, kind):
    """Each fault made in the bucket's train folder and in a local copy: verify fails on both with
    the same lines (location replaced), the bad split named by its URL, the other split OK."""
    copy = tmp_path / "out"
    shutil.copytree(converted, copy)
    records = copy / "tfrecords/train"
    name = first_shard(records)
    changes, says = _damage(kind, name, (records / name).read_bytes())
    fs = s3()
    for file, data in changes.items():
        key = f"{bucket.removeprefix('s3://')}/tfrecords/train/{file}"
        if data is None:
            (records / file).unlink()
            fs.rm_file(key)
        else:
            (records / file).write_bytes(data)
            fs.pipe_file(key, data)
    want = outputs(aslfr("verify", copy))
    assert want[0] == 1 and f"{records}: FAIL " in want[1] and says in want[1] and ": OK " in want[1], want
    print("\nWANT", want)
    assert outputs(aslfr("verify", bucket)) == tuple(x.replace(str(copy), bucket) if isinstance(x, str) else x
                                                    for x in want)


@pytest.mark.parametrize("command", ["verify", "inspect", "stats"])
def test_a_missing_bucket_is_one_line(s3_env, command, tmp_path):
    url = "s3://aslfr-no-such-bucket/out"
    assert outputs(aslfr(command, url, cwd=tmp_path)) == (1, "", f"aslfr: error: {url}: no such file or folder\n")
