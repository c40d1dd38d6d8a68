"""Faults of the store: a connection cut mid-read or mid-upload, the server down for a while or for
good, 0-byte inputs. Each ends in a retry that succeeds, or in one error line naming the URL; never
in silent loss or a hang.

The server is moto's S3 app on a port of this test's own (`Server`): it can be stopped at a known
request (its listener closed, open connections reset) and started again on the same port. moto
keeps its objects in the process, so they survive a restart. While the server is down for a while,
the port resets each connection and counts them: it comes back after the client has failed twice,
an event, not a delay. Down for good, the port is closed (connection refused)."""

from __future__ import annotations

import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs

import pytest

pytest.importorskip("moto.server", reason="moto[server] is not installed (a test extra: pip install -e '.[test]')")
pytest.importorskip("s3fs", reason="s3fs is not installed (the s3 extra: pip install -e '.[s3,test]')")

from buckets import ENV, new_bucket, s3, tree_bytes_url  # noqa: E402
from conftest import ROOT, convert, tree_bytes  # noqa: E402
from compare import same_items  # noqa: E402

from aslfr.data.datasets import TFRecordShards  # noqa: E402
from aslfr.errors import InputError  # noqa: E402
from aslfr.format import store  # noqa: E402
from aslfr.source.synthetic import SplitSpec, generate  # noqa: E402

HANG = 300  # seconds: a hang guard only (a dead server fails a read in ~12 s, see the report)
PART = 5 << 20  # the smallest part S3 takes


class Server:
    """moto's S3 server on 127.0.0.1, stopped by `cut` at the first request `when(environ)` picks:
    halfway through its response, or before answering it."""

    def __init__(self):
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        self.app = DomainDispatcherApplication(create_backend_app)
        self.port = 0
        self.lock = threading.Lock()
        self.conns: set[socket.socket] = set()
        self.handlers: set[threading.Thread] = set()
        self.when = None
        self.cut_at: str | None = None  # the path of the request cut
        self.resets = 0  # connections reset while down
        self.server = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut(self, when, halfway: bool, restart_after: int | None) -> None:
        """Stop at the request `when` picks; start again after `restart_after` connections were
        reset meanwhile (None: stay down, the port closed)."""
        self.when, self.halfway, self.restart_after = when, halfway, restart_after

    def _wsgi(self, environ, start_response):
        when = self.when
        if when is None or not when(environ):
            return self.app(environ, start_response)
        self.when = None
        self.cut_at = environ["PATH_INFO"]
        if not self.halfway:
            self._down()
            start_response("503 Service Unavailable", [])
            return []
        body = b"".join(self.app(environ, start_response))

        def halves():
            yield body[:len(body) // 2]
            self._down()
            yield body[len(body) // 2:]
        return halves()

    def _down(self) -> None:
        self.stop()
        if self.restart_after is not None:
            listener = self._listener()
            threading.Thread(target=self._resetting, args=(listener,), daemon=True).start()

    def _resetting(self, listener: socket.socket) -> None:
        with listener:
            for _ in range(self.restart_after):
                conn, _ = listener.accept()
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()  # a reset
                self.resets += 1
        self.start()

    def _listener(self) -> socket.socket:
        """A socket listening on the port, once the last connections have let it go."""
        self._join()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 30
        while True:
            try:
                sock.bind(("127.0.0.1", self.port))
                break
            except OSError:  # a connection just closed may hold the port a moment
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        sock.listen(64)
        return sock

    def _join(self) -> None:
        with self.lock:
            others = self.handlers - {threading.current_thread()}
        for t in others:
            t.join(30)

    def start(self) -> None:
        from moto.moto_server.werkzeug_app import MotoRequestHandler
        from werkzeug.serving import make_server

        with self._listener() as sock:
            srv = make_server("127.0.0.1", self.port, self._wsgi, threaded=True, request_handler=MotoRequestHandler,
                              fd=sock.fileno())
        process = srv.process_request_thread

        def tracked(request, address):
            with self.lock:
                self.conns.add(request)
                self.handlers.add(threading.current_thread())
            try:
                process(request, address)
            finally:
                with self.lock:
                    self.conns.discard(request)
                    self.handlers.discard(threading.current_thread())

        srv.process_request_thread = tracked
        self.port = srv.server_address[1]
        self.server = srv
        threading.Thread(target=srv.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Close the listener and reset every open connection."""
        srv, self.server = self.server, None
        if srv is None:
            return
        srv.shutdown()
        srv.server_close()
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture
def server(monkeypatch):
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    srv = Server()
    for k, v in {**ENV, "AWS_ENDPOINT_URL": srv.url}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(store, "_clients", {})  # none built for another test's server
    yield srv
    srv.when = None
    srv.stop()


def _bounded(fn, *args):
    """fn(*args), failing the test instead of hanging."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result(timeout=HANG)


def _nth_ranged_get(key_end: str, n: int):
    seen = []

    def when(environ) -> bool:
        if environ["REQUEST_METHOD"] == "GET" and environ.get("HTTP_RANGE") and environ["PATH_INFO"].endswith(key_end):
            seen.append(environ["HTTP_RANGE"])
            return len(seen) == n
        return False
    return when


def _largest_shard(folder) -> str:
    return max(folder.glob("*.tfrec"), key=lambda p: p.stat().st_size).name


# a: reads

def test_a_read_cut_mid_shard_resumes_when_the_server_is_back(server, converted, monkeypatch):
    """The server stops halfway through the 2nd block of a shard and comes back on the same port:
    the iteration ends with the local items, in order, the objects intact across the restart."""
    monkeypatch.setattr(store, "BLOCK", 16 << 10)
    train = converted / "tfrecords/train"
    shard = _largest_shard(train)
    assert (train / shard).stat().st_size > 3 * store.BLOCK  # a stream of several requests
    url = f"{new_bucket(train, 'train', skip=('.aslfr',))}/train"
    server.cut(_nth_ranged_get(f"/train/{shard}", 2), halfway=True, restart_after=2)
    remote = _bounded(lambda: list(TFRecordShards(url)))
    assert server.cut_at.endswith(f"/train/{shard}") and server.resets == 2 and server.server is not None
    local = list(TFRecordShards(train))
    assert len(remote) == len(local) == 48
    for a, b in zip(remote, local):
        same_items(a, b)


def test_a_read_cut_for_good_is_one_error_naming_the_shard(server, converted, monkeypatch):
    monkeypatch.setattr(store, "BLOCK", 16 << 10)
    train = converted / "tfrecords/train"
    shard = _largest_shard(train)
    url = f"{new_bucket(train, 'train', skip=('.aslfr',))}/train"
    server.cut(_nth_ranged_get(f"/train/{shard}", 2), halfway=True, restart_after=None)
    with pytest.raises(OSError) as e:
        _bounded(lambda: list(TFRecordShards(url)))
    assert re.match(rf"{re.escape(url)}/{re.escape(shard)}: Could not connect to the endpoint URL", str(e.value))
    assert "\n" not in str(e.value)


# b: uploads

@pytest.fixture(scope="module")
def long_records(tmp_path_factory):
    """1 train file of 48 long sequences (shards of ~5-12 MB, uploaded in parts of 5 MiB) and its
    local conversion."""
    root = tmp_path_factory.mktemp("long")
    data = generate(root / "data", SplitSpec(1, 48, 400, 8), None, seed=11)
    convert(data, root / "local", "num_workers=0")
    return data, root / "local" / "tfrecords/train"


def _second_part(environ) -> bool:
    query = parse_qs(environ.get("QUERY_STRING", ""))
    return environ["REQUEST_METHOD"] == "PUT" and query.get("partNumber") == ["2"]


def test_an_upload_cut_between_parts_completes_when_the_server_is_back(server, long_records):
    data, local = long_records
    out = f"{new_bucket()}/out"
    server.cut(_second_part, halfway=False, restart_after=2)
    r = _bounded(convert, data, out, "num_workers=0", f"+storage_options.default_block_size={PART}")
    assert r["finalized"] and server.cut_at.endswith(".tfrec") and server.resets == 2
    assert tree_bytes_url(f"{out}/tfrecords/train") == tree_bytes(local)


def test_an_upload_cut_for_good_is_one_error_and_the_rerun_completes(server, long_records):
    """No shard, index or manifest is published by the failed run; the rerun writes the local bytes."""
    data, local = long_records
    out = f"{new_bucket()}/out"
    server.cut(_second_part, halfway=False, restart_after=None)
    with pytest.raises(InputError) as e:
        _bounded(convert, data, out, "num_workers=0", f"+storage_options.default_block_size={PART}")
    shard = server.cut_at.rsplit("/", 1)[-1]
    assert re.match(rf"{re.escape(out)}/tfrecords/train/{re.escape(shard)}: Could not connect to the endpoint URL: "
                    rf'"{server.url}/.*\?partNumber=2&uploadId=.*" \(while converting {re.escape(str(data))}/', str(e.value))
    assert "\n" not in str(e.value)

    server.start()  # back on the same port
    seen = tree_bytes_url(f"{out}/tfrecords/train")
    assert shard not in seen and "manifest.json" not in seen
    for name, blob in seen.items():  # what is visible is complete
        assert blob == (local / name).read_bytes()
    r = _bounded(convert, data, out, "num_workers=0", f"+storage_options.default_block_size={PART}")
    assert r["finalized"]
    assert tree_bytes_url(f"{out}/tfrecords/train") == tree_bytes(local)


# c: 0-byte objects

@pytest.mark.parametrize("empty, problem", [("parquet", "corrupt or truncated parquet file (Parquet file size is 0 bytes)"),
                                            ("csv", "unreadable CSV (")])
def test_a_0_byte_input_object_is_one_line_naming_it(server, small_data, tmp_path, empty, problem):
    """The command, as a user runs it: its whole stderr is the one line."""
    bucket = new_bucket(small_data, "data")
    name = "train.csv" if empty == "csv" else \
        sorted(p.relative_to(small_data).as_posix() for p in (small_data / "train_landmarks").glob("*.parquet"))[0]
    url = f"{bucket}/data/{name}"
    s3().pipe_file(url, b"")
    res = subprocess.run([sys.executable, "-m", "aslfr.convert", f"data_dir={bucket}/data", f"out_dir={tmp_path}",
                          "num_workers=0", "progress=false"], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=HANG)
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and res.stderr.startswith(f"aslfr: error: {url}: {problem}"), res.stderr
