"""Object-store test helpers: moto's S3 server on 127.0.0.1 (started by the `s3_endpoint` fixture in
conftest), fake credentials and no instance metadata, so nothing leaves the machine; buckets filled
from local folders; a prefix's objects as {relative name: bytes} to compare with `tree_bytes`."""

from __future__ import annotations

import uuid
from pathlib import Path

#: What every process talking to the test server needs besides AWS_ENDPOINT_URL.
ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
       "AWS_EC2_METADATA_DISABLED": "true"}


def s3():
    """A fresh s3fs client (the environment names the server)."""
    import s3fs

    return s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False)


def client(scheme: str):
    """A fresh client of the test server for "s3" (moto) or "gs" (fake-gcs-server, tests/gcs_buckets.py)."""
    if scheme == "gs":
        from gcs_buckets import gcs

        return gcs()
    return s3()


def upload(fs, local: Path, prefix: str, leave_out: str | None = None, skip=()) -> None:
    """Every file under `local` (but `leave_out`, and any under a folder named in `skip`) to `prefix`."""
    for p in sorted(Path(local).rglob("*")):
        rel = p.relative_to(local)
        if p.is_file() and rel.as_posix() != leave_out and not set(skip) & set(rel.parts):
            assert p.stat().st_size <= 16 << 20  # moto reads a whole object per GET
            fs.pipe_file(f"{prefix}/{rel.as_posix()}", p.read_bytes())


def new_bucket(local: Path | None = None, folder: str = "", scheme: str = "s3", **kw) -> str:
    """{scheme}://a-new-bucket, holding `local` under `folder`/ where given."""
    fs = client(scheme)
    name = f"aslfr-{uuid.uuid4().hex[:12]}"
    fs.mkdir(name)
    if local is not None:
        upload(fs, local, f"{name}/{folder}".rstrip("/"), **kw)
    return f"{scheme}://{name}"


def tree_bytes_url(url: str, hidden: bool = False) -> dict[str, bytes]:
    """Relative name -> bytes for the objects under `url` (receipts and .hydra left out unless `hidden`),
    as conftest.tree_bytes gives them for a folder."""
    scheme, root = url.rstrip("/").split("://", 1)
    fs = client(scheme)
    out = {}
    for key in sorted(fs.find(root)):
        rel = key[len(root) + 1:]
        if hidden or not {".aslfr", ".hydra"} & set(rel.split("/")):
            out[rel] = fs.cat_file(key)
    return out
