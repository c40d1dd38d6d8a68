"""A loader whose workers are threads of the training process, as FFCV's are: each builds whole
batches of a `TFRecordStream` (records read, framed, CRC-checked and parsed by numba, then the
collate_fn, e.g. `ReferenceCollate`'s fused kernel, all without the GIL in their heavy parts) straight
into batch memory the loader reuses. Nothing is pickled or copied between processes: from a worker
process, each [32, 320, 769] float32 batch (31.5 MB) is copied out of shared memory by the training
process, and fresh memory costs page faults there.

Step k is built from the stream's plan as a DataLoader worker builds it (`TFRecordStream.batch` of the
plan's rank batch k, then the collate_fn), so the batches are `StreamLoader`'s, byte for byte,
whatever the threads; the counting of consumed steps (state_dict, resume) is `StreamLoader`'s."""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterator

import torch

from aslfr.data.collate import BATCH_MEMORY
from aslfr.data.stream import StreamLoader, TFRecordStream


class _Slot:
    """One batch's memory, reused batch after batch; grown by a quarter more when a batch needs more.
    Only a batch's first arena gets it (a collate_fn that lays out two batches gets fresh memory for
    the second)."""

    def __init__(self) -> None:
        self.storage: torch.UntypedStorage | None = None
        self.free = False

    def take(self, nbytes: int) -> torch.UntypedStorage:
        if not self.free:
            return torch.UntypedStorage(max(nbytes, 8))
        self.free = False
        if self.storage is None or self.storage.nbytes() < nbytes:
            self.storage = torch.UntypedStorage(int(nbytes * 1.25) + 8)
        return self.storage


class ThreadLoader(StreamLoader):
    """`StreamLoader` with threads of the training process for workers: the same batches, steps,
    `set_epoch`, `state_dict` / `load_state_dict` (O(1) resume at a consumed step), with nothing
    copied between processes. Thread i builds the next step not yet taken, at most
    `threads x prefetch` steps ahead of the training loop.

    The batches' tensors live in `threads x prefetch + 1` buffers the loader reuses: a batch stays
    valid until the next one is requested (the next turn of the loop); to keep one longer, copy it
    (`.clone()`, or `.to(device)`). A collate_fn must be thread-safe (aslfr's collates are); a
    stream transform too. `threads=0` builds each batch in the training loop's own thread.

        loader = ThreadLoader(stream, threads=2, collate_fn=ReferenceCollate(means, stds, train=True))
        for epoch in range(loader.epoch, epochs):
            loader.set_epoch(epoch)
            for batch in loader:
                ...
    """

    def __init__(self, stream: TFRecordStream, threads: int = 2, collate_fn: Callable | None = None,
                 prefetch: int = 2):
        if threads < 0 or prefetch < 1:
            raise ValueError(f"ThreadLoader: threads must be >= 0 and prefetch >= 1, got threads={threads} "
                             f"prefetch={prefetch}")
        self.stream, self.collate_fn = stream, collate_fn
        self.threads, self.prefetch = threads, prefetch
        self.slots = [_Slot() for _ in range(threads * prefetch + 1)]
        self._step = 0  # batches of this epoch handed to the loop
        self._resume: int | None = None

    def _batches(self, start: int) -> Iterator[Any]:
        epoch = self.stream.epoch
        plan = self.stream.plan(epoch)  # here, once: the threads share it

        def build(step: int) -> Any:
            items = self.stream.batch(plan.rank_batch(step, self.stream.rank, self.stream.world_size), epoch)
            if self.collate_fn is None:
                return items
            slot = self.slots[step % len(self.slots)]
            slot.free, BATCH_MEMORY.take = True, slot.take
            try:
                return self.collate_fn(items)
            finally:
                del BATCH_MEMORY.take

        if not self.threads:
            return map(build, range(start, plan.steps))
        return _Pass(build, start, plan.steps, self.threads, len(self.slots))


class _Pass:
    """One pass's threads: each takes the next step not yet taken, while it is less than `window`
    steps past the one the loop asked for last (step s reuses step s - window's buffer), and the loop
    gets the steps in order. An error in a thread is raised in the loop at its step."""

    def __init__(self, build: Callable[[int], Any], start: int, steps: int, threads: int, window: int):
        self.build, self.start, self.steps, self.window = build, start, steps, window
        self.cond = threading.Condition()
        self.next, self.asked, self.done, self.stop = start, start, {}, False
        self.workers = [threading.Thread(target=self._work, name=f"aslfr-loader-{i}", daemon=True)
                        for i in range(threads)]

    def _work(self) -> None:
        while True:
            with self.cond:
                self.cond.wait_for(lambda: self.stop or self.next >= self.steps
                                   or self.next < self.asked + self.window)
                if self.stop or self.next >= self.steps:
                    return
                step, self.next = self.next, self.next + 1
            try:
                result = (True, self.build(step))
            except BaseException as e:  # raised in the loop, at its step
                result = (False, e)
            with self.cond:
                self.done[step] = result
                self.cond.notify_all()

    def __iter__(self) -> Iterator[Any]:
        for w in self.workers:
            w.start()
        try:
            for step in range(self.start, self.steps):
                with self.cond:
                    self.asked = step  # the batch before it is given up: its buffer may be reused
                    self.cond.notify_all()
                    self.cond.wait_for(lambda: step in self.done)
                    ok, value = self.done.pop(step)
                if not ok:
                    raise value
                yield value
        finally:
            with self.cond:
                self.stop = True
                self.cond.notify_all()
            for w in self.workers:
                w.join()


__all__ = ["ThreadLoader"]
