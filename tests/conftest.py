"""Shared fixtures: small synthetic datasets, the reference notebook run on them (its own code,
with `tests/reference/shim` standing in for TensorFlow), and a converter call via Hydra's compose."""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from aslfr.commands.cli import CONFIG_DIR
from aslfr.commands.convert import settings_from_config
from aslfr.source.synthetic import SplitSpec, generate

ROOT = Path(__file__).resolve().parents[1]
SHIM = ROOT / "tests" / "reference" / "shim"
NOTEBOOK = ROOT / "tests" / "reference" / "reference_notebook.py"


def compose_config(*overrides: str):
    with initialize_config_dir(version_base="1.3", config_dir=CONFIG_DIR):
        return compose(config_name="convert", overrides=list(overrides))


def convert(data_dir, out_dir, *overrides: str, finalize: bool = True) -> dict:
    """Run the converter in-process on a composed config (no progress bars)."""
    from aslfr.convert.converter import run

    cfg = compose_config(f"data_dir={data_dir}", f"out_dir={out_dir}", "progress=false", *overrides)
    return run(settings_from_config(cfg), finalize=finalize)


def run_reference(data_dir, out_dir, split: str = "train") -> Path:
    """Run the reference notebook's code on `data_dir`; return its records directory."""
    obj = "train" if split == "train" else "sup"
    env = dict(os.environ, SEED_ROOT=str(data_dir), SEED_WORKING=str(out_dir), SEED_OBJ=obj, SEED_OUT=obj,
               SEED_WORKERS="1", PYTHONPATH=str(SHIM))
    res = subprocess.run([sys.executable, str(NOTEBOOK)], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    return Path(out_dir) / "tfrecords" / obj


@contextmanager
def shim_imports():
    """`tests/reference/shim` (stand-ins for tensorflow, six, pymp, icecream) importable inside the
    block only: afterwards sys.path and sys.modules are as before, so no other test sees them."""
    names = [p.stem for p in SHIM.glob("*.py")]
    saved = {n: sys.modules.pop(n) for n in names if n in sys.modules}
    sys.path.insert(0, str(SHIM))
    try:
        yield
    finally:
        sys.path.remove(str(SHIM))
        for n in names:
            sys.modules.pop(n, None)
        sys.modules.update(saved)


def needs(module: str):
    """Skip (with the reason) a test whose optional test dependency is not installed."""
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    return pytest.mark.skipif(not found, reason=f"{module} is not installed (a test extra: pip install -e '.[test]')")


@pytest.fixture(scope="session")
def small_data(tmp_path_factory) -> Path:
    """3 train files × 16 sequences, 2 supplemental files × 12, short sequences."""
    return generate(tmp_path_factory.mktemp("data"), SplitSpec(3, 16, 8, 8), SplitSpec(2, 12, 8, 6), seed=7)


@pytest.fixture(scope="session")
def reference_out(small_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference")
    run_reference(small_data, out, "train")
    run_reference(small_data, out, "supplemental")
    return out


def convert_both(data_dir, out_dir) -> Path:
    """Both splits of `data_dir` converted into `out_dir` (default config, 2 workers)."""
    convert(data_dir, out_dir)
    convert(data_dir, out_dir, "split=supplemental")
    return Path(out_dir)


@pytest.fixture(scope="session")
def converted(small_data, tmp_path_factory) -> Path:
    """The converter's output for both splits of small_data."""
    return convert_both(small_data, tmp_path_factory.mktemp("converted"))


def tree_bytes(directory: Path, pattern: str = "*") -> dict[str, bytes]:
    """Relative path -> bytes for the files under `directory` (hidden receipts excluded)."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(Path(directory).rglob(pattern))
            if p.is_file() and ".aslfr" not in p.parts and ".hydra" not in p.parts}


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 server, in this process on 127.0.0.1 (tests/buckets.py: fake credentials)."""
    import logging

    moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed (a test extra: pip install -e '.[test]')")
    pytest.importorskip("s3fs", reason="s3fs is not installed (the s3 extra: pip install -e '.[s3,test]')")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_env(s3_endpoint, monkeypatch):
    """This process and its children talk to the test server only."""
    from buckets import ENV

    for k, v in {**ENV, "AWS_ENDPOINT_URL": s3_endpoint}.items():
        monkeypatch.setenv(k, v)
    return s3_endpoint


@pytest.fixture(scope="session")
def notebook():
    """The notebook's function and class definitions (no top-level code) in a namespace."""
    tree = ast.parse(NOTEBOOK.read_text())
    keep = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom))
            and not (isinstance(n, (ast.Import, ast.ImportFrom)) and any(a.name in ("pymp",) for a in n.names))
            and getattr(n, "name", "") != "FLAGS"]
    ns = {"__name__": "notebook"}
    with shim_imports():  # the notebook's imports bind the stand-ins into its namespace only
        exec(compile(ast.Module(keep, []), str(NOTEBOOK), "exec"), ns)
    ns["ic"] = lambda *a: a

    class FLAGS:
        folds, fold_seed, root = 4, 1229, "/data"
        use_z, norm_frames, concat_frames, add_pos = True, True, True, True
    ns["FLAGS"] = FLAGS
    ns["N_COLS"] = 384  # len(SEL_COLS), a top-level assignment the extraction leaves out
    return ns
