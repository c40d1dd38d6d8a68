"""Advisory locks (`fcntl.flock`) that let conversions share an `out_dir`: one lock per unit of work
(shard number) held while it is checked and written, and the run-wide lock held while finalizing.
Runs that own different units (fold sweeps, shard jobs) never wait for each other; two runs of the
same units take turns, and the second finds the first one's receipts and resumes."""

from __future__ import annotations

import fcntl
import os
import sys
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterable, Iterator


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if needed), saying whom it waits for if it is held."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another run"
            print(f"aslfr: waiting for {path} (held by {holder})", file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {os.uname().nodename}".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextmanager
def locked_all(paths: Iterable[Path]) -> Iterator[None]:
    """Hold several locks, taken in sorted order so that runs cannot deadlock."""
    with ExitStack() as stack:
        for p in sorted(set(paths)):
            stack.enter_context(locked(p))
        yield
