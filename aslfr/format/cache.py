"""A local copy of remote shards (and their index files) for multi-epoch training: `cache_dir=`.

A remote shard is downloaded whole, with its index file, the first time a reader touches it (through
`aslfr.format.storage`), so that later epochs read local files only, however they split the shards.
Each download is checked against the manifest's size and CRC32C, and only then renamed from a
temporary name into the cache: a truncated or corrupted download never enters it. Many DataLoader workers and ranks
may share one folder without locks: each downloads to a name of its own, and `os.replace` makes
either copy (the same checked bytes) the entry. An entry's name holds a hash of the URL and the
manifest's CRC32C, so an object changed since (a new CRC in the manifest) is never served stale.

With `limit` (bytes), entries are evicted least recently used (each use stamps the file's mtime);
a file larger than the limit is streamed without caching. Readers open an entry before any eviction
can remove it (an open file outlives its unlinking). Local paths, and files whose manifest does not
record a CRC (no manifest, `allow_partial`), are read where they are."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Mapping, Sequence

from aslfr.format import layout, storage
from aslfr.format.manifest import ShardEntry, checked_index, load_manifest
from aslfr.format.storage import Location
from aslfr.format.tfrecord import CorruptRecordError, parse_index

#: Downloads of one file before a size or CRC mismatch is an error (a retry outlasts a torn transfer).
TRIES = 2


class ShardCache:
    """The readers' access to their shards: `open_read` and `index`, from the cache where it may
    hold the file, else through the storage seam. `files` are those it may cache (readers pass none
    under `allow_partial`, where the manifest may disagree with them). Holds no client: it pickles
    into workers, forked or spawned."""

    def __init__(self, directory: str | os.PathLike, limit: int | None, files: Sequence[Location],
                 storage_options: Mapping[str, Any] | None = None):
        if storage.is_url(directory):
            raise ValueError(f"cache_dir must be a local folder, got {directory}")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValueError(f"cache_limit must be a number of bytes >= 1 (or None: no limit), got {limit!r}")
        self.directory, self.limit = Path(directory), limit
        self.directory.mkdir(parents=True, exist_ok=True)
        self.options = dict(storage_options or {})
        self.entries = _entries(files, self.options)

    @contextmanager
    def open_read(self, path: Location, start: int = 0, end: int | None = None) -> Iterator[tuple[BinaryIO, int]]:
        """As `storage.open_read`: the cached copy of a remote shard (downloaded first if need be)."""
        entry = self.entries.get(path)
        f = self._open(path, entry.bytes, entry.crc32c) if entry else None
        if f is None:
            with storage.open_read(path, start, end, self.options) as opened:
                yield opened
            return
        if entry.index_crc32c:  # with its shard, for a later epoch that splits it across readers
            index = self._open(_index_url(path), entry.index_bytes, entry.index_crc32c)
            if index is not None:
                index.close()
        with f:
            f.seek(start)
            yield f, entry.bytes

    def index(self, path: Location, records: int) -> list[tuple[int, int]] | None:
        """As `manifest.checked_index`; a remote index whose manifest records its CRC comes from the cache."""
        entry = self.entries.get(path)
        idx = _index_url(path)
        f = self._open(idx, entry.index_bytes, entry.index_crc32c) if entry and entry.index_crc32c else None
        if f is None:
            return checked_index(path, records, self.options)
        with f:
            text = f.read().decode()
        return parse_index(text, idx, records, entry.bytes)

    def _open(self, url: str, size: int, crc: str) -> BinaryIO | None:
        """The entry of `url` open for reading (downloaded first where it is missing), or None where
        it is larger than the limit."""
        if self.limit is not None and size > self.limit:
            return None
        final = self.directory / entry_name(url, crc)
        try:
            f = open(final, "rb")
        except FileNotFoundError:
            return self._download(url, size, crc, final)
        if os.fstat(f.fileno()).st_size != size:  # cut short behind our back: fetch it again
            f.close()
            return self._download(url, size, crc, final)
        _stamp(final)
        return f

    def _download(self, url: str, size: int, crc: str, final: Path) -> BinaryIO:
        import crc32c

        for _ in range(TRIES):
            tmp = final.with_name(f".{final.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
            try:
                got, value = 0, 0
                with storage.open_read(url, options=self.options) as (src, _), open(tmp, "wb") as dst:
                    while chunk := src.read(storage.BLOCK):
                        value = crc32c.crc32c(chunk, value)
                        got += dst.write(chunk)
                if got == size and f"{value:08x}" == crc:
                    f = open(tmp, "rb")
                    os.replace(tmp, final)
                    _stamp(final)
                    self._evict(final.name, size)
                    return f
            finally:
                tmp.unlink(missing_ok=True)
        raise CorruptRecordError(f"{url}: downloaded {got} bytes with CRC32C {value:08x}, manifest.json says "
                                 f"{size} bytes with CRC32C {crc} (not cached)")

    def _evict(self, keep: str, kept: int) -> None:
        """Remove the least recently used entries but `keep` (of `kept` bytes) until the cache holds
        at most `limit` bytes (downloads in progress, under temporary names, not counted)."""
        if self.limit is None:
            return
        found = []
        for e in os.scandir(self.directory):
            if not e.name.startswith(".") and e.name != keep:
                try:
                    st = e.stat()
                except FileNotFoundError:  # evicted by another process meanwhile
                    continue
                found.append((st.st_mtime_ns, e.name, st.st_size))
        total = sum(s for *_, s in found) + kept
        for _, name, size in sorted(found):
            if total <= self.limit:
                break
            (self.directory / name).unlink(missing_ok=True)
            total -= size


def entry_name(url: str, crc: str) -> str:
    """The cache's name for `url` with CRC32C `crc`: `{hash of url}.{crc}.{file name}`."""
    return f"{hashlib.sha256(url.encode()).hexdigest()[:16]}.{crc}.{storage.name(url)}"


def _index_url(shard: str) -> str:
    return storage.join(storage.parent(shard), layout.index_name(storage.name(shard)))


def _stamp(path: Path) -> None:
    """Mark a use (the LRU order), to the nanosecond: utime(None) takes the kernel's coarse clock."""
    now = time.time_ns()
    try:
        os.utime(path, ns=(now, now))
    except FileNotFoundError:
        pass


def _entries(files: Sequence[Location], options: Mapping[str, Any]) -> dict[str, ShardEntry]:
    """The manifest entry of each remote file whose folder has a manifest listing it (each manifest read once)."""
    manifests: dict[Location, dict[str, ShardEntry]] = {}
    out = {}
    for f in files:
        if not storage.is_url(f):
            continue
        folder = storage.parent(f)
        if folder not in manifests:
            m = load_manifest(folder, options)
            manifests[folder] = {s.name: s for s in m.shards} if m else {}
        if (entry := manifests[folder].get(storage.name(f))) is not None:
            out[f] = entry
    return out
