"""`python -m aslfr.stats out_dir=PATH`: recompute means.npy / stds.npy from the records.

PATH is an output folder or one records folder, as `python -m aslfr.verify` takes; the shards read
are those manifest.json lists. A folder with no records is an error: no statistics are written."""

from __future__ import annotations

import sys

from aslfr.commands.cli import fail, one_line_errors, out_dir_parser


def main(argv: list[str] | None = None) -> int:
    a = out_dir_parser("aslfr.stats", __doc__, "the converter's out_dir, or one records folder "
                       "({out_dir}/tfrecords/train); `out_dir=` may be left out",
                       epilog=__doc__.split("\n\n")[1]).parse_args(argv)
    from aslfr.convert.stats import from_records, save
    from aslfr.format.folder import resolve_shards
    from aslfr.format.verify import records_dirs

    with one_line_errors():
        dirs = records_dirs(a.out_dir)
        if not dirs:
            fail(f"{a.out_dir}: no records folder with a manifest.json (convert first)")
        for d in dirs:
            stats = from_records(resolve_shards(d))
            if not stats.count.any():
                fail(f"{d}: no frames in its records; statistics not written")
            means, _ = save(stats, d)
            print(f"{d}: means.npy and stds.npy written ({len(means)} columns, "
                  f"{int(stats.count.max())} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
