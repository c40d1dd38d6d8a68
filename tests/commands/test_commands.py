"""The commands and entry points as a user runs them: every `--help`, `python -m aslfr.stats`,
`python -m aslfr.synthetic`, the `aslfr-convert` script, the README's Python snippet, a supplemental
sweep with its merge, spawned workers, a schema change under resume, and torchrun's RANK/WORLD_SIZE."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, convert, tree_bytes

PY = sys.executable


def _run(*args, cwd=None, env=None):
    return subprocess.run([PY, *args], capture_output=True, text=True, cwd=cwd, env=env)


@pytest.mark.parametrize("command, usage, description", [
    ("convert", "python -m aslfr.convert [key=value ...] [-m for sweeps]:",
     "competition parquet -> the reference's fold-sharded TFRecords."),
    ("merge", "python -m aslfr.merge out_dir=PATH data_dir=PATH [split=...] [folds=N]:",
     "finalize the parts that separate conversion jobs wrote"),
    ("inspect", "python -m aslfr.inspect out_dir=PATH [+sequence_id=N] (or PATH first):",
     "what a conversion wrote, per split and fold"),
    ("verify", "usage: python -m aslfr.verify [-h] out_dir=PATH", "check records folders against their manifests."),
    ("stats", "usage: python -m aslfr.stats [-h] out_dir=PATH", "recompute means.npy / stds.npy from the records."),
    ("synthetic", "usage: python -m aslfr.synthetic [-h]", "synthetic data in the exact competition layout"),
    ("bench", "usage: python -m aslfr.bench [-h]", "speed and memory of the converter and the reader"),
    ("train_demo", "usage: python -m aslfr.train_demo [-h]", "a tiny CTC model trained for a few steps"),
])
def test_every_command_has_its_own_help(command, usage, description, tmp_path):
    res = _run("-m", f"aslfr.{command}", "--help", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    text = " ".join(res.stdout.split())  # argparse wraps to the terminal's width
    assert text.startswith(usage) and description in text, text[:300]
    assert list(tmp_path.iterdir()) == []


def test_convert_help_describes_every_key():
    res = _run("-m", "aslfr.convert", "--help")
    keys = ["data_dir", "out_dir", "split", "folds", "fold_seed", "sup_weight", "shuffle_buffer", "shuffle_seed",
            "num_workers", "fold", "shard_index", "shard_count", "eos_always", "index_files", "strict",
            "skip_unknown_chars", "resume", "verify_resumed", "multiprocessing_context", "progress", "report"]
    for key in keys:
        line = next((ln for ln in res.stdout.splitlines() if re.match(rf"\s*{key}\s*[=:]", ln)), None)
        assert line and len(line.split(None, 2)) > 2, key  # key, default, description


def test_synthetic_and_stats_commands(tmp_path):
    res = _run("-m", "aslfr.synthetic", f"data_dir={tmp_path / 'data'}", "--train-files", "1", "--sup-files", "0",
               "--sequences", "12", "--participants", "4")
    assert res.returncode == 0, res.stderr
    csv = (tmp_path / "data/train.csv").read_text().splitlines()
    assert csv[0] == "path,file_id,sequence_id,participant_id,phrase" and len(csv) == 13
    res = _run("-m", "aslfr.synthetic", str(tmp_path / "bare"), "--train-files", "1", "--sup-files", "0",
               "--sequences", "12", "--participants", "4")  # the bare PATH of earlier versions
    assert res.returncode == 0 and (tmp_path / "bare/train.csv").read_text().splitlines() == csv, res.stderr
    convert(tmp_path / "data", tmp_path / "out", "num_workers=0")
    d = tmp_path / "out/tfrecords/train"
    means, stds = np.load(d / "means.npy"), np.load(d / "stds.npy")
    (d / "means.npy").unlink()
    res = _run("-m", "aslfr.stats", str(tmp_path / "out"))  # the output folder, as verify takes it
    assert res.returncode == 0, res.stderr
    assert f"{d}: means.npy and stds.npy written (384 columns" in res.stdout
    assert np.allclose(np.load(d / "means.npy"), means, rtol=1e-6) and np.allclose(np.load(d / "stds.npy"), stds)


@pytest.mark.parametrize("where", ["nonexistent", "empty", "unfinished"])
def test_stats_never_writes_from_no_records(tmp_path, where):
    path = tmp_path / "x"
    if where != "nonexistent":
        path.mkdir()
    if where == "unfinished":
        (path / "0.3.tfrec").write_bytes(b"")
    res = _run("-m", "aslfr.stats", str(path))
    assert res.returncode == 1 and res.stderr.startswith("aslfr: error: ") and res.stderr.count("\n") == 1
    assert not list(tmp_path.rglob("*.npy"))


def test_aslfr_convert_script(small_data, converted, tmp_path):
    script = Path(PY).with_name("aslfr-convert")
    assert script.is_file()
    res = subprocess.run([str(script), f"data_dir={small_data}", f"out_dir={tmp_path}", "progress=false"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert tree_bytes(tmp_path / "tfrecords/train") == tree_bytes(converted / "tfrecords/train")


def _readme_snippet(heading: str = "## Reading the records in PyTorch") -> str:
    """The Python blocks of one README section, joined."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(heading):]
    section = section[: section.index("\n## ", 4)]
    return "\n".join(block.split("```", 1)[0] for block in section.split("```python")[1:])


def test_readme_python_snippet_runs_as_written(converted, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out/demo").symlink_to(converted)
    code = _readme_snippet()
    assert "aslfr.fold_files" in code
    script = tmp_path / "snippet.py"
    script.write_text(code + "\nprint('batch', sorted(batch), tuple(batch['frames'].shape))"
                             "\nprint('valid', tuple(next(iter(valid))['frames'].shape))\n")
    res = _run(str(script), cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "'frames'" in res.stdout and "'mask'" in res.stdout and ", 384)" in res.stdout  # padded by unpack
    assert ", 769)" in res.stdout.split("valid", 1)[1]


def test_readme_training_snippets_run_as_written(converted, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out/demo").symlink_to(converted)
    code = _readme_snippet("## Training like the reference")
    assert "ReferenceCollate" in code and "pre.batch" in code
    script = tmp_path / "snippet.py"
    script.write_text(code + "\nprint('out', tuple(x.shape), int(length.max()))"
                             "\nprint('valid', tuple(next(iter(valid))['frames'].shape))\n")
    res = _run(str(script), cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "out (" in res.stdout and ", 320, 769)" in res.stdout.split("out", 1)[1].split("\n")[0]
    assert ", 320, 769)" in res.stdout.split("valid", 1)[1]


def test_supplemental_sweep_and_merge(small_data, converted, tmp_path):
    out = tmp_path / "out"
    res = subprocess.run([PY, "-m", "aslfr.convert", "-m", f"data_dir={small_data}", f"out_dir={out}", "split=supplemental",
                          "progress=false", "num_workers=0", "+fold=0,1,2,3"], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "sup: manifest.json" in res.stdout or "supplemental: manifest.json" in res.stdout
    assert "pending" not in res.stdout  # the sweep merges by itself
    assert tree_bytes(out / "tfrecords/sup") == tree_bytes(converted / "tfrecords/sup")
    # the same parts merged by the command, for one named split
    (out / "tfrecords/sup/manifest.json").unlink()
    res = _run("-m", "aslfr.merge", f"data_dir={small_data}", f"out_dir={out}", "split=supplemental", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("supplemental: manifest.json") and "train" not in res.stdout
    assert tree_bytes(out / "tfrecords/sup") == tree_bytes(converted / "tfrecords/sup")
    res = _run("-m", "aslfr.merge", f"data_dir={small_data}", f"out_dir={out}", "split=train", cwd=tmp_path)
    assert res.returncode == 1 and "no conversion parts of split train" in res.stderr


def test_without_index_files_the_reader_says_what_is_missing(small_data, tmp_path):
    from aslfr.data.datasets import TFRecordIndexed, TFRecordShards

    convert(small_data, tmp_path, "index_files=false", "num_workers=0")
    d = tmp_path / "tfrecords/train"
    assert not list(d.glob("*.tfindex")) and list(d.glob("*.tfrec"))
    assert all(s.get("index_bytes") is None for s in json.loads((d / "manifest.json").read_text())["shards"])
    with pytest.raises(FileNotFoundError, match=r"\.tfindex \(convert with index_files=true\)"):
        TFRecordIndexed(d)
    whole = list(TFRecordShards(d, torch_values=False))  # one reader reads whole files: no index needed
    assert len(whole) == 48
    with pytest.raises(FileNotFoundError, match="index file needed to split this file across readers"):
        list(TFRecordShards(d, rank=1, world_size=5, torch_values=False))
    assert _run("-m", "aslfr.verify", str(tmp_path)).returncode == 0


def test_spawned_workers_write_the_same_bytes(small_data, converted, tmp_path):
    convert(small_data, tmp_path, "multiprocessing_context=spawn", "num_workers=2")
    assert tree_bytes(tmp_path / "tfrecords/train") == tree_bytes(converted / "tfrecords/train")


def test_schema_change_rewrites_resumed_shards(small_data, tmp_path, monkeypatch):
    """Receipts carry the schema fingerprint: after a schema change, resume rewrites every shard."""
    from aslfr.format import schema

    convert(small_data, tmp_path, "num_workers=0")
    assert convert(small_data, tmp_path, "num_workers=0")["shards_written"] == 0  # all resumed
    before = json.loads((tmp_path / "tfrecords/train/manifest.json").read_text())["config"]["schema"]
    monkeypatch.setattr(schema, "SCHEMA_VERSION", schema.SCHEMA_VERSION + 1)
    r = convert(small_data, tmp_path, "num_workers=0")
    assert r["shards_resumed"] == 0 and r["shards_written"] == len(list((tmp_path / "tfrecords/train").glob("*.tfrec")))
    after = json.loads((tmp_path / "tfrecords/train/manifest.json").read_text())["config"]["schema"]
    assert after != before
    monkeypatch.setattr(schema, "SCHEMA", {**schema.SCHEMA, "extra": schema.Feature("int")})
    assert schema.schema_fingerprint() != after  # names, kinds and shapes are part of it


def test_distributed_rank_from_torchrun_environment(monkeypatch):
    from aslfr.data.datasets import distributed_rank

    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed_rank() is None
    monkeypatch.setenv("RANK", "3")
    assert distributed_rank() is None  # both are needed
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert distributed_rank() == (3, 4)


def test_reader_uses_torchrun_environment(converted, monkeypatch):
    from aslfr.data.datasets import TFRecordShards

    d = converted / "tfrecords/train"
    everything = [int(x["sequence_id"]) for x in TFRecordShards(d, torch_values=False)]
    seen = []
    for rank in range(3):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "3")
        ds = TFRecordShards(d, torch_values=False)
        assert (ds.rank, ds.world_size) == (rank, 3)
        seen += [int(x["sequence_id"]) for x in ds]
    assert sorted(seen) == sorted(everything)
