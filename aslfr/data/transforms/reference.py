"""The reference's PreprocessLayer (src/tf/preprocess.py, final config) as presets over `augment`,
with one entry point per sequence and one per padded batch.

Training: flip 0.25, scale/rotate/shift 0.75, (OneOf affine p=0: no draw), temporal_seq_mask 0.5,
[raw | normalized], NaN -> 0, pos, resample 0.8, pad/resize to 320, temporal_mask 0.8.
Inference: the deterministic steps only. The spec: the reference training pipeline notes (ref-training-pipeline.md).

rounding: "tf.data" (default) is how the reference trains and validates (Dataset.map of the layer):
TF evaluates its constant divisions as written. "tf.function" is a direct call of the layer (TFLite
export, eager use): grappler folds them into multiplications by reciprocals (spec §2.4); pass TF's
own `tf.math.reciprocal(stds)` as inv_stds for bit-exactness there, as it is CPU-dependent."""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple, Union

import torch

from aslfr.data.transforms import augment as A
from aslfr.data.transforms import functional as F
from aslfr.data.transforms.frame import n_cols

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


def reference_preprocess(frames, means, stds, *, train: bool, draw: Optional[Callable] = None,
                         generator: Optional[torch.Generator] = None, rounding: str = "tf.data",
                         inv_stds=None, n_frames: int = N_FRAMES, return_plan: bool = False):
    """One sequence [T, 384] (NaN kept) -> (out [n_frames, 769] float32, length).

    length = min(L, n_frames): the number of non-padding frames (L = T, or the resampled length).
    draw: a `draw(low, high, shape, integer)`; default TorchDraw(generator) (generator None: torch's
    global RNG). With return_plan the sampled per-step parameters are returned too, as a third item:
    `resampled_length(plan)` gives L, and `reference_n_frames(L)` the reference's own `n_frames_`."""
    x = _sequence(frames)
    pipe = transforms(means, stds, train=train, rounding=rounding, inv_stds=inv_stds, n_frames=n_frames)
    if draw is None:
        draw = A.TorchDraw(generator)
    plan = pipe.sample(draw, x.shape[0])
    out = pipe.apply(x, plan)
    length = plan["length"]
    return (out, length, plan) if return_plan else (out, length)


def resampled_length(plan) -> Optional[int]:
    """L, the length after the resample step (before pad/resize), from a plan of `reference_preprocess`;
    None when the sequence was not resampled (then L = T)."""
    length = None
    for p in plan["plan"]:
        if isinstance(p, dict) and "method" in p:
            length = int(p["size"])
    return length


def reference_preprocess_batch(frames, lengths, means, stds, *, train: bool,
                               draws: Union[None, Callable, Sequence[Callable]] = None,
                               generator: Optional[torch.Generator] = None, rounding: str = "tf.data",
                               inv_stds=None, n_frames: int = N_FRAMES) -> Tuple[torch.Tensor, torch.Tensor]:
    """A padded batch [B, T, 384] with lengths [B] -> (out [B, n_frames, 769], lengths [B]).

    Every sequence gets its own draws, in the reference order: draws is one callable per sequence,
    or one callable used for sequence 0's draws, then sequence 1's, ... (default TorchDraw(generator)).
    The parameters are planned per sequence first, then each step runs vectorized on the batch (on
    the input's device); the result equals `reference_preprocess` per sequence (within 1e-5, in
    practice bit for bit). An empty batch (B=0, e.g. every sequence filtered out) gives the same
    shapes with B=0, so a training loop needs no special case for it."""
    x = _frames(frames)
    if x.dim() != 3:
        raise ValueError(f"expected [B, T, {F.N_COLS}], got shape {tuple(x.shape)}")
    bsz = x.shape[0]
    lens = torch.as_tensor(lengths, dtype=torch.int64).reshape(bsz).to(x.device)
    if bool((lens < 1).any()) or bool((lens > x.shape[1]).any()):
        raise ValueError("lengths must be in [1, T]")
    pipe = transforms(means, stds, train=train, rounding=rounding, inv_stds=inv_stds, n_frames=n_frames)
    if draws is None:
        draws = A.TorchDraw(generator)
    per_seq = list(draws) if isinstance(draws, (list, tuple)) else [draws] * bsz
    if len(per_seq) != bsz:
        raise ValueError(f"{len(per_seq)} draws for {bsz} sequences")
    if bsz == 0:  # no plan: every step would pass the input through, shape and all
        return x.new_zeros((0, n_frames, n_cols())), lens
    plans = [pipe.sample(d, int(n)) for d, n in zip(per_seq, lens.tolist())]
    return pipe.apply_batch(x, lens, plans)


class ReferencePreprocess:
    """Reader item transform: `frames` [T, 384] -> the model input [n_frames, 769] as the reference's
    PreprocessLayer gives it, plus `length` (non-padding frames). With `train`, the augmentations draw
    from the `generator` the reader passes (seeded per record, epoch and seed), so a run is
    reproducible whatever the number of workers.

        ds = aslfr.TFRecordShards(files, shuffle=True, seed=0, transform=aslfr.ReferencePreprocess(means, stds))
    """

    def __init__(self, means, stds, *, train: bool = True, rounding: str = "tf.data", n_frames: int = N_FRAMES):
        self.means = torch.as_tensor(means, dtype=torch.float32)
        self.stds = torch.as_tensor(stds, dtype=torch.float32)
        self.train, self.rounding, self.n_frames = train, rounding, n_frames
        self.pipe = transforms(self.means, self.stds, train=train, rounding=rounding, n_frames=n_frames)

    @property
    def random(self) -> bool:
        """Readers pass a per-record generator to random transforms."""
        return self.train

    def __call__(self, item, generator: Optional[torch.Generator] = None):
        frames = item["frames"] if isinstance(item, dict) else item
        x = _sequence(frames)
        plan = self.pipe.sample(A.TorchDraw(generator), x.shape[0])
        out = self.pipe.apply(x, plan)
        if not isinstance(item, dict):
            return out, plan["length"]
        item = dict(item)
        item["frames"], item["length"] = out, torch.tensor(plan["length"], dtype=torch.int64)
        return item
