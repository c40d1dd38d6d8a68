"""Keeping conversions that share an output apart.

Runs of other settings would mix their files, so each run announces itself with a marker
`.aslfr/run-{fingerprint}-{id}.json` (the fingerprint names the settings and inputs), then looks for
markers of other settings and, if it finds a live one, withdraws and stops with one line. Of two that
start together at least one sees the other. A marker is a lease: the run renews it while it lives, so
one left by a killed run expires (at once when its process is known to be gone on this host) and
never blocks later runs. Markers work alike in a folder and on a store.

Runs of the same settings and inputs may share an output: every file they write has the same bytes
and appears whole (`Store.publishing`). Locally they also take turns per unit of work (shard
number) with advisory locks (`fcntl.flock`), and the second finds the first one's receipts and
resumes; finalizing holds the run-wide lock. A store has no locks and needs none between such runs:
nothing either deletes is a name the other writes."""

from __future__ import annotations

import fnmatch
import json
import os
import threading
import time
import uuid
from contextlib import ExitStack, contextmanager, suppress
from typing import Any, Iterable, Iterator

from aslfr.errors import InputError
from aslfr.format import layout
from aslfr.format.store import Location, Store

RUN_MARKER = "run-"


@contextmanager
def locked_all(receipts: Store, names: Iterable[str]) -> Iterator[None]:
    """Hold several locks of the receipts folder (`Store.lock`: on a store, none; see `claimed`),
    taken in sorted order so that runs cannot deadlock."""
    with ExitStack() as stack:
        for name in sorted(set(names)):
            stack.enter_context(receipts.lock(name))
        yield


#: seconds a run marker stays valid unless renewed; a live run renews it every third of that
LEASE_SECONDS = 120.0


@contextmanager
def claimed(records: Store | Location, fingerprint: str, lease: float = LEASE_SECONDS) -> Iterator[None]:
    """While the block runs: this run's marker in the records folder, renewed every lease/3 seconds; an
    error naming the other run if a live marker of other settings is there (expired ones are removed)."""
    records = Store.of(records)
    folder = records.child(layout.RECEIPTS)
    me = f"{RUN_MARKER}{fingerprint}-{uuid.uuid4().hex[:12]}.json"
    who = {"host": os.uname().nodename, "pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    def renew() -> None:
        folder.write_bytes(me, json.dumps({**who, "expires": time.time() + lease}).encode())

    renew()
    stop = threading.Event()
    renewer = threading.Thread(target=_renewing, args=(renew, stop, lease / 3), name="aslfr-lease", daemon=True)
    try:
        others = [m for m in folder.list() if fnmatch.fnmatchcase(m, f"{RUN_MARKER}*.json")
                  and not m.startswith(f"{RUN_MARKER}{fingerprint}-") and _live(folder, m)]
        if others:
            raise InputError(f"{records.where()}: a conversion with other settings or inputs is writing here "
                             f"({_describe(folder, others[0])}); wait for it, or delete {folder.where(others[0])} "
                             f"if it is no longer running")
        renewer.start()
        yield
    finally:
        stop.set()
        if renewer.is_alive():
            renewer.join()
        with suppress(OSError):  # the store may be what failed: report the error that ended the run
            folder.remove(me)


def _renewing(renew, stop: threading.Event, every: float) -> None:
    while not stop.wait(every):
        with suppress(OSError):  # a missed renewal is retried; the lease outlasts two of them
            renew()


def _marker(folder: Store, marker: str) -> dict[str, Any] | None:
    try:
        who = json.loads(folder.read_bytes(marker))
        return who if isinstance(who, dict) else None
    except FileNotFoundError:
        return None
    except ValueError:  # no lease in it: left by a version that renewed nothing
        return {}


def _live(folder: Store, marker: str) -> bool:
    """Whether a marker's run may still be writing: its lease has not expired and, for a local folder
    written from this host, its process exists (containers sharing a bucket may share a host name).
    An expired marker is removed."""
    who = _marker(folder, marker)
    if who is None:  # removed meanwhile: its run ended
        return False
    expires = who.get("expires")
    gone = not isinstance(expires, (int, float)) or expires < time.time()
    if not gone and folder.is_local and who.get("host") == os.uname().nodename \
            and isinstance(who.get("pid"), int):
        try:
            os.kill(who["pid"], 0)
        except ProcessLookupError:
            gone = True
        except PermissionError:  # another user's live process
            pass
    if gone:
        with suppress(OSError):
            folder.remove(marker)
    return not gone


def _describe(folder: Store, marker: str) -> str:
    who = _marker(folder, marker) or {}
    try:
        return f"pid {who['pid']} on {who['host']}, started {who['started']}"
    except KeyError:
        return "a run that left no details"
