"""Shard files: the reference's names and record order, written so that a shard appears under its
final name only when complete (temporary file beside it, then rename), with its index file."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from aslfr.tfrecords import RecordWriter, write_index

SHARD_RE = re.compile(r"^(\d+)\.(\d+)\.tfrec$")


def shard_name(number: int, count: int) -> str:
    """`{file_index*folds+fold}.{count}.tfrec`, as the reference renames its files."""
    return f"{number}.{count}.tfrec"


def index_name(shard: str) -> str:
    """The index file beside a shard; `*.tfindex` so that `glob('*.tfrec')` never matches it."""
    return shard[: -len(".tfrec")] + ".tfindex"


def parse_shard_name(name: str) -> tuple[int, int] | None:
    """(number, count) of a shard file name, or None."""
    m = SHARD_RE.match(name)
    return (int(m.group(1)), int(m.group(2))) if m else None


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


@dataclass
class ShardInfo:
    """What the manifest records of one written shard."""

    name: str
    records: int
    bytes: int
    crc32c: str

    def to_dict(self) -> dict:
        return asdict(self)


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
        self.tmp = self.directory / f".{number}.{os.getpid()}.tmp"
        self._writer: RecordWriter | None = None
        self.info: ShardInfo | None = None

    def __enter__(self) -> "ShardWriter":
        self.directory.mkdir(parents=True, exist_ok=True)
        remove_shard_files(self.directory, self.number)
        self._writer = RecordWriter(str(self.tmp))
        return self

    def write(self, record: bytes) -> None:
        self._writer.write_serialized(record)

    def __exit__(self, exc_type, exc, tb) -> None:
        w = self._writer
        try:
            if exc_type is not None:
                return
            w.file.flush()
            os.fsync(w.file.fileno())
            w.close()
            count = len(w.offsets)
            if count == 0:
                return
            name = shard_name(self.number, count)
            if self.index_file:
                tmp_index = self.tmp.with_suffix(".idx.tmp")
                write_index(tmp_index, w.offsets)
                os.replace(tmp_index, self.directory / index_name(name))
            os.replace(self.tmp, self.directory / name)
            self.info = ShardInfo(name, count, w.size, f"{w.file_crc:08x}")
        finally:
            if not w.file.closed:
                w.close()
            self.tmp.unlink(missing_ok=True)
            self.tmp.with_suffix(".idx.tmp").unlink(missing_ok=True)
