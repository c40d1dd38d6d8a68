"""Reading back: round trip equals the parquet Dataset, exactly-once sharding over workers × ranks,
seeded shuffling, fold selection, random access, statistics, transforms and batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import aslfr
from compare import same_items
from conftest import convert
from aslfr.data.datasets import TFRecordIndexed, TFRecordShards, fold_files, fold_of
from aslfr.convert.stats import from_records
from aslfr.data.transforms.frame import FrameTransform, n_cols
from aslfr.format.manifest import ManifestError


@pytest.mark.parametrize("split,sub", [("train", "train"), ("supplemental", "sup")])
def test_round_trip_equals_parquet_dataset(small_data, converted, split, sub):
    parquet = {int(it["sequence_id"]): it for it in aslfr.ParquetSequences(small_data, split)}
    read = list(TFRecordShards(converted / "tfrecords" / sub))
    assert len(read) == len(parquet)
    for item in read:
        same_items(item, parquet[int(item["sequence_id"])])
    assert read[0]["frames"].dtype == torch.float32 and read[0]["frames"].shape[1] == 384
    assert read[0]["phrase_"].dtype == torch.int64 and isinstance(read[0]["phrase_type"], str)


# 4 workers on a 2-core CI machine is the point (more readers than cores); torch's advice is not.
@pytest.mark.filterwarnings("ignore:This DataLoader will create 4 worker processes:UserWarning")
@pytest.mark.parametrize("workers", [0, 2, 4])
@pytest.mark.parametrize("world", [1, 2])
def test_each_record_exactly_once(converted, workers, world):
    d = converted / "tfrecords/train"
    seen = []
    for rank in range(world):
        ds = TFRecordShards(d, shuffle=True, seed=3, shuffle_buffer=4, rank=rank, world_size=world)
        loader = DataLoader(ds, batch_size=None, num_workers=workers)
        seen += [int(x["sequence_id"]) for x in loader]
    assert len(seen) == len(set(seen)) == len(ds) == 48


def test_seeded_shuffle_and_epochs(converted):
    d = converted / "tfrecords/train"
    order = lambda ds: [int(x["sequence_id"]) for x in ds]  # noqa: E731
    plain = order(TFRecordShards(d))
    a, b = TFRecordShards(d, shuffle=True, seed=1), TFRecordShards(d, shuffle=True, seed=1)
    first = order(a)
    assert first == order(b) and first != plain and sorted(first) == sorted(plain)
    a.set_epoch(1)
    assert order(a) != first and sorted(order(a)) == sorted(plain)


def _reference_fold(path) -> int:
    """The reference training's rule: fold == int(basename.split('.')[0]) % folds."""
    return int(path.name.split(".")[0])


@pytest.mark.parametrize("folds", [4, 5])
def test_fold_selection_as_reference(small_data, converted, tmp_path, folds):
    if folds == 4:
        out = converted
    else:
        out = tmp_path
        convert(small_data, out, f"folds={folds}", "num_workers=0")
        convert(small_data, out, f"folds={folds}", "num_workers=0", "split=supplemental")
    d, sup = out / "tfrecords/train", out / "tfrecords/sup"
    every = sorted(d.glob("*.tfrec"))
    for valid_fold in range(folds):
        train, valid = fold_files(d, valid_fold=valid_fold)  # the fold count comes from the manifest
        assert sorted(valid) == sorted(p for p in every if _reference_fold(p) % folds == valid_fold)
        assert sorted(train + valid) == every
        assert {int(x["fold"]) for x in TFRecordShards(valid, torch_values=False)} == {valid_fold}
        assert valid_fold not in {int(x["fold"]) for x in TFRecordShards(train, torch_values=False)}
        assert all(fold_of(f) == valid_fold for f in valid)
    online, valid2 = fold_files(d, valid_fold=1, online=True)
    assert sorted(online) == every and valid2 == fold_files(d, valid_fold=1)[1]
    mixed, valid3 = fold_files(d, valid_fold=1, sup_dir=sup)
    assert valid3 == valid2 and len(mixed) == len(fold_files(d, valid_fold=1)[0]) + len(list(sup.glob("*.tfrec")))
    weights = {float(x["weight"]) for x in TFRecordShards(mixed)}
    assert weights == {1.0, float(np.float32(0.1))}
    assert all(float(x["weight"]) == 1.0 for x in TFRecordShards(valid3))
    other = 9 - folds  # 5 or 4: disagrees with the manifest
    with pytest.raises(ValueError, match=f"folds={other} given, but its manifest.json says .* {folds} folds"):
        fold_files(d, valid_fold=0, folds=other)


def test_map_style_random_access(converted):
    d = converted / "tfrecords/train"
    ds = TFRecordIndexed(d)
    stream = list(TFRecordShards(d))
    assert len(ds) == len(stream) == 48
    for i in (0, 17, 47):
        same_items(ds[i], stream[i])


def test_statistics_equal_two_pass_numpy(converted):
    d = converted / "tfrecords/train"
    frames = np.concatenate([x["frames"].numpy() for x in TFRecordShards(d)])
    means, stds = aslfr.load_stats(d)
    assert means.shape == stds.shape == (384,) and means.dtype == np.float32
    for j in range(384):
        v = frames[:, j][~np.isnan(frames[:, j])]
        std = v.std() if v.std() >= 1e-6 else 1.0
        assert np.isclose(means[j], v.mean(), rtol=1e-5, atol=1e-7), j
        assert np.isclose(stds[j], std, rtol=1e-5, atol=1e-7), j
    m2, s2 = from_records(sorted(d.glob('*.tfrec'))).means_stds()
    assert np.allclose(m2, means, rtol=1e-6) and np.allclose(s2, stds, rtol=1e-6)


@pytest.mark.parametrize("concat,add_pos,use_z,width", [
    (True, True, True, 769), (True, True, False, 513), (True, False, True, 768), (True, False, False, 512),
    (False, True, True, 385), (False, True, False, 257), (False, False, True, 384), (False, False, False, 256)])
def test_output_width_table(notebook, concat, add_pos, use_z, width):
    flags = notebook["FLAGS"]
    saved = (flags.concat_frames, flags.add_pos, flags.norm_frames)
    flags.concat_frames, flags.add_pos, flags.norm_frames = concat, add_pos, True
    try:
        reference = notebook["get_n_cols"](use_z=use_z)  # the notebook's own function
    finally:
        flags.concat_frames, flags.add_pos, flags.norm_frames = saved
    assert n_cols(concat, add_pos, use_z) == reference == width
    t = FrameTransform(np.zeros(384), np.ones(384), concat_frames=concat, add_pos=add_pos, use_z=use_z)
    assert t(torch.zeros(5, 384)).shape == (5, width)


def test_transform_values_by_hand():
    x = torch.full((3, 384), 2.0)
    x[1, 0] = float("nan")
    means, stds = np.full(384, 1.0, np.float32), np.full(384, 4.0, np.float32)
    y = FrameTransform(means, stds)(x)
    assert y.shape == (3, 769)
    assert y[0, 0] == 2.0 and y[0, 384] == 0.25  # raw then (2 - 1) / 4
    assert y[1, 0] == 0.0 and y[1, 384] == 0.0  # NaN -> 0 after normalizing
    assert torch.allclose(y[:, -1], torch.tensor([0.0, 0.001, 0.002]))
    xy = FrameTransform(means, stds, use_z=False)(x)
    assert xy.shape == (3, 513) and xy[0, 2] == 2.0 and xy[0, 256] == 0.25 and xy[2, -1] == pytest.approx(0.002)
    padded = FrameTransform(means, stds, max_frames=5)({"frames": x, "n_frames": torch.tensor(3)})
    assert padded["frames"].shape == (5, 769) and padded["frames"][3:].abs().sum() == 0
    ramp = torch.arange(8, dtype=torch.float32)[:, None].repeat(1, 384)
    r = FrameTransform(norm_frames=False, concat_frames=False, add_pos=False, max_frames=4)(ramp)
    assert torch.allclose(r[:, 0], torch.tensor([0.5, 2.5, 4.5, 6.5]))  # bilinear, half-pixel centres


def test_pad_collate(converted):
    items = list(TFRecordShards(converted / "tfrecords/train"))[:4]
    b = aslfr.pad_collate(items)
    t = max(int(i["n_frames"]) for i in items)
    assert b["frames"].shape == (4, t, 384) and b["mask"].shape == (4, t)
    assert b["lengths"].tolist() == [int(i["n_frames"]) for i in items]
    assert b["mask"].sum().item() == sum(int(i["n_frames"]) for i in items)
    assert b["phrase_"].shape == (4, 32) and b["target_lengths"].tolist() == [int((i["phrase_"] != 0).sum()) for i in items]
    assert isinstance(b["phrase"], list)


def test_public_api(converted, small_data, tmp_path):
    """Every name in aslfr.__all__, used."""
    assert all(getattr(aslfr, name).__doc__ for name in aslfr.__all__ if name != "SCHEMA")
    d = converted / "tfrecords/train"
    assert len(aslfr.SCHEMA) == 19 and aslfr.SCHEMA["frames"].shape == (-1, 384)
    train, valid = aslfr.fold_files(d, valid_fold=0)
    shards = aslfr.TFRecordShards(train, torch_values=False)
    indexed = aslfr.TFRecordIndexed(train, torch_values=False)
    first = next(aslfr.read_shard(train[0]))
    assert first["sequence_id"] == next(iter(shards))["sequence_id"] == indexed[0]["sequence_id"]
    assert len(shards) == len(indexed) == sum(int(p.name.split(".")[1]) for p in train)
    means, stds = aslfr.load_stats(d)
    t = aslfr.FrameTransform(means, stds, max_frames=16)
    batch = aslfr.pad_collate([t(aslfr.TFRecordIndexed(valid)[i]) for i in range(2)])
    assert batch["frames"].shape == (2, 16, aslfr.n_cols()) and aslfr.n_cols() == 769
    seqs = aslfr.ParquetSequences(small_data, "train")
    by_id = {r["sequence_id"]: r for r in aslfr.read_shard(valid[0])}
    item = next(seqs[i] for i in range(len(seqs)) if int(seqs[i]["sequence_id"]) in by_id)
    assert np.array_equal(item["frames"].numpy(), by_id[int(item["sequence_id"])]["frames"], equal_nan=True)
    root = aslfr.generate_synthetic(tmp_path / "syn", aslfr.source.synthetic.SplitSpec(1, 3, 4, 1), None, seed=1)
    assert (root / "train.csv").read_text().count("\n") == 4


def _rank_main(rank, world, records, rendezvous, out):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world)
    ds = TFRecordShards(records, shuffle=True, seed=5)
    ids = [int(x["sequence_id"]) for x in DataLoader(ds, batch_size=None, num_workers=2)]
    (out / f"rank{rank}.txt").write_text(" ".join(map(str, ids)))
    dist.destroy_process_group()


def test_exactly_once_with_real_torch_distributed(converted, tmp_path):
    import torch.multiprocessing as mp

    # a file rendezvous: no port to pick and lose to another process
    mp.spawn(_rank_main, args=(2, converted / "tfrecords/train", tmp_path / "rendezvous", tmp_path), nprocs=2)
    ids = [int(x) for r in range(2) for x in (tmp_path / f"rank{r}.txt").read_text().split()]
    assert len(ids) == len(set(ids)) == 48


def test_train_demo_loss_falls(converted, capsys):
    from aslfr import train_demo

    train_demo.main([str(converted), "--steps", "12", "--workers", "0"])
    out = capsys.readouterr().out
    assert "training path: 769 columns x 320 frames" in out and "valid CTC NLL" in out and "(inference path, fold 0)" in out
    losses = [float(line.split()[-1]) for line in out.splitlines() if line.startswith("epoch")]
    assert len(losses) >= 2 and losses[-1] < losses[0]


@pytest.fixture
def no_torchrun(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)


@pytest.mark.parametrize("kw,message", [
    ({"rank": 2, "world_size": 2}, "rank must be in 0..world_size-1, got rank=2 world_size=2"),
    ({"rank": -1, "world_size": 2}, "rank must be in 0..world_size-1, got rank=-1 world_size=2"),
    ({"rank": 0, "world_size": 0}, "world_size must be >= 1, got rank=0 world_size=0"),
    ({"rank": 1}, "rank=1 given without world_size="),
    ({"world_size": 2}, "world_size=2 given without rank="),
])
def test_bad_rank_arguments(converted, no_torchrun, kw, message):
    with pytest.raises(ValueError, match=message):
        TFRecordShards(converted / "tfrecords/train", **kw)


@pytest.mark.parametrize("rank,world,message", [
    ("3", "2", "RANK must be in 0..WORLD_SIZE-1, got RANK=3 WORLD_SIZE=2 in the environment"),
    ("0", "0", "WORLD_SIZE must be >= 1, got RANK=0 WORLD_SIZE=0 in the environment"),
    ("x", "2", "RANK and WORLD_SIZE must be integers, got RANK=x WORLD_SIZE=2 in the environment"),
])
def test_bad_rank_environment(converted, monkeypatch, rank, world, message):
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("WORLD_SIZE", world)
    with pytest.raises(ValueError, match=message):
        TFRecordShards(converted / "tfrecords/train")


def test_rank_argument_completed_by_environment(converted, monkeypatch):
    """A rank given alone takes the world size from torchrun's environment (and the reverse)."""
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "3")
    d = converted / "tfrecords/train"
    shares = [[int(x["sequence_id"]) for x in TFRecordShards(d, rank=r, torch_values=False)] for r in range(3)]
    assert (TFRecordShards(d, world_size=4).rank, TFRecordShards(d, world_size=4).world_size) == (0, 4)
    assert [len(s) for s in shares] == [16, 16, 16]  # 48 records, a third each
    assert len({i for s in shares for i in s}) == 48


def _duplicate_message(first, again):
    also = "" if str(first) == str(again) else f" (also as {first})"
    return f"{again}: shard given twice{also}; each shard may be read once"


def test_duplicate_shards_refused(converted, tmp_path):
    d = converted / "tfrecords/train"
    first = sorted(d.glob("*.tfrec"), key=lambda p: int(p.name.split(".")[0]))[0]  # the manifest's first
    link = tmp_path / "link"
    link.symlink_to(d)
    for paths, again, earlier in [([d, d], first, first), ([d, first], first, first),
                                  ([str(first), d], first, first), ([d, link], link / first.name, first)]:
        for reader in (TFRecordShards, TFRecordIndexed):
            with pytest.raises(ManifestError) as e:
                reader(paths)
            assert str(e.value) == _duplicate_message(earlier, again)


def test_fold_files_refuses_sup_dir_equal_to_records_dir(converted):
    d = converted / "tfrecords/train"
    first = sorted(d.glob("*.tfrec"), key=lambda p: int(p.name.split(".")[0]))[0]
    with pytest.raises(ManifestError) as e:
        fold_files(d, sup_dir=d)
    assert str(e.value) == _duplicate_message(first, first)
    train, valid = fold_files(d, sup_dir=converted / "tfrecords/sup")  # distinct folders still work
    assert len(set(train)) == len(train) and not set(train) & set(valid)


def test_indexed_reader_indices(converted):
    d = converted / "tfrecords/train"
    ds = TFRecordIndexed(d, torch_values=False)
    order = [int(x["sequence_id"]) for x in TFRecordShards(d, torch_values=False)]  # the streaming reader
    assert len(ds) == len(order) == 48
    assert [int(ds[i]["sequence_id"]) for i in (0, 47, -1, -48, np.int64(5), torch.tensor(6))] == \
        [order[0], order[47], order[-1], order[0], order[5], order[6]]
    for bad in (48, -49):
        with pytest.raises(IndexError) as e:
            ds[bad]
        assert str(e.value) == f"record {bad} out of range: 48 records"
    for bad, kind in ((slice(1, 3), "slice"), (1.0, "float"), ("3", "str")):
        with pytest.raises(TypeError) as e:
            ds[bad]
        assert str(e.value) == f"TFRecordIndexed indices must be integers, not {kind} " \
            "(for a range of records use torch.utils.data.Subset)"


def test_reader_refuses_negative_shuffle_buffer(converted):
    with pytest.raises(ValueError) as e:
        TFRecordShards(converted / "tfrecords/train", shuffle=True, shuffle_buffer=-1)
    assert str(e.value) == "shuffle_buffer must be >= 0 (0: no record buffer), got -1"
