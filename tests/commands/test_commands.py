"""The commands and entry points as a user runs them: every `--help`, `python -m aslfr.stats`,
`python -m aslfr.synthetic`, the `aslfr-convert` script, the README's Python snippet, a supplemental
sweep with its merge, spawned workers, a schema change under resume, and torchrun's RANK/WORLD_SIZE;
the Makefile targets, one `out_dir=` convention, `merge` with its own config, one-line errors
everywhere, `train_demo`'s input checks and the `aslfr` console script."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, convert, tree_bytes

PY = sys.executable


def _run(*args, cwd=None, env=None, timeout=300):
    return subprocess.run([PY, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


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


needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _make(*args, cwd=ROOT):
    return subprocess.run(["make", "--no-print-directory", "-C", str(cwd), *args], capture_output=True, text=True,
                          timeout=600)


@needs_make
def test_make_demo_and_test_do_what_the_readme_says(tmp_path):
    venv, data, out = tmp_path / "venv", tmp_path / "data", tmp_path / "out"  # whatever `make demo` left in the checkout
    demo = _make("-n", "demo", f"VENV={venv}", f"DATA={data}", f"OUT={out}").stdout.splitlines()
    assert demo[0] == f"python3 -m venv {venv}"
    assert demo[-3:] == [f'{venv}/bin/python -m aslfr.synthetic "data_dir={data}"',
                         f'{venv}/bin/python -m aslfr.convert "data_dir={data}" "out_dir={out}"',
                         f'{venv}/bin/python -m aslfr.convert "data_dir={data}" "out_dir={out}" split=supplemental']
    test = _make("-n", "test", f"VENV={venv}").stdout.splitlines()
    assert test[0] == f"python3 -m venv {venv}" and test[-1] == f"{venv}/bin/python -m pytest -q"


@needs_make
def test_make_convert_verify_inspect_on_real_layout(small_data, converted, tmp_path):
    out = tmp_path / "out"
    common = [f"PY={PY}", f"DATA={small_data}", f"OUT={out}"]
    res = _make("convert", *common, "ARGS=progress=false num_workers=0")
    assert res.returncode == 0, res.stderr
    assert tree_bytes(out / "tfrecords/train") == tree_bytes(converted / "tfrecords/train")
    res = _make("convert", *common, "SPLIT=supplemental", "FOLD=1", "ARGS=progress=false num_workers=0")
    assert res.returncode == 0, res.stderr
    # fold 1 of each of the 2 supplemental files: shard numbers 1 and 5; no manifest until all folds exist
    assert sorted(p.name.split(".")[0] for p in (out / "tfrecords/sup").glob("*.tfrec")) == ["1", "5"]
    assert not (out / "tfrecords/sup/manifest.json").exists()
    res = _make("merge", *common, "ARGS=split=supplemental")  # a job chain sees the missing folds
    assert res.returncode != 0 and "sup" in res.stderr and "missing" in res.stderr, res.stderr
    res = _make("convert", *common, "SPLIT=supplemental", "ARGS=progress=false num_workers=0")
    assert res.returncode == 0, res.stderr
    assert tree_bytes(out / "tfrecords/sup") == tree_bytes(converted / "tfrecords/sup")
    res = _make("merge", *common)  # every split complete: merging again rewrites the same bytes
    assert res.returncode == 0 and res.stdout.count("manifest.json, means.npy, stds.npy written") == 2, res.stderr
    assert tree_bytes(out / "tfrecords") == tree_bytes(converted / "tfrecords")
    res = _make("verify", *common)
    assert res.returncode == 0, res.stderr
    assert sorted(ln.split(":")[0] for ln in res.stdout.splitlines() if ": OK" in ln) == \
        [str(out / "tfrecords/sup"), str(out / "tfrecords/train")]
    res = _make("inspect", *common)
    assert res.returncode == 0, res.stderr
    assert "train" in res.stdout and "sup" in res.stdout and "lost EOS" in res.stdout


@needs_make
def test_make_verify_fails_on_a_broken_folder(converted, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(converted, out)
    next((out / "tfrecords/train").glob("*.tfrec")).unlink()
    res = _make("verify", f"PY={PY}", f"OUT={out}")
    assert res.returncode != 0 and "FAIL" in res.stdout


@pytest.mark.parametrize("command", ["verify", "stats"])
def test_out_dir_spellings_agree(command, converted, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(converted, out)
    runs = [_run("-m", f"aslfr.{command}", arg) for arg in (f"out_dir={out}", str(out))]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr
    assert runs[0].stdout == runs[1].stdout
    assert str(out / "tfrecords/train") in runs[0].stdout and str(out / "tfrecords/sup") in runs[0].stdout
    missing = _run("-m", f"aslfr.{command}", f"out_dir={tmp_path / 'nothing'}")
    assert missing.returncode == 1 and f"{tmp_path / 'nothing'}:" in missing.stdout + missing.stderr


def test_inspect_takes_a_bare_path_first(converted):
    runs = [_run("-m", "aslfr.inspect", arg) for arg in (f"out_dir={converted}", str(converted))]
    assert [r.returncode for r in runs] == [0, 0], runs[1].stderr
    assert runs[0].stdout == runs[1].stdout and "lost EOS" in runs[0].stdout


def test_train_demo_takes_out_dir(converted, capsys):
    from aslfr import train_demo

    train_demo.main([f"out_dir={converted}", "--steps", "1", "--workers", "0"])
    out = capsys.readouterr().out
    # shard names are {file*4 + fold}.{count}: training reads train folds 1..3 and all supplemental records
    train = sum(int(p.name.split(".")[1]) for p in converted.glob("tfrecords/*/*.tfrec")
                if p.parent.name == "sup" or int(p.name.split(".")[0]) % 4 != 0)
    assert f"training on {train} records" in out and "over 1 steps" in out


def test_merge_has_its_own_help(tmp_path):
    res = _run("-m", "aslfr.merge", "--help", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("python -m aslfr.merge out_dir=PATH data_dir=PATH [split=...] [folds=N]: finalize")
    assert [ln.split("=")[0].strip() for ln in res.stdout.splitlines() if re.match(r"\s+\w+=", ln)] == \
        ["out_dir", "data_dir", "split", "folds", "storage_options", "progress"]
    assert "competition parquet" not in res.stdout and list(tmp_path.iterdir()) == []


def _sup_parts(small_data, out, *overrides):
    from conftest import convert

    for fold in (0, 1):
        convert(small_data, out, "split=supplemental", f"+fold={fold}", "num_workers=0", *overrides, finalize=False)


def test_merge_fails_naming_the_missing_parts(small_data, tmp_path):
    _sup_parts(small_data, tmp_path)
    res = _run("-m", "aslfr.merge", f"out_dir={tmp_path}", f"data_dir={small_data}")
    csv = (small_data / "supplemental_metadata.csv").read_text().splitlines()[1:]
    files = [Path(p).name for p in dict.fromkeys(line.split(",")[0] for line in csv)]  # CSV order
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr == (f"aslfr: error: supplemental: 4 of 8 shard units complete in {tmp_path}/tfrecords/sup, "
                          f"missing or out of date: {files[0]} folds 2,3; {files[1]} folds 2,3; manifest not written\n")
    assert not (tmp_path / "tfrecords/sup/manifest.json").exists()


def test_merge_fails_when_folds_disagree_with_the_parts(converted, small_data, tmp_path):
    shutil.copytree(converted, tmp_path / "out")
    (tmp_path / "out/tfrecords/sup/manifest.json").unlink()
    res = _run("-m", "aslfr.merge", f"out_dir={tmp_path / 'out'}", f"data_dir={small_data}", "split=supplemental",
               "folds=5")
    assert res.returncode == 1 and res.stderr == (f"aslfr: error: {tmp_path}/out/tfrecords/sup: folds=5 disagrees "
                                                  f"with the parts there, written with folds=4\n")
    assert not (tmp_path / "out/tfrecords/sup/manifest.json").exists()
    res = _run("-m", "aslfr.merge", str(tmp_path / "out"), f"data_dir={small_data}", "split=supplemental", "folds=4")
    assert res.returncode == 0, res.stderr
    assert tree_bytes(tmp_path / "out/tfrecords/sup") == tree_bytes(converted / "tfrecords/sup")


def test_merge_takes_the_settings_the_parts_were_written_with(small_data, tmp_path):
    """Parts written with sup_weight=0.5 and shuffle_seed=7 merge into the bytes of one such run,
    without those settings repeated to merge."""
    from conftest import convert

    settings = ("sup_weight=0.5", "shuffle_seed=7")
    convert(small_data, tmp_path / "whole", "split=supplemental", "num_workers=0", *settings)
    _sup_parts(small_data, tmp_path / "jobs", *settings)
    for fold in (2, 3):
        convert(small_data, tmp_path / "jobs", "split=supplemental", f"+fold={fold}", "num_workers=0", *settings,
                finalize=False)
    res = _run("-m", "aslfr.merge", f"out_dir={tmp_path / 'jobs'}", f"data_dir={small_data}")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("supplemental: manifest.json, means.npy, stds.npy written (24 records, 8 shards)")
    assert tree_bytes(tmp_path / "jobs/tfrecords/sup") == tree_bytes(tmp_path / "whole/tfrecords/sup")


def _one_line_error(res) -> str:
    assert res.returncode == 1 and res.stderr.startswith("aslfr: error: ") and res.stderr.count("\n") == 1, res.stderr
    return res.stderr


@pytest.mark.parametrize("batch, workers", [(64, 0), (64, 2)])
def test_train_demo_with_no_full_batch_fails_instead_of_hanging(converted, batch, workers):
    """57 training records have no batch of 64 (the last partial batch is dropped, as the reference
    does). The old loop spun forever: a timeout fails it."""
    res = _run("-m", "aslfr.train_demo", f"out_dir={converted}", "--batch-size", str(batch), "--workers",
               str(workers), "--steps", "3", timeout=240)
    assert f"57 records make no full global batch of {batch}" in _one_line_error(res)


@pytest.mark.parametrize("args, message", [
    (["--steps", "0"], "--steps must be >= 1, got 0"),
    (["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
    (["--workers", "-1"], "--workers must be >= 0, got -1"),
    (["--valid-fold", "4"], "valid_fold must be in 0..3"),
])
def test_train_demo_bad_settings_are_one_line(converted, args, message):
    res = _run("-m", "aslfr.train_demo", f"out_dir={converted}", *args, timeout=240)
    assert message in _one_line_error(res)


def test_train_demo_missing_records_is_one_line(tmp_path):
    res = _run("-m", "aslfr.train_demo", f"out_dir={tmp_path}", timeout=240)
    assert f"{tmp_path}/tfrecords/train" in _one_line_error(res)


@pytest.mark.parametrize("args, message", [
    (["--repeat", "0", "--data", "{file}/bench"], "--repeat must be >= 1, got 0"),
    (["--epochs", "0", "--data", "{file}/bench"], "--epochs must be >= 1, got 0"),
    (["--files", "1", "--readers-only"], "--files must be >= 2, got 1"),
    (["--tf-python", "python3"], "--tf-python and --ref-src go together"),
    (["--data", "{file}/bench"], "{file}/bench/four: Not a directory"),
])
def test_bench_bad_input_is_one_line(tmp_path, args, message):
    (tmp_path / "file").write_text("")  # --data under a regular file: no benchmark data can be generated
    args = [a.format(file=tmp_path / "file") for a in args]
    res = _run("-m", "aslfr.bench", *args, timeout=240)
    assert message.format(file=tmp_path / "file") in _one_line_error(res)


COMMANDS = ["convert", "merge", "verify", "inspect", "stats", "synthetic", "train-demo", "bench"]


def test_dispatcher_lists_every_command_once(capsys, monkeypatch):
    from aslfr.__main__ import main

    monkeypatch.setattr(sys, "argv", ["aslfr"])
    assert main(["--help"]) == 0
    listed = [ln.split()[0] for ln in capsys.readouterr().out.splitlines() if ln.startswith("  ")]
    assert listed == COMMANDS
    assert main([]) == 2 and "usage: aslfr <command>" in capsys.readouterr().err
    assert main(["nope"]) == 2
    assert capsys.readouterr().err == (f"aslfr: error: unknown command 'nope'; commands: {', '.join(COMMANDS)} "
                                       f"(aslfr --help)\n")


def test_dispatcher_runs_the_command_with_its_name(converted, capsys, monkeypatch):
    from aslfr.__main__ import main

    monkeypatch.setattr(sys, "argv", ["aslfr"])
    with pytest.raises(SystemExit) as e:
        main(["verify", "--help"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("usage: aslfr verify [-h] out_dir=PATH\n")
    assert main(["verify", f"out_dir={converted}"]) == 0
    assert sorted(ln.split(":")[0] for ln in capsys.readouterr().out.splitlines()) == \
        [str(converted / "tfrecords/sup"), str(converted / "tfrecords/train")]
    with pytest.raises(SystemExit) as e:
        main(["train_demo", "--steps", "0"])  # the alias of train-demo
    assert e.value.code == 1 and capsys.readouterr().err == "aslfr: error: --steps must be >= 1, got 0\n"


def _script() -> Path:
    script = Path(PY).with_name("aslfr")
    if not script.is_file():
        pytest.skip(f"no `aslfr` console script beside {PY}: pip install -e . into this interpreter's venv")
    return script


def test_console_script(converted, tmp_path):
    script = str(_script())
    res = subprocess.run([script, "--help"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert res.returncode == 0 and [ln.split()[0] for ln in res.stdout.splitlines() if ln.startswith("  ")] == COMMANDS
    res = subprocess.run([script, "nope"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert res.returncode == 2 and res.stderr.startswith("aslfr: error: unknown command 'nope'")
    for command, first in [("convert", "aslfr convert [key=value ...]"),
                           ("merge", "aslfr merge out_dir=PATH data_dir=PATH"),
                           ("inspect", "aslfr inspect out_dir=PATH"),
                           ("train-demo", "usage: aslfr train-demo [-h]"), ("stats", "usage: aslfr stats [-h]")]:
        res = subprocess.run([script, command, "--help"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
        assert res.returncode == 0 and res.stdout.startswith(first), (command, res.stdout[:200], res.stderr)
    res = subprocess.run([script, "inspect", str(converted)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert res.returncode == 0 and "lost EOS" in res.stdout, res.stderr
    res = subprocess.run([script, "verify", str(tmp_path)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert res.returncode == 1 and f"{tmp_path}: FAIL" in res.stdout
    assert list(tmp_path.iterdir()) == []


def test_defaults_are_stated_once_and_the_yaml_mirrors_them():
    """The notebook's fold count, fold seed and supplemental weight (its FLAGS: 4, 1229; 0.1 in its
    writer) live in aslfr.format.layout; every Settings default equals what conf/convert.yaml composes,
    and the library's other entry points default to the same."""
    import dataclasses
    import inspect

    from aslfr.convert.settings import Settings
    from aslfr.data.sequences import ParquetSequences
    from aslfr.format import layout
    from aslfr.source.metadata import load_metadata
    from conftest import compose_config

    assert (layout.FOLDS, layout.FOLD_SEED, layout.SUP_WEIGHT) == (4, 1229, 0.1)
    cfg = compose_config()
    defaults = {f.name: f.default for f in dataclasses.fields(Settings) if f.default is not dataclasses.MISSING}
    composed = {k: cfg.get(k) for k in defaults}
    composed["split"] = cfg.split.name
    assert composed == defaults
    assert (cfg.folds, cfg.fold_seed, cfg.sup_weight) == (4, 1229, 0.1)
    for fn, keys in ((load_metadata, ("folds", "fold_seed")), (ParquetSequences.__init__, ("folds", "fold_seed", "sup_weight"))):
        params = inspect.signature(fn).parameters
        assert {k: params[k].default for k in keys} == {k: defaults[k] for k in keys}, fn


def _yaml_comments(name: str = "convert") -> dict[str, tuple[str, str]]:
    """key -> (value, comment) from conf/{name}.yaml's top-level lines (and its `split` default)."""
    text = (ROOT / f"conf/{name}.yaml").read_text()
    return {m[0]: (m[1], m[2]) for m in re.findall(r"^(?:  - )?(\w+): (\S+) +# (.*)$", text, re.M)}


def _help_lines(command: str = "aslfr.convert") -> dict[str, str]:
    res = _run("-m", command, "--help")
    assert res.returncode == 0, res.stderr
    return dict(re.findall(r"^  (\w+)=\S*   (.*)$", res.stdout, re.M))


def test_merge_keys_are_described_alike_in_yaml_and_help():
    yaml, help_ = _yaml_comments("merge"), _help_lines("aslfr.merge")
    assert set(yaml) == set(help_) == {"out_dir", "data_dir", "split", "folds", "storage_options", "progress"}
    assert {k: v[1] for k, v in yaml.items()} == help_


def _readme_rows() -> dict[str, tuple[str, str]]:
    """key -> (default, description) from the README's table of converter keys (backticks dropped)."""
    text = (ROOT / "README.md").read_text()
    table = text[text.index("| key | default | |"):].split("\n\n")[0]
    rows = [re.split(r"(?<!\\)\|", row)[1:-1] for row in table.splitlines()[2:]]
    return {key.strip(" `+="): (default.strip(" `"), desc.strip().replace("`", "").replace("\\|", "|"))
            for key, default, desc in rows}


def test_converter_keys_are_described_alike_in_yaml_help_and_readme():
    from aslfr.convert.settings import Settings

    keys = set(Settings.__dataclass_fields__)
    yaml, help_, readme = _yaml_comments(), _help_lines(), _readme_rows()
    assert set(yaml) == set(help_) == set(readme) == keys
    for key in sorted(keys):
        assert yaml[key][1] == help_[key] == readme[key][1], key
        assert readme[key][0] == yaml[key][0], key  # the README's default column
