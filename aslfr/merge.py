"""`python -m aslfr.merge out_dir=... [data_dir=...] [split=...]`: finalize the parts written by
separate jobs (`+fold` sweeps, `shard_index` jobs) into `manifest.json`, `means.npy` and `stds.npy`.
Without `split=`, every split that has parts under out_dir."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from aslfr.cli import CONFIG_DIR, one_line_errors


def _split_given() -> bool:
    from hydra.core.hydra_config import HydraConfig

    return any(o.split("=", 1)[0].lstrip("+~") == "split" for o in HydraConfig.get().overrides.task)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="convert")
def main(cfg: DictConfig) -> None:
    with one_line_errors():
        from aslfr.convert.cli import settings_from_config
        from aslfr.convert.merge import merge_all

        s = settings_from_config(cfg)
        for line in merge_all(s, [s.split] if _split_given() else None):
            print(line)


if __name__ == "__main__":
    main()
