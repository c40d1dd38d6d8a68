"""The parquet Dataset: the reference's grouping (first-appearance order, every row of an id, even
when split), only the selected columns read, typed torch items usable in a DataLoader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader

from aslfr.data.sequences import ParquetSequences
from aslfr.source.landmarks import group_rows, read_landmarks
from aslfr.format.vocab import SELECTED_COLUMNS


def test_grouping_equals_reference_scan(small_data):
    for path in sorted((small_data / "train_landmarks").glob("*.parquet")):
        df = pd.read_parquet(path, columns=SELECTED_COLUMNS)
        lm = read_landmarks(str(path))
        assert lm.sequence_ids.tolist() == df.index.unique().tolist()
        for k, sid in enumerate(lm.sequence_ids.tolist()):
            expected = df[df.index == sid].values  # the notebook's scan
            got = lm.frames(k)
            assert got.dtype == np.float32 and got.flags.c_contiguous
            assert np.array_equal(got, expected, equal_nan=True)


def test_split_sequence_is_grouped_whole(small_data):
    """A sequence whose rows are split around a neighbour comes out whole, in file order, as the
    reference's `df[df.index == seq_id]` gives it."""
    path = sorted((small_data / "train_landmarks").glob("*.parquet"))[0]
    df = pd.read_parquet(path)
    ids = df.index.to_numpy()
    runs = ids[np.r_[True, ids[1:] != ids[:-1]]]
    split_ids = [s for s in set(runs.tolist()) if (runs == s).sum() > 1]
    assert split_ids  # the generator splits one sequence's rows
    lm = read_landmarks(str(path))
    assert lm.sequence_ids.tolist() == list(dict.fromkeys(ids.tolist()))  # df.index.unique() order
    for sid in split_ids + [int(runs[0])]:
        k = lm.sequence_ids.tolist().index(sid)
        expected = df[df.index == sid][SELECTED_COLUMNS].to_numpy(np.float32)
        assert np.array_equal(lm.frames(k), expected, equal_nan=True)


def test_group_rows_non_contiguous():
    ids = np.array([5, 5, 9, 1, 5, 9, 9, 1], dtype=np.int64)
    uniq, bounds, rows = group_rows(ids)
    assert uniq.tolist() == [5, 9, 1]
    groups = [rows[bounds[k]:bounds[k + 1]].tolist() for k in range(3)]
    assert groups == [[0, 1, 4], [2, 5, 6], [3, 7]]
    uniq, bounds, rows = group_rows(np.array([3, 3, 1, 2, 2]))
    assert rows is None and uniq.tolist() == [3, 1, 2] and bounds.tolist() == [0, 2, 3, 5]


def test_reads_only_selected_columns(small_data, monkeypatch):
    asked = []
    real = pq.ParquetFile.read

    def spy(self, columns=None, **kw):
        asked.append(list(columns))
        return real(self, columns=columns, **kw)

    monkeypatch.setattr(pq.ParquetFile, "read", spy)
    read_landmarks(str(sorted((small_data / "train_landmarks").glob("*.parquet"))[0]))
    cols = [c for call in asked for c in call]
    assert set(cols) == set(SELECTED_COLUMNS) | {"sequence_id"}
    assert len(cols) == len(SELECTED_COLUMNS) + 1


def test_dataset_items(small_data):
    ds = ParquetSequences(small_data, "train")
    assert len(ds) == 48
    item = ds[0]
    assert item["frames"].dtype == torch.float32 and item["frames"].shape[1] == 384
    assert item["frames"].shape[0] == int(item["n_frames"])
    assert item["sequence_id"].dtype == torch.int64 and isinstance(item["phrase"], str)
    assert item["phrase_"].shape == (32,) and item["cls_label"].shape == (59,)
    csv = pd.read_csv(small_data / "train.csv")
    assert set(int(ds[i]["sequence_id"]) for i in range(len(ds))) == set(csv.sequence_id)


def test_dataset_in_dataloader_workers(small_data):
    ds = ParquetSequences(small_data, "supplemental")
    loader = DataLoader(ds, batch_size=None, num_workers=2)
    got = sorted(int(x["sequence_id"]) for x in loader)
    assert got == sorted(pd.read_csv(small_data / "supplemental_metadata.csv").sequence_id.tolist())
    assert all(float(ds[i]["weight"]) == np.float32(0.1) for i in range(3))
