"""A location bound once: a `Store` is one folder, local or behind an fsspec URL, with its options.

`Store.at(location, options)` picks the kind from the location's scheme (`SCHEMES`, as webdataset's
gopen_schemes): no scheme or `file://` is a local folder (plain `open` and `os`), any other scheme
(`s3://`, `gs://`, ...) an fsspec filesystem. Everything a location needs is decided there once;
its files are then named by their name in the folder, never by a pattern: `list` gives the folder's
names and callers match names, so a folder called `run[1]` is that folder, not `run1`.

A store pickles as its URL and options, never a client: an fsspec client is built lazily in each
process and kept per pid, as an s3fs instance used in a DataLoader's parent raises "not fork-safe" in
a forked worker (a shared pyarrow S3 filesystem even returned wrong bytes). Configuration comes from
the backend's usual places (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ..., STORAGE_EMULATOR_HOST) and from
`options`, the filesystem constructor's keyword arguments; an option the filesystem does not take is
one line naming it and the URL.

Remote files are opened with fsspec's cache off (`cache_type="none"`: its default read-ahead made
scattered reads 25-30x slower) under a buffer of our own: a stream reads BLOCK bytes a request, in
order, and a short range (one indexed record) is one ranged request. Listings are not cached, so a
reader built later sees the store as it is then. Backend errors name the URL.

Writes publish whole files or nothing: `publishing` streams a file that appears under its name only
when complete (locally a hidden temporary file, fsynced and renamed; on a store a multipart upload
completed at the end, aborted on error), and `write_bytes` does the same for small files (one PUT)."""

from __future__ import annotations

import errno
import fcntl
import io
import json
import os
import re
import sys
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Mapping, Union

#: A local path or a URL string.
Location = Union[Path, str]
#: Bytes per request when streaming a URL; a range up to this size is fetched in one request.
BLOCK = 8 << 20

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def scheme(where: Any) -> str | None:
    m = _SCHEME.match(where) if isinstance(where, str) else None
    return m.group(1).lower() if m else None


def is_url(where: Any) -> bool:
    """A location served by a filesystem other than the local one (`file://` is a local path)."""
    return SCHEMES.get(scheme(where), FsspecStore) is FsspecStore


def location(p: str | os.PathLike) -> Location:
    """`p` as a location: a URL string (without a trailing "/"), else a Path (`file://` stripped)."""
    if scheme(p) == "file":
        return Path(p[len("file://"):])
    return p.rstrip("/") if is_url(p) else Path(p)


def join(base: Location, name: str) -> Location:
    base = location(base)
    return base / name if isinstance(base, Path) else f"{base}/{name}"


def name(loc: Location) -> str:
    loc = location(loc)
    return loc.name if isinstance(loc, Path) else loc.rsplit("/", 1)[-1]


def parent(loc: Location) -> Location:
    loc = location(loc)
    return loc.parent if isinstance(loc, Path) else loc.rsplit("/", 1)[0]


def canonical(loc: Location) -> Location:
    """What tells two locations of one file apart from two files: the resolved path, or the URL."""
    loc = location(loc)
    return loc.resolve() if isinstance(loc, Path) else loc


class StoreOptionError(ValueError):
    """A storage option the location's filesystem does not take."""


class Store:
    """One folder (a local folder or a URL prefix) and the options its filesystem is built with.
    Files are named by their name in it; `child` is a subfolder with the same options."""

    #: whether the folder is on this machine (its writers' processes can be checked, its files locked)
    is_local = False

    def __init__(self, root: Location, options: Mapping[str, Any] | None = None):
        self.root = location(root)
        self.options = dict(options or {})

    @staticmethod
    def at(where: str | os.PathLike, options: Mapping[str, Any] | None = None) -> "Store":
        """The store of folder `where`, of the kind its scheme names."""
        return SCHEMES.get(scheme(where), FsspecStore)(where, options)

    @staticmethod
    def of(where: "Store | str | os.PathLike", options: Mapping[str, Any] | None = None) -> "Store":
        """`where` if it is a store already, else the store of folder `where`."""
        return where if isinstance(where, Store) else Store.at(where, options)

    @staticmethod
    def of_file(where: str | os.PathLike, options: Mapping[str, Any] | None = None) -> tuple["Store", str]:
        """(the store of a file's folder, the file's name)."""
        return Store.at(parent(where), options), name(where)

    def child(self, name: str) -> "Store":
        return type(self)(join(self.root, name), self.options)

    def where(self, name: str = "") -> Location:
        """The location of file `name` (the folder itself for ""), as errors and users name it."""
        return join(self.root, name) if name else self.root

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and (self.root, self.options) == (other.root, other.options)

    def __hash__(self) -> int:
        return hash((type(self), str(self.root)))

    def read_text(self, name: str) -> str:
        return self.read_bytes(name).decode()

    def folders(self) -> list[str]:
        """The names of the folder's subfolders."""
        return sorted(n for n, kind in self._entries().items() if kind is None)

    def list(self) -> list[str]:
        """The names of the files in the folder (no recursion; none if there is no such folder)."""
        return sorted(n for n, kind in self._entries().items() if kind is not None)

    def sizes(self) -> dict[str, int]:
        """File name -> bytes for the files in the folder, from one listing."""
        return {n: s for n, s in self._entries().items() if s is not None}

    # What each kind implements.
    def _entries(self) -> dict[str, int | None]:
        """Name -> size of each file in the folder, None for a subfolder."""
        raise NotImplementedError

    def exists(self) -> bool:
        """The folder is there (a local folder; on a store, a prefix with objects under it, or a bucket)."""
        raise NotImplementedError

    def is_file(self, name: str) -> bool:
        raise NotImplementedError

    def size(self, name: str) -> int:
        raise NotImplementedError

    def read_bytes(self, name: str) -> bytes:
        raise NotImplementedError

    def write_bytes(self, name: str, data: bytes) -> None:
        """A whole small file, published as `publishing` does (on a store: one PUT, which is atomic)."""
        raise NotImplementedError

    def open_read(self, name: str, start: int = 0, end: int | None = None) -> Any:
        """A context giving (a binary file whose reads begin at byte `start`, the file's size in
        bytes). Reads may stop at `end` where it is given. A URL is streamed BLOCK bytes a request;
        a range [start, end) of at most BLOCK bytes is fetched in one request (its size: what the
        range held, from byte 0)."""
        raise NotImplementedError

    def open_random(self, name: str) -> BinaryIO:
        """A binary file for a few reads at known offsets (a parquet footer): each read of a URL is
        one ranged request for exactly the bytes asked, with no read-ahead and no buffer of ours."""
        raise NotImplementedError

    def publishing(self, name: str) -> Any:
        """A context giving a new binary file that appears as `name`, replacing any file there, only
        when the block ends without an exception; until then readers see the old file or none."""
        raise NotImplementedError

    def remove(self, name: str) -> None:
        """Delete a file if it is there."""
        raise NotImplementedError

    def makedirs(self) -> None:
        """Create the folder and its parents where the kind has folders."""

    def evict(self, name: str) -> bool:
        """Drop a local copy of file `name` kept by a cache over the store; whether there was one."""
        return False

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold lock `name` of the folder while the block runs, where the kind has locks (a store
        has none: `aslfr.convert.locks` keeps runs apart there)."""
        yield


class LocalStore(Store):
    """A local folder: plain `open`, `os.scandir`, and `fcntl.flock` for locks."""

    root: Path
    is_local = True

    def _entries(self) -> dict[str, int | None]:
        out: dict[str, int | None] = {}
        try:
            with os.scandir(self.root) as it:
                for e in it:
                    with suppress(FileNotFoundError):  # removed meanwhile
                        out[e.name] = None if e.is_dir() else e.stat().st_size
        except (FileNotFoundError, NotADirectoryError):
            pass
        return out

    def exists(self) -> bool:
        return self.root.is_dir()

    def is_file(self, name: str) -> bool:
        return (self.root / name).is_file()

    def size(self, name: str) -> int:
        return (self.root / name).stat().st_size

    def read_bytes(self, name: str) -> bytes:
        return (self.root / name).read_bytes()

    def write_bytes(self, name: str, data: bytes) -> None:
        self.makedirs()
        with self.publishing(name) as f:
            f.write(data)

    @contextmanager
    def open_read(self, name: str, start: int = 0, end: int | None = None) -> Iterator[tuple[BinaryIO, int]]:
        with open(self.root / name, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(start)
            yield f, size

    def open_random(self, name: str) -> BinaryIO:
        return open(self.root / name, "rb")

    @contextmanager
    def publishing(self, name: str) -> Iterator[BinaryIO]:
        """A hidden temporary file beside it, fsynced, renamed over it (removed on error)."""
        path = self.root / name
        tmp = temporary(path)
        try:
            with writing(tmp), open(tmp, "wb") as f:
                yield f
                durable(f)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def remove(self, name: str) -> None:
        (self.root / name).unlink(missing_ok=True)

    def makedirs(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """An exclusive `flock` on file `name` (created if needed), saying whom it waits for if held."""
        self.makedirs()
        path = self.root / name
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


#: Constructor defaults per protocol (an option given overrides them).
_DEFAULTS: dict[str, dict[str, Any]] = {p: {"use_listings_cache": False} for p in ("s3", "s3a", "gs", "gcs")}
_clients: dict[int, dict[tuple[str, str], Any]] = {}  # pid -> (protocol, options) -> filesystem
#: Packages whose errors are a store's errors even where they are no OSError (botocore's
#: EndpointConnectionError, once s3fs's retries are spent, is a plain Exception).
_BACKENDS = {"botocore", "aiobotocore", "aiohttp", "s3fs", "gcsfs", "google", "fsspec"}
_UNEXPECTED = re.compile(r"unexpected keyword argument '([^']+)'")


class FsspecStore(Store):
    """A URL prefix served by an fsspec filesystem, this process's client built on first use."""

    root: str

    def __init__(self, root: str, options: Mapping[str, Any] | None = None):
        super().__init__(root, options)
        self.protocol = scheme(self.root)
        #: the constructor's keyword arguments: defaults, an emulator's, then the options given
        self.kwargs = {**_DEFAULTS.get(self.protocol, {}), **_emulated(self.protocol), **self.options}

    @property
    def fs(self) -> Any:
        """This process's filesystem for the protocol and options."""
        key = (self.protocol, json.dumps(self.kwargs, sort_keys=True, default=repr))
        mine = _clients.setdefault(os.getpid(), {})
        if key not in mine:
            import fsspec

            with self.naming(""):
                mine[key] = fsspec.filesystem(self.protocol, skip_instance_cache=True, **self.kwargs)
        return mine[key]

    def path(self, name: str = "") -> str:
        """The filesystem's path of file `name` (the URL without its scheme)."""
        return self.fs._strip_protocol(str(self.where(name)))

    @contextmanager
    def naming(self, name: str) -> Iterator[None]:
        """A backend's error as one line naming the URL (FileNotFoundError and PermissionError kept),
        also where it is no OSError (botocore's connection errors once s3fs's retries are spent;
        gcsfs's HttpError). gcsfs refuses with a two-line OSError "Forbidden: ..." (403), or an
        HttpError (401): a PermissionError for 401 and 403. An option the filesystem does not take
        (found when its client is first used) is one line naming it."""
        url = self.where(name)
        try:
            yield
        except TypeError as e:
            bad = _UNEXPECTED.search(str(e))
            if not bad or bad.group(1) not in self.options:
                raise
            raise StoreOptionError(f"{self.where()}: {bad.group(1)!r} is not a storage option of the {self.protocol}:// "
                             f"filesystem{_close_option(self.protocol, bad.group(1))}") from None
        except Exception as e:
            if not isinstance(e, OSError) and type(e).__module__.split(".")[0] not in _BACKENDS:
                raise
            code = getattr(e, "code", None) if type(e).__module__.startswith("gcsfs.") else None  # an HttpError
            text = " ".join(str(e.strerror if isinstance(e, OSError) and e.strerror else e).split()) or type(e).__name__
            denied = isinstance(e, PermissionError) or code in (401, 403) or text.startswith("Forbidden: ")
            kind = PermissionError if denied else FileNotFoundError if isinstance(e, FileNotFoundError) else OSError
            raise kind(f"{url}: {text}") from None

    def _info(self, name: str) -> dict[str, Any] | None:
        with self.naming(name):
            try:
                return self.fs.info(self.path(name))
            except FileNotFoundError:
                return None

    def _entries(self) -> dict[str, int | None]:
        with self.naming(""):
            try:
                found = self.fs.ls(self.path(), detail=True)
            except FileNotFoundError:
                return {}
        base = self.path().rstrip("/") + "/"
        out: dict[str, int | None] = {}
        for e in found:
            n = e["name"].rstrip("/")
            if n.startswith(base) and "/" not in n[len(base):] and n != base.rstrip("/"):
                out[n[len(base):]] = None if e["type"] == "directory" else int(e.get("size") or 0)
        return out

    def exists(self) -> bool:
        info = self._info("")
        return info is not None and info["type"] == "directory"

    def is_file(self, name: str) -> bool:
        info = self._info(name)
        return info is not None and info["type"] == "file"

    def size(self, name: str) -> int:
        with self.naming(name):
            return self.fs.size(self.path(name))

    def read_bytes(self, name: str) -> bytes:
        with self.naming(name):
            return self.fs.cat_file(self.path(name))

    def write_bytes(self, name: str, data: bytes) -> None:
        with self.naming(name):
            self.fs.pipe_file(self.path(name), data)

    @contextmanager
    def open_read(self, name: str, start: int = 0, end: int | None = None) -> Iterator[tuple[BinaryIO, int]]:
        path = self.path(name)
        with self.naming(name):  # what the caller does with the file is not the store's
            if end is not None and end - start <= BLOCK:
                data = self.fs.cat_file(path, start=start, end=end) if end > start else b""
            else:
                data, raw = None, self.fs.open(path, "rb", block_size=BLOCK, cache_type="none")
        if data is not None:
            yield io.BytesIO(data), start + len(data)
            return
        with io.BufferedReader(_NamedReads(raw, lambda: self.naming(name)), BLOCK) as f:
            f.seek(start)
            yield f, raw.size

    def open_random(self, name: str) -> BinaryIO:
        with self.naming(name):
            return self.fs.open(self.path(name), "rb", cache_type="none")

    @contextmanager
    def publishing(self, name: str) -> Iterator[BinaryIO]:
        """A multipart upload with autocommit off, completed at the end (the object appears whole,
        at once) or aborted on error; a process killed meanwhile leaves only an incomplete upload,
        which no listing or read shows."""
        with self.naming(name):
            f = self.fs.open(self.path(name), "wb", autocommit=False)
        write = f.write

        def named_write(data: bytes) -> int:  # a part's failed upload names the URL
            with self.naming(name):
                return write(data)

        f.write = named_write
        try:
            yield f
            with self.naming(name):
                f.close()  # uploads the last part
                f.commit()
        except BaseException:
            with suppress(Exception):
                f.discard()
            f.closed = True  # nothing left to flush
            raise

    def remove(self, name: str) -> None:
        with suppress(FileNotFoundError), self.naming(name):
            self.fs.rm_file(self.path(name))


class _NamedReads(io.RawIOBase):
    """A remote file whose failed reads name it (`naming`), under a buffer of ours."""

    def __init__(self, raw: Any, naming: Any):
        self.raw, self.naming = raw, naming

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        with self.naming():
            return self.raw.readinto(buffer)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.raw.seek(offset, whence)

    def tell(self) -> int:
        return self.raw.tell()

    def close(self) -> None:
        self.raw.close()
        super().close()


#: The kind of store per scheme; any other scheme is an fsspec protocol.
SCHEMES: dict[str | None, type[Store]] = {None: LocalStore, "file": LocalStore}


def _close_option(protocol: str, option: str) -> str:
    """" (did you mean ...?)" naming the filesystem's own option closest to `option`, if any is."""
    import difflib
    import inspect

    import fsspec

    taken = [p for p in inspect.signature(fsspec.get_filesystem_class(protocol).__init__).parameters
             if p not in ("self", "args", "kwargs")]
    close = difflib.get_close_matches(option, taken, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _emulated(protocol: str) -> dict[str, Any]:
    """Defaults for a GCS emulator (STORAGE_EMULATOR_HOST, which gcsfs reads for its endpoint): no
    credentials, as google-cloud-storage does (gcsfs would look for Google's first, on a metadata
    server too), and no zonal-bucket probe over gRPC, which an emulator does not speak (gcsfs's
    default, read when it is imported: it waits out a timeout of 40-60 s a bucket)."""
    if protocol not in ("gs", "gcs") or not os.environ.get("STORAGE_EMULATOR_HOST"):
        return {}
    os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    return {"token": "anon"}


def temporary(path: Path) -> Path:
    """The hidden name a local file is written under before it is renamed into place."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Errors while writing local `path` name it: a failed `write()` carries no file name, and a full
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


def durable(f: BinaryIO) -> None:
    """Flush a local file and fsync it: its bytes are on disk before it gets its name."""
    f.flush()
    os.fsync(f.fileno())
