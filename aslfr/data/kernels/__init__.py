"""Fused CPU kernels (numba) for the reference's input: each batch in one pass over its packed frames,
written into memory the caller reuses, with the GIL released. The torch path (`transforms.rows`)
stays the reference (and the GPU path); these give the same bits on the CPU.

numba compiles at first use and caches the machine code (`cache=True`). The cache goes to
NUMBA_CACHE_DIR, by default a user cache folder, set here before any kernel is defined: numba's own
default writes beside the module, which fails or goes stale inside a read-only install."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def cache_dir() -> Path:
    """Where compiled kernels are cached: NUMBA_CACHE_DIR if the user set it, else
    $XDG_CACHE_HOME/aslfr/numba (~/.cache/aslfr/numba)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "aslfr" / "numba"


def _set_cache_dir() -> None:
    if not os.environ.get("NUMBA_CACHE_DIR"):
        os.environ["NUMBA_CACHE_DIR"] = str(cache_dir())
        if "numba" in sys.modules:  # imported earlier by someone else: make it read the variable again
            from numba.core import config

            config.reload_config()


_set_cache_dir()


def jit(fn):
    """numba's njit as the kernels use it: no GIL, cached, no fast-math (IEEE float32, no FMA
    contraction), and numpy's error model: x / 0 is IEEE inf or NaN as in torch, not a raised
    ZeroDivisionError, whose check in every division keeps loops from vectorizing."""
    from numba import njit

    return njit(nogil=True, cache=True, error_model="numpy")(fn)
