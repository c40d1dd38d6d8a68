"""The random layer: one class per reference transform, torchvision-v2 style, over `functional`.

Randomness contract (what makes the port checkable against TF): every random value comes from a
`draw(low, high, shape=(), integer=False)` call returning a tensor uniform in [low, high) (`high`
excluded for integers too, like tf.random.uniform). A gated transform (the reference's `mt.Apply`)
first draws one U[0,1) and fires when it is < float32(p); with p <= 0 it draws nothing; with
p=None it is ungated (a bare function, as inside the reference's `mt.OneOf`). The order of the draws
is the reference's (spec §2.3), so a `RecordedDraw` of TF's values replays TF's augmentations.
A training sequence makes 7 to 18 draws (7 gates always draw; spec §2.3's "6 to 17" is off by one).

A transform is split into `sample(draw, length) -> params | None` (None: gate not fired) and a
deterministic `apply(x, params, lengths)`; `Compose` plans a whole sequence first, which lets the
batched path draw per sequence and then run vectorized ops (`Compose.apply_batch`)."""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from aslfr.data.transforms import functional as F
from aslfr.format.stats import check_stats, checked

Params = Optional[Dict[str, Any]]
Draw = Callable[..., torch.Tensor]


def _f32(v) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float32)


# ---------------------------------------------------------------------------------------------
# draws

class DrawMismatch(RuntimeError):
    """A RecordedDraw got a request that differs from the recorded one, or ran out of values."""


class TorchDraw:
    """Draws from a CPU torch.Generator (None: torch's global RNG, so torch.manual_seed applies and
    successive calls differ): floats as TF computes them, u * (high - low) + low in float32 with
    u ~ U[0,1); integers by randint (high excluded)."""

    def __init__(self, generator: Optional[torch.Generator] = None):
        self.generator = generator

    def __call__(self, low, high, shape: Tuple[int, ...] = (), integer: bool = False) -> torch.Tensor:
        shape = tuple(shape)
        if integer:
            return torch.randint(int(low), int(high), shape, generator=self.generator, dtype=torch.int64)
        u = torch.rand(shape, generator=self.generator, dtype=torch.float32)
        lo, hi = _f32(low), _f32(high)
        return u * (hi - lo) + lo


def _same_number(a, b) -> bool:
    return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-9)


class RecordedDraw:
    """Replays recorded values in order. With `requests` (one (low, high, shape, integer) per value)
    every call is checked against the recorded request, so a port that draws in another order, with
    other ranges, or a different number of times fails loudly instead of silently drifting."""

    def __init__(self, values: Sequence[Any], requests: Optional[Sequence[Tuple[Any, Any, Tuple[int, ...], bool]]] = None):
        if requests is not None and len(requests) != len(values):
            raise ValueError(f"{len(values)} values but {len(requests)} requests")
        self.values = list(values)
        self.requests = None if requests is None else [(lo, hi, tuple(int(s) for s in sh), bool(i))
                                                        for lo, hi, sh, i in requests]
        self.pos = 0

    @property
    def remaining(self) -> int:
        return len(self.values) - self.pos

    def assert_consumed(self) -> None:
        if self.remaining:
            nxt = self.requests[self.pos] if self.requests else None
            raise DrawMismatch(f"{self.remaining} recorded draw(s) left unused after {self.pos}; next recorded request {nxt}")

    def __call__(self, low, high, shape: Tuple[int, ...] = (), integer: bool = False) -> torch.Tensor:
        shape = tuple(int(s) for s in shape)
        req = (low, high, shape, bool(integer))
        if self.pos >= len(self.values):
            raise DrawMismatch(f"ran out of recorded draws after {self.pos}; request {req}")
        if self.requests is not None:
            lo, hi, sh, it = self.requests[self.pos]
            if not (_same_number(lo, low) and _same_number(hi, high) and sh == shape and it == bool(integer)):
                raise DrawMismatch(f"draw {self.pos}: request {req} but recorded {(lo, hi, sh, it)}")
        v = torch.as_tensor(self.values[self.pos], dtype=torch.int64 if integer else torch.float32)
        if tuple(v.shape) != shape:
            if v.numel() != math.prod(shape):
                raise DrawMismatch(f"draw {self.pos}: recorded value of shape {tuple(v.shape)} for request {req}")
            v = v.reshape(shape)
        self.pos += 1
        return v


# ---------------------------------------------------------------------------------------------
# transforms

def _collate(params: List[Dict[str, Any]], device) -> Dict[str, Any]:
    """Per-sequence params -> one dict of stacked tensors ([B] or [B, ...]); strings stay lists."""
    out = {}
    for k in params[0]:
        vals = [p[k] for p in params]
        if isinstance(vals[0], str):
            out[k] = vals
        else:
            out[k] = torch.stack([torch.as_tensor(v) for v in vals]).to(device)
    return out


class Transform:
    """Base: gate handling, planning and the batched apply.

    p: None = no gate (deterministic, or a bare reference function), else mt.Apply semantics."""

    p: Optional[float] = None

    def gate(self, draw: Draw) -> bool:
        if self.p is None:
            return True
        if self.p <= 0:
            return False  # mt.apply returns x without drawing
        return bool(draw(0.0, 1.0) < _f32(self.p))  # compared in float32: 0.8 is 0.800000012

    def sample(self, draw: Draw, length: int) -> Params:
        return self.params(draw, length) if self.gate(draw) else None

    def params(self, draw: Draw, length: int) -> Dict[str, Any]:
        return {}

    def out_length(self, length: int, params: Params) -> int:
        """Frames in the tensor after this step."""
        return length

    def valid_length(self, length: int, params: Params) -> int:
        """Non-padding frames after this step (differs from out_length only when padding)."""
        return self.out_length(length, params)

    def apply(self, x: torch.Tensor, params: Dict[str, Any], lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, x: torch.Tensor, draw: Optional[Draw] = None) -> torch.Tensor:
        """One sequence [T, C]: sample, then apply (a batch goes through `apply_batch`)."""
        p = self.sample(draw if draw is not None else TorchDraw(), x.shape[-2])
        return x if p is None else self.apply(x, p)

    def apply_batch(self, x: torch.Tensor, lengths: torch.Tensor, params: List[Params]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Apply each sequence's params (None: skipped) to a padded batch; returns (x, lengths)."""
        sel = [i for i, p in enumerate(params) if p is not None]
        if not sel:
            return x, lengths
        if len(sel) == len(params):
            return self.apply(x, _collate(params, x.device), lengths), self._lengths(lengths, params)
        idx = torch.tensor(sel, device=x.device)
        part = self.apply(x.index_select(0, idx), _collate([params[i] for i in sel], x.device), lengths[idx])
        if part.shape[1:] != x.shape[1:]:
            raise RuntimeError(f"{type(self).__name__} changes the shape; it must run on every sequence")
        out = x.clone()
        out[idx] = part
        return out, self._lengths(lengths, params)

    def _lengths(self, lengths: torch.Tensor, params: List[Params]) -> torch.Tensor:
        return torch.tensor([self.valid_length(int(n), p) for n, p in zip(lengths.tolist(), params)],
                            dtype=torch.int64, device=lengths.device)

    def _extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        extra = self._extra_repr()
        return f"{type(self).__name__}(p={self.p}{', ' + extra if extra else ''})"


class RandomFlipLR(Transform):
    """Mirror left/right (x <- 1 - x plus the L/R point swap). Reference flip_rate 0.25."""

    def __init__(self, p: Optional[float] = 0.25):
        self.p = p

    def apply(self, x, params, lengths=None):
        return F.flip_lr(x)


class RandomScale(Transform):
    """x, y, z times s ~ U[low, high) about the origin. Reference 0.25 x aug_factor 3 = 0.75, [0.8, 1.2)."""

    def __init__(self, p: Optional[float] = 0.75, range: Tuple[float, float] = (0.8, 1.2)):
        self.p, self.range = p, tuple(range)

    def params(self, draw, length):
        return {"factor": draw(*self.range)}

    def apply(self, x, params, lengths=None):
        return F.scale(x, params["factor"])

    def _extra_repr(self):
        return f"range={self.range}"


class RandomRotate(Transform):
    """Rotation about (0.5, 0.5) by U[low, high) degrees. Reference p 0.75, [-15, 15).
    folded: radians rounded as a direct tf.function call does (see functional.radians)."""

    def __init__(self, p: Optional[float] = 0.75, degrees: Tuple[float, float] = (-15.0, 15.0), folded: bool = False):
        self.p, self.degrees, self.folded = p, tuple(degrees), folded

    def params(self, draw, length):
        return {"degrees": draw(*self.degrees)}

    def apply(self, x, params, lengths=None):
        return F.rotate(x, params["degrees"], self.folded)

    def _extra_repr(self):
        return f"degrees={self.degrees}"


class RandomShift(Transform):
    """Independent shifts of x, y, z, drawn in that order (shift_method 1). Reference p 0.75, [-0.05, 0.05)."""

    def __init__(self, p: Optional[float] = 0.75, range: Tuple[float, float] = (-0.05, 0.05)):
        self.p, self.range = p, tuple(range)

    def params(self, draw, length):
        return {"dx": draw(*self.range), "dy": draw(*self.range), "dz": draw(*self.range)}

    def apply(self, x, params, lengths=None):
        return F.shift(x, params["dx"], params["dy"], params["dz"])

    def _extra_repr(self):
        return f"range={self.range}"


class OneOf(Transform):
    """The reference's mt.OneOf: one U[0,1) draw u, then *every* transform i with
    u <= (i+1) p / n is applied (not just one: a quirk of melt.oneof). p <= 0 draws nothing
    (the final config has affine_rate 0). Its transforms should be ungated (p=None)."""

    def __init__(self, transforms: Sequence[Transform], p: float = 0.0):
        self.transforms, self.p = list(transforms), p

    def sample(self, draw, length):
        if self.p <= 0:
            return None
        u = draw(0.0, 1.0)
        n = len(self.transforms)
        return {"sub": [t.sample(draw, length) if bool(u <= _f32((i + 1) * self.p / n)) else None
                        for i, t in enumerate(self.transforms)]}

    def apply(self, x, params, lengths=None):
        for t, p in zip(self.transforms, params["sub"]):
            if p is not None:
                x = t.apply(x, p, lengths)
        return x

    def apply_batch(self, x, lengths, params):
        for i, t in enumerate(self.transforms):
            x, lengths = t.apply_batch(x, lengths, [None if p is None else p["sub"][i] for p in params])
        return x, lengths


class RandomTemporalSeqMask(Transform):
    """A span of int(T * U[0.1, 0.2)) frames starting at randint(0, clip(T - size, 1, T)) becomes
    NaN. Reference temporal_seq_mask_rate 0.5. Nothing is masked when T * frac < 1."""

    def __init__(self, p: Optional[float] = 0.5, frac: Tuple[float, float] = (0.1, 0.2)):
        self.p, self.frac = p, tuple(frac)

    def params(self, draw, length):
        size = F.seq_mask_size(length, draw(*self.frac))
        start = draw(0, F.seq_mask_offset_high(length, size), integer=True)
        return {"start": start, "size": torch.tensor(size)}

    def apply(self, x, params, lengths=None):
        return F.temporal_seq_mask(x, params["start"], params["size"])

    def _extra_repr(self):
        return f"frac={self.frac}"


class ConcatNormalized(Transform):
    """[raw | (raw - means) / stds] per frame: 384 -> 768 columns (norm_frames + concat_frames).
    With inv_stds: (raw - means) * inv_stds, the folded form of a direct tf.function call."""

    def __init__(self, means, stds, inv_stds=None):
        self.means = torch.as_tensor(means, dtype=torch.float32)
        self.stds = torch.as_tensor(stds, dtype=torch.float32)
        self.inv_stds = None if inv_stds is None else torch.as_tensor(inv_stds, dtype=torch.float32)
        check_stats(self.means.cpu(), self.stds.cpu())  # every reference entry point builds this
        if self.inv_stds is not None:
            checked("inv_stds", self.inv_stds.cpu(), positive=True)

    def apply(self, x, params, lengths=None):
        return F.concat_normalized(x, F.normalize(x, self.means, self.stds, self.inv_stds))


class NanToZero(Transform):
    """NaN -> 0 in both halves."""

    def apply(self, x, params, lengths=None):
        return F.nan_to_zero(x)


class AddPos(Transform):
    """Append t/1000 for the frames as they are now (before resampling, in the reference).
    folded: t * float32(0.001), as a direct tf.function call rounds it."""

    def __init__(self, folded: bool = False):
        self.folded = folded

    def apply(self, x, params, lengths=None):
        return F.add_pos(x, self.folded)


class RandomResample(Transform):
    """Resample time to max(1, int(rate * T)) frames, rate ~ U[0.5, 1.5) (the reference's own default;
    its resample_range flag is never read). Method: u1 < 0.33 -> bilinear, else u2 < 0.5 -> bicubic,
    else nearest (u2 is drawn only when u1 >= 0.33). Reference resample_rate 0.8."""

    def __init__(self, p: Optional[float] = 0.8, rate: Tuple[float, float] = (0.5, 1.5),
                 bilinear_p: float = 0.33, bicubic_p: float = 0.5):
        self.p, self.rate = p, tuple(rate)
        self.bilinear_p, self.bicubic_p = bilinear_p, bicubic_p

    def params(self, draw, length):
        size = F.resample_length(length, draw(*self.rate))
        if bool(draw(0.0, 1.0) < _f32(self.bilinear_p)):
            method = "bilinear"
        else:
            method = "bicubic" if bool(draw(0.0, 1.0) < _f32(self.bicubic_p)) else "nearest"
        return {"size": torch.tensor(size), "method": method}

    def out_length(self, length, params):
        return length if params is None else int(params["size"])

    def apply(self, x, params, lengths=None):
        return F.resample(x, params["size"], params["method"], lengths)

    def apply_batch(self, x, lengths, params):
        """Sequences that do not resample keep their frames; the batch is re-padded to the new max."""
        if all(p is None for p in params):
            return x, lengths
        sizes = [int(n) if p is None else int(p["size"]) for n, p in zip(lengths.tolist(), params)]
        new_len = torch.tensor(sizes, dtype=torch.int64, device=lengths.device)
        out = x.new_zeros(x.shape[0], max(sizes), x.shape[-1])
        keep = [i for i, p in enumerate(params) if p is None]
        if keep:
            t = min(x.shape[1], out.shape[1])
            out[keep, :t] = x[keep, :t]
        sel = [i for i, p in enumerate(params) if p is not None]
        idx = torch.tensor(sel, device=x.device)
        part = F.resample(x.index_select(0, idx), new_len[idx], [params[i]["method"] for i in sel], lengths[idx])
        out[idx, : part.shape[1]] = part
        return out, new_len

    def _extra_repr(self):
        return f"rate={self.rate}"


class PadOrResize(Transform):
    """To n frames: zero-pad, or bilinear downsample when longer (reference pad_frames + trunct 'resize')."""

    def __init__(self, n: int = 320):
        self.n = n

    def out_length(self, length, params):
        return self.n

    def valid_length(self, length, params):
        return min(length, self.n)

    def apply(self, x, params, lengths=None):
        return F.pad_or_resize(x, self.n, lengths)[0]


class RandomTemporalMask(Transform):
    """Each frame (all columns, padding included) is zeroed when U[0,1) <= prob. Reference
    temporal_mask_rate 0.8, prob 0.5; with prob_range set, prob ~ U[prob_range) is drawn first."""

    def __init__(self, p: Optional[float] = 0.8, prob: float = 0.5, prob_range: Optional[Tuple[float, float]] = None):
        self.p, self.prob = p, prob
        self.prob_range = tuple(prob_range) if prob_range else None

    def params(self, draw, length):
        prob = draw(*self.prob_range) if self.prob_range else _f32(self.prob)
        return {"keep": draw(0.0, 1.0, (length,)) > prob}

    def apply(self, x, params, lengths=None):
        return F.temporal_mask(x, params["keep"])


class Compose(Transform):
    """Transforms in order. `sample` plans every step of one sequence (consuming its draws in the
    reference order) before anything is computed, so a batch can be planned per sequence and then
    applied step by step, vectorized (`apply_batch`)."""

    def __init__(self, transforms: Sequence[Transform]):
        self.transforms = list(transforms)

    def sample(self, draw, length):
        plan, valid = [], length
        for t in self.transforms:
            p = t.sample(draw, length)
            plan.append(p)
            valid = t.valid_length(valid, p)
            length = t.out_length(length, p)
        return {"plan": plan, "length": valid, "frames": length}

    def out_length(self, length, params):
        return params["frames"]

    def valid_length(self, length, params):
        return params["length"]

    def apply(self, x, params, lengths=None):
        for t, p in zip(self.transforms, params["plan"]):
            if p is not None:
                x = t.apply(x, p, lengths)
        return x

    def apply_batch(self, x, lengths, params):
        for i, t in enumerate(self.transforms):
            x, lengths = t.apply_batch(x, lengths, [p["plan"][i] for p in params])
        return x, lengths

    def __repr__(self):
        inner = "".join(f"\n  {t!r}," for t in self.transforms)
        return f"Compose([{inner}\n])"
