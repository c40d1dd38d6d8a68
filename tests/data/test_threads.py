"""`ThreadLoader`: the stream's batches built by threads of the training process into reused memory.
The same bytes as `StreamLoader` with worker processes, whatever the threads; the buffer contract (a
batch valid until the next is asked for, the memory reused); exactly once per epoch, set_epoch,
resume at a consumed step reading nothing before it; errors raised at their step; no thread left."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest
import torch

import aslfr

sys.path.insert(0, str(Path(__file__).parent))
from stream_run import digest, stream  # noqa: E402


@pytest.fixture(scope="module")
def records(converted) -> str:
    return str(converted / "tfrecords")


def _collates(records: str) -> dict:
    means, stds = aslfr.load_stats(f"{records}/train")
    return {"train": aslfr.ReferenceCollate(means, stds, train=True),
            "inference": aslfr.ReferenceCollate(means, stds, train=False), "pack": aslfr.pack_collate}


def _digests(loader) -> list[str]:
    return [digest(b) for b in loader]  # each digested before the next is asked for: the contract


def _loader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("aslfr-loader")]


def test_the_process_loaders_batches_byte_for_byte_whatever_the_threads(records):
    s = stream(records, 6)
    s.set_epoch(1)
    for name, collate in _collates(records).items():
        processes = _digests(aslfr.StreamLoader(s, num_workers=2, collate_fn=collate,
                                                multiprocessing_context="fork"))
        assert len(processes) == len(s) == 12
        for threads in (0, 1, 2, 4):
            assert _digests(aslfr.ThreadLoader(s, threads=threads, collate_fn=collate)) == processes, (name, threads)
    budget = stream(records, None, frame_budget=60)
    processes = _digests(aslfr.StreamLoader(budget, num_workers=2, collate_fn=aslfr.pack_collate,
                                            multiprocessing_context="fork"))
    assert _digests(aslfr.ThreadLoader(budget, threads=2, collate_fn=aslfr.pack_collate)) == processes
    assert not _loader_threads()


def test_a_batch_holds_until_the_next_is_asked_for_and_its_memory_is_reused(records):
    s = stream(records, 6)
    s.set_epoch(1)
    collate = _collates(records)["train"]
    expected = _digests(aslfr.StreamLoader(s, num_workers=0, collate_fn=collate))
    loader = aslfr.ThreadLoader(s, threads=2, prefetch=2, collate_fn=collate)
    assert len(loader.slots) == 5
    memory = []
    for step, batch in enumerate(loader):
        time.sleep(0.05)  # the threads fill the other buffers meanwhile
        assert digest(batch) == expected[step]
        memory.append(batch["frames"].untyped_storage().data_ptr())
        assert batch["phrase_"].untyped_storage().data_ptr() == memory[-1]  # the whole batch in one buffer
    assert len(memory) == 12 and len(set(memory)) == 5
    assert all(memory[k] == memory[k + 5] for k in range(7))  # step k's buffer again at step k + 5
    kept = [b["frames"].clone() for b in aslfr.ThreadLoader(s, threads=2, collate_fn=collate)]
    assert [digest({"frames": f}) for f in kept] == [digest({"frames": b["frames"]}) for b in
                                                     aslfr.StreamLoader(s, num_workers=0, collate_fn=collate)]


def test_exactly_once_set_epoch_and_resume_reading_nothing_before_the_step(records):
    s = stream(records, 6)
    collate = _collates(records)["inference"]
    loader = aslfr.ThreadLoader(s, threads=2, collate_fn=collate)
    epochs = []
    for epoch in (0, 1):
        loader.set_epoch(epoch)
        ids = []
        for b in loader:
            ids += b["sequence_id"].tolist()
        assert loader.state_dict() == {"epoch": epoch, "step": 12}
        assert len(ids) == 72 and len(set(ids)) == 72  # 72 records, 12 steps of 6: each once
        epochs.append(ids)
    assert epochs[0] != epochs[1]
    whole = _digests(aslfr.StreamLoader(s, num_workers=0, collate_fn=collate))

    first = aslfr.ThreadLoader(s, threads=2, collate_fn=collate)
    for step, b in enumerate(first):
        if step == 4:
            break
    state = first.state_dict()
    assert state == {"epoch": 1, "step": 5} and not _loader_threads()  # a pass left early stops its threads
    reads = []
    read = s.shards.read
    s.shards.read = lambda shard, recs: reads.append((shard, list(recs))) or read(shard, recs)
    try:
        again = aslfr.ThreadLoader(s, threads=2, collate_fn=collate)
        again.load_state_dict(state)
        assert len(again) == 7
        assert _digests(again) == whole[5:] and again.state_dict() == {"epoch": 1, "step": 12}
    finally:
        s.shards.read = read
    after = {(int(a), int(b)) for step in range(5, 12) for a, b, _ in s.plan(1).batch(step)}
    assert {(sh, r) for sh, recs in reads for r in recs} == after


def test_an_error_in_a_thread_is_raised_at_its_step_and_the_threads_stop(records):
    s = stream(records, 6)

    def collate(items):
        if int(items[0]["key"]) == bad:
            raise RuntimeError("bad batch")
        return aslfr.pack_collate(items)

    bad = int(s.batch(s.plan(0).rank_batch(3, 0, 1), 0)[0]["key"])
    got = []
    with pytest.raises(RuntimeError, match="bad batch"):
        for b in aslfr.ThreadLoader(s, threads=2, collate_fn=collate):
            got.append(b["sequence_id"].tolist())
    assert len(got) == 3 and not _loader_threads()
    with pytest.raises(ValueError, match="threads must be >= 0"):
        aslfr.ThreadLoader(s, threads=-1)
