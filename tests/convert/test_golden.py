"""Golden files written by the reference notebook itself, with real TensorFlow (tensorflow-cpu 2.21,
`run_reference.py`), on synthetic input that `aslfr.synthetic` regenerates here:
    python -m aslfr.synthetic IN --train-files 2 --sup-files 1 --sequences 16 --mean-frames 6 --seed 0
`records.json` (made by `tests/golden/dump_records.py`, TensorFlow) holds every record's features as TensorFlow parsed them (floats as float32 bit
patterns, frames as sha256 + count). The converter, and the TF stand-in used by the other tests,
must reproduce them exactly."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aslfr.source.synthetic import SplitSpec, generate
from compare import assert_same_records, records, tfrec_names
from conftest import convert_both, run_reference

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def _fingerprint(root: Path) -> dict[str, str]:
    h = {}
    for csv in ("train.csv", "supplemental_metadata.csv"):
        h[csv] = hashlib.sha256((root / csv).read_bytes()).hexdigest()
        for path in dict.fromkeys(pd.read_csv(root / csv).path):
            df = pd.read_parquet(root / path)
            h[path] = hashlib.sha256(np.ascontiguousarray(df.index.to_numpy()).tobytes()
                                     + np.ascontiguousarray(df.to_numpy(np.float32)).tobytes()).hexdigest()
    return h


@pytest.fixture(scope="module")
def golden_input(tmp_path_factory) -> Path:
    root = generate(tmp_path_factory.mktemp("golden_in"), SplitSpec(2, 16, 6, 8), SplitSpec(1, 16, 6, 8), seed=0)
    assert _fingerprint(root) == json.loads((GOLDEN / "input_fingerprint.json").read_text()), \
        "the synthetic generator no longer reproduces the golden input"
    return root


@pytest.fixture(scope="module")
def ours(golden_input, tmp_path_factory) -> Path:
    return convert_both(golden_input, tmp_path_factory.mktemp("golden_ours"))


def _as_tf_json(rec: dict) -> dict:
    out = {}
    for key, (kind, values) in sorted(rec.items()):
        if key == "frames":
            raw = np.asarray(values, dtype="<u4").astype("<u4").tobytes()
            out[key] = {"kind": "float", "count": len(values), "sha256": hashlib.sha256(raw).hexdigest()}
        elif kind == "float":
            out[key] = {"kind": "float", "values": [struct.pack("<I", int(v)).hex() for v in values]}
        elif kind == "bytes":
            out[key] = {"kind": "bytes", "values": [v.decode() for v in values]}
        else:
            out[key] = {"kind": "int64", "values": [int(v) for v in values]}
    return out


@pytest.mark.parametrize("sub", ["train", "sup"])
def test_converter_equals_tensorflow_golden(ours, sub):
    golden = json.loads((GOLDEN / "reference" / "records.json").read_text())
    names = tfrec_names(ours / "tfrecords" / sub)
    assert [f"{sub}/{n}" for n in names] == sorted(k for k in golden if k.startswith(sub + "/"))
    for name in names:
        got = [_as_tf_json(r) for r in records(ours / "tfrecords" / sub / name)]
        want = golden[f"{sub}/{name}"]
        assert len(got) == len(want), name
        for i, (g, w) in enumerate(zip(got, want)):
            assert g == w, (name, i, [k for k in w if g.get(k) != w[k]])


@pytest.mark.parametrize("sub", ["train", "sup"])
def test_converter_equals_golden_tfrec_files(ours, sub):
    assert assert_same_records(ours / "tfrecords" / sub, GOLDEN / "reference" / "tfrecords" / sub) > 0


def test_inference_args_equal_golden(ours):
    assert (ours / "inference_args.json").read_bytes() == (GOLDEN / "reference" / "inference_args.json").read_bytes()


def test_tensorflow_stand_in_equals_golden(golden_input, tmp_path):
    """The stand-in that lets the other tests run the notebook's code gives TensorFlow's records."""
    for split, sub in (("train", "train"), ("supplemental", "sup")):
        out = run_reference(golden_input, tmp_path, split)
        assert assert_same_records(out, GOLDEN / "reference" / "tfrecords" / sub) > 0
