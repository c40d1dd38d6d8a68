"""The reference's training-time preprocessing + augmentations in torch, against TensorFlow.

Goldens (tests/golden/train_pipeline/golden.npz, made by make_golden.py from the reference's own
augment.py / preprocess.py under TF): inputs, every recorded tf.random.uniform draw with its request,
the [320, 769] outputs and the returned n_frames_, plus direct tf.image.resize outputs per method.
The recorded draws are replayed through `reference_preprocess`; TensorFlow is never imported here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from aslfr.data.transforms import augment as A
from aslfr.data.transforms import functional as F
from aslfr.data.transforms import reference as R

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "train_pipeline" / "golden.npz"
G = dict(np.load(GOLDEN, allow_pickle=False))
INFO = json.loads(str(G["info"]))
CASES = INFO["cases"]
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def frames_of(ci: int) -> torch.Tensor:
    return torch.from_numpy(G["frames"][G["frames_offset"][ci]:G["frames_offset"][ci + 1]].copy())


def draws_of(ci: int) -> A.RecordedDraw:
    """The case's recorded draws, each with the request TF made."""
    values, requests = [], []
    for j in np.nonzero(G["draw_case"] == ci)[0]:
        v = G["draw_values"][G["draw_offset"][j]:G["draw_offset"][j + 1]]
        shape = tuple(json.loads(str(G["draw_shape"][j])))
        if shape == (1, 320, 1):
            shape = (320,)  # TF draws the frame mask as (1, 320, 1); the port as (320,): same values, same order
        values.append(v.reshape(shape))
        requests.append((float(G["draw_low"][j]), float(G["draw_high"][j]), shape, bool(G["draw_int"][j])))
    return A.RecordedDraw(values, requests)


def tf_out(ci: int) -> torch.Tensor:
    return torch.from_numpy(G["out"][ci].copy())


def run_case(ci: int, own_reciprocal: bool = False, device="cpu"):
    meta = CASES[ci]
    kw = {"rounding": meta["mode"]}
    if meta["mode"] == "tf.function" and not own_reciprocal:
        kw["inv_stds"] = torch.from_numpy(G["tf_inv_stds"])  # TF's reciprocal is CPU-dependent: use its own
    draw = draws_of(ci)
    out, length, plan = R.reference_preprocess(frames_of(ci).to(device), G["means"], G["stds"], train=meta["train"],
                                               draw=draw, return_plan=True, **kw)
    draw.assert_consumed()
    return out.cpu(), length, plan


def case_id(ci: int) -> str:
    m = CASES[ci]
    return f"{ci:02d}-T{m['T']}-{'train' if m['train'] else 'infer'}-{m['method'] or 'none'}-{m['mode']}"


def exact(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.equal(a, b))


# ---------------------------------------------------------------------------------------------
# against TF


def test_golden_covers_the_spec():
    ts = {m["T"] for m in CASES}
    assert {1, 2, 4, 5, 319, 320, 321, 800} <= ts
    assert {m["method"] for m in CASES if m["train"]} >= {"bilinear", "bicubic", "nearest", ""}
    assert any(not m["train"] for m in CASES) and {m["mode"] for m in CASES} == {"tf.data", "tf.function"}
    assert any("rotate" in m["sites"] for m in CASES) and any(m["L"] > 320 for m in CASES)
    assert set(G["rs_method"]) == {"bilinear", "bicubic", "nearest"}


@pytest.mark.parametrize("ci", range(len(CASES)), ids=case_id)
def test_replay_matches_tf(ci):
    """Bit-exact against TF, including bicubic and rotate. Rotate alone is held to 1e-5 only: its exact
    value depends on the CPU that made the golden (TF's matmul uses FMA when the CPU has it)."""
    meta = CASES[ci]
    out, length, plan = run_case(ci)
    ref = tf_out(ci)
    assert out.dtype == torch.float32 and out.shape == (320, 769)
    if "rotate" in meta["sites"]:
        assert (out - ref).abs().max().item() <= 1e-5
    else:
        assert exact(out, ref), f"max diff {(out - ref).abs().max().item():.3g}"
    L = R.resampled_length(plan) or meta["T"]
    assert L == meta["L"]
    assert length == min(L, 320)
    assert R.reference_n_frames(L) == meta["n_frames_"]  # what TF returned: max(L, 320)
    if not meta["train"]:
        assert meta["sites"] == []


@pytest.mark.parametrize("ci", [i for i, m in enumerate(CASES) if m["mode"] == "tf.function"], ids=case_id)
def test_folded_rounding_with_own_reciprocal(ci):
    """A direct tf.function call multiplies by TF's reciprocal(stds); with a correctly rounded one
    instead the result stays within 1e-5 (1 ulp of the normalized values)."""
    out, _, _ = run_case(ci, own_reciprocal=True)
    assert (out - tf_out(ci)).abs().max().item() <= 1e-5


def test_inference_exact_paths():
    """Inference: zero-padding (T <= 320), the identity (T == 320) and the bilinear downsample (T > 320)."""
    seen = set()
    for ci, m in enumerate(CASES):
        if m["train"] or m["mode"] != "tf.data":
            continue
        out, length, _ = run_case(ci)
        assert exact(out, tf_out(ci))
        assert length == min(m["T"], 320)
        if m["T"] < 320:
            assert not out[m["T"]:].any()  # padding rows all zero, pos included
        seen.add((m["T"] > 320) - (m["T"] < 320))
    assert seen == {-1, 0, 1}


@pytest.mark.parametrize("method", ["bilinear", "bicubic", "nearest"])
def test_direct_resize_matches_tf(method):
    rows = np.nonzero(G["rs_method"] == method)[0]
    assert len(rows) > 400
    for j in rows:
        t, n, c = int(G["rs_in"][j]), int(G["rs_out"][j]), int(G["rs_channels"][j])
        x = torch.from_numpy(G["rs_x"][:t, :c].copy())
        ref = torch.from_numpy(G["rs_y"][G["rs_offset"][j]:G["rs_offset"][j + 1]].reshape(n, c).copy())
        y = F.resample(x, n, method)
        assert exact(y, ref), (method, t, n, (y - ref).abs().max().item())


def test_recorded_draw_checks_requests():
    ci = next(i for i, m in enumerate(CASES) if m["train"] and len(m["sites"]) >= 15)
    d = draws_of(ci)
    short = A.RecordedDraw(d.values[:-1], d.requests[:-1])
    with pytest.raises(A.DrawMismatch, match="ran out"):
        R.reference_preprocess(frames_of(ci), G["means"], G["stds"], train=True, draw=short)
    reqs = list(d.requests)
    lo, hi, sh, it = reqs[0]
    reqs[0] = (lo, 0.5, sh, it)
    with pytest.raises(A.DrawMismatch, match="draw 0"):
        R.reference_preprocess(frames_of(ci), G["means"], G["stds"], train=True, draw=A.RecordedDraw(d.values, reqs))
    extra = A.RecordedDraw(d.values + [0.5], d.requests + [(0.0, 1.0, (), False)])
    R.reference_preprocess(frames_of(ci), G["means"], G["stds"], train=True, draw=extra)
    with pytest.raises(A.DrawMismatch, match="left unused"):
        extra.assert_consumed()
    none = A.RecordedDraw([])
    R.reference_preprocess(frames_of(ci), G["means"], G["stds"], train=False, draw=none)
    none.assert_consumed()


# ---------------------------------------------------------------------------------------------
# batched path


def _golden_batch(idx):
    fr = [frames_of(i) for i in idx]
    lens = torch.tensor([f.shape[0] for f in fr])
    x = torch.full((len(fr), int(lens.max()), 384), float("nan"))
    for b, f in enumerate(fr):
        x[b, : f.shape[0]] = f
    return x, lens


def _batch_cases():
    """A spread of training cases: every length, every method, with and without rotate (kept small: fast)."""
    picked, seen = [], set()
    for i, m in enumerate(CASES):
        key = (m["T"], m["method"], "rotate" in m["sites"]) if m["T"] < 319 else m["T"]
        if m["train"] and m["mode"] == "tf.data" and key not in seen and key not in (320, 560):
            seen.add(key)
            picked.append(i)
    return picked


BATCH_CASES = _batch_cases()


def _check_batch_against_golden(device):
    idx = BATCH_CASES
    x, lens = _golden_batch(idx)
    draws = [draws_of(i) for i in idx]
    out, length = R.reference_preprocess_batch(x.to(device), lens, G["means"], G["stds"], train=True, draws=draws)
    out = out.cpu()
    for b, (ci, d) in enumerate(zip(idx, draws)):
        d.assert_consumed()
        single, n, _ = run_case(ci)
        assert int(length[b]) == n
        assert (out[b] - single).abs().max().item() <= 1e-5
        assert (out[b] - tf_out(ci)).abs().max().item() <= 1e-5
        if device == "cpu":
            assert exact(out[b], single), case_id(ci)


def test_batch_equals_per_sequence_on_golden():
    _check_batch_against_golden("cpu")


@CUDA
def test_batch_equals_per_sequence_on_golden_cuda():
    _check_batch_against_golden("cuda")


def _random_batch(seed, lengths):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(len(lengths), max(lengths), 384, generator=g) * 0.6 + 0.2
    hands = torch.rand(len(lengths), max(lengths), generator=g) < 0.3
    x[..., :63][hands] = float("nan")
    return x, torch.tensor(lengths)


def _check_batch_torchdraw(device):
    x, lens = _random_batch(0, [1, 2, 5, 37, 319, 320, 321, 700])
    means, stds = torch.full((384,), 0.5), torch.full((384,), 0.1)
    for train in (True, False):
        seeds = range(100, 108)
        out, length = R.reference_preprocess_batch(
            x.to(device), lens, means, stds, train=train,
            draws=[A.TorchDraw(torch.Generator().manual_seed(s)) for s in seeds])
        for b, s in enumerate(seeds):
            single, n = R.reference_preprocess(x[b, : lens[b]], means, stds, train=train,
                                               generator=torch.Generator().manual_seed(s))
            assert int(length[b]) == n
            assert (out[b].cpu() - single).abs().max().item() <= 1e-5
            if device == "cpu":
                assert exact(out[b], single)
    # one draw for the whole batch: sequence 0's draws, then sequence 1's, ...
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    out, _ = R.reference_preprocess_batch(x.to(device), lens, means, stds, train=True, generator=g1)
    for b in range(len(lens)):
        single, _ = R.reference_preprocess(x[b, : lens[b]], means, stds, train=True, generator=g2)
        assert (out[b].cpu() - single).abs().max().item() <= 1e-5


def test_batch_equals_per_sequence_torchdraw():
    _check_batch_torchdraw("cpu")


@CUDA
def test_batch_equals_per_sequence_torchdraw_cuda():
    _check_batch_torchdraw("cuda")


def test_functional_batch_equals_single():
    x, lens = _random_batch(1, [3, 9, 17])
    x = torch.nan_to_num(x, nan=0.3)
    p = torch.tensor([0.9, 1.1, 1.17]), torch.tensor([-14.0, 0.5, 13.2]), torch.tensor([-0.04, 0.01, 0.049])
    sizes, methods = torch.tensor([5, 20, 8]), ["bicubic", "bilinear", "nearest"]
    ops = [
        lambda v, i: F.flip_lr(v),
        lambda v, i: F.scale(v, p[0] if i is None else p[0][i]),
        lambda v, i: F.rotate(v, p[1] if i is None else p[1][i]),
        lambda v, i: F.shift(v, *[(q if i is None else q[i]) for q in p]),
        lambda v, i: F.temporal_seq_mask(v, torch.tensor([0, 2, 5]) if i is None else [0, 2, 5][i],
                                         torch.tensor([1, 3, 0]) if i is None else [1, 3, 0][i]),
    ]
    for op in ops:
        batch = op(x, None)
        for b in range(3):
            assert torch.equal(torch.nan_to_num(batch[b, : lens[b]], 9.0), torch.nan_to_num(op(x[b, : lens[b]], b), 9.0))
    rb = F.resample(x, sizes, methods, lens)
    for b in range(3):
        single = F.resample(x[b, : lens[b]], int(sizes[b]), methods[b])
        assert torch.equal(rb[b, : sizes[b]], single) and not rb[b, sizes[b]:].any()
    # a short sequence last in a batch of long outputs: its padding taps must stay inside it
    y = torch.randn(2, 700, 4)
    for method in F.METHODS:
        rb = F.resample(y, torch.tensor([1000, 2]), method, torch.tensor([700, 3]))
        assert torch.equal(rb[1, :2], F.resample(y[1, :3], 2, method)) and not rb[1, 2:].any()
        assert torch.equal(rb[0], F.resample(y[0], 1000, method))
    pb, pl = F.pad_or_resize(x, 8, lens)
    for b in range(3):
        single, n = F.pad_or_resize(x[b, : lens[b]], 8)
        assert torch.equal(pb[b], single) and int(pl[b]) == n == min(int(lens[b]), 8)


# ---------------------------------------------------------------------------------------------
# functional properties


def test_flip_permutation():
    perm = F.FLIP_PERM
    assert sorted(perm) == list(range(128))
    assert all(perm[perm[i]] == i for i in range(128))  # an involution
    assert perm[:21] == tuple(range(21, 42)) and perm[21:42] == tuple(range(21))
    assert perm[120:122] == (121, 120) and perm[122:] == tuple(range(122, 128))  # noses swap, mid stays
    x = (torch.randint(0, 1024, (7, 384)) / 1024.0).float()  # grid values: 1 - (1 - x) == x exactly
    f = F.flip_lr(x)
    assert torch.equal(F.flip_lr(f), x)
    assert torch.equal(f[:, 1:63:3], x[:, 64:126:3]) and torch.equal(f[:, 0:63:3], 1 - x[:, 63:126:3])
    assert torch.equal(f[:, 366:], torch.stack([1 - x[:, 366::3], x[:, 367::3], x[:, 368::3]], -1).reshape(7, 18))
    n = x.clone()
    n[2, :63] = float("nan")
    assert torch.isnan(F.flip_lr(n)[2, 63:126]).all() and not torch.isnan(F.flip_lr(n)[2, :63]).any()


def test_spatial_ops():
    x = (torch.randint(0, 1024, (5, 384)) / 1024.0).float()
    # scale, worked out by hand on 2 frames of dyadic values (exact in float32): x, y and z all scaled
    two = torch.zeros(2, 384)
    two[0, :6] = torch.tensor([0.375, 0.5, -0.25, 0.0, 1.0, 0.125])
    two[1, :3] = torch.tensor([0.75, 0.0625, 2.0])
    sc = F.scale(two, 1.25)
    assert sc[0, :6].tolist() == [0.46875, 0.625, -0.3125, 0.0, 1.25, 0.15625]
    assert sc[1, :3].tolist() == [0.9375, 0.078125, 2.5] and not sc[:, 6:].any()
    s = F.shift(x, 0.01, -0.02, 0.03).view(5, 128, 3) - x.view(5, 128, 3)
    assert torch.allclose(s, torch.tensor([0.01, -0.02, 0.03]).expand_as(s), atol=1e-6)
    assert torch.equal(F.rotate(x, 0.0), x)  # grid values: the +-0.5 round trip is exact
    for deg in (-15.0, 7.3, 90.0):
        r = F.rotate(x, deg).view(5, 128, 3) - 0.5
        o = x.view(5, 128, 3) - 0.5
        assert torch.allclose(r[..., :2].norm(dim=-1), o[..., :2].norm(dim=-1), atol=1e-6)
        assert torch.equal(r[..., 2], o[..., 2])
    p = torch.full((1, 384), 0.5)
    p[0, 0] = 1.0  # point 0 at (1, 0.5): +90 degrees about the centre takes it to (0.5, 1)
    q = F.rotate(p, 90.0)
    assert abs(q[0, 0].item() - 0.5) < 1e-6 and abs(q[0, 1].item() - 1.0) < 1e-6
    # +10 degrees about (0.5, 0.5), by hand (cos 10° = 0.98480775, sin 10° = 0.17364818): (0.75, 0.5) goes to
    # (0.5 + 0.25 cos, 0.5 + 0.25 sin), (0.5, 0.25) to (0.5 + 0.25 sin, 0.5 - 0.25 cos), (0.25, 0.75) to
    # (0.5 - 0.25 (cos + sin), 0.5 + 0.25 (cos - sin)); z is left alone
    two = torch.full((2, 384), 0.5)
    two[0, :6] = torch.tensor([0.75, 0.5, 0.25, 0.25, 0.75, 0.5])
    two[1, :3] = torch.tensor([0.5, 0.25, 0.75])
    r = F.rotate(two, 10.0)
    want = torch.tensor([[0.74620194, 0.54341204, 0.25, 0.21038602, 0.70278990, 0.5],
                         [0.54341204, 0.25379806, 0.75, 0.5, 0.5, 0.5]])
    assert (r[:, :6] - want).abs().max().item() <= 1e-7
    # TF's radian rounding, float32 step by step: as written inside tf.data, float32(deg) / 180 rounded,
    # times float32(pi) rounded; folded in a direct tf.function call, deg * float32(float32(pi) * float32(1/180))
    d = torch.tensor([7.3, -11.9, 13.37])
    h = float.fromhex
    assert F.radians(d).tolist() == [h("0x1.04ef08p-3"), h("-0x1.a95b92p-3"), h("0x1.dde6e0p-3")]
    assert F.radians(d, folded=True).tolist() == [h("0x1.04ef0ap-3"), h("-0x1.a95b92p-3"), h("0x1.dde6e4p-3")]


def test_temporal_seq_mask_and_sizes():
    x = torch.zeros(10, 384)
    m = F.temporal_seq_mask(x, 3, 4)
    assert torch.isnan(m[3:7]).all() and not torch.isnan(m[:3]).any() and not torch.isnan(m[7:]).any()
    assert torch.equal(F.temporal_seq_mask(x, 0, 0), x)
    assert F.seq_mask_size(4, 0.199) == 0 and F.seq_mask_size(5, 0.2) == 1 and F.seq_mask_size(100, 0.15) == 15
    assert F.seq_mask_offset_high(10, 2) == 8 and F.seq_mask_offset_high(1, 0) == 1 and F.seq_mask_offset_high(3, 3) == 1
    assert F.resample_length(1, 0.5) == 1 and F.resample_length(300, 1.4) == 420 and F.resample_length(7, 0.5) == 3


def _inference_case(T: int, mode: str) -> int:
    return next(i for i, m in enumerate(CASES) if not m["train"] and m["T"] == T and m["mode"] == mode)


def test_normalize_nan_and_pos():
    """Normalized half and pos column against TF's inference outputs (no draws, no padding in the
    first T rows): tf.data divides, a direct tf.function call multiplies by TF's reciprocal."""
    x = torch.tensor([[0.3, float("nan"), float("inf")] * 128])
    means, stds = torch.full((384,), 0.1), torch.full((384,), 0.3)
    n = F.normalize(x, means, stds)
    assert torch.isnan(n[0, 1]) and torch.isinf(n[0, 2])
    z = F.nan_to_zero(F.concat_normalized(x, n))
    assert z.shape == (1, 768) and z[0, 1] == 0 and torch.isinf(z[0, 2])
    for T, mode in ((320, "tf.data"), (20, "tf.function"), (50, "tf.function")):
        ci = _inference_case(T, mode)
        ref, x = tf_out(ci)[:T], frames_of(ci)
        folded = mode == "tf.function"
        inv = torch.from_numpy(G["tf_inv_stds"]) if folded else None
        norm = F.normalize(x, G["means"], None if folded else G["stds"], inv_stds=inv)
        assert torch.isnan(x).any() and torch.equal(F.nan_to_zero(norm), ref[:, 384:768])
        assert torch.equal(F.nan_to_zero(F.concat_normalized(x, norm)), ref[:, :768])
        assert torch.equal(F.positions(T, folded=folded), ref[:, 768])
    # the two roundings of t / 1000 differ (first at t = 5), so the comparisons above tell them apart
    assert float(F.positions(6)[5]) == float.fromhex("0x1.47ae14p-8")
    assert float(F.positions(6, folded=True)[5]) == float.fromhex("0x1.47ae16p-8")
    assert torch.equal(F.add_pos(torch.zeros(3, 2))[:, -1], torch.tensor([0.0, 0.001, 0.002]))


def test_resample_properties():
    x = torch.randn(13, 6)
    for method in F.METHODS:
        assert torch.equal(F.resample(x, 13, method), x)  # same size: identity
        c = F.resample(torch.full((9, 2), 0.25), 21, method)
        assert torch.allclose(c, torch.full((21, 2), 0.25), atol=1e-7)
    assert torch.equal(F.resample(x, 1, "nearest"), x[6:7])  # half-pixel centre: floor(0.5 * 13)
    assert torch.equal(F.resample(torch.arange(4.0)[:, None], 2, "bilinear")[:, 0], torch.tensor([0.5, 2.5]))
    with pytest.raises(ValueError):
        F.resample(x, 5, "area")


def test_pad_or_resize_and_temporal_mask():
    x = torch.randn(7, 769)
    out, n = F.pad_or_resize(x, 10)
    assert n == 7 and torch.equal(out[:7], x) and not out[7:].any()
    out, n = F.pad_or_resize(x, 7)
    assert n == 7 and torch.equal(out, x)
    out, n = F.pad_or_resize(x, 4)
    assert n == 4 and torch.equal(out, F.resample(x, 4, "bilinear"))
    keep = torch.tensor([True, False] * 5)
    y = F.temporal_mask(torch.ones(10, 3), keep)
    assert torch.equal(y[:, 0], keep.float())


# ---------------------------------------------------------------------------------------------
# randomness contract


def test_torchdraw_reproducible():
    x, _ = _random_batch(3, [150])
    means, stds = torch.full((384,), 0.5), torch.full((384,), 0.1)
    a = R.reference_preprocess(x[0], means, stds, train=True, generator=torch.Generator().manual_seed(5))
    b = R.reference_preprocess(x[0], means, stds, train=True, generator=torch.Generator().manual_seed(5))
    c = R.reference_preprocess(x[0], means, stds, train=True, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a[0], b[0]) and a[1] == b[1] and not torch.equal(a[0], c[0])
    d = A.TorchDraw(torch.Generator().manual_seed(0))
    f = d(0.8, 1.2, (1000,))
    i = d(0, 3, (1000,), integer=True)
    assert f.dtype == torch.float32 and 0.8 <= f.min() and f.max() < 1.2
    assert i.dtype == torch.int64 and set(i.tolist()) == {0, 1, 2}


class _Counting:
    def __init__(self, draw):
        self.draw, self.calls = draw, []

    def __call__(self, low, high, shape=(), integer=False):
        self.calls.append((low, high, tuple(shape), integer))
        return self.draw(low, high, shape, integer)


def test_draw_counts_and_gates():
    x, _ = _random_batch(4, [60])
    means, stds = torch.full((384,), 0.5), torch.full((384,), 0.1)
    counts = set()
    for s in range(40):
        c = _Counting(A.TorchDraw(torch.Generator().manual_seed(s)))
        R.reference_preprocess(x[0], means, stds, train=True, draw=c)
        counts.add(len(c.calls))
        assert c.calls[0] == (0.0, 1.0, (), False)  # the flip gate comes first
    # 7 gates always draw; at most 7 + scale 1 + rotate 1 + shift 3 + tsm 2 + resample 3 + mask 1 = 18.
    assert min(counts) >= 7 and max(counts) <= 18
    tf_counts = [len(m["sites"]) for m in CASES if m["train"]]
    assert min(tf_counts) == 7 and max(tf_counts) == 18
    # p <= 0 draws nothing; an ungated transform draws only its own values
    none, v = A.RecordedDraw([]), torch.nan_to_num(x[0, :3], nan=0.25)
    assert torch.equal(A.RandomFlipLR(p=0.0)(v, none), v)
    assert torch.equal(A.RandomScale(p=None)(v, A.RecordedDraw([2.0], [(0.8, 1.2, (), False)])), v * 2)
    # gates compare in float32: float32(0.8) = 0.800000012
    f08 = float(np.float32(0.8))
    below = float(np.nextafter(np.float32(0.8), np.float32(0)))
    assert A.RandomTemporalMask(p=0.8).gate(A.RecordedDraw([below])) and not A.RandomTemporalMask(p=0.8).gate(A.RecordedDraw([f08]))


def test_oneof_quirk():
    """melt.oneof applies every transform i with u <= (i+1) p / n, not just one."""
    x = torch.ones(2, 384)
    t = A.OneOf([A.RandomScale(p=None), A.RandomScale(p=None), A.RandomScale(p=None)], p=1.0)
    y = t(x, A.RecordedDraw([0.1, 2.0, 3.0, 5.0]))
    assert torch.equal(y, x * 30)
    y = t(x, A.RecordedDraw([0.5, 3.0, 5.0]))
    assert torch.equal(y, x * 15)
    assert torch.equal(A.OneOf([A.RandomScale(p=None)], p=0.0)(x, A.RecordedDraw([])), x)
