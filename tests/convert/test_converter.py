"""The converter against the reference notebook's own code: file names, record order and every
feature; determinism over worker counts; +fold jobs whose union equals one full run."""

from __future__ import annotations

import subprocess
import sys

import crc32c
import numpy as np
import pytest

from compare import assert_same_records, records, tfrec_names
from conftest import ROOT, convert, tree_bytes


@pytest.mark.parametrize("split,sub", [("train", "train"), ("supplemental", "sup")])
def test_records_equal_reference_notebook(converted, reference_out, split, sub):
    n = assert_same_records(converted / "tfrecords" / sub, reference_out / "tfrecords" / sub)
    assert n == (48 if split == "train" else 24)


def test_inference_args_bytes_equal_reference(converted, reference_out):
    assert (converted / "inference_args.json").read_bytes() == (reference_out / "inference_args.json").read_bytes()


def test_names_folds_and_weights(converted):
    for sub, weight in (("train", 1.0), ("sup", np.float32(0.1))):
        names = tfrec_names(converted / "tfrecords" / sub)
        assert names and all(n.count(".") == 2 for n in names)
        for name in names:
            number, count, _ = name.split(".")
            recs = records(converted / "tfrecords" / sub / name)
            assert len(recs) == int(count)
            assert {r["fold"][1][0] for r in recs} == {int(number) % 4}
            assert all(r["weight"][1].view("<f4")[0] == np.float32(weight) for r in recs)
            assert all(len(r) == 19 for r in recs)


def test_long_phrase_loses_eos_by_default(converted):
    recs = [r for n in tfrec_names(converted / "tfrecords/sup") for r in records(converted / "tfrecords/sup" / n)]
    by_phrase = {r["phrase"][1][0].decode(): r["phrase_"][1] for r in recs}
    assert by_phrase["coming up with killer sound bit"][-1] == 60  # 31 chars + EOS fits
    assert 60 not in by_phrase["coming up with killer sound bite"]  # 32 chars: EOS cut, as the reference does
    assert len(by_phrase["knee bone is connected to the thigh bone"]) == 32


def test_eos_always_option(small_data, tmp_path):
    convert(small_data, tmp_path, "split=supplemental", "eos_always=true", "num_workers=0")
    recs = [r for n in tfrec_names(tmp_path / "tfrecords/sup") for r in records(tmp_path / "tfrecords/sup" / n)]
    for r in recs:
        toks = r["phrase_"][1]
        assert len(toks) == 32 and 60 in toks


@pytest.mark.parametrize("workers", [0, 1])
def test_bytes_identical_for_any_worker_count(small_data, converted, tmp_path, workers):
    convert(small_data, tmp_path, f"num_workers={workers}")
    assert tree_bytes(tmp_path / "tfrecords/train") == tree_bytes(converted / "tfrecords/train")


def test_fold_jobs_union_equals_full_run(small_data, converted, tmp_path):
    from aslfr.commands.convert import settings_from_config
    from aslfr.convert.merge import merge_all
    from conftest import compose_config

    for fold in range(4):
        r = convert(small_data, tmp_path, f"+fold={fold}", "num_workers=0", finalize=False)
        assert set(r["records_per_fold"]) == {fold}
        assert all(int(p.name.split(".")[0]) % 4 <= fold for p in (tmp_path / "tfrecords/train").glob("*.tfrec"))
    assert not (tmp_path / "tfrecords/train/manifest.json").exists()
    merge_all(settings_from_config(compose_config(f"data_dir={small_data}", f"out_dir={tmp_path}")))
    assert tree_bytes(tmp_path / "tfrecords/train") == tree_bytes(converted / "tfrecords/train")


def test_fold_list_override(small_data, tmp_path):
    r = convert(small_data, tmp_path, "+fold=[1,3]", "num_workers=0")
    assert set(r["records_per_fold"]) == {1, 3}
    assert {int(p.name.split(".")[0]) % 4 for p in (tmp_path / "tfrecords/train").glob("*.tfrec")} == {1, 3}


def test_cli_multirun_sweep_leaves_cwd_clean(small_data, converted, tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "aslfr.convert", "-m", "+fold=0,1,2,3", f"data_dir={small_data}",
                          f"out_dir={out}", "num_workers=0", "progress=false"], cwd=cwd, capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    assert list(cwd.iterdir()) == []
    assert "manifest.json" in res.stdout
    assert tree_bytes(out / "tfrecords/train") == tree_bytes(converted / "tfrecords/train")


def test_cli_single_run(small_data, tmp_path):
    res = subprocess.run([sys.executable, "-m", "aslfr.convert", f"data_dir={small_data}", f"out_dir={tmp_path}/o",
                          "num_workers=2", "progress=false"], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "train: 48 records" in res.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]


def test_manifest_and_summary(converted):
    import json

    m = json.loads((converted / "tfrecords/train/manifest.json").read_text())
    assert m["records"] == 48 and sum(m["records_per_fold"].values()) == 48
    names = tfrec_names(converted / "tfrecords/train")
    assert sorted(s["name"] for s in m["shards"]) == names
    for s in m["shards"]:
        data = (converted / "tfrecords/train" / s["name"]).read_bytes()
        assert len(data) == s["bytes"]
        assert s["crc32c"] == f"{crc32c.crc32c(data):08x}"  # recomputed over the whole file
        index = (converted / "tfrecords/train" / s["name"].replace(".tfrec", ".tfindex")).read_bytes()
        assert (s["index_bytes"], s["index_crc32c"]) == (len(index), f"{crc32c.crc32c(index):08x}")
        assert s["records"] == int(s["name"].split(".")[1]) and s["fold"] == int(s["name"].split(".")[0]) % 4
    assert m["config"]["fold_seed"] == 1229 and m["config"]["folds"] == 4


def test_index_files_beside_shards(converted):
    from tfrecord.reader import tfrecord_loader

    d = converted / "tfrecords/train"
    for name in tfrec_names(d):
        idx = d / name.replace(".tfrec", ".tfindex")
        lines = idx.read_text().split("\n")[:-1]
        assert len(lines) == int(name.split(".")[1])
        if len(lines) < 2:  # tfrecord's np.loadtxt(index)[:, 0] fails on a one-line index (its bug)
            continue
        # the tfrecord package shards files through these indexes
        got = list(tfrecord_loader(str(d / name), str(idx), {"sequence_id": "int"}, shard=(1, 2)))
        assert len(got) == len(lines) - len(lines) // 2
    # the index is offsets and framed sizes back to back, ending at the shard's size
    for name in tfrec_names(d):
        pairs = [tuple(map(int, line.split())) for line in (d / name.replace(".tfrec", ".tfindex")).read_text().splitlines()]
        assert [o for o, _ in pairs] == [0] + list(np.cumsum([n for _, n in pairs])[:-1])
        assert sum(n for _, n in pairs) == (d / name).stat().st_size
    assert sorted(p.name for p in d.glob("*.tfindex")) == sorted(n.replace(".tfrec", ".tfindex") for n in tfrec_names(d))


def _records(records_dir) -> dict[str, list[dict]]:
    """Shard name -> its records, parsed with the `tfrecord` package's protobufs (not aslfr's decoder)."""
    from compare import records

    return {p.name: records(p) for p in sorted(records_dir.glob("*.tfrec"))}


def _value(rec, key):
    return rec[key][1][0]


@pytest.fixture
def one_file(tmp_path):
    """One parquet file of 24 sequences (so shards of several records), 6 participants."""
    from aslfr.source.synthetic import SplitSpec, generate

    return generate(tmp_path / "data", SplitSpec(1, 24, 4, 6), SplitSpec(1, 8, 4, 4), seed=11)


def test_sup_weight_is_written_to_sup_records_only(one_file, tmp_path):
    import numpy as np

    from conftest import convert

    out = tmp_path / "out"
    for split in ("train", "supplemental"):
        convert(one_file, out, "num_workers=0", f"split={split}", "sup_weight=0.35")
    bits = {name: {int(_value(r, "weight")) for r in recs} for name, recs in _records(out / "tfrecords/sup").items()}
    assert bits and set().union(*bits.values()) == {int(np.float32(0.35).view(np.uint32))}
    train = [r for recs in _records(out / "tfrecords/train").values() for r in recs]
    assert len(train) == 24 and {int(_value(r, "weight")) for r in train} == {int(np.float32(1.0).view(np.uint32))}


def _notebook_order(nb, tmp_path, n: int, buffer: int, seed: int) -> list[int]:
    """The order in which the reference notebook's own TfrecordsWriter emits n records."""
    from types import SimpleNamespace

    w = nb["TfrecordsWriter"](str(tmp_path / "order.tfrec"), buffer_size=buffer, shuffle=True, seed=seed)
    got: list[int] = []
    w.writer = SimpleNamespace(write=got.append)
    for i in range(n):
        w.write_example(SimpleNamespace(SerializeToString=lambda i=i: i))
    w.close()
    return got


@pytest.mark.parametrize("buffer,seed", [(3, 5), (0, 5), (1000, 1024)])
def test_shuffle_settings_give_the_notebook_writer_order(one_file, tmp_path, notebook, buffer, seed):
    """Within a shard, records come in the order the notebook's writer gives the file's sequences of
    that fold (parquet order) with that buffer and seed; buffer 0 keeps the parquet order."""
    import pandas as pd

    from conftest import convert

    out = tmp_path / f"out{buffer}"
    convert(one_file, out, "num_workers=0", "folds=2", f"shuffle_buffer={buffer}", f"shuffle_seed={seed}")
    (parquet,) = pd.read_csv(one_file / "train.csv").path.unique()
    position = {sid: k for k, sid in enumerate(pd.read_parquet(one_file / parquet).index.unique())}
    shuffled = False
    for name, recs in _records(out / "tfrecords/train").items():
        got = [_value(r, "sequence_id") for r in recs]
        in_parquet_order = sorted(got, key=position.__getitem__)
        assert len(got) >= 7
        want = [in_parquet_order[j] for j in _notebook_order(notebook, tmp_path, len(got), buffer, seed)]
        assert got == want, name
        shuffled |= got != in_parquet_order
    assert shuffled == (buffer != 0)


def test_fold_seed_gives_sklearns_folds(tmp_path, notebook):
    """Folds equal sklearn's StratifiedGroupKFold(4, shuffle, random_state=fold_seed) over the CSV, grouped
    by participant and stratified by the notebook's phrase types; another seed gives other folds."""
    import numpy as np
    import pandas as pd
    from sklearn.model_selection import StratifiedGroupKFold

    from aslfr.source.synthetic import SplitSpec, generate
    from conftest import convert

    data = generate(tmp_path / "data", SplitSpec(2, 16, 4, 9), SplitSpec(1, 4, 4, 4), seed=5)
    csv = pd.read_csv(data / "train.csv", keep_default_na=False)
    types = [notebook["get_phrase_type"](p) for p in csv.phrase]

    def sklearn_folds(seed):
        folds = np.zeros(len(csv), dtype=int)
        skf = StratifiedGroupKFold(n_splits=4, random_state=seed, shuffle=True)
        for i, (_, val) in enumerate(skf.split(csv, types, csv.participant_id)):
            folds[val] = i
        return dict(zip(csv.sequence_id.tolist(), folds.tolist()))

    want = sklearn_folds(7)
    assert want != sklearn_folds(1229)  # the setting matters on this data
    convert(data, tmp_path / "out", "num_workers=0", "fold_seed=7")
    got = {}
    for name, recs in _records(tmp_path / "out/tfrecords/train").items():
        for r in recs:
            got[_value(r, "sequence_id")] = _value(r, "fold")
            assert int(name.split(".")[0]) % 4 == _value(r, "fold")  # shard number = file * folds + fold
    assert got == want


@pytest.mark.parametrize("verify", [True, False])
def test_verify_resumed_rewrites_a_same_size_corrupted_shard(one_file, tmp_path, verify):
    """A kept shard whose bytes changed at the same size: rewritten with verify_resumed=true, kept
    (still the corrupted bytes) with false. Judged by content."""
    from conftest import convert

    out = tmp_path / "out"
    convert(one_file, out, "num_workers=0")
    shard = sorted((out / "tfrecords/train").glob("*.tfrec"))[1]
    good = shard.read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF
    shard.write_bytes(bytes(bad))
    others = {p: p.read_bytes() for p in (out / "tfrecords/train").glob("*.tfrec") if p != shard}
    r = convert(one_file, out, "num_workers=0", f"verify_resumed={str(verify).lower()}")
    assert shard.read_bytes() == (good if verify else bytes(bad))
    assert r["shards_written"] == (1 if verify else 0)
    assert all(p.read_bytes() == b for p, b in others.items())
