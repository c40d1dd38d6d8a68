"""Counter-based draws and the fast paths built on them: a record's augmentations depend on its key
alone, the batched path (one plan for the whole batch, no host reads, a fixed number of ops) gives
each sequence what the per-sequence path gives, and `ReferenceCollate` gives what `pad_collate` over
`ReferencePreprocess` items gives, bit for bit."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.data import DataLoader

import aslfr
from aslfr.data.transforms import functional as F
from aslfr.data.transforms.counter import KeyedDraws, fmix32, record_key
from aslfr.data.transforms.reference import reference_preprocess, reference_preprocess_batch
from test_train_pipeline import CUDA, exact

MEANS, STDS = torch.full((384,), 0.5), torch.full((384,), 0.1)
LENGTHS = [1, 2, 5, 37, 150, 319, 320, 321, 700]


def _batch(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(len(lengths), max(lengths), 384, generator=g) * 0.6 + 0.2
    x[..., :63][torch.rand(len(lengths), max(lengths), generator=g) < 0.3] = float("nan")  # missing hands
    return x, torch.tensor(lengths)


def test_fmix32_is_murmur3s_finalizer():
    """Known values of murmur3's fmix32, computed by hand from its definition with python ints."""
    def fmix(h):
        h ^= h >> 16
        h = h * 0x85EBCA6B & 0xFFFFFFFF
        h ^= h >> 13
        h = h * 0xC2B2AE35 & 0xFFFFFFFF
        return h ^ (h >> 16)
    xs = [0, 1, 2, 0xDEADBEEF, 0xFFFFFFFF, 123456789]
    assert fmix32(torch.tensor(xs)).tolist() == [fmix(v) for v in xs]
    assert fmix(1) == 0x514E28B7  # murmur3's published fmix32(1)


def test_draws_depend_on_the_record_key_alone():
    keys = torch.tensor([record_key(0, 0, 0, r) for r in range(64)])
    d = KeyedDraws(keys)
    u, v = d.uniform(3), d.uniform(3, 320)
    # the same record elsewhere in another batch, alone, or after a prefetch: the same values
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(1))
    assert torch.equal(KeyedDraws(keys[perm]).uniform(3), u[perm])
    assert torch.equal(KeyedDraws(keys[5:6]).uniform(3, 320), v[5:6])
    assert torch.equal(KeyedDraws(keys).prefetch(1, 8).uniform(3), u)
    assert KeyedDraws(keys, elements_on="meta").uniform(3, 320).device.type == "meta"  # hashed where asked
    on = KeyedDraws(keys, elements_on="cpu").at(1)
    assert torch.equal(on.uniform(3), d.at(1).uniform(3)) and torch.equal(on.uniform(3, 320), d.at(1).uniform(3, 320))
    assert torch.equal(KeyedDraws(keys).at(2).prefetch(3, 4).at(1).uniform(2), d.at(2).at(1).uniform(2))
    # float32 multiples of 2^-24 in [0, 1); sites and elements differ
    assert u.dtype == torch.float32 and bool((u >= 0).all() & (u < 1).all())
    assert torch.equal(torch.floor(u * 2 ** 24), u * 2 ** 24)
    assert not torch.equal(d.uniform(4), u) and not torch.equal(d.at(1).uniform(3), u)
    assert len(set(v[0].tolist())) > 300
    high = torch.tensor([1, 2, 3, 1000] * 16)
    n = d.integers(5, high)
    assert bool((n >= 0).all() & (n < high).all()) and set(n[high == 2].tolist()) == {0, 1}


def test_draws_are_uniform_and_independent():
    """Over 2^16 fixed keys (deterministic, no luck involved): means, quartiles and correlations."""
    d = KeyedDraws(torch.arange(2 ** 16) * 7919)
    a, b, e = d.uniform(0), d.uniform(1), d.uniform(2, 8)
    assert abs(a.mean().item() - 0.5) < 0.005 and abs(e.mean().item() - 0.5) < 0.005
    assert np.allclose(np.histogram(a.numpy(), bins=4, range=(0, 1))[0] / len(a), 0.25, atol=0.005)
    assert abs(np.corrcoef(a.numpy(), b.numpy())[0, 1]) < 0.02
    assert abs(np.corrcoef(e[:, 0].numpy(), e[:, 1].numpy())[0, 1]) < 0.02


def test_between_computes_as_tf():
    """u * (high - low) + low in float32, as TorchDraw (and TF) compute it, from scalar operands."""
    d = KeyedDraws(torch.arange(4096))
    u = d.uniform(1)
    for lo, hi in ((0.8, 1.2), (-15.0, 15.0), (-0.05, 0.05), (0.1, 0.2), (0.5, 1.5)):
        lo_t, hi_t = torch.tensor(lo), torch.tensor(hi)
        assert torch.equal(d.between(1, lo, hi), u * (hi_t - lo_t) + lo_t)


def _plan_steps(train, keys, lengths):
    pipe = aslfr.training_transforms(MEANS, STDS) if train else aslfr.inference_transforms(MEANS, STDS)
    return pipe.sample_keyed(KeyedDraws(keys), lengths, int(lengths.max()))["plan"]


def test_keyed_gates_fire_at_the_reference_rates():
    """Over 4096 fixed keys every gate fires at its reference probability, the resample methods split
    0.33 / 0.335 / 0.335, and the OneOf (p=0) never fires."""
    steps = _plan_steps(True, torch.arange(4096), torch.full((4096,), 100))
    rates = [float(s["fire"].float().mean()) if "fire" in s else None for s in steps]
    expect = [0.25, 0.75, 0.75, 0.75, 0.0, 0.5, 1, 1, 1, 0.8, 1, 0.8]
    assert np.allclose(rates, expect, atol=0.02), rates
    resample = steps[9]
    share = torch.bincount(resample["method"][resample["fire"]], minlength=3).float() / int(resample["fire"].sum())
    assert np.allclose(share.numpy(), [0.33, 0.335, 0.335], atol=0.03)
    assert abs(float(steps[11]["keep"].float().mean()) - 0.5) < 0.01


@pytest.mark.parametrize("train", [True, False])
def test_batch_equals_per_sequence_by_key(train):
    """reference_preprocess_batch(keys=) (no host reads) == reference_preprocess(key=) per sequence
    (host reads allowed, work skipped), bit for bit, whatever the batch and the order in it."""
    lengths = LENGTHS * 4  # 36 sequences: every gate and method fires somewhere
    x, lens = _batch(lengths)
    keys = torch.tensor([record_key(3, 1, 0, r) for r in range(len(lengths))])
    out, length = reference_preprocess_batch(x, lens, MEANS, STDS, train=train, keys=keys)
    assert out.shape == (len(lengths), 320, 769)
    for b in range(len(lengths)):
        single, n = reference_preprocess(x[b, : lens[b]], MEANS, STDS, train=train, key=int(keys[b]))
        assert int(length[b]) == n and exact(out[b], single), b
    perm = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(0))[:9]
    sub, sub_len = reference_preprocess_batch(x[perm], lens[perm], MEANS, STDS, train=train, keys=keys[perm])
    assert exact(sub, out[perm]) and torch.equal(sub_len, length[perm])
    if train:
        steps = _plan_steps(True, keys, lens)
        assert all(bool(s["fire"].any()) and not bool(s["fire"].all()) for i, s in enumerate(steps) if i in (0, 1, 2, 3, 5, 9, 11))
        assert set(steps[9]["method"][steps[9]["fire"]].tolist()) == {0, 1, 2}


@CUDA
def test_batch_by_key_on_cuda_equals_cpu():
    x, lens = _batch(LENGTHS * 4)
    keys = torch.arange(len(lens)) * 1000003
    cpu, cpu_len = reference_preprocess_batch(x, lens, MEANS, STDS, train=True, keys=keys)
    gpu, gpu_len = reference_preprocess_batch(x.cuda(), lens, MEANS.cuda(), STDS.cuda(), train=True, keys=keys.cuda())
    assert torch.equal(gpu_len.cpu(), cpu_len)
    assert (gpu.cpu() - cpu).abs().max().item() <= 1e-5


class _Ops(TorchDispatchMode):
    """Counts the ops dispatched, and the ones that move data from the host onto the batch's device."""

    def __init__(self):
        super().__init__()
        self.ops, self.from_host = Counter(), []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.ops[str(func)] += 1
        ins = [a for a in torch.utils._pytree.tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)]
        outs = [o for o in torch.utils._pytree.tree_leaves(out) if isinstance(o, torch.Tensor)]
        if any(o.device.type == "meta" for o in outs) and any(i.device.type == "cpu" and i.dim() for i in ins):
            self.from_host.append(str(func))
        return out


@pytest.mark.parametrize("device", ["meta", "cpu"])
@pytest.mark.parametrize("train", [True, False])
def test_batched_path_op_count_does_not_grow_with_the_batch(train, device):
    """The device path (eager=False, the default off the CPU): the same ops for B = 8 and B = 256,
    none reading a value back to the host, none copying from the host. On the meta device, which
    holds no data, any such read would fail outright. So on a GPU one batch costs a fixed number of
    kernel launches and never waits for the device."""
    pre = aslfr.ReferencePreprocess(MEANS, STDS, train=train)

    def count(bsz):
        x = torch.rand(bsz, 400, 384).to(device)
        lens, keys = torch.full((bsz,), 300, device=device), torch.arange(bsz, device=device)
        with _Ops() as ops:
            out, length = pre.batch(x, lens, keys, eager=False)
        assert out.shape == (bsz, 320, 769) and length.shape == (bsz,)
        return ops

    count(4)  # first use on a device: caches its constants there
    small, large = count(8), count(256)
    assert small.ops == large.ops
    if device == "cpu":  # the lengths' range check, before any step, is the only read
        assert small.ops["aten._local_scalar_dense.default"] == 1
    else:
        assert not small.from_host and not large.from_host, small.from_host
    assert sum(small.ops.values()) < (900 if train else 200), sum(small.ops.values())


def _bits(t: torch.Tensor):
    """A tensor's dtype, shape and bytes (-0.0 is not 0.0 here)."""
    return t.dtype, tuple(t.shape), t.reshape(-1).contiguous().view(torch.uint8).tolist() if t.dtype.is_floating_point \
        else t.tolist()


def _records(loader):
    """sequence_id -> that record's part of every batch field."""
    out = {}
    for batch in loader:
        assert batch["frames"].shape[1:] == (320, 769)
        for i, sid in enumerate(batch["sequence_id"].tolist()):
            out[sid] = {k: v[i] for k, v in batch.items()}
    return out


@pytest.mark.parametrize("train,workers", [(True, 0), (True, 2), (False, 2)])
def test_reference_collate_equals_pad_collate_of_reference_items(converted, train, workers):
    """The fast collate (in the workers' shared memory) == the per-item transform + pad_collate,
    record for record, field for field, bit for bit."""
    d = converted / "tfrecords/train"
    means, stds = aslfr.load_stats(d)
    fast = DataLoader(aslfr.TFRecordShards(d, shuffle=True, seed=4, keys=True), batch_size=8, num_workers=workers,
                      collate_fn=aslfr.ReferenceCollate(means, stds, train=train))
    slow = DataLoader(aslfr.TFRecordShards(d, shuffle=True, seed=4, keys=True,
                                           transform=aslfr.ReferencePreprocess(means, stds, train=train)),
                      batch_size=8, collate_fn=aslfr.pad_collate)
    fast, slow = _records(fast), _records(slow)
    assert len(slow) == 48 and fast.keys() == slow.keys()
    for sid, rec in slow.items():
        assert list(fast[sid]) == list(rec)
        for k, v in rec.items():
            same = _bits(fast[sid][k]) == _bits(v) if isinstance(v, torch.Tensor) else fast[sid][k] == v
            assert same, (sid, k)


def test_reference_collate_needs_keys(converted):
    d = converted / "tfrecords/train"
    items = [it for _, it in zip(range(2), aslfr.TFRecordShards(d))]
    with pytest.raises(ValueError, match=r"^ReferenceCollate: items have no 'key' .*keys=True\)$"):
        aslfr.ReferenceCollate(MEANS, STDS, train=True)(items)
    out = aslfr.ReferenceCollate(MEANS, STDS, train=False)(items)  # inference draws nothing
    assert out["frames"].shape == (2, 320, 769)


def test_readers_give_record_keys(converted):
    d = converted / "tfrecords/train"
    shards = aslfr.TFRecordShards(d, seed=9, keys=True)
    shards.set_epoch(2)
    first = next(iter(shards))
    assert int(first["key"]) == record_key(9, 2, 0, 0) and first["key"].dtype == torch.int64
    indexed = aslfr.TFRecordIndexed(d, seed=9, keys=True)
    assert int(indexed[1]["key"]) == record_key(9, 0, 0, 1)
    assert "key" not in next(iter(aslfr.TFRecordShards(d)))
    assert record_key(9, 2, 0, 0) != record_key(9, 3, 0, 0) and 0 <= record_key(9, 2, 0, 0) < 2 ** 63


def test_resample_bound_holds():
    """The batched resample pads to a bound of every possible new length (no host read)."""
    r = aslfr.training_transforms(MEANS, STDS).transforms[9]
    for t in (1, 2, 3, 100, 2000):
        worst = F.resample_length(t, torch.tensor(1.5, dtype=torch.float32).nextafter(torch.tensor(0.0)))
        assert r.next_frames(t) >= worst


@pytest.mark.parametrize("train", [True, False])
def test_a_plan_made_on_the_host_gives_the_same_batch(train):
    """Keys and lengths on the host, data on a device (a loader's batch on a GPU): the plan is made
    on the host and the tail computed per group of (method, longer than 320), each output once.
    Called here on the CPU directly: the same bits as the per-sequence path, every group present."""
    from aslfr.data.transforms.rows import Rows, run_rows

    pre = aslfr.ReferencePreprocess(MEANS, STDS, train=train)
    x, lens = _batch(LENGTHS * 4, seed=2)
    keys = torch.arange(len(lens)) * 7 + 1
    packed = x[torch.arange(x.shape[1])[None] < lens[:, None]]
    plan = pre.pipe.sample_keyed(KeyedDraws(keys), lens, packed.shape[0])
    got, length = run_rows(pre.pipe, packed, Rows.packed(lens, packed.shape[0]), plan, False, host=(plan, lens))
    for b in range(len(lens)):
        single, n = reference_preprocess(x[b, : lens[b]], MEANS, STDS, train=train, key=int(keys[b]))
        assert int(length[b]) == n and exact(got[b], single), b
    if train:
        res = plan["plan"][9]
        new = torch.where(res["fire"], res["size"], lens)
        groups = {(int(m), bool(n > 320)) for m, n, f in zip(res["method"], new, res["fire"]) if f}
        assert groups == {(m, long_) for m in range(3) for long_ in (False, True)}, groups
