"""`python -m aslfr.bench.traced_convert PHASES_DIR key=value ...`: `python -m aslfr.convert key=value ...`
with the converter's phases traced (`aslfr.bench.phases`) in the processes that convert the files
(its forked DataLoader workers, or this process with num_workers=0). Each file written adds one JSON
line, its phases' totals, to PHASES_DIR/<pid>.jsonl; "other" is the file's time outside the named
phases. For the phase table of `make bench`: the trace slows the run, so its wall time is not reported."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from aslfr.bench.phases import PhaseTimer


def phase_functions() -> dict:
    """The functions that make up a file's conversion, each with its phase."""
    from aslfr.convert import converter, shards
    from aslfr.format import store
    from aslfr.format.schema import encode_record_into
    from aslfr.source.landmarks import Landmarks, read_landmarks

    return {read_landmarks: "read", Landmarks.frames: "transpose", converter.RecordBuffers.record: "nan_stats",
            encode_record_into: "encode", shards.RecordWriter.frame: "crc", shards._write_all: "write",
            store.durable: "fsync", converter._write_file: "other"}


def read_phases(folder: Path) -> list[dict]:
    """Every file's phase totals written under `folder`."""
    return [json.loads(line) for f in sorted(folder.glob("*.jsonl")) for line in f.read_text().splitlines()]


def main() -> None:
    if len(sys.argv) < 2 or "=" in sys.argv[1]:
        sys.exit("usage: python -m aslfr.bench.traced_convert PHASES_DIR key=value ... (the converter's arguments)")
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)

    def report(totals: dict) -> None:
        with open(out / f"{os.getpid()}.jsonl", "a") as f:
            f.write(json.dumps(totals) + "\n")

    sys.argv = ["python -m aslfr.convert", *sys.argv[2:]]
    with PhaseTimer(phase_functions(), unit="other", report=report):
        from aslfr.commands.convert import main as convert

        convert()


if __name__ == "__main__":
    main()
