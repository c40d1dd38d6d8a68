"""What a run wrote, kept so that runs can resume and trees can be verified.

Each unit of work (one parquet file × one fold, shard number `file_index*folds+fold`) leaves a
receipt `.aslfr/{number}.json` beside the shards once its shard is in place, naming the config
(schema fingerprint included) and the inputs (CSV rows, folds, parquet identity) that made it. When
every unit of a split has a receipt, `finalize` writes `manifest.json` (per shard: records, bytes,
CRC32C, its index's size and CRC32C, plus the config) and `means.npy` / `stds.npy`. Receipts are per
unit, so parallel jobs never write the same file, and their union is the same whatever the split of
work. Readers read the manifest through `aslfr.format.manifest`."""

from __future__ import annotations

import json
from typing import Any, Mapping

from aslfr.convert.stats import ColumnStats, save
from aslfr.format import layout, storage
from aslfr.format.layout import receipt_path
from aslfr.format.manifest import Manifest, ShardEntry
from aslfr.format.storage import Location
from aslfr.format.tfrecord import file_crc32c

Options = Mapping[str, Any] | None


def write_receipt(records_dir: Location, number: int, receipt: dict[str, Any], options: Options = None) -> None:
    storage.write_bytes(receipt_path(records_dir, number), json.dumps(receipt, sort_keys=True).encode(), options)


def load_receipt(records_dir: Location, number: int, options: Options = None) -> dict[str, Any] | None:
    try:
        return json.loads(storage.read_bytes(receipt_path(records_dir, number), options))
    except (FileNotFoundError, ValueError):  # not written yet, or by a run killed mid-write (locally)
        return None


def receipt_holds(records_dir: Location, receipt: dict[str, Any] | None, config: dict[str, Any],
                  check_crc: bool = True, inputs: str | None = None, options: Options = None) -> bool:
    """True if a receipt was made with this config (and, when given, these inputs) and its shard is
    on disk, intact."""
    if not receipt or receipt.get("config") != config:
        return False
    if inputs is not None and receipt.get("inputs") != inputs:
        return False
    shard = receipt.get("shard")
    if shard is None:
        return True
    path = storage.join(records_dir, shard["name"])
    try:
        if storage.size(path, options) != shard["bytes"]:
            return False
    except FileNotFoundError:
        return False
    return not check_crc or file_crc32c(path, options) == shard["crc32c"]


def withdraw_manifest(records_dir: Location, options: Options = None) -> None:
    """Remove manifest.json before any shard of the folder is replaced: the manifest is the split's
    commit point, so readers refuse the folder until `finalize` describes the new shards, rather than
    mix shards of two configurations under the old manifest."""
    storage.remove(storage.join(records_dir, layout.MANIFEST), options)


def _remove_unlisted(records_dir: Location, listed: set[str], numbers: set[int], options: Options) -> None:
    """Delete shards (and their indexes and receipts) left by an earlier run with another layout
    (e.g. more files or folds), so that `glob('*.tfrec')` finds exactly the manifest's shards."""
    for path in layout.glob_shards(records_dir, options):
        if storage.name(path) not in listed:
            storage.remove(path, options)
            storage.remove(layout.index_path(path), options)
    for path in storage.glob(layout.receipts_dir(records_dir), "*.json", options):
        stem = storage.name(path).removesuffix(".json")
        if stem.isdigit() and int(stem) not in numbers:
            storage.remove(path, options)


def finalize(records_dir: Location, held: Mapping[int, dict[str, Any]], config: dict[str, Any],
             options: Options = None) -> Manifest:
    """Write manifest.json, means.npy and stds.npy from every unit's receipt (shard number -> a
    receipt that holds for `config`, as the caller has checked) and return the manifest."""
    receipts = [held[n] for n in sorted(held)]
    stats = ColumnStats()
    shards = []
    for r in receipts:
        stats = stats.merge(ColumnStats.from_dict(r["stats"]))
        if r["shard"] is not None:
            shards.append(ShardEntry(**r["shard"], file_index=r["file_index"], fold=r["fold"], source=r["source"],
                                     inputs=r.get("inputs")))
    manifest = Manifest.build(config, shards, sum(r.get("missing", 0) for r in receipts))
    save(stats, records_dir, options)
    # local files left by killed runs; every unit is complete and the caller holds every unit's lock
    for folder in (records_dir, layout.receipts_dir(records_dir)):
        for stale in storage.glob(folder, ".*.tmp", options):
            storage.remove(stale, options)
    _remove_unlisted(records_dir, {s.name for s in shards}, set(held), options)
    storage.write_bytes(storage.join(records_dir, layout.MANIFEST), manifest.to_json().encode(), options)
    return manifest
