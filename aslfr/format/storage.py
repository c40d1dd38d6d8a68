"""One-call access to a single file or folder by its location, for code that holds a location rather
than a `Store` (the converter's receipts, locks and run markers): each call binds the file's folder
as a `Store` (`aslfr.format.store`, where every decision about a location is made) and names the file
in it. Code that reads many files of one folder binds the store once instead."""

from __future__ import annotations

import fnmatch
from typing import Any, Mapping

from aslfr.format.store import (  # noqa: F401  (the location helpers, under their usual names)
    Location, Store, is_url, join, location, name)

Options = Mapping[str, Any] | None


def is_file(loc: Location, options: Options = None) -> bool:
    store, n = Store.of_file(loc, options)
    return store.is_file(n)


def is_dir(loc: Location, options: Options = None) -> bool:
    return Store.at(loc, options).exists()


def size(loc: Location, options: Options = None) -> int:
    store, n = Store.of_file(loc, options)
    return store.size(n)


def read_bytes(loc: Location, options: Options = None) -> bytes:
    store, n = Store.of_file(loc, options)
    return store.read_bytes(n)


def write_bytes(loc: Location, data: bytes, options: Options = None) -> None:
    store, n = Store.of_file(loc, options)
    store.write_bytes(n, data)


def glob(directory: Location, pattern: str, options: Options = None) -> list[Location]:
    """The files of a folder whose names match `pattern` (no recursion), by name. Only the file names
    are matched: the folder's own name is never a pattern (`run[1]` is that folder, not `run1`)."""
    store = Store.at(directory, options)
    return [store.where(n) for n in store.list() if fnmatch.fnmatchcase(n, pattern)]


def publishing(loc: Location, options: Options = None) -> Any:
    store, n = Store.of_file(loc, options)
    return store.publishing(n)


def remove(loc: Location, options: Options = None) -> None:
    store, n = Store.of_file(loc, options)
    store.remove(n)


def makedirs(loc: Location) -> None:
    """Create a local folder and its parents; a store needs no folders for its prefixes."""
    Store.at(loc).makedirs()
