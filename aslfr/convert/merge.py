"""Finalizing parts written by separate jobs (`+fold` sweeps, `shard_index` jobs): `manifest.json`,
`means.npy` and `stds.npy` once every unit of a split has its receipt."""

from __future__ import annotations

import dataclasses

from aslfr.convert import receipts
from aslfr.convert.settings import Settings
from aslfr.errors import InputError
from aslfr.format import layout


def merge_all(settings: Settings, splits: list[str] | None = None) -> list[str]:
    """Finalize each split (all that have receipts under out_dir, or those named); one line per split."""
    from aslfr.convert.converter import finalize_split, plan

    base = dataclasses.replace(settings, fold=None, shard_index=0, shard_count=1)
    lines = []
    for split in splits or list(layout.SPLITS):
        s = dataclasses.replace(base, split=split)
        if not (s.records_dir / layout.RECEIPTS).is_dir():
            if splits:
                raise InputError(f"{s.records_dir}: no conversion parts of split {split} found")
            continue
        p = plan(s)
        numbers = [layout.shard_number(i, f, s.folds) for i in range(len(p.files)) for f in range(s.folds)]
        done = sum(receipts.receipt_holds(s.records_dir, receipts.load_receipt(s.records_dir, n), s.output_config(),
                                          False, p.inputs[n // s.folds]) for n in numbers)
        m = finalize_split(p) if done == len(numbers) else None
        if m is None:
            lines.append(f"{split}: {done} of {len(numbers)} shard units complete; manifest not written yet")
        else:
            lines.append(f"{split}: manifest.json, means.npy, stds.npy written ({m.records} records, "
                         f"{len(m.shards)} shards) in {s.records_dir}")
    if not lines:
        raise InputError(f"{base.out_dir}/{layout.RECORDS_ROOT}: no conversion parts found")
    return lines
