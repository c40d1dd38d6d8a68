"""Start-up: a run with nothing to write imports neither torch nor the writer and starts no worker;
`aslfr convert --help` imports no numpy. (What this saves is measured by the bench, not asserted.)"""

from __future__ import annotations

import shutil
import subprocess
import sys

from conftest import ROOT, tree_bytes


def _python(code: str) -> str:
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip().splitlines()[-1]


def test_a_run_with_nothing_to_write_imports_no_torch(small_data, converted, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(converted, out)
    before = tree_bytes(out)
    code = (f"import sys\nfrom aslfr.convert.settings import Settings\nfrom aslfr.convert.converter import run\n"
            f"r = run(Settings({str(small_data)!r}, {str(out)!r}, num_workers=2, progress=False))\n"
            f"print(r['shards_written'], r['shards_resumed'], r['finalized'], r['peak_rss_mb']['worker'],\n"
            f"      [m for m in ('torch', 'tfrecord', 'aslfr.convert.shards') if m in sys.modules])")
    assert _python(code) == "0 12 True 0.0 []"
    assert tree_bytes(out) == before


def test_convert_help_imports_no_numpy():
    code = ("import sys\nfrom aslfr.__main__ import main\ntry:\n    main(['convert', '--help'])\n"
            "except SystemExit:\n    pass\nprint('numpy' in sys.modules, 'torch' in sys.modules)")
    assert _python(code) == "False False"
