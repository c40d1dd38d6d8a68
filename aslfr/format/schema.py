"""The record schema: the reference notebook's 19 features with their kinds and shapes, and the two
directions side by side: `encode_record` (values -> Example bytes) and `decode_record` (bytes ->
values). The writer and every reader use this module; it imports neither torch nor pandas."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from aslfr.format import vocab
from aslfr.format.example import DecodeError, ExampleBuffer, decode_example, encode_example
from aslfr.format.tfrecord import CorruptRecordError, read_records


@dataclass(frozen=True)
class Feature:
    """kind is the `tfrecord` package's name ('int' -> int64_list, 'float' -> float_list,
    'byte' -> bytes_list); shape () is a scalar, (n,) a fixed list, (-1, 384) the frames."""

    kind: str
    shape: tuple[int, ...] = ()


#: name -> Feature, in the order the reference builds its feature dict.
SCHEMA: dict[str, Feature] = {
    "sequence_id": Feature("int"),
    "file_id": Feature("int"),
    "participant_id": Feature("int"),
    "phrase": Feature("byte"),
    "fold": Feature("int"),
    "phrase_len": Feature("int"),
    "phrase_type": Feature("byte"),
    "phrase_dup": Feature("int"),
    "idx": Feature("int"),
    "frames": Feature("float", (-1, vocab.N_COLS)),
    "n_frames": Feature("int"),
    "frame_mean": Feature("float"),
    "n_frames_per_char": Feature("float"),
    "first_char": Feature("int"),
    "last_char": Feature("int"),
    "phrase_": Feature("int", (vocab.MAX_PHRASE_LEN,)),
    "phrase_type_": Feature("int"),
    "weight": Feature("float"),
    "cls_label": Feature("int", (vocab.N_CHARS,)),
}
#: The CSV-derived columns a record copies as they are.
METADATA_KEYS = ["sequence_id", "file_id", "participant_id", "phrase", "fold", "phrase_len", "phrase_type",
                 "phrase_dup", "idx"]


def reference_bytes_feature(text: str) -> tuple[str, list]:
    """How the reference's `gen_feature` stores a string: a string wrapped in () or [] is split on
    commas and stored as int64 if every part is an int, else as a list of the parts; others as bytes."""
    if (text.startswith("(") and text.endswith(")")) or (text.startswith("[") and text.endswith("]")):
        parts = text[1:-1].split(",")
        try:
            return "int", [int(p.strip()) for p in parts]
        except ValueError:
            return "byte", [p.encode() for p in parts]
    return "byte", [text.encode()]


def wire_features(rec: Mapping[str, Any], reference_quirks: bool = True) -> dict[str, tuple[str, Any]]:
    """name -> (kind, values) for the Example encoder; strings follow the reference's quirk by default."""
    out = {}
    for name, feat in SCHEMA.items():
        value = rec[name]
        if feat.kind == "byte":
            out[name] = reference_bytes_feature(value) if reference_quirks else ("byte", [value.encode()])
        elif feat.kind == "float" and feat.shape:
            out[name] = ("float", value)
        else:
            out[name] = (feat.kind, value if feat.shape else [value])
    return out


def encode_record(rec: Mapping[str, Any], reference_quirks: bool = True) -> bytes:
    """One record's values as `tf.train.Example` bytes."""
    return encode_example(wire_features(rec, reference_quirks))


def encode_record_into(rec: Mapping[str, Any], buf: ExampleBuffer, reference_quirks: bool = True) -> memoryview:
    """`encode_record` into a reused buffer (a view of it, valid until the buffer's next use)."""
    return buf.encode(wire_features(rec, reference_quirks))


def decode_record(data: bytes | memoryview, where: str = "record") -> dict[str, Any]:
    """One serialized Example -> {name: value} with numpy/python values (frames [n_frames, 384], a
    view into `data`). Errors name `where` and the feature."""
    try:
        wire = decode_example(data)
    except DecodeError as e:
        raise CorruptRecordError(f"{where}: not a valid tf.train.Example ({e})") from None
    out: dict[str, Any] = {}
    for name, feat in SCHEMA.items():
        if name not in wire:
            raise CorruptRecordError(f"{where}: feature {name!r} missing")
        kind, values = wire[name]
        if feat.kind == "byte":
            out[name] = reference_text(kind, values)
        elif kind != feat.kind:
            raise CorruptRecordError(f"{where}: feature {name!r} is {kind}, expected {feat.kind}")
        elif name == "frames":
            if len(values) % feat.shape[1]:
                raise CorruptRecordError(f"{where}: frames hold {len(values)} values, not a multiple of {feat.shape[1]}")
            out[name] = values.reshape(feat.shape)
        elif feat.shape:
            if len(values) != feat.shape[0]:
                raise CorruptRecordError(f"{where}: feature {name!r} has {len(values)} values, expected {feat.shape[0]}")
            out[name] = np.asarray(values, dtype=np.int64 if kind == "int" else np.float32)
        else:
            if len(values) != 1:
                raise CorruptRecordError(f"{where}: feature {name!r} has {len(values)} values, expected 1")
            out[name] = int(values[0]) if kind == "int" else float(values[0])
    return out


def read_shard(path: str | Path, verify: bool = True,
               storage_options: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Every record of one shard file (a path or a URL), decoded to numpy/python values (CRCs
    checked by default)."""
    for n, data in enumerate(read_records(path, verify, storage_options=storage_options)):
        yield decode_record(data, f"{path}: record {n}")


def reference_text(kind: str, values: list) -> str:
    """A bytes feature back as str: the inverse of `reference_bytes_feature` (the "(a,b)" quirk)."""
    if kind == "byte" and len(values) == 1:
        return values[0].decode()
    parts = [v.decode() if isinstance(v, bytes) else str(v) for v in values]
    return "(" + ",".join(parts) + ")"


#: Bumped when the meaning of a feature changes without its name, kind or shape changing.
SCHEMA_VERSION = 1


def schema_fingerprint(reference_quirks: bool = True) -> str:
    """A short hash of the schema (names, kinds, shapes, version, string quirk): receipts carry it,
    so that `resume` rewrites shards written under another schema."""
    desc = {"version": SCHEMA_VERSION, "reference_quirks": reference_quirks,
            "features": [[n, f.kind, list(f.shape)] for n, f in SCHEMA.items()]}
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:16]
