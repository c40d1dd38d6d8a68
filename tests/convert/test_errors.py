"""Bad input gets one clear line naming the file, the sequence and the problem; crashes leave no
partial shard; a killed run resumes to the same bytes; corrupt records are always detected."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aslfr.errors import InputError
from aslfr.source.synthetic import SplitSpec, generate
from conftest import ROOT, convert, tree_bytes


@pytest.fixture
def tiny(tmp_path) -> Path:
    return generate(tmp_path / "data", SplitSpec(2, 8, 4, 6), SplitSpec(1, 8, 4, 4), seed=3)


def _first_parquet(root: Path) -> Path:
    csv = pd.read_csv(root / "train.csv")
    return root / csv.path.iloc[0]


def _error(data, out, *overrides) -> str:
    with pytest.raises(InputError) as e:
        convert(data, out, "num_workers=0", *overrides)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_missing_data_root(tmp_path):
    assert "data directory not found" in _error(tmp_path / "nope", tmp_path / "out")


def test_missing_csv(tiny, tmp_path):
    (tiny / "train.csv").unlink()
    assert "train.csv: CSV file not found" in _error(tiny, tmp_path / "out")


def test_missing_csv_column(tiny, tmp_path):
    pd.read_csv(tiny / "train.csv").drop(columns="participant_id").to_csv(tiny / "train.csv", index=False)
    assert "missing required column(s) participant_id" in _error(tiny, tmp_path / "out")


def test_missing_parquet(tiny, tmp_path):
    p = _first_parquet(tiny)
    p.unlink()
    assert f"{p}: parquet file not found" in _error(tiny, tmp_path / "out")


def test_missing_selected_column(tiny, tmp_path):
    p = _first_parquet(tiny)
    pd.read_parquet(p).drop(columns=["x_right_hand_3"]).to_parquet(p)
    assert f"{p}: missing 1 selected column(s), first x_right_hand_3" in _error(tiny, tmp_path / "out")


def test_float64_column_is_cast_as_the_reference_does(tiny, tmp_path):
    """The reference reads parquet with pandas and writes float32 into the FloatList: a float64
    column gives the records of the float32 file, byte for byte."""
    convert(tiny, tmp_path / "f32", "num_workers=0")
    p = _first_parquet(tiny)
    df = pd.read_parquet(p)
    for col in ("y_face_0", "x_right_hand_3", "z_pose_11"):
        df[col] = df[col].astype("float64")
    df.to_parquet(p)
    assert pq.ParquetFile(p).schema_arrow.field("x_right_hand_3").type == pa.float64()
    convert(tiny, tmp_path / "f64", "num_workers=0", "resume=false")
    a, b = tree_bytes(tmp_path / "f64/tfrecords/train"), tree_bytes(tmp_path / "f32/tfrecords/train")
    assert a.pop("manifest.json") != b.pop("manifest.json")  # it records the parquet file's identity
    assert a == b


def test_wrong_dtype(tiny, tmp_path):
    p = _first_parquet(tiny)
    df = pd.read_parquet(p)
    df["y_face_0"] = df["y_face_0"].astype(str)
    df.to_parquet(p)
    assert re.search(r"column y_face_0 has dtype (large_)?string, expected float", _error(tiny, tmp_path / "out"))

def test_unknown_character_error_and_skip(tiny, tmp_path):
    csv = pd.read_csv(tiny / "train.csv")
    sid = int(csv.sequence_id.iloc[2])
    csv.loc[2, "phrase"] = "Hello"
    csv.to_csv(tiny / "train.csv", index=False)
    msg = _error(tiny, tmp_path / "out")
    assert f"sequence {sid}" in msg and "'H'" in msg and "train.csv" in msg
    r = convert(tiny, tmp_path / "out", "num_workers=0", "skip_unknown_chars=true")
    assert r["skipped_unknown_chars"] == 1 and sum(r["records_per_fold"].values()) == len(csv) - 1


def test_empty_phrase(tiny, tmp_path):
    csv = pd.read_csv(tiny / "train.csv")
    csv.loc[1, "phrase"] = ""
    csv.to_csv(tiny / "train.csv", index=False)
    assert f"sequence {csv.sequence_id.iloc[1]}: empty phrase" in _error(tiny, tmp_path / "out")


def test_empty_parquet(tiny, tmp_path):
    p = _first_parquet(tiny)
    pd.read_parquet(p).iloc[:0].to_parquet(p)
    assert f"{p}: empty parquet file" in _error(tiny, tmp_path / "out")


def test_duplicate_sequence_ids(tiny, tmp_path):
    csv = pd.read_csv(tiny / "train.csv")
    csv.loc[3, "sequence_id"] = csv.sequence_id.iloc[4]
    csv.to_csv(tiny / "train.csv", index=False)
    assert f"sequence {csv.sequence_id.iloc[4]}: duplicate sequence_id" in _error(tiny, tmp_path / "out")


def test_sequence_in_parquet_not_in_csv(tiny, tmp_path):
    csv = pd.read_csv(tiny / "train.csv")
    sid = int(csv.sequence_id.iloc[0])
    csv.iloc[1:].to_csv(tiny / "train.csv", index=False)
    assert f"sequence {sid}: in the parquet file but not in the CSV" in _error(tiny, tmp_path / "out")


def test_sequence_in_csv_not_in_parquet(tiny, tmp_path):
    csv = pd.read_csv(tiny / "train.csv")
    extra = csv.iloc[[0]].assign(sequence_id=123456789)
    pd.concat([csv, extra]).to_csv(tiny / "train.csv", index=False)
    r = convert(tiny, tmp_path / "a", "num_workers=0")  # the reference skips it: counted
    assert r["missing_in_parquet"] == 1
    assert "sequence 123456789: in the CSV but not in the parquet file" in _error(tiny, tmp_path / "b", "strict=true")


@pytest.mark.parametrize("cut", [0.5, 0.99])
def test_corrupt_or_truncated_parquet(tiny, tmp_path, cut):
    p = _first_parquet(tiny)
    data = p.read_bytes()
    p.write_bytes(data[: int(len(data) * cut)])
    assert f"{p}: corrupt or truncated parquet file" in _error(tiny, tmp_path / "out")


@pytest.mark.parametrize("override,text", [("folds=1", "folds must be >= 2"), ("+fold=4", "fold 4 is outside 0..3"),
                                           ("+fold=-1", "outside"), ("shard_index=2", "shard_index"),
                                           ("num_workers=-1", "num_workers")])
def test_config_out_of_range(tiny, tmp_path, override, text):
    assert text in _error(tiny, tmp_path / "out", override)
    assert not (tmp_path / "out").exists()  # nothing started


def test_cli_error_is_one_line_without_traceback(tmp_path):
    res = subprocess.run([sys.executable, "-m", "aslfr.convert", f"data_dir={tmp_path}/missing", f"out_dir={tmp_path}/o",
                          "progress=false"], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [f"aslfr: error: {tmp_path}/missing: data directory not found"]


def test_cli_config_error_before_torch(tmp_path):
    res = subprocess.run([sys.executable, "-X", "importtime", "-m", "aslfr.convert", "folds=1", "progress=false",
                          f"out_dir={tmp_path}/o"], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 1 and "folds must be >= 2" in res.stderr
    assert " torch" not in res.stderr.replace("aslfr: error", "")


@pytest.mark.parametrize("override, message", [
    ("folds=abc", "folds must be an integer, got 'abc'"),
    ("multiprocessing_context=bogus", "multiprocessing_context must be null or one of fork"),
    ("resume=maybe", "resume must be true or false, got 'maybe'"),
    ("+fold=x", "fold must be an integer or a list of integers, got 'x'"),
])
def test_every_setting_checked_before_any_write(tiny, tmp_path, override, message):
    res = subprocess.run([sys.executable, "-m", "aslfr.convert", f"data_dir={tiny}", f"out_dir={tmp_path}/o", override],
                         capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 1 and res.stderr.count("\n") == 1 and message in res.stderr, res.stderr
    assert not (tmp_path / "o").exists()


def test_header_only_csv(tiny, tmp_path):
    (tiny / "train.csv").write_text("path,file_id,sequence_id,participant_id,phrase\n")
    assert _error(tiny, tmp_path / "out").endswith("train.csv: no rows (only a header)")


def test_disk_full_names_the_output_and_the_disk(tiny, tmp_path, monkeypatch):
    """write() raising ENOSPC carries no file name: the error must still name the output, not the input."""
    from aslfr.convert import shards

    def full(self, record):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shards.RecordWriter, "write_serialized", full)
    msg = _error(tiny, tmp_path / "out")
    d = tmp_path / "out" / "tfrecords" / "train"
    assert msg.startswith(f"{d}/.") and ".tmp: No space left on device" in msg, msg
    assert f"the file system holding {d} is full" in msg and "(while converting " in msg


def test_random_bytes_inside_a_parquet_file_give_one_line(tiny, tmp_path):
    p = _first_parquet(tiny)
    data = bytearray(p.read_bytes())
    rng = np.random.default_rng(0)
    for frac in (0.1, 0.3, 0.6, 0.9):  # somewhere a read must hit, whatever the column layout
        start = int(len(data) * frac)
        data[start:start + 2000] = rng.integers(0, 256, 2000, dtype=np.uint8).tobytes()
    p.write_bytes(bytes(data))
    res = subprocess.run([sys.executable, "-m", "aslfr.convert", f"data_dir={tiny}", f"out_dir={tmp_path}/o",
                          "progress=false"], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 1 and res.stderr.count("\n") == 1, res.stderr
    assert res.stderr.startswith(f"aslfr: error: {p}: corrupt or truncated parquet file")


def test_logs_get_no_progress_escape_codes_and_a_resumed_run_says_so(tiny, tmp_path):
    cmd = [sys.executable, "-m", "aslfr.convert", f"data_dir={tiny}", f"out_dir={tmp_path}/o"]  # progress on
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    for res in (first, again):
        assert res.returncode == 0 and "\x1b" not in res.stderr + res.stdout and "%|" not in res.stderr
    assert "0 shard(s) written" in again.stdout and "already complete (resumed)" in again.stdout
    assert "2 file(s) not read" in again.stdout


def test_worker_error_reported_cleanly(tiny, tmp_path):
    p = _first_parquet(tiny)
    p.write_bytes(b"not a parquet file")
    with pytest.raises(InputError, match="corrupt or truncated") as e:
        convert(tiny, tmp_path / "out", "num_workers=2")
    assert "Traceback" not in str(e.value)


def test_write_error_leaves_no_partial_shard(tiny, tmp_path, monkeypatch):
    from aslfr.convert import shards as tfrecords

    calls = {"n": 0}
    real = tfrecords.RecordWriter.write_serialized

    def failing(self, record):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device", self.file.name)
        real(self, record)

    monkeypatch.setattr(tfrecords.RecordWriter, "write_serialized", failing)
    msg = _error(tiny, tmp_path / "out")
    assert "No space left on device" in msg
    d = tmp_path / "out/tfrecords/train"
    names = sorted(p.name for p in d.iterdir() if p.is_file())
    assert not [n for n in names if n.endswith(".tmp")]
    # only complete shards (with their receipts) are present
    from compare import records
    for n in names:
        if n.endswith(".tfrec"):
            assert len(records(d / n)) == int(n.split(".")[1])


@pytest.fixture(scope="module")
def eight_files(tmp_path_factory):
    """8 train files of 24 sequences, and their clean conversion."""
    root = tmp_path_factory.mktemp("eight")
    data = generate(root / "data", SplitSpec(8, 24, 40, 8), None, seed=5)
    convert(data, root / "full", "num_workers=0")
    return data, root / "full"


def _paused_run(data, out, workers: int) -> subprocess.Popen:
    """A conversion of `eight_files` stopped for good once each of its processes has begun a shard
    of file 2 or later (tests/hooks/paused_convert.py): files 0 and 1 done, one temporary shard per
    process, never finished."""
    paused = out.parent / "paused.txt"
    cmd = [sys.executable, str(ROOT / "tests/hooks/paused_convert.py"), f"data_dir={data}", f"out_dir={out}",
           f"num_workers={workers}", "progress=false"]
    # a shell's background job inherits SIGINT ignored (CI may run us so): give the run a default one
    proc = subprocess.Popen(cmd, cwd=out.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, ASLFR_TEST_PAUSE_AT="8", ASLFR_TEST_PAUSED=str(paused)),
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300  # a hang guard only: the paused state is permanent
    while not (paused.exists() and len(paused.read_text().splitlines()) == max(workers, 1)):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"the run did not reach its pause point: {proc.communicate()[1][-2000:]}")
        time.sleep(0.02)
    d = out / "tfrecords/train"
    assert len(list((d / ".aslfr").glob("[0-9]*.json"))) == 8  # files 0 and 1, 4 folds each
    assert len(list(d.glob(".*.tmp"))) == max(workers, 1) and not (d / "manifest.json").exists()
    return proc


def _resume_equals_clean_run(data, out, full) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "aslfr.convert", f"data_dir={data}", f"out_dir={out}", "progress=false"]
    res = subprocess.run(cmd, cwd=out.parent, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert tree_bytes(out / "tfrecords/train") == tree_bytes(full / "tfrecords/train")
    assert not [p for p in (out / "tfrecords").rglob("*") if p.name.endswith(".tmp")]
    return res


@pytest.mark.parametrize("sig, workers", [(signal.SIGINT, 0), (signal.SIGINT, 2), (signal.SIGTERM, 2)])
def test_interrupt_is_one_line_and_rerun_leaves_no_temporary_file(eight_files, tmp_path, sig, workers):
    """Ctrl-C (SIGINT to the process group) or SIGTERM of the process group mid-write: one line,
    exit 130, no temporary file left; the rerun resumes to the clean run's bytes."""
    data, full = eight_files
    out = tmp_path / "out"
    proc = _paused_run(data, out, workers)
    os.killpg(proc.pid, sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.splitlines() == ["aslfr: error: interrupted; rerun the same command to resume (finished shards are kept)"]
    assert not list((out / "tfrecords/train").glob(".*.tmp"))
    _resume_equals_clean_run(data, out, full)


def test_permission_error_reported(tiny, tmp_path):
    """An unwritable output place fails with one line naming the path and the problem."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "tfrecords").write_text("a file where a folder should be")
    res = subprocess.run([sys.executable, "-m", "aslfr.convert", f"data_dir={tiny}", f"out_dir={out}", "num_workers=0",
                          "progress=false"], capture_output=True, text=True)
    assert res.returncode == 1
    line = res.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert line.startswith(f"aslfr: error: {out / 'tfrecords'}") and ("exists" in line or "directory" in line), line


def test_read_only_output_names_the_path(tiny, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root ignores permission bits (tests/source/test_metadata.py covers an output under a file)")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(OSError) as e:
        convert(tiny, ro, "num_workers=0")
    assert "Permission denied" in str(e.value) and str(ro) in str(e.value)


def test_kill_and_resume_gives_identical_bytes(eight_files, tmp_path):
    """kill -9 mid-write: the half-written shard is never visible under a shard name, and the rerun
    keeps the finished shards and gives the clean run's bytes."""
    data, full = eight_files
    out = tmp_path / "killed"
    proc = _paused_run(data, out, 0)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=120)
    d = out / "tfrecords/train"
    assert list(d.glob(".*.tmp"))  # the partial shard, under its temporary name only
    clean = tree_bytes(full / "tfrecords/train")
    visible = {p.name: p.read_bytes() for p in d.glob("*.tfrec")}
    assert visible and all(clean[name] == data_ for name, data_ in visible.items())
    res = _resume_equals_clean_run(data, out, full)
    assert "already complete (resumed)" in res.stdout


def test_resume_redoes_a_damaged_shard(tiny, tmp_path):
    convert(tiny, tmp_path, "num_workers=0")
    d = tmp_path / "tfrecords/train"
    before = tree_bytes(d)
    victim = sorted(d.glob("*.tfrec"))[0]
    data = bytearray(victim.read_bytes())
    data[100] ^= 0xFF
    victim.write_bytes(bytes(data))
    r = convert(tiny, tmp_path, "num_workers=0")
    assert r["files_resumed"] == 1  # the other file was verified and skipped
    assert tree_bytes(d) == before


def test_verify_command(tiny, tmp_path):
    convert(tiny, tmp_path, "num_workers=0")
    run = lambda: subprocess.run([sys.executable, "-m", "aslfr.verify", str(tmp_path)], capture_output=True, text=True)  # noqa: E731
    res = run()
    assert res.returncode == 0 and res.stdout.count(" OK ") == 1, res.stdout
    victim = sorted((tmp_path / "tfrecords/train").glob("*.tfrec"))[-1]
    victim.write_bytes(victim.read_bytes()[:-9])
    res = run()
    assert res.returncode == 1 and "FAIL" in res.stdout and len(res.stdout.strip().splitlines()) == 1


def test_reader_names_file_and_record_on_truncation(tiny, tmp_path):
    from aslfr.format.schema import read_shard
    from aslfr.format.tfrecord import CorruptRecordError

    convert(tiny, tmp_path, "num_workers=0")
    victim = max((tmp_path / "tfrecords/train").glob("*.tfrec"), key=lambda p: int(p.name.split(".")[1]))
    n = int(victim.name.split(".")[1])
    victim.write_bytes(victim.read_bytes()[:-20])
    with pytest.raises(CorruptRecordError, match=rf"{victim}: record {n - 1} at byte \d+: truncated"):
        list(read_shard(victim))


@pytest.mark.parametrize("args", [["--help"], ["--cfg", "job"]])
def test_help_and_cfg_do_not_import_torch(tmp_path, args):
    res = subprocess.run([sys.executable, "-X", "importtime", "-m", "aslfr.convert", *args], capture_output=True,
                         text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in res.stderr.splitlines() if line.startswith("import time:")}
    assert "torch" not in imported and "pyarrow" not in imported and "aslfr.convert.settings" in imported
    assert "data_dir" in res.stdout
    assert list(tmp_path.iterdir()) == []


def test_rerun_with_other_layout_leaves_only_its_shards(tiny, tmp_path):
    from compare import tfrec_names

    convert(tiny, tmp_path, "num_workers=0", "folds=5")
    convert(tiny, tmp_path, "num_workers=0")  # back to 4 folds: shard numbers change
    d = tmp_path / "tfrecords/train"
    import json
    listed = sorted(s["name"] for s in json.loads((d / "manifest.json").read_text())["shards"])
    assert tfrec_names(d) == listed
    assert all(int(n.split(".")[0]) < 8 for n in listed)
    assert sorted(p.name.replace(".tfindex", ".tfrec") for p in d.glob("*.tfindex")) == listed


@pytest.mark.parametrize("key", ["shuffle_buffer", "num_workers"])
def test_converter_refuses_negative_setting_by_name(small_data, tmp_path, key):
    with pytest.raises(InputError) as e:
        convert(small_data, tmp_path / "out", f"{key}=-1")
    assert str(e.value) == f"{key} must be >= 0, got -1"
    assert not (tmp_path / "out").exists()  # refused before any work
