"""pad_collate and pack_collate: items that disagree are refused with one line naming the field;
items that agree batch normally (frames padded in place, the rest stacked)."""

from __future__ import annotations
import pytest
import torch
from aslfr.data.collate import pack_collate, pad_collate


def _item(t=5, cols=384, **kw):
    item = {"frames": torch.rand(t, cols), "phrase_": torch.full((32,), 7), "sequence_id": torch.tensor(t),
            "phrase_type": "address"}
    item.update(kw)
    return item


def _without_phrase(t):
    item = _item(t)
    del item["phrase_"]
    return item


MISMATCHED = {  # items -> the error after the function's name
    "none": ([], "no items to batch"),
    "one column": ([_item(), _item(3), _item(frames=torch.rand(4, 1))],
                   "item 2 has 'frames' of shape (4, 1), item 0 of shape (5, 384) (only the length T may differ)"),
    "100 columns": ([_item(), _item(3), _item(frames=torch.rand(4, 100))],
                    "item 2 has 'frames' of shape (4, 100), item 0 of shape (5, 384) (only the length T may differ)"),
    "1-d": ([_item(), _item(3), _item(frames=torch.rand(384))],
            "item 2 has 'frames' of shape (384,), item 0 of shape (5, 384) (only the length T may differ)"),
    "3-d": ([_item(), _item(frames=torch.rand(4, 384, 1))],
            "item 1 has 'frames' of shape (4, 384, 1), item 0 of shape (5, 384) (only the length T may differ)"),
    "missing key": ([_item(), _without_phrase(4)], "item 1 has no 'phrase_', which item 0 has"),
    "extra key": ([_item(), _item(4, extra=torch.tensor(1))], "item 1 has 'extra', which item 0 has not"),
    "other shape": ([_item(), _item(4, phrase_=torch.zeros(31, dtype=torch.int64))],
                    "item 1 has 'phrase_' of shape (31,), item 0 of shape (32,)"),
    "no frames": ([{"phrase_": torch.zeros(32)}], "item 0 has no 'frames'"),
    "scalar frames": ([_item(frames=torch.tensor(1.0))], "item 0 has 'frames' of shape (), not [T, ...]"),
}


@pytest.mark.parametrize("case", MISMATCHED)
@pytest.mark.parametrize("collate", [pad_collate, pack_collate])
def test_collate_refuses_mismatched_items(collate, case):
    items, message = MISMATCHED[case]
    with pytest.raises(ValueError) as e:
        collate(items)
    assert str(e.value) == f"{collate.__name__}: {message}"


def test_collate_of_good_items_unchanged():
    """Items that agree batch normally: frames padded in place, the rest stacked."""
    items = [_item(5), _item(3)]
    b = pad_collate(items)
    assert b["frames"].shape == (2, 5, 384) and b["lengths"].tolist() == [5, 3]
    assert torch.equal(b["frames"][1, :3], items[1]["frames"]) and not b["frames"][1, 3:].any()
    assert b["sequence_id"].tolist() == [5, 3] and b["phrase_type"] == ["address", "address"]
    p = pack_collate(items)
    assert torch.equal(p["frames"], torch.cat([items[0]["frames"], items[1]["frames"]]))
