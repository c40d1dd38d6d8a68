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
    assert line == f"aslfr: error: {out}: " + ("no finished records folder (tfrecords/<split>/manifest.json); convert first"
                                               if made else "no such file or folder")
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


# -- settings that change what is written ------------------------------------------------------------

def _records(records_dir) -> dict[str, list[dict]]:
    """Shard name -> its records, parsed with the `tfrecord` package's protobufs (not aslfr's decoder)."""
    from compare import records

    return {p.name: records(p) for p in sorted(records_dir.glob("*.tfrec"))}


def _value(rec, key):
    return rec[key][1][0]


@pytest.fixture
def one_file(tmp_path):
    """One parquet file of 24 sequences (so shards of several records), 6 participants."""
    from aslfr.source.synthetic import SplitSpec, generate

    return generate(tmp_path / "data", SplitSpec(1, 24, 4, 6), SplitSpec(1, 8, 4, 4), seed=11)


def test_sup_weight_is_written_to_sup_records_only(one_file, tmp_path):
    import numpy as np

    from conftest import convert

    out = tmp_path / "out"
    for split in ("train", "supplemental"):
        convert(one_file, out, "num_workers=0", f"split={split}", "sup_weight=0.35")
    bits = {name: {int(_value(r, "weight")) for r in recs} for name, recs in _records(out / "tfrecords/sup").items()}
    assert bits and set().union(*bits.values()) == {int(np.float32(0.35).view(np.uint32))}
    train = [r for recs in _records(out / "tfrecords/train").values() for r in recs]
    assert len(train) == 24 and {int(_value(r, "weight")) for r in train} == {int(np.float32(1.0).view(np.uint32))}


def _notebook_order(nb, tmp_path, n: int, buffer: int, seed: int) -> list[int]:
    """The order in which the reference notebook's own TfrecordsWriter emits n records."""
    from types import SimpleNamespace

    w = nb["TfrecordsWriter"](str(tmp_path / "order.tfrec"), buffer_size=buffer, shuffle=True, seed=seed)
    got: list[int] = []
    w.writer = SimpleNamespace(write=got.append)
    for i in range(n):
        w.write_example(SimpleNamespace(SerializeToString=lambda i=i: i))
    w.close()
    return got


@pytest.mark.parametrize("buffer,seed", [(3, 5), (0, 5), (1000, 1024)])
def test_shuffle_settings_give_the_notebook_writer_order(one_file, tmp_path, notebook, buffer, seed):
    """Within a shard, records come in the order the notebook's writer gives the file's sequences of
    that fold (parquet order) with that buffer and seed; buffer 0 keeps the parquet order."""
    import pandas as pd

    from conftest import convert

    out = tmp_path / f"out{buffer}"
    convert(one_file, out, "num_workers=0", "folds=2", f"shuffle_buffer={buffer}", f"shuffle_seed={seed}")
    (parquet,) = pd.read_csv(one_file / "train.csv").path.unique()
    position = {sid: k for k, sid in enumerate(pd.read_parquet(one_file / parquet).index.unique())}
    shuffled = False
    for name, recs in _records(out / "tfrecords/train").items():
        got = [_value(r, "sequence_id") for r in recs]
        in_parquet_order = sorted(got, key=position.__getitem__)
        assert len(got) >= 7
        want = [in_parquet_order[j] for j in _notebook_order(notebook, tmp_path, len(got), buffer, seed)]
        assert got == want, name
        shuffled |= got != in_parquet_order
    assert shuffled == (buffer != 0)


def test_fold_seed_gives_sklearns_folds(tmp_path, notebook):
    """Folds equal sklearn's StratifiedGroupKFold(4, shuffle, random_state=fold_seed) over the CSV, grouped
    by participant and stratified by the notebook's phrase types; another seed gives other folds."""
    import numpy as np
    import pandas as pd
    from sklearn.model_selection import StratifiedGroupKFold

    from aslfr.source.synthetic import SplitSpec, generate
    from conftest import convert

    data = generate(tmp_path / "data", SplitSpec(2, 16, 4, 9), SplitSpec(1, 4, 4, 4), seed=5)
    csv = pd.read_csv(data / "train.csv", keep_default_na=False)
    types = [notebook["get_phrase_type"](p) for p in csv.phrase]

    def sklearn_folds(seed):
        folds = np.zeros(len(csv), dtype=int)
        skf = StratifiedGroupKFold(n_splits=4, random_state=seed, shuffle=True)
        for i, (_, val) in enumerate(skf.split(csv, types, csv.participant_id)):
            folds[val] = i
        return dict(zip(csv.sequence_id.tolist(), folds.tolist()))

    want = sklearn_folds(7)
    assert want != sklearn_folds(1229)  # the setting matters on this data
    convert(data, tmp_path / "out", "num_workers=0", "fold_seed=7")
    got = {}
    for name, recs in _records(tmp_path / "out/tfrecords/train").items():
        for r in recs:
            got[_value(r, "sequence_id")] = _value(r, "fold")
            assert int(name.split(".")[0]) % 4 == _value(r, "fold")  # shard number = file * folds + fold
    assert got == want


@pytest.mark.parametrize("verify", [True, False])
def test_verify_resumed_rewrites_a_same_size_corrupted_shard(one_file, tmp_path, verify):
    """A kept shard whose bytes changed at the same size: rewritten with verify_resumed=true, kept
    (still the corrupted bytes) with false. Judged by content."""
    from conftest import convert

    out = tmp_path / "out"
    convert(one_file, out, "num_workers=0")
    shard = sorted((out / "tfrecords/train").glob("*.tfrec"))[1]
    good = shard.read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF
    shard.write_bytes(bytes(bad))
    others = {p: p.read_bytes() for p in (out / "tfrecords/train").glob("*.tfrec") if p != shard}
    r = convert(one_file, out, "num_workers=0", f"verify_resumed={str(verify).lower()}")
    assert shard.read_bytes() == (good if verify else bytes(bad))
    assert r["shards_written"] == (1 if verify else 0)
    assert all(p.read_bytes() == b for p, b in others.items())
