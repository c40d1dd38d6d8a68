"""What `make bench` relies on: the per-phase accounting inside workers, traced from outside (and that
it changes no byte), and the reused per-process record buffers giving the same bytes as fresh encoding."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from conftest import tree_bytes


def test_phase_accounting_in_workers(small_data, converted, tmp_path):
    """A run traced by `aslfr.bench.traced_convert` (2 workers): each file's phases, which partition
    its time, and the bytes of a plain run."""
    from aslfr.bench.traced_convert import read_phases

    out, phases = tmp_path / "out", tmp_path / "phases"
    res = subprocess.run([sys.executable, "-m", "aslfr.bench.traced_convert", str(phases), f"data_dir={small_data}",
                          f"out_dir={out}", "num_workers=2", "progress=false", f"report={tmp_path}/report.json"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    files = read_phases(phases)
    assert len(files) == len(report["file_seconds"]) == 3
    assert len(list(phases.glob("*.jsonl"))) <= 2  # one file of lines per worker
    for ph in files:
        assert set(ph) == {"read", "transpose", "nan_stats", "encode", "crc", "write", "fsync", "other"}
        assert all(set(v) == {"seconds", "faults", "voluntary_cs", "involuntary_cs"} for v in ph.values())
        # every phase ran in every file; counters only grow
        assert all(v["seconds"] > 0 and min(v["faults"], v["voluntary_cs"], v["involuntary_cs"]) >= 0
                   for v in ph.values())
    # the phases partition each file's time: they add up to at least the time the file measures itself
    # (rounded to ms; both sorted, as neither names its file) and at most the run's
    totals = sorted(sum(v["seconds"] for v in ph.values()) for ph in files)
    assert all(s - 0.001 <= t <= report["seconds"] for s, t in zip(sorted(report["file_seconds"]), totals))
    assert tree_bytes(out / "tfrecords/train") == tree_bytes(converted / "tfrecords/train")


def test_reused_buffers_encode_like_fresh_records(small_data):
    from aslfr.convert.converter import RecordBuffers
    from aslfr.convert.settings import Settings
    from aslfr.convert.stats import ColumnStats
    from aslfr.format.schema import encode_record
    from aslfr.source.landmarks import read_landmarks
    from aslfr.source.metadata import load_metadata, parquet_files
    from aslfr.source.records import make_record

    df = load_metadata(small_data, "train")
    meta = {r["sequence_id"]: r for r in df.to_dict("records")}
    buffers, s = RecordBuffers(), Settings(str(small_data), "/unused")
    a, b = ColumnStats(), ColumnStats()
    for path in parquet_files(df):
        lm = read_landmarks(path)
        for k in sorted(range(len(lm)), key=lambda k: -lm.n_rows(k)) + list(range(len(lm))):  # growth, then reuse
            m = meta[int(lm.sequence_ids[k])]
            fresh = encode_record(make_record(m, lm.frames(k), 1.0))
            assert bytes(buffers.record(lm, k, m, s, a)) == fresh
            b.add(lm.frames(k))
    assert np.array_equal(a.count, b.count) and np.array_equal(a.total, b.total) and np.array_equal(a.squares, b.squares)
