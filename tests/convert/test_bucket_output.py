"""Converting into a bucket: `out_dir=s3://...` against moto's S3 server on 127.0.0.1. The local
conversion of the same data (the `converted` fixture, proven equal to the reference notebook's
output elsewhere) is what every bucket's objects are compared with, byte for byte."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("moto.server", reason="moto[server] is not installed (a test extra: pip install -e '.[test]')")
pytest.importorskip("s3fs", reason="s3fs is not installed (the s3 extra: pip install -e '.[s3,test]')")

from buckets import new_bucket, s3, tree_bytes_url  # noqa: E402
from conftest import ROOT, convert, tree_bytes  # noqa: E402

from aslfr.errors import InputError  # noqa: E402
from aslfr.source.synthetic import SplitSpec, generate  # noqa: E402

SUBS = {"train": "train", "supplemental": "sup"}


@pytest.fixture(autouse=True)
def _env(s3_env):
    pass


def _cmd(module: str, *args: str, **popen) -> subprocess.Popen:
    quiet = ["progress=false"] if "aslfr.convert" in module else []
    return subprocess.Popen([sys.executable, *module.split(), *args, *quiet], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, **popen)


def _run(module: str, *args: str, cwd) -> subprocess.CompletedProcess:
    proc = _cmd(module, *args, cwd=cwd)
    out, err = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _receipts(url: str) -> dict[str, bytes]:
    return {k: v for k, v in tree_bytes_url(url, hidden=True).items() if k.startswith(".aslfr/")}


def _same_as_local(url: str, local, sub: str) -> None:
    """The records, statistics, manifest and receipts under `url`/tfrecords/`sub` are the local ones."""
    expected = tree_bytes(local / "tfrecords" / sub)
    assert tree_bytes_url(f"{url}/tfrecords/{sub}") == expected and len(expected) > 3
    receipts = _receipts(f"{url}/tfrecords/{sub}")
    assert receipts == {f".aslfr/{p.name}": p.read_bytes() for p in (local / "tfrecords" / sub / ".aslfr").glob("*.json")}


def test_bucket_to_bucket_equals_the_local_conversion(converted, small_data, tmp_path):
    """Data read from one bucket, records written to another by 2 forked workers: the same bytes,
    receipts included; no run marker is left; inference_args.json beside the records."""
    data = new_bucket(small_data, "data")
    out = f"{new_bucket()}/out"
    for split in SUBS:
        r = convert(f"{data}/data", out, f"split={split}", "num_workers=2", "multiprocessing_context=fork")
        assert r["finalized"] and r["records_dir"] == f"{out}/tfrecords/{SUBS[split]}"
    for sub in SUBS.values():
        _same_as_local(out, converted, sub)
    assert s3().cat_file(f"{out}/inference_args.json") == (converted / "inference_args.json").read_bytes()


def test_spawned_workers_write_to_a_bucket(converted, small_data, tmp_path):
    """Spawned workers build their own clients from the pickled settings; the run summary goes to the bucket too."""
    out = f"{new_bucket()}/out"
    r = convert(small_data, out, "num_workers=2", "multiprocessing_context=spawn", f"report={out}/report.json")
    assert json.loads(s3().cat_file(f"{out}/report.json")) == json.loads(json.dumps(r))
    _same_as_local(out, converted, "train")


def test_local_data_to_a_bucket_resumes_by_receipts(converted, small_data):
    out = f"{new_bucket()}/out"
    first = convert(small_data, out, "num_workers=0")
    assert first["shards_written"] == 12 and first["finalized"]
    again = convert(small_data, out, "num_workers=0")
    assert again["shards_written"] == 0 and again["shards_resumed"] == 12 and again["files_resumed"] == 3
    # a shard lost from the store is noticed by its receipt and rewritten, alone
    fs = s3()
    lost = sorted(k for k in tree_bytes_url(f"{out}/tfrecords/train") if k.endswith(".tfrec"))[4]
    fs.rm_file(f"{out}/tfrecords/train/{lost}")
    third = convert(small_data, out, "num_workers=0")
    assert third["shards_written"] == 1 and third["shards_resumed"] == 11
    _same_as_local(out, converted, "train")


@pytest.fixture(scope="module")
def big_records(tmp_path_factory):
    """2 train files of 48 long sequences (shards of ~5-12 MB, so that a shard is uploaded in parts
    of 5 MiB), and their local conversion."""
    root = tmp_path_factory.mktemp("big")
    data = generate(root / "data", SplitSpec(2, 48, 400, 8), None, seed=11)
    convert(data, root / "full", "num_workers=0")
    return data, root / "full"


PART = 5 << 20  # the smallest part S3 takes: the test's shards are uploaded in several


def _paused(data, out: str, cwd, *args: str, bytes_: int = 0) -> subprocess.Popen:
    """A conversion into `out` stopped for good inside its first shard of file 1 (shard number >= 4)
    once that shard has `bytes_` bytes (tests/hooks/paused_convert.py)."""
    paused = cwd / f"paused-{time.monotonic_ns()}.txt"
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests/hooks/paused_convert.py"), f"data_dir={data}",
                             f"out_dir={out}", "num_workers=0", "progress=false", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "ASLFR_TEST_PAUSE_AT": "4",
                                 "ASLFR_TEST_PAUSED": str(paused), "ASLFR_TEST_PAUSE_BYTES": str(bytes_)})
    deadline = time.monotonic() + 300  # a hang guard only: the paused state is permanent
    while not paused.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"the run did not reach its pause point: {proc.communicate()[1][-2000:]}")
        time.sleep(0.05)
    return proc


def test_kill_9_mid_upload_leaves_no_shard_and_the_rerun_completes_identically(big_records, tmp_path):
    data, full = big_records
    bucket = new_bucket()
    out = f"{bucket}/out"
    proc = _paused(data, out, tmp_path, f"+storage_options.default_block_size={PART}", bytes_=PART + (1 << 20))
    fs = s3()
    paused_shard = int(next(iter((tmp_path.glob("paused-*.txt")))).read_text().split()[1])
    uploads = fs.call_s3("list_multipart_uploads", Bucket=bucket.removeprefix("s3://")).get("Uploads", [])
    assert [u["Key"].rsplit("/", 1)[-1].split(".")[0] for u in uploads] == [str(paused_shard)]  # mid-upload
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    seen = tree_bytes_url(f"{out}/tfrecords/train", hidden=True)
    written = {k for k in seen if k.endswith(".tfrec")}
    assert written and not [k for k in written if int(k.split(".")[0]) >= paused_shard]
    for k in written:  # what is visible is complete
        assert seen[k] == (full / "tfrecords/train" / k).read_bytes()
    assert "manifest.json" not in seen and [k for k in seen if k.startswith(".aslfr/run-")]  # its marker stays

    res = _run("-m aslfr.convert", f"data_dir={data}", f"out_dir={out}", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"{len(written)} already complete (resumed)" in res.stdout
    assert tree_bytes_url(f"{out}/tfrecords/train") == tree_bytes(full / "tfrecords/train")


def test_two_runs_of_the_same_settings_share_a_prefix(big_records, tmp_path):
    """No locks on a store: both runs write every unit, in the same bytes, and both finish."""
    data, full = big_records
    out = f"{new_bucket()}/out"
    procs = [_cmd("-m aslfr.convert", f"data_dir={data}", f"out_dir={out}", f"num_workers={w}", "resume=false",
                  cwd=tmp_path) for w in (0, 2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
    assert tree_bytes_url(f"{out}/tfrecords/train") == tree_bytes(full / "tfrecords/train")
    assert not [k for k in tree_bytes_url(out, hidden=True) if "/run-" in k]


def test_a_run_of_other_settings_is_refused_while_one_writes(big_records, tmp_path):
    data, full = big_records
    out = f"{new_bucket()}/out"
    first = _paused(data, out, tmp_path)
    try:
        res = _run("-m aslfr.convert", f"data_dir={data}", f"out_dir={out}", "shuffle_seed=7", cwd=tmp_path)
        assert res.returncode == 1
        line, = res.stderr.strip().splitlines()
        assert line.startswith(f"aslfr: error: {out}/tfrecords/train: a conversion with other settings or inputs "
                               f"is writing here (pid {first.pid} on {os.uname().nodename}, started ")
        assert line.endswith("if it is no longer running") and f"delete {out}/tfrecords/train/.aslfr/run-" in line
    finally:
        os.killpg(first.pid, signal.SIGTERM)
        first.wait(timeout=60)
    # the first run withdrew its marker on SIGTERM: the same command now runs
    res = _run("-m aslfr.convert", f"data_dir={data}", f"out_dir={out}", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert tree_bytes_url(f"{out}/tfrecords/train") == tree_bytes(full / "tfrecords/train")


def test_fold_sweep_into_a_bucket_then_merge(converted, small_data, tmp_path):
    """`-m +fold=...` jobs write parts into one prefix (Hydra's logs stay local); the sweep's end
    finalizes, and `aslfr.merge` on the URL agrees."""
    out = f"{new_bucket()}/out"
    res = _run("-m aslfr.convert -m", f"data_dir={small_data}", f"out_dir={out}", "+fold=0,1", "num_workers=0",
               cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "manifest not written" in res.stdout and "manifest.json" not in tree_bytes_url(f"{out}/tfrecords/train")
    res = _run("-m aslfr.convert -m", f"data_dir={small_data}", f"out_dir={out}", "+fold=2,3", "num_workers=0",
               cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    _same_as_local(out, converted, "train")
    assert (tmp_path / "hydra-sweeps" / "s3" / out.removeprefix("s3://") / ".hydra").is_dir()
    res = _run("-m aslfr.merge", f"out_dir={out}", f"data_dir={small_data}", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.startswith(f"train: manifest.json, means.npy, stds.npy written (48 records, 12 shards) in {out}/tfrecords/train")
    _same_as_local(out, converted, "train")


def test_missing_bucket_and_wrong_credentials_are_one_line(small_data, tmp_path, monkeypatch):
    out = "s3://no-such-bucket-aslfr/out"
    with pytest.raises(FileNotFoundError, match=f"^{out}/inference_args.json: "):
        convert(small_data, out, "num_workers=0")
    res = _run("-m aslfr.convert", f"data_dir={small_data}", f"out_dir={out}", "num_workers=0", cwd=tmp_path)
    assert res.returncode == 1 and res.stderr.count("\n") == 1 and res.stderr.startswith(f"aslfr: error: {out}/")

    from moto import settings

    out = f"{new_bucket()}/out"
    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # moto checks credentials from now on
    with pytest.raises(PermissionError, match=f"^{out}/"):
        convert(small_data, out, "num_workers=0", "+storage_options.key=AKIAWRONGWRONGWRONG0",
                "+storage_options.secret=wrong")


def test_storage_options_are_checked_first(small_data):
    from aslfr.convert.settings import Settings

    for bad in ([1], {1: 2}, "key=x"):
        with pytest.raises(InputError, match=r"^storage_options must be a mapping of option names to values, got "):
            Settings(str(small_data), "s3://b/out", storage_options=bad).check()
