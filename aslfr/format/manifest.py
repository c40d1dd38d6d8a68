"""`manifest.json`, what a finished conversion wrote: per shard its records, bytes and CRC32C (and
its index's), plus the config that made them (fold count included). Defined once here: the writer
(`aslfr.convert.receipts.finalize`) writes a `Manifest`, readers load one and take the shard list
and the fold count from it instead of guessing from the folder's contents."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from aslfr.format import layout
from aslfr.format.store import Store

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


def read_manifest(store: Store) -> Manifest | None:
    """The manifest of the folder `store` is, or None if it has none; an unreadable manifest, or one
    of another version or shape, is an error naming it (a store's refusal is its own error)."""
    path = store.where(layout.MANIFEST)
    try:
        text = store.read_text(layout.MANIFEST)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    except PermissionError:
        raise
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(f"{path}: unreadable manifest ({e})") from None
    return Manifest.from_json(text, path)


def load_manifest(records_dir: str | Path, storage_options: Mapping[str, Any] | None = None) -> Manifest | None:
    """The folder's manifest, or None if it has none; an unreadable manifest is an error."""
    return read_manifest(Store.at(records_dir, storage_options))
