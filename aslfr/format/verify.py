"""Checking a records folder against its manifest: its totals are the sums over its shards and its
shard names agree with its fold count; every listed shard exists with its record count, byte size
and CRC32C; its index (if any) matches the manifest's size and CRC32C and the shard's records; every
record passes both TFRecord CRCs and decodes with the schema; no unlisted shard; means.npy and
stds.npy load as training needs them."""

from __future__ import annotations

from typing import Any, Mapping

from aslfr.format import layout
from aslfr.format.folder import RecordsFolder
from aslfr.format.manifest import ManifestError
from aslfr.format.schema import read_shard
from aslfr.format.stats import stats_problems
from aslfr.format.store import Location
from aslfr.format.tfrecord import CorruptRecordError, stream_crc32c


def records_dirs(root: str | Location, storage_options: Mapping[str, Any] | None = None) -> list[Location]:
    """A records folder itself, or the records folders of an output folder ({out_dir}/tfrecords/*),
    as paths or URLs; a location that cannot be either (nothing, a file) is an error saying which."""
    return [f.where for f in RecordsFolder.discover(root, storage_options)]


def verify_split(records_dir: Location, storage_options: Mapping[str, Any] | None = None) -> tuple[bool, str]:
    """(ok, one-line verdict) for one records folder (a path or a URL)."""
    return verify_folder(RecordsFolder.at(records_dir, storage_options))


def verify_folder(folder: RecordsFolder) -> tuple[bool, str]:
    """(ok, one-line verdict) for one records folder."""
    where, store = folder.where, folder.store
    try:
        m = folder.manifest
    except ManifestError as e:
        return False, f"{where}: FAIL {e}"
    if m is None:
        return False, f"{where}: FAIL no manifest.json"
    problems = [f"manifest.json: {p}" for p in m.inconsistencies()] + stats_problems(store)
    sizes = folder.sizes()
    listed = {s.name for s in m.shards}
    extra = [n for n in folder.present() if n not in listed]
    if extra:
        problems.append(f"{len(extra)} shard(s) not in the manifest, first {extra[0]}")
    records = 0
    for s in m.shards:
        if layout.parse_shard_name(s.name) is None:
            continue  # not a file of this folder (the manifest's problem, listed above)
        if s.name not in sizes:
            problems.append(f"{s.name}: missing")
            continue
        if sizes[s.name] != s.bytes:
            problems.append(f"{s.name}: {sizes[s.name]} bytes, manifest says {s.bytes}")
            continue
        with store.open_read(s.name) as (f, _):
            if stream_crc32c(f) != s.crc32c:
                problems.append(f"{s.name}: checksum differs from the manifest")
                continue
        try:
            if s.index_bytes is not None and layout.index_name(s.name) not in sizes:
                raise CorruptRecordError(f"{layout.index_name(s.name)}: index file missing")
            folder.index(s.name, s.records)
            n = 0
            for rec in read_shard(store.where(s.name), storage_options=store.options):
                n += 1
                if int(rec["fold"]) != s.fold or rec["n_frames"] != rec["frames"].shape[0]:
                    raise ValueError(f"{s.name}: record {n - 1} does not match its shard (fold/n_frames)")
        except ValueError as e:
            problems.append(str(e))
            continue
        if n != s.records or layout.parse_shard_name(s.name)[1] != n:
            problems.append(f"{s.name}: {n} records, manifest says {s.records}")
        records += n
    if problems:
        return False, f"{where}: FAIL {len(problems)} problem(s): {problems[0]}"
    return True, (f"{where}: OK {len(m.shards)} shards, {records} records, CRCs, indexes and schema "
                  "verified")
