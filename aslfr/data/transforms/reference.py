"""The reference's PreprocessLayer (src/tf/preprocess.py, final config) as presets over `augment`,
with one entry point per sequence and one per padded batch.

Training: flip 0.25, scale/rotate/shift 0.75, (OneOf affine p=0: no draw), temporal_seq_mask 0.5,
[raw | normalized], NaN -> 0, pos, resample 0.8, pad/resize to 320, temporal_mask 0.8.
Inference: the deterministic steps only.

rounding: "tf.data" (default) is how the reference trains and validates (Dataset.map of the layer):
TF evaluates its constant divisions as written. "tf.function" is a direct call of the layer (TFLite
export, eager use): grappler folds them into multiplications by reciprocals; pass TF's
own `tf.math.reciprocal(stds)` as inv_stds for bit-exactness there, as it is CPU-dependent."""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple, Union

import torch

from aslfr.data.transforms import augment as A
from aslfr.data.transforms import functional as F
from aslfr.data.transforms.counter import KeyedDraws, random_keys
from aslfr.data.transforms.frame import n_cols
from aslfr.data.transforms.rows import Rows, run_rows

N_FRAMES = 320

ROUNDINGS = ("tf.data", "tf.function")


def _folded(rounding: str, stds, inv_stds):
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")
    if rounding == "tf.data":
        if inv_stds is not None:
            raise ValueError("inv_stds only applies to rounding='tf.function'")
        return False, None
    return True, (F.reciprocal(stds) if inv_stds is None else inv_stds)


def training_transforms(means, stds, *, rounding: str = "tf.data", inv_stds=None, n_frames: int = N_FRAMES) -> A.Compose:
    """The final config's training path, in the reference's execution (and draw) order."""
    folded, inv = _folded(rounding, stds, inv_stds)
    return A.Compose([
        A.RandomFlipLR(p=0.25),
        A.RandomScale(p=0.75, range=(0.8, 1.2)),
        A.RandomRotate(p=0.75, degrees=(-15.0, 15.0), folded=folded),
        A.RandomShift(p=0.75, range=(-0.05, 0.05)),
        A.OneOf([A.RandomScale(p=None), A.RandomRotate(p=None, folded=folded), A.RandomShift(p=None)], p=0.0),
        A.RandomTemporalSeqMask(p=0.5, frac=(0.1, 0.2)),
        A.ConcatNormalized(means, stds, inv),
        A.NanToZero(),
        A.AddPos(folded),
        A.RandomResample(p=0.8, rate=(0.5, 1.5)),
        A.PadOrResize(n_frames),
        A.RandomTemporalMask(p=0.8, prob=0.5),
    ])


def inference_transforms(means, stds, *, rounding: str = "tf.data", inv_stds=None, n_frames: int = N_FRAMES) -> A.Compose:
    """Validation / TFLite path: no draws at all."""
    folded, inv = _folded(rounding, stds, inv_stds)
    return A.Compose([
        A.ConcatNormalized(means, stds, inv),
        A.NanToZero(),
        A.AddPos(folded),
        A.PadOrResize(n_frames),
    ])


def transforms(means, stds, *, train: bool, **kw) -> A.Compose:
    return (training_transforms if train else inference_transforms)(means, stds, **kw)


def reference_n_frames(length: Union[int, torch.Tensor], n_frames: int = N_FRAMES):
    """What the reference itself returns as `n_frames_`: the length after padding but before the
    downsample, max(L, n) (L = length after resampling). Not the number of real frames."""
    if isinstance(length, torch.Tensor):
        return length.clamp_min(n_frames)
    return max(int(length), n_frames)


def _frames(frames) -> torch.Tensor:
    x = torch.as_tensor(frames, dtype=torch.float32)
    if x.shape[-1] != F.N_COLS:
        raise ValueError(f"frames must have {F.N_COLS} columns, got shape {tuple(x.shape)}")
    return x


def _sequence(frames) -> torch.Tensor:
    """One sequence [T>=1, 384] as float32, the shape every per-sequence entry point requires."""
    x = _frames(frames)
    if x.dim() != 2 or x.shape[0] < 1:
        raise ValueError(f"expected one sequence [T>=1, {F.N_COLS}], got shape {tuple(x.shape)}")
    return x


def reference_preprocess(frames, means, stds, *, train: bool, key: Optional[int] = None,
                         draw: Optional[Callable] = None, generator: Optional[torch.Generator] = None,
                         rounding: str = "tf.data", inv_stds=None, n_frames: int = N_FRAMES,
                         return_plan: bool = False):
    """One sequence [T, 384] (NaN kept) -> (out [n_frames, 769] float32, length).

    length = min(L, n_frames): the number of non-padding frames (L = T, or the resampled length).
    Randomness: `key` (an int in [0, 2^63), as readers give per record: the draws are counter-based,
    the same as `reference_preprocess_batch` with this key), or a `draw(low, high, shape, integer)`
    called in the reference's order (a `RecordedDraw` of TF's values replays TF), or `generator` for
    `TorchDraw(generator)` (None: torch's global RNG). With return_plan (draw / generator only) the
    sampled per-step parameters are returned too, as a third item: `resampled_length(plan)` gives L,
    and `reference_n_frames(L)` the reference's own `n_frames_`."""
    x = _sequence(frames)
    pipe = transforms(means, stds, train=train, rounding=rounding, inv_stds=inv_stds, n_frames=n_frames)
    if key is not None:
        if draw is not None or generator is not None or return_plan:
            raise ValueError("key= draws by counter: it takes no draw=, generator= or return_plan")
        out, length = _keyed(pipe, x.unsqueeze(0), torch.tensor([x.shape[0]]), torch.tensor([key]), eager=True)
        return out[0], int(length[0])
    if draw is None:
        draw = A.TorchDraw(generator)
    plan = pipe.sample(draw, x.shape[0])
    out = pipe.apply(x, plan)
    length = plan["length"]
    return (out, length, plan) if return_plan else (out, length)


def _keyed(pipe: A.Compose, x: torch.Tensor, lengths: torch.Tensor, keys: torch.Tensor, eager: bool):
    """Plan a batch (padded or packed rows) by its records' keys, on its device, and run the plan."""
    frames = x.shape[1] if x.dim() == 3 else x.shape[0]  # a bound of the lengths, known without a read
    plan = pipe.sample_keyed(KeyedDraws(keys.to(x.device)), lengths, frames)
    return _run(pipe, x, lengths, plan, eager)


def _run(pipe: A.Compose, x: torch.Tensor, lengths: torch.Tensor, plan, eager: bool, out=None, host=None):
    """A batched plan on a padded batch [B, T, 384] or packed rows [sum(lengths), 384]."""
    if x.dim() == 2:
        return run_rows(pipe, x, Rows.packed(lengths, x.shape[0]), plan, eager, out, host=host)
    return run_rows(pipe, x.reshape(-1, x.shape[-1]), Rows.padded(lengths, x.shape[1]), plan, eager, out, host=host)


def _on_host(pipe: A.Compose, x: torch.Tensor, lengths: torch.Tensor, host_lengths: torch.Tensor, keys: torch.Tensor):
    """Keys and lengths on the host, data on a device (as a loader hands them): plan on the host,
    where reading the plan costs nothing, send it over once, and let the device compute each output
    once, by its own method (`rows._grouped`)."""
    frames = x.shape[1] if x.dim() == 3 else x.shape[0]
    plan = pipe.sample_keyed(KeyedDraws(keys, elements_on=x.device), host_lengths, frames)  # frame draws there
    on_device = _to(plan, x.device)
    return _run(pipe, x, lengths, on_device, False, host=(plan, host_lengths))


def _to(plan, device):
    if isinstance(plan, torch.Tensor):
        return plan.to(device, non_blocking=True)
    if isinstance(plan, dict):
        return {k: _to(v, device) for k, v in plan.items()}
    if isinstance(plan, list):
        return [_to(v, device) for v in plan]
    return plan


def resampled_length(plan) -> Optional[int]:
    """L, the length after the resample step (before pad/resize), from a plan of `reference_preprocess`;
    None when the sequence was not resampled (then L = T)."""
    length = None
    for p in plan["plan"]:
        if isinstance(p, dict) and "method" in p:
            length = int(p["size"])
    return length


def _batch_lengths(x: torch.Tensor, lengths) -> torch.Tensor:
    """lengths [B] on x's device, checked in [1, T]: on the host when they are given there (a
    batch's lengths usually are), else on the device without waiting for it."""
    lens = torch.as_tensor(lengths, dtype=torch.int64)
    if x.dim() == 2:  # packed: the lengths partition the rows
        lens = lens.reshape(-1)
        ok, what = (lens >= 1).all() & (lens.sum() == x.shape[0]), f"lengths must be >= 1 and sum to {x.shape[0]} rows"
    else:
        if lens.numel() != x.shape[0]:
            raise ValueError(f"{lens.numel()} lengths for a batch of {x.shape[0]}")
        lens = lens.reshape(x.shape[0])
        ok, what = (lens >= 1).all() & (lens <= x.shape[1]).all(), f"lengths must be in [1, T={x.shape[1]}]"
    if lens.device.type == "cpu":
        if not bool(ok):
            raise ValueError(what)
        return lens.to(x.device, non_blocking=True)
    torch._assert_async(ok, what)
    return lens.to(x.device)


def reference_preprocess_batch(frames, lengths, means, stds, *, train: bool, keys=None,
                               draws: Union[None, Callable, Sequence[Callable]] = None,
                               generator: Optional[torch.Generator] = None, rounding: str = "tf.data",
                               inv_stds=None, n_frames: int = N_FRAMES, pipe: Optional[A.Compose] = None,
                               eager: Optional[bool] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """A padded batch [B, T, 384], or packed rows [sum(lengths), 384] as `pack_collate` sends them,
    with lengths [B] -> (out [B, n_frames, 769], lengths [B]).

    Every sequence gets its own draws. `keys` [B] (int64, e.g. a `pack_collate` batch's "key"):
    counter-based, each sequence exactly as `reference_preprocess(key=)` gives it, the whole batch
    planned in a few vectorized ops where the keys are. Keys and lengths on the host with the input
    on a device (a loader's batch on a GPU): planned on the host, each output computed once by its
    own method; keys on the device: nothing is read back to the host, a fixed number of ops.
    Or, in the reference's order, `draws` (one callable per sequence, or one used for sequence 0's
    draws, then sequence 1's, ...) or `generator` (TorchDraw); with none, keys from torch's global
    RNG. The result equals `reference_preprocess` per sequence. An empty batch (B=0) gives the same
    shapes with B=0, so a training loop needs no special case for it. `pipe`: a prebuilt
    `transforms(...)`, as `ReferencePreprocess.batch` passes (skips re-checking the stats).
    eager: read gates and sizes on the host to skip work; default: on the CPU, where such reads are
    free (elsewhere each would wait for the device). The result is the same either way."""
    x = _frames(frames)
    if x.dim() not in (2, 3):
        raise ValueError(f"expected [B, T, {F.N_COLS}] (or packed [sum(lengths), {F.N_COLS}]), got shape {tuple(x.shape)}")
    lens = _batch_lengths(x, lengths)
    bsz = len(lens)
    if pipe is None:
        pipe = transforms(means, stds, train=train, rounding=rounding, inv_stds=inv_stds, n_frames=n_frames)
    if bsz == 0:  # no plan: every step would pass the input through, shape and all
        return x.new_zeros((0, n_frames, n_cols())), lens
    if draws is None and generator is None:
        keys = random_keys(bsz) if keys is None else torch.as_tensor(keys, dtype=torch.int64).reshape(bsz)
        host = torch.as_tensor(lengths)
        if eager is None and x.device.type != "cpu" and keys.device.type == "cpu" and host.device.type == "cpu":
            return _on_host(pipe, x, lens, host.to(torch.int64).reshape(bsz), keys)
        return _keyed(pipe, x, lens, keys, eager=x.device.type == "cpu" if eager is None else eager)
    if keys is not None:
        raise ValueError("give keys= or draws= / generator=, not both")
    per_seq = list(draws) if isinstance(draws, (list, tuple)) else [draws or A.TorchDraw(generator)] * bsz
    if len(per_seq) != bsz:
        raise ValueError(f"{len(per_seq)} draws for {bsz} sequences")
    plans = [pipe.sample(d, int(n)) for d, n in zip(per_seq, lens.tolist())]
    return _run(pipe, x, lens, pipe.stack(plans, x.device), x.device.type == "cpu" if eager is None else eager)


class ReferencePreprocess:
    """Reader item transform: `frames` [T, 384] -> the model input [n_frames, 769] as the reference's
    PreprocessLayer gives it, plus `length` (non-padding frames). With `train`, the augmentations
    draw by the record's `key`, which the reader passes (from seed, epoch, file and record), so a run
    is reproducible whatever the number of workers. `batch` runs the same on a padded batch.

        ds = aslfr.TFRecordShards(files, shuffle=True, seed=0, transform=aslfr.ReferencePreprocess(means, stds))
    """

    def __init__(self, means, stds, *, train: bool = True, rounding: str = "tf.data", n_frames: int = N_FRAMES):
        self.means = torch.as_tensor(means, dtype=torch.float32)
        self.stds = torch.as_tensor(stds, dtype=torch.float32)
        self.train, self.rounding, self.n_frames = train, rounding, n_frames
        self.pipe = transforms(self.means, self.stds, train=train, rounding=rounding, n_frames=n_frames)

    @property
    def random(self) -> bool:
        """Readers pass each record's key to random transforms."""
        return self.train

    def __call__(self, item, key: Optional[int] = None, generator: Optional[torch.Generator] = None):
        frames = item["frames"] if isinstance(item, dict) else item
        x = _sequence(frames)
        if key is None:
            plan = self.pipe.sample(A.TorchDraw(generator), x.shape[0])
            out, length = self.pipe.apply(x, plan), plan["length"]
        else:
            out, lens = _keyed(self.pipe, x.unsqueeze(0), torch.tensor([x.shape[0]]), torch.tensor([key]), eager=True)
            out, length = out[0], int(lens[0])
        if not isinstance(item, dict):
            return out, length
        item = dict(item)
        item["frames"], item["length"] = out, torch.tensor(length, dtype=torch.int64)
        return item

    def batch(self, frames, lengths, keys=None, eager: Optional[bool] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """A padded batch [B, T, 384] and its lengths -> (out [B, n_frames, 769], lengths), each
        sequence as `__call__` gives it for its key, on the batch's device (off the CPU with no
        host reads: see `reference_preprocess_batch`)."""
        return reference_preprocess_batch(frames, lengths, None, None, train=self.train, keys=keys,
                                          n_frames=self.n_frames, pipe=self.pipe, eager=eager)
