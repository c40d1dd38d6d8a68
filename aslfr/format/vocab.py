"""The competition's fixed vocabulary: the 384 selected landmark columns, the character map and
the reference notebook's token rules (char index + 1, PAD 0, EOS 60, 32 tokens)."""

from __future__ import annotations

import json
import re
from importlib import resources

_RES = resources.files("aslfr") / "resources"

#: The 384 parquet columns the reference keeps, in its order (128 points, x/y/z interleaved).
SELECTED_COLUMNS: list[str] = json.loads((_RES / "selected_columns.json").read_text())
N_COLS = len(SELECTED_COLUMNS)
N_POINTS = N_COLS // 3

#: The 128 points in groups, in column order: the reference's `splits`, which `flip_lr` swaps pairwise
#: (left <-> right) and which drawings colour. "mid" is face 0, 17, 13, 14 (lips) and 1, 2 (nose).
POINT_GROUPS: tuple[tuple[str, int], ...] = (
    ("left_hand", 21), ("right_hand", 21), ("left_arm", 5), ("right_arm", 5), ("left_lips", 18), ("right_lips", 18),
    ("left_eye", 16), ("right_eye", 16), ("left_nose", 1), ("right_nose", 1), ("mid", 6))


def _point_ranges() -> dict[str, slice]:
    out, start = {}, 0
    for name, n in POINT_GROUPS:
        out[name] = slice(start, start + n)
        start += n
    if start != N_POINTS:
        raise ValueError(f"point groups cover {start} points, the selected columns {N_POINTS}")
    return out


#: group name -> its points' range among the 128 (point p has columns 3p, 3p+1, 3p+2: x, y, z).
POINTS: dict[str, slice] = _point_ranges()


def point(landmark: str) -> int:
    """The index among the 128 selected points of a parquet landmark, e.g. `point("pose_16")`."""
    return SELECTED_COLUMNS.index(f"x_{landmark}") // 3


def columns(group: str) -> slice:
    """A point group's columns among the 384."""
    p = POINTS[group]
    return slice(3 * p.start, 3 * p.stop)

#: The competition's character map, 59 characters -> 0..58 (byte-identical to the original file).
CHAR_TO_INDEX: dict[str, int] = json.loads((_RES / "character_to_prediction_index.json").read_text())
N_CHARS = len(CHAR_TO_INDEX)

PAD = 0
EOS = N_CHARS + 1  # 60
VOCAB_SIZE = N_CHARS + 2  # 61
MAX_PHRASE_LEN = 32
PHRASE_TYPES = {"address": 0, "url": 1, "phone": 2, "sup": 3}

_PHONE = re.compile(r"^[\d+-]+$")


def phrase_type(phrase: str) -> str:
    """The notebook's rule: phone if only digits/+/-, url if it has www . or / and no space."""
    if _PHONE.match(phrase):
        return "phone"
    if any(s in phrase for s in ("www", ".", "/")) and " " not in phrase:
        return "url"
    return "address"


def unknown_chars(phrase: str) -> list[str]:
    """Characters of `phrase` missing from the character map, in order of appearance."""
    return sorted(set(phrase) - CHAR_TO_INDEX.keys(), key=phrase.index)


def tokens(phrase: str, eos_always: bool = False) -> list[int]:
    """`phrase_`: char index + 1, then EOS, padded with PAD or cut to 32.

    The reference cuts *after* appending EOS, so a phrase of 32+ characters loses its EOS;
    `eos_always=True` keeps EOS as the last token instead."""
    ids = [CHAR_TO_INDEX[c] + 1 for c in phrase] + [EOS]
    if len(ids) > MAX_PHRASE_LEN:
        ids = ids[: MAX_PHRASE_LEN - 1] + [EOS] if eos_always else ids[:MAX_PHRASE_LEN]
    return ids + [PAD] * (MAX_PHRASE_LEN - len(ids))


def decode_tokens(ids) -> str:
    """Inverse of `tokens` up to EOS/PAD (for display and CTC targets)."""
    chars = {v + 1: k for k, v in CHAR_TO_INDEX.items()}
    out = []
    for i in ids:
        i = int(i)
        if i in (PAD, EOS):
            break
        out.append(chars[i])
    return "".join(out)


def cls_label(phrase: str) -> list[int]:
    """Multi-hot over the 59 original character indices."""
    label = [0] * N_CHARS
    for c in phrase:
        label[CHAR_TO_INDEX[c]] = 1
    return label
