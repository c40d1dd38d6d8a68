"""Every file name and folder aslfr reads or writes, in one place.

    {data_dir}/{split.csv}, {data_dir}/{split.landmarks}/<file_id>.parquet     competition input
    {out_dir}/inference_args.json                                               selected columns
    {out_dir}/tfrecords/{split.records}/{file_index*folds+fold}.{count}.tfrec   shards (reference names)
        ... /{number}.{count}.tfindex     index beside each shard
        ... /manifest.json                what a finished run wrote (shards, sizes, CRCs, config)
        ... /means.npy, stds.npy          column statistics
        ... /.aslfr/{number}.json         one receipt per unit of work (resume, merge)
        ... /.aslfr/lock, {number}.lock   advisory locks of running conversions (local folders)
        ... /.aslfr/run-{fingerprint}-{id}.json   a running conversion's marker (stores: see convert.locks)
        ... /.{name}.{pid}.tmp            a local file being written (Store.publishing)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from aslfr.format.store import Location, Store, join, name, parent


@dataclass(frozen=True)
class Split:
    """The per-split facts: where its CSV and parquet files are, where its records go, their weight."""

    name: str
    csv: str
    landmarks: str
    records: str
    #: `weight` feature of its records: 1.0, or None for "the configured sup_weight"
    weight: float | None


SPLITS: dict[str, Split] = {
    "train": Split("train", "train.csv", "train_landmarks", "train", 1.0),
    "supplemental": Split("supplemental", "supplemental_metadata.csv", "supplemental_landmarks", "sup", None),
}


def split(name: str) -> Split:
    try:
        return SPLITS[name]
    except KeyError:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {name!r}") from None


#: The reference notebook's defaults, stated once: StratifiedGroupKFold(FOLDS, shuffle=True,
#: random_state=FOLD_SEED) and the weight of supplemental records (conf/convert.yaml mirrors them).
FOLDS, FOLD_SEED, SUP_WEIGHT = 4, 1229, 0.1


def split_weight(name: str, sup_weight: float) -> float:
    w = split(name).weight
    return sup_weight if w is None else w


RECORDS_ROOT = "tfrecords"
INFERENCE_ARGS = "inference_args.json"
MANIFEST = "manifest.json"
MEANS, STDS = "means.npy", "stds.npy"
RECEIPTS = ".aslfr"
LOCK = "lock"


# Every helper below takes and gives a local path (a Path) or a URL string, as `store.location` makes them.


def csv_path(data_dir: Location, split_name: str) -> Location:
    """The split's CSV in `data_dir`, a folder or a URL prefix."""
    return join(data_dir, split(split_name).csv)


def records_dir(out_dir: Location, split_name: str) -> Location:
    return join(join(out_dir, RECORDS_ROOT), split(split_name).records)


def receipts_dir(records: Location) -> Location:
    return join(records, RECEIPTS)


def receipt_name(number: int) -> str:
    """A unit of work's receipt, in the receipts folder."""
    return f"{number}.json"


def lock_name(number: int | None = None) -> str:
    """The run-wide lock (finalize), or the lock of one unit of work, in the receipts folder."""
    return LOCK if number is None else f"{number}.lock"


def lock_path(records: Location, number: int | None = None) -> Location:
    return join(receipts_dir(records), lock_name(number))


SHARD_RE = re.compile(r"^(\d+)\.(\d+)\.tfrec$")


def shard_number(file_index: int, fold: int, folds: int) -> int:
    return file_index * folds + fold


def shard_name(number: int, count: int) -> str:
    """`{file_index*folds+fold}.{count}.tfrec`, as the reference renames its files."""
    return f"{number}.{count}.tfrec"


def index_name(shard: str) -> str:
    """The index file beside a shard; `*.tfindex` so that `glob('*.tfrec')` never matches it."""
    return shard[: -len(".tfrec")] + ".tfindex"


def index_path(shard: Location) -> Location:
    return join(parent(shard), index_name(name(shard)))


def parse_shard_name(name: str) -> tuple[int, int] | None:
    """(number, count) of a shard file name, or None."""
    m = SHARD_RE.match(name)
    return (int(m.group(1)), int(m.group(2))) if m else None


def shard_names(names: Iterable[str]) -> list[str]:
    """The shard file names among a folder's file names, by shard number."""
    return sorted((n for n in names if SHARD_RE.match(n)), key=lambda n: parse_shard_name(n)[0])


def glob_shards(directory: Location, options: Mapping[str, Any] | None = None) -> list[Location]:
    """The shard files in a folder or under a prefix, by shard number (what is there, manifest or not)."""
    store = Store.at(directory, options)
    return [store.where(n) for n in shard_names(store.list())]


def fold_of_number(number: int, folds: int) -> int:
    return number % folds
