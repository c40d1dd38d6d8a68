"""Batching variable-length sequences for training (CTC-ready), cheap to send from DataLoader workers.

A batch crosses from a worker to the training process as shared memory, and each new shared segment
costs a fixed ~0.5 ms plus ~0.6 ms per MB to fault in. So every tensor of a batch here is a view into one storage, allocated in
shared memory when the collate runs in a worker (nothing is copied when the batch is sent, as with
torch's `default_collate`), and `pack_collate` sends the frames unpadded (concatenated, with
lengths) to be padded where they are consumed, e.g. on the GPU by `unpack`: padding ~160-frame
sequences to the longest of their batch more than doubles the bytes to fault in and send."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import get_worker_info

from aslfr.format.vocab import PAD

class _Arena:
    """Tensors of one batch carved out of a single storage (shared memory inside a worker)."""

    def __init__(self, specs: dict[str, tuple[tuple[int, ...], torch.dtype]]):
        self.offsets, total = {}, 0
        for name, (shape, dtype) in specs.items():
            size = torch.empty((), dtype=dtype).element_size()
            total = -(-total // 8) * 8  # every view 8-byte aligned
            self.offsets[name] = (total // size, shape, dtype)
            total += int(np.prod(shape, dtype=np.int64)) * size
        if get_worker_info() is None:
            self.storage = torch.UntypedStorage(max(total, 8))
        else:
            # fresh shared memory costs ~0.6 ms per MB to fault in (measured): one segment, no padding
            self.storage = torch.UntypedStorage._new_shared(max(total, 8))

    def __getitem__(self, name: str) -> torch.Tensor:
        offset, shape, dtype = self.offsets[name]
        return torch.empty(0, dtype=dtype).set_(self.storage, offset, shape)


def _numbers(items: Sequence[dict[str, Any]]) -> tuple[dict[str, np.ndarray], list[str]]:
    """Every feature but frames as a stacked array (ints as int64, floats as float32); strings apart."""
    first = items[0]
    strings = [k for k in first if k != "frames" and isinstance(first[k], str)]
    arrays = {}
    for k in first:
        if k == "frames" or k in strings:
            continue
        a = np.asarray([np.asarray(it[k]) for it in items])
        arrays[k] = a.astype(np.float32 if a.dtype.kind == "f" else np.int64, copy=False)
    return arrays, strings


def _collate(items: Sequence[dict[str, Any]], packed: bool) -> dict[str, Any]:
    frames = [torch.as_tensor(it["frames"]) for it in items]
    lens = [f.shape[0] for f in frames]
    b, t_max, cols = len(frames), max(lens), tuple(frames[0].shape[1:])
    arrays, strings = _numbers(items)
    specs = {"frames": ((sum(lens), *cols) if packed else (b, t_max, *cols), frames[0].dtype),
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
        batch["packed"] = True
    else:
        out = batch["frames"]
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
    return batch


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
