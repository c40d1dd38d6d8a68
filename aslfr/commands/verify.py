"""`python -m aslfr.verify out_dir=PATH`: check records folders against their manifests.

Prints one verdict line per split and exits 1 if any split fails."""

from __future__ import annotations

import sys

from aslfr.commands.cli import one_line_errors, out_dir_parser


def main(argv: list[str] | None = None) -> int:
    a = out_dir_parser(
        "aslfr.verify", __doc__,
        "the converter's out_dir, or one records folder ({out_dir}/tfrecords/train), a path or a URL "
        "(s3://bucket/out, configured by the environment); `out_dir=` may be left out",
        epilog="Checks per split: manifest.json's version, totals and fold count against its shards, and "
               "means.npy / stds.npy as training loads them. Per shard: presence, record count, bytes and "
               "CRC32C against manifest.json; the index file's size, CRC32C and offsets; both TFRecord CRCs "
               "of every record; the schema; and that no unlisted shard is in the folder.").parse_args(argv)
    from aslfr.format.verify import records_dirs, verify_split

    with one_line_errors():
        splits = records_dirs(a.out_dir)
        if not splits:
            print(f"{a.out_dir}: FAIL no manifest.json found (is the conversion finished?)")
            return 1
        ok = True
        for d in splits:
            good, line = verify_split(d)
            ok &= good
            print(line)
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
