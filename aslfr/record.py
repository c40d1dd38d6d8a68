"""The record schema: the reference notebook's 19 features, their kinds and shapes, how one sequence
becomes a record, and how a record becomes torch values. Writer and reader both use `SCHEMA`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from aslfr import vocab


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


def frame_mean(frames: np.ndarray, zeroed: np.ndarray | None = None) -> np.float32:
    """The reference's `np.nan_to_num(np.array(frames)).mean()` over the flat float32 values, bit
    for bit: NaN -> 0 in one pass (nan_to_num's inf handling only when there is an inf).
    `zeroed` is frames with NaN already set to 0, if the caller has it."""
    flat = frames.reshape(-1)
    z = np.where(np.isnan(flat), np.float32(0), flat) if zeroed is None else zeroed.reshape(-1)
    mean = z.mean()
    return np.float32(mean) if np.isfinite(mean) else np.float32(np.nan_to_num(flat).mean())


def make_record(meta: Mapping[str, Any], frames: np.ndarray, weight: float, eos_always: bool = False,
                zeroed: np.ndarray | None = None) -> dict[str, Any]:
    """One sequence's features as the reference computes them.

    `meta` holds METADATA_KEYS (one CSV row after `load_metadata`); `frames` is float32 [n_frames, 384]."""
    phrase = str(meta["phrase"])
    n_frames = int(frames.shape[0])
    rec: dict[str, Any] = {k: meta[k] if k in ("phrase", "phrase_type") else int(meta[k]) for k in METADATA_KEYS}
    rec["frames"] = frames
    rec["n_frames"] = n_frames
    rec["frame_mean"] = frame_mean(frames, zeroed)
    rec["n_frames_per_char"] = np.float32(n_frames / int(meta["phrase_len"]))
    rec["first_char"] = vocab.CHAR_TO_INDEX[phrase[0]]
    rec["last_char"] = vocab.CHAR_TO_INDEX[phrase[-1]]
    rec["phrase_"] = vocab.tokens(phrase, eos_always)
    rec["phrase_type_"] = vocab.PHRASE_TYPES[meta["phrase_type"]]
    rec["weight"] = np.float32(weight)
    rec["cls_label"] = vocab.cls_label(phrase)
    return {k: rec[k] for k in SCHEMA}


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


def to_torch(rec: Mapping[str, Any]) -> dict[str, Any]:
    """Typed item for PyTorch: frames float32 [n_frames, 384], ints int64, floats float32, strings str."""
    import torch

    out: dict[str, Any] = {}
    for name, feat in SCHEMA.items():
        value = rec[name]
        if feat.kind == "byte":
            out[name] = value if isinstance(value, str) else value.decode()
        elif name == "frames":
            out[name] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32).reshape(feat.shape))
        elif not feat.shape:
            out[name] = torch.tensor(int(value) if feat.kind == "int" else float(value),
                                     dtype=torch.int64 if feat.kind == "int" else torch.float32)
        else:
            out[name] = torch.from_numpy(np.asarray(value, dtype=np.int64 if feat.kind == "int" else np.float32))
    return out
