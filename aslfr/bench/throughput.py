"""Records per second of the reading paths, for `make bench` and for sizing an input pipeline, measured
as TensorFlow's side is (`aslfr/bench/tf_pipeline.py`): 2 DataLoader workers, batches of 32, persistent
workers, one warm-up epoch then several timed ones; a figure counts when the training process holds
the finished batch. Paths: the plain read (the README's first snippet), the reference's training and
inference input (`ReferenceCollate`), the per-item transform it replaces, the batched path on the
CPU, the DataLoader knobs, and on a GPU the batched augmentations and the whole loop."""

from __future__ import annotations

import os
import statistics
import time
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader

BATCH = 32
WORKERS = 2


def epoch_rates(dataset, epochs: int, consume: Callable | None = None, **loader_args) -> list[float]:
    """rec/s of each of `epochs` timed epochs after an untimed first one (which starts the workers)."""
    args = dict(batch_size=BATCH, num_workers=WORKERS, persistent_workers=True)
    args.update(loader_args)
    if not args["num_workers"]:
        args.pop("persistent_workers")
    loader, rates = DataLoader(dataset, **args), []
    for epoch in range(epochs + 1):
        dataset.set_epoch(epoch)
        t, n = time.perf_counter(), 0
        for batch in loader:
            if consume is not None:
                consume(batch)
            n += len(batch["lengths"])
        if epoch:
            rates.append(n / (time.perf_counter() - t))
    return rates


def paths(records, epochs: int = 5, device: str | None = None, gpu_only: bool = False) -> dict[str, list[float]]:
    """Per-epoch rec/s of each path, on the records (a folder with its statistics, or files)."""
    from aslfr.data.collate import ReferenceCollate, pack_collate, pad_collate
    from aslfr.data.datasets import TFRecordShards
    from aslfr.data.transforms.reference import ReferencePreprocess
    from aslfr.format.stats import load_stats

    torch.set_num_threads(1)  # the training process only copies batches out; more threads only contend
    means, stds = load_stats(records)

    def shards(**kw):
        return TFRecordShards(records, shuffle=True, seed=0, **kw)

    pre = ReferencePreprocess(means, stds, train=True)

    def batched(batch):  # the packed rows as pack_collate sends them
        pre.batch(batch["frames"], batch["lengths"], batch["key"])

    if gpu_only:
        return gpu_paths(records, means, stds, device, epochs)
    out = {
        "read": epoch_rates(shards(), epochs, collate_fn=pad_collate),
        "read, pack_collate": epoch_rates(shards(), epochs, collate_fn=pack_collate),
        "training": epoch_rates(shards(keys=True), epochs, collate_fn=ReferenceCollate(means, stds, train=True)),
        "inference": epoch_rates(shards(keys=True), epochs, collate_fn=ReferenceCollate(means, stds, train=False)),
        "training, per-item transform + pad_collate": epoch_rates(
            shards(transform=pre), max(2, epochs // 2), collate_fn=pad_collate),
        "training, batched on CPU (workers pack)": epoch_rates(
            shards(keys=True), max(2, epochs // 2), consume=batched, collate_fn=pack_collate),
        "training, pin_memory=True": epoch_rates(
            shards(keys=True), epochs, collate_fn=ReferenceCollate(means, stds, train=True), pin_memory=True),
        "training, prefetch_factor=4": epoch_rates(
            shards(keys=True), epochs, collate_fn=ReferenceCollate(means, stds, train=True), prefetch_factor=4),
    }
    if device is not None and device.startswith("cuda"):
        out.update(gpu_paths(records, means, stds, device, epochs))
    return out


def gpu_paths(records, means, stds, device: str, epochs: int, batch: int = 256) -> dict[str, list[float]]:
    """The batched training path on a GPU: the augmentations alone (input already on the device),
    the reader alone (2 workers packing batches of `batch`), and the whole loop (reader -> packed
    rows to the device -> augmentations), which should run at the reader's rate; and the
    augmentations phase by phase."""
    from aslfr.data.collate import pack_collate
    from aslfr.data.datasets import TFRecordShards
    from aslfr.data.transforms.reference import ReferencePreprocess

    pre = ReferencePreprocess(means, stds, train=True)
    batches = []
    for b in DataLoader(TFRecordShards(records, shuffle=True, seed=0, keys=True), batch_size=batch,
                        collate_fn=pack_collate):
        batches.append((b["frames"].to(device), b["lengths"], b["key"]))  # packed rows; lengths, keys on the host
        if len(batches) == 4:
            break

    def augment_only(on_host: bool = True) -> float:
        """Keys on the host: planned there (the loader's case); else on the device, no host reads."""
        torch.cuda.synchronize()
        t, n = time.perf_counter(), 0
        for _ in range(10):
            for frames, lengths, keys in batches:
                pre.batch(frames, lengths if on_host else lengths.to(device), keys if on_host else keys.to(device))
                n += len(lengths)
        torch.cuda.synchronize()
        return n / (time.perf_counter() - t)

    augment_only(), augment_only(False)  # warm-up: caches, kernels
    loop_args = dict(batch_size=batch, collate_fn=pack_collate, pin_memory=True)

    def consume(b):  # the packed rows to the device as they are: no padding to send or to touch
        pre.batch(b["frames"].to(device, non_blocking=True), b["lengths"], b["key"])

    def synced(rates):
        torch.cuda.synchronize()
        return rates

    return {
        f"GPU augmentations, batch {batch}, input on the device, planned on the host": [
            augment_only() for _ in range(epochs)],
        f"GPU augmentations, batch {batch}, planned on the device (no host reads)": [
            augment_only(False) for _ in range(epochs)],
        f"GPU reader alone, 2 workers, pack_collate batch {batch}": epoch_rates(
            TFRecordShards(records, shuffle=True, seed=0, keys=True), epochs, **loop_args),
        f"GPU whole loop: reader -> packed rows to the GPU -> augmentations, batch {batch}": synced(epoch_rates(
            TFRecordShards(records, shuffle=True, seed=0, keys=True), epochs, consume=consume, **loop_args)),
    }


def summary(rates: list[float]) -> str:
    return f"{statistics.median(rates):,.0f} [{min(rates):,.0f}-{max(rates):,.0f}]"


def reader_rows(records, epochs: int = 5, tf: dict[str, Any] | None = None, device: str | None = None,
                gpu_only: bool = False) -> list[tuple[str, str]]:
    """(label, value) rows for the benchmark table: median [range] rec/s over the timed epochs, and
    where TensorFlow ran the same path (`tf`: `run_tf_baseline`'s result), aslfr / TF of the medians."""
    os.sync()  # no writeback of earlier runs during the measurements
    ours = paths(records, epochs, device, gpu_only)
    theirs = (tf or {}).get("paths", {})
    rows = []
    if theirs:
        rows.append((f"records per epoch, epochs timed, TensorFlow {tf.get('tensorflow', '?')} as the reference sets "
                     f"it up ({tf.get('threads', '?')} threads: parallel reads, deterministic=False, prefetch)",
                     f"{tf.get('records', '?')}, {epochs}"))
    for label, rates in ours.items():
        value = summary(rates)
        if label in theirs:
            tf_rates = theirs[label]
            value += f"   TF {summary(tf_rates)}   aslfr/TF {statistics.median(rates) / statistics.median(tf_rates):.2f}x"
        rows.append((f"{label} (rec/s)", value))
    return rows


def synthetic_batch(bsz: int, seed: int = 0, mean_frames: float = 160.0):
    """A padded batch like the competition's (gamma-distributed lengths around 160 frames, missing
    hands as NaN), with lengths and keys: for timing the batched path without records."""
    import numpy as np

    rng = np.random.default_rng(seed)
    lengths = torch.from_numpy(np.maximum(1, rng.gamma(2.0, mean_frames / 2.0, bsz).astype(np.int64)))
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(bsz, int(lengths.max()), 384, generator=g) * 0.6 + 0.2
    x[..., :63][torch.rand(bsz, int(lengths.max()), generator=g) < 0.3] = float("nan")
    return x, lengths, torch.randint(0, 2 ** 62, (bsz,), generator=g)


def step_times(pre, x, lengths, keys, repeat: int = 5, eager: bool | None = None) -> list[tuple[str, float]]:
    """Milliseconds per batch of the batched training path (`ReferencePreprocess.batch`): the whole
    batch, then phase by phase (planning, each frame-wise step, the fused features step, resample +
    pad/resize, the steps after), each phase's own time, traced from outside with the device
    synchronized at each phase boundary. x: padded or packed."""
    from aslfr.bench.phases import PhaseTimer
    from aslfr.data.transforms import reference, rows

    dev = x.device  # eager None: what pre.batch chooses (on a device with host keys: planned on the host)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def batches() -> float:
        sync()
        t = time.perf_counter()
        for _ in range(repeat):
            pre.batch(x, lengths, keys, eager=eager)
        sync()
        return (time.perf_counter() - t) * 1000 / repeat

    timer = PhaseTimer({rows._frame_step: lambda frame: type(frame.f_locals["step"]).__name__,
                        rows._features: "normalize + concat + NaN->0 + pos",
                        rows._resample_and_pad: "resample + pad/resize",
                        reference._run: "steps after pad/resize (temporal mask)"}, sync=sync)
    pre.batch(x, lengths, keys, eager=eager)  # warm-up: caches, kernels
    whole = batches()  # untraced: the trace slows every Python call
    with timer, timer.phase("plan, checks (the rest)"):
        batches()
    steps = {k: v["seconds"] * 1000 / repeat for k, v in timer.take().items()}
    return [("whole batch", whole)] + sorted(steps.items(), key=lambda kv: -kv[1])
