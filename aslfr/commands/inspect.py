"""`python -m aslfr.inspect out_dir=PATH` (or PATH, or a URL such as s3://bucket/out): what was written, per split
and fold; with `+sequence_id=N`, a PNG of that sequence read back from the records (matplotlib: pip install -e '.[viz]'),
written into out_dir, or into the current folder when out_dir is a URL."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from aslfr.commands.cli import CONFIG_DIR, hydra_prog, one_line_errors, path_as_out_dir

COLUMNS = ("columns: dup = share of records whose phrase also occurs in another fold (phrase_dup); "
           "no L hand / no R hand = share of frames whose left / right hand is entirely missing (NaN); "
           "lost EOS = phrases of 32+ characters whose phrase_ was cut without EOS (the reference's quirk)")


def lines(cfg: DictConfig) -> list[str]:
    """What the command prints for a config (out_dir, sequence_id, frames, png)."""
    from aslfr.data.summary import find_sequence, format_table, render, summarize
    from aslfr.errors import InputError
    from aslfr.format import storage
    from aslfr.format.verify import records_dirs

    out_dir = storage.location(cfg.out_dir)
    dirs = records_dirs(out_dir)
    if not dirs:
        raise InputError(f"{out_dir}: no finished records folder (tfrecords/<split>/manifest.json); convert first")
    if cfg.get("sequence_id") is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise InputError("pictures need matplotlib: pip install -e '.[viz]'") from None
        try:
            rec = find_sequence(out_dir, int(cfg.sequence_id))
        except KeyError as e:
            raise InputError(e.args[0]) from None
        suffix = "_augmentations" if cfg.get("augment") else ""
        if storage.is_url(cfg.get("png")):
            raise InputError(f"png={cfg.png}: the PNG is written to a local path, not a URL")
        name = f"sequence_{cfg.sequence_id}{suffix}.png"
        png = Path(cfg.png) if cfg.get("png") else Path(name) if storage.is_url(out_dir) else out_dir / name
        if cfg.get("augment"):
            from aslfr.data.transforms.illustrate import render_augmentations

            done = render_augmentations(rec["frames"], png, f"{rec['phrase']!r}: the training augmentations (grey: before)")
            return [f"{done}: PNG of the training augmentations on {rec['phrase']!r} written"]
        return [f"{render(rec, png, int(cfg.frames))}: PNG of {rec['phrase']!r}, {rec['n_frames']} frames written"]
    return [format_table(storage.name(d), summarize(d)) for d in dirs] + [COLUMNS]


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="inspect")
def _app(cfg: DictConfig) -> None:
    with one_line_errors():
        print("\n\n".join(lines(cfg)))


def main() -> None:
    hydra_prog()
    sys.argv = path_as_out_dir(sys.argv)
    _app()


if __name__ == "__main__":
    main()
