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
    with open(ours, "wb") as f:
        r = RecordWriter(f)
        for rec in records:
            r.write_serialized(rec)
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


def _numpy_stats(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What means.npy/stds.npy should hold, column by column over the finite values only."""
    means, stds = np.zeros(frames.shape[1], np.float32), np.ones(frames.shape[1], np.float32)
    for c in range(frames.shape[1]):
        v = frames[:, c][np.isfinite(frames[:, c])].astype(np.float64)
        if v.size:
            means[c], s = v.mean(), v.std()
            stds[c] = s if s >= 1e-6 else 1.0
    return means, stds


def test_column_stats_leave_out_inf_as_they_leave_out_nan():
    from aslfr.convert.stats import ColumnStats

    rng = np.random.default_rng(1)
    frames = rng.normal(0.4, 0.1, (40, 384)).astype(np.float32)
    frames[rng.random(frames.shape) < 0.2] = np.nan
    frames[3, 5], frames[17, 5], frames[8, 200] = np.inf, -np.inf, -np.inf
    frames[:, 9] = np.inf  # a column with no finite value at all
    want_means, want_stds = _numpy_stats(frames)
    assert want_means[9] == 0 and want_stds[9] == 1
    a = ColumnStats()
    a.add(frames[:25])
    a.add(frames[25:])
    b = ColumnStats()  # the converter's path: NaN already 0, a reused float64 buffer
    nan = np.isnan(frames)
    b.add_zeroed(np.where(nan, np.float32(0), frames), nan, np.empty((64, 384)))
    for stats in (a, b):
        assert stats.count[5] == 40 - 2 - np.isnan(frames[:, 5]).sum() and stats.count[9] == 0
        means, stds = stats.means_stds()
        assert np.isfinite(means).all() and np.isfinite(stds).all()
        np.testing.assert_allclose(means, want_means, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(stds, want_stds, rtol=1e-5)


def test_save_refuses_non_finite_statistics(tmp_path):
    from aslfr.convert.stats import ColumnStats, save

    count, total = np.full(384, 2), np.zeros(384)
    total[11] = np.inf  # partial sums from a receipt written before inf was left out
    with pytest.raises(ValueError) as e:
        save(ColumnStats(count, total, np.ones(384)), tmp_path)
    assert str(e.value) == f"{tmp_path}: statistics not written: means: 1 value(s) not finite, first at column 11 (inf)"
    assert not list(tmp_path.iterdir())


def test_inf_in_the_parquet_kept_in_records_left_out_of_statistics(tmp_path):
    """One +inf and one -inf in the landmarks: the records hold them as the reference writes them,
    means/stds are numpy's over the finite values, the normalized column is not wiped out, and
    verify says OK."""
    import pandas as pd
    import torch

    import aslfr
    from aslfr.format.schema import read_shard
    from aslfr.source.synthetic import SplitSpec, generate
    from compare import assert_same_records
    from conftest import convert, run_reference

    data = generate(tmp_path / "data", SplitSpec(2, 6, 4, 5), None, seed=5)
    path = data / pd.read_csv(data / "train.csv").path.iloc[0]
    df = pd.read_parquet(path)
    df.iloc[2, df.columns.get_loc("x_left_hand_0")] = np.inf
    df.iloc[5, df.columns.get_loc("y_right_hand_4")] = -np.inf
    df.to_parquet(path)
    convert(data, tmp_path / "out", "num_workers=0")
    records = tmp_path / "out/tfrecords/train"
    assert_same_records(records, run_reference(data, tmp_path / "ref", "train")) > 0
    frames = np.concatenate([r["frames"] for p in sorted(records.glob("*.tfrec")) for r in read_shard(p)])
    assert np.isposinf(frames).sum() == 1 and np.isneginf(frames).sum() == 1
    means, stds = aslfr.load_stats(records)
    want_means, want_stds = _numpy_stats(frames)
    np.testing.assert_allclose(means, want_means, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(stds, want_stds, rtol=1e-5)
    col = aslfr.format.vocab.SELECTED_COLUMNS.index("x_left_hand_0")
    normed = aslfr.FrameTransform(means, stds, concat_frames=False, add_pos=False)(torch.from_numpy(frames))
    finite = torch.from_numpy(np.isfinite(frames[:, col]))
    assert normed[finite, col].abs().max() > 0.5  # was 0 in every frame when means were inf
    from aslfr.format.verify import verify_split

    ok, line = verify_split(records)
    assert ok, line


def _entry_points():
    import torch

    import aslfr

    frames = torch.rand(6, 384)
    return {
        "FrameTransform": lambda m, s: aslfr.FrameTransform(m, s)(frames),
        "ReferencePreprocess": lambda m, s: aslfr.ReferencePreprocess(m, s, train=False)(frames),
        "ReferencePreprocess(train)": lambda m, s: aslfr.ReferencePreprocess(m, s, train=True)(frames),
        "reference_preprocess": lambda m, s: aslfr.reference_preprocess(frames, m, s, train=True),
        "reference_preprocess(tf.function)": lambda m, s: aslfr.reference_preprocess(
            frames, m, s, train=False, rounding="tf.function"),
        "reference_preprocess_batch": lambda m, s: aslfr.reference_preprocess_batch(
            frames[None], [6], m, s, train=False),
        "training_transforms": lambda m, s: aslfr.training_transforms(m, s),
    }


@pytest.mark.parametrize("entry", list(_entry_points()))
@pytest.mark.parametrize("bad, message", [
    ("short means", "means must have shape [384] (one value per column), got [383]"),
    ("long stds", "stds must have shape [384] (one value per column), got [768]"),
    ("zero std", "stds: 1 value(s) not > 0, first at column 4 (0.0)"),
    ("negative std", "stds: 1 value(s) not > 0, first at column 0 (-2.0)"),
    ("nan std", "stds: 1 value(s) not finite, first at column 2 (nan)"),
    ("inf mean", "means: 1 value(s) not finite, first at column 383 (inf)"),
])
def test_means_and_stds_are_validated_where_they_enter(entry, bad, message):
    means, stds = np.zeros(384, np.float32), np.ones(384, np.float32)
    if bad == "short means":
        means = means[:383]
    elif bad == "long stds":
        stds = np.ones(768, np.float32)
    elif bad == "inf mean":
        means[383] = np.inf
    else:
        stds[{"zero std": 4, "negative std": 0, "nan std": 2}[bad]] = {"zero std": 0, "negative std": -2,
                                                                       "nan std": np.nan}[bad]
    with pytest.raises(ValueError) as e:
        _entry_points()[entry](means, stds)
    assert str(e.value) == message


def test_valid_statistics_pass_every_entry_point_as_tensors_too():
    import torch

    for call in _entry_points().values():
        call(np.full(384, 0.5, np.float32), np.full(384, 0.25, np.float32))
        call(torch.full((384,), 0.5), torch.full((384,), 0.25, dtype=torch.float64))


def test_inv_stds_are_validated():
    import torch

    import aslfr

    inv = torch.ones(384)
    inv[10] = 0
    with pytest.raises(ValueError, match=r"^inv_stds: 1 value\(s\) not > 0, first at column 10"):
        aslfr.reference_preprocess(torch.rand(3, 384), torch.zeros(384), torch.ones(384), train=False,
                                   rounding="tf.function", inv_stds=inv)


def test_frame_transform_keeps_inf_as_the_reference_path_does():
    """A ±inf in the records (kept from the parquet) comes out as ±inf from both the FrameTransform and
    the reference path (tf.where(is_nan) keeps it), not as float32's max from one of them."""
    import torch

    import aslfr

    frames = torch.rand(7, 384)
    frames[1, 3], frames[4, 100], frames[2, 7] = float("inf"), float("-inf"), float("nan")
    means, stds = torch.full((384,), 0.5), torch.full((384,), 0.2)
    ours = aslfr.FrameTransform(means, stds, max_frames=320)(frames)
    ref, length = aslfr.reference_preprocess(frames, means, stds, train=False)
    assert length == 7 and torch.equal(ours, ref)
    assert ours[1, 3] == float("inf") and ours[1, 384 + 3] == float("inf") and ours[4, 100] == float("-inf")
    assert ours[2, 7] == 0 and ours[2, 384 + 7] == 0


@pytest.mark.parametrize("damage, problem", [
    ("no means", "no means.npy (written when a conversion finishes"),
    ("garbage stds", "stds.npy: not a NumPy .npy array file"),
    ("short means", "means.npy must have shape [384] (one value per column), got [10]"),
    ("inf means", "means.npy: 1 value(s) not finite, first at column 0 (inf)"),
    ("zero std", "stds.npy: 1 value(s) not > 0, first at column 5 (0.0)"),
])
def test_verify_fails_on_statistics_training_cannot_use(converted, tmp_path, damage, problem):
    import shutil
    import subprocess
    import sys

    out = tmp_path / "out"
    shutil.copytree(converted, out)
    d = out / "tfrecords/train"
    means, stds = np.load(d / "means.npy"), np.load(d / "stds.npy")
    if damage == "no means":
        (d / "means.npy").unlink()
    elif damage == "garbage stds":
        (d / "stds.npy").write_bytes(b"\x93NUMPY garbage")
    elif damage == "short means":
        np.save(d / "means.npy", means[:10])
    elif damage == "inf means":
        means[0] = np.inf
        np.save(d / "means.npy", means)
    else:
        stds[5] = 0
        np.save(d / "stds.npy", stds)
    res = subprocess.run([sys.executable, "-m", "aslfr.verify", str(out)], capture_output=True, text=True)
    assert res.returncode == 1
    lines = {line.split(": ")[0]: line for line in res.stdout.splitlines()}
    assert f"{out}/tfrecords/sup: OK" in res.stdout
    assert "FAIL 1 problem(s): " in lines[str(d)] and problem in lines[str(d)], res.stdout


def test_conversion_measures_nothing_unless_the_bench_asks(small_data, converted, tmp_path, monkeypatch):
    """Without ASLFR_PHASES no phase function is wrapped and getrusage is never called; the bytes
    are those of the default run."""
    import resource

    from aslfr.convert import converter, shards
    from aslfr.format import store
    from conftest import convert, tree_bytes

    def no_rusage(*a):
        raise AssertionError("getrusage called outside the bench")

    monkeypatch.setattr(resource, "getrusage", no_rusage)
    report = convert(small_data, tmp_path, "num_workers=0")
    assert "file_phases" not in report and len(report["file_seconds"]) == 3
    assert tree_bytes(tmp_path / "tfrecords/train") == tree_bytes(converted / "tfrecords/train")
    assert not any(hasattr(f, "__wrapped__") for f in (
        converter.RecordBuffers.transpose, converter.RecordBuffers.nan_stats, converter.RecordBuffers.encode,
        shards.RecordWriter.frame, store.durable, shards._write_all, converter._write_file,
        converter.read_landmarks))
