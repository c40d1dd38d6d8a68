"""`aslfr <command> ...` (also `python -m aslfr <command> ...`): every command behind one entry point,
as git's; `python -m aslfr.<command> ...` runs the same command."""

from __future__ import annotations

import importlib
import os
import sys

#: command -> (module whose main() runs it, what it does in one line)
COMMANDS = {
    "convert": ("aslfr.commands.convert", "competition parquet -> the reference's fold-sharded TFRecords (key=value ...)"),
    "merge": ("aslfr.commands.merge", "finalize the parts written by separate jobs: manifest.json, means.npy, stds.npy"),
    "verify": ("aslfr.commands.verify", "check records folders against their manifests (exit 1 on failure)"),
    "inspect": ("aslfr.commands.inspect", "what a conversion wrote, per split and fold; +sequence_id=N: a PNG of one sequence"),
    "stats": ("aslfr.commands.stats", "recompute means.npy / stds.npy from the records"),
    "synthetic": ("aslfr.commands.synthetic", "synthetic data in the competition layout"),
    "train-demo": ("aslfr.commands.train_demo", "a tiny CTC model trained for a few steps on the records, as the reference"),
    "bench": ("aslfr.bench.cli", "speed and memory of the converter and the reader against the I/O floor"),
}
ALIASES = {"train_demo": "train-demo"}


def usage() -> str:
    width = max(map(len, COMMANDS))
    return "\n".join(["usage: aslfr <command> [args ...]      (aslfr <command> --help: that command's help)", "",
                      "commands:", *(f"  {name:<{width}}  {line}" for name, (_, line) in COMMANDS.items()),
                      "", "Each is also `python -m <module>`, e.g. python -m aslfr.convert, python -m aslfr.verify."])


def main(argv: list[str] | None = None) -> int:
    """Run `aslfr <command> args...`: the command's own main() sees sys.argv = ["aslfr <command>", args...],
    as Hydra commands read sys.argv."""
    try:
        return _run(sys.argv[1:] if argv is None else list(argv))
    except BrokenPipeError:  # `aslfr --help | head`: the reader is gone, nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's flush has nowhere to fail
        return 1


def _run(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    name = ALIASES.get(argv[0], argv[0])
    if name not in COMMANDS:
        print(f"aslfr: error: unknown command {argv[0]!r}; commands: {', '.join(COMMANDS)} (aslfr --help)",
              file=sys.stderr)
        return 2
    sys.argv = [f"aslfr {name}", *argv[1:]]
    code = importlib.import_module(COMMANDS[name][0]).main()
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
