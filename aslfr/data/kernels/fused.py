"""The reference's training and inference input as two numba kernels over a batch's frames (each
record's [T, 384] read where it lies: a decoded record, or packed rows): every step of `transforms.rows` (flip, scale, rotate, shift, sequence mask, raw +
normalized + NaN -> 0 + pos, resample, pad or resize, temporal mask) fused, each output row computed
once and written once into a batch the caller owns (a worker's shared ring, a reused buffer).

Why: the torch path runs ~300 small ops a batch, each a pass over memory; here a record's input rows
go once through the cache into a scratch of its features, and each output row is made from its taps.
The float32 operations are the torch path's, in its order (no fast-math, so no FMA contraction;
rotation keeps its float64 emulation of TF's FMA), so the bits are the same on the CPU."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
import torch
from numba import carray, types
from numba.extending import intrinsic

from aslfr.data.kernels import draws as D
from aslfr.data.kernels import jit
from aslfr.data.transforms import augment as A
from aslfr.data.transforms import functional as F

WIDTH = 2 * F.N_COLS + 1
_FLIP = np.array(F.FLIP_PERM, dtype=np.int64)
_TABLE = F._bicubic_table().numpy()
_F0, _HALF, _ONE = np.float32(0.0), np.float32(0.5), np.float32(1.0)
_THOUSAND, _MILLI, _K1024 = np.float32(1000.0), np.float32(F._MILLI), np.float32(1024.0)
_RENORM_MIN = np.float32(1000.0 * float(torch.finfo(torch.float32).tiny))
INFERENCE = (A.ConcatNormalized, A.NanToZero, A.AddPos, A.PadOrResize)


# ---------------------------------------------------------------------------------------------
# one input row -> its 769 features


@jit
def _augment(src, dst, ints, floats, flip):
    """dst[:384] = the frame-wise augmentations of one raw row (points x, y, z), per the plan: one
    pass per step over the row in cache (the scale's vectorizes), as functional computes each."""
    n = F.N_POINTS
    if ints[D.I_FLIP]:  # 1 - x, then the L/R point swap
        for p in range(n):
            q = flip[p]
            dst[3 * p], dst[3 * p + 1], dst[3 * p + 2] = _ONE - src[3 * q], src[3 * q + 1], src[3 * q + 2]
    else:
        for c in range(3 * n):
            dst[c] = src[c]
    if ints[D.I_SCALE]:
        f = floats[D.F_FACTOR]
        for c in range(3 * n):
            dst[c] = dst[c] * f
    if ints[D.I_ROTATE]:  # fma(y, -s, x c) and fma(y, c, x s) via double, as functional.rotate_cos_sin
        c, s = floats[D.F_COS], floats[D.F_SIN]
        c64, ms64 = np.float64(c), np.float64(-s)
        for p in range(n):
            px, py = dst[3 * p] - _HALF, dst[3 * p + 1] - _HALF
            py64 = np.float64(py)
            dst[3 * p] = np.float32(np.float64(px * c) + py64 * ms64) + _HALF
            dst[3 * p + 1] = np.float32(np.float64(px * s) + py64 * c64) + _HALF
            dst[3 * p + 2] = (dst[3 * p + 2] - _HALF) + _HALF
    if ints[D.I_SHIFT]:
        dx, dy, dz = floats[D.F_DX], floats[D.F_DY], floats[D.F_DZ]
        for p in range(n):
            dst[3 * p], dst[3 * p + 1], dst[3 * p + 2] = dst[3 * p] + dx, dst[3 * p + 1] + dy, dst[3 * p + 2] + dz


@jit
def _features(src, dst, t, means, norm, inverse, folded):
    """dst = [raw | (raw - means) / stds (or * inv_stds)] with NaN -> 0, then t / 1000. src may be
    dst itself (the augmented raw row): the normalized half is made first. One loop per half, with
    no branch inside: 2.5x faster than one loop."""
    n = len(means)
    normed = dst[n:2 * n]
    if inverse:
        for c in range(n):
            w = (src[c] - means[c]) * norm[c]
            normed[c] = _F0 if w != w else w
    else:
        for c in range(n):
            w = (src[c] - means[c]) / norm[c]
            normed[c] = _F0 if w != w else w
    for c in range(n):
        v = src[c]
        dst[c] = _F0 if v != v else v
    dst[2 * n] = np.float32(t) * _MILLI if folded else np.float32(t) / _THOUSAND


@jit
def _masked_row(dst, t, folded):
    """A frame of the sequence mask: NaN everywhere, so 0 after NaN -> 0; its position stays."""
    n = len(dst) - 1
    for c in range(n):
        dst[c] = _F0
    dst[n] = np.float32(t) * _MILLI if folded else np.float32(t) / _THOUSAND


# ---------------------------------------------------------------------------------------------
# resize taps (tf.image.resize, half-pixel centres, as functional._resample_taps)


@jit
def _bilinear_taps(o, scale, last):
    src = (np.float32(o) + _HALF) * scale - _HALF
    fl = np.floor(src)
    lo = min(max(np.int64(fl), 0), last)
    hi = min(np.int64(np.ceil(src)), last)
    return lo, hi, src - fl


@jit
def _nearest_tap(o, scale, last):
    return max(min(np.int64(np.floor((np.float32(o) + _HALF) * scale)), last), 0)


@jit
def _bicubic_taps(o, scale, last, table, idx, w):
    """idx [4] and w [4]: TF's Keys-cubic taps, zero weight outside the sequence, renormalized."""
    src = (np.float32(o) + _HALF) * scale - _HALF
    fl = np.floor(src)
    loc = np.int64(fl)
    off = np.int64(np.rint((src - fl) * _K1024))
    w[0], w[1], w[2], w[3] = table[off, 1], table[off, 0], table[1024 - off, 0], table[1024 - off, 1]
    for k in range(4):
        j = loc + k - 1
        idx[k] = min(max(j, 0), last)
        if idx[k] != j:
            w[k] = _F0
    total = ((w[0] + w[1]) + w[2]) + w[3]
    if abs(total) >= _RENORM_MIN:
        inv = _ONE / total
        for k in range(4):
            w[k] = w[k] * inv


@jit
def _resampled_row(feat, length, size, method, j, table, idx, w, dst):
    """Row j of the features [length, C] resampled to `size` rows by method (0 bilinear, 1 bicubic,
    2 nearest, -1 none: row j itself), into dst."""
    scale = np.float32(length) / np.float32(size)
    last = length - 1
    if method < 0 or method == 2:
        src = feat[j if method < 0 else _nearest_tap(j, scale, last)]
        for c in range(len(dst)):
            dst[c] = src[c]
    elif method == 0:
        lo, hi, t = _bilinear_taps(j, scale, last)
        a, b = feat[lo], feat[hi]
        for c in range(len(dst)):
            dst[c] = a[c] + (b[c] - a[c]) * t
    else:
        _bicubic_taps(j, scale, last, table, idx, w)
        r0, r1, r2, r3 = feat[idx[0]], feat[idx[1]], feat[idx[2]], feat[idx[3]]
        w0, w1, w2, w3 = w[0], w[1], w[2], w[3]
        for c in range(len(dst)):
            dst[c] = ((r0[c] * w0 + r1[c] * w1) + r2[c] * w2) + r3[c] * w3


@jit
def _zero(rows, start):
    """rows[start:] = 0 (the padding)."""
    for o in range(start, rows.shape[0]):
        row = rows[o]
        for c in range(rows.shape[1]):
            row[c] = _F0


@jit
def _times_zero(row):
    """A frame dropped by the temporal mask: x * 0, as torch (so -0 stays -0, inf becomes NaN)."""
    for c in range(len(row)):
        row[c] = row[c] * _F0


@jit
def _to_slot(feat, length, size, method, out, table, drop, dropping):
    """The record's features [length, C] resampled to `size` rows (method as `_resampled_row`),
    then zero-padded, or bilinearly resized when longer, to out [n, C]. dropping: rows o with
    drop[o] become row * 0 (the temporal mask), padding excepted (already 0)."""
    n, width = out.shape
    idx = np.empty(4, np.int64)
    w = np.empty(4, np.float32)
    a = np.empty(width, np.float32)
    b = np.empty(width, np.float32)
    if size <= n:
        for o in range(size):
            _resampled_row(feat, length, size, method, o, table, idx, w, out[o])
            if dropping and drop[o]:
                _times_zero(out[o])
        _zero(out, size)
        return
    scale = np.float32(size) / np.float32(n)
    for o in range(n):
        lo, hi, t = _bilinear_taps(o, scale, size - 1)
        _resampled_row(feat, length, size, method, lo, table, idx, w, a)
        _resampled_row(feat, length, size, method, hi, table, idx, w, b)
        row = out[o]
        for c in range(width):
            row[c] = a[c] + (b[c] - a[c]) * t
        if dropping and drop[o]:
            _times_zero(row)


# ---------------------------------------------------------------------------------------------
# the two kernels


@intrinsic
def _float32_pointer(typingctx, address):
    """An int64 address as a float32 pointer."""
    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(signature.return_type))
    return types.CPointer(types.float32)(types.int64), codegen


@jit
def _frames_at(address, length):
    """A record's frames [length, 384] float32 at `address` (where the caller holds them): the
    kernels read each record where it lies, with no copy into one packed array first."""
    return carray(_float32_pointer(address), (length, F.N_COLS))


@jit
def _longest(lengths):
    """max(lengths, 1), by a loop: numpy's max costs most of a second to compile."""
    m = 1
    for v in lengths:
        m = max(m, v)
    return m


@jit
def inference_kernel(addrs, lengths, means, norm, inverse, folded, table, out, out_lengths):
    """out [B, n, 769] and out_lengths [B] = the inference input of the records' frames (record b:
    [lengths[b], 384] float32 at address addrs[b])."""
    n = out.shape[1]
    scratch = np.empty((_longest(lengths), out.shape[2]), np.float32)
    drop = np.zeros(n, np.bool_)
    for b in range(len(lengths)):
        x, length = _frames_at(addrs[b], lengths[b]), lengths[b]
        slot = out[b]
        feat = slot if length <= n else scratch  # short records: features straight into their slot
        for t in range(length):
            _features(x[t], feat[t], t, means, norm, inverse, folded)
        if length <= n:
            _zero(slot, length)
        else:
            _to_slot(feat, length, length, -1, slot, table, drop, False)
        out_lengths[b] = min(length, n)


@jit
def _training_record(x, length, ints, floats, drop, means, norm, inverse, folded, flip, table, scratch, slot):
    """One record's training input into its slot [n, 769], by its plan (`draws.plan_record`; drop:
    the frames the temporal mask zeroes when it fires). Returns its non-padding frames."""
    m0, m1 = ints[D.I_MASK_START], ints[D.I_MASK_START] + ints[D.I_MASK_SIZE]
    for t in range(length):
        row = scratch[t]
        if m0 <= t < m1:
            _masked_row(row, t, folded)
        else:
            _augment(x[t], row, ints, floats, flip)
            _features(row, row, t, means, norm, inverse, folded)
    resampled = ints[D.I_RESAMPLE] != 0
    size = ints[D.I_SIZE] if resampled else length
    _to_slot(scratch, length, size, ints[D.I_METHOD] if resampled else -1, slot, table, drop, ints[D.I_DROP] != 0)
    return min(size, slot.shape[0])


@jit
def training_kernel(addrs, lengths, keys, means, norm, inverse, folded, cfg, sites, rotate_folded, flip, table, out,
                    out_lengths):
    """out [B, n, 769] and out_lengths [B] = the training input of the records' frames (as
    `inference_kernel`), record b augmented by the plan its key draws (`draws.plan_record`)."""
    n = out.shape[1]
    scratch = np.empty((_longest(lengths), out.shape[2]), np.float32)
    ints = np.empty(D.N_INTS, np.int64)
    floats = np.empty(D.N_FLOATS, np.float32)
    drop = np.empty(n, np.bool_)
    for b in range(len(lengths)):
        h = D.plan_record(keys[b], lengths[b], cfg, sites, rotate_folded, ints, floats)
        if ints[D.I_DROP]:
            for t in range(n):
                drop[t] = not (D.element_uniform(h, t) > cfg[D.DROP_PROB])
        out_lengths[b] = _training_record(_frames_at(addrs[b], lengths[b]), lengths[b], ints, floats, drop, means,
                                          norm, inverse, folded, flip, table, scratch, out[b])


@jit
def planned_kernel(addrs, lengths, ints, floats, drop, means, norm, inverse, folded, flip, table, out, out_lengths):
    """`training_kernel` with the plan given: ints [B, N_INTS], floats [B, N_FLOATS], drop [B, n]
    (e.g. TF's recorded draws, through `plan_arrays`)."""
    scratch = np.empty((_longest(lengths), out.shape[2]), np.float32)
    for b in range(len(lengths)):
        out_lengths[b] = _training_record(_frames_at(addrs[b], lengths[b]), lengths[b], ints[b], floats[b], drop[b],
                                          means, norm, inverse, folded, flip, table, scratch, out[b])


# ---------------------------------------------------------------------------------------------
# the Python side


class FusedInput:
    """The fused kernel of a `Compose` of the reference's training or inference structure
    (`reference.training_transforms` / `inference_transforms`, any probabilities, ranges, stats and
    rounding); `of(pipe)` is None for any other pipeline (the torch path runs it)."""

    def __init__(self, pipe: A.Compose, train: bool, n: int, plan):
        concat = pipe.transforms[-6 if train else 0]
        means, stds, inv = concat.stats_on(torch.device("cpu"))
        self.train, self.n = train, n
        self.means = np.ascontiguousarray(means.numpy(), np.float32)
        self.inverse = inv is not None
        self.norm = np.ascontiguousarray((inv if self.inverse else stds).numpy(), np.float32)
        self.folded = bool(pipe.transforms[-4 if train else 2].folded)
        self.cfg, self.sites, self.rotate_folded = plan if plan is not None else (None, None, False)

    @classmethod
    def of(cls, pipe: A.Compose) -> Optional["FusedInput"]:
        kinds = tuple(type(t) for t in pipe.transforms)
        if kinds == INFERENCE:
            return cls(pipe, False, pipe.transforms[-1].n, None)
        plan = D.training_plan_constants(pipe)
        return None if plan is None else cls(pipe, True, pipe.transforms[-2].n, plan)

    def warm(self) -> None:
        """Compile the kernel (or load it from the cache) now, e.g. in a DataLoader's parent process
        before its workers fork, so that no worker compiles."""
        out = np.empty((1, self.n, WIDTH), np.float32)
        self(np.zeros((2, F.N_COLS), np.float32), np.array([2]), np.array([0]), out)
        self.lengths(np.array([0]), np.array([2]))

    def lengths(self, keys: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Each record's non-padding frames in the output (what `__call__` also returns)."""
        lengths = np.ascontiguousarray(lengths, np.int64)
        if not self.train:
            return np.minimum(lengths, self.n)
        out = np.empty(len(lengths), np.int64)
        D.final_lengths(np.ascontiguousarray(keys, np.int64), lengths, self.cfg, self.sites, self.n, out)
        return out

    def plan(self, keys: np.ndarray, lengths: np.ndarray):
        """The training plans the kernel draws for these keys: (ints [B, N_INTS], floats
        [B, N_FLOATS], keep [B, n]), as `plan_arrays` lays out `Compose.sample_keyed`'s."""
        b = len(keys)
        ints, floats = np.zeros((b, D.N_INTS), np.int64), np.zeros((b, D.N_FLOATS), np.float32)
        keep = np.empty((b, self.n), np.bool_)
        D.plan_batch(np.ascontiguousarray(keys, np.int64), np.ascontiguousarray(lengths, np.int64), self.cfg,
                     self.sites, self.rotate_folded, self.n, ints, floats, keep)
        return ints, floats, keep

    def __call__(self, frames: Frames, lengths, keys: Optional[np.ndarray], out: np.ndarray) -> np.ndarray:
        """The records' frames (packed [sum(lengths), 384], or one [T, 384] array each) and their
        lengths [B] (keys [B] for training) -> out [B, n, 769] float32, written in place; returns
        the non-padding frames of each."""
        held, addrs, lengths = self._checked(frames, lengths, out)
        out_lengths = np.empty(len(lengths), np.int64)
        if self.train:
            keys = np.ascontiguousarray(keys, np.int64)
            training_kernel(addrs, lengths, keys, self.means, self.norm, self.inverse, self.folded, self.cfg,
                            self.sites, self.rotate_folded, _FLIP, _TABLE, out, out_lengths)
        else:
            inference_kernel(addrs, lengths, self.means, self.norm, self.inverse, self.folded, _TABLE, out,
                             out_lengths)
        del held  # the frames the addresses point into: alive until the kernel returned
        return out_lengths

    def planned(self, frames: Frames, lengths, plan, out: np.ndarray) -> np.ndarray:
        """`__call__` (training) by a batched torch plan (`Compose.stack` of `sample`s, e.g. TF's
        recorded draws, or `sample_keyed`) in place of the keys' draws."""
        held, addrs, lengths = self._checked(frames, lengths, out)
        ints, floats, drop = plan_arrays(plan, self.n)
        out_lengths = np.empty(len(lengths), np.int64)
        planned_kernel(addrs, lengths, ints, floats, drop, self.means, self.norm, self.inverse, self.folded, _FLIP,
                       _TABLE, out, out_lengths)
        del held
        return out_lengths

    def _checked(self, frames: Frames, lengths, out):
        """(the float32 C-contiguous frames, each record's address in them, lengths as int64)."""
        lengths = np.ascontiguousarray(lengths, np.int64)
        if out.shape != (len(lengths), self.n, WIDTH) or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ValueError(f"out must be C-contiguous float32 {(len(lengths), self.n, WIDTH)}, got "
                             f"{out.dtype} {out.shape}")
        if len(lengths) and int(lengths.min()) < 1:
            raise ValueError(f"every record needs frames, got lengths {lengths.tolist()}")
        if isinstance(frames, (np.ndarray, torch.Tensor)):
            held = [_rows(frames)]
            if held[0].shape[0] != int(lengths.sum()):
                raise ValueError(f"{held[0].shape[0]} packed frames for lengths summing to {int(lengths.sum())}")
            addrs = held[0].ctypes.data + (np.cumsum(lengths) - lengths) * held[0].strides[0]
        else:
            held = [_rows(f) for f in frames]
            if [len(f) for f in held] != lengths.tolist():
                raise ValueError(f"frames of lengths {[len(f) for f in held]}, expected {lengths.tolist()}")
            addrs = np.array([f.ctypes.data for f in held], np.int64)
        return held, np.ascontiguousarray(addrs, np.int64), lengths


Frames = Union[np.ndarray, torch.Tensor, Sequence[Union[np.ndarray, torch.Tensor]]]


def _rows(frames) -> np.ndarray:
    """Frames [T, 384] as a C-contiguous float32 array (copied only if they are not one)."""
    x = frames.numpy() if isinstance(frames, torch.Tensor) and frames.dtype == torch.float32 else frames
    x = np.ascontiguousarray(np.asarray(x, np.float32))
    if x.ndim != 2 or x.shape[1] != F.N_COLS:
        raise ValueError(f"frames must be [T, {F.N_COLS}], got shape {x.shape}")
    return x


def plan_arrays(plan, n: int):
    """A batched torch plan of the training structure -> (ints, floats, drop) for `planned_kernel`;
    values of steps that did not fire are kept as drawn (the kernel ignores them), except the
    sequence mask's size (0: nothing masked)."""
    steps = plan["plan"]
    bsz = len(steps[0]["fire"])

    def value(i: int, name: str, dtype):
        v = steps[i].get(name)
        return np.zeros(bsz, dtype) if v is None else v.cpu().numpy().astype(dtype)

    ints, floats = np.zeros((bsz, D.N_INTS), np.int64), np.zeros((bsz, D.N_FLOATS), np.float32)
    for col, i in ((D.I_FLIP, 0), (D.I_SCALE, 1), (D.I_ROTATE, 2), (D.I_SHIFT, 3), (D.I_RESAMPLE, 9), (D.I_DROP, 11)):
        ints[:, col] = value(i, "fire", np.int64)
    ints[:, D.I_MASK_START] = value(5, "start", np.int64)
    ints[:, D.I_MASK_SIZE] = value(5, "size", np.int64) * value(5, "fire", np.int64)
    ints[:, D.I_SIZE], ints[:, D.I_METHOD] = value(9, "size", np.int64), value(9, "method", np.int64)
    floats[:, D.F_FACTOR] = value(1, "factor", np.float32)
    for col, name in ((D.F_COS, "cos"), (D.F_SIN, "sin"), (D.F_DEGREES, "degrees")):
        floats[:, col] = value(2, name, np.float32)
    for col, name in ((D.F_DX, "dx"), (D.F_DY, "dy"), (D.F_DZ, "dz")):
        floats[:, col] = value(3, name, np.float32)
    keep = steps[11].get("keep")
    drop = np.ones((bsz, n), np.bool_) if keep is None else ~keep.cpu().numpy()[:, :n]
    return ints, floats, np.ascontiguousarray(drop)
