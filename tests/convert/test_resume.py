"""Resume never keeps stale records: a rerun after an input change equals a fresh conversion and
rewrites exactly the changed file; concurrent runs into one out_dir wait for each other's lock
and leave a correct tree."""

from __future__ import annotations
import os
import shutil
import subprocess
import sys
from pathlib import Path
import pandas as pd
import pytest
from aslfr.source.synthetic import SplitSpec, generate
from conftest import convert, tree_bytes


@pytest.fixture
def data(tmp_path) -> Path:
    return generate(tmp_path / "data", SplitSpec(3, 10, 6, 6), None, seed=11)


def _fresh(data: Path, tmp_path: Path, name: str) -> dict[str, bytes]:
    out = tmp_path / name
    shutil.rmtree(out, ignore_errors=True)
    convert(data, out, "num_workers=0")
    return tree_bytes(out / "tfrecords/train")


def _change_phrase(data: Path) -> None:
    csv = pd.read_csv(data / "train.csv", keep_default_na=False)
    csv.loc[4, "phrase"] = "a changed phrase"
    csv.to_csv(data / "train.csv", index=False)


def _change_participant(data: Path) -> None:
    csv = pd.read_csv(data / "train.csv", keep_default_na=False)
    csv.loc[csv.participant_id == csv.participant_id.iloc[0], "participant_id"] = 999
    csv.to_csv(data / "train.csv", index=False)


def _change_column(data: Path) -> None:
    path = data / pd.read_csv(data / "train.csv").path.iloc[-1]
    df = pd.read_parquet(path)
    df["x_right_hand_0"] = df["x_right_hand_0"] + 0.25
    df.to_parquet(path)


@pytest.mark.parametrize("change", [_change_phrase, _change_participant, _change_column])
def test_rerun_after_an_input_change_equals_a_fresh_conversion(data, tmp_path, change):
    out = tmp_path / "out"
    convert(data, out, "num_workers=0")
    before = tree_bytes(out / "tfrecords/train")
    change(data)
    r = convert(data, out, "num_workers=0")  # defaults: resume=true
    after = tree_bytes(out / "tfrecords/train")
    assert after != before
    assert after == _fresh(data, tmp_path, "fresh")
    assert r["shards_written"] > 0
    subprocess.run([sys.executable, "-m", "aslfr.verify", str(out)], check=True, capture_output=True)


def test_resume_rewrites_exactly_the_changed_file(data, tmp_path):
    """A parquet column changes in the last file: only that file's shards are rewritten."""
    out = tmp_path / "out"
    convert(data, out, "num_workers=0")
    d = out / "tfrecords/train"
    before = tmp_path / "before"  # hard links keep the old files' inodes alive, so none is reused
    before.mkdir()
    for p in d.glob("*.tfrec"):
        os.link(p, before / p.name)
    _change_column(data)
    r = convert(data, out, "num_workers=0")
    assert r["files_resumed"] == 2 and r["shards_resumed"] + r["shards_written"] == 12
    rewritten = {p.name for p in d.glob("*.tfrec")
                 if not (before / p.name).exists() or not os.path.samefile(before / p.name, p)}
    assert rewritten and {int(n.split(".")[0]) // 4 for n in rewritten} == {2}
    assert r["shards_written"] == 4


def test_two_identical_runs_at_once(data, tmp_path):
    clean = _fresh(data, tmp_path, "clean")
    for trial in range(4):
        out = tmp_path / f"out{trial}"
        cmd = [sys.executable, "-m", "aslfr.convert", f"data_dir={data}", f"out_dir={out}", "progress=false",
               f"num_workers={trial % 2 * 2}"]
        procs = [subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        results = [p.communicate(timeout=300) for p in procs]
        assert all(p.returncode == 0 for p in procs), results
        res = subprocess.run([sys.executable, "-m", "aslfr.verify", str(out)], capture_output=True, text=True)
        assert res.returncode == 0, res.stdout
        assert tree_bytes(out / "tfrecords/train") == clean
        assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


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
                                 "num_workers=0", "progress=false"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
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
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
    rest = "".join(iter(lambda: lines.get(timeout=60), None))
    assert proc.returncode == 0, rest
    assert "waiting for" not in rest and (records / layout.MANIFEST).exists()
    convert(data, tmp_path / "fresh", "num_workers=0")
    assert tree_bytes(records) == tree_bytes(layout.records_dir(tmp_path / "fresh", "train"))
