"""The random layer: one class per reference transform, torchvision-v2 style, over `functional`.

Randomness contract (what makes the port checkable against TF): every random value comes from a
`draw(low, high, shape=(), integer=False)` call returning a tensor uniform in [low, high) (`high`
excluded for integers too, like tf.random.uniform). A gated transform (the reference's `mt.Apply`)
first draws one U[0,1) and fires when it is < float32(p); with p <= 0 it draws nothing; with
p=None it is ungated (a bare function, as inside the reference's `mt.OneOf`). The order of the draws
is the reference's, so a `RecordedDraw` of TF's values replays TF's augmentations.
A training sequence makes 7 to 18 draws (7 gates always draw).

A transform is split into planning (`sample` from a `draw`, or `sample_keyed` from counter-based
`KeyedDraws`, see below) and a deterministic `apply` (one sequence) / `run` (a padded batch)."""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from aslfr.data.transforms import functional as F
from aslfr.data.transforms.counter import KeyedDraws, f32
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
#
# Two ways to plan, one way to run a batch. `sample(draw, length)` plans one sequence from a `draw`
# (the reference's draw order: TF replay, torch.Generator); `sample_keyed(draws, lengths, frames)`
# plans a whole batch at once from `KeyedDraws` (one draw site per value, so no order at all).
# `stack` turns per-sequence plans into the batched form {"fire": [B] bool, ...[B] values}, which
# `rows.run_rows` applies to a batch. `apply` is the per-sequence form of a step; `run` applies a
# batched plan to a padded batch, for steps after pad/resize.

def _stack(params: List[Params], device) -> Dict[str, Any]:
    """Per-sequence params (None: gate not fired) -> the batched form, non-fired entries zero."""
    fire = torch.tensor([p is not None for p in params], device=device)
    first = next((p for p in params if p is not None), None)
    out: Dict[str, Any] = {"fire": fire}
    if first is None:
        out["none"] = True  # known on the host: `run` skips the step
    for k in first or {}:
        ref = torch.as_tensor(first[k])
        out[k] = torch.stack([torch.as_tensor(p[k]) if p is not None else torch.zeros_like(ref)
                              for p in params]).to(device)
    return out


def _gates(params: Dict[str, Any], eager: bool) -> Optional[bool]:
    """With eager: True (all fired), False (none fired) or None (some); without: False for a
    stacked plan in which no sequence fired, else None."""
    if params.get("none"):
        return False
    if not eager:
        return None
    f = params["fire"].tolist()
    return True if all(f) else False if not any(f) else None


class Transform:
    """Base: gate handling and planning.

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

    def gate_keyed(self, draws: KeyedDraws) -> torch.Tensor:
        """[B] bool at site 0, as `gate`."""
        n = draws.keys.shape[0]
        if self.p is None or self.p <= 0:
            return torch.full((n,), self.p is None, dtype=torch.bool, device=draws.device)
        return draws.uniform(0) < f32(self.p)

    def sample_keyed(self, draws: KeyedDraws, lengths: torch.Tensor, frames: int) -> Dict[str, Any]:
        """The batched plan of B sequences of `lengths` (padded to `frames`); params at sites 1, 2, ..."""
        return {"fire": self.gate_keyed(draws), **self.params_keyed(draws, lengths, frames)}

    def params_keyed(self, draws: KeyedDraws, lengths: torch.Tensor, frames: int) -> Dict[str, Any]:
        return {}

    def stack(self, params: List[Params], device) -> Dict[str, Any]:
        return _stack(params, device)

    def out_length(self, length: int, params: Params) -> int:
        """Frames in the tensor after this step."""
        return length

    def valid_length(self, length: int, params: Params) -> int:
        """Non-padding frames after this step (differs from out_length only when padding)."""
        return self.out_length(length, params)

    def next_lengths(self, lengths: torch.Tensor, params: Dict[str, Any]) -> torch.Tensor:
        """Batched `valid_length`."""
        return lengths

    def next_frames(self, frames: int) -> int:
        """The padded time axis after this step, known without reading any value (a bound)."""
        return frames

    def apply(self, x: torch.Tensor, params: Dict[str, Any], lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        raise NotImplementedError

    def run(self, x: torch.Tensor, lengths: torch.Tensor, params: Dict[str, Any], eager: bool = False,
            out: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Apply a batched plan to a padded batch [B, T, C], a step after pad/resize in
        `rows.run_rows`; returns (x, lengths). eager: may read the gates on the host to skip work
        (else nothing is read back). `out`: the batch's own output tensor, or None."""
        raise NotImplementedError(f"{type(self).__name__} has no batched form after pad/resize")

    def __call__(self, x: torch.Tensor, draw: Optional[Draw] = None) -> torch.Tensor:
        """One sequence [T, C]: sample, then apply (a batch goes through `rows.run_rows`)."""
        p = self.sample(draw if draw is not None else TorchDraw(), x.shape[-2])
        return x if p is None else self.apply(x, p)

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

    def params_keyed(self, draws, lengths, frames):
        return {"factor": draws.between(1, *self.range)}

    def apply(self, x, params, lengths=None):
        return F.scale(x, params["factor"])

    def _extra_repr(self):
        return f"range={self.range}"


def _with_cos_sin(params: Dict[str, Any], folded: bool) -> Dict[str, Any]:
    c, s = F.rotation_cos_sin(params["degrees"], params["degrees"].device, folded)
    return {**params, "cos": c, "sin": s}


class RandomRotate(Transform):
    """Rotation about (0.5, 0.5) by U[low, high) degrees. Reference p 0.75, [-15, 15).
    folded: radians rounded as a direct tf.function call does (see functional.radians)."""

    def __init__(self, p: Optional[float] = 0.75, degrees: Tuple[float, float] = (-15.0, 15.0), folded: bool = False):
        self.p, self.degrees, self.folded = p, tuple(degrees), folded

    def params(self, draw, length):
        return {"degrees": draw(*self.degrees)}

    def params_keyed(self, draws, lengths, frames):
        return _with_cos_sin({"degrees": draws.between(1, *self.degrees)}, self.folded)

    def stack(self, params, device):
        out = _stack(params, device)
        return out if out.get("none") else _with_cos_sin(out, self.folded)

    def apply(self, x, params, lengths=None):
        if "cos" in params:
            return F.rotate_cos_sin(x, params["cos"], params["sin"])
        return F.rotate(x, params["degrees"], self.folded)

    def _extra_repr(self):
        return f"degrees={self.degrees}"


class RandomShift(Transform):
    """Independent shifts of x, y, z, drawn in that order (shift_method 1). Reference p 0.75, [-0.05, 0.05)."""

    def __init__(self, p: Optional[float] = 0.75, range: Tuple[float, float] = (-0.05, 0.05)):
        self.p, self.range = p, tuple(range)

    def params(self, draw, length):
        return {"dx": draw(*self.range), "dy": draw(*self.range), "dz": draw(*self.range)}

    def params_keyed(self, draws, lengths, frames):
        return {f"d{a}": draws.between(i + 1, *self.range) for i, a in enumerate("xyz")}

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

    def _bounds(self) -> List[torch.Tensor]:
        n = len(self.transforms)
        return [_f32((i + 1) * self.p / n) for i in range(n)]

    def sample(self, draw, length):
        if self.p <= 0:
            return None
        u = draw(0.0, 1.0)
        return {"sub": [t.sample(draw, length) if bool(u <= b) else None
                        for b, t in zip(self._bounds(), self.transforms)]}

    def sample_keyed(self, draws, lengths, frames):
        if self.p <= 0:  # draws nothing, runs nothing
            return {"fire": self.gate_keyed(draws), "sub": [{"none": True} for _ in self.transforms]}
        u, sub = draws.uniform(0), []
        for i, (b, t) in enumerate(zip(self._bounds(), self.transforms)):
            p = t.sample_keyed(draws.at(i + 1), lengths, frames)
            p["fire"] = p["fire"] & (u <= float(b))
            sub.append(p)
        return {"fire": self.gate_keyed(draws), "sub": sub}

    def gate_keyed(self, draws):
        return torch.full((draws.keys.shape[0],), self.p > 0, dtype=torch.bool, device=draws.device)

    def stack(self, params, device):
        fire = torch.tensor([p is not None for p in params], device=device)
        return {"fire": fire, "sub": [t.stack([None if p is None else p["sub"][i] for p in params], device)
                                      for i, t in enumerate(self.transforms)]}

    def apply(self, x, params, lengths=None):
        for t, p in zip(self.transforms, params["sub"]):
            if p is not None:
                x = t.apply(x, p, lengths)
        return x



class RandomTemporalSeqMask(Transform):
    """A span of int(T * U[0.1, 0.2)) frames starting at randint(0, clip(T - size, 1, T)) becomes
    NaN. Reference temporal_seq_mask_rate 0.5. Nothing is masked when T * frac < 1."""

    def __init__(self, p: Optional[float] = 0.5, frac: Tuple[float, float] = (0.1, 0.2)):
        self.p, self.frac = p, tuple(frac)

    def params(self, draw, length):
        size = F.seq_mask_size(length, draw(*self.frac))
        start = draw(0, F.seq_mask_offset_high(length, size), integer=True)
        return {"start": start, "size": torch.tensor(size)}

    def params_keyed(self, draws, lengths, frames):
        size = (lengths.to(torch.float32) * draws.between(1, *self.frac)).to(torch.int64)  # seq_mask_size
        high = torch.minimum((lengths - size).clamp_min(1), lengths)  # seq_mask_offset_high
        return {"start": draws.integers(2, high), "size": size}

    def apply(self, x, params, lengths=None):
        return F.temporal_seq_mask(x, params["start"], params["size"])

    def _extra_repr(self):
        return f"frac={self.frac}"


class ConcatNormalized(Transform):
    """[raw | (raw - means) / stds] per frame: 384 -> 768 columns (norm_frames + concat_frames).
    With inv_stds: (raw - means) * inv_stds, the folded form of a direct tf.function call.
    The stats are checked where they are first given on the CPU, never on a device (a host read)."""

    def __init__(self, means, stds, inv_stds=None):
        self.means = torch.as_tensor(means, dtype=torch.float32)
        self.stds = torch.as_tensor(stds, dtype=torch.float32)
        self.inv_stds = None if inv_stds is None else torch.as_tensor(inv_stds, dtype=torch.float32)
        if self.means.device.type == "cpu" and self.stds.device.type == "cpu":
            check_stats(self.means, self.stds)  # every reference entry point builds this
        if self.inv_stds is not None and self.inv_stds.device.type == "cpu":
            checked("inv_stds", self.inv_stds, positive=True)
        self._on: Dict[Any, tuple] = {}

    def stats_on(self, device) -> tuple:
        """(means, stds, inv_stds) on `device`, moved there once."""
        if device not in self._on:
            self._on[device] = tuple(None if t is None else t.to(device) for t in (self.means, self.stds, self.inv_stds))
        return self._on[device]

    def apply(self, x, params, lengths=None):
        return F.concat_normalized(x, F.normalize(x, *self.stats_on(x.device)))


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

    def params_keyed(self, draws, lengths, frames):
        size = (draws.between(1, *self.rate) * lengths.to(torch.float32)).to(torch.int64).clamp_min(1)
        bilinear = draws.uniform(2) < f32(self.bilinear_p)
        bicubic = draws.uniform(3) < f32(self.bicubic_p)
        code = torch.where(bilinear, 0, torch.where(bicubic, 1, 2))  # index in F.METHODS
        return {"size": size, "method": code}

    def stack(self, params, device):
        codes = [{**p, "method": torch.tensor(F.METHODS.index(p["method"]))} if p is not None else None
                 for p in params]
        return _stack(codes, device)

    def out_length(self, length, params):
        return length if params is None else int(params["size"])

    def next_lengths(self, lengths, params):
        return torch.where(params["fire"], params["size"], lengths)

    def next_frames(self, frames):
        return max(frames, int(self.rate[1] * frames) + 1)  # size = int(rate * T) < rate_high * T

    def apply(self, x, params, lengths=None):
        m = params["method"]
        method = m if isinstance(m, str) else F.METHODS[int(m)]
        return F.resample(x, params["size"], method, lengths)

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

    def next_lengths(self, lengths, params):
        return lengths.clamp_max(self.n)

    def next_frames(self, frames):
        return self.n

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

    def params_keyed(self, draws, lengths, frames):
        u = draws.uniform(2, frames)  # element t: frame t
        prob = draws.between(1, *self.prob_range).unsqueeze(1).to(u.device) if self.prob_range else f32(self.prob)
        return {"keep": u > prob}

    def apply(self, x, params, lengths=None):
        return F.temporal_mask(x, params["keep"])

    def run(self, x, lengths, params, eager=False, out=None):
        if _gates(params, eager) is False:
            return x, lengths
        keep = params["keep"][:, : x.shape[1]] | ~params["fire"].unsqueeze(1)  # x * 1 is x
        if eager and x is out:  # only the dropped frames (x * 0) before each length: padding is 0
            rows = (~keep & (torch.arange(x.shape[1], device=x.device) < lengths.unsqueeze(1))).flatten().nonzero().flatten()
            flat = x.view(-1, x.shape[-1])
            flat.index_copy_(0, rows, flat.index_select(0, rows).mul_(0.0))
            return x, lengths
        return F.temporal_mask(x, keep, out if out is not None and out.shape == x.shape else None), lengths


class Compose(Transform):
    """Transforms in order. `sample` plans every step of one sequence (consuming its draws in the
    reference order) before anything is computed; `sample_keyed` plans a batch, transform i drawing
    at site i; `rows.run_rows` runs either plan (`stack`ed) on a batch."""

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

    def sample_keyed(self, draws, lengths, frames):
        """{"plan": [per step], "length": [B] final non-padding frames}."""
        plan, draws = [], draws.prefetch(len(self.transforms), 8)  # every transform draws at sites < 8
        for i, t in enumerate(self.transforms):
            p = t.sample_keyed(draws.at(i), lengths, frames)
            plan.append(p)
            lengths, frames = t.next_lengths(lengths, p), t.next_frames(frames)
        return {"plan": plan, "length": lengths}

    def stack(self, params, device):
        """Per-sequence plans (from `sample`) -> one batched plan."""
        return {"plan": [t.stack([p["plan"][i] for p in params], device) for i, t in enumerate(self.transforms)]}

    def out_length(self, length, params):
        return params["frames"]

    def valid_length(self, length, params):
        return params["length"]

    def apply(self, x, params, lengths=None):
        for t, p in zip(self.transforms, params["plan"]):
            if p is not None:
                x = t.apply(x, p, lengths)
        return x

    def __repr__(self):
        inner = "".join(f"\n  {t!r}," for t in self.transforms)
        return f"Compose([{inner}\n])"
