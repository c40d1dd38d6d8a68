"""Records per second of the reading paths, for `make bench` and for sizing an input pipeline: the
in-process reader, the DataLoader (padded or packed batches), the reference training path on CPU
workers, and the batched training path (workers only read; augmentations on the batch, CPU or CUDA).
DataLoader figures are steady state: persistent workers, the second epoch timed."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Callable

import torch
from torch.utils.data import DataLoader

BATCH = 32


def in_process(records) -> float:
    """Iterate the reader and `pad_collate` batches of 32 in this process (torch values)."""
    from aslfr.data.collate import pad_collate
    from aslfr.data.datasets import TFRecordShards

    t = time.perf_counter()
    n, items = 0, []
    for item in TFRecordShards(records):
        items.append(item)
        if len(items) == BATCH:
            n += len(pad_collate(items)["lengths"])
            items = []
    n += len(pad_collate(items)["lengths"]) if items else 0
    return n / (time.perf_counter() - t)


def loader(records, workers: int = 2, collate: Callable | None = None, transform: Callable | None = None,
           consume: Callable | None = None) -> float:
    """Steady-state rec/s of a DataLoader over the records (numpy items when there is no transform)."""
    from aslfr.data.collate import pad_collate
    from aslfr.data.datasets import TFRecordShards

    ds = TFRecordShards(records, shuffle=True, seed=0, transform=transform, torch_values=transform is not None)
    dl = DataLoader(ds, batch_size=BATCH, num_workers=workers, collate_fn=collate or pad_collate,
                    persistent_workers=workers > 0)
    rate = 0.0
    for epoch in range(2):  # the first epoch starts the workers
        ds.set_epoch(epoch)
        t, n = time.perf_counter(), 0
        for batch in dl:
            if consume is not None:
                consume(batch)
            n += len(batch["lengths"])
        rate = n / (time.perf_counter() - t)
    return rate


def batched_training(records, device: str, stats_dir: Path, workers: int = 2) -> float:
    """Workers read and pack; the reference training path runs on whole batches on `device`."""
    from aslfr.data.collate import pack_collate, unpack
    from aslfr.data.transforms.reference import reference_preprocess_batch
    from aslfr.format.stats import load_stats

    means, stds = (torch.as_tensor(a).to(device) for a in load_stats(stats_dir))
    gen = torch.Generator().manual_seed(0)

    def consume(batch):
        b = unpack(batch, device)
        reference_preprocess_batch(b["frames"], b["lengths"], means, stds, train=True, generator=gen)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    return loader(records, workers, pack_collate, consume=consume)


def _median(measure: Callable[[], float], runs: int) -> float:
    return statistics.median(measure() for _ in range(runs))


def reader_rows(records: Path, runs: int = 3) -> list[tuple[str, str]]:
    """(label, value) rows for the benchmark table, each with its ratio to the in-process reader:
    medians of `runs`; the training paths, slower, read the first 4 shards only."""
    from aslfr.data.collate import pack_collate
    from aslfr.data.transforms.reference import ReferencePreprocess
    from aslfr.format.manifest import resolve_shards
    from aslfr.format.stats import load_stats

    torch.set_num_threads(1)  # the reader is single-threaded work; torch's intra-op threads only contend
    os.sync()  # no writeback of earlier runs during the measurements
    base = _median(lambda: in_process(records), runs)
    means, stds = load_stats(records)
    some = resolve_shards(records)[:4]
    figures = [
        ("reader in process, iterate + pad_collate, batch 32", base),
        ("DataLoader 2 workers, pad_collate", _median(lambda: loader(records, 2), runs)),
        ("DataLoader 2 workers, pack_collate", _median(lambda: loader(records, 2, pack_collate), runs)),
        ("training path (augment + 769 cols + 320 frames), 2 CPU workers",
         loader(some, 2, transform=ReferencePreprocess(means, stds, train=True))),
        ("batched training path on CPU (workers pack, augment per batch)", batched_training(some, "cpu", records)),
    ]
    if torch.cuda.is_available():
        figures.append(("batched training path on CUDA", batched_training(some, "cuda", records)))
    return [(f"{label} (rec/s, x in-process)", f"{rate:,.0f}  ({rate / base:.2f}x)") for label, rate in figures]
