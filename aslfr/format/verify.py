"""Checking a records folder against its manifest: its totals are the sums over its shards and its
shard names agree with its fold count; every listed shard exists with its record count, byte size
and CRC32C; its index (if any) matches the manifest's size and CRC32C and the shard's records; every
record passes both TFRecord CRCs and decodes with the schema; no unlisted shard; means.npy and
stds.npy load as training needs them."""

from __future__ import annotations

from pathlib import Path

from aslfr.format import layout
from aslfr.format.manifest import ManifestError, checked_index, load_manifest
from aslfr.format.schema import read_shard
from aslfr.format.stats import stats_problems
from aslfr.format.tfrecord import CorruptRecordError, file_crc32c


def records_dirs(root: str | Path) -> list[Path]:
    """A records folder itself, or the records folders of an output folder ({out_dir}/tfrecords/*);
    a path that cannot be either (a URL, nothing, a file) is an error saying which."""
    if "://" in str(root):
        raise ManifestError(f"{root}: object-store URLs are not supported yet; copy the folder to a local disk")
    root = Path(root)
    if not root.exists():
        raise ManifestError(f"{root}: no such file or folder")
    if not root.is_dir():
        raise ManifestError(f"{root}: is a file: give an output folder or a records folder")
    if (root / layout.MANIFEST).is_file():
        return [root]
    found = sorted(p.parent for p in root.glob(f"{layout.RECORDS_ROOT}/*/{layout.MANIFEST}"))
    return found or sorted(p.parent for p in root.glob(f"*/{layout.MANIFEST}"))


def verify_split(records_dir: Path) -> tuple[bool, str]:
    """(ok, one-line verdict) for one records folder."""
    try:
        m = load_manifest(records_dir)
    except ManifestError as e:
        return False, f"{records_dir}: FAIL {e}"
    if m is None:
        return False, f"{records_dir}: FAIL no manifest.json"
    problems = [f"manifest.json: {p}" for p in m.inconsistencies()] + stats_problems(records_dir)
    listed = {s.name for s in m.shards}
    extra = [p.name for p in layout.glob_shards(records_dir) if p.name not in listed]
    if extra:
        problems.append(f"{len(extra)} shard(s) not in the manifest, first {extra[0]}")
    records = 0
    for s in m.shards:
        path = records_dir / s.name
        if not path.is_file():
            problems.append(f"{s.name}: missing")
            continue
        if path.stat().st_size != s.bytes:
            problems.append(f"{s.name}: {path.stat().st_size} bytes, manifest says {s.bytes}")
            continue
        if file_crc32c(path) != s.crc32c:
            problems.append(f"{s.name}: checksum differs from the manifest")
            continue
        try:
            if s.index_bytes is not None and not layout.index_path(path).is_file():
                raise CorruptRecordError(f"{layout.index_name(s.name)}: index file missing")
            checked_index(path, s.records)
            n = 0
            for rec in read_shard(path):
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
