"""Per-phase accounting for `make bench`: wall seconds, minor page faults and context switches of
each phase, measured in the process that does the work (e.g. a converter's DataLoader worker).

A phase is either a block (`phase(name)`, for the bench's own code) or a function of the code
measured: its calls count toward the phase, less what nested phases take (a profiler's own time). A
trace function (`sys.settrace`) sees those functions' calls and returns, so the code measured holds
no timing calls, and nothing in it is wrapped, rebound or split for the bench. The trace function
slows every Python call a little: a run measured this way gives the phases, not the wall time."""

from __future__ import annotations

import inspect
import resource
import sys
import time
from contextlib import contextmanager
from types import CodeType, FrameType
from typing import Callable, Iterator, Mapping, Union

KEYS = ("seconds", "faults", "voluntary_cs", "involuntary_cs")
#: a phase's name, or a function of the call's frame giving it (e.g. from an argument)
Name = Union[str, Callable[[FrameType], str]]


def _snapshot() -> list[float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return [time.perf_counter(), r.ru_minflt, r.ru_nvcsw, r.ru_nivcsw]


class PhaseTimer:
    """Totals per named phase of wall seconds, minor faults and voluntary / involuntary context
    switches (getrusage of this process), each phase's own: nested phases are not counted twice.

    `functions`: {function: its phase}, traced while the timer is entered (`with timer:`), in this
    thread and in the processes it forks. `sync`: called at each phase boundary (e.g. to wait for a
    GPU). `unit`: the phase whose calls are units of work: the totals restart when one starts, and
    `report` gets them (`take()`) when it ends."""

    def __init__(self, functions: Mapping[Callable, Name] | None = None, sync: Callable[[], None] | None = None,
                 unit: str | None = None, report: Callable[[dict], None] | None = None) -> None:
        self._names: dict[CodeType, Name] = {inspect.unwrap(f).__code__: n for f, n in (functions or {}).items()}
        self._sync, self._unit, self._report = sync, unit, report
        self._totals: dict[str, list[float]] = {}
        self._open: list[tuple[str, list[float]]] = []  # the phases under way, innermost last
        self._previous = None

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self._start(name)
        try:
            yield
        finally:
            self._stop()

    def __enter__(self) -> "PhaseTimer":
        self._previous = sys.gettrace()
        sys.settrace(self._call)
        return self

    def __exit__(self, *exc) -> None:
        sys.settrace(self._previous)

    def _call(self, frame: FrameType, event: str, arg) -> Callable | None:
        """The trace function: a traced function's call starts its phase; other calls are not traced."""
        name = self._names.get(frame.f_code)
        if name is None:
            return None
        frame.f_trace_lines = False
        self._start(name if isinstance(name, str) else name(frame))
        return self._return

    def _return(self, frame: FrameType, event: str, arg) -> Callable:
        """The traced call's own trace function: its return (or its exception leaving it) ends the phase."""
        if event == "return":
            self._stop()
        return self._return

    def _start(self, name: str) -> None:
        if self._sync is not None:
            self._sync()
        if name == self._unit and not self._open:
            self._totals = {}
        self._open.append((name, _snapshot()))

    def _stop(self) -> None:
        if self._sync is not None:
            self._sync()
        now = _snapshot()
        name, before = self._open.pop()
        spent = [a - b for a, b in zip(now, before)]
        self._add(name, spent)
        if self._open:  # not the enclosing phase's own
            self._add(self._open[-1][0], [-x for x in spent])
        elif name == self._unit and self._report is not None:
            self._report(self.take())

    def _add(self, name: str, values: list[float]) -> None:
        acc = self._totals.setdefault(name, [0.0] * len(KEYS))
        for i, v in enumerate(values):
            acc[i] += v

    def take(self) -> dict[str, dict[str, float]]:
        """The totals since the last take: {phase: {seconds, faults, voluntary_cs, involuntary_cs}}."""
        totals, self._totals = self._totals, {}
        return {p: dict(zip(KEYS, v)) for p, v in totals.items()}
