"""Behaviour checked against truths derived outside the code under test: commands' error paths,
the lock's wait, and the settings that change what is written (each against the reference
notebook's own code, sklearn, numpy or the bytes on disk)."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _inspect(tmp_path, *args):
    res = subprocess.run([sys.executable, "-m", "aslfr.inspect", *args], capture_output=True, text=True, cwd=tmp_path,
                         timeout=300)
    return res.returncode, res.stdout, res.stderr


def _one_error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("aslfr: error: "), stderr
    return lines[0]


# -- inspect's error paths ------------------------------------------------------------------------

@pytest.mark.parametrize("made", [True, False], ids=["empty-folder", "no-folder"])
def test_inspect_without_records_folder(tmp_path, made):
    out = tmp_path / "out"
    if made:
        out.mkdir()
    rc, stdout, stderr = _inspect(tmp_path, f"out_dir={out}")
    line = _one_error_line(stderr)
    assert rc == 1 and stdout == ""
    assert str(out) in line and "no finished records folder" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == (["out"] if made else [])  # nothing written


def test_inspect_unknown_sequence_id(converted, tmp_path):
    pytest.importorskip("matplotlib", reason="pictures need matplotlib (aslfr[viz])")
    rc, stdout, stderr = _inspect(tmp_path, f"out_dir={converted}", "+sequence_id=987654321", f"png={tmp_path}/x.png")
    line = _one_error_line(stderr)
    assert rc == 1 and stdout == ""
    assert "sequence 987654321 not found" in line and str(converted) in line
    assert list(tmp_path.iterdir()) == []


# -- the lock's wait --------------------------------------------------------------------------------

def test_second_run_waits_for_the_lock_then_completes(tmp_path):
    """The test holds the run-wide lock (plain fcntl, as another run would); a conversion started
    meanwhile says it is waiting, naming the lock and its holder, and cannot finish; once the lock is
    released it completes, with the bytes of an undisturbed conversion. Synchronized on the message
    itself; the timeouts only guard against a hang."""
    import fcntl
    import os
    import queue
    import threading

    from aslfr.format import layout
    from aslfr.source.synthetic import SplitSpec, generate
    from conftest import convert, tree_bytes

    data = generate(tmp_path / "data", SplitSpec(2, 8, 4, 6), SplitSpec(1, 8, 4, 4), seed=3)
    out = tmp_path / "out"
    records = layout.records_dir(out, "train")
    lock = layout.lock_path(records)
    lock.parent.mkdir(parents=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    proc = None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, b"the test")
        proc = subprocess.Popen([sys.executable, "-m", "aslfr.convert", f"data_dir={data}", f"out_dir={out}",
                                 "num_workers=0", "progress=false"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=tmp_path)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in proc.stderr] + [lines.put(None)], daemon=True).start()
        seen = []
        while not seen or "waiting for" not in seen[-1]:
            line = lines.get(timeout=300)
            assert line is not None, f"the run ended without waiting: {''.join(seen)}"
            seen.append(line)
        assert seen[-1].strip() == f"aslfr: waiting for {lock} (held by the test)"
        assert proc.poll() is None and not (records / layout.MANIFEST).exists()  # blocked before finalizing
    finally:
        os.close(fd)  # releases the lock
        if proc is not None:
            try:
                proc.wait(timeout=300)
            finally:
                proc.kill() if proc.poll() is None else None
    rest = "".join(iter(lambda: lines.get(timeout=60), None))
    assert proc.returncode == 0, rest
    assert "waiting for" not in rest and (records / layout.MANIFEST).exists()
    convert(data, tmp_path / "fresh", "num_workers=0")
    assert tree_bytes(records) == tree_bytes(layout.records_dir(tmp_path / "fresh", "train"))
