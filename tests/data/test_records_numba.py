"""Records parsed in numba (`aslfr.data.kernels.records`) == `schema.decode_record`, CRCs checked as
`tfrecord.records_from` checks them, errors naming file, record and byte; other writers' layouts
through the Python decoder."""

from __future__ import annotations

import crc32c as crc32c_package
import numpy as np
import pytest
from tfrecord import example_pb2

from aslfr.data.kernels import records as K
from aslfr.format.schema import SCHEMA, decode_record, encode_record, wire_features
from aslfr.format.tfrecord import CorruptRecordError, frame_header, masked_crc
from aslfr.source.records import make_record


def _record(i: int, phrase: str = "hello world", file_id: int = 7) -> bytes:
    g = np.random.default_rng(i)
    t = int(g.integers(1, 300))
    frames = g.random((t, 384), dtype=np.float32)
    frames[g.random(t) < 0.3, :63] = np.nan
    meta = dict(sequence_id=int(g.integers(0, 2 ** 40)), file_id=file_id, participant_id=3, phrase=phrase, fold=1,
                phrase_len=len(phrase), phrase_type="address", phrase_dup=0, idx=i)
    return encode_record(make_record(meta, frames, 0.5))


def _framed(records) -> bytes:
    return b"".join(frame_header(len(r)) + r + masked_crc(r) for r in records)


def _other_writer(data: bytes) -> bytes:
    """The same Example serialized by protobuf, map entries in reverse key order."""
    ex = example_pb2.Example.FromString(data)
    out = example_pb2.Example()
    for name in sorted(ex.features.feature, reverse=True):
        out.features.feature[name].CopyFrom(ex.features.feature[name])
    return out.SerializeToString()


def _same(a: dict, b: dict) -> bool:
    assert list(a) == list(b) == list(SCHEMA)
    for k in SCHEMA:
        x, y = a[k], b[k]
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y, equal_nan=True), k
        else:
            assert type(x) is type(y) and x == y, k
    return True


def test_crc32c_matches_the_package():
    g = np.random.default_rng(0)
    data = g.integers(0, 256, 100_003, dtype=np.uint8).tobytes()
    buf = K.aligned(data)
    for a, b in [(0, len(data)), (3, 17), (5, 100_000), (8, 8), (1, 2)]:
        want = crc32c_package.crc32c(data[a:b])
        assert K.crc32c_table(buf, K.words(buf), a, b, K._CRC) == want
        if K.SSE42:
            assert K.crc32c_sse42(buf, K.words(buf), a, b, K._CRC) == want


def test_numba_decode_equals_python_decode():
    records = [_record(i) for i in range(6)] + [_record(6, file_id=-5), _record(7, phrase="(1,2)"),
                                                  _other_writer(_record(8))]
    parsed = K.parse_framed(_framed(records))
    assert parsed.ok.tolist() == [True] * 7 + [False, False]  # the quirk and the other writer: Python
    for rec, got in zip(records, K.decode_framed(_framed(records))):
        assert _same(decode_record(rec), got)
    assert wire_features(decode_record(records[6]))["file_id"] == ("int", [-5])


def test_crc_and_framing_errors_name_file_record_and_byte():
    records = [_record(i) for i in range(3)]
    data = bytearray(_framed(records))
    second = 16 + len(records[0])
    bad = bytearray(data)
    bad[second + 12 + len(records[1]) // 2] ^= 1  # a value inside the frames
    with pytest.raises(CorruptRecordError, match=rf"^f\.tfrecord: record 1 at byte {second}: data CRC mismatch$"):
        K.decode_framed(bytes(bad), "f.tfrecord")
    assert len(K.decode_framed(bytes(bad), verify=False)) == 3
    bad = bytearray(data)
    bad[second + 2] ^= 1
    with pytest.raises(CorruptRecordError, match=rf"record 1 at byte {second}: length CRC mismatch$"):
        K.decode_framed(bytes(bad), "f.tfrecord")
    third = second + 16 + len(records[1])
    with pytest.raises(CorruptRecordError, match=rf"record 7 at byte {100 + third}: truncated record$"):
        K.decode_framed(bytes(data[:-5]), "f.tfrecord", first_record=5, start=100)
    with pytest.raises(CorruptRecordError, match=r"record 3 at byte \d+: truncated length header$"):
        K.decode_framed(bytes(data) + b"\0" * 5, "f.tfrecord")
    assert K.decode_framed(b"") == []
