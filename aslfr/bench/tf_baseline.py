"""The TensorFlow baseline of `make bench`: the reference's own tf.data pipeline on the same records,
run by aslfr/bench/tf_pipeline.py in a separate interpreter (a throwaway venv with tensorflow-cpu), so that
TensorFlow never becomes a dependency of aslfr. The child inherits this process's CPU affinity:
it runs on the same cores as the torch side, with as many threads as the torch side has workers."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Iterable

from aslfr.errors import InputError

SCRIPT = Path(__file__).resolve().with_name("tf_pipeline.py")
PATHS = ("training", "inference", "read")


def run_tf_baseline(tf_python: str | Path, ref_src: str | Path, records: str | Path | Iterable[str | Path],
                    epochs: int = 5, paths: Iterable[str] = PATHS, threads: int = 2) -> dict:
    """{"tensorflow": version, "threads": n, "paths": {path: [rec/s per timed epoch]}, "records": n},
    after one warm-up epoch per path, on `threads` threads. `ref_src`: the reference's
    projects/kaggle/aslfr/src/tf; `records`: records folders or shard files (statistics from the first
    folder, or the first shard's)."""
    tf_python, ref_src = Path(tf_python), Path(ref_src)
    if not (tf_python.is_file() and os.access(tf_python, os.X_OK)):
        raise InputError(f"{tf_python}: no such Python interpreter (`make bench-tf` builds .venv-tf with tensorflow-cpu)")
    for f in ("augment.py", "preprocess.py"):
        if not (ref_src / f).is_file():
            raise InputError(f"{ref_src}: no {f} (the reference's projects/kaggle/aslfr/src/tf directory; "
                             "`make bench-tf` clones it)")
    records = [records] if isinstance(records, (str, Path)) else list(records)
    # -P: the script's folder stays off sys.path, so that no module of aslfr's shadows one TensorFlow imports
    cmd = [str(tf_python), "-P", str(SCRIPT), "--ref-src", str(ref_src), "--epochs", str(epochs),
           "--threads", str(threads), "--records", *map(str, records), "--paths", *paths]
    done = subprocess.run(cmd, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = [line for line in done.stderr.strip().splitlines() if line.strip()][-3:]
        raise InputError(f"{SCRIPT.name} with {tf_python} failed (exit {done.returncode}): "
                         + (" | ".join(tail) or "no error output"))
    return json.loads(lines[-1])
