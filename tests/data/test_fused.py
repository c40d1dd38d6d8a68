"""The fused numba kernels (`aslfr.data.kernels`) against the torch path they replace on the CPU,
bit for bit: TF's goldens through the kernels, batch == per sequence, the numba planner == the torch
planner, and a property test over lengths, plans, resample methods and NaN patterns."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT
from test_train_pipeline import BATCH_CASES, CASES, G, case_id, draws_of, frames_of, run_case, tf_out

from aslfr.data.collate import ReferenceCollate
from aslfr.data.kernels import fused as K
from aslfr.data.kernels.fused import FusedInput, plan_arrays
from aslfr.data.transforms import augment as A
from aslfr.data.transforms import reference as R
from aslfr.data.transforms.counter import KeyedDraws
from aslfr.data.transforms.rows import Rows, run_rows

MEANS, STDS = torch.full((384,), 0.5), torch.full((384,), 0.1)


def bits(t) -> torch.Tensor:
    """float32 as its bit patterns: -0.0 differs from 0.0, and NaN compares by payload."""
    return torch.as_tensor(t).contiguous().view(torch.int32)


def same_bits(a, b) -> bool:
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    return a.shape == b.shape and torch.equal(bits(a), bits(b))


def kernel(pipe, frames, lengths, keys=None, plan=None):
    """The fused kernel of `pipe` on packed frames -> (out [B, n, 769], lengths)."""
    fused = FusedInput.of(pipe)
    lengths = np.asarray(lengths, np.int64)
    out = np.full((len(lengths), fused.n, K.WIDTH), np.nan, np.float32)  # every byte must be written
    frames = np.asarray(frames, np.float32)
    got = fused.planned(frames, lengths, plan, out) if plan is not None else fused(frames, lengths, keys, out)
    return torch.from_numpy(out), torch.from_numpy(got)


def torch_path(pipe, frames, lengths, keys):
    lens = torch.as_tensor(lengths)
    plan = pipe.sample_keyed(KeyedDraws(torch.as_tensor(keys)), lens, int(lens.max()))
    x = torch.as_tensor(frames, dtype=torch.float32)
    return run_rows(pipe, x.clone(), Rows.packed(lens, x.shape[0]), plan, eager=True)


def golden_pipe(ci):
    meta = CASES[ci]
    kw = {"inv_stds": torch.from_numpy(G["tf_inv_stds"])} if meta["mode"] == "tf.function" else {}
    return R.transforms(G["means"], G["stds"], train=meta["train"], rounding=meta["mode"], **kw)


# ---------------------------------------------------------------------------------------------
# against TF and the torch path


@pytest.mark.parametrize("ci", range(len(CASES)), ids=case_id)
def test_golden_through_the_kernels(ci):
    """TF's recorded draws, planned by torch and run by the kernel: TF's output (rotate within 1e-5,
    as the torch path: it depends on the CPU that made the golden), and the torch path's bits."""
    meta = CASES[ci]
    pipe, x = golden_pipe(ci), frames_of(ci)
    plan = pipe.stack([pipe.sample(draws_of(ci), x.shape[0])], "cpu") if meta["train"] else None
    out, length = kernel(pipe, x, [x.shape[0]], keys=[0], plan=plan)
    torch_out, torch_length, _ = run_case(ci)
    assert same_bits(out[0], torch_out) and int(length[0]) == torch_length
    if "rotate" in meta["sites"]:
        assert (out[0] - tf_out(ci)).abs().max().item() <= 1e-5
    else:
        assert same_bits(out[0], tf_out(ci))


def test_golden_batch_equals_per_sequence():
    pipe = golden_pipe(BATCH_CASES[0])
    xs = [frames_of(ci) for ci in BATCH_CASES]
    lengths = [x.shape[0] for x in xs]
    plans = [pipe.sample(draws_of(ci), n) for ci, n in zip(BATCH_CASES, lengths)]
    out, got = kernel(pipe, torch.cat(xs), lengths, plan=pipe.stack(plans, "cpu"))
    for b, ci in enumerate(BATCH_CASES):
        single, n = kernel(pipe, xs[b], [lengths[b]], plan=pipe.stack([plans[b]], "cpu"))
        assert same_bits(out[b], single[0]) and got[b] == n[0], case_id(ci)
        assert same_bits(out[b], run_case(ci)[0])


def _random_frames(seed, lengths, nan="hands"):
    g = np.random.default_rng(seed)
    x = (g.random((sum(lengths), 384), dtype=np.float32) * 0.6 + 0.2).astype(np.float32)
    if nan == "hands":  # a hand missing in some frames, as in the data
        x[g.random(len(x)) < 0.3, :63] = np.nan
    elif nan == "scattered":
        x[g.random(x.shape) < 0.05] = np.nan
    elif nan == "frames":  # whole frames missing
        x[g.random(len(x)) < 0.2] = np.nan
    return x


@pytest.mark.parametrize("train", [True, False])
def test_keyed_batch_equals_per_sequence_and_torch(train):
    lengths = [1, 2, 5, 37, 160, 319, 320, 321, 641, 800]
    x = _random_frames(0, lengths)
    keys = np.arange(len(lengths), dtype=np.int64) * 7919 + 11
    pipe = R.transforms(MEANS, STDS, train=train)
    out, got = kernel(pipe, x, lengths, keys)
    ref, ref_lengths = torch_path(pipe, x, lengths, keys)
    assert same_bits(out, ref) and torch.equal(got, ref_lengths)
    starts = np.cumsum(lengths) - lengths
    for b, (a, n) in enumerate(zip(starts, lengths)):
        single, m = kernel(pipe, x[a:a + n], [n], keys[b:b + 1])
        assert same_bits(single[0], out[b]) and m[0] == got[b]


@pytest.mark.parametrize("rounding", ["tf.data", "tf.function"])
def test_numba_planner_equals_torch_planner(rounding):
    """The kernel's own draws == `Compose.sample_keyed`'s, value for value, on many keys and lengths."""
    g = torch.Generator().manual_seed(1)
    keys, lengths = torch.randint(0, 2 ** 63 - 1, (3000,), generator=g), torch.randint(1, 1000, (3000,), generator=g)
    pipe = R.transforms(MEANS, STDS, train=True, rounding=rounding)
    ints, floats, keep = FusedInput.of(pipe).plan(keys.numpy(), lengths.numpy())
    t_ints, t_floats, t_drop = plan_arrays(pipe.sample_keyed(KeyedDraws(keys), lengths, int(lengths.max())), 320)
    assert np.array_equal(ints, t_ints) and np.array_equal(keep, ~t_drop)
    assert np.array_equal(floats.view(np.int32), t_floats.view(np.int32))
    assert set(ints[:, 8]) == {0, 1, 2} and 0 < ints[:, 0].mean() < 1  # every method, some gates


def test_only_the_reference_structures_are_fused():
    assert FusedInput.of(A.Compose([A.RandomFlipLR(), A.PadOrResize()])) is None
    assert FusedInput.of(R.transforms(MEANS, STDS, train=True)).train
    assert ReferenceCollate(MEANS, STDS, train=True, backend="torch").fused is None
    with pytest.raises(ValueError, match="backend must be one of"):
        ReferenceCollate(MEANS, STDS, backend="tf")
    with pytest.raises(ValueError, match="out must be"):
        FusedInput.of(R.transforms(MEANS, STDS, train=False))(np.zeros((3, 384), np.float32), [3], None,
                                                              np.zeros((1, 320, 768), np.float32))


def test_reference_collate_backends_agree():
    g = np.random.default_rng(3)
    lengths = [int(n) for n in g.integers(1, 800, 12)]
    frames = _random_frames(4, lengths)
    starts = np.cumsum(lengths) - lengths
    items = [{"frames": frames[a:a + n], "key": int(g.integers(0, 2 ** 62)), "phrase_": np.arange(32), "n": n}
             for a, n in zip(starts, lengths)]
    for train in (True, False):
        fast = ReferenceCollate(MEANS, STDS, train=train)(items)
        slow = ReferenceCollate(MEANS, STDS, train=train, backend="torch")(items)
        assert list(fast) == list(slow)
        for k in fast:
            assert same_bits(fast[k], slow[k]) if fast[k].dtype == torch.float32 else torch.equal(fast[k], slow[k]), k


# ---------------------------------------------------------------------------------------------
# property test: kernel == torch path, bit for bit


def _pipe(rates: str, method: int, rounding: str) -> A.Compose:
    """The training structure with gates at the presets, all on, or all off; method forces one
    resample method (3: the presets' mix)."""
    pipe = R.transforms(MEANS, STDS, train=True, rounding=rounding)
    for t in pipe.transforms:
        if rates != "preset" and isinstance(t.p, float) and not isinstance(t, A.OneOf):
            t.p = 1.0 if rates == "on" else 0.0
    res = pipe.transforms[9]
    if method < 3:
        res.bilinear_p, res.bicubic_p = (1.0, 0.0) if method == 0 else (0.0, 1.0 if method == 1 else 0.0)
    return pipe


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lengths=st.lists(st.integers(1, 800), min_size=1, max_size=5),
       seed=st.integers(0, 2 ** 32 - 1),
       nan=st.sampled_from(["none", "hands", "scattered", "frames"]),
       rates=st.sampled_from(["preset", "on", "off"]),
       method=st.integers(0, 3),
       rounding=st.sampled_from(["tf.data", "tf.function"]),
       train=st.booleans())
def test_kernel_equals_torch_path(lengths, seed, nan, rates, method, rounding, train):
    x = _random_frames(seed, lengths, nan)
    keys = np.random.default_rng(seed).integers(0, 2 ** 63 - 1, len(lengths), dtype=np.int64)
    pipe = _pipe(rates, method, rounding) if train else R.transforms(MEANS, STDS, train=False, rounding=rounding)
    out, got = kernel(pipe, x, lengths, keys)
    ref, ref_lengths = torch_path(pipe, x, lengths, keys)
    assert same_bits(out, ref) and torch.equal(got, ref_lengths)


# ---------------------------------------------------------------------------------------------
# compilation cache


def test_cache_goes_to_a_user_cache_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(XDG_CACHE_HOME=str(tmp_path), PYTHONPATH=str(ROOT))
    code = "import aslfr.data.kernels, numba.core.config as c, os; print(os.environ['NUMBA_CACHE_DIR'], c.CACHE_DIR)"
    got = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert got.split() == [str(tmp_path / "aslfr" / "numba")] * 2
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "mine")
    got = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert got.split() == [str(tmp_path / "mine")] * 2


def test_per_core_rates_for_the_bench():
    from aslfr.data.kernels.timing import per_core_rates

    rates = per_core_rates(batch=2, repeats=1)
    assert set(rates) == {"copy", "training_kernel", "inference_kernel", "training_collate_numba",
                          "training_collate_torch", "inference_collate_numba", "inference_collate_torch", "copy_ratio"}
    assert all(v > 0 for v in rates.values())


def test_records_read_where_they_lie():
    """One array per record (as decoded: a view at any byte offset; or float64, non-contiguous, a
    tensor) gives the packed batch's bits."""
    lengths = [3, 321, 40]
    x = _random_frames(5, lengths)
    a, b = x[:3], x[3:324]
    raw = bytearray(1 + b.nbytes)
    raw[1:] = b.tobytes()
    unaligned = np.frombuffer(raw, np.float32, offset=1).reshape(321, 384)  # not 4-byte aligned
    wide = np.asfortranarray(x[324:].astype(np.float64))
    fused = FusedInput.of(R.transforms(MEANS, STDS, train=True))
    keys = np.array([1, 2, 3])
    packed, apart = (np.empty((3, 320, K.WIDTH), np.float32) for _ in range(2))
    fused(x, lengths, keys, packed)
    fused([torch.from_numpy(a), unaligned, wide], lengths, keys, apart)
    assert not unaligned.flags.aligned and same_bits(packed, apart)
    with pytest.raises(ValueError, match=r"frames of lengths \[3, 321\], expected \[3, 321, 40\]"):
        fused([a, b], lengths, keys, apart)
    with pytest.raises(ValueError, match="every record needs frames"):
        fused(x[:3], [3, 0], keys[:2], apart[:2])
