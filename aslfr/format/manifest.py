"""Reading `manifest.json`, what a finished conversion wrote: per shard its records, bytes and
CRC32C (and its index's), plus the config that made them (fold count included). Readers take the
shard list and the fold count from here instead of guessing from the folder's contents."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Iterable

from aslfr.format import layout
from aslfr.format.tfrecord import CorruptRecordError


class ManifestError(ValueError):
    """A records folder has no usable manifest, or its files disagree with it."""


def load_manifest(records_dir: str | Path) -> dict[str, Any] | None:
    """The folder's manifest, or None if it has none; an unreadable manifest is an error."""
    path = Path(records_dir) / layout.MANIFEST
    if not path.is_file():
        return None
    try:
        m = json.loads(path.read_text())
        m["config"]["folds"], m["shards"]  # noqa: B018  the keys every reader relies on
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ManifestError(f"{path}: unreadable manifest ({e})") from None
    return m


def manifest_folds(records_dir: str | Path) -> int | None:
    m = load_manifest(records_dir)
    return None if m is None else int(m["config"]["folds"])


def check_shards(records_dir: str | Path, m: dict[str, Any]) -> list[Path]:
    """The manifest's shards, each checked for presence, record count (name) and size; no
    unlisted shard may be in the folder. Errors name the folder and the first problem."""
    d = Path(records_dir)
    listed = {s["name"] for s in m["shards"]}
    extra = [p.name for p in layout.glob_shards(d) if p.name not in listed]
    if extra:
        raise ManifestError(f"{d}: {len(extra)} shard(s) not in manifest.json, first {extra[0]} "
                            "(a run in progress or an earlier run's files; rerun the conversion)")
    out = []
    for s in m["shards"]:
        path = d / s["name"]
        try:
            size = path.stat().st_size
        except OSError:
            raise ManifestError(f"{d}: shard {s['name']} listed in manifest.json is missing") from None
        if size != s["bytes"]:
            raise ManifestError(f"{d}: shard {s['name']} has {size} bytes, manifest.json says {s['bytes']}")
        out.append(path)
    return sorted(out, key=layout.shard_sort_key)


def shard_entry(path: Path) -> dict[str, Any] | None:
    """The manifest's entry for one shard file, or None if its folder has no manifest."""
    m = load_manifest(path.parent)
    if m is None:
        return None
    for s in m["shards"]:
        if s["name"] == path.name:
            return s
    raise ManifestError(f"{path}: not listed in {path.parent / layout.MANIFEST}")


def resolve_shards(paths: str | Path | Iterable[str | Path], allow_partial: bool = False) -> list[Path]:
    """The shard files of records folders (the manifest's list, checked) and of shard files.

    A folder without a manifest, a path that does not exist, a folder with no shards, or shards
    that disagree with the manifest are errors naming the path. `allow_partial=True` reads the
    `*.tfrec` files that are there when the manifest is missing or disagrees, with a warning."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += _folder_shards(p, allow_partial)
        elif p.is_file():
            if not allow_partial:
                entry = shard_entry(p)
                if entry is not None and p.stat().st_size != entry["bytes"]:
                    raise ManifestError(f"{p}: {p.stat().st_size} bytes, manifest.json says {entry['bytes']}")
            out.append(p)
        else:
            raise ManifestError(f"{p}: no such records folder or shard file")
    return no_duplicates(out)


def no_duplicates(shards: list[Path]) -> list[Path]:
    """The shards, if none is given twice (the same file, by resolved path): reading a shard twice
    would silently count its records twice in every epoch."""
    seen: dict[Path, Path] = {}
    for p in shards:
        r = p.resolve()
        if r in seen:
            also = "" if str(seen[r]) == str(p) else f" (also as {seen[r]})"
            raise ManifestError(f"{p}: shard given twice{also}; each shard may be read once")
        seen[r] = p
    return shards


def _folder_shards(d: Path, allow_partial: bool) -> list[Path]:
    try:
        m = load_manifest(d)
        if m is None:
            raise ManifestError(f"{d}: no manifest.json (not a records folder, or its conversion is not finished; "
                                f"records folders are {{out_dir}}/{layout.RECORDS_ROOT}/<train|sup>)")
        shards = check_shards(d, m)
    except ManifestError as e:
        if not allow_partial:
            raise
        shards = layout.glob_shards(d)
        if not shards:
            raise ManifestError(f"{d}: no shard files (*.tfrec)") from None
        warnings.warn(f"{e}; allow_partial: reading the {len(shards)} shard(s) present", stacklevel=3)
    if not shards:
        raise ManifestError(f"{d}: manifest.json lists no shards")
    return shards


def checked_index(shard: Path, records: int | None = None) -> list[tuple[int, int]] | None:
    """The validated index of a shard (None if it has no index file): its line count equals the
    shard's records, offsets run back to back and end at the shard's size, and, when the manifest
    records the index's size and CRC, they match."""
    import crc32c

    from aslfr.format.tfrecord import read_index

    idx = layout.index_path(shard)
    if not idx.is_file():
        return None
    if records is None:
        parsed = layout.parse_shard_name(shard.name)
        records = parsed[1] if parsed else None
    entry = None
    try:
        entry = shard_entry(shard)
    except ManifestError:
        pass
    if entry and entry.get("index_bytes") is not None:
        raw = idx.read_bytes()
        if len(raw) != entry["index_bytes"] or f"{crc32c.crc32c(raw):08x}" != entry["index_crc32c"]:
            raise CorruptRecordError(f"{idx}: index file differs from manifest.json (size or CRC32C)")
    return read_index(idx, records, shard.stat().st_size)
