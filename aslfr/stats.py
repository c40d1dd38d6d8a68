"""Per-column mean and std over all non-NaN frame values (`means.npy` / `stds.npy`, shape [384]),
as the reference's gen-mean (population std, std < 1e-6 -> 1), from mergeable partial sums so that
conversion jobs, folds and files combine exactly in any grouping.

    python -m aslfr.stats RECORDS_DIR   # recompute from existing *.tfrec files
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aslfr.vocab import N_COLS


@dataclass
class ColumnStats:
    """count, sum and sum of squares per column, accumulated in float64."""

    count: np.ndarray = field(default_factory=lambda: np.zeros(N_COLS, np.int64))
    total: np.ndarray = field(default_factory=lambda: np.zeros(N_COLS, np.float64))
    squares: np.ndarray = field(default_factory=lambda: np.zeros(N_COLS, np.float64))

    def add(self, frames: np.ndarray) -> None:
        """Accumulate float32 frames [n, n_cols]; NaN values are left out."""
        nan = np.isnan(frames)
        self.add_zeroed(np.where(nan, np.float32(0), frames), nan)

    def add_zeroed(self, zeroed: np.ndarray, nan: np.ndarray) -> None:
        """`add` for frames whose NaN (mask `nan`) are already 0, as the converter has them."""
        self.count += zeroed.shape[0] - np.count_nonzero(nan, axis=0)
        x = zeroed.astype(np.float64)
        self.total += x.sum(0)
        self.squares += np.einsum("ij,ij->j", x, x)

    def merge(self, other: "ColumnStats") -> "ColumnStats":
        return ColumnStats(self.count + other.count, self.total + other.total, self.squares + other.squares)

    def means_stds(self) -> tuple[np.ndarray, np.ndarray]:
        """float32 means and population stds; std < 1e-6 (or an empty column) becomes 1."""
        n = np.maximum(self.count, 1)
        mean = self.total / n
        var = np.maximum(self.squares / n - mean * mean, 0.0)
        std = np.sqrt(var)
        std[(std < 1e-6) | (self.count == 0)] = 1.0
        return mean.astype(np.float32), std.astype(np.float32)

    def to_dict(self) -> dict:
        return {"count": self.count.tolist(), "sum": self.total.tolist(), "sumsq": self.squares.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "ColumnStats":
        return cls(np.asarray(d["count"], np.int64), np.asarray(d["sum"], np.float64), np.asarray(d["sumsq"], np.float64))


def save(stats: ColumnStats, directory: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Write means.npy and stds.npy into `directory` (atomically) and return them."""
    from aslfr.files import atomic_write_bytes
    import io

    means, stds = stats.means_stds()
    for name, arr in (("means.npy", means), ("stds.npy", stds)):
        buf = io.BytesIO()
        np.save(buf, arr)
        atomic_write_bytes(Path(directory) / name, buf.getvalue())
    return means, stds


def from_records(directory: str | Path) -> ColumnStats:
    """Recompute the statistics from the records of a directory (every *.tfrec, sorted by number)."""
    from aslfr.reader import read_shard

    stats = ColumnStats()
    for path in sorted(Path(directory).glob("*.tfrec"), key=lambda p: int(p.name.split(".")[0])):
        for rec in read_shard(path):
            stats.add(rec["frames"])
    return stats


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if args and args[0] in ("-h", "--help") else 2)
    means, stds = save(from_records(args[0]), args[0])
    print(f"{args[0]}: means.npy and stds.npy written ({len(means)} columns)")


if __name__ == "__main__":
    main()
