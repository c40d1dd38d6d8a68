"""Figures of the fused kernels for `make bench`: the first batch with a cold and a warm compile
cache (each in a new process), and the kernels' per-core rates against a plain copy of their output
batch and against the torch path (`ReferenceCollate(backend="torch")`)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

_CHILD = """
import time, numpy as np, torch
t, c = time.perf_counter(), time.process_time()
from aslfr.data.kernels.fused import FusedInput, WIDTH
from aslfr.data.transforms.reference import transforms
fused = FusedInput.of(transforms(np.full(384, 0.5, np.float32), np.full(384, 0.1, np.float32), train={train}))
lengths = np.random.default_rng(0).integers(20, 400, 32)
out = np.empty((32, fused.n, WIDTH), np.float32)
fused(np.random.default_rng(1).random((int(lengths.sum()), 384), dtype=np.float32), lengths, np.arange(32), out)
print(time.perf_counter() - t, time.process_time() - c)
"""


def _first_batch(train: bool, cache: str) -> tuple:
    """(wall, CPU) seconds from importing the kernels to a first batch of 32, in a new process
    (torch imported before the clocks start: it is not the kernels' cost)."""
    env = {**os.environ, "NUMBA_CACHE_DIR": cache,
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[3]), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", _CHILD.format(train=train)], env=env, capture_output=True,
                          text=True, check=True)
    wall, cpu = done.stdout.split()[-2:]
    return float(wall), float(cpu)


def first_batch_seconds() -> dict:
    """{"training": {"cold": (wall, cpu), "warm": (wall, cpu)}, "inference": {...}} in seconds: the
    first batch in a new process with an empty compile cache (compiling), then again with the cache
    that run left (loading). CPU seconds tell the cost on a busy machine."""
    out = {}
    for name, train in (("training", True), ("inference", False)):
        with tempfile.TemporaryDirectory(prefix="aslfr-numba-") as cache:
            cold = _first_batch(train, cache)
            out[name] = {"cold": cold, "warm": _first_batch(train, cache)}
    return out


def _best(fn, repeats: int, clock) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = clock()
        fn()
        times.append(clock() - t)
    return min(times)


def per_core_rates(frames: Optional[Sequence[np.ndarray]] = None, keys: Optional[Sequence[int]] = None,
                   batch: int = 32, repeats: int = 5, means=None, stds=None, clock=time.perf_counter) -> dict:
    """Records per second on one core (torch set to one thread), best of `repeats`, over the first
    `batch` records (frames [T, 384] each; default: synthetic, ~160 frames): a numpy copy of the
    output batch, the training and inference kernels into a reused batch, and the whole collate
    (`ReferenceCollate`) with the kernels and with the torch ops. `copy_ratio`: the inference
    kernel's rate over the copy's (the issue's per-core target: >= 0.5). On a busy machine
    `clock=time.thread_time` counts this thread's CPU time only (all the work runs in it)."""
    import torch

    from aslfr.data.collate import ReferenceCollate
    from aslfr.data.kernels.fused import WIDTH, FusedInput
    from aslfr.data.transforms.reference import transforms

    g = np.random.default_rng(0)
    if frames is None:
        frames = [g.random((int(n), 384), dtype=np.float32) for n in g.integers(60, 260, batch)]
    frames = [np.asarray(f, np.float32) for f in frames[:batch]]
    keys = np.asarray(keys[:batch] if keys is not None else g.integers(0, 2 ** 62, len(frames)), np.int64)
    means = np.full(384, 0.5, np.float32) if means is None else means
    stds = np.full(384, 0.1, np.float32) if stds is None else stds
    b, lengths, packed = len(frames), np.array([len(f) for f in frames]), np.concatenate(frames)
    items = [{"frames": f, "key": int(k)} for f, k in zip(frames, keys)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = np.empty((b, 320, WIDTH), np.float32)
        copy = np.empty_like(out)
        rates = {"copy": b / _best(lambda: np.copyto(copy, out), repeats, clock)}
        for name, train in (("training", True), ("inference", False)):
            fused = FusedInput.of(transforms(means, stds, train=train))
            rates[f"{name}_kernel"] = b / _best(lambda: fused(packed, lengths, keys, out), repeats, clock)
            for backend in ("numba", "torch"):
                collate = ReferenceCollate(means, stds, train=train, backend=backend)
                rates[f"{name}_collate_{backend}"] = b / _best(lambda: collate(items), repeats, clock)
    finally:
        torch.set_num_threads(threads)
    rates["copy_ratio"] = rates["inference_kernel"] / rates["copy"]
    return rates


if __name__ == "__main__":
    print(first_batch_seconds())
    print(per_core_rates())
    print(per_core_rates(clock=time.thread_time))
