"""An epoch of training as a pure function: which records, in which order, cut into which global
batches. Its inputs are the shards' record counts (and the parquet file each shard comes from), the
seed, the epoch and the global batch size; never the ranks or the DataLoader workers. So every
topology reads the same batches, and a resume at step k is exact and reads nothing before it.

The order interleaves shards as tf.data's `interleave` does, but wider and at random: the epoch's
shards are dealt into windows of about `interleave` shards (the folds of one parquet file into
different windows), and inside a window every position draws its shard at random while each shard
is read front to back from a random starting record. A batch of 128 then holds records of ~56
parquet files on the real data's shape (uniform random: ~58; the reference's tf.data: 16 to 32),
while the records of a shard are still consumed in one sequential pass, a window of shards at a
time (the working set of a page cache or a `cache_dir`).

Rows of a plan are (shard, record, repeat): `repeat` 0 is a record's first reading in the epoch;
a rate above 1 or a top-up reads it again with repeat 1, 2, ..., which is part of its random key,
so a record read twice is augmented differently."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

#: Shards mixed at once by default: ~56 parquet files a batch of 128 on the real data's shape (64: ~47).
INTERLEAVE = 128


@dataclass(frozen=True)
class EpochPlan:
    """An epoch's rows [(shard, record, repeat)] in order, cut into global batches of `global_batch`
    rows (one global batch a step; rank r of w takes its slice r). `topped_up`: rows added at the
    end (earlier rows read again) so that the last batch is full; `trimmed`: rows left out."""

    rows: np.ndarray
    global_batch: int
    topped_up: int = 0
    trimmed: int = 0

    @property
    def steps(self) -> int:
        return len(self.rows) // self.global_batch

    def batch(self, step: int) -> np.ndarray:
        """The rows of global batch `step`."""
        if not 0 <= step < self.steps:
            raise IndexError(f"step {step} out of range: the epoch has {self.steps} steps")
        return self.rows[step * self.global_batch:(step + 1) * self.global_batch]

    def rank_batch(self, step: int, rank: int, world: int) -> np.ndarray:
        """Rank `rank`'s slice of global batch `step` (the global batch is world x the per-rank batch)."""
        per = self.global_batch // world
        return self.batch(step)[rank * per:(rank + 1) * per]


def epoch_order(counts: Sequence[int], seed: int, epoch: int, groups: Sequence[int] | None = None,
                shuffle: bool = True, interleave: int | None = INTERLEAVE,
                rates: Sequence[float] | None = None) -> np.ndarray:
    """The epoch's rows [(shard, record, repeat)], every record of every shard once (at rate 1).

    groups[s]: the parquet file shard s comes from (shards of one group go to different windows);
    rates[s]: records of shard s read per epoch per record (0.5: a different half each epoch, 2: each
    record twice); shuffle=False: shards in order, records in order. interleave=None: one window."""
    counts = np.asarray(counts, dtype=np.int64)
    n = len(counts)
    groups = np.arange(n) if groups is None else np.asarray(groups, dtype=np.int64)
    if len(groups) != n:
        raise ValueError(f"groups has {len(groups)} entries for {n} shards")
    if interleave is not None and interleave < 1:
        raise ValueError(f"interleave must be >= 1 (None: all shards at once), got {interleave}")
    rng = np.random.default_rng([seed, epoch, 0x5EED])
    shards = np.repeat(np.arange(n), counts)
    records = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    rows = np.stack([shards, records, np.zeros_like(shards)], axis=1)
    if rates is not None:
        rows = _at_rates(rows, counts, np.asarray(rates, dtype=np.float64), rng)
    if not shuffle or len(rows) == 0:
        return rows
    return _interleaved(rows, counts, groups, interleave or n, rng)


def _at_rates(rows: np.ndarray, counts: np.ndarray, rates: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each shard's rows at its rate: floor(rate) full readings (repeat 0, 1, ...) and a random
    subset of round(frac(rate) x count) records, kept in shard order, for the rest."""
    if len(rates) != len(counts) or (rates < 0).any() or not np.isfinite(rates).all():
        raise ValueError(f"rates must be one finite value >= 0 per shard ({len(counts)}), got {list(rates)}")
    out = []
    starts = np.cumsum(counts) - counts
    for start, count, rate in zip(starts, counts, rates):
        own = rows[start:start + count]
        whole, part = int(rate), int(round((rate - int(rate)) * count))
        for r in range(whole):
            out.append(own + [0, 0, r])
        chosen = np.sort(rng.choice(count, size=part, replace=False)) if part else np.zeros(0, np.int64)
        out.append(own[chosen] + [0, 0, whole])
    return np.concatenate(out) if out else rows[:0]


def _interleaved(rows: np.ndarray, counts: np.ndarray, groups: np.ndarray, width: int,
                 rng: np.random.Generator) -> np.ndarray:
    """Rows of each window of ~`width` shards in random order of shards, each shard's rows kept in
    their order from a random starting row (a rotation: one sequential pass, wrapped once)."""
    used = np.unique(rows[:, 0])
    # windows: parquet files in random order, their shards dealt round robin (folds apart)
    by_group = {}
    for s in rng.permutation(used):
        by_group.setdefault(int(groups[s]), []).append(int(s))
    dealt = [s for g in rng.permutation(sorted(by_group)) for s in by_group[int(g)]]
    windows = max(1, -(-len(dealt) // width))
    out = []
    for w in range(windows):
        members = sorted(dealt[w::windows])
        mine = rows[np.isin(rows[:, 0], members)]  # grouped by shard, in shard order
        labels = mine[:, 0]
        # each shard's rows, rotated by a random start
        sizes = np.bincount(labels, minlength=len(counts))[members]
        order = np.argsort(labels, kind="stable")
        own = mine[order]
        firsts = np.cumsum(sizes) - sizes
        rotated = np.concatenate([np.roll(own[f:f + k], -int(rng.integers(k)), axis=0)
                                  for f, k in zip(firsts, sizes) if k])
        # positions: the window's shard labels shuffled; the j-th position of shard s takes its j-th row
        draw = rng.permutation(np.repeat(np.arange(len(members)), sizes))
        slot = np.argsort(draw, kind="stable")  # positions grouped by shard, in position order
        placed = np.empty_like(rotated)
        placed[slot] = rotated
        out.append(placed)
    return np.concatenate(out)


def epoch_plan(counts: Sequence[int], seed: int, epoch: int, global_batch: int, drop_last: bool = False,
               groups: Sequence[int] | None = None, shuffle: bool = True, interleave: int | None = INTERLEAVE,
               rates: Sequence[float] | None = None) -> EpochPlan:
    """`epoch_order` cut into global batches of `global_batch` rows. The last partial batch is
    trimmed (drop_last) or topped up with the epoch's first rows read again (repeat + 1 past the
    highest repeat of the epoch, so a top-up record has a key of its own): every step full."""
    if global_batch < 1:
        raise ValueError(f"global batch size must be >= 1, got {global_batch}")
    rows = epoch_order(counts, seed, epoch, groups, shuffle, interleave, rates)
    extra = len(rows) % global_batch
    if extra == 0:
        return EpochPlan(rows, global_batch)
    if drop_last:
        return EpochPlan(rows[:len(rows) - extra], global_batch, trimmed=extra)
    need = global_batch - extra
    again = np.resize(rows, (need, 3))  # the first rows, cycled if the epoch is smaller than a batch
    again[:, 2] += rows[:, 2].max() + 1 + np.arange(need) // len(rows)
    return EpochPlan(np.concatenate([rows, again]), global_batch, topped_up=need)


def distinct_per_batch(rows: np.ndarray, groups: Sequence[int], batch: int = 128) -> float:
    """Mean number of distinct groups (parquet files) in the full batches of `batch` rows."""
    groups = np.asarray(groups)
    full = len(rows) // batch
    if full == 0:
        raise ValueError(f"{len(rows)} rows: no full batch of {batch}")
    g = groups[rows[:full * batch, 0]].reshape(full, batch)
    return float(np.mean([len(np.unique(b)) for b in g]))


def mixing(counts: Sequence[int], groups: Sequence[int], batch: int = 128, seed: int = 0, epoch: int = 0,
           interleave: int | None = INTERLEAVE) -> float:
    """The stream's mixing figure from record counts alone: distinct parquet files per batch of `batch`."""
    return distinct_per_batch(epoch_order(counts, seed, epoch, groups, interleave=interleave), groups, batch)


def reference_mixing(counts: Sequence[int], groups: Sequence[int], cores: int, batch: int = 128,
                     buffer: int = 1024, seed: int = 0) -> float:
    """The same figure for the reference's tf.data pipeline, simulated: files in shuffled order,
    `interleave(cycle_length=cores, block_length=1)` (nondeterministic: taken as round robin over the
    open files, a finished file replaced by the next), `shuffle(buffer)`, `batch(batch)`."""
    rng = np.random.default_rng(seed)
    counts = np.asarray(counts)
    pending = list(rng.permutation(len(counts)))
    pending.reverse()  # pop() takes the next file

    def opened() -> list | None:
        if not pending:
            return None
        s = pending.pop()
        return [s, int(counts[s])]

    cycle = [opened() for _ in range(min(cores, len(counts)))]
    interleaved = []
    while cycle:
        for slot in cycle:
            interleaved.append(slot[0])
            slot[1] -= 1
        cycle = [c for c in (slot if slot[1] else opened() for slot in cycle) if c is not None]
    out, buf = [], []
    for s in interleaved:  # tf.data's shuffle: a full buffer gives a random element and takes the next in its place
        if len(buf) < buffer:
            buf.append(s)
            continue
        j = int(rng.integers(buffer))
        out.append(buf[j])
        buf[j] = s
    out += list(rng.permutation(buf))
    return distinct_per_batch(np.stack([out, out, out], axis=1), groups, batch)


def mixing_figures(cores: Sequence[int] = (2, 8, 32)) -> list[tuple[str, float]]:
    """(stream, distinct parquet files per batch of 128) on the real data's shape, for `make bench`:
    this plan, the reference's tf.data on `cores` cores, uniform random."""
    counts, groups = real_shape()
    return ([(f"aslfr TFRecordStream (interleave {INTERLEAVE})", mixing(counts, groups))]
            + [(f"reference tf.data, {c} cores", reference_mixing(counts, groups, c)) for c in cores]
            + [("uniform random", mixing(counts, groups, interleave=None))])


def real_shape(files: int = 68, folds: int = 4, valid_fold: int = 0, records: int = 247,
               seed: int = 0) -> tuple[list[int], list[int]]:
    """(record counts, parquet file of each shard) of the real training shards: `files` parquet files
    x the training folds (shard n = file_index*folds + fold), ~`records` records a shard."""
    rng = np.random.default_rng(seed)
    shards = [(f, k) for f in range(files) for k in range(folds) if k != valid_fold]
    counts = (records + rng.integers(-12, 13, size=len(shards))).tolist()
    return counts, [f for f, _ in shards]


@dataclass(frozen=True)
class BudgetPlan:
    """An epoch cut into rank batches of at most `max_frames` frames each (variable record counts),
    the same sequence of rank batches whatever the world size; step k gives rank r rank batch
    k x world + r. `bounds`: where each rank batch starts and ends in `rows`."""

    rows: np.ndarray
    bounds: np.ndarray
    world: int
    topped_up: int = 0
    trimmed: int = 0

    @property
    def steps(self) -> int:
        return (len(self.bounds) - 1) // self.world

    def rank_batch(self, step: int, rank: int, world: int) -> np.ndarray:
        if world != self.world:
            raise ValueError(f"this plan is for a world size of {self.world}, not {world}")
        if not 0 <= step < self.steps:
            raise IndexError(f"step {step} out of range: the epoch has {self.steps} steps")
        j = step * world + rank
        return self.rows[self.bounds[j]:self.bounds[j + 1]]

    def batch(self, step: int) -> np.ndarray:
        """The rows of step `step`, over all ranks."""
        return self.rows[self.bounds[step * self.world]:self.bounds[(step + 1) * self.world]]


def budget_plan(counts: Sequence[int], lengths: Sequence[Sequence[int]], seed: int, epoch: int, max_frames: int,
                world: int = 1, window: int = 1024, drop_last: bool = False, groups: Sequence[int] | None = None,
                shuffle: bool = True, interleave: int | None = INTERLEAVE,
                rates: Sequence[float] | None = None) -> BudgetPlan:
    """`epoch_order` cut into rank batches of at most `max_frames` frames (lengths[s][r]: frames of
    record r of shard s): each `window` rows of the order sorted by length (stable) and cut greedily,
    so a batch holds records of similar lengths; the window's batches then in random order. The
    rank batches are grouped `world` a step; the last incomplete step is trimmed (drop_last) or
    filled with the epoch's first rank batches read again (repeat past the epoch's highest)."""
    if max_frames < 1 or window < 1 or world < 1:
        raise ValueError(f"max_frames, window and world must be >= 1, got {max_frames}, {window}, {world}")
    rows = epoch_order(counts, seed, epoch, groups, shuffle, interleave, rates)
    size = np.concatenate([np.asarray(x, dtype=np.int64) for x in lengths]) if len(lengths) else np.zeros(0, np.int64)
    first = np.cumsum(np.asarray(counts, dtype=np.int64)) - np.asarray(counts, dtype=np.int64)
    frames = size[first[rows[:, 0]] + rows[:, 1]] if len(rows) else size[:0]
    if (frames > max_frames).any():
        s, r = rows[np.argmax(frames > max_frames), :2]
        raise ValueError(f"shard {s} record {r} has {frames.max()} frames, more than the frame budget of {max_frames}")
    rng = np.random.default_rng([seed, epoch, 0xB0D6E7])
    order, batches = [], []  # rows in batch order; each batch's row count
    for w in range(0, len(rows), window):
        idx = w + np.argsort(frames[w:w + window], kind="stable")
        cut, total, n = [], 0, 0
        for f in frames[idx]:
            if n and total + f > max_frames:
                cut.append(n)
                total, n = 0, 0
            total, n = total + f, n + 1
        cut.append(n)
        parts = np.split(idx, np.cumsum(cut)[:-1])
        for k in rng.permutation(len(parts)) if shuffle else range(len(parts)):
            order.append(parts[k])
            batches.append(len(parts[k]))
    n = len(order)
    extra, trimmed = n % world, 0
    if extra and drop_last:
        trimmed = sum(batches[n - extra:])
        order, batches = order[:n - extra], batches[:n - extra]
    picked = np.concatenate(order) if order else np.zeros(0, np.int64)
    out = rows[picked].copy()
    again = [] if drop_last or not extra else [(order[k % n], k // n) for k in range(world - extra)]
    if again:
        reps = rows[:, 2].max() + 1
        out = np.concatenate([out] + [rows[a] + [0, 0, reps + r] for a, r in again])
        batches = batches + [len(a) for a, _ in again]
    bounds = np.concatenate([[0], np.cumsum(batches)]).astype(np.int64)
    return BudgetPlan(out, bounds, world, sum(len(a) for a, _ in again), trimmed)
