"""The batched training path on rows: a batch's frames as rows [N, 384] (packed, N = sum of lengths,
or padded, N = B x T), each step once over all rows, then one gather for the end of the pipeline.

Why: a padded batch is mostly padding (its longest sequence is ~4x the mean), and the resample step
would make every sequence as long as the longest one could become. Here the frame-wise steps (flip,
scale, rotate, shift, sequence mask, normalize, NaN -> 0, pos) run on the real rows only, with each
row's parameters those of its sequence; then resample + pad/resize, the steps that mix frames, are
computed straight at the 320 output positions: an output row is a lerp of two resampled rows (or
one, or zero), and each resampled row one gather and a few ops, exactly as the full tensors would
give it. The result equals `apply` per sequence (`Compose.apply`) bit for bit (on the CPU; within 1e-5 on a GPU).

eager=True may read the plan on the host to skip work (the CPU); eager=False never does (a GPU):
every variant is computed and selected, so a batch is a fixed number of ops."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from aslfr.data.transforms import augment as A
from aslfr.data.transforms import functional as F

Plan = Dict[str, Any]


class Rows:
    """Which sequence each row belongs to (`seg`), its frame index there (`t`), and each sequence's
    first row (`start`) and length; for packed rows or a padded batch, without reading any value."""

    def __init__(self, seg: torch.Tensor, t: torch.Tensor, start: torch.Tensor, lengths: torch.Tensor):
        self.seg, self.t, self.start, self.lengths = seg, t, start, lengths

    @classmethod
    def packed(cls, lengths: torch.Tensor, n_rows: int) -> "Rows":
        dev = lengths.device
        start = torch.cumsum(lengths, 0) - lengths
        seg = torch.repeat_interleave(torch.arange(len(lengths), device=dev), lengths, output_size=n_rows)
        return cls(seg, torch.arange(n_rows, device=dev) - start[seg], start, lengths)

    @classmethod
    def padded(cls, lengths: torch.Tensor, frames: int) -> "Rows":
        dev, bsz = lengths.device, len(lengths)
        seg = torch.arange(bsz, device=dev).repeat_interleave(frames)
        return cls(seg, torch.arange(frames, device=dev).repeat(bsz), torch.arange(bsz, device=dev) * frames, lengths)


def _gated(x: torch.Tensor, fire: torch.Tensor, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
           rows: Rows, eager: bool) -> torch.Tensor:
    """fn(rows of x, their sequence ids) on the rows of fired sequences; the others unchanged."""
    on = fire[rows.seg]
    if not eager:
        return torch.where(on.unsqueeze(1), fn(x, rows.seg), x)
    idx = on.nonzero().flatten()
    if idx.numel():
        x[idx] = fn(x[idx], rows.seg[idx])  # in place: eager steps own their rows (see run_rows)
    return x


def _frame_step(step: A.Transform, p: Plan, x: torch.Tensor, rows: Rows, eager: bool) -> torch.Tensor:
    """One frame-wise step on the rows [N, C]; a row's parameters are its sequence's."""
    if p.get("none"):
        return x
    one = lambda v: v.unsqueeze(1)  # noqa: E731  rows as sequences of one frame, for the functional layer
    if isinstance(step, A.RandomFlipLR):
        return _gated(x, p["fire"], lambda r, s: F.flip_lr(r), rows, eager)
    if isinstance(step, A.RandomScale):
        factor = torch.where(p["fire"], p["factor"], torch.ones((), device=x.device))[rows.seg].unsqueeze(1)
        return x.mul_(factor) if eager else x * factor  # x * 1 is x
    if isinstance(step, A.RandomRotate):
        return _gated(x, p["fire"], lambda r, s: F.rotate_cos_sin(one(r), p["cos"][s], p["sin"][s])[:, 0], rows, eager)
    if isinstance(step, A.RandomShift):
        return _gated(x, p["fire"], lambda r, s: F.shift(one(r), p["dx"][s], p["dy"][s], p["dz"][s])[:, 0], rows, eager)
    if isinstance(step, A.OneOf):
        for sub, sp in zip(step.transforms, p["sub"]):
            x = _frame_step(sub, sp, x, rows, eager)
        return x
    if isinstance(step, A.RandomTemporalSeqMask):
        size = torch.where(p["fire"], p["size"], torch.zeros_like(p["size"]))  # size 0: no-op
        a = p["start"][rows.seg]
        masked = ((rows.t >= a) & (rows.t < a + size[rows.seg])).unsqueeze(1)
        return x.masked_fill_(masked, float("nan")) if eager else x.masked_fill(masked, float("nan"))
    if isinstance(step, (A.ConcatNormalized, A.NanToZero)):
        return step.apply(x, p)
    if isinstance(step, A.AddPos):
        return torch.cat([x, F.positions_at(rows.t, step.folded).unsqueeze(1)], dim=1)
    raise NotImplementedError(f"the rows path has no frame-wise {type(step).__name__}")


def _features(x: torch.Tensor, rows: Rows, concat: A.ConcatNormalized, folded: bool) -> torch.Tensor:
    """ConcatNormalized, NanToZero and AddPos at once, into one [N, 769] buffer (the same float ops)."""
    n, c = x.shape
    out = x.new_empty(n, 2 * c + 1)
    raw, normed = out[:, :c], out[:, c:2 * c]
    raw.copy_(x)
    means, stds, inv = concat.stats_on(x.device)
    torch.sub(x, means, out=normed)
    normed.mul_(inv) if inv is not None else normed.div_(stds)
    out[:, :2 * c].nan_to_num_(nan=0.0, posinf=float("inf"), neginf=float("-inf"))
    out[:, 2 * c] = F.positions_at(rows.t, folded)
    return out


def _resampled(x: torch.Tensor, rows: Rows, at: torch.Tensor, p: Optional[Plan]) -> torch.Tensor:
    """Rows `at` [B, K] of each resampled sequence -> [B, K, C] (`at` < its new length), with no host
    read: each sequence's taps are chosen by its method (or none: kept as it is), then four gathers
    serve every method, and each sequence takes its method's formula (that of `_resample_batch`)."""
    k = at.shape[1]
    base = rows.start.unsqueeze(1)

    def gather(idx):
        return F._gather(x, base, idx)

    kept = torch.minimum(at, (rows.lengths - 1).unsqueeze(1))  # (a resampled sequence's positions
    if p is None or p.get("none"):                               # can pass its old length)
        return gather(kept)
    size = torch.where(p["fire"], p["size"], rows.lengths)
    code = torch.where(p["fire"], p["method"], len(F.METHODS)).unsqueeze(1)  # METHODS order; last: kept
    (near,), _ = F._resample_taps(rows.lengths, size, k, "nearest", at)
    (lo, hi), (lw,) = F._resample_taps(rows.lengths, size, k, "bilinear", at)
    cubic_idx, cw = F._resample_taps(rows.lengths, size, k, "bicubic", at)
    bilinear, bicubic, nearest = (code == F.METHODS.index(m) for m in ("bilinear", "bicubic", "nearest"))
    first = torch.where(bilinear, lo, torch.where(bicubic, cubic_idx[0], torch.where(nearest, near, kept)))
    g = [gather(first), gather(torch.where(bilinear, hi, cubic_idx[1])), gather(cubic_idx[2]), gather(cubic_idx[3])]
    lerp = g[0] + (g[1] - g[0]) * lw.unsqueeze(-1)
    cubic = g[0] * cw[0].unsqueeze(-1)
    for j in range(1, 4):
        cubic = cubic + g[j] * cw[j].unsqueeze(-1)
    return torch.where(bilinear.unsqueeze(-1), lerp, torch.where(bicubic.unsqueeze(-1), cubic, g[0]))


def _at(x: torch.Tensor, start: torch.Tensor, length: torch.Tensor, size: torch.Tensor, at: torch.Tensor,
        method: Optional[str]) -> torch.Tensor:
    """Rows `at` [g, K] of g sequences resampled by one method (None: kept as they are) -> [g, K, C],
    by the formulas of `_resample_batch`."""
    base = start.unsqueeze(1)
    if method is None:
        return F._gather(x, base, at)
    idx, w = F._resample_taps(length, size, at.shape[1], method, at)
    return F.interpolate(lambda i, into=None: F._gather(x, base, i, into), idx, w, method)


def _grouped(x: torch.Tensor, rows: Rows, p: Optional[Plan], host: Tuple[Optional[Plan], torch.Tensor], n: int,
             out: Optional[torch.Tensor]) -> torch.Tensor:
    """With the plan on the host (free to read) and the data on a device: the sequences grouped by
    resample method and by "longer than n", so that each output row is computed once, by its own
    method (at most 8 groups: a fixed bound of ops, and no wait for the device)."""
    hp, lengths = host
    fired = hp["fire"] if hp is not None else torch.zeros(len(lengths), dtype=torch.bool)
    size = torch.where(fired, hp["size"], lengths) if hp is not None else lengths
    code = torch.where(fired, hp["method"], len(F.METHODS)) if hp is not None else torch.full_like(lengths, len(F.METHODS))
    if out is None:
        out = x.new_empty(len(lengths), n, x.shape[1])
    o = torch.arange(n, device=x.device).unsqueeze(0)
    for m in range(len(F.METHODS) + 1):
        for long_ in (False, True):
            sel = ((code == m) & ((size > n) == long_)).nonzero().flatten()
            if not sel.numel():
                continue
            idx = sel.to(x.device, non_blocking=True)
            start, length = rows.start[idx], rows.lengths[idx]
            new = p["size"][idx] if m < len(F.METHODS) else length
            method = F.METHODS[m] if m < len(F.METHODS) else None
            if long_:
                (lo, hi), (w,) = F._resample_taps(new, torch.full_like(new, n), n, "bilinear")
                first = _at(x, start, length, new, lo, method)
                vals = first + (_at(x, start, length, new, hi, method) - first) * w.unsqueeze(-1)
            else:
                vals = _at(x, start, length, new, torch.minimum(o, (new - 1).unsqueeze(1)), method)
                vals = torch.where((o < new.unsqueeze(1)).unsqueeze(-1), vals, torch.zeros((), dtype=x.dtype, device=x.device))
            out.index_copy_(0, idx, vals)
    return out


def _resample_and_pad(x: torch.Tensor, rows: Rows, p: Optional[Plan], n: int, eager: bool,
                      out: Optional[torch.Tensor], host=None) -> Tuple[torch.Tensor, torch.Tensor]:
    """RandomResample (plan p, or none) then PadOrResize(n), at the n output positions only.
    host: (the resample's plan, the lengths) on the host, for a plan made there (`_grouped`)."""
    dev = x.device
    resampled = p is not None and not p.get("none")
    length = torch.where(p["fire"], p["size"], rows.lengths) if resampled else rows.lengths
    if eager:
        return _each(x, rows, p if resampled else None, n, out), length.clamp_max(n)
    if host is not None:
        return _grouped(x, rows, p if resampled else None, (host[0] if resampled else None, host[1]), n, out), \
            length.clamp_max(n)
    o = torch.arange(n, device=dev).unsqueeze(0)
    (lo, hi), (w,) = F._resample_taps(length, torch.full_like(length, n), n, "bilinear")  # L > n: resize
    long_ = (length > n).unsqueeze(1)
    near = torch.where(long_, lo, torch.minimum(o, (length - 1).unsqueeze(1)))
    first = _resampled(x, rows, near, p if resampled else None)
    zero = torch.zeros((), dtype=x.dtype, device=dev)
    where = lambda *a: torch.where(*a) if out is None else torch.where(*a, out=out)  # noqa: E731
    second = _resampled(x, rows, torch.where(long_, hi, near), p if resampled else None)
    lerp = first + (second - first) * w.unsqueeze(-1)
    padded = torch.where((o < length.unsqueeze(1)).unsqueeze(-1), first, zero)
    return where(long_.unsqueeze(-1), lerp, padded), length.clamp_max(n)


def _each(x: torch.Tensor, rows: Rows, p: Optional[Plan], n: int, out: Optional[torch.Tensor]) -> torch.Tensor:
    """The eager form: sequence by sequence, each resampled (if it is) then written into its slot,
    which on the CPU touches each output byte least (a Python loop costs little next to it)."""
    starts, lengths = rows.start.tolist(), rows.lengths.tolist()
    fired = p["fire"].tolist() if p is not None else [False] * len(starts)
    if out is None:
        out = x.new_empty(len(starts), n, x.shape[1])
    sizes, methods = (p["size"].tolist(), p["method"].tolist()) if p is not None else (None, None)
    for b, (a, t) in enumerate(zip(starts, lengths)):
        seq = x[a:a + t].unsqueeze(0)
        if fired[b] and sizes[b] <= n:  # resampled straight into the slot, the padding zeroed
            F._resample_batch(seq, rows.lengths[b:b + 1], p["size"][b:b + 1], F.METHODS[methods[b]],
                              sizes[b], out=out[b:b + 1, :sizes[b]])
            out[b, sizes[b]:] = 0
            continue
        if fired[b]:
            seq = F._resample_batch(seq, rows.lengths[b:b + 1], p["size"][b:b + 1], F.METHODS[methods[b]],
                                    sizes[b], zero_tail=False)
        F.pad_or_resize(seq, n, torch.tensor([seq.shape[1]]), out=out[b:b + 1])
    return out


def run_rows(pipe: A.Compose, x: torch.Tensor, rows: Rows, plan: Plan, eager: bool,
             out: Optional[torch.Tensor] = None, own: bool = False, host: Optional[Tuple[Plan, torch.Tensor]] = None
             ) -> Tuple[torch.Tensor, torch.Tensor]:
    """A batched plan (`Compose.sample_keyed` or `stack`) on rows x [N, 384] -> ([B, n, C], lengths [B]).
    The pipeline: frame-wise steps, then [RandomResample], PadOrResize, then any padded-batch steps.
    eager steps work in place on x: it is copied first unless `own` (the caller's to overwrite).
    host: (the same plan, the lengths) on the host, where the plan was made from keys there."""
    if eager and not own:
        x = x.clone()
    steps: List[Tuple[A.Transform, Plan]] = list(zip(pipe.transforms, plan["plan"]))
    i = 0
    while i < len(steps) and not isinstance(steps[i][0], (A.RandomResample, A.PadOrResize)):
        kinds = tuple(type(t) for t, _ in steps[i:i + 3])
        if kinds == (A.ConcatNormalized, A.NanToZero, A.AddPos):
            x, i = _features(x, rows, steps[i][0], steps[i + 2][0].folded), i + 3
            continue
        x = _frame_step(*steps[i], x, rows, eager)
        i += 1
    res, host_res = None, None
    if i < len(steps) and isinstance(steps[i][0], A.RandomResample):
        res, host_res, i = steps[i][1], host[0]["plan"][i] if host else None, i + 1
    if i >= len(steps) or not isinstance(steps[i][0], A.PadOrResize):
        raise NotImplementedError("the rows path needs PadOrResize after the frame-wise steps (and RandomResample)")
    last = i == len(steps) - 1
    if eager and out is None:  # ours: the steps after pad/resize may work in place
        out = x.new_empty(len(rows.lengths), steps[i][0].n, x.shape[1])
    y, lengths = _resample_and_pad(x, rows, res, steps[i][0].n, eager, out if last or eager else None,
                                   (host_res, host[1]) if host else None)
    for step, p in steps[i + 1:]:
        y, lengths = step.run(y, lengths, p, eager, out)
    if out is not None and y is not out:
        out.copy_(y)
        y = out
    return y, lengths
