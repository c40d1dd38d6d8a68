"""Synthetic data in the exact competition layout, so the whole pipeline runs on a fresh machine.

Writes `train.csv`, `supplemental_metadata.csv` (path,file_id,sequence_id,participant_id,phrase),
`{train,supplemental}_landmarks/<file_id>.parquet` (pandas index `sequence_id`, column `frame`, then the
1629 float32 landmark columns x..., y..., z...) and `character_to_prediction_index.json`.
The data has whole-hand NaN runs, unsorted sequence ids, a sequence whose rows are split in two,
1-frame and long sequences, all phrase types and phrases longer than 31 characters.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from aslfr.format import layout
from aslfr.source.metadata import CSV_COLUMNS

_PARTS = [("face", 468), ("left_hand", 21), ("pose", 33), ("right_hand", 21)]
#: The 1629 landmark columns in competition order: all x, then all y, then all z.
LANDMARK_COLUMNS = [f"{axis}_{part}_{i}" for axis in "xyz" for part, n in _PARTS for i in range(n)]
_HAND_COLS = {
    hand: np.array([j for j, c in enumerate(LANDMARK_COLUMNS) if f"_{hand}_hand_" in c])
    for hand in ("left", "right")
}

_STREETS = ["main street", "creekhouse", "oak ave", "sunset blvd", "river road", "hill lane", "park drive"]
_WORDS = ["coming", "up", "with", "killer", "sound", "bites", "knee", "bone", "is", "connected", "to", "the",
          "thigh", "burglars", "never", "leave", "their", "business", "card", "quick", "brown", "fox"]
_TLDS = [".com", ".org", ".net", ".io"]


@dataclass(frozen=True)
class SplitSpec:
    """Size of one split: files × sequences per file, gamma-distributed frame counts."""

    files: int
    sequences: int
    mean_frames: float
    participants: int


def _phrase(rng: np.random.Generator, kind: str) -> str:
    if kind == "phone":
        return "".join(rng.choice(list("0123456789"), 3)) + "-" + "".join(rng.choice(list("0123456789"), 3)) \
            + "-" + "".join(rng.choice(list("0123456789"), 4)) if rng.random() < 0.7 else "+" + str(rng.integers(10**9, 10**11))
    if kind == "url":
        name = "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), int(rng.integers(3, 12))))
        return ("www." if rng.random() < 0.5 else "") + name + str(rng.choice(_TLDS)) + ("/" + name[:4] if rng.random() < 0.3 else "")
    if kind == "sentence":
        return " ".join(rng.choice(_WORDS, int(rng.integers(3, 9))))
    return f"{int(rng.integers(1, 99999))} {rng.choice(_STREETS)}"


def _phrases(rng: np.random.Generator, n: int, sup: bool) -> list[str]:
    if sup:  # sentences, many over 31 characters, one exactly 31 and one of 32 (EOS cut)
        out = [_phrase(rng, "sentence") for _ in range(n)]
        out[0] = "knee bone is connected to the thigh bone"
        if n > 2:
            out[1], out[2] = "coming up with killer sound bit", "coming up with killer sound bite"
        return out
    kinds = rng.choice(["address", "url", "phone"], n, p=[0.5, 0.25, 0.25])
    out = [_phrase(rng, k) for k in kinds]
    if n > 1:
        out[1] = "a"  # one-character phrase
    return out


_LIPS = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146]
_INNER_LIPS = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95]
_EYES = ([263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398],
         [33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173])
_FINGERS = [(1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12), (13, 14, 15, 16), (17, 18, 19, 20)]


def _ring(n: int, centre, radii) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([centre[0] + radii[0] * np.cos(t), centre[1] + radii[1] * np.sin(t)], 1)


def _hand(rng: np.random.Generator) -> np.ndarray:
    """21 points of an open hand, wrist at the origin, fingers up, in image units."""
    pts = np.zeros((21, 2))
    for f, joints in enumerate(_FINGERS):
        angle = np.deg2rad(-60 + 30 * f + rng.normal(0, 5))
        base = 0.035 * np.array([np.sin(angle) * 1.2, -np.cos(angle)])
        direction = np.array([np.sin(angle * 0.6), -np.cos(angle * 0.6)])
        for k, j in enumerate(joints):
            pts[j] = base + direction * 0.018 * k * (0.8 if f == 0 else 1.0)
    return pts


def _skeleton(rng: np.random.Generator) -> np.ndarray:
    """[543, 2] resting positions: face with lips and eyes, shoulders and arms, two hands raised."""
    xy = np.empty((543, 2))
    face = rng.normal(0, 1, (468, 2)) * (0.05, 0.07) + (0.5, 0.3)
    face[_LIPS] = _ring(len(_LIPS), (0.5, 0.39), (0.04, 0.018))
    face[_INNER_LIPS] = _ring(len(_INNER_LIPS), (0.5, 0.39), (0.03, 0.008))
    face[_EYES[0]] = _ring(16, (0.54, 0.27), (0.02, 0.008))
    face[_EYES[1]] = _ring(16, (0.46, 0.27), (0.02, 0.008))
    face[[1, 2, 98, 327]] = [(0.5, 0.33), (0.5, 0.345), (0.485, 0.34), (0.515, 0.34)]
    xy[:468] = face
    pose = rng.normal(0, 1, (33, 2)) * 0.03 + (0.5, 0.7)
    pose[[11, 12]] = [(0.62, 0.55), (0.38, 0.55)]  # shoulders
    pose[[13, 14]] = [(0.72, 0.75), (0.28, 0.75)]  # elbows
    pose[[15, 16]] = [(0.62, 0.52), (0.38, 0.52)]  # wrists, raised to sign
    for wrist, tips in ((15, (17, 19, 21)), (16, (18, 20, 22))):
        pose[list(tips)] = pose[wrist] + rng.normal(0, 0.012, (3, 2)) + (0, -0.03)
    xy[489:522] = pose
    xy[468:489] = _hand(rng) + pose[15]  # left hand at the left wrist
    xy[522:543] = _hand(rng) * (-1, 1) + pose[16]
    return xy


def _frames(rng: np.random.Generator, n: int) -> np.ndarray:
    """[n, 1629] float32 landmarks (x block, y block, z block): a signer whose hands and arms move
    smoothly, with jitter and whole-hand NaN runs."""
    xy = np.broadcast_to(_skeleton(rng), (n, 543, 2)).copy()
    for hand, wrist in ((slice(468, 489), 15), (slice(522, 543), 16)):
        walk = np.cumsum(rng.normal(0, 0.006, (n, 1, 2)), axis=0)
        xy[:, hand] += walk
        xy[:, 489 + wrist] += walk[:, 0]
    xy += rng.normal(0, 0.002, xy.shape)
    z = rng.normal(0, 0.02, (n, 543))
    x = np.concatenate([xy[..., 0], xy[..., 1], z], axis=1).astype(np.float32)
    for hand, p_missing in (("left", 0.8), ("right", 0.5)):
        missing = np.zeros(n, bool)
        i = 0
        while i < n:  # alternating present/missing runs
            run = int(rng.integers(1, 30))
            if rng.random() < p_missing:
                missing[i:i + run] = True
            i += run
        x[np.ix_(missing, _HAND_COLS[hand])] = np.nan
    return x


def _unique_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    ids = rng.integers(10**6, 2 * 10**9, n + 16)
    _, first = np.unique(ids, return_index=True)
    return ids[np.sort(first)][:n]


def _lengths(rng: np.random.Generator, n: int, mean: float) -> np.ndarray:
    lengths = np.clip(rng.gamma(3.6, mean / 3.6, n).round().astype(int), 1, 1000)
    if n > 2:
        lengths[0] = 1  # a 1-frame sequence
        lengths[2] = max(int(mean * 5), 8)  # a long one
    return lengths


def write_split(root: Path, split: str, spec: SplitSpec, rng: np.random.Generator, first_participant: int) -> pd.DataFrame:
    """Write one split's parquet files; return its CSV rows in file order."""
    sup = split == "supplemental"
    folder = layout.split(split).landmarks
    (root / folder).mkdir(parents=True, exist_ok=True)
    rows = []
    for _ in range(spec.files):
        file_id = int(rng.integers(10**6, 2 * 10**9))
        seq_ids = _unique_ids(rng, spec.sequences)  # not sorted
        lengths = _lengths(rng, spec.sequences, spec.mean_frames)
        phrases = _phrases(rng, spec.sequences, sup)
        participants = first_participant + rng.integers(0, spec.participants, spec.sequences)
        blocks = [_frames(rng, n) for n in lengths]
        index = [np.full(n, s, dtype=np.int64) for s, n in zip(seq_ids, lengths)]
        frame_no = [np.arange(n, dtype=np.int16) for n in lengths]
        if spec.sequences > 4 and lengths[3] > 1:  # split one sequence's rows around its neighbour
            h = int(lengths[3]) // 2
            for lst in (blocks, index, frame_no):
                a, b = lst[3][:h], lst[3][h:]
                lst[3] = a
                lst.insert(5, b)
        data = np.concatenate(blocks)
        df = pd.DataFrame(data, columns=LANDMARK_COLUMNS, index=pd.Index(np.concatenate(index), name="sequence_id"))
        df.insert(0, "frame", np.concatenate(frame_no))
        df.to_parquet(root / folder / f"{file_id}.parquet")
        rows += [(f"{folder}/{file_id}.parquet", file_id, int(s), int(p), ph)
                 for s, p, ph in zip(seq_ids, participants, phrases)]
    return pd.DataFrame(rows, columns=CSV_COLUMNS)


def generate(root: str | Path, train: SplitSpec, supplemental: SplitSpec | None, seed: int = 0) -> Path:
    """Write a complete synthetic dataset under `root` (idempotent for the same arguments)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    write_split(root, "train", train, rng, 100).to_csv(layout.csv_path(root, "train"), index=False)
    if supplemental is not None:
        write_split(root, "supplemental", supplemental, rng, 100 + train.participants // 2).to_csv(
            layout.csv_path(root, "supplemental"), index=False)
    src = resources.files("aslfr") / "resources" / "character_to_prediction_index.json"
    shutil.copyfile(str(src), root / "character_to_prediction_index.json")
    return root
