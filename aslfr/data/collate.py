"""Batching variable-length sequences for training (CTC-ready), cheap to send from DataLoader workers.

A batch crosses from a worker to the training process as shared memory, and fresh shared memory
costs ~0.6 ms per MB to fault in, more than decoding the records. So in a worker every tensor of a
batch is a view into one segment of a small ring the worker reuses; the batch travels as that
segment (a file descriptor, nothing copied) and the training process copies it out while
unpickling it, then marks the segment free. `pack_collate` sends the frames unpadded (concatenated,
with lengths) to be padded where they are consumed, e.g. on the GPU by `unpack`: padding ~160-frame
sequences to the longest of their batch more than doubles the bytes to move."""

from __future__ import annotations

import ctypes
import os
import threading
import time
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import get_worker_info

from aslfr.format.vocab import PAD

BACKENDS = ("numba", "torch")
_HEADER = 64  # bytes before a batch in a worker's segment; byte 0 is 1 until the batch is copied out


class _Ring:
    """A worker's few shared-memory segments, reused batch after batch: fresh shared memory costs
    ~0.6 ms per MB to fault in, several times what the training process spends copying a batch out
    of a warm segment (which it does as it unpickles the batch, then marks the segment free)."""

    def __init__(self, slots: int = 4):
        self.slots: list[torch.UntypedStorage | None] = [None] * slots
        self.next = 0

    def take(self, nbytes: int) -> torch.UntypedStorage:
        k, self.next = self.next, (self.next + 1) % len(self.slots)
        seg = self.slots[k]
        if seg is not None:
            flag = _flag(seg)
            deadline = time.monotonic() + 5.0
            while flag.item() and time.monotonic() < deadline:  # still held: DataLoader prefetches 2 of 4
                time.sleep(0.0002)
            if flag.item():  # never copied out (a dropped batch): leave it alone
                seg = None
        if seg is None or seg.nbytes() < _HEADER + nbytes:
            seg = torch.UntypedStorage._new_shared(int((_HEADER + nbytes) * 1.25) + 8)
            self.slots[k] = seg
        _flag(seg).fill_(1)
        return seg


_RING: _Ring | None = None
BATCH_MEMORY = threading.local()  # .take(nbytes) -> storage: where this thread's batches go (`aslfr.data.threads`)
_HEAP_KEPT = False


def keep_freed_memory() -> None:
    """Keep freed large blocks in this process's heap for the next batch. By default glibc hands
    every block over 128 KB back to the OS (and, past its trim threshold, the heap's top), so each
    batch (~31 MB of [32, 320, 769] frames) and each per-record intermediate is faulted in afresh:
    measured, ~5,000 page faults per batch in the training process and ~700 in each worker, and a
    fifth of the reading path's throughput. Once per process; a no-op off glibc."""
    global _HEAP_KEPT
    if _HEAP_KEPT:
        return
    _HEAP_KEPT = True
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD: blocks up to 1 GB come from the heap
        libc.mallopt(-1, (1 << 31) - 1)  # M_TRIM_THRESHOLD: freed memory stays for reuse
    except (OSError, AttributeError):
        pass


def _flag(seg: torch.UntypedStorage) -> torch.Tensor:
    return torch.empty(0, dtype=torch.uint8).set_(seg, 0, (1,))


class _Arena:
    """Tensors of one batch carved out of a single storage: private memory in this process, or in a
    DataLoader worker a reused shared segment of the worker's ring."""

    def __init__(self, specs: dict[str, tuple[tuple[int, ...], torch.dtype]]):
        self.layout, total = {}, 0
        for name, (shape, dtype) in specs.items():
            total = -(-total // 8) * 8  # every view 8-byte aligned
            self.layout[name] = (total, tuple(shape), dtype)
            total += int(np.prod(shape, dtype=np.int64)) * torch.empty((), dtype=dtype).element_size()
        self.nbytes, self.base = total, 0
        keep_freed_memory()
        if get_worker_info() is None:
            take = getattr(BATCH_MEMORY, "take", None)  # a loader thread's reused batch memory
            self.storage = take(total) if take else torch.UntypedStorage(max(total, 8))
        else:
            global _RING
            _RING = _RING or _Ring()
            self.storage, self.base = _RING.take(total), _HEADER

    def __getitem__(self, name: str) -> torch.Tensor:
        return _view(self.storage, self.base, *self.layout[name])


def _view(storage, base: int, offset: int, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    size = torch.empty((), dtype=dtype).element_size()
    return torch.empty(0, dtype=dtype).set_(storage, (base + offset) // size, shape)


class _SharedBatch(dict):
    """A batch built in a worker's segment. It pickles as that segment (sent as a file descriptor,
    no copy) and unpickles, in the training process, as a private copy; the segment is then free.
    With `pad`, the packed frames are padded as they are copied out: fewer bytes cross over."""

    def __init__(self, batch: dict[str, Any], arena: _Arena, pad: bool):
        super().__init__(batch)
        self.arena, self.pad = arena, pad

    def __reduce__(self):
        a = self.arena
        seg = torch.empty(0, dtype=torch.uint8).set_(a.storage, 0, (a.storage.nbytes(),))
        rest = {k: v for k, v in self.items() if k not in a.layout}
        return _copy_out, (seg, a.layout, rest, self.pad)


_MAPPED: list[torch.Tensor] = []  # recent segments: keeps their mappings (torch caches them per segment)


def _copy_out(seg: torch.Tensor, layout: dict, rest: dict[str, Any], pad: bool) -> dict[str, Any]:
    keep_freed_memory()
    small = {k: spec for k, spec in layout.items() if k != "frames"}
    start = min(spec[0] for spec in small.values())
    end = max(o + int(np.prod(shape, dtype=np.int64)) * torch.empty((), dtype=dt).element_size()
              for o, shape, dt in small.values())
    private = seg[_HEADER + start:_HEADER + end].clone().untyped_storage()
    batch = {k: _view(private, -start, *spec) for k, spec in small.items()}
    frames = _view(seg.untyped_storage(), _HEADER, *layout["frames"])
    if pad:
        lengths = batch["lengths"]
        t_max = int(lengths.max())
        batch["mask"] = torch.arange(t_max)[None, :] < lengths[:, None]
        padded = frames.new_zeros((len(lengths), t_max, *frames.shape[1:]))
        padded[batch["mask"]] = frames
        batch["frames"] = padded
    else:
        batch["frames"] = frames.clone()
    seg[0] = 0  # copied out: the worker may reuse the segment
    _MAPPED.append(seg)
    del _MAPPED[:-64]
    batch.update(rest)
    return {k: batch[k] for k in ("frames", "lengths", "mask", *layout, *rest) if k in batch}


def _numbers(items: Sequence[dict[str, Any]], name: str) -> tuple[dict[str, np.ndarray], list[str]]:
    """Every feature but frames as a stacked array (ints as int64, floats as float32); strings apart."""
    first = items[0]
    strings = [k for k in first if k != "frames" and isinstance(first[k], str)]
    arrays = {}
    for k in first:
        if k == "frames" or k in strings:
            continue
        try:
            a = np.asarray([np.asarray(it[k]) for it in items])
            arrays[k] = a.astype(np.float32 if a.dtype.kind == "f" else np.int64, copy=False)
        except (ValueError, TypeError) as e:
            shapes = [tuple(np.shape(it[k])) for it in items]
            i = next((i for i, s in enumerate(shapes) if s != shapes[0]), None)
            raise ValueError(f"{name}: item {i} has {k!r} of shape {shapes[i]}, item 0 of shape {shapes[0]}"
                             if i is not None else f"{name}: cannot stack {k!r} ({e})") from None
    return arrays, strings


def _checked_frames(items: Sequence[dict[str, Any]], name: str) -> list[torch.Tensor]:
    """Each item's frames, once every item is known to have the keys of item 0 and frames [T, ...]
    of item 0's trailing shape: a batch is laid out from item 0, so another layout would give
    garbage (frames broadcast into it), a bare KeyError or silently dropped keys."""
    if not items:
        raise ValueError(f"{name}: no items to batch")
    keys = items[0].keys()
    if "frames" not in keys:
        raise ValueError(f"{name}: item 0 has no 'frames'")
    frames = [torch.as_tensor(it["frames"]) for it in items if it.keys() == keys]
    if len(frames) < len(items):
        i = next(i for i, it in enumerate(items) if it.keys() != keys)
        missing, extra = sorted(keys - items[i].keys()), sorted(items[i].keys() - keys)
        raise ValueError(f"{name}: item {i} " + (f"has no {missing[0]!r}, which item 0 has" if missing
                                                 else f"has {extra[0]!r}, which item 0 has not"))
    f0 = frames[0]
    if f0.dim() < 1:
        raise ValueError(f"{name}: item 0 has 'frames' of shape (), not [T, ...]")
    for i, f in enumerate(frames):
        if f.dim() != f0.dim() or f.shape[1:] != f0.shape[1:]:
            raise ValueError(f"{name}: item {i} has 'frames' of shape {tuple(f.shape)}, item 0 of shape "
                             f"{tuple(f0.shape)} (only the length T may differ)")
    return frames


def _collate(items: Sequence[dict[str, Any]], packed: bool, name: str = "",
             fill: Callable[[torch.Tensor], None] | None = None, shape: tuple[int, ...] = ()) -> dict[str, Any]:
    """fill(out): the batch's frames written straight into `out` [B, *shape], in place of copying
    each item's own frames (`ReferenceCollate`)."""
    name = name or ("pack_collate" if packed else "pad_collate")
    frames = _checked_frames(items, name)
    lens = [f.shape[0] for f in frames] if fill is None else [shape[0]] * len(items)
    b, t_max = len(frames), max(lens)
    cols, dtype = (tuple(frames[0].shape[1:]), frames[0].dtype) if fill is None else (shape[1:], torch.float32)
    arrays, strings = _numbers(items, name)
    in_worker = get_worker_info() is not None
    pad_later = in_worker and not packed and fill is None  # padded by the training process as it copies the batch out
    packed = packed or pad_later
    specs = {"frames": ((sum(lens), *cols) if packed else (b, t_max, *cols), dtype),
             "lengths": ((b,), torch.int64)}
    if not packed:
        specs["mask"] = ((b, t_max), torch.bool)
    if "phrase_" in arrays:
        specs["target_lengths"] = ((b,), torch.int64)
    specs.update({k: (a.shape, torch.from_numpy(a[:0]).dtype) for k, a in arrays.items()})
    arena = _Arena(specs)
    batch: dict[str, Any] = {k: arena[k] for k in specs}
    batch["lengths"].copy_(torch.tensor(lens))
    if packed:
        torch.cat(frames, out=batch["frames"])
        if not pad_later:
            batch["packed"] = True
    else:
        out = batch["frames"]
        if fill is not None:
            fill(out)
            frames = []
        for i, f in enumerate(frames):
            out[i, : f.shape[0]] = f
            out[i, f.shape[0]:] = 0
        torch.lt(torch.arange(t_max)[None, :], batch["lengths"][:, None], out=batch["mask"])
    for k, a in arrays.items():
        batch[k].copy_(torch.from_numpy(a))
    if "phrase_" in arrays:
        torch.sum(batch["phrase_"] != PAD, dim=1, out=batch["target_lengths"])
    for k in strings:
        batch[k] = [it[k] for it in items]
    return _SharedBatch(batch, arena, pad_later) if arena.base else batch


def pad_collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch reader items (torch or numpy values): `frames` zero-padded to [B, T_max, C] with
    `lengths` [B] and `mask` [B, T_max] (True on real frames); `phrase_` [B, 32] with
    `target_lengths` (tokens != PAD, EOS included, as the reference's CTC targets); other numbers
    stacked (ints int64, floats float32), strings as lists."""
    return _collate(items, packed=False)


def pack_collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Like `pad_collate`, but `frames` are concatenated [sum(lengths), C], unpadded, and there is no
    mask: the cheapest batch to send from workers. `unpack(batch, device)` pads it where it is used."""
    return _collate(items, packed=True)


def unpack(batch: dict[str, Any], device: str | torch.device | None = None, non_blocking: bool = False
           ) -> dict[str, Any]:
    """A batch on `device`; a `pack_collate` batch gets its frames padded to [B, T_max, C] there, and
    its `mask`. Other tensors are moved as they are."""
    out = {k: v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v
           for k, v in batch.items() if k != "packed"}
    if not batch.get("packed"):
        return out
    lengths, flat = out["lengths"], out["frames"]
    t_max = int(batch["lengths"].max())
    mask = torch.arange(t_max, device=flat.device)[None, :] < lengths[:, None]
    padded = flat.new_zeros((len(lengths), t_max, *flat.shape[1:]))
    padded[mask] = flat
    out["frames"], out["mask"] = padded, mask
    return out


class ReferenceCollate:
    """collate_fn for the reference's training (or, train=False, inference) input, the fast way:
    the batch `[B, n_frames, 769]` is laid out once (in a DataLoader worker, in its reused shared
    memory) and written by the pipeline's last step; the whole batch is planned at once from the
    records' keys, and each step runs once over all its records' frames (`rows`). Gives what
    `pad_collate` gives over `ReferencePreprocess` items, bit for bit: frames, lengths (n_frames),
    mask, length (non-padding frames), phrase_, target_lengths, ...

    backend: "numba" (default; or the ASLFR_BACKEND environment variable) runs the reference's
    pipeline as one fused kernel per batch (`aslfr.data.kernels`): the same bits, without the GIL;
    "torch" runs the torch ops (`rows`), as does "numba" for a pipeline the kernels do not cover.

        loader = DataLoader(aslfr.TFRecordShards(files, shuffle=True, keys=True), batch_size=32, num_workers=2,
                            collate_fn=aslfr.ReferenceCollate(means, stds, train=True), persistent_workers=True)
    """

    def __init__(self, means, stds, *, train: bool = True, n_frames: int = 320, rounding: str = "tf.data",
                 backend: str | None = None):
        from aslfr.data.transforms.reference import ReferencePreprocess

        self.preprocess = ReferencePreprocess(means, stds, train=train, rounding=rounding, n_frames=n_frames)
        self.backend = backend or os.environ.get("ASLFR_BACKEND") or "numba"
        if self.backend not in BACKENDS:
            raise ValueError(f"ReferenceCollate: backend must be one of {BACKENDS}, got {self.backend!r}")
        self.fused = None
        if self.backend == "numba":
            from aslfr.data.kernels.fused import FusedInput

            self.fused = FusedInput.of(self.preprocess.pipe)
            if self.fused is not None:
                self.fused.warm()  # compiled (or loaded from the cache) here, before DataLoader workers fork

    def __call__(self, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        from aslfr.data.transforms.counter import KeyedDraws
        from aslfr.data.transforms.frame import n_cols
        from aslfr.data.transforms.rows import Rows, run_rows

        name = type(self).__name__
        frames = _checked_frames(items, name)
        pre = self.preprocess
        if pre.train and "key" not in items[0]:
            raise ValueError(f"{name}: items have no 'key' to draw their augmentations by "
                             "(build the reader with keys=True)")
        keys = torch.tensor([int(it["key"]) for it in items] if "key" in items[0] else [0] * len(items))
        lengths = torch.tensor([f.shape[0] for f in frames])
        if self.fused is not None:
            final = self.fused.lengths(keys.numpy(), lengths.numpy())

            def fill(out: torch.Tensor) -> None:  # each record's frames read where they are
                self.fused(frames, lengths.numpy(), keys.numpy(), out.numpy())
        else:
            plan = pre.pipe.sample_keyed(KeyedDraws(keys), lengths, int(lengths.max()))
            final = plan["length"]

            def fill(out: torch.Tensor) -> None:
                rows = torch.cat([torch.as_tensor(f, dtype=torch.float32) for f in frames])
                run_rows(pre.pipe, rows, Rows.packed(lengths, rows.shape[0]), plan, eager=True, out=out,
                         own=True)  # cat made a copy
        items = [{**it, "length": n} for it, n in zip(items, final)]
        return _collate(items, False, name, fill, (pre.n_frames, n_cols()))
