"""What a run wrote, kept so that runs can resume and trees can be verified.

Each unit of work (one parquet file × one fold, shard number `file_index*folds+fold`) leaves a
receipt `.aslfr/{number}.json` beside the shards once its shard is in place, naming the config
(schema fingerprint included) and the inputs (CSV rows, folds, parquet identity) that made it. When
every unit of a split has a receipt, `finalize` writes `manifest.json` (per shard: records, bytes,
CRC32C, its index's size and CRC32C, plus the config) and `means.npy` / `stds.npy`. Receipts are per
unit, so parallel jobs never write the same file, and their union is the same whatever the split of
work. Readers read the manifest through `aslfr.format.manifest`."""

from __future__ import annotations

import fnmatch
import json
from typing import Any, Mapping

from aslfr.convert.stats import ColumnStats, save
from aslfr.format import layout
from aslfr.format.manifest import Manifest, ShardEntry
from aslfr.format.store import Store
from aslfr.format.tfrecord import stream_crc32c


def write_receipt(records: Store, number: int, receipt: dict[str, Any]) -> None:
    records.child(layout.RECEIPTS).write_bytes(layout.receipt_name(number), json.dumps(receipt, sort_keys=True).encode())


def load_receipt(records: Store, number: int) -> dict[str, Any] | None:
    try:
        return json.loads(records.child(layout.RECEIPTS).read_bytes(layout.receipt_name(number)))
    except (FileNotFoundError, ValueError):  # not written yet, or by a run killed mid-write (locally)
        return None


def receipt_holds(records: Store, receipt: dict[str, Any] | None, config: dict[str, Any],
                  check_crc: bool = True, inputs: str | None = None) -> bool:
    """True if a receipt was made with this config (and, when given, these inputs) and its shard is
    on disk, intact."""
    if not receipt or receipt.get("config") != config:
        return False
    if inputs is not None and receipt.get("inputs") != inputs:
        return False
    shard = receipt.get("shard")
    if shard is None:
        return True
    try:
        if records.size(shard["name"]) != shard["bytes"]:
            return False
    except FileNotFoundError:
        return False
    if not check_crc:
        return True
    with records.open_read(shard["name"]) as (f, _):
        return stream_crc32c(f) == shard["crc32c"]


def withdraw_manifest(records: Store) -> None:
    """Remove manifest.json before any shard of the folder is replaced: the manifest is the split's
    commit point, so readers refuse the folder until `finalize` describes the new shards, rather than
    mix shards of two configurations under the old manifest."""
    records.remove(layout.MANIFEST)


def _remove_unlisted(records: Store, listed: set[str], numbers: set[int]) -> None:
    """Delete shards (and their indexes and receipts) left by an earlier run with another layout
    (e.g. more files or folds), so that `glob('*.tfrec')` finds exactly the manifest's shards."""
    for name in layout.shard_names(records.list()):
        if name not in listed:
            records.remove(name)
            records.remove(layout.index_name(name))
    receipts = records.child(layout.RECEIPTS)
    for name in receipts.list():
        stem = name.removesuffix(".json")
        if name.endswith(".json") and stem.isdigit() and int(stem) not in numbers:
            receipts.remove(name)


def finalize(records: Store, held: Mapping[int, dict[str, Any]], config: dict[str, Any]) -> Manifest:
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
    save(stats, records)
    # local files left by killed runs; every unit is complete and the caller holds every unit's lock
    for folder in (records, records.child(layout.RECEIPTS)):
        for stale in [n for n in folder.list() if fnmatch.fnmatchcase(n, ".*.tmp")]:
            folder.remove(stale)
    _remove_unlisted(records, {s.name for s in shards}, set(held))
    records.write_bytes(layout.MANIFEST, manifest.to_json().encode())
    return manifest
