"""Batching variable-length sequences for training (CTC-ready)."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from aslfr.format.vocab import PAD


def pad_collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch reader items: `frames` zero-padded to [B, T_max, C] with `lengths` [B] and `mask`
    [B, T_max] (True on real frames); `phrase_` [B, 32] with `target_lengths` (tokens != PAD, EOS
    included, as the reference's CTC targets); other tensors stacked, strings as lists."""
    frames = [torch.as_tensor(it["frames"]) for it in items]
    lengths = torch.tensor([f.shape[0] for f in frames], dtype=torch.int64)
    batch: dict[str, Any] = {
        "frames": torch.nn.utils.rnn.pad_sequence(frames, batch_first=True),
        "lengths": lengths,
    }
    batch["mask"] = torch.arange(batch["frames"].shape[1])[None, :] < lengths[:, None]
    for key in items[0]:
        if key == "frames":
            continue
        values = [it[key] for it in items]
        batch[key] = torch.stack([torch.as_tensor(v) for v in values]) if not isinstance(values[0], str) else values
    if "phrase_" in batch:
        batch["target_lengths"] = (batch["phrase_"] != PAD).sum(dim=1)
    return batch
