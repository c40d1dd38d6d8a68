"""The TensorFlow baseline of `make bench`, without TensorFlow: tf_pipeline.py (run by path, as from the
throwaway venv) and run_tf_baseline fail with one clear line naming the interpreter, the reference
folder, the argument or the file, and the script imports neither aslfr nor torch."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest

from aslfr.bench.tf_baseline import SCRIPT, run_tf_baseline
from aslfr.errors import InputError
from aslfr.format.stats import encode_stats
from conftest import ROOT

pytestmark = pytest.mark.skipif(importlib.util.find_spec("tensorflow") is not None,
                                reason="these check the behaviour where TensorFlow is absent")


@pytest.fixture
def setup(tmp_path):
    """A reference src/tf folder and a shard with statistics beside it: as far as the script checks
    before it imports TensorFlow, valid."""
    ref = tmp_path / "ref"
    ref.mkdir()
    for f in ("augment.py", "preprocess.py"):
        (ref / f).write_text("")
    recs = tmp_path / "recs"
    recs.mkdir()
    (recs / "0.1.tfrec").write_bytes(b"")
    for name, data in encode_stats([0.5] * 384, [0.1] * 384).items():
        (recs / name).write_bytes(data)
    return ref, recs


def tf_pipeline(*args):
    """The script run by path with this (TensorFlow-less) interpreter, from the repository root."""
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_without_tensorflow_one_line_says_make_bench_tf(setup):
    ref, recs = setup
    done = tf_pipeline("--records", recs / "0.1.tfrec", "--ref-src", ref)
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("tf_pipeline: error: TensorFlow is not installed in ") and "make bench-tf" in lines[0]


@pytest.mark.parametrize("args, says", [
    ([], "the following arguments are required: --records, --ref-src"),
    (["--records", "{recs}/0.1.tfrec", "--ref-src", "{ref}", "--epochs", "0"], "--epochs must be >= 1, got 0"),
    (["--records", "{recs}/0.1.tfrec", "--ref-src", "{ref}", "--threads", "0"], "--threads must be >= 1, got 0"),
    (["--records", "{recs}/0.1.tfrec", "--ref-src", "{ref}", "--paths", "train"], "argument --paths: invalid choice: 'train'"),
    (["--records", "{recs}/none.tfrec", "--ref-src", "{ref}"], "{recs}/none.tfrec: no such records folder or shard file"),
    (["--records", "{recs}", "--ref-src", "{ref}"], "{recs}: no manifest.json (not a records folder)"),
    (["--records", "{recs}/0.1.tfrec", "--ref-src", "{recs}"], "--ref-src {recs}: no augment.py"),
    (["--records", "{recs}/0.1.tfrec", "--ref-src", "{ref}", "--stats", "{ref}"], "{ref}: no means.npy"),
])
def test_argument_errors_are_one_line(setup, args, says):
    ref, recs = setup
    fill = dict(ref=ref, recs=recs)
    done = tf_pipeline(*[a.format(**fill) for a in args])
    assert done.returncode in (1, 2) and done.stdout == ""
    assert done.stderr.splitlines() == [done.stderr.strip()], done.stderr
    assert done.stderr.startswith("tf_pipeline: error: ") and says.format(**fill) in done.stderr


def test_bad_statistics_name_the_file(setup):
    ref, recs = setup
    stds = recs / "stds.npy"
    np.save(stds, np.r_[np.zeros(1, np.float32), np.full(383, 0.1, np.float32)])  # a std of 0
    done = tf_pipeline("--records", recs / "0.1.tfrec", "--ref-src", ref)
    assert done.returncode == 1
    assert done.stderr.strip() == f"tf_pipeline: error: {stds}: not 384 finite values > 0"


def test_script_imports_neither_aslfr_nor_torch(setup):
    """As far as it gets without TensorFlow (arguments, shards, statistics, the import)."""
    ref, recs = setup
    probe = (
        "import runpy, sys\n"
        f"sys.argv = [{str(SCRIPT)!r}, '--records', {str(recs / '0.1.tfrec')!r}, '--ref-src', {str(ref)!r}]\n"
        "try:\n"
        f"    runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('aslfr', 'torch')))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd="/", timeout=120)
    assert "TensorFlow is not installed" in done.stderr
    assert done.stdout.strip() == "[]"


def test_pipeline_is_set_up_as_the_reference_sets_it_up(tmp_path):
    """The files interleaved one record at a time over `threads` parallel readers, maps with
    num_parallel_calls=AUTOTUNE, deterministic=False, a private pool of `threads` threads, batch then
    prefetch: the calls the script makes on TensorFlow's module, recorded by a stand-in for it."""
    spec = importlib.util.spec_from_file_location("tf_pipeline", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    files, element = [tmp_path / "0.1.tfrec", tmp_path / "1.1.tfrec"], object()
    for padded, batch in ((False, "batch"), (True, "padded_batch")):
        tf = mock.MagicMock()
        script.pipeline(tf, files, element, threads=3, padded=padded)
        calls = [(name.rsplit(".", 1)[-1], args, kwargs) for name, args, kwargs in tf.mock_calls
                 if name.startswith("data.Dataset.")]
        auto = tf.data.AUTOTUNE
        options = tf.data.Options.return_value
        assert calls == [
            ("from_tensor_slices", ([str(f) for f in files],), {}),
            ("interleave", (tf.data.TFRecordDataset,), dict(cycle_length=3, block_length=1, num_parallel_calls=auto)),
            ("map", (element,), dict(num_parallel_calls=auto)),
            (batch, (32,), {}),
            ("prefetch", (auto,), {}),
            ("with_options", (options,), {}),
        ]
        assert options.deterministic is False
        assert options.threading.private_threadpool_size == 3 and options.threading.max_intra_op_parallelism == 1


def test_run_tf_baseline_names_the_missing_interpreter(setup, tmp_path):
    ref, recs = setup
    missing = tmp_path / "venv-tf" / "bin" / "python"
    with pytest.raises(InputError, match=rf"^{missing}: no such Python interpreter \(`make bench-tf` builds"):
        run_tf_baseline(missing, ref, recs)


def test_run_tf_baseline_names_the_reference_folder(setup):
    ref, recs = setup
    (ref / "preprocess.py").unlink()
    with pytest.raises(InputError, match=rf"^{ref}: no preprocess.py \(the reference's projects/kaggle/aslfr/src/tf"):
        run_tf_baseline(sys.executable, ref, recs)


def test_run_tf_baseline_reports_the_scripts_error(setup):
    """The child's exit status and its one-line error, not a traceback or a JSON decode error."""
    ref, recs = setup
    with pytest.raises(InputError) as e:
        run_tf_baseline(sys.executable, ref, [recs / "0.1.tfrec"], epochs=1, paths=["read"])
    msg = str(e.value)
    assert msg.startswith(f"tf_pipeline.py with {sys.executable} failed (exit 1): tf_pipeline: error: TensorFlow is not installed")
    assert "\n" not in msg
