"""The column statistics beside the records: `means.npy` and `stds.npy`, float32 [384] each, as
`np.save` writes them. Statistics are valid when both have one value per column, all finite, and
every std > 0: anything else would turn normalized frames into inf/NaN (or a silent column of 0),
so it is refused where statistics are encoded, loaded or passed to a transform."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from aslfr.format.layout import MEANS, STDS
from aslfr.format.store import Store
from aslfr.format.vocab import N_COLS


class StatsError(ValueError):
    """Statistics that are missing values, not finite, or have a std that is not > 0."""


def checked(name: str, values, positive: bool = False) -> np.ndarray:
    """`values` as float32 [384], or a StatsError naming `name`: wrong shape, not finite, or
    (with `positive`) not > 0."""
    a = np.asarray(values)
    if a.dtype.kind not in "fiu":
        raise StatsError(f"{name} must hold numbers, got dtype {a.dtype}")
    a = a.astype(np.float32)
    if a.shape != (N_COLS,):
        raise StatsError(f"{name} must have shape [{N_COLS}] (one value per column), got {list(a.shape)}")
    for bad, what in ((~np.isfinite(a), "not finite"), ((a <= 0) if positive else None, "not > 0")):
        if bad is not None and bad.any():
            col = int(np.flatnonzero(bad)[0])
            raise StatsError(f"{name}: {int(bad.sum())} value(s) {what}, first at column {col} ({a[col]})")
    return a


def check_stats(means, stds) -> tuple[np.ndarray, np.ndarray]:
    """float32 means and stds, validated (shape [384], finite, stds > 0)."""
    return checked("means", means), checked("stds", stds, positive=True)


def encode_stats(means, stds) -> dict[str, bytes]:
    """File name -> `.npy` bytes of validated statistics; a StatsError instead of writing bad ones."""
    out = {}
    for name, a in zip((MEANS, STDS), check_stats(means, stds)):
        buf = io.BytesIO()
        np.save(buf, a)
        out[name] = buf.getvalue()
    return out


def load_stats(records_dir: str | Path,
               storage_options: Mapping[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """means.npy and stds.npy written beside the records (a folder or a URL), validated; errors
    name the file."""
    return read_stats(Store.at(records_dir, storage_options))


def read_stats(store: Store) -> tuple[np.ndarray, np.ndarray]:
    """`load_stats` of a folder's store."""
    out = []
    for name in (MEANS, STDS):
        path = store.where(name)
        try:
            raw = store.read_bytes(name)
        except (FileNotFoundError, NotADirectoryError):
            raise FileNotFoundError(f"{store.where()}: no {name} (written when a conversion finishes; "
                                    "`python -m aslfr.stats` recomputes it)") from None
        except PermissionError:  # the store's refusal, naming the object
            raise
        except OSError as e:
            raise OSError(f"{path}: unreadable ({e.strerror or e})") from None
        try:
            a = np.load(io.BytesIO(raw), allow_pickle=False)
        except (ValueError, EOFError):
            raise StatsError(f"{path}: not a NumPy .npy array file") from None
        out.append(checked(str(path), a, positive=name == STDS))
    return out[0], out[1]


def stats_problems(store: Store) -> list[str]:
    """[] when `load_stats` accepts the folder's statistics, else its one-line error (for verify)."""
    try:
        read_stats(store)
    except (OSError, ValueError) as e:
        return [str(e)]
    return []
