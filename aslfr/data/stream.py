"""The training stream: per-rank batches of an epoch plan (`aslfr.data.plan`), equal in number and
size on every rank, the same whatever the ranks and DataLoader workers, resumable mid-epoch.

`TFRecordStream` yields whole per-rank batches (lists of items; a DataLoader with batch_size=None
applies its collate_fn to each). Step k of an epoch is global batch k of the plan; rank r takes its
slice r, and DataLoader worker k % num_workers builds it, which the DataLoader's round robin over
workers returns in step order. So a step's records, and with `keys=True` their augmentations, are
a function of (files, seed, epoch, global batch, step) alone.

`StreamLoader` wraps a DataLoader for it and counts the batches the training loop took: its
`state_dict()` is (epoch, steps consumed) and `load_state_dict` resumes at that step exactly,
reading nothing before it. The dataset itself follows torchdata's `Stateful` protocol (state per
worker), so `torchdata.stateful_dataloader.StatefulDataLoader` resumes it too."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from aslfr.data.datasets import _keyed, _reader_rank, _SharedEpoch, _through_cache, to_torch
from aslfr.data.kernels.records import decode_framed
from aslfr.data.plan import INTERLEAVE, BudgetPlan, EpochPlan, budget_plan, epoch_plan
from aslfr.format import layout
from aslfr.format.store import canonical, location, parent
from aslfr.format.folder import Shard, resolve
from aslfr.format.schema import SCHEMA
from aslfr.format.tfrecord import CorruptRecordError


class ShardRecords:
    """What the stream needs of the shards, in one place: record counts, the parquet file each shard
    comes from, the index offsets, records read by number, decoded. Each run of consecutive records
    of a shard is one read (one ranged request from a bucket; `cache_dir` keeps whole shards)."""

    def __init__(self, shards: list[Shard], verify: bool = True):
        self.shards, self.verify = shards, verify
        self.files = [sh.location for sh in shards]
        self.counts = [sh.records for sh in shards]
        self.offsets = []
        for sh in shards:
            offsets = sh.folder.index(sh.name, sh.records)
            if offsets is None:
                raise FileNotFoundError(f"{sh.location}: no index file {layout.index_name(sh.name)}, which the "
                                        "stream reads records by (convert with index_files=true)")
            self.offsets.append(offsets)
        self.groups = self._groups()
        decode_framed(bytearray())  # the parser compiled (or loaded from the cache) here, before workers fork

    def _groups(self) -> list[int]:
        """The parquet file of each shard, as a number: (folder, shard number // folds); a shard of a
        folder without a manifest is a file of its own."""
        ids: dict[tuple, int] = {}
        out = []
        for i, sh in enumerate(self.shards):
            manifest = sh.folder.manifest
            parsed = layout.parse_shard_name(sh.name)
            key = ((sh.folder.where, parsed[0] // manifest.folds) if parsed and manifest
                   else (sh.folder.where, "shard", i))
            out.append(ids.setdefault(key, len(ids)))
        return out

    def read(self, shard: int, records: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Records of `shard` by number (sorted, distinct), decoded: each run of consecutive records
        is one read of its bytes, framed, CRC-checked and parsed by `kernels.records` without the GIL
        (so loader threads run it side by side); frames are views into the run's bytes. A cached
        copy that fails a check is evicted and read once more."""
        sh, offsets, out = self.shards[shard], self.offsets[shard], {}
        runs = np.split(np.asarray(records), np.flatnonzero(np.diff(records) != 1) + 1)
        for run in runs:
            a, b = int(run[0]), int(run[-1]) + 1
            start, end = offsets[a][0], offsets[b - 1][0] + offsets[b - 1][1]
            for retry in (False, True):
                try:
                    data = self._bytes(sh, start, end, a)
                    out.update(enumerate(decode_framed(data, sh.location, self.verify, a, start), start=a))
                    break
                except CorruptRecordError:
                    if retry or not sh.folder.store.evict(sh.name):
                        raise
        return out

    @staticmethod
    def _bytes(sh: Shard, start: int, end: int, record: int) -> bytearray:
        """Bytes [start, end) of a shard, writable (so decoded frames need no copy)."""
        data = bytearray(end - start)
        view = memoryview(data)
        with sh.folder.store.open_read(sh.name, start, end) as (f, _):
            got = 0
            while got < len(data) and (n := f.readinto(view[got:])):
                got += n
        if got < len(data):
            raise CorruptRecordError(f"{sh.location}: record {record} at byte {start}: truncated ({got} of the "
                                     f"{len(data)} bytes its index gives from there)")
        return data

    def lengths(self) -> list[np.ndarray]:
        """Each record's frames, from its size in the index: a record is its frames (4 bytes a value,
        one row of SCHEMA's columns a frame) plus a few hundred bytes of other features that vary by
        tens of bytes, measured on one record read here. The stream checks each length as it decodes."""
        row = 4 * SCHEMA["frames"].shape[1]
        shard = next((s for s, c in enumerate(self.counts) if c), None)
        if shard is None:
            return [np.zeros(0, np.int64) for _ in self.counts]
        rest = self.offsets[shard][0][1] - row * len(self.read(shard, [0])[0]["frames"])
        return [np.rint((np.array([n for _, n in o], dtype=np.int64) - rest) / row).astype(np.int64)
                for o in self.offsets]


class TFRecordStream(IterableDataset):
    """The epoch's batches for this rank, from shard files or folders (index files needed): each
    item is a list of `batch_size` records (a per-rank batch); give the DataLoader batch_size=None
    and your collate_fn, or use `StreamLoader`.

    The global batch is batch_size x world_size; each epoch (`set_epoch`) is `aslfr.data.plan.epoch_plan`
    of the shards' record counts, `seed` and the epoch: every record once, shuffled across ~`interleave`
    shards at a time (shuffle=False: in file order), then the last global batch trimmed (drop_last) or
    topped up with the epoch's first records read again (keyed with repeat=1, so augmented anew).
    `rates`: {folder or shard: records read per epoch per record}, e.g. {sup_dir: 0.5} (a different half
    each epoch). `frame_budget` in place of batch_size: rank batches of at most that many frames (for
    `pack_collate`), records of similar lengths together (sorted within each `bucket_window` records of the
    order), the same rank batches for any world size, grouped world_size a step (the last step trimmed or
    topped up likewise); lengths come from the index's record sizes. Rank and world size as for
    `TFRecordShards`; `keys`, `transform`, `verify`, `storage_options`, `cache_dir`, `cache_limit` too.
    A record's key is the one `TFRecordShards` gives it ((seed, epoch, file, record), file: its position
    in the shard list), with the repeat for a re-read.

        stream = TFRecordStream(train_files, batch_size=32, seed=0, keys=True)
        loader = StreamLoader(stream, num_workers=2, collate_fn=ReferenceCollate(means, stds))
    """

    def __init__(self, paths: str | Path | Sequence[str | Path], batch_size: int | None = None, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = False, interleave: int | None = INTERLEAVE,
                 rates: Mapping[str | Path, float] | None = None, frame_budget: int | None = None,
                 bucket_window: int = 1024, verify: bool = True,
                 transform: Callable | None = None, torch_values: bool = True, rank: int | None = None,
                 world_size: int | None = None, keys: bool = False, allow_partial: bool = False,
                 storage_options: Mapping[str, Any] | None = None, cache_dir: str | Path | None = None,
                 cache_limit: int | None = None):
        if (batch_size is None) == (frame_budget is None):
            raise ValueError("give the stream batch_size= (records a rank batch) or frame_budget= (frames a rank "
                             f"batch), one of them; got batch_size={batch_size} frame_budget={frame_budget}")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.shards = ShardRecords(_through_cache(resolve(paths, allow_partial, storage_options), cache_dir,
                                                  cache_limit, allow_partial), verify)
        self.files = self.shards.files
        rank, world = _reader_rank(rank, world_size)
        self.rank, self.world_size = (rank, world) if rank is not None else (0, 1)
        self.batch_size = batch_size
        self.global_batch = batch_size * self.world_size if batch_size else None
        self.frame_budget, self.bucket_window = frame_budget, bucket_window
        self._lengths = self.shards.lengths() if frame_budget else None
        self.shuffle, self.seed, self.drop_last, self.interleave = shuffle, seed, drop_last, interleave
        self.rates = _shard_rates(self.files, rates)
        self.keys, self.transform, self.torch_values = keys, transform, torch_values
        self._epoch, self._start = _SharedEpoch(), _SharedEpoch()  # the start step: shared like the epoch
        self._resume: int | None = None  # a worker's own resume step (torchdata's per-worker state)
        self._next: int | None = None  # the step this process's running pass yields next
        self._plan: tuple[int, EpochPlan | BudgetPlan] | None = None
        if len(self) == 0:
            whole = (f"global batch of {self.global_batch} (batch_size {batch_size} x world size {self.world_size})"
                     if batch_size else f"step of {self.world_size} rank batches of {frame_budget} frames")
            raise ValueError(f"{self.plan(0).trimmed} records make no full {whole} and drop_last=True: "
                             "an epoch would have no step")

    @property
    def epoch(self) -> int:
        return self._epoch.get()

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next pass reads (in persistent workers too); another epoch than the current
        one starts at step 0."""
        if epoch != self.epoch:
            self._start.set(0)
            self._resume = None
        self._epoch.set(epoch)

    def plan(self, epoch: int) -> EpochPlan | BudgetPlan:
        """The epoch's plan (the same in every process)."""
        if self._plan is None or self._plan[0] != epoch:
            common = dict(groups=self.shards.groups, shuffle=self.shuffle, interleave=self.interleave,
                          rates=self.rates, drop_last=self.drop_last)
            if self.frame_budget:
                plan = budget_plan(self.shards.counts, self._lengths, self.seed, epoch, self.frame_budget,
                                   self.world_size, self.bucket_window, **common)
            else:
                plan = epoch_plan(self.shards.counts, self.seed, epoch, self.global_batch, **common)
            self._plan = (epoch, plan)
        return self._plan[1]

    def __len__(self) -> int:
        """Steps in the current epoch: the batches every rank gets (with a frame budget, it varies a
        little from epoch to epoch)."""
        return self.plan(self.epoch).steps

    def __iter__(self) -> Iterator[list[Any]]:
        info = get_worker_info()
        wid, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        epoch = self.epoch  # once: the whole pass is one epoch's
        plan = self.plan(epoch)
        first = self._resume if self._resume is not None else self._start.get() + wid
        self._resume = None
        for step in range(first, plan.steps, workers):
            items = self.batch(plan.rank_batch(step, self.rank, self.world_size), epoch)
            self._next = step + workers
            yield items
        self._next = None

    def batch(self, rows: np.ndarray, epoch: int) -> list[Any]:
        """The items of the plan's rows [(shard, record, repeat)], in order."""
        data = {}
        for shard in np.unique(rows[:, 0]):
            wanted = np.unique(rows[rows[:, 0] == shard, 1])
            data.update({(int(shard), n): d for n, d in self.shards.read(int(shard), wanted).items()})
        out = []
        for shard, record, repeat in rows.tolist():
            rec = data[shard, record]
            if self._lengths is not None and len(rec["frames"]) != self._lengths[shard][record]:
                raise ValueError(f"{self.files[shard]}: record {record} has {len(rec['frames'])} frames, its size in "
                                 f"the index says {self._lengths[shard][record]}: the frame budget cannot hold")
            item = to_torch(rec) if self.torch_values else dict(rec)  # a record read twice: two items
            where = (self.seed, epoch, shard, record) + ((repeat,) if repeat else ())
            out.append(_keyed(self.transform, item, where, self))
        return out

    def state_dict(self) -> dict[str, int]:
        """(epoch, the step this process's pass yields next): torchdata's `Stateful`, per worker."""
        if self._next is not None:
            step = self._next
        else:
            info = get_worker_info()
            step = self._resume if self._resume is not None else self._start.get() + (info.id if info else 0)
        return {"epoch": self.epoch, "step": step}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        """Resume at `state` on the next pass: in a DataLoader worker (torchdata gives each worker its
        own state) this worker's next step; in the training process, the pass's first step."""
        epoch, step = int(state["epoch"]), int(state["step"])
        self.set_epoch(epoch)
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        if get_worker_info() is not None:
            self._resume = step
        else:
            self._start.set(step)


def _shard_rates(files: list[Path | str], rates: Mapping[str | Path, float] | None) -> list[float] | None:
    """Each shard's rate: its own entry, else its folder's, else 1."""
    if not rates:
        return None
    given = {canonical(location(k)): float(v) for k, v in rates.items()}
    out = []
    for f in files:
        loc = location(f)
        out.append(given.get(canonical(loc), given.get(canonical(parent(loc)), 1.0)))
    known = {canonical(location(f)) for f in files}
    known |= {canonical(parent(location(f))) for f in files}
    unknown = [str(k) for k in given if k not in known]
    if unknown:
        raise ValueError(f"rates names {unknown[0]}, which is neither one of the stream's shards nor their folder")
    return out


class StreamLoader:
    """A DataLoader over a `TFRecordStream` that knows where the training loop is: `state_dict()`
    is {epoch, step}, the batches of the epoch the loop has taken (not those prefetched), and
    `load_state_dict` makes the next pass start at that step, reading nothing before it. The other
    arguments go to the DataLoader (num_workers, collate_fn, persistent_workers, pin_memory, ...).

        loader = StreamLoader(stream, num_workers=2, collate_fn=aslfr.pack_collate, persistent_workers=True)
        loader.load_state_dict(checkpoint["loader"])          # if resuming
        for epoch in range(loader.epoch, epochs):
            loader.set_epoch(epoch)
            for batch in loader:
                ...
                checkpoint["loader"] = loader.state_dict()
    """

    def __init__(self, stream: TFRecordStream, **dataloader_args: Any):
        for name in ("batch_size", "shuffle", "sampler", "batch_sampler", "drop_last"):
            if name in dataloader_args:
                raise ValueError(f"StreamLoader: {name}= belongs to the stream (TFRecordStream), not the DataLoader")
        self.stream = stream
        self.dataloader = DataLoader(stream, batch_size=None, **dataloader_args)
        self._step = 0  # batches of this epoch handed to the loop
        self._resume: int | None = None

    @property
    def epoch(self) -> int:
        return self.stream.epoch

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.stream.epoch:
            self._step, self._resume = 0, None
        self.stream.set_epoch(epoch)

    def __len__(self) -> int:
        """Batches the next pass yields (fewer than the epoch's steps after a mid-epoch resume)."""
        return len(self.stream) - (self._resume or 0)

    def __iter__(self) -> Iterator[Any]:
        start = self._resume or 0
        self._resume = None
        self._step = start
        for batch in self._batches(start):
            self._step += 1
            yield batch

    def _batches(self, start: int) -> Iterator[Any]:
        """The epoch's batches from step `start` on."""
        self.stream._start.set(start)  # read by each worker as its pass starts
        return iter(self.dataloader)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.stream.epoch, "step": self._resume if self._resume is not None else self._step}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        epoch, step = int(state["epoch"]), int(state["step"])
        self.stream.set_epoch(epoch)
        if not 0 <= step <= len(self.stream):
            raise ValueError(f"step {step} out of range: epoch {epoch} of this stream has {len(self.stream)} steps")
        self._step, self._resume = step, step


__all__ = ["TFRecordStream", "StreamLoader", "ShardRecords"]
