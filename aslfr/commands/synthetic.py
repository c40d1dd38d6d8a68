"""`python -m aslfr.synthetic data_dir=PATH`: synthetic data in the exact competition layout (train.csv,
supplemental_metadata.csv, *_landmarks/<file_id>.parquet), so the pipeline runs on a fresh machine.

PATH is what the converter then takes as `data_dir=`; a bare PATH works too, as does `out_dir=PATH`."""

from __future__ import annotations

import argparse

from aslfr.commands.cli import one_line_errors, prog


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog=prog("aslfr.synthetic"), description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n")[1])
    p.add_argument("data_dir", metavar="data_dir=PATH",
                   type=lambda v: v.removeprefix("data_dir=").removeprefix("out_dir="))
    p.add_argument("--train-files", type=int, default=3)
    p.add_argument("--sup-files", type=int, default=2)
    p.add_argument("--sequences", type=int, default=40, help="sequences per parquet file")
    p.add_argument("--mean-frames", type=float, default=60)
    p.add_argument("--participants", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    from aslfr.source.synthetic import SplitSpec, generate

    sup = SplitSpec(a.sup_files, a.sequences, a.mean_frames, a.participants) if a.sup_files else None
    with one_line_errors():
        root = generate(a.data_dir, SplitSpec(a.train_files, a.sequences, a.mean_frames, a.participants), sup, a.seed)
    print(f"synthetic data written to {root}")


if __name__ == "__main__":
    main()
