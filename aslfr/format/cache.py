"""A local copy of remote shards (and their index files) for multi-epoch training: `cache_dir=`.

The cache owns one folder, `{cache_dir}/aslfr-cache-v1/`, and writes, serves and evicts only the
entries it made there: whatever else `cache_dir` holds is never touched. A remote shard is
downloaded whole, with its index file, the first time a reader touches it, so that later epochs read
local files only, however they split the shards. Each download is checked against the manifest's
size and CRC32C, and only then renamed from a temporary name into the cache: a truncated or
corrupted download never enters it. Many DataLoader workers and ranks may share one folder without
locks: each downloads to a name of its own, and `os.replace` makes either copy (the same checked
bytes) the entry. An entry's name holds a hash of the URL and the manifest's CRC32C, so an object
changed since (a new CRC in the manifest) is never served stale. An entry damaged on the local disk
(a record CRC fails) is evicted and fetched once more. Faults of the local disk name the cache file.

With `limit` (bytes), entries are evicted least recently used (each use stamps the file's mtime);
a file larger than the limit is streamed without caching. Readers open an entry before any eviction
can remove it (an open file outlives its unlinking). Local folders, and files whose manifest does
not record a CRC (no manifest, `allow_partial`), are read where they are."""

from __future__ import annotations

import hashlib
import os
import re
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator, Mapping

from aslfr.format import layout
from aslfr.format.folder import RecordsFolder
from aslfr.format.store import BLOCK, FsspecStore, Store, is_url, writing
from aslfr.format.tfrecord import CorruptRecordError

#: Downloads of one file before a size or CRC mismatch is an error (a retry outlasts a torn transfer).
TRIES = 2
#: The subfolder of `cache_dir` the cache owns (a new layout of entries gets a new name).
OWNED = "aslfr-cache-v1"
#: An entry's name: `{hash of url}.{crc}.{file name}`; nothing else in the owned folder is evicted.
_ENTRY = re.compile(r"^[0-9a-f]{16}\.[0-9a-f]{8}\.[^/]+$")


class ShardCache:
    """A local folder of checked copies of remote files; `over` reads a records folder through it.
    Holds no client: it pickles into workers, forked or spawned."""

    def __init__(self, directory: str | os.PathLike, limit: int | None = None):
        if is_url(directory):
            raise ValueError(f"cache_dir must be a local folder, got {directory}")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValueError(f"cache_limit must be a number of bytes >= 1 (or None: no limit), got {limit!r}")
        self.directory, self.limit = Path(directory) / OWNED, limit

    def over(self, folder: RecordsFolder) -> RecordsFolder:
        """`folder` read through the cache where its manifest records what its files must be."""
        m = folder.manifest
        if not isinstance(folder.store, FsspecStore) or m is None:
            return folder
        known = {}
        for s in m.shards:
            known[s.name] = (s.bytes, s.crc32c)
            if s.index_crc32c:
                known[layout.index_name(s.name)] = (s.index_bytes, s.index_crc32c)
        return folder.through(CachedStore(folder.store, self, known))

    def path(self, url: str, crc: str) -> Path:
        """The entry of `url` with CRC32C `crc`."""
        return self.directory / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}.{crc}.{url.rsplit('/', 1)[-1]}"

    def open(self, store: Store, name: str, size: int, crc: str) -> BinaryIO | None:
        """The entry of file `name` of `store` open for reading (downloaded first where it is missing),
        or None where it is larger than the limit."""
        if self.limit is not None and size > self.limit:
            return None
        final = self.path(str(store.where(name)), crc)
        try:
            f = open(final, "rb")
        except FileNotFoundError:
            return self._download(store, name, size, crc, final)
        if os.fstat(f.fileno()).st_size != size:  # cut short behind our back: fetch it again
            f.close()
            return self._download(store, name, size, crc, final)
        _stamp(final)
        return f

    def _download(self, store: Store, name: str, size: int, crc: str, final: Path) -> BinaryIO:
        import crc32c

        with writing(final):
            self.directory.mkdir(parents=True, exist_ok=True)
        for _ in range(TRIES):
            tmp = final.with_name(f".{final.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
            try:
                got, value = 0, 0
                with store.open_read(name) as (src, _):
                    with writing(final):  # the local disk's faults name the entry, the store's its URL
                        dst = open(tmp, "wb")
                    with dst:
                        while chunk := src.read(BLOCK):
                            value = crc32c.crc32c(chunk, value)
                            with writing(final):
                                got += dst.write(chunk)
                        with writing(final):
                            dst.flush()
                if got == size and f"{value:08x}" == crc:
                    f = open(tmp, "rb")
                    os.replace(tmp, final)
                    _stamp(final)
                    self._evict(final.name, size)
                    return f
            finally:
                tmp.unlink(missing_ok=True)
        raise CorruptRecordError(f"{store.where(name)}: downloaded {got} bytes with CRC32C {value:08x}, "
                                 f"manifest.json says {size} bytes with CRC32C {crc} (not cached)")

    def _evict(self, keep: str, kept: int) -> None:
        """Remove the least recently used entries but `keep` (of `kept` bytes) until the cache holds
        at most `limit` bytes (downloads in progress, under temporary names, not counted)."""
        if self.limit is None:
            return
        found = []
        for e in os.scandir(self.directory):
            if _ENTRY.match(e.name) and e.name != keep:
                try:
                    st = e.stat(follow_symlinks=False)
                except FileNotFoundError:  # evicted by another process meanwhile
                    continue
                found.append((st.st_mtime_ns, e.name, st.st_size))
        total = sum(s for *_, s in found) + kept
        for _, name, size in sorted(found):
            if total <= self.limit:
                break
            (self.directory / name).unlink(missing_ok=True)
            total -= size


class CachedStore(Store):
    """A remote store whose files named in `known` (name -> (bytes, CRC32C)) are read from the
    cache; the others, and everything but reads, are the store's."""

    def __init__(self, store: Store, cache: ShardCache, known: Mapping[str, tuple[int, str]]):
        super().__init__(store.root, store.options)
        self.store, self.cache, self.known = store, cache, dict(known)

    def _entries(self) -> dict[str, int | None]:
        return self.store._entries()

    def exists(self) -> bool:
        return self.store.exists()

    def is_file(self, name: str) -> bool:
        return self.store.is_file(name)

    def size(self, name: str) -> int:
        return self.known[name][0] if name in self.known else self.store.size(name)

    def _open(self, name: str) -> BinaryIO | None:
        return self.cache.open(self.store, name, *self.known[name]) if name in self.known else None

    @contextmanager
    def open_read(self, name: str, start: int = 0, end: int | None = None) -> Iterator[tuple[BinaryIO, int]]:
        """The cached copy of a remote file (downloaded first if need be); its index file is cached
        with it, for a later epoch that splits it across readers."""
        f = self._open(name)
        if f is None:
            with self.store.open_read(name, start, end) as opened:
                yield opened
            return
        index = self._open(layout.index_name(name)) if name.endswith(".tfrec") else None
        if index is not None:
            index.close()
        with f:
            f.seek(start)
            yield f, self.known[name][0]

    def read_bytes(self, name: str) -> bytes:
        """The cached copy's bytes, checked against the CRC32C (small files: an index); a damaged
        copy is evicted and fetched once more."""
        import crc32c

        for _ in range(2):
            f = self._open(name)
            if f is None:
                return self.store.read_bytes(name)
            with f:
                data = f.read()
            if f"{crc32c.crc32c(data):08x}" == self.known[name][1]:
                return data
            self.evict(name)
        return data

    def evict(self, name: str) -> bool:
        """Remove the cached copy of `name`; whether there was one to remove."""
        if name not in self.known:
            return False
        entry = self.cache.path(str(self.store.where(name)), self.known[name][1])
        try:
            entry.unlink()
        except FileNotFoundError:
            return False
        return True


def _stamp(path: Path) -> None:
    """Mark a use (the LRU order), to the nanosecond: utime(None) takes the kernel's coarse clock."""
    now = time.time_ns()
    try:
        os.utime(path, ns=(now, now))
    except FileNotFoundError:
        pass
