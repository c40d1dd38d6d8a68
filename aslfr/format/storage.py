"""The one seam every read of the readers goes through, keyed on the location's scheme.

A location is a local path (a `Path`, or a str without a scheme) or a URL string (`s3://bucket/key`,
`gs://...`, any fsspec protocol). Local paths use plain `open` and `Path`, as before this module;
URLs go through fsspec. URLs stay strings: `Path("s3://b/x")` would be `s3:/b/x`.

A URL's filesystem is built lazily in each process and kept per pid, never shared across a fork:
an s3fs instance used in a DataLoader's parent raises "not fork-safe" in a forked worker (a shared
pyarrow S3 filesystem even returned wrong bytes). Configuration comes from the backend's usual
places (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_DEFAULT_REGION, ..., STORAGE_EMULATOR_HOST) and
from a `storage_options` mapping, the filesystem constructor's keyword arguments.

Files are opened with fsspec's cache off (`cache_type="none"`: its default read-ahead made scattered
reads 25-30x slower) under a buffer of our own: a stream reads BLOCK bytes a request, in order, and
a short range (one indexed record) is one ranged request. Listings are not cached, so a reader
built later sees the store as it is then. Backend errors name the URL.

Writes publish whole files or nothing: `publishing` streams a file that appears under its name only
when complete (locally a hidden temporary file, fsynced and renamed; on a store a multipart upload
completed at the end, aborted on error), and `write_bytes` does the same for small files (one PUT)."""

from __future__ import annotations

import errno
import io
import json
import os
import re
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Mapping, Sequence, Union

#: A local path or a URL string.
Location = Union[Path, str]
#: Bytes per request when streaming a URL; a range up to this size is fetched in one request.
BLOCK = 8 << 20

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
#: Constructor defaults per protocol (a `storage_options` key overrides them).
_DEFAULTS: dict[str, dict[str, Any]] = {p: {"use_listings_cache": False} for p in ("s3", "s3a", "gs", "gcs")}
_clients: dict[int, dict[tuple[str, str], Any]] = {}  # pid -> (protocol, options) -> filesystem


def is_url(location: Any) -> bool:
    return isinstance(location, str) and _SCHEME.match(location) is not None


def location(p: str | os.PathLike) -> Location:
    """`p` as a location: a URL string (without a trailing "/"), else a Path."""
    return p.rstrip("/") if is_url(p) else Path(p)


def join(base: Location, name: str) -> Location:
    return f"{base}/{name}" if is_url(base) else Path(base) / name


def name(loc: Location) -> str:
    return loc.rsplit("/", 1)[-1] if is_url(loc) else Path(loc).name


def parent(loc: Location) -> Location:
    return loc.rsplit("/", 1)[0] if is_url(loc) else Path(loc).parent


def canonical(loc: Location) -> Location:
    """What tells two locations of one file apart from two files: the resolved path, or the URL."""
    return loc if is_url(loc) else Path(loc).resolve()


def _fs(url: str, options: Mapping[str, Any] | None) -> tuple[Any, str]:
    """(this process's filesystem for the URL's protocol and options, the URL without its scheme)."""
    import fsspec

    protocol = url.split("://", 1)[0]
    opts = {**_DEFAULTS.get(protocol, {}), **_emulated(protocol), **(options or {})}
    key = (protocol, json.dumps(opts, sort_keys=True, default=repr))
    mine = _clients.setdefault(os.getpid(), {})
    if key not in mine:
        with _naming(url):
            mine[key] = fsspec.filesystem(protocol, skip_instance_cache=True, **opts)
    return mine[key], mine[key]._strip_protocol(url)


def _emulated(protocol: str) -> dict[str, Any]:
    """Defaults for a GCS emulator (STORAGE_EMULATOR_HOST, which gcsfs reads for its endpoint): no
    credentials, as google-cloud-storage does (gcsfs would look for Google's first, on a metadata
    server too), and no zonal-bucket probe over gRPC, which an emulator does not speak (gcsfs's
    default, read when it is imported: it waits out a timeout of 40-60 s a bucket)."""
    if protocol not in ("gs", "gcs") or not os.environ.get("STORAGE_EMULATOR_HOST"):
        return {}
    os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    return {"token": "anon"}


#: Packages whose errors are a store's errors even where they are no OSError (botocore's
#: EndpointConnectionError, once s3fs's retries are spent, is a plain Exception).
_BACKENDS = {"botocore", "aiobotocore", "aiohttp", "s3fs", "gcsfs", "google", "fsspec"}


@contextmanager
def _naming(url: str) -> Iterator[None]:
    """A backend's error as one line naming the URL (FileNotFoundError and PermissionError kept), also
    where it is no OSError (botocore's connection errors once s3fs's retries are spent; gcsfs's
    HttpError). gcsfs refuses with a two-line OSError "Forbidden: ..." (403), or an HttpError (401):
    a PermissionError for 401 and 403."""
    try:
        yield
    except Exception as e:
        if not isinstance(e, OSError) and type(e).__module__.split(".")[0] not in _BACKENDS:
            raise
        code = getattr(e, "code", None) if type(e).__module__.startswith("gcsfs.") else None  # an HttpError
        text = " ".join(str(e.strerror if isinstance(e, OSError) and e.strerror else e).split()) or type(e).__name__
        denied = isinstance(e, PermissionError) or code in (401, 403) or text.startswith("Forbidden: ")
        kind = PermissionError if denied else FileNotFoundError if isinstance(e, FileNotFoundError) else OSError
        raise kind(f"{url}: {text}") from None


def _kind(url: str, options: Mapping[str, Any] | None) -> str | None:
    """"file", "directory" (a prefix with objects under it, or a bucket) or None (nothing there)."""
    fs, path = _fs(url, options)
    try:
        with _naming(url):
            return fs.info(path)["type"]
    except FileNotFoundError:
        return None


def is_file(loc: Location, options: Mapping[str, Any] | None = None) -> bool:
    return _kind(loc, options) == "file" if is_url(loc) else Path(loc).is_file()


def is_dir(loc: Location, options: Mapping[str, Any] | None = None) -> bool:
    return _kind(loc, options) == "directory" if is_url(loc) else Path(loc).is_dir()


def size(loc: Location, options: Mapping[str, Any] | None = None) -> int:
    if not is_url(loc):
        return Path(loc).stat().st_size
    fs, path = _fs(loc, options)
    with _naming(loc):
        return fs.size(path)


def read_bytes(loc: Location, options: Mapping[str, Any] | None = None) -> bytes:
    if not is_url(loc):
        return Path(loc).read_bytes()
    fs, path = _fs(loc, options)
    with _naming(loc):
        return fs.cat_file(path)


def read_text(loc: Location, options: Mapping[str, Any] | None = None) -> str:
    return read_bytes(loc, options).decode() if is_url(loc) else Path(loc).read_text()


def glob(directory: Location, pattern: str, options: Mapping[str, Any] | None = None) -> list[Location]:
    """The entries of a folder whose names match `pattern` (no recursion), in no particular order."""
    if not is_url(directory):
        return list(Path(directory).glob(pattern))
    fs, path = _fs(directory, options)
    scheme = directory.split("://", 1)[0]
    with _naming(directory):
        return [f"{scheme}://{p}" for p in fs.glob(f"{path}/{pattern}")]


@contextmanager
def open_read(loc: Location, start: int = 0, end: int | None = None,
              options: Mapping[str, Any] | None = None) -> Iterator[tuple[BinaryIO, int]]:
    """(a binary file whose reads begin at byte `start`, the file's size in bytes). Reads may stop
    at `end` where it is given. A URL is streamed BLOCK bytes a request; a range [start, end) of
    at most BLOCK bytes is fetched in one request (its size: what the range held, from byte 0)."""
    if not is_url(loc):
        with open(loc, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(start)
            yield f, size
        return
    fs, path = _fs(loc, options)
    with _naming(loc):
        if end is not None and end - start <= BLOCK:
            data = fs.cat_file(path, start=start, end=end) if end > start else b""
            yield io.BytesIO(data), start + len(data)
            return
        raw = fs.open(path, "rb", block_size=BLOCK, cache_type="none")
        with io.BufferedReader(raw, BLOCK) as f:
            f.seek(start)
            yield f, raw.size


def open_random(loc: Location, options: Mapping[str, Any] | None = None) -> BinaryIO:
    """A binary file for a few reads at known offsets (a parquet footer): each read of a URL is one
    ranged request for exactly the bytes asked, with no read-ahead (s3fs's default fetches megabytes
    a miss) and no buffer of ours. Callers close it."""
    if not is_url(loc):
        return open(loc, "rb")
    fs, path = _fs(loc, options)
    with _naming(loc):
        return fs.open(path, "rb", cache_type="none")


#: Bytes fetched from a parquet file's end for its footer (one request; more only if the footer is longer).
FOOTER = 1 << 20
#: Column chunks closer than this are fetched in one ranged request.
MAX_GAP = 64 << 10


def open_parquet(loc: Location, columns: Sequence[str], options: Mapping[str, Any] | None = None) -> BinaryIO:
    """A parquet file of which only the footer and the chunks of `columns` (and of the pandas index)
    will be read: a URL's footer is fetched, then every such chunk at once, in concurrent ranged
    requests, into memory (fsspec's known-parts cache). Per-read requests would pay one round trip a
    column chunk; fsspec.parquet plans the same ranges but matches every chunk's name against every
    column in Python, about a second of CPU a file for 1,630 chunks x 385 names."""
    if not is_url(loc):
        return open(loc, "rb")
    import pyarrow as pa
    import pyarrow.parquet as pq
    from fsspec.parquet import AlreadyBufferedFile

    fs, path = _fs(loc, options)
    with _naming(loc):
        size = fs.size(path)
        tail = fs.cat_file(path, start=max(size - FOOTER, 0), end=size) if size else b""
        if len(tail) < 12 or tail[-4:] != b"PAR1":
            return io.BytesIO(tail)  # not parquet: pyarrow says so, naming what it found
        need = int.from_bytes(tail[-8:-4], "little") + 8
        if need > len(tail):
            tail = fs.cat_file(path, start=max(size - need, 0), end=size - len(tail)) + tail
        meta = pq.read_metadata(pa.BufferReader(tail[-need:]))
        wanted = set(columns)
        pandas = json.loads((meta.metadata or {}).get(b"pandas", b"{}"))
        wanted |= {c for c in pandas.get("index_columns", []) if isinstance(c, str)}
        spans = []
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for c in range(group.num_columns):
                chunk = group.column(c)
                if chunk.path_in_schema in wanted:
                    first = chunk.dictionary_page_offset if chunk.has_dictionary_page else chunk.data_page_offset
                    spans.append([first, first + chunk.total_compressed_size])
        sampled = size - len(tail)  # the tail holds every byte from here
        merged: list[list[int]] = []
        for a, b in sorted((a, min(b, sampled)) for a, b in spans if a < sampled):
            if merged and a - merged[-1][1] <= MAX_GAP:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        blocks = fs.cat_ranges([path] * len(merged), [a for a, _ in merged], [b for _, b in merged],
                               on_error="raise") if merged else []
    parts = {(a, b): data for (a, b), data in zip(merged, blocks)}
    parts[(sampled, size)] = tail
    return AlreadyBufferedFile(fs=None, path=path, mode="rb", cache_type="parts", cache_options={"data": parts},
                               size=size)


def makedirs(loc: Location) -> None:
    """Create a local folder and its parents; a store needs no folders for its prefixes."""
    if not is_url(loc):
        Path(loc).mkdir(parents=True, exist_ok=True)


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


@contextmanager
def publishing(loc: Location, options: Mapping[str, Any] | None = None) -> Iterator[BinaryIO]:
    """A new binary file that appears at `loc`, replacing any file there, only when the block ends
    without an exception; until then readers see the old file or none. Locally: a hidden temporary
    file beside it, fsynced, renamed over it (removed on error). On a store: a multipart upload with
    autocommit off, completed at the end (the object appears whole, at once) or aborted on error; a
    process killed meanwhile leaves only an incomplete upload, which no listing or read shows."""
    if not is_url(loc):
        path = Path(loc)
        tmp = temporary(path)
        try:
            with writing(tmp), open(tmp, "wb") as f:
                yield f
                durable(f)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return
    fs, path = _fs(loc, options)
    with _naming(loc):
        f = fs.open(path, "wb", autocommit=False)
    write = f.write

    def named_write(data: bytes) -> int:  # a part's failed upload names the URL
        with _naming(loc):
            return write(data)

    f.write = named_write
    try:
        yield f
        with _naming(loc):
            f.close()  # uploads the last part
            f.commit()
    except BaseException:
        with suppress(Exception):
            f.discard()
        f.closed = True  # nothing left to flush
        raise


def write_bytes(loc: Location, data: bytes, options: Mapping[str, Any] | None = None) -> None:
    """A whole small file, published as `publishing` does (on a store: one PUT, which is atomic)."""
    if not is_url(loc):
        Path(loc).parent.mkdir(parents=True, exist_ok=True)
        with publishing(loc) as f:
            f.write(data)
        return
    fs, path = _fs(loc, options)
    with _naming(loc):
        fs.pipe_file(path, data)


def remove(loc: Location, options: Mapping[str, Any] | None = None) -> None:
    """Delete a file if it is there."""
    if not is_url(loc):
        Path(loc).unlink(missing_ok=True)
        return
    fs, path = _fs(loc, options)
    with suppress(FileNotFoundError), _naming(loc):
        fs.rm_file(path)
