"""Keeping conversions that share an output apart.

Runs of other settings would mix their files, so each run announces itself with a marker
`.aslfr/run-{fingerprint}-{id}.json` (the fingerprint names the settings and inputs), then looks for
markers of other settings and, if it finds a live one, withdraws and stops with one line. Of two that
start together at least one sees the other. A marker is a lease: the run renews it while it lives, so
one left by a killed run expires (at once when its process is known to be gone on this host) and
never blocks later runs. Markers work alike in a folder and on a store.

Runs of the same settings and inputs may share an output: every file they write has the same bytes
and appears whole (`storage.publishing`). Locally they also take turns per unit of work (shard
number) with advisory locks (`fcntl.flock`), and the second finds the first one's receipts and
resumes; finalizing holds the run-wide lock. A store has no locks and needs none between such runs:
nothing either deletes is a name the other writes."""

from __future__ import annotations

import json
import os
import threading
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


#: seconds a run marker stays valid unless renewed; a live run renews it every third of that
LEASE_SECONDS = 120.0


@contextmanager
def claimed(records_dir: Location, fingerprint: str, options: Mapping[str, Any] | None = None,
            lease: float = LEASE_SECONDS) -> Iterator[None]:
    """While the block runs: this run's marker in `records_dir`, renewed every lease/3 seconds; an
    error naming the other run if a live marker of other settings is there (expired ones are removed)."""
    folder = layout.receipts_dir(records_dir)
    me = storage.join(folder, f"{RUN_MARKER}{fingerprint}-{uuid.uuid4().hex[:12]}.json")
    who = {"host": os.uname().nodename, "pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    def renew() -> None:
        storage.write_bytes(me, json.dumps({**who, "expires": time.time() + lease}).encode(), options)

    renew()
    stop = threading.Event()
    renewer = threading.Thread(target=_renewing, args=(renew, stop, lease / 3), name="aslfr-lease", daemon=True)
    try:
        others = [m for m in storage.glob(folder, f"{RUN_MARKER}*.json", options)
                  if not storage.name(m).startswith(f"{RUN_MARKER}{fingerprint}-") and _live(m, options)]
        if others:
            raise InputError(f"{records_dir}: a conversion with other settings or inputs is writing here "
                             f"({_describe(others[0], options)}); wait for it, or delete {others[0]} "
                             f"if it is no longer running")
        renewer.start()
        yield
    finally:
        stop.set()
        if renewer.is_alive():
            renewer.join()
        with suppress(OSError):  # the store may be what failed: report the error that ended the run
            storage.remove(me, options)


def _renewing(renew, stop: threading.Event, every: float) -> None:
    while not stop.wait(every):
        with suppress(OSError):  # a missed renewal is retried; the lease outlasts two of them
            renew()


def _marker(marker: Location, options: Mapping[str, Any] | None) -> dict[str, Any] | None:
    try:
        who = json.loads(storage.read_bytes(marker, options))
        return who if isinstance(who, dict) else None
    except FileNotFoundError:
        return None
    except ValueError:  # no lease in it: left by a version that renewed nothing
        return {}


def _live(marker: Location, options: Mapping[str, Any] | None) -> bool:
    """Whether a marker's run may still be writing: its lease has not expired and, for a local folder
    written from this host, its process exists (containers sharing a bucket may share a host name).
    An expired marker is removed."""
    who = _marker(marker, options)
    if who is None:  # removed meanwhile: its run ended
        return False
    expires = who.get("expires")
    gone = not isinstance(expires, (int, float)) or expires < time.time()
    if not gone and not storage.is_url(marker) and who.get("host") == os.uname().nodename \
            and isinstance(who.get("pid"), int):
        try:
            os.kill(who["pid"], 0)
        except ProcessLookupError:
            gone = True
        except PermissionError:  # another user's live process
            pass
    if gone:
        with suppress(OSError):
            storage.remove(marker, options)
    return not gone


def _describe(marker: Location, options: Mapping[str, Any] | None) -> str:
    who = _marker(marker, options) or {}
    try:
        return f"pid {who['pid']} on {who['host']}, started {who['started']}"
    except KeyError:
        return "a run that left no details"
