"""The TensorFlow side of `make bench`: the reference's own tf.data input pipeline, timed on aslfr's records.

Run by path with a throwaway venv's python (`make bench-tf` builds it); TensorFlow is never a dependency
of aslfr, so this file imports neither aslfr nor torch (-P: its folder is not put on sys.path):

    .venv-tf/bin/python -P aslfr/bench/tf_pipeline.py --records DIR --ref-src REPO/projects/kaggle/aslfr/src/tf

It runs the reference repo's unmodified `src/tf/augment.py` + `src/tf/preprocess.py` with the stand-ins of
tests/golden/train_pipeline/make_golden.py (the final config's flags), parsing as the reference's
`src/dataset.py` does: a feature spec from the first record (every key fixed-length, `frames` var-length),
`parse_single_example`, `frames` densified and reshaped to [n_frames, 384]. tf.data is set up as the
reference's make_batch sets it up (`pipeline`), on --threads threads (default: the cores this process
may use); batch 32. Paths:
  training   files interleaved → map(parse + PreprocessLayer(320, training=True)) → batch(32) → prefetch
  inference  the same with training=False
  read       files interleaved → map(parse) → padded_batch(32) → prefetch
One warm-up epoch, then --epochs timed ones; an epoch ends when its last batch is in Python's hands.
Prints one JSON line: {"tensorflow": version, "threads": n, "paths": {path: [rec/s per timed epoch]},
"records": n}."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

PROG = "tf_pipeline"
GOLDEN = Path(__file__).resolve().parents[2] / "tests" / "golden" / "train_pipeline" / "make_golden.py"
PATHS = ("training", "inference", "read")
BATCH, N_FRAMES, N_COLS = 32, 320, 384


def fail(msg: str, code: int = 1):
    print(f"{PROG}: error: {msg}", file=sys.stderr)
    sys.exit(code)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not usage + message
        fail(f"{message} (see --help)", 2)


def shard_files(records: list[Path]) -> list[Path]:
    """The shards of records folders (their manifest.json's list) and of shard files, in order."""
    files = []
    for p in records:
        if p.is_dir():
            manifest = p / "manifest.json"
            if not manifest.is_file():
                fail(f"{p}: no manifest.json (not a records folder)")
            try:
                names = [s["name"] for s in json.loads(manifest.read_text())["shards"]]
            except (ValueError, KeyError, TypeError) as e:
                fail(f"{manifest}: not an aslfr manifest ({type(e).__name__}: {e})")
            missing = [n for n in names if not (p / n).is_file()]
            if missing:
                fail(f"{p}: shard {missing[0]} listed in manifest.json is missing")
            files += [p / n for n in names]
        elif p.is_file():
            files.append(p)
        else:
            fail(f"{p}: no such records folder or shard file")
    if not files:
        fail("no shards to read")
    return files


def check_stats(d: Path) -> None:
    """means.npy / stds.npy in `d` as aslfr.format.stats writes them: float [384], finite, stds > 0
    (the reference's layer loads them from there itself, with np.load)."""
    for name in ("means.npy", "stds.npy"):
        path = d / name
        if not path.is_file():
            fail(f"{d}: no {name} (the column statistics written beside the records)")
        try:
            a = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            fail(f"{path}: not a NumPy .npy array file")
        if a.dtype.kind not in "fiu" or a.shape != (N_COLS,) or not np.isfinite(a).all() or \
                (name == "stds.npy" and (a <= 0).any()):
            fail(f"{path}: not {N_COLS} finite values{' > 0' if name == 'stds.npy' else ''}")


def parse_args(argv=None):
    ap = _Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", required=True, nargs="+", type=Path,
                    help="records folders (with manifest.json) or .tfrec shard files")
    ap.add_argument("--ref-src", required=True, type=Path,
                    help="the reference repo's projects/kaggle/aslfr/src/tf directory (augment.py, preprocess.py)")
    ap.add_argument("--stats", type=Path,
                    help="folder of means.npy / stds.npy (default: the first records folder, or the first shard's folder)")
    ap.add_argument("--epochs", type=int, default=5, help="timed epochs after one warm-up epoch (default 5)")
    ap.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS), help="which paths to time (default all)")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                    help="readers, parallel calls and tf.data threads (default: the cores this process may use)")
    args = ap.parse_args(argv)
    for name in ("epochs", "threads"):
        if getattr(args, name) < 1:
            fail(f"--{name} must be >= 1, got {getattr(args, name)}", 2)
    args.ref_src = args.ref_src.resolve()
    for f in ("augment.py", "preprocess.py"):
        if not (args.ref_src / f).is_file():
            fail(f"--ref-src {args.ref_src}: no {f} (give the reference's projects/kaggle/aslfr/src/tf)", 2)
    args.files = shard_files(args.records)
    first = args.records[0]
    args.stats = (args.stats or (first if first.is_dir() else first.parent)).resolve()
    check_stats(args.stats)
    if not GOLDEN.is_file():
        fail(f"{GOLDEN}: missing (the reference stand-ins; run from an aslfr checkout)")
    return args


def feature_spec(tf, first_file: Path) -> dict:
    """As melt.first_example + auto_parse: from the first record, every key a FixedLenFeature
    ([] when it holds one value), `frames` a VarLenFeature."""
    raw = next(iter(tf.data.TFRecordDataset(str(first_file)).take(1))).numpy()
    ex = tf.train.Example.FromString(raw)
    dtypes = {"bytes_list": tf.string, "float_list": tf.float32, "int64_list": tf.int64}
    spec = {}
    for key, feat in ex.features.feature.items():
        kind = feat.WhichOneof("kind")
        n = len(getattr(feat, kind).value)
        spec[key] = tf.io.FixedLenFeature([] if n == 1 else [n], dtypes[kind])
    spec["frames"] = tf.io.VarLenFeature(tf.float32)
    return spec


def pipeline(tf, files: list[Path], element, threads: int, padded: bool = False):
    """As the reference's make_batch sets tf.data up: the files interleaved record by record over
    `threads` readers, `element` mapped with num_parallel_calls=AUTOTUNE, order not kept
    (deterministic=False), a private pool of `threads` threads with one intra-op thread each, batches
    of BATCH, prefetch(AUTOTUNE) after them. Without its shuffle buffer and repeat(): they add only
    to TensorFlow's time."""
    options = tf.data.Options()
    options.deterministic = False
    options.threading.private_threadpool_size = threads
    options.threading.max_intra_op_parallelism = 1
    ds = tf.data.Dataset.from_tensor_slices([str(f) for f in files]).interleave(
        tf.data.TFRecordDataset, cycle_length=threads, block_length=1, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(element, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.padded_batch(BATCH) if padded else ds.batch(BATCH)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


def datasets(tf, files: list[Path], layers: dict, threads: int) -> dict:
    spec = feature_spec(tf, files[0])

    def parse(serialized):
        fe = tf.io.parse_single_example(serialized, spec)
        frames = tf.sparse.to_dense(fe["frames"], default_value=0.0, validate_indices=False)
        fe["frames"] = tf.reshape(frames, [fe["n_frames"], N_COLS])
        return fe

    def preprocessed(layer):
        def f(serialized):
            fe = parse(serialized)
            fe["frames"], fe["n_frames_"] = layer.call(fe["frames"])
            return fe
        return f

    return {
        "training": lambda: pipeline(tf, files, preprocessed(layers[True]), threads),
        "inference": lambda: pipeline(tf, files, preprocessed(layers[False]), threads),
        "read": lambda: pipeline(tf, files, parse, threads, padded=True),
    }


def epoch(ds, path: str) -> tuple[int, float]:
    """Records and seconds of one pass, each batch checked to be what the consumer gets."""
    t, n = time.perf_counter(), 0
    for batch in ds:
        frames = batch["frames"]
        if path != "read" and (tuple(frames.shape[1:]) != (N_FRAMES, 2 * N_COLS + 1) or frames.dtype.name != "float32"):
            fail(f"{path}: batch of {frames.dtype.name} {list(frames.shape)}, expected [B, {N_FRAMES}, {2 * N_COLS + 1}] float32")
        n += int(frames.shape[0])
    return n, time.perf_counter() - t


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError as e:
        fail(f"TensorFlow is not installed in {sys.executable} ({e}); run `make bench-tf`, "
             "which builds .venv-tf with tensorflow-cpu and runs this script with it")
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    tf.random.set_seed(0)

    spec = importlib.util.spec_from_file_location("aslfr_make_golden", GOLDEN)
    golden = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(golden)
    golden.install_standins(args.ref_src, str(args.stats))  # FLAGS.root: the layer loads means/stds there
    import src.tf.preprocess as P  # the reference's own code

    layers = {train: P.PreprocessLayer(N_FRAMES, training=train) for train in (True, False)}
    made = datasets(tf, args.files, layers, args.threads)
    rates, records = {}, None
    try:
        for path in args.paths:
            ds = made[path]()
            n, _ = epoch(ds, path)  # warm-up: traces the graphs, fills the page cache
            if records is not None and n != records:
                fail(f"{path}: read {n} records, the previous path read {records}")
            records = n
            rates[path] = [round(n / s, 1) for n, s in (epoch(ds, path) for _ in range(args.epochs))]
    except tf.errors.OpError as e:
        fail(f"{type(e).__name__}: {e.message.splitlines()[0] if e.message else e}")
    print(json.dumps({"tensorflow": tf.__version__, "threads": args.threads, "paths": rates, "records": records}),
          flush=True)


if __name__ == "__main__":
    main()
