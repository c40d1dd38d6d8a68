"""Checking a records folder against its manifest: its totals are the sums over its shards and its
shard names agree with its fold count; every listed shard exists with its record count, byte size
and CRC32C; its index (if any) matches the manifest's size and CRC32C and the shard's records; every
record passes both TFRecord CRCs and decodes with the schema; no unlisted shard; means.npy and
stds.npy load as training needs them."""

from __future__ import annotations

from typing import Any, Mapping

from aslfr.format import layout, storage
from aslfr.format.manifest import ManifestError, checked_index, load_manifest
from aslfr.format.schema import read_shard
from aslfr.format.stats import stats_problems
from aslfr.format.storage import Location
from aslfr.format.tfrecord import CorruptRecordError, file_crc32c


def records_dirs(root: str | Location, storage_options: Mapping[str, Any] | None = None) -> list[Location]:
    """A records folder itself, or the records folders of an output folder ({out_dir}/tfrecords/*),
    as paths or URLs; a location that cannot be either (nothing, a file) is an error saying which."""
    root = storage.location(root)
    if not storage.is_dir(root, storage_options):
        if storage.is_file(root, storage_options):
            raise ManifestError(f"{root}: is a file: give an output folder or a records folder")
        raise ManifestError(f"{root}: no such file or folder")
    if storage.is_file(storage.join(root, layout.MANIFEST), storage_options):
        return [root]
    for pattern in (f"{layout.RECORDS_ROOT}/*/{layout.MANIFEST}", f"*/{layout.MANIFEST}"):
        found = sorted(map(storage.parent, storage.glob(root, pattern, storage_options)))
        if found:
            return found
    return []


def verify_split(records_dir: Location, storage_options: Mapping[str, Any] | None = None) -> tuple[bool, str]:
    """(ok, one-line verdict) for one records folder (a path or a URL)."""
    records_dir = storage.location(records_dir)
    opts = storage_options
    try:
        m = load_manifest(records_dir, opts)
    except ManifestError as e:
        return False, f"{records_dir}: FAIL {e}"
    if m is None:
        return False, f"{records_dir}: FAIL no manifest.json"
    problems = [f"manifest.json: {p}" for p in m.inconsistencies()] + stats_problems(records_dir, opts)
    listed = {s.name for s in m.shards}
    extra = [n for n in map(storage.name, layout.glob_shards(records_dir, opts)) if n not in listed]
    if extra:
        problems.append(f"{len(extra)} shard(s) not in the manifest, first {extra[0]}")
    records = 0
    for s in m.shards:
        path = storage.join(records_dir, s.name)
        if not storage.is_file(path, opts):
            problems.append(f"{s.name}: missing")
            continue
        if (size := storage.size(path, opts)) != s.bytes:
            problems.append(f"{s.name}: {size} bytes, manifest says {s.bytes}")
            continue
        if file_crc32c(path, opts) != s.crc32c:
            problems.append(f"{s.name}: checksum differs from the manifest")
            continue
        try:
            if s.index_bytes is not None and not storage.is_file(layout.index_path(path), opts):
                raise CorruptRecordError(f"{layout.index_name(s.name)}: index file missing")
            checked_index(path, s.records, opts)
            n = 0
            for rec in read_shard(path, storage_options=opts):
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
        return False, f"{records_dir}: FAIL {len(problems)} problem(s): {problems[0]}"
    return True, (f"{records_dir}: OK {len(m.shards)} shards, {records} records, CRCs, indexes and schema "
                  "verified")
