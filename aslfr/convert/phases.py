"""Per-phase accounting for `make bench`: seconds, minor page faults and context switches of each
phase of each file, measured in the process that does the work (a DataLoader worker).

The converter's code holds no timing calls. A `PhaseTimer` is put around its phase functions from
outside (`instrument`), as mosaicml-streaming's `timer` is put around a pipeline's stages, only
when the bench asks for it (ASLFR_PHASES=1); otherwise nothing is measured and nothing is wrapped."""

from __future__ import annotations

import functools
import os
import resource
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

KEYS = ("seconds", "faults", "voluntary_cs", "involuntary_cs")


def requested() -> bool:
    """Whether this process is to account phases (the bench sets ASLFR_PHASES=1 for the converter)."""
    return os.environ.get("ASLFR_PHASES") == "1"


def _snapshot() -> list[float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return [time.perf_counter(), r.ru_minflt, r.ru_nvcsw, r.ru_nivcsw]


class PhaseTimer:
    """Totals per named phase of wall seconds, minor faults and voluntary / involuntary context
    switches (getrusage of this process)."""

    def __init__(self) -> None:
        self._totals: dict[str, list[float]] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        before = _snapshot()
        try:
            yield
        finally:
            after = _snapshot()
            acc = self._totals.setdefault(name, [0.0] * len(KEYS))
            for i in range(len(KEYS)):
                acc[i] += after[i] - before[i]

    def wrap(self, name: str, fn: Callable) -> Callable:
        """`fn`, with every call charged to phase `name`."""
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.phase(name):
                return fn(*args, **kwargs)
        return timed

    def instrument(self, phases: dict[str, list[tuple[Any, str]]]) -> None:
        """Replace each `owner.attribute` (a class's method or a module's function) listed under a
        phase by its timed version."""
        for name, targets in phases.items():
            for owner, attribute in targets:
                setattr(owner, attribute, self.wrap(name, getattr(owner, attribute)))

    def take(self, whole: str | None = None) -> dict[str, dict[str, float]]:
        """The totals since the last take: {phase: {seconds, faults, voluntary_cs, involuntary_cs}}.
        With `whole`, a phase that encloses the others: what it holds beyond them becomes "other"."""
        totals, self._totals = self._totals, {}
        if whole is not None:
            outer = totals.pop(whole, [0.0] * len(KEYS))
            totals["other"] = [o - sum(v[i] for v in totals.values()) for i, o in enumerate(outer)]
        return {p: dict(zip(KEYS, v)) for p, v in totals.items()}
