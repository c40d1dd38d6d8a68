"""One-call access to a single file by its location, for code that holds one location and no `Store`
(a test naming a URL, a one-off script): each call binds the file's folder as a `Store`
(`aslfr.format.store`, where every decision about a location is made) and names the file in it.
The package itself binds its stores once (the converter in its `Settings`, the readers in their
`RecordsFolder`) and uses none of these."""

from __future__ import annotations

import fnmatch
from typing import Any, Mapping

from aslfr.format.store import (  # noqa: F401  (the location helpers, under their usual names)
    Location, Store, is_url, join, location, name)

Options = Mapping[str, Any] | None


def is_file(loc: Location, options: Options = None) -> bool:
    store, n = Store.of_file(loc, options)
    return store.is_file(n)


def read_bytes(loc: Location, options: Options = None) -> bytes:
    store, n = Store.of_file(loc, options)
    return store.read_bytes(n)


def glob(directory: Location, pattern: str, options: Options = None) -> list[Location]:
    """The files of a folder whose names match `pattern` (no recursion), by name. Only the file names
    are matched: the folder's own name is never a pattern (`run[1]` is that folder, not `run1`)."""
    store = Store.at(directory, options)
    return [store.where(n) for n in store.list() if fnmatch.fnmatchcase(n, pattern)]


def publishing(loc: Location, options: Options = None) -> Any:
    store, n = Store.of_file(loc, options)
    return store.publishing(n)
