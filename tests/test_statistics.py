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
