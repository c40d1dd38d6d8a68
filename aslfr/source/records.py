"""How one sequence becomes a record: the reference notebook's derived features, computed by the
writer and by `ParquetSequences` (readers of the records only decode them, with `aslfr.format.schema`)."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from aslfr.format import vocab
from aslfr.format.schema import METADATA_KEYS, SCHEMA


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
