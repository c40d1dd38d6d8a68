"""`make bench` (`python -m aslfr.bench`, `aslfr bench`): speed and memory of the converter and the
readers, measured from outside the code they time. Nothing outside this package imports it."""

from __future__ import annotations


def print_rows(rows: list[tuple[str, str]]) -> None:
    """The bench's (label, value) rows as one aligned table."""
    w = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{w}}  {v}" for k, v in rows), flush=True)
