"""Keeping conversions that share an output apart.

Locally, advisory locks (`fcntl.flock`): one lock per unit of work (shard number) held while it is
checked and written, and the run-wide lock held while finalizing. Runs that own different units
(fold sweeps, shard jobs) never wait for each other; two runs of the same units take turns, and the
second finds the first one's receipts and resumes.

A store has no locks, and needs none between runs of the same settings and inputs: every file they
write has the same bytes and appears whole (`storage.publishing`), and nothing either deletes is a
name the other writes. Runs of other settings would mix their files, so each run announces itself
with a marker object, then looks for markers of other settings and, if it finds one, withdraws and
stops with one line. Of two that start together at least one sees the other."""

from __future__ import annotations

import json
import os
import time
import uuid
from contextlib import ExitStack, contextmanager, suppress
from typing import Any, ContextManager, Iterable, Iterator, Mapping

from aslfr.errors import InputError
from aslfr.format import layout, storage
from aslfr.format.store import Location, Store

RUN_MARKER = "run-"


def locked(path: Location) -> ContextManager[None]:
    """Hold an exclusive lock on local `path` (created if needed), saying whom it waits for if it is
    held (`Store.lock`). On a store, nothing: see `claimed`."""
    store, name = Store.of_file(path)
    return store.lock(name)


@contextmanager
def locked_all(paths: Iterable[Location]) -> Iterator[None]:
    """Hold several locks, taken in sorted order so that runs cannot deadlock."""
    with ExitStack() as stack:
        for p in sorted(set(map(str, paths))):
            stack.enter_context(locked(storage.location(p)))
        yield


@contextmanager
def claimed(records_dir: Location, fingerprint: str, options: Mapping[str, Any] | None = None) -> Iterator[None]:
    """On a store, while the block runs: this run's marker `.aslfr/run-{fingerprint}-{id}.json` (the
    fingerprint names the settings and inputs); an error naming the other run if a marker of other
    settings is there. Locally, nothing (the locks do it)."""
    if not storage.is_url(records_dir):
        yield
        return
    folder = layout.receipts_dir(records_dir)
    me = storage.join(folder, f"{RUN_MARKER}{fingerprint}-{uuid.uuid4().hex[:12]}.json")
    who = {"host": os.uname().nodename, "pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    storage.write_bytes(me, json.dumps(who).encode(), options)
    try:
        others = [m for m in storage.glob(folder, f"{RUN_MARKER}*.json", options)
                  if not storage.name(m).startswith(f"{RUN_MARKER}{fingerprint}-")]
        if others:
            raise InputError(f"{records_dir}: a conversion with other settings or inputs is writing here "
                             f"({_describe(others[0], options)}); wait for it, or delete {others[0]} "
                             f"if it is no longer running")
        yield
    except BaseException:
        with suppress(OSError):  # the store may be what failed: report the error that ended the run
            storage.remove(me, options)
        raise
    storage.remove(me, options)


def _describe(marker: Location, options: Mapping[str, Any] | None) -> str:
    try:
        who = json.loads(storage.read_bytes(marker, options))
        return f"pid {who['pid']} on {who['host']}, started {who['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a run that left no details"
