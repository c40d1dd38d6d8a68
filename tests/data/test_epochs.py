"""`set_epoch` reaches DataLoader workers that live across epochs (persistent_workers=True), forked
or spawned: each epoch gets its own order and augmentations, and an epoch's records are the same as
a fresh loader's, whenever and however often it is run."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch.utils.data import DataLoader

import aslfr

START_METHODS = ["fork", "spawn"]


def _transform(d):
    means, stds = aslfr.load_stats(d)
    return aslfr.ReferencePreprocess(means, stds, train=True)


def _shards(converted):
    d = converted / "tfrecords/train"
    return aslfr.TFRecordShards(d, shuffle=True, seed=5, shuffle_buffer=8, transform=_transform(d))


def _indexed(converted):
    d = converted / "tfrecords/train"
    return aslfr.TFRecordIndexed(d, seed=5, transform=_transform(d))


def _pass(loader):
    """(sequence ids in reading order, sequence id -> model input frames) of one pass over `loader`."""
    order, frames = [], {}
    for item in loader:
        sid = int(item["sequence_id"])
        order.append(sid)
        frames[sid] = item["frames"].clone()
    return order, frames


def _epochs(ds, epochs, **loader_args):
    """One pass per epoch in `epochs`, all through one DataLoader (so one set of workers if persistent)."""
    loader = DataLoader(ds, batch_size=None, **loader_args)
    out = []
    for epoch in epochs:
        ds.set_epoch(epoch)
        out.append(_pass(loader))
    return out


def _same(a, b):
    assert a[0] == b[0]  # reading order
    assert a[1].keys() == b[1].keys() and all(torch.equal(a[1][k], b[1][k]) for k in a[1])


def _differ(a, b):
    """Same records, most with other augmentations."""
    assert sorted(a[0]) == sorted(b[0]) and len(a[0]) == 48
    assert sum(not torch.equal(a[1][k], b[1][k]) for k in a[1]) > len(a[1]) // 2


@pytest.fixture(scope="module")
def fresh_shards(converted):
    """Epochs 0 and 1, each from a new reader through a new non-persistent 2-worker loader."""
    return [_epochs(_shards(converted), [e], num_workers=2)[0] for e in (0, 1)]


@pytest.mark.parametrize("start", START_METHODS)
def test_persistent_workers_follow_set_epoch_shards(converted, fresh_shards, start):
    first, second, again = _epochs(_shards(converted), [0, 1, 0], num_workers=2, persistent_workers=True,
                                   multiprocessing_context=start)
    assert first[0] != second[0]  # shuffled anew
    _differ(first, second)  # augmented anew
    _same(first, fresh_shards[0])
    _same(second, fresh_shards[1])  # epoch 1 after epoch 0 in live workers == epoch 1 read fresh
    _same(again, first)  # set_epoch(0) again gives epoch 0 back


@pytest.mark.parametrize("start", START_METHODS)
def test_persistent_workers_follow_set_epoch_indexed(converted, start):
    ds = _indexed(converted)
    passes = _epochs(ds, [0, 1, 0], num_workers=2, persistent_workers=True, multiprocessing_context=start)
    fresh = []
    for epoch in (0, 1):  # in-process, item by item, from a new reader
        direct = _indexed(converted)
        direct.set_epoch(epoch)
        fresh.append(_pass(direct[i] for i in range(len(direct))))
    _differ(passes[0], passes[1])
    _same(passes[0], fresh[0])
    _same(passes[1], fresh[1])
    _same(passes[2], fresh[0])


@pytest.mark.parametrize("make", [_shards, _indexed])
def test_epoch_survives_pickling(converted, make):
    ds = make(converted)
    ds.set_epoch(3)
    copy = pickle.loads(pickle.dumps(ds))
    assert copy.epoch == 3
    copy.set_epoch(4)  # a plain pickle is a copy, not a live view
    assert ds.epoch == 3 and copy.epoch == 4


@pytest.mark.parametrize("bad,error", [(-1, ValueError), (1.5, TypeError)])
def test_bad_epoch_is_refused(converted, bad, error):
    with pytest.raises(error, match="epoch must be"):
        _indexed(converted).set_epoch(bad)
