"""Finalizing parts written by separate jobs (`+fold` sweeps, `shard_index` jobs): `manifest.json`,
`means.npy` and `stds.npy` once every unit of a split has its receipt."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Iterator

from aslfr.convert import receipts
from aslfr.convert.settings import Settings
from aslfr.errors import InputError
from aslfr.format import layout
from aslfr.format.store import Store
from aslfr.format.store import name as file_name


def merge_all(settings: Settings, splits: list[str] | None = None) -> list[str]:
    """Finalize each split (all that have receipts under out_dir, or those named); one line per split,
    saying what was written or which units are still missing (after a sweep of some folds only)."""
    base = dataclasses.replace(settings, fold=None, shard_index=0, shard_count=1)
    lines = []
    for split in splits or list(layout.SPLITS):
        s = dataclasses.replace(base, split=split)
        if not s.receipts.exists():
            if splits:
                raise InputError(f"{s.records_dir}: no conversion parts of split {split} found")
            continue
        lines.append(merge_split(s)[1])
    if not lines:
        raise InputError(f"{base.out_dir}/{layout.RECORDS_ROOT}: no conversion parts found")
    return lines


def merge_parts(out_dir: str, data_dir: str, split: str | None = None, folds: int | None = None,
                storage_options: dict[str, Any] | None = None) -> Iterator[str]:
    """`python -m aslfr.merge`: finalize each split (the one named, or every one with parts) with the
    settings its parts were written with; yields a line per finalized split, then raises InputError
    naming every split with units missing, so that a job chain sees the failure."""
    if split is not None and split not in layout.SPLITS:
        raise InputError(f"split must be one of {', '.join(layout.SPLITS)} or null, got {split!r}")
    if folds is not None and (not isinstance(folds, int) or isinstance(folds, bool) or folds < 2):
        raise InputError(f"folds must be null (as the parts were written) or an integer >= 2, got {folds!r}")
    options = dict(storage_options or {})
    root = Store.at(out_dir, options).child(layout.RECORDS_ROOT)
    splits = [split] if split else [name for name in layout.SPLITS
                                    if root.child(layout.split(name).records).child(layout.RECEIPTS).exists()]
    if not splits:
        raise InputError(f"{root.where()}: no conversion parts found")
    failed = []
    for name in splits:
        done, line = merge_split(settings_from_parts(out_dir, data_dir, name, folds, options))
        if done:
            yield line
        else:
            failed.append(line)
    if failed:
        raise InputError("; ".join(failed))


def settings_from_parts(out_dir: str, data_dir: str, split: str, folds: int | None = None,
                        storage_options: dict[str, Any] | None = None) -> Settings:
    """The settings a split's parts were written with, from their receipts: merging needs none of them
    repeated. Parts written with different settings, or with other `folds` than given, are an error."""
    records = Store.at(layout.records_dir(out_dir, split), storage_options)
    configs = _part_configs(records)
    if not configs:
        raise InputError(f"{records.where()}: no conversion parts of split {split} found")
    if folds is not None:
        written = sorted({c["folds"] for c in configs})
        configs = [c for c in configs if c["folds"] == folds]
        if not configs:
            raise InputError(f"{records.where()}: folds={folds} disagrees with the parts there, written with "
                             f"folds={' and '.join(map(str, written))}")
    if len(configs) > 1:
        raise InputError(f"{records.where()}: parts written with different settings ({_differences(configs)}); "
                         f"convert the split again with one setting")
    c = configs[0]
    try:  # the CSV is read for the inputs only: unknown characters were the jobs' business
        s = Settings.from_output_config(data_dir, out_dir, c, skip_unknown_chars=True, storage_options=records.options)
    except (KeyError, ValueError, TypeError):
        raise InputError(f"{records.where()}: parts written by another version of aslfr (their receipts' config: {c}); "
                         f"convert the split again") from None
    if s.output_config() != c:
        raise InputError(f"{records.where()}: parts written by another version of aslfr ({_differences([c, s.output_config()])}); "
                         f"convert the split again")
    return s


def _part_configs(records: Store) -> list[dict[str, Any]]:
    """The distinct configs named by the receipts in a records folder."""
    found = {}
    for name in records.child(layout.RECEIPTS).list():
        stem = name.removesuffix(".json")
        r = receipts.load_receipt(records, int(stem)) if name.endswith(".json") and stem.isdigit() else None
        if r and isinstance(r.get("config"), dict):
            found.setdefault(json.dumps(r["config"], sort_keys=True), r["config"])
    return list(found.values())


def _differences(configs: list[dict[str, Any]]) -> str:
    keys = sorted({k for c in configs for k in c if any(c.get(k) != o.get(k) for o in configs)})
    return ", ".join(f"{k}: {' / '.join(str(c.get(k)) for c in configs)}" for k in keys)


def merge_split(s: Settings) -> tuple[bool, str]:
    """(finalized, the line saying what was written or which units are missing)."""
    from aslfr.convert.converter import finalize_split, plan

    p = plan(s)
    m, numbers = finalize_split(p)
    missing: dict[str, list[int]] = {}
    for n in numbers:
        missing.setdefault(file_name(p.files[n // s.folds]), []).append(n % s.folds)
    total, absent = len(p.files) * s.folds, len(numbers)
    if m is None:
        shown = [f"{name} fold{'s' * (len(fs) > 1)} {','.join(map(str, fs))}" for name, fs in missing.items()]
        more = f" and {len(shown) - 5} more files" if len(shown) > 5 else ""
        return False, (f"{s.split}: {total - absent} of {total} shard units complete in {s.records_dir}, "
                       f"missing or out of date: {'; '.join(shown[:5]) + more}; "
                       f"manifest not written")
    return True, (f"{s.split}: manifest.json, means.npy, stds.npy written ({m.records} records, "
                  f"{len(m.shards)} shards) in {s.records_dir}")
