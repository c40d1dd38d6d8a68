"""`python -m aslfr.merge out_dir=... [data_dir=...]`: combine the parts written by separate jobs
(`+fold` sweeps, `shard_index` jobs) into `manifest.json`, `means.npy` and `stds.npy`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import hydra
from omegaconf import DictConfig

from aslfr.convert import CONFIG_DIR, _fail, settings_from_config
from aslfr.errors import InputError
from aslfr.settings import RECORDS_SUBDIR


def merge_all(cfg: DictConfig) -> list[str]:
    """Finalize every split that has receipts under out_dir; one status line per split."""
    from aslfr import manifest
    from aslfr.metadata import load_metadata, parquet_files

    base = dataclasses.replace(settings_from_config(cfg), fold=None)
    lines = []
    for split in RECORDS_SUBDIR:
        s = dataclasses.replace(base, split=split)
        if not (s.records_dir / manifest.RECEIPTS).is_dir():
            continue
        files = parquet_files(load_metadata(s.data_dir, split, s.folds, s.fold_seed))
        numbers = [i * s.folds + f for i in range(len(files)) for f in range(s.folds)]
        done = sum(manifest.receipt_holds(s.records_dir, manifest.load_receipt(s.records_dir, n), s.output_config(), False)
                   for n in numbers)
        m = manifest.finalize(s.records_dir, numbers, s.output_config()) if done == len(numbers) else None
        if m is None:
            lines.append(f"{split}: {done} of {len(numbers)} shard units complete; manifest not written yet")
        else:
            lines.append(f"{split}: manifest.json, means.npy, stds.npy written ({m['records']} records, "
                         f"{len(m['shards'])} shards) in {s.records_dir}")
    if not lines:
        raise InputError(f"{Path(base.out_dir) / 'tfrecords'}: no conversion parts found")
    return lines


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="convert")
def main(cfg: DictConfig) -> None:
    try:
        for line in merge_all(cfg):
            print(line)
    except InputError as e:
        _fail(e)


if __name__ == "__main__":
    main()
