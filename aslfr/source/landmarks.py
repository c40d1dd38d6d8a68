"""Landmark parquet files as sequences: one read per file, grouped like the reference's
`for seq_id in df.index.unique(): df[df.index == seq_id]` (first-appearance order, all rows of an
id in file order, contiguous or not) without its quadratic scan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from aslfr.errors import InputError
from aslfr.format.store import FsspecStore, Store
from aslfr.format.vocab import SELECTED_COLUMNS

#: Columns decoded per pyarrow call: bounds the transient copy to a fraction of one file.
_COLUMN_CHUNK = 8


def _open(path: str, columns: Sequence[str], options=None):
    """The file, of which a URL's `columns` (and its index) are fetched up front (`prefetched`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    store, name = Store.of_file(path, options)
    if not store.is_file(name):
        raise InputError(f"{path}: parquet file not found")
    try:
        return pq.ParquetFile(prefetched(store, name, [*columns, "sequence_id"])
                              if isinstance(store, FsspecStore) else path)
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"{path}: corrupt or truncated parquet file ({_one_line(e)})") from None


#: Bytes fetched from a parquet file's end for its footer (one request; more only if the footer is longer).
FOOTER = 1 << 20
#: Column chunks closer than this are fetched in one ranged request.
MAX_GAP = 64 << 10


def prefetched(store: FsspecStore, name: str, columns: Sequence[str]):
    """A remote parquet file of which only the footer and the chunks of `columns` (and of the pandas
    index) will be read: its footer is fetched, then every such chunk at once, in concurrent ranged
    requests, into memory (fsspec's known-parts cache). s3fs's default read-ahead fetched megabytes
    per scattered column chunk (25-30x slower over a local S3 server), and per-read requests would
    pay one round trip a column chunk; fsspec.parquet plans the same ranges but matches every
    chunk's name against every column in Python, about a second of CPU a file for 1,630 chunks x
    385 names."""
    import io
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq
    from fsspec.parquet import AlreadyBufferedFile

    fs, path = store.fs, store.path(name)
    with store.naming(name):
        size = fs.size(path)
        tail = fs.cat_file(path, start=max(size - FOOTER, 0), end=size) if size else b""
        if len(tail) < 12 or tail[-4:] != b"PAR1":
            return io.BytesIO(tail)  # not parquet: pyarrow says so, naming what it found
        need = int.from_bytes(tail[-8:-4], "little") + 8
        if need > len(tail):
            tail = fs.cat_file(path, start=max(size - need, 0), end=size - len(tail)) + tail
        meta = pq.read_metadata(pa.BufferReader(tail[-need:]))
        wanted = set(columns)
        pandas = json.loads((meta.metadata or {}).get(b"pandas", b"{}"))
        wanted |= {c for c in pandas.get("index_columns", []) if isinstance(c, str)}
        spans = []
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for c in range(group.num_columns):
                chunk = group.column(c)
                if chunk.path_in_schema in wanted:
                    first = chunk.dictionary_page_offset if chunk.has_dictionary_page else chunk.data_page_offset
                    spans.append([first, first + chunk.total_compressed_size])
        sampled = size - len(tail)  # the tail holds every byte from here
        merged: list[list[int]] = []
        for a, b in sorted((a, min(b, sampled)) for a, b in spans if a < sampled):
            if merged and a - merged[-1][1] <= MAX_GAP:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        blocks = fs.cat_ranges([path] * len(merged), [a for a, _ in merged], [b for _, b in merged],
                               on_error="raise") if merged else []
    parts = {(a, b): data for (a, b), data in zip(merged, blocks)}
    parts[(sampled, size)] = tail
    return AlreadyBufferedFile(fs=None, path=path, mode="rb", cache_type="parts", cache_options={"data": parts},
                               size=size)


def _one_line(e: Exception) -> str:
    """pyarrow's messages span lines ("...\nDeserializing page header failed.\n"): keep them on one."""
    return " ".join(str(e).split()).rstrip(".")


def _index_column(pf) -> str:
    meta = pf.schema_arrow.pandas_metadata or {}
    names = [c for c in meta.get("index_columns", []) if isinstance(c, str)]
    return names[0] if names else "sequence_id"


def read_sequence_ids(path: str) -> np.ndarray:
    """The file's sequence ids in first-appearance order (reads only the index column)."""
    pf = _open(path, [])
    col = _index_column(pf)
    ids = _read(pf, path, [col]).column(0).to_numpy()
    _, first = np.unique(ids, return_index=True)
    return ids[np.sort(first)]


def _read(pf, path: str, columns: list[str]):
    import pyarrow as pa

    try:
        return pf.read(columns=columns, use_pandas_metadata=False)
    except (pa.ArrowException, OSError) as e:
        where = columns[0] if len(columns) == 1 else f"{columns[0]}..{columns[-1]}"
        raise InputError(f"{path}: corrupt or truncated parquet file (reading column(s) {where}: {_one_line(e)})") from None


def _check_schema(pf, path: str, columns: Sequence[str], index: str) -> None:
    import pyarrow as pa

    schema = pf.schema_arrow
    missing = [c for c in columns if schema.get_field_index(c) < 0]
    if schema.get_field_index(index) < 0:
        raise InputError(f"{path}: no '{index}' index column")
    if missing:
        raise InputError(f"{path}: missing {len(missing)} selected column(s), first {missing[0]}")
    # float64 (or float16) columns are cast to float32 on the way in, as the reference's FloatList does
    wrong = [c for c in columns if not pa.types.is_floating(schema.field(c).type)]
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

    def n_rows(self, k: int) -> int:
        return int(self._bounds[k + 1] - self._bounds[k])

    def frames(self, k: int, out: np.ndarray | None = None) -> np.ndarray:
        """Sequence k, row-major; into `out` (at least n_frames rows) when given, a reused buffer."""
        a, b = int(self._bounds[k]), int(self._bounds[k + 1])
        if self._rows is None:
            block = self.data[:, a:b]
        else:  # a group's rows are in file order: one run (a slice) unless the sequence is split in the file
            first, last = int(self._rows[a]), int(self._rows[b - 1])
            block = self.data[:, first:last + 1] if last - first == b - a - 1 else self.data[:, self._rows[a:b]]
        if out is None:
            return np.ascontiguousarray(block.T)
        out = out[: b - a]
        np.copyto(out, block.T)
        return out


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


def read_landmarks(path: str, columns: Sequence[str] = SELECTED_COLUMNS, reuse_buffer: bool = False,
                   options=None) -> Landmarks:
    """Read `columns` of one file (a few columns at a time) and group its rows by sequence.

    With `reuse_buffer` the frames live in a per-process buffer that the next call overwrites
    (the converter holds one file at a time). `options`: a URL's storage options."""
    pf = _open(path, columns, options)
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


def parquet_identity(path: str, options=None) -> str:
    """A cheap identity of a parquet file: its size and a hash of its footer (schema, row groups,
    column chunk offsets and statistics), without reading the data pages."""
    import hashlib

    try:
        store, name = Store.of_file(path, options)
        size = store.size(name)
        with store.open_random(name) as f:
            f.seek(max(size - 8, 0))
            tail = f.read(8)
            footer_len = int.from_bytes(tail[:4], "little") if len(tail) == 8 and tail[4:] == b"PAR1" else 0
            f.seek(max(size - 8 - footer_len, 0))
            footer = f.read(footer_len + 8)
    except OSError:
        return "absent"
    return f"{size}:{hashlib.sha256(footer).hexdigest()[:16]}"
