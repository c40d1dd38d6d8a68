"""Runs of other settings into one output folder: the second is refused with one line while the
first lives; a marker left by a killed run (a lease no longer renewed) blocks nobody."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aslfr.convert.locks import claimed
from aslfr.errors import InputError
from aslfr.source.synthetic import SplitSpec, generate
from conftest import ROOT, convert, tree_bytes


@pytest.fixture
def data(tmp_path) -> Path:
    return generate(tmp_path / "data", SplitSpec(2, 12, 6, 6), None, seed=13)


def _paused(data: Path, out: Path) -> subprocess.Popen:
    """A full conversion stopped for good inside file 1's first shard (tests/hooks/paused_convert.py)."""
    paused = out.parent / "paused.txt"
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests/hooks/paused_convert.py"), f"data_dir={data}",
                             f"out_dir={out}", "num_workers=0", "progress=false"], cwd=out.parent,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "ASLFR_TEST_PAUSE_AT": "4",
                                 "ASLFR_TEST_PAUSED": str(paused)})
    deadline = time.monotonic() + 300  # a hang guard only: the pause is permanent
    while not paused.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(proc.communicate()[1][-2000:])
        time.sleep(0.02)
    return proc


def _convert_cli(data: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aslfr.convert", f"data_dir={data}", f"out_dir={out}",
                           "progress=false", "num_workers=0", *args], capture_output=True, text=True,
                          cwd=out.parent, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)


def test_a_local_run_of_other_settings_is_refused_while_one_writes_and_not_after_a_kill_9(data, tmp_path):
    out = tmp_path / "out"
    first = _paused(data, out)
    try:
        res = _convert_cli(data, out, "shuffle_seed=7")
        assert res.returncode == 1
        line, = res.stderr.strip().splitlines()
        assert line.startswith(f"aslfr: error: {out}/tfrecords/train: a conversion with other settings or inputs "
                               f"is writing here (pid {first.pid} on {os.uname().nodename}, started ")
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # its marker stays behind
        first.communicate()
    assert list((out / "tfrecords/train/.aslfr").glob("run-*.json"))
    res = _convert_cli(data, out, "shuffle_seed=7")
    assert res.returncode == 0, res.stderr
    assert not list((out / "tfrecords/train/.aslfr").glob("run-*.json"))
    fresh = tmp_path / "fresh"
    convert(data, fresh, "num_workers=0", "shuffle_seed=7")
    assert tree_bytes(out / "tfrecords/train") == tree_bytes(fresh / "tfrecords/train")


def _marker(folder: Path, expires: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    m = folder / "run-0000000000000000-elsewhere.json"
    m.write_text(json.dumps({"host": "another-host", "pid": 1, "started": "2026-01-01T00:00:00Z", "expires": expires}))
    return m


def test_a_marker_of_another_host_blocks_until_its_lease_expires(tmp_path):
    records = tmp_path / "tfrecords/train"
    live = _marker(records / ".aslfr", time.time() + 3600)
    with pytest.raises(InputError, match="pid 1 on another-host"):
        with claimed(records, "1111111111111111"):
            pass
    assert live.exists()
    expired = _marker(records / ".aslfr", time.time() - 1)
    with claimed(records, "1111111111111111"):
        mine = [p.name for p in (records / ".aslfr").glob("run-*.json")]
        assert len(mine) == 1 and mine[0].startswith("run-1111111111111111-")
    assert not expired.exists() and not list((records / ".aslfr").glob("run-*.json"))


def test_a_live_run_renews_its_lease(tmp_path):
    records = tmp_path / "tfrecords/train"
    with claimed(records, "1111111111111111", lease=0.3):
        marker, = (records / ".aslfr").glob("run-*.json")
        first = json.loads(marker.read_text())["expires"]
        deadline = time.monotonic() + 60  # a hang guard only
        while json.loads(marker.read_text())["expires"] == first:
            assert time.monotonic() < deadline
            time.sleep(0.05)
