"""Bugs a probe found on the reading and training side (issue 15, section 5): each test failed on
the code before its fix; bad input now gives one clear error naming the argument and the value."""

from __future__ import annotations

import pytest

from aslfr.data.datasets import TFRecordShards


@pytest.fixture
def no_torchrun(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)


@pytest.mark.parametrize("kw,message", [
    ({"rank": 2, "world_size": 2}, "rank must be in 0..world_size-1, got rank=2 world_size=2"),
    ({"rank": -1, "world_size": 2}, "rank must be in 0..world_size-1, got rank=-1 world_size=2"),
    ({"rank": 0, "world_size": 0}, "world_size must be >= 1, got rank=0 world_size=0"),
    ({"rank": 1}, "rank=1 given without world_size="),
    ({"world_size": 2}, "world_size=2 given without rank="),
])
def test_bad_rank_arguments(converted, no_torchrun, kw, message):
    with pytest.raises(ValueError, match=message):
        TFRecordShards(converted / "tfrecords/train", **kw)


@pytest.mark.parametrize("rank,world,message", [
    ("3", "2", "RANK must be in 0..WORLD_SIZE-1, got RANK=3 WORLD_SIZE=2 in the environment"),
    ("0", "0", "WORLD_SIZE must be >= 1, got RANK=0 WORLD_SIZE=0 in the environment"),
    ("x", "2", "RANK and WORLD_SIZE must be integers, got RANK=x WORLD_SIZE=2 in the environment"),
])
def test_bad_rank_environment(converted, monkeypatch, rank, world, message):
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("WORLD_SIZE", world)
    with pytest.raises(ValueError, match=message):
        TFRecordShards(converted / "tfrecords/train")


def test_rank_argument_completed_by_environment(converted, monkeypatch):
    """A rank given alone takes the world size from torchrun's environment (and the reverse)."""
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "3")
    d = converted / "tfrecords/train"
    shares = [[int(x["sequence_id"]) for x in TFRecordShards(d, rank=r, torch_values=False)] for r in range(3)]
    assert (TFRecordShards(d, world_size=4).rank, TFRecordShards(d, world_size=4).world_size) == (0, 4)
    assert [len(s) for s in shares] == [16, 16, 16]  # 48 records, a third each
    assert len({i for s in shares for i in s}) == 48
