"""Landmark parquet files as sequences: one read per file, grouped like the reference's
`for seq_id in df.index.unique(): df[df.index == seq_id]` (first-appearance order, all rows of an
id in file order, contiguous or not) without its quadratic scan, and a torch Dataset over them."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from torch.utils.data import Dataset

from aslfr.errors import InputError
from aslfr.vocab import SELECTED_COLUMNS

#: Columns decoded per pyarrow call: bounds the transient copy to a fraction of one file.
_COLUMN_CHUNK = 8


def _open(path: str):
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not Path(path).is_file():
        raise InputError(f"{path}: parquet file not found")
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"{path}: corrupt or truncated parquet file ({e})") from None


def _index_column(pf) -> str:
    meta = pf.schema_arrow.pandas_metadata or {}
    names = [c for c in meta.get("index_columns", []) if isinstance(c, str)]
    return names[0] if names else "sequence_id"


def read_sequence_ids(path: str) -> np.ndarray:
    """The file's sequence ids in first-appearance order (reads only the index column)."""
    pf = _open(path)
    col = _index_column(pf)
    ids = _read(pf, path, [col]).column(0).to_numpy()
    _, first = np.unique(ids, return_index=True)
    return ids[np.sort(first)]


def _read(pf, path: str, columns: list[str]):
    import pyarrow as pa

    try:
        return pf.read(columns=columns, use_pandas_metadata=False)
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"{path}: corrupt or truncated parquet file ({e})") from None


def _check_schema(pf, path: str, columns: Sequence[str], index: str) -> None:
    import pyarrow as pa

    schema = pf.schema_arrow
    missing = [c for c in columns if schema.get_field_index(c) < 0]
    if schema.get_field_index(index) < 0:
        raise InputError(f"{path}: no '{index}' index column")
    if missing:
        raise InputError(f"{path}: missing {len(missing)} selected column(s), first {missing[0]}")
    wrong = [c for c in columns if schema.field(c).type != pa.float32()]
    if wrong:
        raise InputError(f"{path}: column {wrong[0]} has dtype {schema.field(wrong[0]).type}, expected float")
    if not pa.types.is_integer(schema.field(index).type):
        raise InputError(f"{path}: index column '{index}' has dtype {schema.field(index).type}, expected an integer")


@dataclass
class Landmarks:
    """One parquet file's selected columns. `data` is column-major ([n_cols, n_rows]) so filling it is
    sequential; `frames(k)` returns sequence k as a row-major float32 [n_frames, n_cols] array."""

    path: str
    data: np.ndarray
    sequence_ids: np.ndarray  # unique ids, first-appearance order
    _bounds: np.ndarray  # group k's rows are _rows[_bounds[k]:_bounds[k+1]]
    _rows: np.ndarray | None  # None when every sequence is one contiguous run of rows

    def __len__(self) -> int:
        return len(self.sequence_ids)

    def frames(self, k: int) -> np.ndarray:
        a, b = int(self._bounds[k]), int(self._bounds[k + 1])
        block = self.data[:, a:b] if self._rows is None else self.data[:, self._rows[a:b]]
        return np.ascontiguousarray(block.T)

    def n_frames(self, k: int) -> int:
        return int(self._bounds[k + 1] - self._bounds[k])


def group_rows(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(unique ids in first-appearance order, group bounds, row order or None if contiguous)."""
    n = len(ids)
    if n == 0:
        return ids[:0], np.zeros(1, np.int64), None
    change = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    uniq, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    if len(change) + 1 == len(uniq):  # each id is one run; runs are already in first-appearance order
        return ids[np.concatenate([[0], change])], np.concatenate([[0], change, [n]]).astype(np.int64), None
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    group = rank[inverse.reshape(-1)]
    rows = np.argsort(group, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(group, minlength=len(uniq)))]).astype(np.int64)
    return uniq[order], bounds, rows


_SCRATCH = np.empty(0, dtype=np.float32)


def _scratch(n: int) -> np.ndarray:
    """A per-process float32 buffer of at least n values, reused from file to file: filling fresh
    memory costs a page fault per 4 KiB, a third of the time of converting a file."""
    global _SCRATCH
    if _SCRATCH.size < n:
        _SCRATCH = np.empty(0, dtype=np.float32)
        _SCRATCH = np.empty(int(n * 1.25), dtype=np.float32)
    return _SCRATCH[:n]


def read_landmarks(path: str, columns: Sequence[str] = SELECTED_COLUMNS, reuse_buffer: bool = False) -> Landmarks:
    """Read `columns` of one file (a few columns at a time) and group its rows by sequence.

    With `reuse_buffer` the frames live in a per-process buffer that the next call overwrites
    (the converter holds one file at a time)."""
    pf = _open(path)
    index = _index_column(pf)
    _check_schema(pf, path, columns, index)
    n = pf.metadata.num_rows
    ids = _read(pf, path, [index]).column(0).to_numpy().astype(np.int64, copy=False)
    if len(ids) != n:
        raise InputError(f"{path}: corrupt parquet file (row count {len(ids)} != {n})")
    shape = (len(columns), n)
    data = _scratch(shape[0] * n).reshape(shape) if reuse_buffer else np.empty(shape, dtype=np.float32)
    for start in range(0, len(columns), _COLUMN_CHUNK):
        names = list(columns[start:start + _COLUMN_CHUNK])
        table = _read(pf, path, names)
        for j, name in enumerate(names):
            data[start + j] = table.column(j).to_numpy()
        del table
    seq_ids, bounds, rows = group_rows(ids)
    return Landmarks(str(path), data, seq_ids, bounds, rows)


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

    def __init__(self, data_dir: str | Path, split: str = "train", folds: int = 4, fold_seed: int = 1229,
                 sup_weight: float = 0.1, eos_always: bool = False, metadata=None):
        from aslfr.metadata import load_metadata, parquet_files

        self.metadata = metadata if metadata is not None else load_metadata(data_dir, split, folds, fold_seed)
        self.weight = 1.0 if split == "train" else sup_weight
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
        from aslfr.record import make_record

        f, k, sid = self.index[i]
        lm = _cached_landmarks(self.files[f])
        return make_record(self._meta[sid], lm.frames(k), self.weight, self.eos_always)

    def __getitem__(self, i: int) -> dict[str, Any]:
        from aslfr.record import to_torch

        return to_torch(self.record(i))
