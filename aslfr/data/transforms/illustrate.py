"""A picture of what each augmentation of the reference's training path does to one sequence, for
the README and `python -m aslfr.inspect ... +augment=true`: the spatial ones on the middle frame
(before in grey), the temporal ones on the right wrist's x over time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from aslfr.data.transforms import functional as F
from aslfr.format.vocab import N_POINTS, columns, point

_WRIST_X = 3 * point("pose_16")  # the right wrist's x: present in every frame, unlike the hands


def augmentation_examples(frames: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """(title, augmented frames) per training augmentation, with parameters near its range's ends."""
    t = frames.shape[0]
    keep = torch.Generator().manual_seed(0)
    return [
        ("flip_lr (p 0.25)", F.flip_lr(frames)),
        ("scale x1.2 (p 0.75, U[0.8,1.2))", F.scale(frames, 1.2)),
        ("rotate 15 deg (p 0.75, U[-15,15))", F.rotate(frames, 15.0)),
        ("shift (.05,-.05,0) (p 0.75, U[-.05,.05))", F.shift(frames, 0.05, -0.05, 0.0)),
        ("temporal_seq_mask 20% (p 0.5)", F.temporal_seq_mask(frames, t // 2, F.seq_mask_size(t, 0.2))),
        ("resample x1.5, bicubic (p 0.8)", F.resample(frames, F.resample_length(t, 1.5), "bicubic")),
        ("temporal_mask keep 50% (p 0.8)", F.temporal_mask(frames, torch.rand(t, generator=keep) > 0.5)),
    ]


def render_augmentations(frames, path: str | Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from aslfr.data.summary import draw_skeleton

    x = torch.as_tensor(np.asarray(frames, dtype=np.float32))
    examples = augmentation_examples(x)
    fig, axes = plt.subplots(2, 4, figsize=(13, 6.4), dpi=100)
    axes = axes.ravel()
    hands = torch.isfinite(x[:, columns("left_hand")]).sum(1) + torch.isfinite(x[:, columns("right_hand")]).sum(1)
    mid = int(torch.argmax(hands))  # the frame with the most hand points
    before = x[mid].reshape(N_POINTS, 3).numpy()
    draw_skeleton(axes[0], before)
    axes[0].set_title(f"original, frame {mid}", fontsize=9)
    for ax, (name, y) in zip(axes[1:], examples):
        if name.startswith(("flip", "scale", "rotate", "shift")):
            draw_skeleton(ax, before, color="lightgray")
            draw_skeleton(ax, y[mid].reshape(N_POINTS, 3).numpy())
        else:
            ax.plot(np.arange(x.shape[0]), x[:, _WRIST_X].numpy(), color="lightgray", lw=3, label="before")
            ax.plot(np.arange(y.shape[0]), y[:, _WRIST_X].numpy(), color="tab:blue", lw=1, label="after")
            ax.set_xlabel("frame", fontsize=8)
            ax.set_ylabel("right wrist (arm) x", fontsize=8)
            ax.legend(fontsize=7)
        ax.set_title(name, fontsize=9)
    for ax in axes[:5]:
        ax.set_aspect("equal")
        ax.invert_yaxis()  # image coordinates: y grows downwards
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title or "the reference's training augmentations (grey: before)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
