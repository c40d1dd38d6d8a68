"""`python -m aslfr.convert [key=value ...]`: competition parquet -> fold-sharded TFRecords.

A thin Hydra entry point (config in `conf/convert.yaml`); the work is in `aslfr.pipeline`, imported
only once the config is checked, so `--help`, `--cfg job` and config errors return fast."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf

from aslfr.errors import InputError
from aslfr.settings import Settings

_HERE = Path(__file__).resolve().parent
# wheels ship conf/ inside the package; source and editable checkouts keep it at the repo root
CONFIG_DIR = str(_HERE / "conf" if (_HERE / "conf").is_dir() else _HERE.parent / "conf")


def settings_from_config(cfg: DictConfig) -> Settings:
    """Plain, checked Settings from a composed config; raises InputError for bad values."""
    fold = cfg.get("fold")
    if isinstance(fold, (ListConfig, list, tuple)):
        fold = tuple(int(f) for f in fold)
    elif fold is not None:
        fold = (int(fold),)
    values = OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True)
    values["split"] = cfg.split.name
    values["fold"] = fold
    values["data_dir"] = str(Path(cfg.data_dir).expanduser().absolute())
    values["out_dir"] = str(Path(cfg.out_dir).expanduser().absolute())
    known = Settings.__dataclass_fields__
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise InputError(f"unknown config key(s): {', '.join(unknown)}")
    s = Settings(**values)
    s.check()
    return s


def _fail(e: Exception) -> None:
    """One line on stderr and exit 1; ASLFR_TRACEBACK=1 shows the traceback instead."""
    if os.environ.get("ASLFR_TRACEBACK"):
        raise e
    print(f"aslfr: error: {e}", file=sys.stderr)
    sys.exit(1)


def _in_sweep() -> bool:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:  # no Hydra context (called with a composed config)
        return False


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="convert")
def main(cfg: DictConfig) -> dict:
    try:
        s = settings_from_config(cfg)
        from aslfr.pipeline import format_summary, run

        result = run(s, finalize=not _in_sweep())
    except (InputError, OSError) as e:
        _fail(e)
    print(format_summary(result), flush=True)
    return result


class FinalizeAfterSweep(Callback):
    """After a `-m` sweep (folds, shards), write the manifest and statistics once all parts exist."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from aslfr.merge import merge_all

        try:
            for line in merge_all(config):
                print(line, flush=True)
        except InputError as e:
            _fail(e)


if __name__ == "__main__":
    main()
