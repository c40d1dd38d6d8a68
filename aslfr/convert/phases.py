"""Per-phase accounting of a conversion, for `make bench`: seconds, minor page faults and context
switches of each phase of each file, measured in the process that does the work (a DataLoader
worker). Off unless ASLFR_PHASES=1; then `tick(phase)` charges everything since the previous tick
to `phase`."""

from __future__ import annotations

import os
import resource
import time

ENABLED = os.environ.get("ASLFR_PHASES") == "1"
_totals: dict[str, list[float]] = {}
_last: list[float] = []


def _snapshot() -> list[float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return [time.perf_counter(), r.ru_minflt, r.ru_nvcsw, r.ru_nivcsw]


def start() -> None:
    global _last
    _totals.clear()
    _last = _snapshot()


def tick(phase: str) -> None:
    global _last
    if not ENABLED:
        return
    now = _snapshot()
    acc = _totals.setdefault(phase, [0.0, 0.0, 0.0, 0.0])
    for i in range(4):
        acc[i] += now[i] - _last[i]
    _last = now


def take() -> dict[str, dict[str, float]]:
    """The totals since `start`: {phase: {seconds, faults, voluntary_cs, involuntary_cs}}."""
    out = {p: {"seconds": v[0], "faults": v[1], "voluntary_cs": v[2], "involuntary_cs": v[3]} for p, v in _totals.items()}
    _totals.clear()
    return out
