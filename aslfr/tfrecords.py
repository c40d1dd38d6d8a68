"""TFRecord framing through the `tfrecord` package, plus what it lacks: writing already-serialized
records, inline index files, and reading with CRC checks and errors that name file and record."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Iterator

import crc32c
from tfrecord.writer import TFRecordWriter

masked_crc = TFRecordWriter.masked_crc
_HEADER = struct.Struct("<Q")


class RecordWriter(TFRecordWriter):
    """`tfrecord.TFRecordWriter` that takes serialized records, and remembers each record's
    (offset, framed size) for the index file and a running CRC32C of the whole file."""

    def __init__(self, data_path: str) -> None:
        super().__init__(data_path)
        self.offsets: list[tuple[int, int]] = []
        self.size = 0
        self.file_crc = 0

    def write_serialized(self, record: bytes) -> None:
        length_bytes = _HEADER.pack(len(record))
        head, tail = length_bytes + masked_crc(length_bytes), masked_crc(record)
        for part in (head, record, tail):
            self.file.write(part)
            self.file_crc = crc32c.crc32c(part, self.file_crc)
        framed = len(record) + 16
        self.offsets.append((self.size, framed))
        self.size += framed


def write_index(path: str | Path, offsets: list[tuple[int, int]]) -> None:
    """The `tfrecord` package's index format: one "offset size" line per record."""
    Path(path).write_text("".join(f"{o} {n}\n" for o, n in offsets))


class CorruptRecordError(ValueError):
    """A record file is truncated or fails its CRC check."""


def read_records(path: str | Path, verify: bool = True, start: int = 0, end: int | None = None,
                 first_record: int = 0) -> Iterator[memoryview]:
    """Yield the serialized records (writable memoryviews) of one TFRecord file from byte `start` to `end`.

    With `verify`, both CRCs of every record are checked. Errors name the file and the record's
    number (counted from `first_record`) and byte offset."""
    with open(path, "rb") as f:
        f.seek(start)
        pos, n = start, first_record
        while end is None or pos < end:
            header = f.read(12)
            if not header:
                return
            where = f"{path}: record {n} at byte {pos}"
            if len(header) < 12:
                raise CorruptRecordError(f"{where}: truncated length header")
            length_bytes = header[:8]
            if verify and masked_crc(length_bytes) != header[8:]:
                raise CorruptRecordError(f"{where}: length CRC mismatch")
            (length,) = _HEADER.unpack(length_bytes)
            buf = bytearray(length + 4)  # writable, so decoded arrays need no copy
            got = f.readinto(buf)
            if got < length + 4:
                raise CorruptRecordError(f"{where}: truncated record ({max(got - 4, 0)} of {length} bytes)")
            view = memoryview(buf)
            data = view[:length]
            if verify and masked_crc(data) != bytes(view[length:]):
                raise CorruptRecordError(f"{where}: data CRC mismatch")
            yield data
            pos += 16 + length
            n += 1


def read_index(path: str | Path) -> list[tuple[int, int]]:
    """(offset, framed size) per record from an index file."""
    out = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            o, s = line.split()
            out.append((int(o), int(s)))
    return out
