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
from aslfr.format import layout
from aslfr.format.cache import ShardCache
from aslfr.format.folder import RecordsFolder, Shard, no_duplicates, resolve
from aslfr.format.manifest import ManifestError
from aslfr.format.schema import decode_record, read_shard
from aslfr.format.store import Store, location
from aslfr.format.tfrecord import OVERHEAD, CorruptRecordError, records_from


def shard_files(paths: str | Path | Iterable[str | Path], allow_partial: bool = False,
                storage_options: Mapping[str, Any] | None = None) -> list[Path | str]:
    """The shard files of one or more records folders (as their manifests list them) or files;
    a folder or file may be a URL (`s3://bucket/out/tfrecords/train`), and its shards are URLs."""
    return [s.location for s in resolve(paths, allow_partial, storage_options)]


def _fold_count(folder: RecordsFolder, folds: int | None) -> int:
    """The fold count from the folder's manifest; an explicit `folds` only where there is none."""
    m = folder.manifest
    if m is None:
        if folds is None:
            raise ManifestError(f"{folder.where}: no manifest.json to take the fold count from; pass folds=")
        return folds
    if folds is not None and folds != m.folds:
        raise ManifestError(f"{folder.where}: folds={folds} given, but its manifest.json says the records were "
                            f"written with {m.folds} folds")
    return m.folds


def fold_of(path: str | Path, folds: int | None = None, storage_options: Mapping[str, Any] | None = None) -> int:
    """A shard's fold: its number modulo the fold count its folder's manifest records
    (`{file_index*folds+fold}.{count}.tfrec`)."""
    store, name = Store.of_file(path, storage_options)
    parsed = layout.parse_shard_name(name)
    if parsed is None:
        raise ManifestError(f"{store.where(name)}: not a shard name ({{file_index*folds+fold}}.{{count}}.tfrec)")
    return layout.fold_of_number(parsed[0], _fold_count(RecordsFolder(store), folds))


def fold_files(records_dir: str | Path, valid_fold: int = 0, folds: int | None = None, online: bool = False,
               sup_dir: str | Path | None = None, allow_partial: bool = False,
               storage_options: Mapping[str, Any] | None = None) -> tuple[list[Path | str], list[Path | str]]:
    """(train files, valid files) as the reference training picks them: train = folds != valid_fold
    (all folds when `online`), valid = fold == valid_fold; supplemental shards (all folds) go to
    training only. The fold count comes from the manifest (`folds` is for folders without one)."""
    shards = resolve(records_dir, allow_partial, storage_options)
    folder = shards[0].folder
    if folder.where != location(records_dir):  # a shard file: its folder's manifest is no fold count of it
        folder = RecordsFolder.at(records_dir, storage_options)
    n = _fold_count(folder, folds)
    if not 0 <= valid_fold < n:
        raise ValueError(f"valid_fold must be in 0..{n - 1} ({folder.where} has {n} folds), got {valid_fold}")
    of = [layout.fold_of_number((layout.parse_shard_name(s.name) or (-1,))[0], n) for s in shards]
    valid = [s for s, f in zip(shards, of) if f == valid_fold]
    train = list(shards) if online else [s for s, f in zip(shards, of) if f != valid_fold]
    if sup_dir is not None:
        sup = resolve(sup_dir, allow_partial, storage_options)
        no_duplicates(shards + sup)
        train += sup
    return [s.location for s in train], [s.location for s in valid]


def _records(shard: Shard, verify: bool, start: int, end: int | None, first_record: int) -> Iterator[memoryview]:
    """`read_records` of a shard through its folder's store (or the reader's local cache): records
    from byte `start` to `end`. A cached copy that fails a check is evicted and read once more, from
    where it failed."""
    store = shard.folder.store
    pos, n = start, first_record
    for retry in (False, True):
        try:
            with store.open_read(shard.name, pos, end) as (f, size):
                for data in records_from(f, size, shard.location, verify, pos, end, n):
                    yield data
                    pos, n = pos + len(data) + OVERHEAD, n + 1
            return
        except CorruptRecordError:
            if retry or not store.evict(shard.name):
                raise


def _through_cache(shards: list[Shard], cache_dir: str | Path | None, cache_limit: int | None,
                   allow_partial: bool) -> list[Shard]:
    """The shards, read through a local cache where `cache_dir` is given (under `allow_partial` the
    manifest may disagree with the files: nothing is cached)."""
    if cache_dir is None:
        if cache_limit is not None:
            raise ValueError(f"cache_limit={cache_limit} given without cache_dir=")
        return shards
    cache = ShardCache(cache_dir, cache_limit)
    if allow_partial:
        return shards
    folders: dict[int, RecordsFolder] = {}
    for s in shards:
        if id(s.folder) not in folders:
            folders[id(s.folder)] = cache.over(s.folder)
    return [Shard(folders[id(s.folder)], s.name, s.records) for s in shards]


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
    `aslfr.format.store`; `storage_options` go to the filesystem (credentials, endpoint, ...).
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
        self._shards = _through_cache(resolve(paths, allow_partial, storage_options), cache_dir, cache_limit,
                                      allow_partial)
        self.files = [sh.location for sh in self._shards]
        self.counts = [sh.records for sh in self._shards]
        self.keys = keys
        self.rank, self.world_size = _reader_rank(rank, world_size)
        if shuffle_buffer < 0:
            raise ValueError(f"shuffle_buffer must be >= 0 (0: no record buffer), got {shuffle_buffer}")
        self.shuffle, self.seed, self.shuffle_buffer = shuffle, seed, shuffle_buffer
        self.verify, self.transform, self.torch_values = verify, transform, torch_values
        self._epoch = _SharedEpoch()

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
        shard = self._shards[i]
        if a == 0 and b == self.counts[i]:
            start, end = 0, None
        else:
            offsets = shard.folder.index(shard.name, self.counts[i])
            if offsets is None:
                raise FileNotFoundError(f"{shard.location}: index file needed to split this file across readers "
                                        f"({layout.index_name(shard.name)}; convert with index_files=true)")
            start = offsets[a][0]
            end = offsets[b][0] if b < len(offsets) else None
        for n, data in enumerate(_records(shard, self.verify, start, end, a), start=a):
            yield (i, n), decode_record(data, f"{shard.location}: record {n}")

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
        self._shards = _through_cache(resolve(paths, allow_partial, storage_options), cache_dir, cache_limit,
                                      allow_partial)
        self.files = [sh.location for sh in self._shards]
        self.keys = keys
        self.seed, self._epoch = seed, _SharedEpoch()
        self.verify, self.transform, self.torch_values = verify, transform, torch_values
        self._where: list[tuple[int, int, int, int]] = []  # (file, record in file, offset, framed size)
        for fi, shard in enumerate(self._shards):
            offsets = shard.folder.index(shard.name, shard.records)
            if offsets is None:
                raise FileNotFoundError(f"{shard.location}: no index file {layout.index_name(shard.name)} "
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
        shard = self._shards[fi]
        data = next(_records(shard, self.verify, offset, offset + size, k))
        rec = decode_record(data, f"{shard.location}: record {k} at byte {offset}")
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
