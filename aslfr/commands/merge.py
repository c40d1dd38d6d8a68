"""`python -m aslfr.merge out_dir=PATH data_dir=PATH [split=...] [folds=N]`: finalize the parts written
by separate jobs (`+fold` sweeps, `shard_index` jobs) into `manifest.json`, `means.npy` and
`stds.npy`, with the settings the parts were written with. Exits 1 naming the units still missing."""

from __future__ import annotations

import sys
import hydra
from omegaconf import DictConfig, OmegaConf

from aslfr.commands.cli import CONFIG_DIR, hydra_prog, one_line_errors, path_as_out_dir, refuse_credentials


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="merge")
def _app(cfg: DictConfig) -> None:
    with one_line_errors():
        from aslfr.convert.merge import merge_parts
        from aslfr.errors import InputError

        missing = [k for k in ("out_dir", "data_dir") if cfg.get(k) is None]
        if missing:
            raise InputError(f"merge needs {' and '.join(f'{k}=' for k in missing)} (the conversion jobs' values)")
        from aslfr.commands.convert import local_or_url

        paths = [local_or_url(cfg.out_dir), local_or_url(cfg.data_dir)]
        options = OmegaConf.to_container(cfg.storage_options) if cfg.get("storage_options") else None
        for line in merge_parts(*paths, cfg.split.name if "split" in cfg else None, cfg.get("folds"), options):
            print(line, flush=True)


def main() -> None:
    hydra_prog()
    refuse_credentials(sys.argv)
    sys.argv = path_as_out_dir(sys.argv)
    _app()


if __name__ == "__main__":
    main()
