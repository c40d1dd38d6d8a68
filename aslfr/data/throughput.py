"""Records per second of the reading paths, for `make bench` and for users sizing their input
pipeline: the in-process reader, the DataLoader, and the reference training path."""

from __future__ import annotations

import time
from pathlib import Path


def reader_speed(records: Path, workers: int) -> float:
    from torch.utils.data import DataLoader

    from aslfr.data.collate import pad_collate
    from aslfr.data.datasets import TFRecordShards

    ds = TFRecordShards(records)
    t = time.perf_counter()
    n = 0
    if workers == 0:
        for _ in ds:
            n += 1
    else:
        for batch in DataLoader(ds, batch_size=32, num_workers=workers, collate_fn=pad_collate):
            n += len(batch["lengths"])
    return n / (time.perf_counter() - t)


def reader_rows(records: Path) -> list[tuple[str, str]]:
    """(label, value) rows for the benchmark table."""
    r0 = reader_speed(records, 0)
    r2 = reader_speed(records, 2)
    return [("reader, 1 process (rec/s, target >= 10,000)", f"{r0:,.0f}"),
            ("reader, DataLoader 2 workers, batch 32 (rec/s)", f"{r2:,.0f}")]
