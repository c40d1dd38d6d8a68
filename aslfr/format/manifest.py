"""`manifest.json`, what a finished conversion wrote: per shard its records, bytes and CRC32C (and
its index's), plus the config that made them (fold count included). Defined once here: the writer
(`aslfr.convert.receipts.finalize`) writes a `Manifest`, readers load one and take the shard list
and the fold count from it instead of guessing from the folder's contents."""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from aslfr.format import layout, storage
from aslfr.format.tfrecord import CorruptRecordError

#: The manifest layout this code writes and reads; bumped when a key changes meaning.
VERSION = 1


class ManifestError(ValueError):
    """A records folder has no usable manifest, or its files disagree with it."""


@dataclass(frozen=True)
class ShardInfo:
    """One written shard: what its receipt and the manifest record of it."""

    name: str
    records: int
    bytes: int
    crc32c: str
    index_bytes: int | None = None
    index_crc32c: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, kw_only=True)
class ShardEntry(ShardInfo):
    """A manifest's shard: the written shard and where its records came from."""

    file_index: int
    fold: int
    source: str
    inputs: str | None = None


@dataclass(frozen=True)
class Manifest:
    """A finished split: its config, its non-empty shards by number, and totals over them."""

    config: dict[str, Any]
    shards: list[ShardEntry]
    records: int
    records_per_fold: dict[int, int]
    missing_sequences: int = 0
    version: int = VERSION

    @classmethod
    def build(cls, config: dict[str, Any], shards: list[ShardEntry], missing_sequences: int) -> Manifest:
        """The manifest of `shards`, totals computed from them."""
        per_fold = {f: sum(s.records for s in shards if s.fold == f) for f in range(config["folds"])}
        return cls(config, shards, sum(s.records for s in shards), per_fold, missing_sequences)

    @property
    def folds(self) -> int:
        return int(self.config["folds"])

    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        d["records_per_fold"] = {str(f): n for f, n in self.records_per_fold.items()}
        return json.dumps(d, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, path: str | Path = layout.MANIFEST) -> Manifest:
        """Parse and type-check a manifest; errors name `path` and the key at fault."""
        try:
            d = json.loads(text)
        except ValueError as e:
            raise ManifestError(f"{path}: unreadable manifest ({e})") from None
        if not isinstance(d, dict):
            raise ManifestError(f"{path}: unreadable manifest (not a JSON object)")
        if d.get("version") != VERSION:
            found = f"version {d['version']!r}" if "version" in d else "no version"
            raise ManifestError(f"{path}: manifest has {found}, this aslfr reads version {VERSION} "
                                "(use the aslfr that wrote it, or convert again)")
        top = _typed(d, cls, str(path))
        entries = [ShardEntry(**_typed(s, ShardEntry, f"{path}: shard entry {i}")) for i, s in enumerate(d["shards"])]
        per_fold = top["records_per_fold"]
        if not all(k.isdigit() and _is(v, "int") for k, v in per_fold.items()):
            raise ManifestError(f'{path}: "records_per_fold" is not {{fold: records}}')
        if not _is(top["config"].get("folds"), "int") or top["config"]["folds"] < 1:
            raise ManifestError(f'{path}: "config" has no fold count ("folds")')
        return cls(**{**top, "shards": entries, "records_per_fold": {int(k): v for k, v in per_fold.items()}})

    def inconsistencies(self) -> list[str]:
        """What disagrees within the manifest: totals that are not the sums over its shards, and
        shard names, file indexes and folds that break `number = file_index * folds + fold`."""
        out = []
        for s in self.shards:
            parsed = layout.parse_shard_name(s.name)
            if parsed is None:
                out.append(f"{s.name}: not a shard name ({{file_index*folds+fold}}.{{count}}.tfrec)")
            elif not 0 <= s.fold < self.folds or parsed[0] != layout.shard_number(s.file_index, s.fold, self.folds):
                out.append(f"{s.name}: file {s.file_index}, fold {s.fold} do not give shard number {parsed[0]} "
                           f"with folds={self.folds}")
        expected = Manifest.build(self.config, self.shards, self.missing_sequences)
        if self.records != expected.records:
            out.append(f"records {self.records}, its shards hold {expected.records}")
        if self.records_per_fold != expected.records_per_fold:
            out.append(f"records_per_fold {self.records_per_fold}, its shards give {expected.records_per_fold}")
        return out


_KINDS: dict[str, tuple[type, ...]] = {
    "int": (int,), "str": (str,), "int | None": (int, type(None)), "str | None": (str, type(None)),
    "dict[str, Any]": (dict,), "dict[int, int]": (dict,), "list[ShardEntry]": (list,)}


def _is(value: Any, kind: str) -> bool:
    return isinstance(value, _KINDS[kind]) and not isinstance(value, bool)


def _typed(d: Any, cls: type, where: str) -> dict[str, Any]:
    """The fields of dataclass `cls` from JSON object `d`, each present (unless it has a default)
    and of its type; other keys are ignored. Errors name `where` and the key."""
    if not isinstance(d, dict):
        raise ManifestError(f"{where}: not a JSON object")
    out = {}
    for f in dataclasses.fields(cls):
        if f.name not in d:
            if f.default is dataclasses.MISSING:
                raise ManifestError(f'{where}: missing key "{f.name}"')
            continue
        if not _is(d[f.name], f.type):
            raise ManifestError(f'{where}: "{f.name}" is {d[f.name]!r:.40}, expected {f.type}')
        out[f.name] = d[f.name]
    return out


def load_manifest(records_dir: str | Path, storage_options: Mapping[str, Any] | None = None) -> Manifest | None:
    """The folder's manifest, or None if it has none; an unreadable manifest is an error."""
    path = storage.join(storage.location(records_dir), layout.MANIFEST)
    if not storage.is_file(path, storage_options):
        return None
    try:
        text = storage.read_text(path, storage_options)
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(f"{path}: unreadable manifest ({e})") from None
    return Manifest.from_json(text, path)


def manifest_folds(records_dir: str | Path, storage_options: Mapping[str, Any] | None = None) -> int | None:
    m = load_manifest(records_dir, storage_options)
    return None if m is None else m.folds


def check_shards(records_dir: str | Path, m: Manifest,
                 storage_options: Mapping[str, Any] | None = None) -> list[Path | str]:
    """The manifest's shards, each checked for presence, record count (name) and size; no
    unlisted shard may be in the folder. Errors name the folder and the first problem."""
    d = storage.location(records_dir)
    listed = {s.name for s in m.shards}
    extra = [n for n in map(storage.name, _present_shards(d, storage_options)) if n not in listed]
    if extra:
        raise ManifestError(f"{d}: {len(extra)} shard(s) not in manifest.json, first {extra[0]} "
                            "(a run in progress or an earlier run's files; rerun the conversion)")
    out = []
    for s in m.shards:
        path = storage.join(d, s.name)
        try:
            size = storage.size(path, storage_options)
        except OSError:
            raise ManifestError(f"{d}: shard {s.name} listed in manifest.json is missing") from None
        if size != s.bytes:
            raise ManifestError(f"{d}: shard {s.name} has {size} bytes, manifest.json says {s.bytes}")
        out.append(path)
    return sorted(out, key=layout.shard_sort_key)


def shard_entry(path: Path | str, storage_options: Mapping[str, Any] | None = None) -> ShardEntry | None:
    """The manifest's entry for one shard file, or None if its folder has no manifest."""
    m = load_manifest(storage.parent(path), storage_options)
    if m is None:
        return None
    for s in m.shards:
        if s.name == storage.name(path):
            return s
    raise ManifestError(f"{path}: not listed in {storage.join(storage.parent(path), layout.MANIFEST)}")


def resolve_shards(paths: str | Path | Iterable[str | Path], allow_partial: bool = False,
                   storage_options: Mapping[str, Any] | None = None) -> list[Path | str]:
    """The shard files of records folders (the manifest's list, checked) and of shard files.

    A folder without a manifest, a path that does not exist, a folder with no shards, or shards
    that disagree with the manifest are errors naming the path. `allow_partial=True` reads the
    `*.tfrec` files that are there when the manifest is missing or disagrees, with a warning."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: list[Path | str] = []
    for p in map(storage.location, paths):
        if storage.is_dir(p, storage_options):
            out += _folder_shards(p, allow_partial, storage_options)
        elif storage.is_file(p, storage_options):
            if not allow_partial:
                entry = shard_entry(p, storage_options)
                if entry is not None and (size := storage.size(p, storage_options)) != entry.bytes:
                    raise ManifestError(f"{p}: {size} bytes, manifest.json says {entry.bytes}")
            out.append(p)
        else:
            raise ManifestError(f"{p}: no such records folder or shard file")
    return no_duplicates(out)


def no_duplicates(shards: list[Path | str]) -> list[Path | str]:
    """The shards, if none is given twice (the same file, by resolved path or URL): reading a shard
    twice would silently count its records twice in every epoch."""
    seen: dict[Path | str, Path | str] = {}
    for p in shards:
        r = storage.canonical(p)
        if r in seen:
            also = "" if str(seen[r]) == str(p) else f" (also as {seen[r]})"
            raise ManifestError(f"{p}: shard given twice{also}; each shard may be read once")
        seen[r] = p
    return shards


def _folder_shards(d: Path | str, allow_partial: bool, storage_options: Mapping[str, Any] | None) -> list[Path | str]:
    try:
        m = load_manifest(d, storage_options)
        if m is None:
            raise ManifestError(f"{d}: no manifest.json (not a records folder, or its conversion is not finished; "
                                f"records folders are {{out_dir}}/{layout.RECORDS_ROOT}/<train|sup>)")
        shards = check_shards(d, m, storage_options)
    except ManifestError as e:
        if not allow_partial:
            raise
        shards = _present_shards(d, storage_options)
        if not shards:
            raise ManifestError(f"{d}: no shard files (*.tfrec)") from None
        warnings.warn(f"{e}; allow_partial: reading the {len(shards)} shard(s) present", stacklevel=3)
    if not shards:
        raise ManifestError(f"{d}: manifest.json lists no shards")
    return shards


def _present_shards(d: Path | str, storage_options: Mapping[str, Any] | None) -> list[Path | str]:
    """The shard files in a folder or under a URL prefix (what is there, manifest or not)."""
    return layout.shards_among(storage.glob(d, "*.tfrec", storage_options))


def checked_index(shard: Path | str, records: int | None = None,
                  storage_options: Mapping[str, Any] | None = None) -> list[tuple[int, int]] | None:
    """The validated index of a shard (None if it has no index file): its line count equals the
    shard's records, offsets run back to back and end at the shard's size, and, when the manifest
    records the index's size and CRC, they match."""
    import crc32c

    from aslfr.format.tfrecord import parse_index

    idx = storage.join(storage.parent(shard), layout.index_name(storage.name(shard)))
    if not storage.is_file(idx, storage_options):
        return None
    if records is None:
        parsed = layout.parse_shard_name(storage.name(shard))
        records = parsed[1] if parsed else None
    entry = None
    try:
        entry = shard_entry(shard, storage_options)
    except ManifestError:
        pass
    if entry and entry.index_bytes is not None:
        raw = storage.read_bytes(idx, storage_options)
        if len(raw) != entry.index_bytes or f"{crc32c.crc32c(raw):08x}" != entry.index_crc32c:
            raise CorruptRecordError(f"{idx}: index file differs from manifest.json (size or CRC32C)")
    try:
        text = storage.read_text(idx, storage_options)
    except OSError as e:
        raise CorruptRecordError(f"{idx}: index file unreadable ({e.strerror or e})") from None
    return parse_index(text, idx, records, storage.size(shard, storage_options))
