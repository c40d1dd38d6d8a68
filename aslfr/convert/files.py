"""Small file helpers: whole-file writes that are either complete or absent."""

from __future__ import annotations

import errno
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Errors while writing `path` name it: a failed `write()` carries no file name, and a full
    disk should be reported as the output's problem, not the input's."""
    try:
        yield
    except OSError as e:
        if e.filename is not None and e.errno != errno.ENOSPC:
            raise
        name = e.filename or str(path)
        reason = e.strerror or str(e)
        if e.errno == errno.ENOSPC:
            reason += f" (the file system holding {Path(name).parent} is full)"
        raise OSError(e.errno, reason, name) from None


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary name beside `path`, fsync, then rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with writing(tmp), open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())
