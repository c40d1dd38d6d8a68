"""The training stream (`TFRecordStream`, `StreamLoader`): the same batches, augmentations included,
whatever the ranks and DataLoader workers; equal steps on every rank (real torch.distributed);
exact resume after kill -9; the same from a bucket, with and without a cache."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

import aslfr
from conftest import ROOT

sys.path.insert(0, str(Path(__file__).parent))
from stream_run import collate, digest, stream  # noqa: E402

RUN = Path(__file__).parent / "stream_run.py"
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def records(converted) -> str:
    return str(converted / "tfrecords")


def _cat(batches: list[dict]) -> dict:
    """Rank batches of one step as one global batch."""
    return {k: torch.cat([b[k] for b in batches]) if isinstance(batches[0][k], torch.Tensor)
            else sum((b[k] for b in batches), []) for k in batches[0]}


def _steps(records, world, workers, global_batch=12, epoch=1):
    """The global batches of an epoch, each rank read by its own loader, rank batches joined by step."""
    per_rank = []
    for rank in range(world):
        s = stream(records, global_batch // world, rank=rank, world_size=world)
        s.set_epoch(epoch)
        loader = aslfr.StreamLoader(s, num_workers=workers, collate_fn=collate(records))
        per_rank.append(list(loader))
        assert len(per_rank[-1]) == len(s) == len(loader)
    return [_cat(list(step)) for step in zip(*per_rank)]


def test_one_order_whatever_the_topology(records):
    """Each step's records, keys and ReferenceCollate's augmented [B, 320, 769] batches are
    byte-identical for 1, 2 or 4 ranks and 0, 1, 2 or 4 workers, the global batch fixed."""
    whole = _steps(records, 1, 0)
    assert len(whole) == 6 and all(len(b["sequence_id"]) == 12 for b in whole)  # 72 records
    want = [digest(b) for b in whole]
    for world, workers in [(1, 4), (2, 1), (4, 2), (4, 0)]:
        assert [digest(b) for b in _steps(records, world, workers)] == want, (world, workers)
    ids = torch.cat([b["sequence_id"] for b in whole]).tolist()
    assert len(set(ids)) == len(ids) == 72  # each record once
    assert _steps(records, 1, 0, epoch=2)[0]["sequence_id"].tolist() != whole[0]["sequence_id"].tolist()


def test_items_and_keys_are_the_indexed_readers(records):
    """A stream item is TFRecordIndexed's item of that record, key included (same seed and epoch)."""
    s = stream(records, 5, torch_values=True)
    s.set_epoch(3)
    indexed = aslfr.TFRecordIndexed(s.files, seed=11, keys=True)
    indexed.set_epoch(3)
    where = {}
    for i in range(len(indexed)):
        where[int(indexed[i]["sequence_id"])] = i
    plan = s.plan(3)
    for step in range(len(s)):
        items = s.batch(plan.rank_batch(step, 0, 1), 3)
        for row, item in zip(plan.rank_batch(step, 0, 1).tolist(), items):
            ref = indexed[where[int(item["sequence_id"])]]
            assert item["frames"].numpy().tobytes() == ref["frames"].numpy().tobytes()  # NaN included
            assert item["phrase"] == ref["phrase"]
            if row[2] == 0:
                assert int(item["key"]) == int(ref["key"])
            else:  # a top-up: the record again, keyed anew
                assert int(item["key"]) == aslfr.record_key(11, 3, row[0], row[1], row[2]) != int(ref["key"])


def test_len_and_sizes_tell_the_truth(records):
    for batch, drop_last in [(5, False), (5, True), (7, False), (72, True), (100, False)]:
        s = stream(records, batch, drop_last=drop_last)
        got = list(DataLoader(s, batch_size=None, num_workers=2, collate_fn=aslfr.pack_collate))
        assert len(got) == len(s) == (72 // batch if drop_last else -(-72 // batch))
        assert all(len(b["sequence_id"]) == batch for b in got)
        ids = torch.cat([b["sequence_id"] for b in got]).tolist()
        assert len(set(ids)) == min(72, len(ids))
    with pytest.raises(ValueError, match="no full global batch of 146 .* drop_last=True"):
        stream(records, 73, drop_last=True, rank=0, world_size=2)


def test_resume_reads_nothing_before_its_step(records):
    s = stream(records, 4)
    s.set_epoch(1)
    reads = []
    read = s.shards.read
    s.shards.read = lambda shard, recs: reads.append((shard, list(recs))) or read(shard, recs)
    loader = aslfr.StreamLoader(s, num_workers=0, collate_fn=aslfr.pack_collate)
    loader.load_state_dict({"epoch": 1, "step": 11})
    assert len(loader) == 7
    rest = [b["sequence_id"].tolist() for b in loader]
    assert len(rest) == 7 and loader.state_dict() == {"epoch": 1, "step": 18}
    plan = s.plan(1)
    after = {(int(a), int(b)) for step in range(11, 18) for a, b, _ in plan.batch(step)}
    assert {(sh, r) for sh, recs in reads for r in recs} == after


def test_persistent_workers_follow_set_epoch(records):
    s = stream(records, 6)
    fresh = []
    for e in (0, 1):
        s.set_epoch(e)
        fresh.append([digest(b) for b in aslfr.StreamLoader(s, num_workers=0, collate_fn=collate(records))])
    loader = aslfr.StreamLoader(s, num_workers=2, persistent_workers=True, collate_fn=collate(records),
                                multiprocessing_context="fork")
    got = []
    for e in (0, 1, 0):
        loader.set_epoch(e)
        got.append([digest(b) for b in loader])
    assert got == [fresh[0], fresh[1], fresh[0]] and fresh[0] != fresh[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _today_rank_batches(total: int, rank: int, world: int, workers: int, batch: int, drop_last: bool) -> int:
    """Batches rank `rank` gets from TFRecordShards over `total` records: each worker batches its own
    contiguous slot (the split of `TFRecordShards._ranges`)."""
    out = 0
    for w in range(workers):
        slot, slots = rank * workers + w, world * workers
        n = total * (slot + 1) // slots - total * slot // slots
        out += n // batch if drop_last else -(-n // batch)
    return out


def test_three_gloo_ranks_two_workers_finish_an_epoch_uneven_today(records, tmp_path):
    """3 ranks x 2 workers, one all_reduce a step, on files and a batch where TFRecordShards gives
    the ranks different numbers of batches (a DDP hang): every rank gets the same steps, the epoch ends."""
    choice = None
    for valid in range(4):
        train, _ = aslfr.fold_files(f"{records}/train", valid_fold=valid)
        total = len(aslfr.TFRecordShards(train))
        for batch in range(2, 9):
            for drop_last in (True, False):
                today = {_today_rank_batches(total, r, 3, 2, batch, drop_last) for r in range(3)}
                if len(today) > 1 and choice is None:
                    choice = (train, batch, drop_last, total)
    assert choice is not None
    files, batch, drop_last, total = choice
    today = [len(list(DataLoader(aslfr.TFRecordShards(files, rank=r, world_size=3), batch_size=batch, num_workers=2,
                                 drop_last=drop_last, collate_fn=aslfr.pack_collate))) for r in range(3)]
    assert len(set(today)) > 1  # what a DDP run hangs on
    (tmp_path / "files.json").write_text(json.dumps([str(f) for f in files]))
    env = {**ENV, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": "3"}
    procs = [subprocess.Popen([sys.executable, str(RUN), "ddp", records, str(tmp_path), "--batch", str(batch),
                               "--files", str(tmp_path / "files.json")] + (["--drop-last"] if drop_last else []),
                              env={**env, "RANK": str(r)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for r in range(3)]
    try:
        outs = [p.communicate(timeout=150)[0].decode() for p in procs]  # a hang fails here
    finally:
        for p in procs:
            p.kill()
    assert all(p.returncode == 0 for p in procs), outs
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(3)]
    steps = total // (3 * batch) if drop_last else -(-total // (3 * batch))
    assert [r["steps"] for r in ranks] == [r["len"] for r in ranks] == [steps] * 3
    ids = [i for r in ranks for i in r["ids"]]
    assert len(ids) == 3 * batch * steps
    assert len(set(ids)) == (total - total % (3 * batch) if drop_last else total)


@pytest.fixture(scope="module")
def uninterrupted(records) -> list[str]:
    """The digest lines of 2 epochs read in this process (no workers), as the training script logs them."""
    loader = aslfr.StreamLoader(stream(records, 4), num_workers=0, collate_fn=collate(records))
    lines = []
    for epoch in range(2):
        loader.set_epoch(epoch)
        lines += [f"{epoch} {step} {digest(b)}" for step, b in enumerate(loader)]
    return lines


def _train(records, out, *args):
    return subprocess.Popen([sys.executable, str(RUN), "train", records, str(out), *args], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.mark.parametrize("before,after", [(["--workers", "2"], ["--workers", "2"]),
                                          (["--workers", "2", "--persistent"], ["--workers", "1", "--persistent"])])
def test_resume_after_kill_9_replays_the_same_batches(records, uninterrupted, tmp_path, before, after):
    """kill -9 at a random step, resume from the last checkpoint: the batches from there on (frames,
    keys and ReferenceCollate's outputs) are byte-identical to an uninterrupted run's."""
    kill_at = random.Random().randrange(4, len(uninterrupted) - 9)  # steps left to kill it in
    proc = _train(records, tmp_path, *before, "--pause", "0.1")
    log = tmp_path / "log"
    deadline = time.monotonic() + 150
    while (not log.exists() or len(log.read_text().splitlines()) < kill_at) and proc.poll() is None:
        assert time.monotonic() < deadline, "the training process made no progress"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"finished before the kill at step {kill_at}"
    killed = log.read_text().splitlines()
    assert killed == uninterrupted[:len(killed)]
    state = json.loads((tmp_path / "checkpoint.json").read_text())
    # the lines before the checkpoint's (epoch, step); a checkpoint at an epoch's end resumes at the next one's start
    resumed_from = sum(tuple(map(int, x.split()[:2])) < (state["epoch"], state["step"]) for x in uninterrupted)
    proc = _train(records, tmp_path, *after)
    out = proc.communicate(timeout=150)[0].decode()
    assert proc.returncode == 0, out
    resumed = log.read_text().splitlines()[len(killed):]
    assert resumed == uninterrupted[resumed_from:], f"killed at line {kill_at}, checkpoint {state}"


def test_from_a_bucket_with_and_without_cache_equals_local(converted, records, s3_env, tmp_path):
    from buckets import new_bucket

    bucket = new_bucket(converted, "out", skip=(".aslfr", ".hydra"))
    local = [digest(b) for b in aslfr.StreamLoader(stream(records, 5), collate_fn=collate(records))]
    url = f"{bucket}/out/tfrecords"
    for cache in (None, tmp_path / "cache"):
        s = stream(url, 5, cache_dir=cache)
        assert all(str(f).startswith(bucket) for f in s.files)
        loader = aslfr.StreamLoader(s, num_workers=2, multiprocessing_context="fork", timeout=120,
                                    collate_fn=collate(records))
        assert [digest(b) for b in loader] == local
    assert len(list((tmp_path / "cache").iterdir())) > 0


def test_torchdata_stateful_dataloader_resumes_the_stream(records):
    """torchdata is not a dependency: this runs where it is installed."""
    StatefulDataLoader = pytest.importorskip("torchdata.stateful_dataloader",
                                             reason="torchdata is not installed").StatefulDataLoader

    for workers in (0, 2):
        whole = [digest(b) for b in StatefulDataLoader(stream(records, 4), batch_size=None, num_workers=workers,
                                                       collate_fn=aslfr.pack_collate)]
        dl = StatefulDataLoader(stream(records, 4), batch_size=None, num_workers=workers,
                                collate_fn=aslfr.pack_collate)
        it = iter(dl)
        first = [digest(next(it)) for _ in range(7)]
        state = dl.state_dict()
        again = StatefulDataLoader(stream(records, 4), batch_size=None, num_workers=workers,
                                   collate_fn=aslfr.pack_collate)
        again.load_state_dict(state)
        assert first + [digest(b) for b in again] == whole


def test_frame_budget_keeps_steps_equal_and_lengths_bucketed(records):
    """Rank batches of at most K frames, the same sequence for 1 or 3 ranks, equal steps on every
    rank; lengths from the index sizes are the decoded ones."""
    lengths = {}
    for it in aslfr.TFRecordShards([f"{records}/train", f"{records}/sup"]):
        lengths[int(it["sequence_id"])] = len(it["frames"])
    budget = 2 * max(lengths.values())
    one = stream(records, None, frame_budget=budget, bucket_window=24)
    seq = [[int(i) for i in b["sequence_id"]] for b in aslfr.StreamLoader(one, num_workers=2, collate_fn=aslfr.pack_collate)]
    assert len(seq) == len(one) and all(sum(lengths[i] for i in b) <= budget for b in seq)
    assert sorted(i for b in seq for i in b) == sorted(lengths)  # every record once (world 1: no top-up)
    assert min(len(b) for b in seq) < max(len(b) for b in seq)  # a count that follows the lengths
    for drop_last in (False, True):
        ranks = [list(aslfr.StreamLoader(stream(records, None, frame_budget=budget, bucket_window=24, rank=r,
                                                world_size=3, drop_last=drop_last), collate_fn=aslfr.pack_collate))
                 for r in range(3)]
        assert len({len(r) for r in ranks}) == 1
        steps = len(ranks[0])
        assert steps == (len(seq) // 3 if drop_last else -(-len(seq) // 3))
        for k in range(steps):  # rank batch k*3 + r of the world-free sequence (top-ups: its first batches)
            for r in range(3):
                j = k * 3 + r
                assert ranks[r][k]["sequence_id"].tolist() == seq[j if j < len(seq) else j - len(seq)]


def test_rates_mix_the_supplemental_records_at_their_rate(records):
    """{sup folder: 0.5}: every train record and a different half of the sup records each epoch."""
    train = {int(x["sequence_id"]) for x in aslfr.TFRecordShards(f"{records}/train")}
    sup = {int(x["sequence_id"]) for x in aslfr.TFRecordShards(f"{records}/sup")}
    s = stream(records, 4, rates={f"{records}/sup/": 0.5})
    seen = []
    for epoch in (0, 1):
        s.set_epoch(epoch)
        ids = [int(i) for b in aslfr.StreamLoader(s, collate_fn=aslfr.pack_collate) for i in b["sequence_id"]]
        assert train <= set(ids) and len(ids) == len(s) * 4
        seen.append(set(ids) & sup)
        assert len(seen[-1]) == 12  # a shard of c records gives round(c / 2)
    assert seen[0] != seen[1]
    with pytest.raises(ValueError, match="rates names .*nowhere, which is neither"):
        stream(records, 4, rates={f"{records}/nowhere": 2})
