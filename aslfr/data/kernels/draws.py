"""The counter-based draws of `transforms.counter.KeyedDraws` in numba, and the reference's training
plan drawn from them record by record: the same hashes, the same float32 arithmetic, so the same
values as `Compose.sample_keyed`, computed without the GIL (and without torch's per-op overhead,
which made planning a batch cost more than fusing its frames)."""

from __future__ import annotations

import math

import numpy as np

from aslfr.data.kernels import jit
from aslfr.data.transforms import augment as A
from aslfr.data.transforms.counter import _site

_M32 = np.uint64(0xFFFFFFFF)
_C1, _C2, _K0 = np.uint64(0x85EBCA6B), np.uint64(0xC2B2AE35), np.uint64(0x2545F491)
_S8, _S13, _S16, _S24, _S32 = (np.uint64(s) for s in (8, 13, 16, 24, 32))
_SCALE = np.float32(2.0 ** -24)
_F0, _F1 = np.float32(0.0), np.float32(1.0)

# glibc's cosf/sinf polynomial for |x| < 0.75 (see functional._glibc_cos_sin)
_H = float.fromhex
_C = (1.0, _H("-0x1.ffffffd0c621cp-2"), _H("0x1.55553e1068f19p-5"), _H("-0x1.6c087e89a359dp-10"), _H("0x1.99343027bf8c3p-16"))
_S = (_H("-0x1.555545995a603p-3"), _H("0x1.1107605230bc4p-7"), _H("-0x1.994eb3774cf24p-13"))
_TINY = 2.0 ** -12
_PI = np.float32(math.pi)
_D180 = np.float32(180.0)
_DEG2RAD_FOLDED = np.float32(_PI * (np.float32(1.0) / np.float32(180.0)))

# The plan of one record, as `plan_record` returns it: an int64 row and a float32 row.
I_FLIP, I_SCALE, I_ROTATE, I_SHIFT, I_MASK_START, I_MASK_SIZE, I_RESAMPLE, I_SIZE, I_METHOD, I_DROP = range(10)
N_INTS = 10
F_FACTOR, F_COS, F_SIN, F_DX, F_DY, F_DZ, F_DEGREES = range(7)
N_FLOATS = 7

# cfg: the presets' float32 constants; SITES rows: the draw sites of each random step
(P_FLIP, P_SCALE, SCALE_LO, SCALE_SPAN, P_ROTATE, ROTATE_LO, ROTATE_SPAN, P_SHIFT, SHIFT_LO, SHIFT_SPAN,
 P_MASK, FRAC_LO, FRAC_SPAN, P_RESAMPLE, RATE_LO, RATE_SPAN, P_BILINEAR, P_BICUBIC, P_DROP, DROP_PROB) = range(20)
STEPS = (A.RandomFlipLR, A.RandomScale, A.RandomRotate, A.RandomShift, A.RandomTemporalSeqMask,
         A.RandomResample, A.RandomTemporalMask)
TRAINING = (A.RandomFlipLR, A.RandomScale, A.RandomRotate, A.RandomShift, A.OneOf, A.RandomTemporalSeqMask,
            A.ConcatNormalized, A.NanToZero, A.AddPos, A.RandomResample, A.PadOrResize, A.RandomTemporalMask)


def _f32(v) -> np.float32:
    return np.float32(v)


def _gate(t: A.Transform) -> np.float32:
    """u < this fires the step: an ungated step always (2 > any u), p <= 0 never."""
    return _f32(2.0) if t.p is None else _f32(t.p)


def _range(lo_hi) -> tuple:
    """(low, high - low) in float32, as `KeyedDraws.between` computes them."""
    lo = _f32(lo_hi[0])
    return lo, _f32(_f32(lo_hi[1]) - lo)


def training_plan_constants(pipe: A.Compose):
    """(cfg float32 [20], sites uint64 [7, 4], folded) for a Compose of the reference's training
    structure (`reference.training_transforms`, any probabilities and ranges), else None."""
    ts = pipe.transforms
    if tuple(type(t) for t in ts) != TRAINING or ts[4].p > 0 or ts[11].prob_range is not None:
        return None
    flip, scale, rot, shift, _, mask, _, _, pos, res, _, drop = ts
    cfg = np.array([_gate(flip), _gate(scale), *_range(scale.range), _gate(rot), *_range(rot.degrees),
                    _gate(shift), *_range(shift.range), _gate(mask), *_range(mask.frac), _gate(res),
                    *_range(res.rate), _f32(res.bilinear_p), _f32(res.bicubic_p), _gate(drop), _f32(drop.prob)],
                   dtype=np.float32)
    where = [next(i for i, t in enumerate(ts) if type(t) is s) for s in STEPS]
    sites = np.array([[_site(_site(0, i), s) for s in range(4)] for i in where], dtype=np.uint64)
    return cfg, sites, bool(rot.folded)


@jit
def fmix32(h):
    h = h ^ (h >> _S16)
    h = (h * _C1) & _M32
    h = h ^ (h >> _S13)
    h = (h * _C2) & _M32
    return h ^ (h >> _S16)


@jit
def key_state(key):
    """The 32-bit state of a record's key (`KeyedDraws.state`)."""
    k = np.uint64(key)
    return fmix32(fmix32((k & _M32) ^ _K0) ^ ((k >> _S32) & _M32))


@jit
def uniform(state, site):
    """U[0, 1) at a scalar site (`KeyedDraws.uniform(site)`)."""
    return np.float32(fmix32(state ^ site) >> _S8) * _SCALE


@jit
def element_uniform(hashed, e):
    """U[0, 1) of element e at a site whose hash is `hashed` (`KeyedDraws.uniform(site, n)`)."""
    return np.float32(fmix32(hashed ^ np.uint64(e)) >> _S8) * _SCALE


@jit
def _between(state, site, lo, span):
    return uniform(state, site) * span + lo


@jit
def _integer(state, site, high):
    """floor(bits * high / 2^24), as `KeyedDraws.integers`."""
    return np.int64(((fmix32(state ^ site) >> _S8) * np.uint64(high)) >> _S24)


@jit
def cos_sin(degrees, folded):
    """float32 cos and sin of the reference's float32 radians, as glibc's cosf/sinf give them."""
    rad = degrees * _DEG2RAD_FOLDED if folded else (degrees / _D180) * _PI
    if abs(rad) < _TINY:
        return _F1, rad
    x = np.float64(rad)
    if abs(x) >= 0.75:
        return np.float32(math.cos(x)), np.float32(math.sin(x))
    x2 = x * x
    x3 = x * x2
    s = (x + x3 * _S[0]) + (x3 * x2) * (_S[1] + x2 * _S[2])
    x4 = x2 * x2
    c = ((_C[0] + x2 * _C[1]) + x4 * _C[2]) + (x4 * x2) * (_C[3] + x2 * _C[4])
    return np.float32(c), np.float32(s)


@jit
def plan_record(key, length, cfg, sites, folded, ints, floats):
    """One record's training plan into ints [N_INTS] and floats [N_FLOATS] (`Compose.sample_keyed`).
    Returns the hash of the frame-drop site, from which `element_uniform` gives frame t's draw."""
    state = key_state(key)
    ints[I_MASK_SIZE] = 0
    ints[I_FLIP] = uniform(state, sites[0, 0]) < cfg[P_FLIP]
    ints[I_SCALE] = uniform(state, sites[1, 0]) < cfg[P_SCALE]
    floats[F_FACTOR] = _between(state, sites[1, 1], cfg[SCALE_LO], cfg[SCALE_SPAN])
    ints[I_ROTATE] = uniform(state, sites[2, 0]) < cfg[P_ROTATE]
    deg = _between(state, sites[2, 1], cfg[ROTATE_LO], cfg[ROTATE_SPAN])
    floats[F_DEGREES] = deg
    floats[F_COS], floats[F_SIN] = cos_sin(deg, folded)
    ints[I_SHIFT] = uniform(state, sites[3, 0]) < cfg[P_SHIFT]
    floats[F_DX] = _between(state, sites[3, 1], cfg[SHIFT_LO], cfg[SHIFT_SPAN])
    floats[F_DY] = _between(state, sites[3, 2], cfg[SHIFT_LO], cfg[SHIFT_SPAN])
    floats[F_DZ] = _between(state, sites[3, 3], cfg[SHIFT_LO], cfg[SHIFT_SPAN])
    size = np.int64(np.float32(length) * _between(state, sites[4, 1], cfg[FRAC_LO], cfg[FRAC_SPAN]))
    high = min(max(length - size, 1), length)
    ints[I_MASK_START] = _integer(state, sites[4, 2], high)
    if uniform(state, sites[4, 0]) < cfg[P_MASK]:
        ints[I_MASK_SIZE] = size
    ints[I_RESAMPLE] = uniform(state, sites[5, 0]) < cfg[P_RESAMPLE]
    ints[I_SIZE] = max(np.int64(_between(state, sites[5, 1], cfg[RATE_LO], cfg[RATE_SPAN]) * np.float32(length)), 1)
    if uniform(state, sites[5, 2]) < cfg[P_BILINEAR]:
        ints[I_METHOD] = 0
    elif uniform(state, sites[5, 3]) < cfg[P_BICUBIC]:
        ints[I_METHOD] = 1
    else:
        ints[I_METHOD] = 2
    ints[I_DROP] = uniform(state, sites[6, 0]) < cfg[P_DROP]
    return fmix32(state ^ sites[6, 2])


@jit
def plan_batch(keys, lengths, cfg, sites, folded, n_frames, ints, floats, keep):
    """Every record's plan: ints [B, N_INTS], floats [B, N_FLOATS], keep [B, n_frames] (frame kept
    by the temporal mask's draw, whether or not its gate fired)."""
    for b in range(len(keys)):
        h = plan_record(keys[b], lengths[b], cfg, sites, folded, ints[b], floats[b])
        for t in range(n_frames):
            keep[b, t] = element_uniform(h, t) > cfg[DROP_PROB]


@jit
def final_lengths(keys, lengths, cfg, sites, n_frames, out):
    """Each record's non-padding frames after the training path: min(resampled length, n_frames)."""
    ints = np.empty(N_INTS, np.int64)
    floats = np.empty(N_FLOATS, np.float32)
    for b in range(len(keys)):
        plan_record(keys[b], lengths[b], cfg, sites, False, ints, floats)
        out[b] = min(ints[I_SIZE] if ints[I_RESAMPLE] else lengths[b], n_frames)
