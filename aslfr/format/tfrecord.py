"""TFRecord framing: `u64 length, u32 masked CRC32C(length), data, u32 masked CRC32C(data)`, the
index files beside the shards, and reading with CRC checks and errors that name file and record.

The framing is defined here once: the writer (`aslfr.convert.shards`) frames with `frame_header` and
`masked_crc` (it subclasses the `tfrecord` package's writer only for the file handling); this module
does not import that package (which imports torch)."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Mapping

import crc32c

from aslfr.format.store import Location, Store

_HEADER = struct.Struct("<Q")
_MASK = 0xA282EAD8
OVERHEAD = 16  # framing bytes per record: length, its CRC, the data's CRC


def masked_crc(data) -> bytes:
    """TFRecord's masked CRC32C, as `tfrecord.TFRecordWriter.masked_crc` computes it."""
    crc = crc32c.crc32c(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + _MASK) & 0xFFFFFFFF)


def frame_header(length: int) -> bytes:
    """The 12 bytes before a record of `length` bytes: u64 length and its masked CRC."""
    length_bytes = _HEADER.pack(length)
    return length_bytes + masked_crc(length_bytes)


class CorruptRecordError(ValueError):
    """A record file or its index is truncated, fails a CRC check, or disagrees with its manifest."""


def index_bytes(offsets: list[tuple[int, int]]) -> bytes:
    """The `tfrecord` package's index format: one "offset size" line per record."""
    return "".join(f"{o} {n}\n" for o, n in offsets).encode()


def parse_index(text: str, path: str | Path, records: int | None = None,
                shard_bytes: int | None = None) -> list[tuple[int, int]]:
    """(offset, framed size) per record from the text of index file `path`, validated: every line
    two integers, records back to back from byte 0, and, when given, `records` lines ending at
    `shard_bytes`. Errors name the index file."""
    out: list[tuple[int, int]] = []
    expected = 0
    for n, line in enumerate(text.splitlines()):
        parts = line.split()
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise CorruptRecordError(f"{path}: line {n + 1} is not 'offset size' ({line[:40]!r})")
        o, s = int(parts[0]), int(parts[1])
        if o != expected or s < OVERHEAD:
            raise CorruptRecordError(f"{path}: line {n + 1}: record at byte {o} (size {s}), expected byte {expected}")
        out.append((o, s))
        expected = o + s
    if text and not text.endswith("\n"):
        raise CorruptRecordError(f"{path}: truncated (last line incomplete)")
    if records is not None and len(out) != records:
        raise CorruptRecordError(f"{path}: {len(out)} entries, its shard has {records} records")
    if shard_bytes is not None and expected != shard_bytes:
        raise CorruptRecordError(f"{path}: records end at byte {expected}, its shard has {shard_bytes} bytes")
    return out


def file_crc32c(path: Location, storage_options: Mapping[str, Any] | None = None) -> str:
    """CRC32C of a whole file as 8 hex digits (what the manifest records); a URL is streamed."""
    store, name = Store.of_file(path, storage_options)
    with store.open_read(name) as (f, _):
        return stream_crc32c(f)


def stream_crc32c(f: BinaryIO) -> str:
    """CRC32C of what is left to read in `f`, as 8 hex digits."""
    value = 0
    while chunk := f.read(1 << 22):
        value = crc32c.crc32c(chunk, value)
    return f"{value:08x}"


def read_records(path: Location, verify: bool = True, start: int = 0, end: int | None = None,
                 first_record: int = 0, storage_options: Mapping[str, Any] | None = None) -> Iterator[memoryview]:
    """Yield the serialized records (writable memoryviews) of one TFRecord file (a path or a URL)
    from byte `start` to `end` (`records_from`)."""
    store, name = Store.of_file(path, storage_options)
    with store.open_read(name, start, end) as (f, size):
        yield from records_from(f, size, path, verify, start, end, first_record)


def records_from(f: BinaryIO, size: int, path: str | Path, verify: bool = True, start: int = 0,
                 end: int | None = None, first_record: int = 0) -> Iterator[memoryview]:
    """The records of file `path` (`size` bytes) from byte `start` to `end`, read from `f`, whose
    reads begin at byte `start`.

    With `verify`, both CRCs of every record are checked. Errors name the file and the record's
    number (counted from `first_record`) and byte offset. A length header is checked against the
    bytes left in the file before anything is allocated for it."""
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
        if end is not None and pos + OVERHEAD + length > end:
            raise CorruptRecordError(f"{where}: record runs past byte {end} given by the index")
        _check_length(where, length, size - pos - OVERHEAD)
        buf = bytearray(length + 4)  # writable, so decoded arrays need no copy
        got = f.readinto(buf)
        if got < length + 4:
            raise CorruptRecordError(f"{where}: truncated record ({max(got - 4, 0)} of {length} bytes)")
        view = memoryview(buf)
        data = view[:length]
        if verify and masked_crc(data) != bytes(view[length:]):
            raise CorruptRecordError(f"{where}: data CRC mismatch")
        yield data
        pos += OVERHEAD + length
        n += 1


def count_records(path: Location, storage_options: Mapping[str, Any] | None = None) -> int:
    """Records in a file (a path or a URL), walking the length headers only."""
    store, name = Store.of_file(path, storage_options)
    with store.open_read(name) as (f, size):
        return count_from(f, size, path)


def count_from(f: BinaryIO, size: int, path: str | Path) -> int:
    """Records in file `path` (`size` bytes, open as `f`), walking the length headers only."""
    pos, n = 0, 0
    while pos < size:
        f.seek(pos)
        header = f.read(8)
        where = f"{path}: record {n} at byte {pos}"
        if len(header) < 8:
            raise CorruptRecordError(f"{where}: truncated length header")
        (length,) = _HEADER.unpack(header)
        _check_length(where, length, size - pos - OVERHEAD)
        pos += OVERHEAD + length
        n += 1
    return n


def _check_length(where: str, length: int, left: int) -> None:
    """A record's claimed length fits in the `left` bytes after its framing (an untrusted header
    must not make a reader allocate or seek past the file)."""
    if length > left:
        raise CorruptRecordError(f"{where}: truncated record (length header says {length} bytes, "
                                 f"{max(left, 0)} left in the file)")
