"""Facts defined once in the format layer (TFRecord framing, statistics files), statistics that
survive non-finite landmark values, means/stds validated wherever they enter, and the per-phase
accounting kept out of the per-record code."""

from __future__ import annotations

import struct

import numpy as np
import pytest


def test_framing_matches_the_tfrecord_package(tmp_path):
    from tfrecord.writer import TFRecordWriter

    from aslfr.convert.shards import RecordWriter
    from aslfr.format.tfrecord import OVERHEAD, frame_header, masked_crc, read_records

    for data in (b"", b"a", bytes(range(256)) * 7, struct.pack("<Q", 12345)):
        assert masked_crc(data) == TFRecordWriter.masked_crc(data)
    datums = [{"x": ([1, 2, 3], "int"), "s": ([b"abc"], "byte")}, {"f": ([0.5] * 300, "float")}]
    theirs, ours = tmp_path / "theirs.tfrec", tmp_path / "ours.tfrec"
    w = TFRecordWriter(str(theirs))
    for d in datums:
        w.write(d)
    w.close()
    records = [TFRecordWriter.serialize_tf_example(d) for d in datums]
    r = RecordWriter(str(ours))
    for rec in records:
        r.write_serialized(rec)
    r.close()
    assert ours.read_bytes() == theirs.read_bytes()
    assert r.offsets == [(0, len(records[0]) + 16), (len(records[0]) + 16, len(records[1]) + 16)]
    assert OVERHEAD == 16 and frame_header(len(records[0])) == theirs.read_bytes()[:12]
    assert [bytes(x) for x in read_records(ours)] == records


def _write_stats(d, means, stds):
    d.mkdir(parents=True, exist_ok=True)
    np.save(d / "means.npy", means)
    np.save(d / "stds.npy", stds)
    return d


def test_stats_files_round_trip_through_the_format_layer(tmp_path):
    import aslfr
    from aslfr.convert.stats import ColumnStats, save
    from aslfr.format.stats import load_stats

    rng = np.random.default_rng(0)
    frames = rng.normal(0.5, 0.2, (50, 384)).astype(np.float32)
    stats = ColumnStats()
    stats.add(frames)
    save(stats, tmp_path)
    means, stds = aslfr.load_stats(tmp_path)
    assert aslfr.load_stats is load_stats
    assert means.dtype == np.float32 and stds.dtype == np.float32
    assert np.allclose(means, frames.astype(np.float64).mean(0), rtol=1e-6)
    assert np.allclose(stds, frames.astype(np.float64).std(0), rtol=1e-5)
    # np.save's own bytes: a reader with plain numpy gets the same arrays
    assert np.array_equal(np.load(tmp_path / "means.npy"), means) and np.load(tmp_path / "stds.npy").shape == (384,)


@pytest.mark.parametrize("damage, message", [
    ("missing", "no stds.npy"),
    ("garbage", "stds.npy: not a NumPy .npy array file"),
    ("empty", "stds.npy: not a NumPy .npy array file"),
    ("short", "stds.npy must have shape [384] (one value per column), got [383]"),
    ("2d", "stds.npy must have shape [384] (one value per column), got [1, 384]"),
    ("nan", "stds.npy: 1 value(s) not finite, first at column 7 (nan)"),
    ("zero", "stds.npy: 2 value(s) not > 0, first at column 3 (0.0)"),
    ("negative", "stds.npy: 1 value(s) not > 0, first at column 0 (-1.0)"),
    ("text", "stds.npy must hold numbers, got dtype <U1"),
])
def test_load_stats_refuses_bad_files_naming_them(tmp_path, damage, message):
    from aslfr import load_stats

    stds = np.ones(384, np.float32)
    d = _write_stats(tmp_path / "r", np.zeros(384, np.float32), stds)
    path = d / "stds.npy"
    if damage == "missing":
        path.unlink()
    elif damage in ("garbage", "empty"):
        path.write_bytes(b"not numpy at all" if damage == "garbage" else b"")
    else:
        bad = {"short": stds[:383], "2d": stds[None], "nan": np.where(np.arange(384) == 7, np.nan, stds),
               "zero": np.where(np.isin(np.arange(384), (3, 9)), 0, stds),
               "negative": np.where(np.arange(384) == 0, -1, stds), "text": np.array(["a"] * 384)}[damage]
        np.save(path, bad)
    with pytest.raises((ValueError, OSError)) as e:
        load_stats(d)
    assert message in str(e.value) and str(d) in str(e.value)
