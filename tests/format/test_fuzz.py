"""Property tests (hypothesis, a test extra): every random byte flip in a shard is detected, and
random phrases and NaN patterns survive encode -> decode bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("hypothesis", reason="hypothesis is not installed (a test extra: pip install -e '.[test]')")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_byte_flips_always_detected(tmp_path_factory, data):
    from aslfr.format.example import encode_example
    from aslfr.format.schema import read_shard
    from aslfr.convert.shards import RecordWriter
    from aslfr.format.tfrecord import CorruptRecordError

    path = tmp_path_factory.mktemp("flip") / "0.3.tfrec"
    with open(path, "wb") as f:
        w = RecordWriter(f)
        for i in range(3):
            w.write_serialized(encode_example({"a": ("int", [i]), "f": ("float", np.arange(50, dtype=np.float32))}))
    raw = bytearray(path.read_bytes())
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] ^= data.draw(st.integers(1, 255))
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptRecordError):
        list(read_shard(path))


_PHRASE = st.text(alphabet=st.sampled_from(sorted(__import__("aslfr.format.vocab").format.vocab.CHAR_TO_INDEX)), min_size=1, max_size=60)


@settings(max_examples=60, deadline=None)
@given(phrase=_PHRASE, n=st.integers(1, 30), nan_rate=st.floats(0, 1), seed=st.integers(0, 2**32 - 1))
def test_random_phrases_and_nan_patterns_round_trip(phrase, n, nan_rate, seed):
    from aslfr.format.example import encode_example
    from aslfr.format.schema import decode_record
    from aslfr.format.schema import wire_features
    from aslfr.source.records import make_record
    from aslfr.format.vocab import phrase_type

    rng = np.random.default_rng(seed)
    frames = rng.normal(size=(n, 384)).astype(np.float32)
    frames[rng.random((n, 384)) < nan_rate] = np.nan
    meta = {"sequence_id": 1, "file_id": 2, "participant_id": 3, "phrase": phrase, "fold": 1, "phrase_len": len(phrase),
            "phrase_type": phrase_type(phrase), "phrase_dup": 0, "idx": 5}
    rec = make_record(meta, frames, 1.0)
    back = decode_record(encode_example(wire_features(rec, reference_quirks=False)))
    assert back["phrase"] == phrase
    assert np.array_equal(back["frames"].view(np.uint32), frames.view(np.uint32))  # NaN payloads too
    assert list(back["phrase_"]) == rec["phrase_"] and back["frame_mean"] == rec["frame_mean"]
