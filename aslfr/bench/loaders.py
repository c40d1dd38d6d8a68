"""Threads against processes as the stream's workers, on the same records and cores: `ThreadLoader`
(threads of the training process, batches built into reused memory) against `StreamLoader` (DataLoader
worker processes, persistent, each batch copied out of shared memory by the training process), for
the reference's training input, its inference input and the plain read (`pack_collate`, then `unpack`
in the training process, the README's first reading snippet).

Both loaders are warmed by one untimed epoch, then timed epoch by epoch in turn (A, B, A, B, ...), so
that a busy machine slows both alike; a figure counts when the training loop holds the batch.

    python -m aslfr.bench.loaders RECORDS [--epochs 5] [--workers 2]"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any, Callable

import torch

from aslfr.bench import print_rows
from aslfr.bench.throughput import BATCH, WORKERS, summary

SIDES = ("processes", "threads")


def _epoch(loader, epoch: int, consume: Callable | None) -> tuple[float, float]:
    """(rec/s, records per CPU second) of one epoch of the loader, each batch through `consume` in
    the loop. The CPU seconds (this process and its workers) barely change with other programs'
    load, the wall clock does: on a shared machine the first figure is noisy."""
    loader.set_epoch(epoch)
    start, cpu = time.perf_counter(), _cpu_seconds()
    records = sum(_consumed(batch, consume) for batch in loader)
    return records / (time.perf_counter() - start), records / (_cpu_seconds() - cpu)


def _cpu_seconds() -> float:
    """CPU seconds of this process (all threads) and of its live children (DataLoader workers)."""
    total, tick = time.process_time(), os.sysconf("SC_CLK_TCK")
    for children in Path("/proc/self/task").glob("*/children"):
        for pid in children.read_text().split():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # ended meanwhile
                continue
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def _consumed(batch: dict[str, Any], consume: Callable | None) -> int:
    """The batch's records, once `consume` (if any) has had it."""
    if consume is not None:
        consume(batch)
    return len(batch["lengths"])


def compare(records, epochs: int = 5, workers: int = WORKERS, batch: int = BATCH
            ) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """{path: {"processes": [(rec/s, rec per CPU second) per timed epoch], "threads": ...}}, `workers`
    of each kind."""
    from aslfr.data.collate import ReferenceCollate, pack_collate, unpack
    from aslfr.data.stream import StreamLoader, TFRecordStream
    from aslfr.data.threads import ThreadLoader
    from aslfr.format.stats import load_stats

    torch.set_num_threads(1)  # as DataLoader workers run: one core's work each, the loop's too
    means, stds = load_stats(records)
    paths: dict[str, tuple[Callable, Callable | None]] = {
        "training input, ReferenceCollate(train=True)": (ReferenceCollate(means, stds, train=True), None),
        "inference input, ReferenceCollate(train=False)": (ReferenceCollate(means, stds, train=False), None),
        "read, pack_collate + unpack in the loop": (pack_collate, unpack),
    }
    out = {}
    for label, (collate, consume) in paths.items():
        stream = TFRecordStream(records, batch_size=batch, seed=0, keys=True)
        loaders: dict[str, Any] = {
            "processes": StreamLoader(stream, num_workers=workers, persistent_workers=True, collate_fn=collate),
            "threads": ThreadLoader(stream, threads=workers, collate_fn=collate),
        }
        rates: dict[str, list[tuple[float, float]]] = {side: [] for side in SIDES}
        for epoch in range(epochs + 1):
            for side in SIDES:
                rate = _epoch(loaders[side], epoch, consume)
                if epoch:
                    rates[side].append(rate)
        out[label] = rates
        del loaders  # the worker processes end
    return out


def loader_rows(records, epochs: int = 5, workers: int = WORKERS, batch: int = BATCH) -> list[tuple[str, str]]:
    """(label, value) rows for the benchmark table: median [range] rec/s of each side, and records per
    CPU second; threads / processes of the medians."""
    import statistics

    rows = []
    for label, rates in compare(records, epochs, workers, batch).items():
        for i, unit in enumerate(("rec/s", "rec per CPU second")):
            p, t = ([r[i] for r in rates[side]] for side in SIDES)
            rows.append((f"{label}, {workers} worker processes | {workers} threads ({unit})",
                         f"{summary(p)} | {summary(t)}   threads/processes "
                         f"{statistics.median(t) / statistics.median(p):.2f}x"))
    return rows


class _ShardsLoader:
    """A DataLoader over `TFRecordShards` with the loaders' `set_epoch`, for `stream_rows`."""

    def __init__(self, records, workers: int, batch: int, collate: Callable):
        from torch.utils.data import DataLoader

        from aslfr.data.datasets import TFRecordShards

        self.ds = TFRecordShards(records, shuffle=True, seed=0, keys=True)
        self.loader = DataLoader(self.ds, batch_size=batch, num_workers=workers, persistent_workers=True,
                                 collate_fn=collate)

    def set_epoch(self, epoch: int) -> None:
        self.ds.set_epoch(epoch)

    def __iter__(self):
        return iter(self.loader)


def stream_rows(records, epochs: int = 5, workers: int = WORKERS, batch: int = BATCH) -> list[tuple[str, str]]:
    """The stream (`TFRecordStream` + `StreamLoader`, mixed reads through the index files) against
    `TFRecordShards` (contiguous ranges per worker) on the same files, `pack_collate` + `unpack`, both
    with persistent worker processes, timed epoch by epoch in turn: the mixing costs no speed."""
    import statistics

    from aslfr.data.collate import pack_collate, unpack
    from aslfr.data.stream import StreamLoader, TFRecordStream

    loaders = {"TFRecordShards": _ShardsLoader(records, workers, batch, pack_collate),
               "TFRecordStream": StreamLoader(TFRecordStream(records, batch_size=batch, seed=0, keys=True),
                                              num_workers=workers, persistent_workers=True, collate_fn=pack_collate)}
    rates: dict[str, list[float]] = {k: [] for k in loaders}
    for epoch in range(epochs + 1):
        for name, loader in loaders.items():
            rate = _epoch(loader, epoch, unpack)[0]
            if epoch:
                rates[name].append(rate)
    old, new = rates["TFRecordShards"], rates["TFRecordStream"]
    return [(f"read, pack_collate + unpack, {workers} workers: TFRecordShards | TFRecordStream (rec/s)",
             f"{summary(old)} | {summary(new)}   stream/shards {statistics.median(new) / statistics.median(old):.2f}x")]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m aslfr.bench.loaders", description=__doc__.split("\n\n")[0])
    p.add_argument("records", help="a records folder with its statistics (means.npy, stds.npy) and index files")
    p.add_argument("--epochs", type=int, default=5, help="timed epochs per side, after a warm one (5)")
    p.add_argument("--workers", type=int, default=WORKERS, help="worker processes, and threads (2)")
    p.add_argument("--batch", type=int, default=BATCH, help="records a batch (32)")
    a = p.parse_args(argv)
    print_rows(stream_rows(a.records, a.epochs, a.workers, a.batch) + loader_rows(a.records, a.epochs, a.workers, a.batch))


if __name__ == "__main__":
    main()
