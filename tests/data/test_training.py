"""The training side as users run it: FrameTransform's resize exact against TF, ReferencePreprocess
in the readers with per-record seeding (same draws whatever the worker count), and the public API."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import aslfr
from test_train_pipeline import CASES, G, draws_of, exact, frames_of, tf_out
from aslfr.data.transforms import augment as A
from aslfr.data.transforms.reference import ReferencePreprocess, reference_preprocess, reference_preprocess_batch


@pytest.mark.parametrize("ci", [i for i, m in enumerate(CASES) if not m["train"] and m["mode"] == "tf.data"])
def test_frame_transform_equals_tf_inference(ci):
    """FrameTransform(max_frames=320) is the reference's inference path, bit for bit (T > 320 included)."""
    t = aslfr.FrameTransform(G["means"], G["stds"], max_frames=320)
    out = t(frames_of(ci))
    assert exact(out, tf_out(ci)), (out - tf_out(ci)).abs().max()


def _by_id(loader, key="frames"):
    out = {}
    for batch in loader:
        for sid, x in zip(batch["sequence_id"].tolist(), batch[key]):
            out[sid] = x.clone()
    return out


def test_augmentations_do_not_depend_on_the_worker_count(converted):
    d = converted / "tfrecords/train"
    means, stds = aslfr.load_stats(d)
    transform = aslfr.ReferencePreprocess(means, stds, train=True)

    def run(workers, epoch=0, seed=5):
        ds = aslfr.TFRecordShards(d, shuffle=True, seed=seed, transform=transform)
        ds.set_epoch(epoch)
        return _by_id(DataLoader(ds, batch_size=8, num_workers=workers, collate_fn=aslfr.pad_collate))

    a, b = run(0), run(2)
    assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert all(x.shape == (320, 769) for x in a.values())
    other = run(0, epoch=1)
    assert sum(not torch.equal(a[k], other[k]) for k in a) > len(a) // 2  # new draws each epoch
    again = aslfr.TFRecordIndexed(d, transform=transform, seed=5)
    item = again[3]
    assert torch.equal(item["frames"], a[int(item["sequence_id"])])  # same record, same seed and epoch: same draws


def test_validation_path_has_no_randomness(converted):
    d = converted / "tfrecords/train"
    means, stds = aslfr.load_stats(d)
    val = aslfr.ReferencePreprocess(means, stds, train=False)
    assert not val.random
    frame_t = aslfr.FrameTransform(means, stds, max_frames=320)
    for rec in aslfr.TFRecordIndexed(d):
        got = val(rec)
        assert exact(got["frames"], frame_t(rec)["frames"])
        assert int(got["length"]) == min(int(rec["n_frames"]), 320)


def test_reference_preprocess_entry_points():
    x = frames_of(0)
    out, length = aslfr.reference_preprocess(x, G["means"], G["stds"], train=False)
    assert out.shape == (320, 769) and length == min(x.shape[0], 320)
    g = torch.Generator().manual_seed(3)
    a, la = aslfr.reference_preprocess(x, G["means"], G["stds"], train=True, generator=g)
    b, lb = aslfr.reference_preprocess(x, G["means"], G["stds"], train=True, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and la == lb
    batch = torch.zeros(2, x.shape[0], 384)
    batch[0], batch[1] = x, x
    out2, lens = aslfr.reference_preprocess_batch(batch, torch.tensor([x.shape[0]] * 2), G["means"], G["stds"],
                                                  train=False)
    assert torch.equal(out2[0], out) and torch.equal(out2[1], out)


def test_public_transforms_equal_tf():
    """`training_transforms` / `inference_transforms` as a user calls them (`steps(x, draw)`), on every
    golden input with TF's recorded draws: TF's outputs (rotate within 1e-5, as in test_replay_matches_tf)."""
    inv = torch.from_numpy(G["tf_inv_stds"])
    seen = set()
    for ci, m in enumerate(CASES):
        make = aslfr.training_transforms if m["train"] else aslfr.inference_transforms
        kw = {"rounding": "tf.function", "inv_stds": inv} if m["mode"] == "tf.function" else {}
        draw = draws_of(ci)
        out = make(G["means"], G["stds"], **kw)(frames_of(ci), draw)
        draw.assert_consumed()
        ref = tf_out(ci)
        if "rotate" in m["sites"]:
            assert out.shape == ref.shape and (out - ref).abs().max().item() <= 1e-5, ci
        else:
            assert exact(out, ref), (ci, (out - ref).abs().max().item())
        seen.add((m["train"], m["mode"]))
    assert seen == {(True, "tf.data"), (False, "tf.data"), (True, "tf.function"), (False, "tf.function")}


def test_packed_batches_unpack_to_the_padded_batch(converted):
    d = converted / "tfrecords/train"
    items = list(aslfr.TFRecordShards(d, torch_values=False))[:10]
    padded = aslfr.pad_collate(items)
    torch_items = aslfr.pad_collate(list(aslfr.TFRecordShards(d))[:10])
    packed = aslfr.pack_collate(items)
    assert packed["frames"].shape == (int(padded["lengths"].sum()), 384)
    unpacked = aslfr.unpack(packed)
    for b in (unpacked, torch_items):
        assert sorted(b) == sorted(padded)
        for k, v in padded.items():
            assert (torch.equal(v.nan_to_num(), b[k].nan_to_num()) and v.dtype == b[k].dtype) if torch.is_tensor(v) \
                else v == b[k], k
    assert padded["frames"].dtype == torch.float32 and padded["weight"].dtype == torch.float32
    assert padded["phrase_"].shape == (10, 32) and padded["cls_label"].dtype == torch.int64
    assert torch.equal(padded["target_lengths"], (padded["phrase_"] != 0).sum(1))
    assert not padded["frames"][~padded["mask"]].any()  # zero padding


def test_worker_batches_arrive_whole(converted):
    """Batches collated in workers (one shared-memory storage per batch) equal in-process ones."""
    d = converted / "tfrecords/train"
    ds = aslfr.TFRecordShards(d, torch_values=False)
    for collate in (aslfr.pad_collate, aslfr.pack_collate):
        def rows(workers):  # per sequence: each worker batches its own share of the records
            out = {}
            for b in DataLoader(ds, batch_size=7, num_workers=workers, collate_fn=collate):
                b = aslfr.unpack(b)
                for i, sid in enumerate(b["sequence_id"].tolist()):
                    n = int(b["lengths"][i])
                    out[sid] = (b["frames"][i, :n].nan_to_num(), b["phrase_"][i], b["weight"][i], b["phrase"][i])
            return out

        here, there = rows(0), rows(2)
        assert sorted(here) == sorted(there) and len(here) == 48
        for sid, a in here.items():
            b = there[sid]
            assert all(torch.equal(x, y) for x, y in zip(a[:3], b[:3])) and a[3] == b[3]


def test_throughput_rows(converted, monkeypatch):
    """On a clock that advances 1 s per reading, the rate is the number of records read per epoch:
    every record of the folder (counted and identified with the `tfrecord` package's parser), once."""
    from types import SimpleNamespace

    from compare import records
    from aslfr.bench import throughput

    d = converted / "tfrecords/train"
    ids = sorted(r["sequence_id"][1][0] for p in sorted(d.glob("*.tfrec")) for r in records(p))
    ticks = iter(range(1000))
    monkeypatch.setattr(throughput, "time", SimpleNamespace(perf_counter=lambda: float(next(ticks))))
    seen = []
    rates = throughput.epoch_rates(aslfr.TFRecordShards(d, shuffle=True), 2, num_workers=0,
                                   consume=lambda b: seen.extend(b["sequence_id"].tolist()),
                                   collate_fn=aslfr.pad_collate)
    assert rates == [len(ids), len(ids)] and len(ids) == 48  # the warm-up epoch is not timed
    assert all(sorted(seen[i:i + 48]) == ids for i in (0, 48, 96))  # three epochs, each record once


def test_held_batches_stay_intact_while_workers_reuse_their_segments(converted):
    """Workers reuse a ring of 4 shared segments; batches the training code keeps are private copies."""
    d = converted / "tfrecords/train"
    ds = aslfr.TFRecordShards(d, torch_values=False)
    ref = {int(r["sequence_id"]): r["frames"] for r in ds}
    held = list(DataLoader(ds, batch_size=2, num_workers=2, collate_fn=aslfr.pack_collate, prefetch_factor=2))
    assert len(held) == 24  # 12 batches per worker: each segment reused several times
    seen = 0
    for b in held:
        for i, (sid, chunk) in enumerate(zip(b["sequence_id"].tolist(), b["frames"].split(b["lengths"].tolist()))):
            assert np.array_equal(chunk.numpy(), ref[sid], equal_nan=True)
            seen += 1
    assert seen == 48


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
