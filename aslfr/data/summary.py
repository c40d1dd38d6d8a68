"""What was written, for people: per split and fold, records, frames, phrase types, phrase_dup share,
frames without a left/right hand and phrases that lost their EOS (`summarize`, `format_table`); and
pictures of sequences read back from the records (`render`, matplotlib: aslfr[viz]). Decodes with
`aslfr.format` only (no torch)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from aslfr.format.folder import resolve_shards
from aslfr.format.schema import read_shard
from aslfr.format.vocab import EOS, N_POINTS, POINTS, columns, point

LEFT_HAND, RIGHT_HAND = columns("left_hand"), columns("right_hand")
# edges between points of a group, as offsets from the group's first point
_HAND_EDGES = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11), (11, 12),
               (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17), (17, 18), (18, 19), (19, 20)]
_ARM_EDGES = [(0, 1), (1, 2), (1, 3), (1, 4)]  # elbow-wrist, wrist-pinky/index/thumb (pose 13,15,17,19,21)


def _records(records_dir: str | Path):
    for path in resolve_shards(records_dir):
        yield from read_shard(path)


def summarize(records_dir: str | Path, folds: int | None = None) -> dict[int, dict[str, Any]]:
    """Per fold: records, frames mean/p95/max, phrase types, phrase_dup share, share of frames with no
    left / right hand, and how many phrase_ lost their EOS."""
    acc: dict[int, dict[str, Any]] = {}
    for rec in _records(records_dir):
        a = acc.setdefault(int(rec["fold"]), {"n_frames": [], "types": Counter(), "dup": 0, "no_left": 0,
                                             "no_right": 0, "lost_eos": 0})
        f = rec["frames"]
        a["n_frames"].append(f.shape[0])
        a["types"][rec["phrase_type"]] += 1
        a["dup"] += int(rec["phrase_dup"])
        a["no_left"] += int(np.isnan(f[:, LEFT_HAND]).all(axis=1).sum())
        a["no_right"] += int(np.isnan(f[:, RIGHT_HAND]).all(axis=1).sum())
        a["lost_eos"] += int(EOS not in rec["phrase_"])
    out = {}
    for fold in sorted(acc):
        a = acc[fold]
        n = np.asarray(a["n_frames"])
        out[fold] = {"records": len(n), "frames_mean": float(n.mean()), "frames_p95": float(np.percentile(n, 95)),
                     "frames_max": int(n.max()), "phrase_types": dict(sorted(a["types"].items())),
                     "phrase_dup_share": a["dup"] / len(n), "no_left_hand_share": a["no_left"] / n.sum(),
                     "no_right_hand_share": a["no_right"] / n.sum(), "lost_eos": a["lost_eos"]}
    return out


def format_table(split: str, rows: dict[int, dict[str, Any]]) -> str:
    head = ["fold", "records", "frames mean", "p95", "max", "phrase types", "dup", "no L hand", "no R hand", "lost EOS"]
    body = [[str(f), str(r["records"]), f"{r['frames_mean']:.1f}", f"{r['frames_p95']:.0f}", str(r["frames_max"]),
             " ".join(f"{k}:{v}" for k, v in r["phrase_types"].items()), f"{r['phrase_dup_share']:.1%}",
             f"{r['no_left_hand_share']:.1%}", f"{r['no_right_hand_share']:.1%}", str(r["lost_eos"])]
            for f, r in rows.items()]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    line = lambda cells: "  ".join(c.rjust(w) if i not in (5,) else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    return "\n".join([f"[{split}]", line(head), *(line(b) for b in body)])


def find_sequence(out_dir: str | Path, sequence_id: int) -> dict[str, Any]:
    from aslfr.format.verify import records_dirs

    for records_dir in records_dirs(out_dir):
        for rec in _records(records_dir):
            if rec["sequence_id"] == sequence_id:
                return rec
    raise KeyError(f"{out_dir}: sequence {sequence_id} not found in any records")


def draw_skeleton(ax, p: np.ndarray, color: str | None = None, alpha: float = 1.0) -> None:
    """One frame's 128 points [128, 3] in 2-D: hands, arms, lips, eyes and nose (NaN points are left
    out by matplotlib). `color` draws everything in one colour (e.g. grey for a "before")."""
    def c(default):
        return color or default

    for group, col in (("left_hand", "tab:red"), ("right_hand", "tab:blue")):
        hand = POINTS[group]
        for a, b in _HAND_EDGES:
            ax.plot(p[[hand.start + a, hand.start + b], 0], p[[hand.start + a, hand.start + b], 1], color=c(col), lw=1,
                    alpha=alpha)
        ax.scatter(p[hand, 0], p[hand, 1], s=6, color=c(col), alpha=alpha)
    for group, col in (("left_arm", "tab:orange"), ("right_arm", "tab:green")):
        base = POINTS[group].start
        for a, b in _ARM_EDGES:
            ax.plot(p[[base + a, base + b], 0], p[[base + a, base + b], 1], color=c(col), lw=1.5, alpha=alpha)
    mid_lips, nose = [point(f"face_{i}") for i in (0, 17, 13, 14)], [point(f"face_{i}") for i in (1, 2)]
    for points, col, size in ((range(POINTS["left_lips"].start, POINTS["right_lips"].stop), "tab:purple", 3),
                              (mid_lips, "tab:purple", 3),
                              (range(POINTS["left_eye"].start, POINTS["right_nose"].stop), "tab:gray", 2),
                              (nose, "tab:gray", 2)):
        points = list(points)
        ax.scatter(p[points, 0], p[points, 1], s=size, color=c(col), alpha=alpha)


def render(rec: dict[str, Any], path: str | Path, n_frames: int = 8) -> Path:
    """Hands, arm pose and lips as 2-D landmarks for `n_frames` frames across the sequence; missing
    landmarks (NaN) are left out, never drawn at (0, 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = rec["frames"].reshape(rec["frames"].shape[0], N_POINTS, 3)
    idx = np.unique(np.linspace(0, len(pts) - 1, min(n_frames, len(pts))).round().astype(int))
    cols = min(4, len(idx))
    rows = int(np.ceil(len(idx) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.2 * rows), squeeze=False, dpi=100)
    finite = pts[..., :2][np.isfinite(pts[..., :2]).all(-1)]
    lo, hi = (finite.min(0), finite.max(0)) if len(finite) else (np.zeros(2), np.ones(2))
    for ax in axes.ravel():
        ax.axis("off")
    for ax, t in zip(axes.ravel(), idx):
        draw_skeleton(ax, pts[t])
        ax.set_xlim(lo[0] - 0.05, hi[0] + 0.05)
        ax.set_ylim(hi[1] + 0.05, lo[1] - 0.05)  # image coordinates: y grows downwards
        ax.set_title(f"frame {t}", fontsize=8)
        ax.set_aspect("equal")
    fig.suptitle(f"{rec['phrase']!r}  (sequence {rec['sequence_id']}, {len(pts)} frames)")
    from matplotlib.lines import Line2D

    legend = [Line2D([], [], color=c, lw=2, label=n) for n, c in (
        ("left hand", "tab:red"), ("right hand", "tab:blue"), ("left arm", "tab:orange"), ("right arm", "tab:green"),
        ("lips", "tab:purple"), ("eyes, nose", "tab:gray"))]
    fig.legend(handles=legend, loc="lower center", ncol=len(legend), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
