"""The bench's phase accounting (`aslfr.bench.phases`): traced from outside, each phase its own time
(nested phases not counted twice), units of work reported one by one, and the functions measured
left as they are."""

from __future__ import annotations

import sys

from aslfr.bench.phases import KEYS, PhaseTimer


def leaf(n):
    return sum(range(n))


def middle(n):
    return leaf(n) + leaf(n)


def unit(n):
    return middle(n) + leaf(n)


def step(kind, n):
    return step("inner", n) if kind == "outer" else leaf(n)


def test_nested_phases_count_their_own_time_and_units_report_theirs():
    reports = []
    timer = PhaseTimer({leaf: "leaf", middle: "middle", unit: "unit"}, unit="unit", report=reports.append)
    before = sys.gettrace()
    leaf(10)  # not traced: before the timer is entered
    with timer:
        leaf(10)  # outside any unit: dropped when the next unit starts
        for n in (1000, 2000):
            unit(n)
    assert sys.gettrace() is before
    assert leaf is globals()["leaf"] and not hasattr(leaf, "__wrapped__")  # nothing wrapped or rebound
    assert len(reports) == 2 and timer.take() == {}
    for totals in reports:
        assert set(totals) == {"leaf", "middle", "unit"}
        assert all(set(v) == set(KEYS) and v["seconds"] >= 0 for v in totals.values())


def test_own_time_excludes_nested_phases(monkeypatch):
    """Ticks of a fake clock: each phase start and stop reads it once; a phase's own time is its
    span less its nested phases' spans."""
    from aslfr.bench import phases

    ticks = iter(range(100))
    monkeypatch.setattr(phases, "_snapshot", lambda: [float(next(ticks)), 0, 0, 0])
    timer = PhaseTimer({leaf: "leaf", middle: "middle"})
    with timer:
        middle(3)  # middle starts 0, leaf 1-2, leaf 3-4, middle stops 5
    totals = timer.take()
    assert totals["leaf"]["seconds"] == 2 and totals["middle"]["seconds"] == 3


def test_a_phase_named_by_its_call_and_recursion():
    timer = PhaseTimer({step: lambda frame: frame.f_locals["kind"]})
    with timer:
        step("outer", 100)
    assert set(timer.take()) == {"outer", "inner"}


def test_an_exception_leaving_a_phase_ends_it():
    def boom():
        raise ValueError

    timer = PhaseTimer({boom: "boom", leaf: "leaf"})
    with timer:
        try:
            boom()
        except ValueError:
            pass
        leaf(10)
    assert set(timer.take()) == {"boom", "leaf"} and timer._open == []
