"""Reading the records back for PyTorch, without TensorFlow.

`TFRecordShards` streams records (IterableDataset) split exactly once across DataLoader workers and
torch.distributed ranks; `TFRecordIndexed` gives len() and random access through the index files;
`fold_files` picks train/valid shards as the reference training code does. Readers take the shard
list and the fold count from each folder's `manifest.json` and validate index files before use;
every record is checked against both CRCs by default and decoded with `SCHEMA` into torch values.
A record's key, from (seed, epoch, file, record), is the only input of its random augmentations, so
they do not depend on workers, ranks or the read order; with `keys=True` each item carries it as
`key`, for transforms that run on batches (`ReferenceCollate`, `ReferencePreprocess.batch`)."""

from __future__ import annotations

import operator
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from aslfr.data.tensors import to_torch
from aslfr.data.transforms.counter import record_key
from aslfr.format import layout, storage
from aslfr.format.cache import ShardCache
from aslfr.format.manifest import ManifestError, checked_index, manifest_folds, no_duplicates, resolve_shards
from aslfr.format.schema import decode_record, read_shard
from aslfr.format.tfrecord import count_from, records_from


def shard_files(paths: str | Path | Iterable[str | Path], allow_partial: bool = False,
                storage_options: Mapping[str, Any] | None = None) -> list[Path | str]:
    """The shard files of one or more records folders (as their manifests list them) or files;
    a folder or file may be a URL (`s3://bucket/out/tfrecords/train`), and its shards are URLs."""
    return resolve_shards(paths, allow_partial, storage_options)


def _fold_count(records_dir: Path | str, folds: int | None, storage_options: Mapping[str, Any] | None = None) -> int:
    """The fold count from the folder's manifest; an explicit `folds` only where there is none."""
    recorded = manifest_folds(records_dir, storage_options) if storage.is_dir(records_dir, storage_options) else None
    if recorded is None:
        if folds is None:
            raise ManifestError(f"{records_dir}: no manifest.json to take the fold count from; pass folds=")
        return folds
    if folds is not None and folds != recorded:
        raise ManifestError(f"{records_dir}: folds={folds} given, but its manifest.json says the records were "
                            f"written with {recorded} folds")
    return recorded


def fold_of(path: str | Path, folds: int | None = None, storage_options: Mapping[str, Any] | None = None) -> int:
    """A shard's fold: its number modulo the fold count its folder's manifest records
    (`{file_index*folds+fold}.{count}.tfrec`)."""
    path = storage.location(path)
    parsed = layout.parse_shard_name(storage.name(path))
    if parsed is None:
        raise ManifestError(f"{path}: not a shard name ({{file_index*folds+fold}}.{{count}}.tfrec)")
    return layout.fold_of_number(parsed[0], _fold_count(storage.parent(path), folds, storage_options))


def fold_files(records_dir: str | Path, valid_fold: int = 0, folds: int | None = None, online: bool = False,
               sup_dir: str | Path | None = None, allow_partial: bool = False,
               storage_options: Mapping[str, Any] | None = None) -> tuple[list[Path | str], list[Path | str]]:
    """(train files, valid files) as the reference training picks them: train = folds != valid_fold
    (all folds when `online`), valid = fold == valid_fold; supplemental shards (all folds) go to
    training only. The fold count comes from the manifest (`folds` is for folders without one)."""
    records_dir = storage.location(records_dir)
    files = shard_files(records_dir, allow_partial, storage_options)
    n = _fold_count(records_dir, folds, storage_options)
    if not 0 <= valid_fold < n:
        raise ValueError(f"valid_fold must be in 0..{n - 1} ({records_dir} has {n} folds), got {valid_fold}")
    of = {f: layout.fold_of_number(layout.shard_sort_key(f), n) for f in files}
    valid = [f for f in files if of[f] == valid_fold]
    train = list(files) if online else [f for f in files if of[f] != valid_fold]
    if sup_dir is not None:
        sup = shard_files(sup_dir, allow_partial, storage_options)
        no_duplicates(files + sup)
        train += sup
    return train, valid


def _record_count(path: Path | str, storage_options: Mapping[str, Any] | None = None) -> int:
    parsed = layout.parse_shard_name(storage.name(path))
    if parsed:
        return parsed[1]
    with storage.open_read(path, options=storage_options) as (f, size):
        return count_from(f, size, path)


def _records(path: Path | str, verify: bool, start: int, end: int | None, first_record: int,
             storage_options: Mapping[str, Any] | None, cache: ShardCache | None = None) -> Iterator[memoryview]:
    """`read_records` for a path or a URL: records from byte `start` to `end`, through the storage
    seam (or the reader's local cache)."""
    opened = cache.open_read(path, start, end) if cache else storage.open_read(path, start, end, storage_options)
    with opened as (f, size):
        yield from records_from(f, size, path, verify, start, end, first_record)


def _cache(cache_dir: str | Path | None, cache_limit: int | None, files: list[Path | str], allow_partial: bool,
           storage_options: Mapping[str, Any]) -> ShardCache | None:
    if cache_dir is None:
        if cache_limit is not None:
            raise ValueError(f"cache_limit={cache_limit} given without cache_dir=")
        return None
    return ShardCache(cache_dir, cache_limit, () if allow_partial else files, storage_options)


def distributed_rank() -> tuple[int, int] | None:
    """(rank, world size) from an initialized torch.distributed, else from torchrun's RANK and
    WORLD_SIZE, else None. DataLoader workers do not see the parent's process group, so readers
    resolve this when they are built, in the training process."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        rank, world = os.environ["RANK"], os.environ["WORLD_SIZE"]
        try:
            r, w = int(rank), int(world)
        except ValueError:
            raise ValueError(f"RANK and WORLD_SIZE must be integers, got RANK={rank} WORLD_SIZE={world} "
                             "in the environment") from None
        return _checked_rank(r, w, "RANK", "WORLD_SIZE", " in the environment")
    return None


def _checked_rank(rank: int, world: int, rank_name: str = "rank", world_name: str = "world_size",
                 where: str = "") -> tuple[int, int]:
    """(rank, world) if world >= 1 and 0 <= rank < world, else a ValueError naming both: a bad pair
    would read no record (rank >= world) or a share of them (a rank without its world), silently."""
    if world < 1 or not 0 <= rank < world:
        need = f"{world_name} must be >= 1" if world < 1 else f"{rank_name} must be in 0..{world_name}-1"
        raise ValueError(f"{need}, got {rank_name}={rank} {world_name}={world}{where}")
    return rank, world


def _reader_rank(rank: int | None, world: int | None) -> tuple[int | None, int | None]:
    """The reader's (rank, world size): each given one, the other from torch.distributed or the
    environment; (None, None) when there is neither (one process). One without the other is an error."""
    if rank is not None and world is not None:
        return _checked_rank(rank, world)
    found = distributed_rank()
    if found is None:
        if rank is not None or world is not None:
            given = f"rank={rank}" if rank is not None else f"world_size={world}"
            raise ValueError(f"{given} given without {'world_size' if rank is not None else 'rank'}= "
                             "(and no torch.distributed process group or RANK/WORLD_SIZE environment to take it from)")
        return None, None
    return _checked_rank(found[0] if rank is None else rank, found[1] if world is None else world)


class _SharedEpoch:
    """The reader's epoch in shared memory. DataLoader workers hold a copy of the dataset made when
    they started; with persistent_workers they live across epochs, so a plain attribute set by
    `set_epoch` would never reach them. Forked workers inherit this memory and spawned ones get it
    through torch's pickler, so both read the current epoch (a plain pickle copies the value)."""

    def __init__(self) -> None:
        self.value = torch.zeros((), dtype=torch.int64).share_memory_()

    def get(self) -> int:
        return int(self.value)

    def set(self, epoch: int) -> None:
        try:
            epoch = operator.index(epoch)
        except TypeError:
            raise TypeError(f"epoch must be an integer, got {epoch!r}") from None
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.value.fill_(epoch)


def _slot(rank: int | None = None, world: int | None = None) -> tuple[int, int]:
    """(this reader's slot, number of slots) over distributed ranks x DataLoader workers."""
    if rank is None or world is None:
        rank, world = distributed_rank() or (0, 1)
    info = get_worker_info()
    wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
    return rank * nw + wid, world * nw


class TFRecordShards(IterableDataset):
    """Stream records from shard files or directories, each record exactly once per epoch over all
    DataLoader workers and distributed ranks.

    The epoch's records (files in order, or shuffled by `seed` + epoch) are cut into one contiguous
    range per (rank, worker); ranges inside a file are found through its index file. With `shuffle`,
    a buffer of `shuffle_buffer` records is shuffled as well. Call `set_epoch` each epoch (it reaches
    persistent workers too; each `__iter__` reads it when it starts). The rank and
    world size come from torch.distributed (initialize it before building the reader), torchrun's
    RANK / WORLD_SIZE, or `rank=` and `world_size=`; a rank outside 0..world_size-1 is an error.
    `keys=True`: each item also carries `key`, its record's random key (see the module docstring).
    Paths may be URLs (`s3://bucket/out/tfrecords/train`, `gs://...`), read through
    `aslfr.format.storage`; `storage_options` go to the filesystem (credentials, endpoint, ...).
    `cache_dir`: a local folder keeping each remote shard (and index) after its first read, checked
    against the manifest, for later epochs; `cache_limit`: its size in bytes, least recently used
    files evicted (see `aslfr.format.cache`). Ranks and workers may share one folder.

        ds = TFRecordShards("out/tfrecords/train", shuffle=True, transform=FrameTransform(...))
        loader = DataLoader(ds, batch_size=32, num_workers=2, collate_fn=pad_collate)
    """

    def __init__(self, paths: str | Path | Sequence[str | Path], shuffle: bool = False, seed: int = 0,
                 shuffle_buffer: int = 256, verify: bool = True, transform: Callable | None = None,
                 torch_values: bool = True, rank: int | None = None, world_size: int | None = None,
                 allow_partial: bool = False, keys: bool = False, storage_options: Mapping[str, Any] | None = None,
                 cache_dir: str | Path | None = None, cache_limit: int | None = None):
        self.storage_options = dict(storage_options or {})
        self.files = shard_files(paths, allow_partial, self.storage_options)
        self._cache = _cache(cache_dir, cache_limit, self.files, allow_partial, self.storage_options)
        self.keys = keys
        self.rank, self.world_size = _reader_rank(rank, world_size)
        if shuffle_buffer < 0:
            raise ValueError(f"shuffle_buffer must be >= 0 (0: no record buffer), got {shuffle_buffer}")
        self.shuffle, self.seed, self.shuffle_buffer = shuffle, seed, shuffle_buffer
        self.verify, self.transform, self.torch_values = verify, transform, torch_values
        self._epoch = _SharedEpoch()
        self.counts = [_record_count(f, self.storage_options) for f in self.files]

    @property
    def epoch(self) -> int:
        return self._epoch.get()

    def set_epoch(self, epoch: int) -> None:
        self._epoch.set(epoch)

    def __len__(self) -> int:
        return sum(self.counts)

    def _ranges(self, slot: int, slots: int, epoch: int) -> list[tuple[int, int, int]]:
        """(file position, first record, end record) this slot reads in `epoch`, in reading order."""
        order = list(range(len(self.files)))
        if self.shuffle:
            np.random.default_rng([self.seed, epoch]).shuffle(order)
        total = sum(self.counts)
        lo, hi = total * slot // slots, total * (slot + 1) // slots
        out, start = [], 0
        for i in order:
            a, b = max(lo, start), min(hi, start + self.counts[i])
            if a < b:
                out.append((i, a - start, b - start))
            start += self.counts[i]
        return out

    def _read(self, i: int, a: int, b: int) -> Iterator[dict[str, Any]]:
        path = self.files[i]
        if a == 0 and b == self.counts[i]:
            start, end = 0, None
        else:
            offsets = (self._cache.index(path, self.counts[i]) if self._cache
                       else checked_index(path, self.counts[i], self.storage_options))
            if offsets is None:
                raise FileNotFoundError(f"{path}: index file needed to split this file across readers "
                                        f"({layout.index_name(storage.name(path))}; convert with index_files=true)")
            start = offsets[a][0]
            end = offsets[b][0] if b < len(offsets) else None
        for n, data in enumerate(_records(path, self.verify, start, end, a, self.storage_options, self._cache), start=a):
            yield (i, n), decode_record(data, f"{path}: record {n}")

    def __iter__(self) -> Iterator[Any]:
        slot, slots = _slot(self.rank, self.world_size)
        epoch = self.epoch  # once: the whole pass is one epoch's
        records = (r for i, a, b in self._ranges(slot, slots, epoch) for r in self._read(i, a, b))
        if self.shuffle and self.shuffle_buffer > 1:
            records = _buffer_shuffle(records, self.shuffle_buffer, np.random.default_rng([self.seed, epoch, slot]))
        for (i, n), rec in records:
            item = to_torch(rec) if self.torch_values else rec
            yield _keyed(self.transform, item, (self.seed, epoch, i, n), self)


def _keyed(transform: Callable | None, item: dict[str, Any], where: tuple[int, int, int, int], ds: Any) -> Any:
    """The item (with its record's `key` where the reader was asked for keys) through the transform;
    a random transform gets the key to draw by. The key (`record_key` of seed, epoch, file, record)
    is hashed only where it is used: a plain read pays nothing for it."""
    random = getattr(transform, "random", False)
    key = record_key(*where) if ds.keys or random else None
    if ds.keys:
        item["key"] = torch.tensor(key) if ds.torch_values else np.int64(key)
    if transform is None:
        return item
    return transform(item, key=key) if random else transform(item)


def _buffer_shuffle(items: Iterator, size: int, rng: np.random.Generator) -> Iterator:
    buf: list = []
    for x in items:
        if len(buf) < size:
            buf.append(x)
            continue
        j = int(rng.integers(size))
        yield buf[j]
        buf[j] = x
    rng.shuffle(buf)
    yield from buf


class TFRecordIndexed(Dataset):
    """Map-style access to shard records through their `.tfindex` files: len() and [i].
    `cache_dir`, `cache_limit`: a local copy of remote shards, as for `TFRecordShards`."""

    def __init__(self, paths: str | Path | Sequence[str | Path], verify: bool = True,
                 transform: Callable | None = None, torch_values: bool = True, allow_partial: bool = False,
                 seed: int = 0, keys: bool = False, storage_options: Mapping[str, Any] | None = None,
                 cache_dir: str | Path | None = None, cache_limit: int | None = None):
        self.storage_options = dict(storage_options or {})
        self.files = shard_files(paths, allow_partial, self.storage_options)
        self._cache = _cache(cache_dir, cache_limit, self.files, allow_partial, self.storage_options)
        self.keys = keys
        self.seed, self._epoch = seed, _SharedEpoch()
        self.verify, self.transform, self.torch_values = verify, transform, torch_values
        self._where: list[tuple[int, int, int, int]] = []  # (file, record in file, offset, framed size)
        for fi, path in enumerate(self.files):
            records = _record_count(path, self.storage_options)
            offsets = (self._cache.index(path, records) if self._cache
                       else checked_index(path, records, self.storage_options))
            if offsets is None:
                raise FileNotFoundError(f"{path}: no index file {layout.index_name(storage.name(path))} "
                                        "(convert with index_files=true)")
            self._where += [(fi, k, o, n) for k, (o, n) in enumerate(offsets)]

    def __len__(self) -> int:
        return len(self._where)

    def __getitem__(self, i: int) -> Any:
        """Record i of len(self) (negative i counts from the end, as in a list). One record per
        call, as torch's samplers ask; a range is `torch.utils.data.Subset(ds, range(a, b))`."""
        try:
            i = operator.index(i)
        except TypeError:
            raise TypeError(f"TFRecordIndexed indices must be integers, not {type(i).__name__} "
                            "(for a range of records use torch.utils.data.Subset)") from None
        if not -len(self._where) <= i < len(self._where):
            raise IndexError(f"record {i} out of range: {len(self._where)} records")
        fi, k, offset, size = self._where[i]
        path = self.files[fi]
        data = next(_records(path, self.verify, offset, offset + size, k, self.storage_options, self._cache))
        rec = decode_record(data, f"{path}: record {k} at byte {offset}")
        item = to_torch(rec) if self.torch_values else rec
        return _keyed(self.transform, item, (self.seed, self.epoch, fi, k), self)

    @property
    def epoch(self) -> int:
        return self._epoch.get()

    def set_epoch(self, epoch: int) -> None:
        """Random transforms draw anew each epoch (the reader seeds them per seed, epoch and record),
        in persistent DataLoader workers too."""
        self._epoch.set(epoch)


__all__ = ["TFRecordShards", "TFRecordIndexed", "fold_files", "fold_of", "read_shard", "shard_files", "distributed_rank"]
