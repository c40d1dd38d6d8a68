"""Writing shards: the reference's record order, TFRecord framing as `aslfr.format.tfrecord` defines it, and
files that appear under their final name only when complete (temporary file, fsync, rename), with
their index file."""

from __future__ import annotations

import os
from pathlib import Path

import crc32c
import numpy as np
from tfrecord.writer import TFRecordWriter

from aslfr.convert.files import writing
from aslfr.format.layout import index_name, shard_name, temporary_name
from aslfr.format.manifest import ShardInfo
from aslfr.format.tfrecord import OVERHEAD, frame_header, index_bytes, masked_crc


def _write_all(file, parts) -> None:
    """One writev system call per record (through the file's descriptor: nothing is buffered)."""
    total = sum(len(p) for p in parts)
    done = os.writev(file.fileno(), parts)
    if done < total:  # rare short write: the rest one by one
        rest = b"".join(bytes(p) for p in parts)[done:]
        while rest:
            rest = rest[os.write(file.fileno(), rest):]


class RecordWriter(TFRecordWriter):
    """`tfrecord.TFRecordWriter` that takes serialized records, and remembers each record's
    (offset, framed size) for the index file and a running CRC32C of the whole file."""

    def __init__(self, data_path: str) -> None:
        super().__init__(data_path)
        self.offsets: list[tuple[int, int]] = []
        self.size = 0
        self.file_crc = 0

    def write_serialized(self, record: bytes) -> None:
        _write_all(self.file, self.frame(record))
        framed = len(record) + OVERHEAD
        self.offsets.append((self.size, framed))
        self.size += framed

    def frame(self, record: bytes) -> tuple:
        """(header, record, CRC) of one record, added to the running CRC32C of the file."""
        parts = (frame_header(len(record)), record, masked_crc(record))
        for part in parts:
            self.file_crc = crc32c.crc32c(part, self.file_crc)
        return parts

    def sync(self) -> None:
        """Flush, fsync, close: the bytes are on disk before the file gets its shard name."""
        self.file.flush()
        os.fsync(self.file.fileno())
        self.close()


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


def remove_shard_files(directory: Path, number: int) -> None:
    """Delete any earlier shard, index or temporary file with this number."""
    for p in directory.glob(f"{number}.*"):
        if p.suffix in (".tfrec", ".tfindex"):
            p.unlink(missing_ok=True)
    for p in directory.glob(f".{number}.*.tmp"):
        p.unlink(missing_ok=True)


class ShardWriter:
    """Writes one shard: `.{number}.{pid}.tmp` while open, then index and `{number}.{count}.tfrec`.

    Used as a context manager: an exception inside removes the temporary file, so no partial
    shard is ever left under a shard name. An empty shard leaves no file, like the reference."""

    def __init__(self, directory: str | Path, number: int, index_file: bool = True):
        self.directory = Path(directory)
        self.number = number
        self.index_file = index_file
        self.tmp = self.directory / temporary_name(str(number), os.getpid())
        self._writer: RecordWriter | None = None
        self.info: ShardInfo | None = None

    def __enter__(self) -> "ShardWriter":
        self.directory.mkdir(parents=True, exist_ok=True)
        remove_shard_files(self.directory, self.number)
        self._writer = RecordWriter(str(self.tmp))
        return self

    def write(self, record: bytes) -> None:
        with writing(self.tmp):
            self._writer.write_serialized(record)

    def __exit__(self, exc_type, exc, tb) -> None:
        w = self._writer
        try:
            if exc_type is not None:
                return
            with writing(self.tmp):
                w.sync()
            count = len(w.offsets)
            if count == 0:
                return
            name = shard_name(self.number, count)
            if self.index_file:
                index = index_bytes(w.offsets)
                tmp_index = self.tmp.with_suffix(".idx.tmp")
                with writing(tmp_index):
                    tmp_index.write_bytes(index)  # not fsynced: readers validate it, the manifest has its CRC
                os.replace(tmp_index, self.directory / index_name(name))
                self.info = ShardInfo(name, count, w.size, f"{w.file_crc:08x}", len(index), f"{crc32c.crc32c(index):08x}")
            else:
                self.info = ShardInfo(name, count, w.size, f"{w.file_crc:08x}")
            os.replace(self.tmp, self.directory / name)
        finally:
            if not w.file.closed:
                w.close()
            self.tmp.unlink(missing_ok=True)
            self.tmp.with_suffix(".idx.tmp").unlink(missing_ok=True)
