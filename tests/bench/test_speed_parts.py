"""What `make bench` relies on: the per-phase accounting inside workers (and that it changes no byte),
and the reused per-process record buffers giving the same bytes as fresh encoding."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from conftest import tree_bytes


def test_phase_accounting_in_workers(small_data, converted, tmp_path):
    res = subprocess.run([sys.executable, "-m", "aslfr.convert", f"data_dir={small_data}", f"out_dir={tmp_path}",
                          "progress=false", f"report={tmp_path}/report.json"], capture_output=True, text=True,
                         env=dict(os.environ, ASLFR_PHASES="1"))
    assert res.returncode == 0, res.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert len(report["file_phases"]) == len(report["file_seconds"]) == 3
    for ph, file_seconds in zip(report["file_phases"], report["file_seconds"]):
        assert set(ph) == {"read", "transpose", "nan_stats", "encode", "crc", "write", "fsync", "other"}
        assert all(set(v) == {"seconds", "faults", "voluntary_cs", "involuntary_cs"} for v in ph.values())
        # every phase ran in every file; counters only grow
        assert all(v["seconds"] > 0 and min(v["faults"], v["voluntary_cs"], v["involuntary_cs"]) >= 0
                   for v in ph.values())
        # the phases partition the file's time: it encloses the time the file measures itself (rounded
        # to ms) and lies inside the run's
        total = sum(v["seconds"] for v in ph.values())
        assert file_seconds - 0.001 <= total <= report["seconds"]
    assert tree_bytes(tmp_path / "tfrecords/train") == tree_bytes(converted / "tfrecords/train")


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
