"""Counter-based random draws: each random value of a record's augmentations is a hash of (record
key, draw site, element), computed with integer tensor ops (murmur3's 32-bit finalizer).

So a record's augmentations depend on its key alone (readers derive it from seed, epoch, file and
record): not on the worker, the batch, its order or the device. And a whole batch's draws are a
few vectorized ops on the batch's device, with nothing read back to the host: the batched training
path plans B sequences at the cost of one (a `torch.Generator` would draw them one after another).

Arithmetic stays in int64 below 2^49 (32-bit products are split in 16-bit halves), so CPU and CUDA
give the same bits; uniforms are 24-bit multiples of 2^-24, exact in float32."""

from __future__ import annotations

import numpy as np
import torch

_M32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B1
_SCALE = 2.0 ** -24


def _mul32(a: torch.Tensor, c: int) -> torch.Tensor:
    """(a * c) mod 2^32 for a in [0, 2^32), without int64 overflow."""
    return ((a & 0xFFFF) * c + (((a >> 16) * (c & 0xFFFF)) << 16)) & _M32


def fmix32(h: torch.Tensor) -> torch.Tensor:
    """murmur3's finalizer: a bijection of [0, 2^32) in which every input bit flips each output bit
    with probability ~1/2."""
    h = h ^ (h >> 16)
    h = _mul32(h, 0x85EBCA6B)
    h = h ^ (h >> 13)
    h = _mul32(h, 0xC2B2AE35)
    return h ^ (h >> 16)


def record_key(seed: int, epoch: int, file: int, record: int, repeat: int = 0) -> int:
    """A record's key in [0, 2^63): the only input of its random augmentations. `repeat` > 0: the
    record read again in the same epoch (a rate above 1, a top-up), so augmented anew."""
    entropy = [int(seed), int(epoch), int(file), int(record)] + ([int(repeat)] if repeat else [])
    state = np.random.SeedSequence(entropy).generate_state(2, np.uint64)
    return int(state[0] >> np.uint64(1))


def random_keys(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n keys from a torch.Generator (None: torch's global RNG, so torch.manual_seed applies)."""
    return torch.randint(0, 2 ** 62, (n,), generator=generator, dtype=torch.int64)


def f32(v: float) -> float:
    """v rounded to float32, as a python float: a scalar operand that computes like a float32
    tensor on any device, with no host-to-device copy."""
    return float(np.float32(v))


class KeyedDraws:
    """The draws of B records at one draw site path. `at(i)` descends to a sub-site (a transform of
    a Compose, a branch of a OneOf); `uniform(site)` gives [B] values, `uniform(site, n)` [B, n],
    one per element (frame) 0..n-1, in [0, 1) as float32; `integers(site, high)` gives [B] ints in
    [0, high) (high a [B] tensor). `prefetch` hashes many scalar sites in one go: planning a batch
    then costs a fixed few dozen ops, whatever the number of sites or records."""

    def __init__(self, keys, state: torch.Tensor | None = None, path: int = 0, table=None, elements_on=None):
        keys = torch.as_tensor(keys, dtype=torch.int64)
        if keys.dim() != 1:
            raise ValueError(f"keys must be one int64 per record, got shape {tuple(keys.shape)}")
        self.keys, self.path, self.table = keys, path, table
        self.elements_on = elements_on  # where per-element draws are hashed (default: with the keys)
        if state is None:
            state = fmix32(fmix32((keys & _M32) ^ 0x2545F491) ^ ((keys >> 32) & _M32))
        self.state = state

    @property
    def device(self) -> torch.device:
        return self.keys.device

    def at(self, site: int) -> "KeyedDraws":
        return KeyedDraws(self.keys, self.state, _site(self.path, site), self.table, self.elements_on)

    def prefetch(self, subs: int, sites: int) -> "KeyedDraws":
        """These draws with the scalar sites 0..sites-1 of each sub-site 0..subs-1 hashed at once."""
        consts = [_site(_site(self.path, i), s) for i in range(subs) for s in range(sites)]
        bits = fmix32(self.state.unsqueeze(1) ^ _constants(tuple(consts), self.device)) >> 8
        return KeyedDraws(self.keys, self.state, self.path, ({c: k for k, c in enumerate(consts)}, bits), self.elements_on)

    def _bits(self, site: int, n: int | None) -> torch.Tensor:
        c = _site(self.path, site)
        if n is None and self.table is not None and c in self.table[0]:
            return self.table[1][:, self.table[0][c]]
        h = fmix32(self.state ^ c)
        if n is None:
            return h >> 8
        if self.elements_on is not None:
            h = h.to(self.elements_on, non_blocking=True)
        e = torch.arange(n, dtype=torch.int64, device=h.device)
        return fmix32(h.unsqueeze(1) ^ e) >> 8

    def uniform(self, site: int, n: int | None = None) -> torch.Tensor:
        """[B] (or, with n, [B, n] on `elements_on`) uniforms in [0, 1)."""
        return self._bits(site, n).to(torch.float32) * _SCALE

    def between(self, site: int, low: float, high: float, n: int | None = None) -> torch.Tensor:
        """U[low, high) as TF computes it: u * (high - low) + low in float32 (as `TorchDraw`)."""
        lo = f32(low)
        return self.uniform(site, n) * f32(f32(high) - lo) + lo

    def integers(self, site: int, high: torch.Tensor) -> torch.Tensor:
        """[B] integers uniform in [0, high) (high >= 1), exactly: floor(bits * high / 2^24)."""
        return (self._bits(site, None) * high.to(torch.int64)) >> 24


_CONSTANTS: dict = {}


def _constants(consts: tuple, device) -> torch.Tensor:
    """The site constants as a tensor on `device`, made once (no copy per batch)."""
    key = (consts, str(device))
    if key not in _CONSTANTS:
        _CONSTANTS[key] = torch.tensor(consts, dtype=torch.int64, device=device)
    return _CONSTANTS[key]


def _site(path: int, site: int) -> int:
    """A draw site's 32-bit constant: a hash of its path (python ints, no tensor work)."""
    h = path
    for v in (site + 1, 0x5BD1E995):
        h = (h ^ v) * _GOLDEN & _M32
        h ^= h >> 15
    return h
