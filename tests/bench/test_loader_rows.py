"""The threads-against-processes rows (`aslfr.bench.loaders`): on the small converted records each
path gives a figure for both sides and their ratio. No figure is asserted."""

from __future__ import annotations

import re

from aslfr.bench.loaders import loader_rows

FIGURE = r"[\d,]+ \[[\d,]+-[\d,]+\]"


def test_loader_rows_on_the_small_records(converted):
    rows = loader_rows(converted / "tfrecords" / "train", epochs=1, workers=1, batch=6)
    assert [label.split(",")[0] for label, _ in rows] == ["training input"] * 2 + ["inference input"] * 2 + ["read"] * 2
    for label, value in rows:
        assert re.fullmatch(rf"{FIGURE} \| {FIGURE}   threads/processes \d+\.\d\dx", value), (label, value)


def test_stream_row_against_the_shards_reader(converted):
    from aslfr.bench.loaders import stream_rows

    [(label, value)] = stream_rows(converted / "tfrecords" / "train", epochs=1, workers=1, batch=6)
    assert "TFRecordShards | TFRecordStream" in label
    assert re.fullmatch(rf"{FIGURE} \| {FIGURE}   stream/shards \d+\.\d\dx", value), value
