"""`make bench` (`python -m aslfr.bench`): speed and memory of the converter and the reader against
the I/O floor, all measured in one run on the same cached data. Prints ratios; asserts nothing.

Data (generated once into bench-data/): 4 train files x 1000 sequences, gamma-distributed lengths
around 160 frames, whole-hand NaN runs, all 1629 float32 columns.
  a) floor: pyarrow reads the 384 selected columns of each file and writes the same float32 bytes
     to disk (fsync), one process per file on 2 processes; 2 files and 4 files
  b) the converter (python -m aslfr.convert, 2 workers) on the same 2 and 4 files
  c) marginal ratio = (convert4 - convert2) / (floor4 - floor2); start-up = 2*convert2 - convert4;
     per-file time in 2 workers against the converter in one process (num_workers=0)
  d) a per-phase breakdown of one file, floor against converter, measured inside the workers
     (ASLFR_PHASES=1): seconds, page faults, context switches, bytes touched
  e) the reading paths (aslfr.data.throughput) on the 4000 converted records: the plain read, the
     reference's training and inference input, the batched path, DataLoader knobs; with
     --tf-python (`make bench-tf`) TensorFlow's own pipeline on the same records and cores beside
     them; on a GPU, the batched augmentations and the whole loop
  f) peak RSS of the converter's main process and of a worker
--readers-only skips a)-d) and f) (the records are converted once, untimed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from multiprocessing import get_context
from pathlib import Path

from aslfr.cli import one_line_errors, prog
from aslfr.errors import InputError

FILES = 4
SEQUENCES = 1000
MEAN_FRAMES = 160


def ensure_data(root: Path, files: int = FILES, sequences: int = SEQUENCES) -> tuple[Path, Path]:
    """The dataset and a 2-file view of it (CSV restricted to the first 2 files)."""
    import pandas as pd

    from aslfr.source.synthetic import SplitSpec, generate

    full = root / ("four" if (files, sequences) == (FILES, SEQUENCES) else f"{files}x{sequences}")
    two = full.parent / f"{full.name}-two" if full.name != "four" else root / "two"
    if not (full / "train.csv").exists():
        print(f"generating benchmark data in {full} (once) ...", flush=True)
        generate(full, SplitSpec(files, sequences, MEAN_FRAMES, 20), None, seed=2024)
    if not (two / "train.csv").exists():
        two.mkdir(parents=True, exist_ok=True)
        csv = pd.read_csv(full / "train.csv")
        keep = list(dict.fromkeys(csv.path))[:2]
        csv[csv.path.isin(keep)].to_csv(two / "train.csv", index=False)
        (two / "train_landmarks").mkdir(exist_ok=True)
        for p in keep:
            link = two / p
            if not link.exists():
                link.symlink_to((full / p).resolve())
    return full, two


def _floor_one(args: tuple[str, str]) -> tuple[float, dict]:
    """Read the selected columns of one file, write their float32 bytes, fsync: (seconds, phases)."""
    import numpy as np
    import pyarrow.parquet as pq

    from aslfr.convert.phases import PhaseTimer
    from aslfr.format.vocab import SELECTED_COLUMNS

    src, dst = args
    timer = PhaseTimer()
    t = time.perf_counter()
    with timer.phase("read"):
        table = pq.read_table(src, columns=SELECTED_COLUMNS)
    with open(dst, "wb") as f:
        with timer.phase("write"):
            for col in table.columns:
                f.write(col.to_numpy().astype(np.float32, copy=False).tobytes())
            f.flush()
        with timer.phase("fsync"):
            os.fsync(f.fileno())
    return time.perf_counter() - t, timer.take()


def _warm(_: int) -> int:
    import pyarrow.parquet  # noqa: F401

    from aslfr.format import vocab  # noqa: F401
    time.sleep(0.3)  # keep this worker busy so that the other one takes the next task
    return os.getpid()


def floor(files: list[Path], out: Path) -> tuple[float, list[float]]:
    """(wall time, per-file seconds) of the reads and writes on 2 started processes."""
    out.mkdir(parents=True, exist_ok=True)
    for f in out.glob("*.bin"):
        f.unlink()
    with get_context("spawn").Pool(2) as pool:
        while len(set(pool.map(_warm, range(2), chunksize=1))) < 2:  # both processes started
            pass
        # one untimed file per process first: the timed files then cost what a file costs at scale
        # (the converter's workers likewise reuse their buffers from their second file on)
        pool.map(_floor_one, [(str(files[-1]), str(out / f"warm{i}.bin")) for i in range(2)], chunksize=1)
        for f in out.glob("warm*.bin"):
            f.unlink()
        os.sync()
        t = time.perf_counter()
        per_file = pool.map(_floor_one, [(str(f), str(out / f"{f.stem}.bin")) for f in files], chunksize=1)
        return time.perf_counter() - t, per_file


def convert(data: Path, out: Path, workers: int = 2) -> tuple[float, dict]:
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    os.sync()
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "aslfr.convert", f"data_dir={data}", f"out_dir={out}", f"num_workers={workers}",
                          "progress=false", "report=" + str(out / "report.json")], capture_output=True, text=True,
                         env=dict(os.environ, ASLFR_PHASES="1"))
    wall = time.perf_counter() - t
    if res.returncode:
        sys.exit(res.stderr)
    return wall, json.loads((out / "report.json").read_text())


def selected_bytes(files: list[Path]) -> int:
    import pyarrow.parquet as pq

    return max(pq.ParquetFile(f).metadata.num_rows for f in files) * 384 * 4


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog=prog("aslfr.bench"), description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="bench-data", help="cache folder for the generated data and outputs")
    p.add_argument("--repeat", type=int, default=5, help="runs of each timing (median reported)")
    p.add_argument("--settle", type=float, default=0.0, help="seconds of quiet before each timed run")
    p.add_argument("--epochs", type=int, default=5, help="timed epochs of each reading path (after a warm-up one)")
    p.add_argument("--tf-python", help="python of a venv with tensorflow-cpu: run the reference's own tf.data "
                                       "pipeline on the same records beside aslfr's (`make bench-tf` builds it)")
    p.add_argument("--ref-src", help="the reference repo's src/tf folder (augment.py, preprocess.py), for --tf-python")
    p.add_argument("--readers-only", action="store_true", help="only the reading paths (e); records converted once")
    p.add_argument("--gpu-only", action="store_true", help="with --readers-only: only the GPU figures")
    p.add_argument("--files", type=int, default=FILES, help="parquet files to generate (4)")
    p.add_argument("--sequences", type=int, default=SEQUENCES, help="sequences per generated file (1000)")
    a = p.parse_args(argv)
    with one_line_errors():
        for name, value, low in (("repeat", a.repeat, 1), ("epochs", a.epochs, 1), ("settle", a.settle, 0),
                                 ("files", a.files, 2), ("sequences", a.sequences, 1)):
            if value < low:
                raise InputError(f"--{name} must be >= {low}, got {value}")
        if a.gpu_only and not (a.readers_only and cuda_available()):
            raise InputError("--gpu-only goes with --readers-only, on a machine with a CUDA device")
        if bool(a.tf_python) != bool(a.ref_src):
            raise InputError("--tf-python and --ref-src go together (`make bench-tf` gives both)")
        if a.readers_only:
            readers(a)
        else:
            run(a)


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def readers(a: argparse.Namespace) -> None:
    """Only the reading paths, on records converted once (untimed) if they are not there yet."""
    root = Path(a.data).absolute()
    full, _ = ensure_data(root, a.files, a.sequences)
    out = root / ("out4" if full.name == "four" else f"{full.name}-records")  # out4: what a full run writes
    if not (out / "tfrecords" / "train" / "manifest.json").exists():
        convert(full, out, workers=min(8, os.cpu_count() or 1))
    print_rows(reading_rows(a, out / "tfrecords" / "train"))


def reading_rows(a: argparse.Namespace, records: Path) -> list[tuple[str, str]]:
    import torch

    from aslfr.data.throughput import reader_rows

    tf = None
    if a.tf_python:
        from aslfr.data.tf_baseline import run_tf_baseline

        print("TensorFlow's pipeline on the same records ...", flush=True)
        tf = run_tf_baseline(a.tf_python, a.ref_src, records, epochs=a.epochs)
    device = "cuda" if torch.cuda.is_available() else None
    rows = reader_rows(records, a.epochs, tf, device, a.gpu_only)
    if device is not None:
        from aslfr.data.throughput import step_times, synthetic_batch
        from aslfr.data.transforms.reference import ReferencePreprocess
        from aslfr.format.stats import load_stats

        x, lengths, keys = synthetic_batch(256)
        packed = x[torch.arange(x.shape[1])[None] < lengths[:, None]].to(device)
        pre = ReferencePreprocess(*load_stats(records), train=True)
        for where, k, n in (("host", keys, lengths), ("device", keys.to(device), lengths.to(device))):
            rows += [(f"  GPU augmentations, batch 256, planned on the {where}, phase: {name} (ms)", f"{ms:.2f}")
                     for name, ms in step_times(pre, packed, n, k)]
    return rows


def print_rows(rows: list[tuple[str, str]]) -> None:
    w = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{w}}  {v}" for k, v in rows), flush=True)


def run(a: argparse.Namespace) -> None:
    root = Path(a.data).absolute()
    full, two = ensure_data(root)
    files = sorted((full / "train_landmarks").glob("*.parquet"))
    import pandas as pd

    order = [full / x for x in dict.fromkeys(pd.read_csv(full / "train.csv").path)]
    size = sum(f.stat().st_size for f in files) / len(files)
    print(f"data: {len(files)} files, {size / 1e9:.2f} GB parquet per file, "
          f"{selected_bytes(files) / 1e6:.0f} MB of selected columns per file", flush=True)

    floor(order, root / "floor4")  # warm-up: every measurement reads from the page cache
    runs: dict[str, list] = {k: [] for k in ("f2", "f4", "c2", "c4", "c4_inproc", "floor_file", "convert_file",
                                              "inproc_file", "floor_phases", "convert_phases")}
    for _ in range(a.repeat):  # interleaved, medians reported; each starts with no dirty pages
        for key, fn in (("f2", lambda: floor(order[:2], root / "floor2")), ("f4", lambda: floor(order, root / "floor4")),
                        ("c2", lambda: convert(two, root / "out2")), ("c4", lambda: convert(full, root / "out4")),
                        ("c4_inproc", lambda: convert(full, root / "out4", workers=0))):
            os.sync()
            time.sleep(a.settle)  # let the disk finish the previous run's writeback and deletes
            wall, detail = fn()
            runs[key].append(wall)
            if key.startswith("f"):
                runs["floor_file"] += [sec for sec, _ in detail]
                if key == "f4":
                    runs["floor_phases"] += [ph for _, ph in detail]
            elif key == "c4_inproc":
                runs["inproc_file"] += detail["file_seconds"]
            else:
                runs["convert_file"] += detail["file_seconds"]
                if key == "c4":
                    runs["convert_phases"] += detail["file_phases"]
                    rep = detail
    f2, f4, c2, c4 = (statistics.median(runs[k]) for k in ("f2", "f4", "c2", "c4"))
    per_file_floor, per_file_convert = statistics.median(runs["floor_file"]), statistics.median(runs["convert_file"])
    per_file_inproc = statistics.median(runs["inproc_file"])
    marginal = (c4 - c2) / (f4 - f2)
    startup = 2 * c2 - c4
    sel = selected_bytes(files)
    rows = [
        ("runs per timing (median)", str(a.repeat)),
        ("floor, 2 files / 4 files (s)", f"{f2:.2f} / {f4:.2f}"),
        ("converter, 2 files / 4 files (s)", f"{c2:.2f} / {c4:.2f}"),
        ("marginal ratio (c4-c2)/(f4-f2) (target <= 1.3)", f"{marginal:.2f}"),
        ("per file: floor / converter in a worker (2 workers) / in process (s)",
         f"{per_file_floor:.2f} / {per_file_convert:.2f} / {per_file_inproc:.2f}"),
        ("per file, 2 workers / in process (target <= 1.1)", f"{per_file_convert / per_file_inproc:.2f}"),
        ("start-up, 2*c2 - c4 (target <= 3 s)", f"{startup:.2f} s"),
        ("converter imports + config, measured inside (s)", f"{rep['startup_seconds']:.2f}"),
        ("end-to-end / floor, 4 files", f"{c4 / f4:.2f}"),
        ("peak RSS main process (MB)", f"{rep['peak_rss_mb']['main']:.0f}"),
        ("peak RSS worker (MB) / growth over its start (MB)",
         f"{rep['peak_rss_mb']['worker']:.0f} / {rep['peak_rss_mb']['worker_growth']:.0f}"),
        ("worker growth / selected columns of one file (target <= 1.5)",
         f"{rep['peak_rss_mb']['worker_growth'] * 1e6 / sel:.2f}"),
    ]
    for key in ("f2", "f4", "c2", "c4", "c4_inproc"):
        rows.append((f"  raw {key} (s)", " ".join(f"{x:.2f}" for x in runs[key])))
    rows += reading_rows(a, root / "out4" / "tfrecords" / "train")
    print_rows(rows)
    print()
    print(phase_table(runs["floor_phases"], runs["convert_phases"]))


#: Bytes each phase reads + writes, in units of the file's frame bytes F (n_rows x 384 x 4), from the
#: operations it runs: e.g. nan_stats = isnan (R F, W F/4), copy (R F, W F), NaN -> 0 (R F/4, W F),
#: frame_mean (R F), NaN counts (R F/4), float64 copy (R F, W 2F), sums (R 2F), squares (R 4F).
BYTES_TOUCHED = {
    "floor": {"read": 1.0, "write": 4.0, "fsync": 1.0},
    "converter": {"read": 2.0, "transpose": 2.0, "nan_stats": 14.75, "encode": 2.0, "crc": 2.0, "write": 2.0,
                  "fsync": 1.0, "other": 0.0},
}


def phase_table(floor_phases: list[dict], convert_phases: list[dict]) -> str:
    """Median per file and phase, for the floor's and the converter's workers (4-file runs)."""
    def med(items, phase, key):
        return statistics.median(p.get(phase, {}).get(key, 0.0) for p in items) if items else 0.0

    order = ["read", "transpose", "nan_stats", "encode", "crc", "write", "fsync", "other"]
    head = f"{'phase (median per file, 2 workers)':<36}{'floor s':>9}{'conv s':>9}{'floor flt':>10}{'conv flt':>10}" \
           f"{'conv vcs/ivcs':>15}{'bytes xF fl/cv':>16}"
    lines = [head]
    for ph in order:
        fs, cs = med(floor_phases, ph, "seconds"), med(convert_phases, ph, "seconds")
        lines.append(f"{ph:<36}{fs:>9.3f}{cs:>9.3f}{med(floor_phases, ph, 'faults'):>10.0f}"
                     f"{med(convert_phases, ph, 'faults'):>10.0f}"
                     f"{med(convert_phases, ph, 'voluntary_cs'):>8.0f}/{med(convert_phases, ph, 'involuntary_cs'):<6.0f}"
                     f"{BYTES_TOUCHED['floor'].get(ph, 0):>8g}/{BYTES_TOUCHED['converter'].get(ph, 0):<7g}")
    tf = sum(med(floor_phases, ph, "seconds") for ph in order)
    tc = sum(med(convert_phases, ph, "seconds") for ph in order)
    lines.append(f"{'total':<36}{tf:>9.3f}{tc:>9.3f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
