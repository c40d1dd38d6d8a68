"""A torch Dataset straight over the competition parquet files: the records' items without converting."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from aslfr.data.tensors import to_torch
from aslfr.errors import InputError
from aslfr.format.layout import FOLD_SEED, FOLDS, SUP_WEIGHT, split_weight
from aslfr.source.landmarks import Landmarks, read_landmarks, read_sequence_ids
from aslfr.source.records import make_record


@lru_cache(maxsize=1)
def _cached_landmarks(path: str) -> Landmarks:
    return read_landmarks(path)


class ParquetSequences(Dataset):
    """A map-style torch Dataset: one item per sequence of a split, all 19 record features with
    frames float32 [n_frames, 384], in the converter's pre-shuffle order (parquet files in CSV
    order, sequences in first-appearance order). Reads a file once and keeps the last one, so
    iterate in order (or per file) for speed.

        ds = ParquetSequences("data/", split="train")
        item = ds[0]; item["frames"].shape  # torch.Size([n_frames, 384])
    """

    def __init__(self, data_dir: str | Path, split: str = "train", folds: int = FOLDS, fold_seed: int = FOLD_SEED,
                 sup_weight: float = SUP_WEIGHT, eos_always: bool = False, metadata=None):
        from aslfr.source.metadata import load_metadata, parquet_files

        self.metadata = metadata if metadata is not None else load_metadata(data_dir, split, folds, fold_seed)
        self.weight = split_weight(split, sup_weight)
        self.eos_always = eos_always
        self.files = parquet_files(self.metadata)
        rows = self.metadata.set_index("sequence_id", drop=False)
        self._meta = {sid: rows.loc[sid] for sid in rows.index}
        self.index: list[tuple[int, int, int]] = []  # (file position, group k, sequence_id)
        for i, f in enumerate(self.files):
            for k, sid in enumerate(read_sequence_ids(f).tolist()):
                if sid not in self._meta:
                    raise InputError(f"{f}: sequence {sid}: in the parquet file but not in the CSV")
                self.index.append((i, k, sid))

    def __len__(self) -> int:
        return len(self.index)

    def record(self, i: int) -> dict[str, Any]:
        """Item i as numpy/python values (what the converter encodes)."""
        f, k, sid = self.index[i]
        lm = _cached_landmarks(self.files[f])
        return make_record(self._meta[sid], lm.frames(k), self.weight, self.eos_always)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return to_torch(self.record(i))
