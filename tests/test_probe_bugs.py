"""Bugs a probe found on the reading and training side (issue 15, section 5): each test failed on
the code before its fix; bad input now gives one clear error naming the argument and the value."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import convert

from aslfr.data.collate import pack_collate, pad_collate
from aslfr.data.datasets import TFRecordIndexed, TFRecordShards, fold_files
from aslfr.data.transforms import augment as A
from aslfr.data.transforms.reference import ReferencePreprocess, reference_preprocess, reference_preprocess_batch
from aslfr.errors import InputError
from aslfr.format.manifest import ManifestError


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


MEANS, STDS = torch.zeros(384), torch.ones(384)


def _raises(fn, message, *args, **kw):
    with pytest.raises(ValueError) as e:
        fn(*args, **kw)
    assert str(e.value) == message


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("shape", [(2, 50, 384), (0, 384), (384,)])
def test_reference_preprocess_transform_checks_the_shape(shape, train):
    """The reader transform refuses what `reference_preprocess` refuses, with the same message."""
    message = f"expected one sequence [T>=1, 384], got shape {shape}"
    _raises(reference_preprocess, message, torch.zeros(shape), MEANS, STDS, train=train)
    t = ReferencePreprocess(MEANS, STDS, train=train)
    _raises(t, message, {"frames": torch.zeros(shape)}, generator=torch.Generator().manual_seed(0))
    _raises(t, message, torch.zeros(shape))


def test_reference_preprocess_errors():
    x = torch.zeros(5, 384)
    _raises(reference_preprocess, "frames must have 384 columns, got shape (5, 100)", torch.zeros(5, 100),
            MEANS, STDS, train=False)
    _raises(reference_preprocess, "rounding must be one of ('tf.data', 'tf.function'), got 'tf.lite'", x,
            MEANS, STDS, train=False, rounding="tf.lite")
    _raises(reference_preprocess, "inv_stds only applies to rounding='tf.function'", x, MEANS, STDS,
            train=False, inv_stds=STDS)


def test_reference_preprocess_batch_errors():
    x, lens = torch.zeros(2, 5, 384), torch.tensor([5, 3])
    run = reference_preprocess_batch
    _raises(run, "frames must have 384 columns, got shape (2, 5, 100)", torch.zeros(2, 5, 100), lens,
            MEANS, STDS, train=False)
    _raises(run, "expected [B, T, 384] (or packed [sum(lengths), 384]), got shape (384,)", torch.zeros(384), lens,
            MEANS, STDS, train=False)
    _raises(run, "lengths must be >= 1 and sum to 5 rows", torch.zeros(5, 384), lens, MEANS, STDS, train=False)
    for bad in ([0, 3], [6, 3], [5, -1]):
        _raises(run, "lengths must be in [1, T=5]", x, torch.tensor(bad), MEANS, STDS, train=False)
    _raises(run, "1 draws for 2 sequences", x, lens, MEANS, STDS, train=True, draws=[A.TorchDraw(None)])
    _raises(run, "rounding must be one of ('tf.data', 'tf.function'), got 'x'", x, lens, MEANS, STDS,
            train=False, rounding="x")
    _raises(run, "inv_stds only applies to rounding='tf.function'", x, lens, MEANS, STDS, train=False,
            inv_stds=STDS)


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("n_frames", [320, 64])
def test_reference_preprocess_batch_of_none(train, n_frames):
    """B=0 gives what a batch of one gives, less its one sequence: [0, n_frames, 769] and lengths [0]."""
    one, one_lens = reference_preprocess_batch(torch.rand(1, 40, 384), [40], MEANS, STDS, train=train,
                                               n_frames=n_frames, generator=torch.Generator().manual_seed(0))
    out, lens = reference_preprocess_batch(torch.zeros(0, 40, 384), [], MEANS, STDS, train=train, n_frames=n_frames)
    assert one.shape == (1, n_frames, 769)
    assert (out.shape, out.dtype) == ((0, n_frames, 769), one.dtype)
    assert (lens.shape, lens.dtype) == ((0,), one_lens.dtype)


def _item(t=5, cols=384, **kw):
    item = {"frames": torch.rand(t, cols), "phrase_": torch.full((32,), 7), "sequence_id": torch.tensor(t),
            "phrase_type": "address"}
    item.update(kw)
    return item


def _without_phrase(t):
    item = _item(t)
    del item["phrase_"]
    return item


MISMATCHED = {  # items -> the error after the function's name
    "none": ([], "no items to batch"),
    "one column": ([_item(), _item(3), _item(frames=torch.rand(4, 1))],
                   "item 2 has 'frames' of shape (4, 1), item 0 of shape (5, 384) (only the length T may differ)"),
    "100 columns": ([_item(), _item(3), _item(frames=torch.rand(4, 100))],
                    "item 2 has 'frames' of shape (4, 100), item 0 of shape (5, 384) (only the length T may differ)"),
    "1-d": ([_item(), _item(3), _item(frames=torch.rand(384))],
            "item 2 has 'frames' of shape (384,), item 0 of shape (5, 384) (only the length T may differ)"),
    "3-d": ([_item(), _item(frames=torch.rand(4, 384, 1))],
            "item 1 has 'frames' of shape (4, 384, 1), item 0 of shape (5, 384) (only the length T may differ)"),
    "missing key": ([_item(), _without_phrase(4)], "item 1 has no 'phrase_', which item 0 has"),
    "extra key": ([_item(), _item(4, extra=torch.tensor(1))], "item 1 has 'extra', which item 0 has not"),
    "other shape": ([_item(), _item(4, phrase_=torch.zeros(31, dtype=torch.int64))],
                    "item 1 has 'phrase_' of shape (31,), item 0 of shape (32,)"),
    "no frames": ([{"phrase_": torch.zeros(32)}], "item 0 has no 'frames'"),
    "scalar frames": ([_item(frames=torch.tensor(1.0))], "item 0 has 'frames' of shape (), not [T, ...]"),
}


@pytest.mark.parametrize("case", MISMATCHED)
@pytest.mark.parametrize("collate", [pad_collate, pack_collate])
def test_collate_refuses_mismatched_items(collate, case):
    items, message = MISMATCHED[case]
    _raises(collate, f"{collate.__name__}: {message}", items)


def test_collate_of_good_items_unchanged():
    """Items that agree batch normally: frames padded in place, the rest stacked."""
    items = [_item(5), _item(3)]
    b = pad_collate(items)
    assert b["frames"].shape == (2, 5, 384) and b["lengths"].tolist() == [5, 3]
    assert torch.equal(b["frames"][1, :3], items[1]["frames"]) and not b["frames"][1, 3:].any()
    assert b["sequence_id"].tolist() == [5, 3] and b["phrase_type"] == ["address", "address"]
    p = pack_collate(items)
    assert torch.equal(p["frames"], torch.cat([items[0]["frames"], items[1]["frames"]]))


def _duplicate_message(first, again):
    also = "" if str(first) == str(again) else f" (also as {first})"
    return f"{again}: shard given twice{also}; each shard may be read once"


def test_duplicate_shards_refused(converted, tmp_path):
    d = converted / "tfrecords/train"
    first = sorted(d.glob("*.tfrec"), key=lambda p: int(p.name.split(".")[0]))[0]  # the manifest's first
    link = tmp_path / "link"
    link.symlink_to(d)
    for paths, again, earlier in [([d, d], first, first), ([d, first], first, first),
                                  ([str(first), d], first, first), ([d, link], link / first.name, first)]:
        for reader in (TFRecordShards, TFRecordIndexed):
            with pytest.raises(ManifestError) as e:
                reader(paths)
            assert str(e.value) == _duplicate_message(earlier, again)


def test_fold_files_refuses_sup_dir_equal_to_records_dir(converted):
    d = converted / "tfrecords/train"
    first = sorted(d.glob("*.tfrec"), key=lambda p: int(p.name.split(".")[0]))[0]
    with pytest.raises(ManifestError) as e:
        fold_files(d, sup_dir=d)
    assert str(e.value) == _duplicate_message(first, first)
    train, valid = fold_files(d, sup_dir=converted / "tfrecords/sup")  # distinct folders still work
    assert len(set(train)) == len(train) and not set(train) & set(valid)


def test_indexed_reader_indices(converted):
    d = converted / "tfrecords/train"
    ds = TFRecordIndexed(d, torch_values=False)
    order = [int(x["sequence_id"]) for x in TFRecordShards(d, torch_values=False)]  # the streaming reader
    assert len(ds) == len(order) == 48
    assert [int(ds[i]["sequence_id"]) for i in (0, 47, -1, -48, np.int64(5), torch.tensor(6))] == \
        [order[0], order[47], order[-1], order[0], order[5], order[6]]
    for bad in (48, -49):
        with pytest.raises(IndexError) as e:
            ds[bad]
        assert str(e.value) == f"record {bad} out of range: 48 records"
    for bad, kind in ((slice(1, 3), "slice"), (1.0, "float"), ("3", "str")):
        with pytest.raises(TypeError) as e:
            ds[bad]
        assert str(e.value) == f"TFRecordIndexed indices must be integers, not {kind} " \
            "(for a range of records use torch.utils.data.Subset)"


def test_reader_refuses_negative_shuffle_buffer(converted):
    with pytest.raises(ValueError) as e:
        TFRecordShards(converted / "tfrecords/train", shuffle=True, shuffle_buffer=-1)
    assert str(e.value) == "shuffle_buffer must be >= 0 (0: no record buffer), got -1"


@pytest.mark.parametrize("key", ["shuffle_buffer", "num_workers"])
def test_converter_refuses_negative_setting_by_name(small_data, tmp_path, key):
    with pytest.raises(InputError) as e:
        convert(small_data, tmp_path / "out", f"{key}=-1")
    assert str(e.value) == f"{key} must be >= 0, got -1"
    assert not (tmp_path / "out").exists()  # refused before any work
