"""Writing shards: the reference's record order, TFRecord framing as `aslfr.format.tfrecord` defines it, and
files that appear under their final name only when complete (`Store.publishing`), with their index file."""

from __future__ import annotations

import fnmatch
import os
from contextlib import ExitStack
from typing import BinaryIO

import crc32c
import numpy as np
from tfrecord.writer import TFRecordWriter

from aslfr.format.layout import index_name, parse_shard_name, shard_name
from aslfr.format.manifest import ShardInfo
from aslfr.format.store import Store
from aslfr.format.tfrecord import OVERHEAD, frame_header, index_bytes, masked_crc


def _write_all(writer: "RecordWriter", parts) -> None:
    """A local file: one writev system call per record (through its descriptor: nothing is buffered).
    A store's file buffers the parts for its upload."""
    if writer.fd is None:
        for p in parts:
            writer.file.write(p)
        return
    total = sum(len(p) for p in parts)
    done = os.writev(writer.fd, parts)
    if done < total:  # rare short write: the rest one by one
        rest = b"".join(bytes(p) for p in parts)[done:]
        while rest:
            rest = rest[os.write(writer.fd, rest):]


class RecordWriter(TFRecordWriter):
    """`tfrecord.TFRecordWriter` over an open file (`Store.publishing` opens it, where the package
    would open a path) that takes serialized records, and remembers each record's (offset, framed
    size) for the index file and a running CRC32C of the whole file."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        try:
            self.fd: int | None = file.fileno()
        except (AttributeError, OSError, ValueError):  # a store's file has none
            self.fd = None
        self.offsets: list[tuple[int, int]] = []
        self.size = 0
        self.file_crc = 0

    def write_serialized(self, record: bytes) -> None:
        _write_all(self, self.frame(record))
        framed = len(record) + OVERHEAD
        self.offsets.append((self.size, framed))
        self.size += framed

    def frame(self, record: bytes) -> tuple:
        """(header, record, CRC) of one record, added to the running CRC32C of the file."""
        parts = (frame_header(len(record)), record, masked_crc(record))
        for part in parts:
            self.file_crc = crc32c.crc32c(part, self.file_crc)
        return parts


def reference_order(n: int, buffer_size: int, seed: int) -> list[int]:
    """The order in which the reference's TfrecordsWriter(buffer_size, shuffle=True, seed) emits
    records 0..n-1: a buffer shuffled by one `default_rng(seed)` whenever it fills, and at close.
    buffer_size 0 writes in input order, as the reference does."""
    if not buffer_size:
        return list(range(n))
    rng = np.random.default_rng(seed)
    order: list[int] = []
    buffer: list[int] = []
    for i in range(n):
        buffer.append(i)
        if len(buffer) >= buffer_size:
            rng.shuffle(buffer)
            order += buffer
            buffer = []
    if buffer:
        rng.shuffle(buffer)
        order += buffer
    return order


def remove_other_shard_files(records: Store, number: int, keep: str | None = None) -> None:
    """Delete the shards with this number but another name (and their indexes), left by a run over
    other inputs, and local temporary files of this number left by killed runs. Run after `keep` is
    published, so a concurrent run writing the same bytes never finds its shard missing."""
    keep_index = index_name(keep) if keep else None
    for name in records.list():
        if fnmatch.fnmatchcase(name, f"{number}.*"):
            if name not in (keep, keep_index) and (parse_shard_name(name) or name.endswith(".tfindex")):
                records.remove(name)
        elif fnmatch.fnmatchcase(name, f".{number}.*.tmp"):
            records.remove(name)


class ShardWriter:
    """Writes one shard of `count` records into `records`: `{number}.{count}.tfrec`, published whole
    by `Store.publishing` after its index file. A context manager: an exception inside publishes
    nothing. A shard of 0 records leaves no file, like the reference."""

    def __init__(self, records: Store, number: int, count: int, index_file: bool = True):
        self.records = records
        self.number = number
        self.count = count
        self.index_file = index_file
        self.name = shard_name(number, count) if count else None
        self._stack = ExitStack()
        self._writer: RecordWriter | None = None
        self.info: ShardInfo | None = None

    def __enter__(self) -> "ShardWriter":
        self.records.makedirs()
        if self.name:
            file = self._stack.enter_context(self.records.publishing(self.name))
            self._writer = RecordWriter(file)
        return self

    def write(self, record: bytes) -> None:
        self._writer.write_serialized(record)

    def __exit__(self, exc_type, exc, tb) -> None:
        with self._stack:  # publishes the shard only if nothing below raises
            if exc is not None:
                raise exc
            self._finish()
        remove_other_shard_files(self.records, self.number, self.name)

    def _finish(self) -> None:
        """Check the count, write the index, describe the shard."""
        w = self._writer
        if w is None:
            return
        if len(w.offsets) != self.count:
            raise RuntimeError(f"{self.name}: {len(w.offsets)} records written, {self.count} expected")
        if not self.index_file:
            self.info = ShardInfo(self.name, self.count, w.size, f"{w.file_crc:08x}")
            return
        index = index_bytes(w.offsets)
        self.records.write_bytes(index_name(self.name), index)
        self.info = ShardInfo(self.name, self.count, w.size, f"{w.file_crc:08x}", len(index), f"{crc32c.crc32c(index):08x}")
