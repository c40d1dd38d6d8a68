"""`python -m aslfr.verify OUT_DIR_OR_RECORDS_DIR`: check a records tree against its manifest.

For each split (a folder with manifest.json): every listed shard exists with its record count,
byte size and CRC32C; every record passes both TFRecord CRCs and decodes with the schema; no
unlisted shard is present. Prints one verdict line per split; exits 1 if any split fails."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from aslfr.manifest import MANIFEST, file_crc32c
from aslfr.shards import parse_shard_name


def verify_split(records_dir: Path) -> tuple[bool, str]:
    """(ok, one-line verdict) for one records directory."""
    from aslfr.reader import read_shard

    try:
        m = json.loads((records_dir / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        return False, f"{records_dir}: FAIL unreadable manifest ({e})"
    problems = []
    listed = {s["name"] for s in m["shards"]}
    extra = sorted(p.name for p in records_dir.glob("*.tfrec") if p.name not in listed)
    if extra:
        problems.append(f"{len(extra)} shard(s) not in the manifest, first {extra[0]}")
    records = 0
    for s in m["shards"]:
        path = records_dir / s["name"]
        if not path.is_file():
            problems.append(f"{s['name']}: missing")
            continue
        if path.stat().st_size != s["bytes"]:
            problems.append(f"{s['name']}: {path.stat().st_size} bytes, manifest says {s['bytes']}")
            continue
        if file_crc32c(path) != s["crc32c"]:
            problems.append(f"{s['name']}: checksum differs from the manifest")
            continue
        try:
            n = 0
            for rec in read_shard(path):
                n += 1
                if int(rec["fold"]) != s["fold"] or rec["n_frames"] != rec["frames"].shape[0]:
                    raise ValueError(f"record {n - 1} does not match its shard (fold/n_frames)")
        except ValueError as e:
            problems.append(str(e))
            continue
        if n != s["records"] or parse_shard_name(s["name"])[1] != n:
            problems.append(f"{s['name']}: {n} records, manifest says {s['records']}")
        records += n
    if problems:
        return False, f"{records_dir}: FAIL {len(problems)} problem(s): {problems[0]}"
    return True, f"{records_dir}: OK {len(m['shards'])} shards, {records} records, CRCs and schema verified"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if args and args[0] in ("-h", "--help") else 2
    root = Path(args[0])
    splits = [root] if (root / MANIFEST).is_file() else sorted(p.parent for p in root.glob("tfrecords/*/" + MANIFEST))
    if not splits:
        print(f"{root}: FAIL no manifest.json found (is the conversion finished?)")
        return 1
    ok = True
    for d in splits:
        good, line = verify_split(d)
        ok &= good
        print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
