"""The start-up rows of `make bench`: what a command costs before it does any work, each in a fresh
interpreter, against `python -c "import torch"` on the same machine. On a small dataset of its own,
converted once (untimed): the converter with nothing to do (every shard resumed), `aslfr convert
--help`, and `aslfr verify` on the converted folder. Goal: the converter with nothing to do takes at
most 1.5 s more than importing torch."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

#: files, sequences per file, mean frames: small, so that start-up is all there is to measure
STARTUP_DATA = (4, 16, 32)
#: seconds the converter with nothing to do may take beyond `import torch`
GOAL = 1.5


def seconds(args: list[str]) -> float:
    """Wall time of `python args...` in a fresh interpreter; its error, if it fails, ends the bench."""
    t = time.perf_counter()
    res = subprocess.run([sys.executable, *args], capture_output=True, text=True)
    wall = time.perf_counter() - t
    if res.returncode:
        sys.exit(f"python {' '.join(args)}: exit {res.returncode}: {res.stderr.strip()}")
    return wall


def startup_rows(root: Path, repeat: int, size: tuple[int, int, int] = STARTUP_DATA) -> list[tuple[str, str]]:
    from aslfr.source.synthetic import SplitSpec, generate

    data, out = root / "startup-{}x{}x{}".format(*size), root / "startup-out"
    report = out / "report.json"
    if not (data / "train.csv").exists():
        generate(data, SplitSpec(*size, 20), None, seed=2024)
    convert = ["-m", "aslfr.convert", f"data_dir={data}", f"out_dir={out}", "progress=false", f"report={report}"]
    seconds(convert)  # the work, once: every later run resumes every shard
    commands = {
        'python -c "import torch"': ["-c", "import torch"],
        "converter with nothing to do (every shard resumed)": convert,
        "aslfr convert --help": ["-m", "aslfr", "convert", "--help"],
        "aslfr verify (the same small folder)": ["-m", "aslfr", "verify", str(out)],
    }
    runs: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(repeat):  # interleaved
        for label, args in commands.items():
            runs[label].append(seconds(args))
    written = json.loads(report.read_text())["shards_written"]
    if written:
        sys.exit(f"{out}: the converter wrote {written} shard(s) on a run that had nothing to do")
    torch_s, idle_s = (statistics.median(runs[k]) for k in list(commands)[:2])
    rows = [("start-up, each command in a fresh interpreter (s, median [range]); data: files x sequences "
             "(mean frames)", "{} x {} ({})".format(*size))]
    for label, r in runs.items():
        extra = f"   over import torch {idle_s - torch_s:+.2f} (target <= {GOAL:g})" if "nothing to do" in label else ""
        rows.append((f"  {label}", f"{statistics.median(r):.2f} [{min(r):.2f}-{max(r):.2f}]{extra}"))
    return rows
