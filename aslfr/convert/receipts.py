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
from pathlib import Path
from typing import Any

from aslfr.convert.files import atomic_write_text
from aslfr.convert.stats import ColumnStats, save
from aslfr.format import layout
from aslfr.format.layout import receipt_path
from aslfr.format.manifest import Manifest, ShardEntry
from aslfr.format.tfrecord import file_crc32c


def write_receipt(records_dir: str | Path, number: int, receipt: dict[str, Any]) -> None:
    atomic_write_text(receipt_path(records_dir, number), json.dumps(receipt, sort_keys=True))


def load_receipt(records_dir: str | Path, number: int) -> dict[str, Any] | None:
    try:
        return json.loads(receipt_path(records_dir, number).read_text())
    except (OSError, ValueError):
        return None


def receipt_holds(records_dir: str | Path, receipt: dict[str, Any] | None, config: dict[str, Any],
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
    path = Path(records_dir) / shard["name"]
    try:
        if path.stat().st_size != shard["bytes"]:
            return False
    except OSError:
        return False
    return not check_crc or file_crc32c(path) == shard["crc32c"]


def _remove_unlisted(records_dir: Path, listed: set[str], numbers: set[int]) -> None:
    """Delete shards (and their indexes and receipts) left by an earlier run with another layout
    (e.g. more files or folds), so that `glob('*.tfrec')` finds exactly the manifest's shards."""
    from aslfr.format.layout import index_name, parse_shard_name

    for path in records_dir.glob("*.tfrec"):
        if parse_shard_name(path.name) and path.name not in listed:
            path.unlink(missing_ok=True)
            (records_dir / index_name(path.name)).unlink(missing_ok=True)
    for path in (records_dir / layout.RECEIPTS).glob("*.json"):
        if path.stem.isdigit() and int(path.stem) not in numbers:
            path.unlink(missing_ok=True)


def finalize(records_dir: str | Path, numbers: list[int], config: dict[str, Any]) -> Manifest | None:
    """Write manifest.json, means.npy and stds.npy if every unit in `numbers` has a receipt made
    with `config`; return the manifest, or None if some unit is still missing."""
    receipts = []
    for n in sorted(numbers):
        r = load_receipt(records_dir, n)
        if r is None or r.get("config") != config:
            return None
        receipts.append(r)
    stats = ColumnStats()
    shards = []
    for r in receipts:
        stats = stats.merge(ColumnStats.from_dict(r["stats"]))
        if r["shard"] is not None:
            shards.append(ShardEntry(**r["shard"], file_index=r["file_index"], fold=r["fold"], source=r["source"],
                                     inputs=r.get("inputs")))
    manifest = Manifest.build(config, shards, sum(r.get("missing", 0) for r in receipts))
    save(stats, records_dir)
    # left by killed runs; every unit is complete and the caller holds every unit's lock
    for stale in [*Path(records_dir).glob(".*.tmp"), *(Path(records_dir) / layout.RECEIPTS).glob(".*.tmp")]:
        stale.unlink(missing_ok=True)
    _remove_unlisted(Path(records_dir), {s.name for s in shards}, set(numbers))
    atomic_write_text(Path(records_dir) / layout.MANIFEST, manifest.to_json())
    return manifest
