"""A records folder bound once: its `manifest.json` read and checked once, its files listed once.

Readers take their shards from here: the manifest's list, each shard's name checked against the
shard pattern (nothing absolute, no `..`, nothing outside the folder) and the manifest's totals and
folds against its shard names before any shard is read, at no cost beyond reading the manifest; the
sizes from one listing; each index file read once, checked against the manifest's size and CRC32C
and against its shard. A folder pickles with what it has read (its store as a URL and options), so
DataLoader workers read none of it again."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from aslfr.format import layout
from aslfr.format.manifest import Manifest, ManifestError, ShardEntry, read_manifest
from aslfr.format.store import Location, Store, canonical, location, name, parent
from aslfr.format.tfrecord import CorruptRecordError, parse_index

_UNREAD: Any = object()


class RecordsFolder:
    """One records folder ({out_dir}/tfrecords/{split}) in a `Store`."""

    def __init__(self, store: Store):
        self.store = store
        self._manifest: Manifest | None = _UNREAD
        self._sizes: dict[str, int] | None = None
        self._indexes: dict[str, list[tuple[int, int]] | None] = {}

    @classmethod
    def at(cls, where: str | Location, options: Mapping[str, Any] | None = None) -> "RecordsFolder":
        return cls(Store.at(where, options))

    @property
    def where(self) -> Location:
        return self.store.where()

    def __repr__(self) -> str:
        return f"RecordsFolder({str(self.where)!r})"

    @property
    def manifest(self) -> Manifest | None:
        """The folder's manifest (read once), or None if it has none; an unreadable manifest, or one
        of another version or shape, is an error naming it."""
        if self._manifest is _UNREAD:
            self._manifest = read_manifest(self.store)
        return self._manifest

    def checked_manifest(self) -> Manifest:
        """The manifest, which must be there and agree with itself: every shard name of the shard
        pattern (so inside the folder), folds and file indexes giving its number, totals the sums
        over its shards. What `verify` lists one by one is here the first problem, one line."""
        m = self.manifest
        if m is None:
            raise ManifestError(f"{self.where}: no manifest.json (not a records folder, or its conversion is not "
                                f"finished; records folders are {{out_dir}}/{layout.RECORDS_ROOT}/"
                                f"<{'|'.join(s.records for s in layout.SPLITS.values())}>)")
        problems = m.inconsistencies()
        if problems:
            raise ManifestError(f"{self.store.where(layout.MANIFEST)}: {problems[0]} "
                                f"({len(problems)} problem(s); `aslfr verify` lists them)")
        return m

    def sizes(self) -> dict[str, int]:
        """File name -> bytes of the folder's files, from one listing (kept)."""
        if self._sizes is None:
            self._sizes = self.store.sizes()
        return self._sizes

    def present(self) -> list[str]:
        """The names of the shard files in the folder (what is there, manifest or not), by number."""
        return layout.shard_names(self.store.list() if self._sizes is None else self._sizes)

    def entry(self, shard: str) -> ShardEntry | None:
        """The manifest's entry of a shard, None without a manifest; a shard it does not list is an error."""
        m = self.manifest
        if m is None:
            return None
        for s in m.shards:
            if s.name == shard:
                return s
        raise ManifestError(f"{self.store.where(shard)}: not listed in {self.store.where(layout.MANIFEST)}")

    def shards(self, allow_partial: bool = False) -> list[str]:
        """The names of the manifest's shards, checked: the manifest agrees with itself, every shard
        is there with its size, and no unlisted shard is in the folder. `allow_partial`: the shard
        files present when the manifest is missing or disagrees, with a warning."""
        try:
            m = self.checked_manifest()
            names = self._checked_against(m)
        except ManifestError as e:
            if not allow_partial:
                raise
            names = self.present()
            if not names:
                raise ManifestError(f"{self.where}: no shard files (*.tfrec)") from None
            warnings.warn(f"{e}; allow_partial: reading the {len(names)} shard(s) present", stacklevel=4)
        if not names:
            raise ManifestError(f"{self.where}: manifest.json lists no shards")
        return names

    def _checked_against(self, m: Manifest) -> list[str]:
        sizes = self.sizes()
        listed = {s.name for s in m.shards}
        extra = [n for n in layout.shard_names(sizes) if n not in listed]
        if extra:
            raise ManifestError(f"{self.where}: {len(extra)} shard(s) not in manifest.json, first {extra[0]} "
                                "(a run in progress or an earlier run's files; rerun the conversion)")
        for s in m.shards:
            if s.name not in sizes:
                raise ManifestError(f"{self.where}: shard {s.name} listed in manifest.json is missing")
            if sizes[s.name] != s.bytes:
                raise ManifestError(f"{self.where}: shard {s.name} has {sizes[s.name]} bytes, "
                                    f"manifest.json says {s.bytes}")
        return layout.shard_names(listed)

    def index(self, shard: str, records: int | None = None) -> list[tuple[int, int]] | None:
        """The validated index of a shard (None if it has no index file), read once: its line count
        equals the shard's records, offsets run back to back and end at the shard's size, and, when
        the manifest records the index's size and CRC, they match."""
        if shard not in self._indexes:
            self._indexes[shard] = self._read_index(shard, records)
        return self._indexes[shard]

    def _read_index(self, shard: str, records: int | None) -> list[tuple[int, int]] | None:
        import crc32c

        idx = layout.index_name(shard)
        where = self.store.where(idx)
        try:
            raw = self.store.read_bytes(idx)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            raise CorruptRecordError(f"{where}: index file unreadable ({e.strerror or e})") from None
        if records is None:
            parsed = layout.parse_shard_name(shard)
            records = parsed[1] if parsed else None
        try:
            entry = self.entry(shard)
        except ManifestError:
            entry = None
        if entry and entry.index_bytes is not None:
            if len(raw) != entry.index_bytes or f"{crc32c.crc32c(raw):08x}" != entry.index_crc32c:
                raise CorruptRecordError(f"{where}: index file differs from manifest.json (size or CRC32C)")
        shard_bytes = entry.bytes if entry else self.sizes().get(shard)
        if shard_bytes is None:
            shard_bytes = self.store.size(shard)
        return parse_index(raw.decode(errors="replace"), where, records, shard_bytes)

    def through(self, store: Store) -> "RecordsFolder":
        """This folder read through `store` (a cache over the same files), with what it has read."""
        other = RecordsFolder(store)
        other._manifest, other._sizes = self._manifest, self._sizes
        return other

    def stats(self):
        """(means, stds) written beside the records, validated (`aslfr.format.stats`)."""
        from aslfr.format.stats import read_stats

        return read_stats(self.store)

    @staticmethod
    def discover(root: str | Location, options: Mapping[str, Any] | None = None) -> list["RecordsFolder"]:
        """A records folder itself, or the records folders of an output folder ({out_dir}/tfrecords/*,
        or any subfolder with a manifest); a location that cannot be either (nothing, a file) is an
        error saying which."""
        store = Store.at(root, options)
        if not store.exists():
            up, n = Store.of_file(root, options)
            if up.is_file(n):
                raise ManifestError(f"{store.where()}: is a file: give an output folder or a records folder")
            raise ManifestError(f"{store.where()}: no such file or folder")
        if store.is_file(layout.MANIFEST):
            return [RecordsFolder(store)]
        subs = store.folders()
        if layout.RECORDS_ROOT in subs:
            records = store.child(layout.RECORDS_ROOT)
            found = [RecordsFolder(records.child(s)) for s in records.folders()
                     if records.child(s).is_file(layout.MANIFEST)]
            if found:
                return found
        return [RecordsFolder(store.child(s)) for s in subs if store.child(s).is_file(layout.MANIFEST)]


@dataclass(frozen=True)
class Shard:
    """One shard file as a reader holds it: its folder and name, and its records."""

    folder: RecordsFolder
    name: str
    records: int

    @property
    def location(self) -> Location:
        return self.folder.store.where(self.name)


def resolve_shards(paths: str | Location | Iterable[str | Location], allow_partial: bool = False,
                   storage_options: Mapping[str, Any] | None = None) -> list[Location]:
    """The shard files of records folders (the manifest's list, checked) and of shard files (`resolve`)."""
    return [s.location for s in resolve(paths, allow_partial, storage_options)]


def resolve(paths: str | Location | Iterable[str | Location], allow_partial: bool = False,
            options: Mapping[str, Any] | None = None) -> list[Shard]:
    """The shards of records folders (the manifest's list, checked) and of shard files, each folder
    bound and its manifest read once however many of its shards are named.

    A folder without a manifest, a path that does not exist, a folder with no shards, or shards
    that disagree with the manifest are errors naming the path. `allow_partial=True` reads the
    `*.tfrec` files that are there when the manifest is missing or disagrees, with a warning."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    folders: dict[Location, RecordsFolder] = {}

    def folder(where: Location) -> RecordsFolder:
        if where not in folders:
            folders[where] = RecordsFolder.at(where, options)
        return folders[where]

    out: list[Shard] = []
    for p in map(location, paths):
        n = name(p)
        # a shard's name in its folder's listing: a file (the folder listed once for all its shards)
        d = None if layout.parse_shard_name(n) and n in folder(parent(p)).sizes() else folder(p)
        if d is not None and (d.manifest is not None or (allow_partial and d.store.exists())):
            out += [Shard(d, s, _records(d, s)) for s in d.shards(allow_partial)]
            continue
        up = folder(parent(p))
        size = up.sizes().get(n)
        if size is None:
            if d is not None and d.store.exists():
                d.shards()  # the error: no manifest
            raise ManifestError(f"{p}: no such records folder or shard file")
        if not allow_partial and up.manifest is not None:
            up.checked_manifest()
            entry = up.entry(n)
            if entry is not None and size != entry.bytes:
                raise ManifestError(f"{p}: {size} bytes, manifest.json says {entry.bytes}")
        out.append(Shard(up, n, _records(up, n)))
    return no_duplicates(out)


def _records(folder: RecordsFolder, shard: str) -> int:
    """A shard's records: from its name, else by walking its length headers."""
    parsed = layout.parse_shard_name(shard)
    if parsed:
        return parsed[1]
    from aslfr.format.tfrecord import count_from

    with folder.store.open_read(shard) as (f, size):
        return count_from(f, size, folder.store.where(shard))


def no_duplicates(shards: list[Shard]) -> list[Shard]:
    """The shards, if none is given twice (the same file, by resolved path or URL): reading a shard
    twice would silently count its records twice in every epoch."""
    seen: dict[Location, Location] = {}
    for s in shards:
        p = s.location
        r = canonical(p)
        if r in seen:
            also = "" if str(seen[r]) == str(p) else f" (also as {seen[r]})"
            raise ManifestError(f"{p}: shard given twice{also}; each shard may be read once")
        seen[r] = p
    return shards
