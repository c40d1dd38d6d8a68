"""`python -m aslfr.convert [key=value ...]`: competition parquet -> fold-sharded TFRecords.

A thin Hydra app over `conf/convert.yaml`; the work is in `aslfr.convert.converter`, imported only
once the config is checked, so `--help`, `--cfg job` and config errors return fast."""

from __future__ import annotations

import sys

import hydra
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf

from aslfr.commands.cli import CONFIG_DIR, hydra_prog, fail, one_line_errors, refuse_credentials
from aslfr.convert.settings import Settings
from aslfr.errors import InputError
from aslfr.format import storage


def settings_from_config(cfg: DictConfig) -> Settings:
    """Plain, checked Settings from a composed config; raises InputError for bad values."""
    fold = cfg.get("fold")
    try:
        if isinstance(fold, (ListConfig, list, tuple)):
            fold = tuple(int(f) for f in fold)
        elif fold is not None:
            fold = (int(fold),)
    except ValueError:
        raise InputError(f"fold must be an integer or a list of integers, got {fold!r}") from None
    values = OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True)
    values["split"] = cfg.split.name
    values["fold"] = fold
    values["data_dir"] = local_or_url(cfg.data_dir)
    values["out_dir"] = local_or_url(cfg.out_dir)
    known = Settings.__dataclass_fields__
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise InputError(f"unknown config key(s): {', '.join(unknown)}")
    s = Settings(**values)
    s.check()
    return s


def local_or_url(value: str) -> str:
    """A URL as given (it is no Path: `Path("s3://b/x")` is `s3:/b/x`), a local path (`file://` too)
    made absolute."""
    where = storage.location(value)
    return where if isinstance(where, str) else str(where.expanduser().absolute())


def local_dir(out_dir: str) -> str:
    """Where a sweep's Hydra logs go (`hydra.sweep.dir`): under a local out_dir, or for a URL under
    ./hydra-sweeps/ (Hydra writes them with the local file system)."""
    return f"hydra-sweeps/{out_dir.replace('://', '/', 1)}" if storage.is_url(out_dir) else out_dir


OmegaConf.register_new_resolver("aslfr.local_dir", local_dir, replace=True)


def in_sweep() -> bool:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:  # no Hydra context (called with a composed config)
        return False


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="convert")
def _app(cfg: DictConfig) -> dict:
    with one_line_errors():
        s = settings_from_config(cfg)
        from aslfr.convert.converter import format_summary, run

        sweep = in_sweep()
        result = run(s, finalize=not sweep)
        print(format_summary(result, in_sweep=sweep), flush=True)
        return result


def main() -> None:
    hydra_prog()
    refuse_credentials(sys.argv)
    _app()


class FinalizeAfterSweep(Callback):
    """After a `-m` sweep (folds, shards), write the manifest and statistics once all parts exist."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from aslfr.convert.merge import merge_all

        with one_line_errors():
            for line in merge_all(settings_from_config(config)):
                print(line, flush=True)


__all__ = ["main", "settings_from_config", "FinalizeAfterSweep", "CONFIG_DIR", "fail"]
