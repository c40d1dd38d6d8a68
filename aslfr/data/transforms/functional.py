"""The reference (3rd place, chenghuige) training-time preprocessing as pure torch functions.

Every random value is an argument, so these functions are deterministic and exact against the
TensorFlow code given the same draws (see `augment` for the draws, `reference` for the pipeline).

Shapes: a function takes one sequence `[T, C]` or a padded batch `[B, T, C]` (C = 384 raw columns,
xyz interleaved per point, until `concat_normalized`). Per-sequence parameters are python numbers,
0-d tensors (shared) or `[B]` tensors (one per sequence). A batched call computes exactly the same
float32 operations as the per-sequence call (the single path *is* the batched path with B = 1).
Frames at or beyond `lengths[b]` are never read by a frame-mixing op (`resample`, `pad_or_resize`);
their values are unspecified until `pad_or_resize` writes zeros there.

float32 throughout, in the order TF evaluates it; device-agnostic (no numpy, no F.interpolate, whose
bilinear is off by 1.3e-4 and bicubic by 0.32 against tf.image.resize)."""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import torch

from aslfr.format.vocab import N_COLS, N_POINTS, POINT_GROUPS

F32 = torch.float32
Param = Union[float, int, torch.Tensor]
METHODS = ("bilinear", "bicubic", "nearest")

# ---------------------------------------------------------------------------------------------
# flip_lr: the reference's point groups swapped left <-> right.


def _flip_perm() -> Tuple[int, ...]:
    names = [name for name, _ in POINT_GROUPS]
    swapped = {"left": "right", "right": "left"}
    starts = dict(zip(names, [sum(n for _, n in POINT_GROUPS[:i]) for i in range(len(names))]))
    out = []
    for name, n in POINT_GROUPS:  # each group's slot takes its mirror group's points (mid stays)
        side, _, part = name.partition("_")
        mirror = f"{swapped[side]}_{part}" if side in swapped else name
        out += range(starts[mirror], starts[mirror] + n)
    return tuple(out)


FLIP_PERM: Tuple[int, ...] = _flip_perm()
"""new point i = old point FLIP_PERM[i] (an involution; the 6 mid points stay in place)."""


def _is_batch(x: torch.Tensor) -> bool:
    if x.dim() not in (2, 3):
        raise ValueError(f"expected [T, C] or [B, T, C], got shape {tuple(x.shape)}")
    return x.dim() == 3


def _f32(v: Param, device) -> torch.Tensor:
    # A python float becomes float32 here, as TF converts its python constants.
    return torch.as_tensor(v, dtype=F32, device=device)


def _per_seq(v: Param, x: torch.Tensor, trailing: int, dtype=F32) -> torch.Tensor:
    """`v` as a tensor broadcastable against x's batch axis: 0-d stays 0-d, [B] -> [B, 1, ..., 1]."""
    t = torch.as_tensor(v, dtype=dtype, device=x.device)
    if t.dim() == 0:
        return t
    if not _is_batch(x) or t.shape != (x.shape[0],):
        raise ValueError(f"per-sequence parameter of shape {tuple(t.shape)} does not fit input {tuple(x.shape)}")
    return t.view(-1, *([1] * trailing))


def _points(x: torch.Tensor) -> torch.Tensor:
    if x.shape[-1] != N_COLS:
        raise ValueError(f"expected {N_COLS} raw columns, got {x.shape[-1]}")
    return x.reshape(*x.shape[:-1], N_POINTS, 3)


def flip_lr(x: torch.Tensor) -> torch.Tensor:
    """x <- 1 - x on every point, then swap left/right point groups (reference `flip_lr`).
    NaN stays NaN; y and z only move with their points. Bit-exact."""
    p = _points(x).index_select(-2, _flip_index(x.device))
    p[..., 0].neg_().add_(1.0)  # 1. - x in float32, as TF: (-x) + 1 is the same operation
    return p.reshape(x.shape)


_FLIP_INDEX = {}


def _flip_index(device) -> torch.Tensor:
    key = str(device)
    if key not in _FLIP_INDEX:
        _FLIP_INDEX[key] = torch.tensor(FLIP_PERM, device=device)
    return _FLIP_INDEX[key]


def scale(x: torch.Tensor, factor: Param) -> torch.Tensor:
    """x, y and z times `factor`, about the origin (scale_method 0). Bit-exact."""
    return x * _per_seq(factor, x, 2)


# Two TF roundings exist for the reference's constant divisions (checked against TF 2.21):
# - inside tf.data (how the reference trains: Dataset.map(PreprocessLayer.call)) the graph runs as
#   written: deg / 180 * pi, (x - means) / stds, range(T) / 1000. True divisions, bit-exact here.
# - a direct tf.function call (eager PreprocessLayer(...)(x), the TFLite export) goes through grappler,
#   which folds them into multiplications: deg * (float32(pi) * (1/180)), (x - means) *
#   tf.math.reciprocal(stds), range(T) * float32(0.001). `folded=True` / `inv_stds` select that form.
_PI = float(torch.tensor(math.pi, dtype=F32))
_DEG2RAD_FOLDED = float(torch.tensor(_PI, dtype=F32) * (torch.tensor(1.0, dtype=F32) / torch.tensor(180.0, dtype=F32)))


def radians(degrees: Param, device=None, folded: bool = False) -> torch.Tensor:
    """The reference's float32 `degree / 180 * np.pi` (or its folded form)."""
    d = _f32(degrees, device)
    if folded:  # python floats that are float32 values: float32 arithmetic, no host-to-device copy
        return d * _DEG2RAD_FOLDED
    return (d / 180.0) * _PI


# TF evaluates cos/sin of the scalar angle with glibc's cosf/sinf (its scalar Eigen path), which are
# not correctly rounded (~2% of angles differ by 1 ulp from round(cos(double))). For |x| < 0.75 (the
# reference draws |deg| < 15) glibc evaluates a fixed polynomial in double (sysdeps/ieee754/flt-32,
# __sincosf_table), reproduced here: identical to TF on 20k angles.
_H = float.fromhex
_COS = (1.0, _H("-0x1.ffffffd0c621cp-2"), _H("0x1.55553e1068f19p-5"), _H("-0x1.6c087e89a359dp-10"), _H("0x1.99343027bf8c3p-16"))
_SIN = (_H("-0x1.555545995a603p-3"), _H("0x1.1107605230bc4p-7"), _H("-0x1.994eb3774cf24p-13"))


def _glibc_cos_sin(rad: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    x = rad.double()
    x2 = x * x
    x3 = x * x2
    sin_ = (x + x3 * _SIN[0]) + (x3 * x2) * (_SIN[1] + x2 * _SIN[2])
    x4 = x2 * x2
    cos_ = ((_COS[0] + x2 * _COS[1]) + x4 * _COS[2]) + (x4 * x2) * (_COS[3] + x2 * _COS[4])
    tiny = rad.abs() < 2.0 ** -12  # glibc returns x and 1 there
    sin_ = torch.where(tiny, rad, sin_.to(F32))
    cos_ = torch.where(tiny, torch.ones_like(rad), cos_.to(F32))
    # beyond the polynomial's range glibc reduces the argument; not reproduced: correctly rounded instead
    big = rad.abs() >= 0.75
    return torch.where(big, torch.cos(x).to(F32), cos_), torch.where(big, torch.sin(x).to(F32), sin_)


def rotation_cos_sin(degrees: Param, device=None, folded: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """float32 cos and sin of the reference's float32 radians, as TF's CPU kernels give them (glibc)."""
    return _glibc_cos_sin(radians(degrees, device, folded))


def rotate(x: torch.Tensor, degrees: Param, folded: bool = False) -> torch.Tensor:
    """Rotate (x, y) about (0.5, 0.5) by `degrees`: x' = x c - y s, y' = x s + y c.
    As in the reference, z is also shifted by -0.5 and back, which is not always the identity in
    float32. TF's matmul ([x, y] @ [[c, s], [-s, c]], oneDNN on an FMA CPU) accumulates as
    fma(y, -s, x*c) and fma(y, c, x*s); reproduced bit for bit (on a CPU without FMA TF would round
    the products separately: then ≤ 1 ulp apart)."""
    return rotate_cos_sin(x, *rotation_cos_sin(degrees, x.device, folded))


def rotate_cos_sin(x: torch.Tensor, c: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """`rotate` given the angle's float32 cos and sin (0-d, or [B] for a batch)."""
    if c.dim():
        if not _is_batch(x) or c.shape != (x.shape[0],):
            raise ValueError(f"per-sequence degrees of shape {tuple(c.shape)} do not fit input {tuple(x.shape)}")
        c, s = c.view(-1, 1, 1), s.view(-1, 1, 1)
    p = _points(x) - 0.5
    # (x', y') = fma(y, (-s, c), x * (c, s)) for both at once, via double: the product of two floats
    # is exact in double, and the double rounding of the sum differs from a true float fma only in
    # ~1 of 2^29 cases
    xy = torch.addcmul((p[..., :1] * torch.stack([c, s], dim=-1)).double(), p[..., 1:2].double(),
                       torch.stack([-s, c], dim=-1).double())
    p[..., :2] = xy
    return p.add_(0.5).reshape(x.shape)


def shift(x: torch.Tensor, dx: Param, dy: Param, dz: Param) -> torch.Tensor:
    """Add dx, dy, dz to every point's x, y, z (shift_method 1). Bit-exact."""
    d = torch.stack(torch.broadcast_tensors(_f32(dx, x.device), _f32(dy, x.device), _f32(dz, x.device)), dim=-1)
    if d.dim() > 1:
        if not _is_batch(x) or d.shape[0] != x.shape[0]:
            raise ValueError(f"per-sequence shifts of shape {tuple(d.shape[:-1])} do not fit input {tuple(x.shape)}")
        d = d.view(-1, 1, 1, 3)
    return (_points(x) + d).reshape(x.shape)


def temporal_seq_mask(x: torch.Tensor, start: Param, size: Param) -> torch.Tensor:
    """Frames [start, start + size) become NaN (all columns); size 0 masks nothing. Bit-exact."""
    t = torch.arange(x.shape[-2], device=x.device)
    a = _per_seq(start, x, 1, torch.int64)
    n = _per_seq(size, x, 1, torch.int64)
    m = (t >= a) & (t < a + n)
    return x.masked_fill(m.unsqueeze(-1), float("nan"))


def seq_mask_size(length: int, frac: Param) -> int:
    """Masked span: int32(float32(T) * frac), truncated."""
    return int(_f32(length, "cpu") * _f32(frac, "cpu"))


def seq_mask_offset_high(length: int, size: int) -> int:
    """Exclusive upper bound of the span's start: clip(T - size, 1, T). So the last frame is never masked."""
    return min(max(length - size, 1), length)


def reciprocal(stds) -> torch.Tensor:
    """Correctly rounded float32 1/stds, for the folded (direct tf.function) form of the normalization.
    TF's own tf.math.reciprocal is an Eigen Newton step whose last bit depends on the CPU (123 of 384
    entries differ on an AVX-512 EPYC); pass TF's values as `inv_stds` to be bit-exact with that form."""
    return 1.0 / torch.as_tensor(stds, dtype=F32)


def normalize(x: torch.Tensor, means, stds=None, inv_stds=None) -> torch.Tensor:
    """(x - means) / stds per column, as the reference trains (tf.data); with `inv_stds`, the folded
    form (x - means) * inv_stds of a direct tf.function call. NaN stays NaN."""
    m = torch.as_tensor(means, dtype=F32, device=x.device)
    if inv_stds is not None:
        return (x - m) * torch.as_tensor(inv_stds, dtype=F32, device=x.device)
    if stds is None:
        raise ValueError("normalize needs stds or inv_stds")
    return (x - m) / torch.as_tensor(stds, dtype=F32, device=x.device)


def concat_normalized(raw: torch.Tensor, normed: torch.Tensor) -> torch.Tensor:
    """Per frame: 384 raw (augmented) columns, then the 384 normalized ones (reference concat on axis -2)."""
    return torch.cat([raw, normed], dim=-1)


def nan_to_zero(x: torch.Tensor) -> torch.Tensor:
    """NaN -> 0 (missing hands, masked spans). ±inf is kept, as tf.where(is_nan) does."""
    return torch.nan_to_num(x, nan=0.0, posinf=math.inf, neginf=-math.inf)


def positions(n: int, device=None, folded: bool = False) -> torch.Tensor:
    """float32(t) / 1000 for t < n (folded: float32(t) * float32(0.001))."""
    return positions_at(torch.arange(n, device=device), folded)


def positions_at(t: torch.Tensor, folded: bool = False) -> torch.Tensor:
    """`positions` of the frame indices t."""
    t = t.to(F32)
    return t * _MILLI if folded else t / 1000.0


_MILLI = float(torch.tensor(0.001, dtype=F32))


def add_pos(x: torch.Tensor, folded: bool = False) -> torch.Tensor:
    """Append the frame position t/1000 as a last column."""
    p = positions(x.shape[-2], x.device, folded).unsqueeze(-1)
    return torch.cat([x, p.expand(*x.shape[:-1], 1)], dim=-1)


def resample_length(length: int, rate: Param) -> int:
    """Resampled length: max(1, int32(rate * float32(T)))."""
    return max(1, int(_f32(rate, "cpu") * _f32(length, "cpu")))


# ---------------------------------------------------------------------------------------------
# tf.image.resize along time (half_pixel_centers=True, antialias=False), per TF's CPU kernels
# (tensorflow/core/kernels/image/resize_{bilinear,bicubic,nearest_neighbor}_op.cc). The image is
# [1, T, C] (height 1), so only the width axis is resampled; the height pass is an exact identity.
# All three are bit-exact against TF 2.21 over 1245 (T, L) pairs, bicubic included: the table is built in double from a float x as
# InitCoeffsTable does, offset = lrintf(delta * 1024), out-of-range taps weigh 0, the weights are
# renormalized with 1.0f / sum, and the taps are summed left to right.

def _bicubic_table() -> torch.Tensor:
    """TF's Keys-cubic (a = -0.5) table: 1025 rows of (w(d), w(d + 1)), evaluated in double from
    a float x and stored as float, as InitCoeffsTable does."""
    a = -0.5
    i = torch.arange(1025, dtype=torch.float64)
    x = (i / 1024).to(F32).double()
    w0 = ((a + 2) * x - (a + 3)) * x * x + 1
    x1 = (x.to(F32) + 1.0).double()
    w1 = ((a * x1 - 5 * a) * x1 + 8 * a) * x1 - 4 * a
    return torch.stack([w0, w1], dim=-1).to(F32)


_TABLES = {}


def _table(device) -> torch.Tensor:
    key = str(device)
    if key not in _TABLES:
        _TABLES[key] = _bicubic_table().to(device)
    return _TABLES[key]


def _gather(xf: torch.Tensor, base: torch.Tensor, idx: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Rows idx[b, o] of sequence b (its first row at base[b]) from the rows xf [N, C]."""
    b, n = idx.shape
    rows = (base + idx).reshape(-1)
    if out is not None:
        return torch.index_select(xf, 0, rows, out=out.view(-1, xf.shape[-1])).view(out.shape)
    return xf.index_select(0, rows).view(b, n, xf.shape[-1])


def interpolate(gather, idx, w, method: str, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """One resize method's formula over its taps (`_resample_taps`), as TF's kernels compute it;
    gather(taps, into=None) gives the tapped rows. `out`: where the last op writes."""
    if method == "nearest":
        return gather(idx[0], out)
    if method == "bilinear":
        # x[lo] + (x[hi] - x[lo]) * t   (compute_lerp; the y lerp is 0, an exact identity)
        a = gather(idx[0])
        return torch.add(a, (gather(idx[1]) - a) * w[0].unsqueeze(-1), out=out)
    # Interpolate1D: v0*w0 + v1*w1 + v2*w2 + v3*w3, left to right
    acc = gather(idx[0]) * w[0].unsqueeze(-1)
    for k in range(1, 4):
        acc = torch.add(acc, gather(idx[k]) * w[k].unsqueeze(-1), out=out if k == 3 else None)
    return acc


def _resample_taps(in_len: torch.Tensor, out_len: torch.Tensor, n_out: int, method: str,
                   at: Optional[torch.Tensor] = None):
    """Gather indices [B, n_out] and float32 weights per tap for one method; `at` [B, n_out]: the
    output positions to compute (default 0..n_out-1), each computed as it is in the full output."""
    dev = in_len.device
    in_f = in_len.to(F32).unsqueeze(1)
    scale_ = in_f / out_len.to(F32).unsqueeze(1)  # CalculateResizeScale: float(in) / float(out)
    o = torch.arange(n_out, dtype=F32, device=dev).unsqueeze(0) if at is None else at.to(F32)
    last = (in_len - 1).unsqueeze(1)
    if method == "nearest":
        # HalfPixelScalerForNN: (o + 0.5f) * scale, floorf, clamped to [0, T-1]
        src = (o + 0.5) * scale_
        idx = torch.minimum(torch.floor(src).to(torch.int64), last).clamp_min(0)
        return [idx], []
    src = (o + 0.5) * scale_ - 0.5  # HalfPixelScaler
    fl = torch.floor(src)
    if method == "bilinear":
        # TF: lo = max(floor, 0), hi = min(ceil, T-1). lo <= T-1 holds for every real output; the
        # clamp only keeps padding positions (o >= size in a batch) inside the sequence.
        lo = torch.minimum(fl.to(torch.int64).clamp_min(0), last)
        hi = torch.minimum(torch.ceil(src).to(torch.int64), last)
        return [lo, hi], [src - fl]
    if method == "bicubic":
        loc = fl.to(torch.int64)
        delta = src - fl
        off = torch.round(delta * 1024.0).to(torch.int64)  # lrintf: round half to even, like torch.round
        tab = _table(dev)
        cand = [tab[off, 1], tab[off, 0], tab[1024 - off, 0], tab[1024 - off, 1]]
        idx, w = [], []
        for k, c in zip(range(-1, 3), cand):
            j = loc + k
            b = torch.minimum(j.clamp_min(0), last)  # Bound(val, limit)
            idx.append(b)
            # taps outside [0, T-1] get weight 0 (not edge replication) ...
            w.append(torch.where(b == j, c, torch.zeros((), dtype=F32, device=dev)))
        # ... and the four weights are renormalized: sum left to right, times 1.0f / sum.
        total = ((w[0] + w[1]) + w[2]) + w[3]
        ok = total.abs() >= 1000.0 * torch.finfo(F32).tiny
        inv = 1.0 / torch.where(ok, total, torch.ones((), dtype=F32, device=dev))
        w = [torch.where(ok, wk * inv, wk) for wk in w]
        return idx, w
    raise ValueError(f"unknown resize method {method!r}; expected one of {METHODS}")


def _resample_batch(x: torch.Tensor, lengths: torch.Tensor, sizes: torch.Tensor, method: str,
                    n_out: Optional[int] = None, zero_tail: bool = True, out: Optional[torch.Tensor] = None
                    ) -> torch.Tensor:
    """[B, T, C] -> [B, n_out, C] (default max(sizes)), zero beyond each size (unspecified there
    without zero_tail; `out`, where the last op writes, implies it). With n_out given, nothing is
    read back to the host."""
    bsz, t, c = x.shape
    if n_out is None:
        n_out = int(sizes.max()) if bsz else 0
    xf = x.reshape(bsz * t, c)
    base = (torch.arange(bsz, device=x.device) * t).unsqueeze(1)
    idx, w = _resample_taps(lengths, sizes, n_out, method)
    res = interpolate(lambda i, into=None: _gather(xf, base, i, into), idx, w, method, out)
    if not zero_tail or out is not None:
        return res
    valid = torch.arange(n_out, device=x.device).unsqueeze(0) < sizes.unsqueeze(1)
    return torch.where(valid.unsqueeze(-1), res, torch.zeros((), dtype=res.dtype, device=res.device))


def resample(x: torch.Tensor, size: Param, method: Union[str, Sequence[str]] = "bilinear",
             lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Resample the time axis to `size` frames exactly as tf.image.resize(x[None], (1, size), method).

    One sequence: x [T, C], size int -> [size, C]. Batch: x [B, T, C] with lengths [B] (default T),
    size int or [B], method one name or one per sequence -> [B, max(size), C], zero past each size.
    Bilinear and nearest are bit-exact; bicubic uses TF's table, edge weights and renormalization."""
    single = not _is_batch(x)
    xb = x.unsqueeze(0) if single else x
    bsz, dev = xb.shape[0], xb.device
    xb = xb.to(F32)
    lens = torch.full((bsz,), xb.shape[1], dtype=torch.int64, device=dev) if lengths is None \
        else torch.as_tensor(lengths, dtype=torch.int64, device=dev).reshape(bsz)
    sizes = torch.as_tensor(size, dtype=torch.int64, device=dev)
    sizes = sizes.expand(bsz).clone() if sizes.dim() == 0 else sizes.reshape(bsz)
    if bool((sizes < 1).any()) or bool((lens < 1).any()):
        raise ValueError("resample needs lengths >= 1 and sizes >= 1")
    methods = [method] * bsz if isinstance(method, str) else list(method)
    if len(methods) != bsz:
        raise ValueError(f"{len(methods)} methods for {bsz} sequences")
    n_out = int(sizes.max())
    if len(set(methods)) == 1:
        out = _resample_batch(xb, lens, sizes, methods[0])
    else:
        out = xb.new_zeros(bsz, n_out, xb.shape[-1])
        for m in sorted(set(methods)):
            sel = torch.tensor([i for i, mm in enumerate(methods) if mm == m], device=dev)
            part = _resample_batch(xb.index_select(0, sel), lens[sel], sizes[sel], m)
            out[sel, : part.shape[1]] = part
    return out[0] if single else out


def pad_or_resize(x: torch.Tensor, n: int = 320, lengths: Optional[torch.Tensor] = None,
                  out: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, Union[int, torch.Tensor]]:
    """To exactly n frames, as the reference: L < n is zero-padded (pos column included), L > n is
    bilinearly resized to n (tf.image.resize, half-pixel, no antialias), L == n is kept.

    Returns (out, length) with length = min(L, n), the number of non-padding frames. (The reference
    itself returns max(L, n) as `n_frames_`, see `reference.reference_n_frames`.)
    `out` [B, n, C]: written in place of a new tensor."""
    single = not _is_batch(x)
    xb = x.unsqueeze(0) if single else x
    bsz, t, c = xb.shape
    dev = xb.device
    lens = torch.full((bsz,), t, dtype=torch.int64, device=dev) if lengths is None \
        else torch.as_tensor(lengths, dtype=torch.int64, device=dev).reshape(bsz)
    if out is None:
        out = xb.new_empty(bsz, n, c)
    elif out.shape != (bsz, n, c):
        raise ValueError(f"out of shape {tuple(out.shape)} for a result of {(bsz, n, c)}")
    for b, length in enumerate(lens.tolist()):  # each sequence copied or resized into its slot, the padding zeroed
        if length > n:
            out[b] = _resample_batch(xb[b:b + 1], lens[b:b + 1], lens.new_full((1,), n), "bilinear", n, False)[0]
        else:
            out[b, :length] = xb[b, :length]
            out[b, length:] = 0
    length = lens.clamp_max(n)
    return (out[0], int(length[0])) if single else (out, length)


def temporal_mask(x: torch.Tensor, keep: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Frame dropout: x * float(keep) per frame, all columns (pos and padding included). Bit-exact.
    keep: bool [T] (or [B, T]); the reference draws it as U[0,1) > 0.5."""
    k = torch.as_tensor(keep, device=x.device)
    if k.shape != x.shape[:-1]:
        raise ValueError(f"keep of shape {tuple(k.shape)} does not fit input {tuple(x.shape)}")
    return torch.mul(x, k.to(x.dtype).unsqueeze(-1), out=out)
