"""The reference training code's frame preprocessing (inference path), in torch, named by its flags:
norm_frames, concat_frames, NaN -> 0, add_pos, use_z, and pad-or-resize to max_frames."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from aslfr.data.transforms.functional import nan_to_zero, resample
from aslfr.format.stats import check_stats
from aslfr.format.vocab import N_COLS


def n_cols(concat_frames: bool = True, add_pos: bool = True, use_z: bool = True, norm_frames: bool = True) -> int:
    """Output width, as the notebook's `get_n_cols`."""
    if concat_frames and not norm_frames:
        raise ValueError("concat_frames needs norm_frames (as in the reference)")
    n = N_COLS * (2 if concat_frames else 1)
    if not use_z:
        n = n // 3 * 2
    return n + (1 if add_pos else 0)


class FrameTransform:
    """Callable on a reader item (or a frames tensor): replaces `frames` [T, 384] by [T', n_cols].

    Order as the reference's PreprocessLayer: normalize ((x - means) / stds), concat raw and
    normalized per frame, NaN -> 0, frame index / 1000 as a last column, pad with zeros or
    resize (bilinear, as tf.image.resize computes it) to `max_frames`, drop z (the pos column is kept; the reference's slicing
    bug that loses it is not reproduced). The item also gets `n_frames` clipped to max_frames."""

    def __init__(self, means=None, stds=None, norm_frames: bool = True, concat_frames: bool = True,
                 add_pos: bool = True, use_z: bool = True, max_frames: int | None = None):
        self.width = n_cols(concat_frames, add_pos, use_z, norm_frames)
        if norm_frames and (means is None or stds is None):
            raise ValueError("norm_frames needs means and stds (see aslfr.load_stats)")
        self.means = self.stds = None
        if norm_frames:  # validated here, not as a broadcast error or inf/NaN in every item
            self.means, self.stds = (torch.from_numpy(a) for a in check_stats(means, stds))
        self.norm_frames, self.concat_frames = norm_frames, concat_frames
        self.add_pos, self.use_z, self.max_frames = add_pos, use_z, max_frames

    def frames(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x, dtype=torch.float32)
        t = x.shape[0]
        if self.norm_frames:
            normed = (x - self.means) / self.stds
            x = torch.cat([x, normed], dim=-1) if self.concat_frames else normed
        x = nan_to_zero(x)
        if not self.use_z:
            x = x.reshape(t, -1, 3)[..., :2].reshape(t, -1)
        if self.add_pos:
            x = torch.cat([x, (torch.arange(t, dtype=torch.float32) / 1000.0)[:, None]], dim=-1)
        if self.max_frames is not None:
            if t < self.max_frames:
                x = F.pad(x, (0, 0, 0, self.max_frames - t))
            elif t > self.max_frames:  # tf.image.resize(..., 'bilinear') exactly: half-pixel centres, no antialias
                x = resample(x, self.max_frames, "bilinear")
        return x

    def __call__(self, item: Any) -> Any:
        if isinstance(item, dict):
            out = dict(item)
            out["frames"] = self.frames(item["frames"])
            if self.max_frames is not None:
                out["n_frames"] = torch.clamp(torch.as_tensor(item["n_frames"]), max=self.max_frames)
            return out
        return self.frames(item)
