"""The TensorFlow side of `make bench`: the reference's own tf.data input pipeline, timed on aslfr's records.

Run by path with a throwaway venv's python (`make bench-tf` builds it); TensorFlow is never a dependency
of aslfr, so this file imports neither aslfr nor torch:

    .venv-tf/bin/python aslfr/bench/tf_pipeline.py --records DIR --ref-src REPO/projects/kaggle/aslfr/src/tf

It runs the reference repo's unmodified `src/tf/augment.py` + `src/tf/preprocess.py` with the stand-ins of
tests/golden/train_pipeline/make_golden.py (the final config's flags), parsing as the reference's
`src/dataset.py` does: a feature spec from the first record (every key fixed-length, `frames` var-length),
`parse_single_example`, `frames` densified and reshaped to [n_frames, 384]. Paths, batch 32, 2 threads:
  training   TFRecordDataset → map(parse + PreprocessLayer(320, training=True), 2 calls) → batch(32)
  inference  the same with training=False
  read       TFRecordDataset → map(parse, 2 calls) → padded_batch(32)
One warm-up epoch, then --epochs timed ones; an epoch ends when its last batch is in Python's hands.
Prints one JSON line: {"tensorflow": version, "paths": {path: [rec/s per timed epoch]}, "records": n}."""

from __future__ import annotations

import os
import sys

# run by path, this file's folder comes first on sys.path, and its aslfr/inspect.py would shadow the
# standard library's `inspect` (used by TensorFlow): drop it before anything else is imported
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

PROG = "tf_pipeline"
GOLDEN = Path(__file__).resolve().parents[2] / "tests" / "golden" / "train_pipeline" / "make_golden.py"
PATHS = ("training", "inference", "read")
THREADS, BATCH, N_FRAMES, N_COLS = 2, 32, 320, 384


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
    args = ap.parse_args(argv)
    if args.epochs < 1:
        fail(f"--epochs must be >= 1, got {args.epochs}", 2)
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


def datasets(tf, files: list[Path], layers: dict) -> dict:
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

    def source():
        return tf.data.TFRecordDataset([str(f) for f in files])

    return {
        "training": lambda: source().map(preprocessed(layers[True]), num_parallel_calls=THREADS).batch(BATCH),
        "inference": lambda: source().map(preprocessed(layers[False]), num_parallel_calls=THREADS).batch(BATCH),
        "read": lambda: source().map(parse, num_parallel_calls=THREADS).padded_batch(BATCH),
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
    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    tf.random.set_seed(0)

    spec = importlib.util.spec_from_file_location("aslfr_make_golden", GOLDEN)
    golden = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(golden)
    golden.install_standins(args.ref_src, str(args.stats))  # FLAGS.root: the layer loads means/stds there
    import src.tf.preprocess as P  # the reference's own code

    layers = {train: P.PreprocessLayer(N_FRAMES, training=train) for train in (True, False)}
    made = datasets(tf, args.files, layers)
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
    print(json.dumps({"tensorflow": tf.__version__, "paths": rates, "records": records}), flush=True)


if __name__ == "__main__":
    main()
