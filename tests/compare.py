"""Record-by-record comparison of two TFRecord trees, parsed with the `tfrecord` package's
protobufs (independent of aslfr's own decoder): file names, record order, every feature's kind and
exact float32 bits; and `same_items`, two readers' items equal, NaN included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tfrecord import example_pb2
from tfrecord.reader import tfrecord_iterator

KINDS = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64"}


def parse(data) -> dict[str, tuple[str, object]]:
    ex = example_pb2.Example.FromString(bytes(data))
    out = {}
    for key, feat in ex.features.feature.items():
        kind = feat.WhichOneof("kind")
        values = getattr(feat, kind).value
        if kind == "float_list":
            out[key] = ("float", np.asarray(values, dtype="<f4").view("<u4"))  # exact bits, NaN-safe
        elif kind == "int64_list":
            out[key] = ("int64", list(values))
        else:
            out[key] = ("bytes", list(values))
    return out


def records(path: Path) -> list[dict]:
    return [parse(r) for r in tfrecord_iterator(str(path))]


def tfrec_names(directory: Path) -> list[str]:
    return sorted(p.name for p in Path(directory).glob("*.tfrec"))


def assert_same_records(ours: Path, reference: Path) -> int:
    """Assert identical names, order and features; return the number of records compared."""
    assert tfrec_names(ours) == tfrec_names(reference), (tfrec_names(ours), tfrec_names(reference))
    n = 0
    for name in tfrec_names(reference):
        a, b = records(Path(ours) / name), records(Path(reference) / name)
        assert len(a) == len(b), name
        for i, (x, y) in enumerate(zip(a, b)):
            assert sorted(x) == sorted(y), (name, i, sorted(x), sorted(y))
            for key in y:
                assert x[key][0] == y[key][0], (name, i, key, x[key][0], y[key][0])
                if x[key][0] == "float":
                    assert np.array_equal(x[key][1], y[key][1]), (name, i, key)
                else:
                    assert x[key][1] == y[key][1], (name, i, key, x[key][1], y[key][1])
            n += 1
    return n


def same_items(a: dict, b: dict) -> None:
    """Two reader items are equal: the same keys, strings equal, tensors of the same dtype and shape
    equal value for value (NaN where NaN)."""
    import torch

    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], str):
            assert a[k] == b[k], k
        else:
            assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
            assert torch.equal(torch.nan_to_num(a[k], nan=-7.0), torch.nan_to_num(b[k], nan=-7.0)), k
