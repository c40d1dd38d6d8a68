"""`make bench` (`python -m aslfr.bench`): speed and memory of the converter and the reader against
the I/O floor, all measured in one run on the same cached data. Prints ratios; asserts nothing.

Data (generated once into bench-data/): 4 train files x 1000 sequences, gamma-distributed lengths
around 160 frames, whole-hand NaN runs, all 1629 float32 columns.
  a) floor: pyarrow reads the 384 selected columns of each file and writes the same float32 bytes
     to disk (fsync), one process per file on 2 processes; 2 files and 4 files
  b) the converter (python -m aslfr.convert, 2 workers) on the same 2 and 4 files
  c) marginal ratio = (convert4 - convert2) / (floor4 - floor2); start-up = 2*convert2 - convert4;
     per-file time in 2 workers against the converter in one process (num_workers=0)
  d) a per-phase breakdown of one file, floor against converter, measured inside the workers (the
     converter's in a run of its own, traced from outside: aslfr.bench.traced_convert): seconds, page
     faults, context switches, bytes touched
  e) the reading paths (aslfr.bench.throughput) on the 4000 converted records: the plain read, the
     reference's training and inference input, the batched path, DataLoader knobs; with
     --tf-python (`make bench-tf`) TensorFlow's own pipeline on the same records and cores beside
     them; on a GPU, the batched augmentations and the whole loop
  f) peak RSS of the converter's main process and of a worker
  g) object storage, against moto's S3 server started in this process on 127.0.0.1 (loopback: the
     software overhead of a bucket, not cloud latency), on a small dataset of its own (moto reads a
     whole object per GET, so objects stay under ~16 MB): the plain read (pack_collate, 2 workers)
     from s3:// with and without cache_dir against the same records on disk, and the converter
     s3:// -> s3:// against local -> local; skipped, with the reason, without moto or s3fs
  h) start-up (aslfr.bench.startup): the converter with nothing to do (every shard resumed), `aslfr
     convert --help` and `aslfr verify`, on a small dataset of its own, against `python -c "import torch"`
--readers-only skips a)-d), f), g) and h) (the records are converted once, untimed); --bucket-only runs
g); --startup-only runs h).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from multiprocessing import get_context
from pathlib import Path

from aslfr.bench import print_rows
from aslfr.commands.cli import one_line_errors, prog
from aslfr.errors import InputError
from aslfr.format import storage

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

    from aslfr.bench.phases import PhaseTimer
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


def convert(data: Path | str, out: Path | str, workers: int = 2, report: Path | None = None,
            module: tuple[str, ...] = ("aslfr.convert",)) -> tuple[float, dict]:
    """(wall time, report) of the converter (`python -m module...`) in a subprocess; a local `out` is
    removed first (a URL `out` must be empty, and `report` a local file)."""
    import shutil

    if not storage.is_url(out):
        shutil.rmtree(out, ignore_errors=True)
    report = report or Path(out) / "report.json"
    os.sync()
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", *module, f"data_dir={data}", f"out_dir={out}", f"num_workers={workers}",
                          "progress=false", f"report={report}"], capture_output=True, text=True)
    wall = time.perf_counter() - t
    if res.returncode:
        sys.exit(res.stderr)
    return wall, json.loads(report.read_text())


def converter_phases(data: Path, out: Path, folder: Path) -> list[dict]:
    """Each file's phases in the converter's workers (2), from a run traced by `traced_convert`."""
    import shutil

    from aslfr.bench.traced_convert import read_phases

    shutil.rmtree(folder, ignore_errors=True)
    convert(data, out, module=("aslfr.bench.traced_convert", str(folder)))
    return read_phases(folder)


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
    p.add_argument("--bucket-only", action="store_true", help="only the object-storage rows (g)")
    p.add_argument("--startup-only", action="store_true", help="only the start-up rows (h)")
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
        for only in ("bucket_only", "startup_only"):
            if getattr(a, only) and (a.readers_only or a.tf_python or a.bucket_only + a.startup_only > 1):
                raise InputError(f"--{only.replace('_', '-')} runs alone: without --readers-only, --tf-python "
                                 "and the other --...-only")
        if a.bucket_only:
            print_rows(bucket_rows(Path(a.data).absolute(), a.epochs, a.repeat))
        elif a.startup_only:
            from aslfr.bench.startup import startup_rows

            print_rows(startup_rows(Path(a.data).absolute(), a.repeat))
        elif a.readers_only:
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

    from aslfr.bench.throughput import WORKERS, reader_rows

    tf = None
    if a.tf_python:
        from aslfr.bench.tf_baseline import run_tf_baseline

        print("TensorFlow's pipeline on the same records ...", flush=True)
        tf = run_tf_baseline(a.tf_python, a.ref_src, records, epochs=a.epochs, threads=WORKERS)
    device = "cuda" if torch.cuda.is_available() else None
    rows = reader_rows(records, a.epochs, tf, device, a.gpu_only)
    if not a.gpu_only:
        from aslfr.bench.loaders import loader_rows, stream_rows

        rows += mixing_rows() + stream_rows(records, a.epochs) + loader_rows(records, a.epochs) + kernel_rows()
    if device is not None:
        from aslfr.bench.throughput import step_times, synthetic_batch
        from aslfr.data.transforms.reference import ReferencePreprocess
        from aslfr.format.stats import load_stats

        x, lengths, keys = synthetic_batch(256)
        packed = x[torch.arange(x.shape[1])[None] < lengths[:, None]].to(device)
        pre = ReferencePreprocess(*load_stats(records), train=True)
        for where, k, n in (("host", keys, lengths), ("device", keys.to(device), lengths.to(device))):
            rows += [(f"  GPU augmentations, batch 256, planned on the {where}, phase: {name} (ms)", f"{ms:.2f}")
                     for name, ms in step_times(pre, packed, n, k)]
    return rows


def mixing_rows() -> list[tuple[str, str]]:
    """Distinct parquet files per training batch of 128 on the real data's shape (68 files x 3
    training folds, ~247 records a shard), from the epoch plan's record counts alone, beside the
    reference's tf.data simulated on as many cores (goal: >= 32, the reference on 32 cores)."""
    from aslfr.data.plan import mixing_figures

    return [(f"mixing, distinct parquet files per batch of 128: {name}", f"{files:.1f}")
            for name, files in mixing_figures()]


def kernel_rows() -> list[tuple[str, str]]:
    """The fused kernels: the first batch in a new process with an empty and a warm compile cache
    (targets 10 s / 1 s), and their rates on one core against a plain copy of the output batch."""
    from aslfr.data.kernels.timing import first_batch_seconds, per_core_rates

    rows = []
    for name, first in first_batch_seconds().items():
        (cold, cold_cpu), (warm, warm_cpu) = first["cold"], first["warm"]
        rows.append((f"fused {name} kernel, first batch: cold cache / warm cache (s, wall [CPU])",
                     f"{cold:.2f} [{cold_cpu:.2f}] / {warm:.2f} [{warm_cpu:.2f}]"))
    rates = per_core_rates()
    rows += [(f"one core, {name} (rec/s)", f"{rates[name]:,.0f}") for name in
             ("copy", "training_kernel", "inference_kernel", "training_collate_numba", "training_collate_torch",
              "inference_collate_numba", "inference_collate_torch") if name in rates]
    rows.append(("one core, inference kernel / plain copy of its output (target >= 0.5)", f"{rates['copy_ratio']:.2f}"))
    return rows


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
                    rep = detail
        os.sync()
        runs["convert_phases"] += converter_phases(full, root / "out4", root / "phases")
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
    from aslfr.bench.startup import startup_rows

    rows += startup_rows(root, a.repeat)
    rows += reading_rows(a, root / "out4" / "tfrecords" / "train")
    print_rows(rows)
    print()
    print(phase_table(runs["floor_phases"], runs["convert_phases"], per_file_convert))
    print()
    print_rows(bucket_rows(root, a.epochs, a.repeat))


#: Bytes each phase reads + writes, in units of the file's frame bytes F (n_rows x 384 x 4), from the
#: operations it runs: e.g. nan_stats = isnan (R F, W F/4), copy (R F, W F), NaN -> 0 (R F/4, W F),
#: frame_mean (R F), NaN counts (R F/4), float64 copy (R F, W 2F), sums (R 2F), squares (R 4F).
BYTES_TOUCHED = {
    "floor": {"read": 1.0, "write": 4.0, "fsync": 1.0},
    "converter": {"read": 2.0, "transpose": 2.0, "nan_stats": 14.75, "encode": 2.0, "crc": 2.0, "write": 2.0,
                  "fsync": 1.0, "other": 0.0},
}


def phase_table(floor_phases: list[dict], convert_phases: list[dict], untraced: float) -> str:
    """Median per file and phase, for the floor's and the converter's workers (4-file runs). The
    converter's phases come from traced runs, which slow Python-heavy phases (encode most): `untraced`,
    the timed runs' median per file, shows by how much in all."""
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
    lines.append(f"{'total, untraced (the timed runs)':<36}{tf:>9.3f}{untraced:>9.3f}")
    return "\n".join(lines)


#: The object-storage rows' dataset: files, sequences per file, mean frames (~14 MB parquet files,
#: ~0.6 MB shards, 2,112 records): small objects, as moto reads a whole object per GET.
BUCKET_DATA = (44, 48, 32)
#: What the converter's subprocesses need besides AWS_ENDPOINT_URL: fake credentials, no instance metadata.
FAKE_AWS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true"}


@contextmanager
def environ(**values: str):
    """os.environ with `values` inside the block only."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def bucket_rows(root: Path, epochs: int, repeat: int, size: tuple[int, int, int] = BUCKET_DATA) -> list[tuple[str, str]]:
    """g): the reader from s3:// (without and with cache_dir) and the converter s3:// -> s3://, each
    against the same work on local disk, with moto's server in this process on 127.0.0.1."""
    try:
        import s3fs
        from moto.server import ThreadedMotoServer
    except ImportError as e:
        return [("object storage rows", f"skipped: {e.name or e} is not installed "
                                        "(test extras: pip install -e '.[s3,test]')")]
    from aslfr.source.synthetic import SplitSpec, generate

    files, sequences, frames = size
    data = root / "bucket-{}x{}x{}".format(*size)
    if not (data / "train.csv").exists():
        print(f"generating the object-storage rows' data in {data} (once) ...", flush=True)
        generate(data, SplitSpec(files, sequences, frames, 20), None, seed=2024)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        endpoint = "http://{}:{}".format(*server.get_host_and_port())
        with environ(AWS_ENDPOINT_URL=endpoint, **FAKE_AWS):
            fs = s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True, use_listings_cache=False)
            bucket = f"aslfr-bench-{uuid.uuid4().hex[:8]}"
            fs.mkdir(bucket)
            for p in sorted(data.rglob("*")):
                if p.is_file():
                    fs.put_file(str(p), f"{bucket}/data/{p.relative_to(data).as_posix()}")
            local_out, url_out = root / "bucket-out", f"s3://{bucket}/out"
            convert_s: dict[str, list[float]] = {"local": [], "s3": []}
            for _ in range(repeat):  # interleaved
                convert_s["local"].append(convert(data, local_out)[0])
                if fs.exists(url_out):
                    fs.rm(url_out, recursive=True)
                convert_s["s3"].append(convert(f"s3://{bucket}/data", url_out, report=root / "bucket-report.json")[0])
            records = local_out / "tfrecords" / "train"
            rates = read_rates(records, f"{url_out}/tfrecords/train", {"endpoint_url": endpoint},
                               root / "bucket-cache", epochs)
    finally:
        server.stop()
    return bucket_table(data, size, records, convert_s, rates, epochs)


def read_rates(local: Path, url: str, options: dict, cache: Path, epochs: int) -> dict[str, list[float]]:
    """Per-epoch rec/s of the plain read (pack_collate, 2 workers) from disk and from `url`, without
    and with a cache_dir (filled by the untimed first epoch)."""
    import shutil

    import torch

    from aslfr.data.collate import pack_collate
    from aslfr.data.datasets import TFRecordShards
    from aslfr.bench.throughput import epoch_rates

    shutil.rmtree(cache, ignore_errors=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as aslfr.bench.throughput.paths
    try:
        return {where: epoch_rates(TFRecordShards(src, shuffle=True, seed=0, **kw), epochs, collate_fn=pack_collate)
                for where, src, kw in (("local disk", local, {}), ("s3://", url, {"storage_options": options}),
                                       ("s3:// + cache_dir", url, {"storage_options": options, "cache_dir": cache}))}
    finally:
        torch.set_num_threads(threads)


def bucket_table(data: Path, size: tuple[int, int, int], records: Path, convert_s: dict[str, list[float]],
                 rates: dict[str, list[float]], epochs: int) -> list[tuple[str, str]]:
    from aslfr.bench.throughput import summary
    from aslfr.format.manifest import load_manifest

    largest_parquet = max(p.stat().st_size for p in (data / "train_landmarks").glob("*.parquet"))
    manifest = load_manifest(records)
    local_rate, (local_s, s3_s) = statistics.median(rates["local disk"]), map(statistics.median, convert_s.values())
    rows = [
        ("object storage (moto's S3 server in this process, 127.0.0.1: software overhead, not cloud latency)", ""),
        ("  data: parquet files x sequences (mean frames), largest parquet file (MB)",
         "{} x {} ({}), ".format(*size) + f"{largest_parquet / 1e6:.1f}"),
        ("  records: shards, records per epoch, largest shard (MB), epochs timed",
         f"{len(manifest.shards)}, {manifest.records}, {max(s.bytes for s in manifest.shards) / 1e6:.2f}, {epochs}"),
    ]
    for where, r in rates.items():
        ratio = "" if where == "local disk" else f"   /local {statistics.median(r) / local_rate:.2f}"
        rows.append((f"  read, pack_collate, 2 workers, {where} (rec/s)", summary(r) + ratio))
    rows += [
        ("  converter, 2 workers, local -> local / s3:// -> s3:// (s, median)",
         f"{local_s:.2f} / {s3_s:.2f}   s3/local {s3_s / local_s:.2f}"),
        ("  raw converter local / s3 (s)", " / ".join(" ".join(f"{x:.2f}" for x in v) for v in convert_s.values())),
    ]
    return rows


if __name__ == "__main__":
    main()
