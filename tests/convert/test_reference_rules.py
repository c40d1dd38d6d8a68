"""Unit rules checked against the reference notebook's own functions (extracted from its source
and run with the TensorFlow stand-in): buffered shuffle order, feature typing quirks, folds,
phrase_dup, idx and phrase types."""

from __future__ import annotations

import types

import numpy as np
import pandas as pd
import pytest

from aslfr.format import vocab
from aslfr.source import metadata
from aslfr.format.schema import reference_bytes_feature
from aslfr.convert.shards import reference_order


@pytest.fixture(scope="module")
def nb(notebook):
    return notebook


@pytest.mark.parametrize("n,buffer", [(1, 1000), (7, 1000), (1000, 1000), (2500, 1000), (10, 3), (5, 0)])
def test_shuffle_order_equals_reference_writer(nb, tmp_path, n, buffer):
    writer = nb["TfrecordsWriter"](str(tmp_path / "0.tfrec"), buffer_size=buffer, shuffle=True, seed=1024)
    written = []
    writer.writer = types.SimpleNamespace(write=lambda b: written.append(nb["tf"].train.Example.FromString(b)))
    for i in range(n):
        writer.write({"i": i})
    writer.close()
    assert [e.features.feature["i"].int64_list.value[0] for e in written] == reference_order(n, buffer, 1024)


@pytest.mark.parametrize("text", ["3 creekhouse", "(123)", "(1, 2,3)", "[7]", "(a,b)", "()", "(x", "[1,x]", "www.a.com"])
def test_string_feature_quirk_equals_reference(nb, text):
    feat = nb["gen_feature"](text)
    kind = feat.WhichOneof("kind")
    values = list(getattr(feat, kind).value)
    ours_kind, ours_values = reference_bytes_feature(text)
    assert {"byte": "bytes_list", "int": "int64_list"}[ours_kind] == kind
    assert ours_values == values


def test_phrase_type_equals_reference(nb):
    for p in ["123-456-7890", "+1 555", "+44-20", "www.x.com", "a.b c", "x/y", "3 main st", "wwwfoo", "12", "", "-"]:
        if p:
            assert vocab.phrase_type(p) == nb["get_phrase_type"](p), p


def _frame(seed=0, n=300, participants=11):
    rng = np.random.default_rng(seed)
    phrases = [rng.choice(["12 oak st", "www.a.com", "555-1234", "hello world", "x"]) + str(rng.integers(3)) for _ in range(n)]
    return pd.DataFrame({"path": "p", "file_id": 1, "sequence_id": np.arange(n) * 7 + 3,
                         "participant_id": rng.integers(0, participants, n), "phrase": phrases})


@pytest.mark.parametrize("folds,seed", [(4, 1229), (5, 7), (2, 1)])
def test_folds_dup_idx_equal_reference(nb, folds, seed):
    df = _frame(seed)
    ref = df.copy()
    nb["FLAGS"].folds, nb["FLAGS"].fold_seed = folds, seed
    nb["preprocss_"](ref)
    nb["init_folds_"](ref)
    nb["check_phrase_dup_"](ref)
    nb["set_idx_"](ref)
    ours = df.copy()
    ours["phrase_type"] = [vocab.phrase_type(p) for p in ours.phrase]
    ours["fold"] = metadata.assign_folds(ours, folds, seed)
    assert ours.fold.tolist() == ref.fold.tolist()
    assert metadata.phrase_dup(ours.phrase, ours.fold.to_numpy()).tolist() == ref.phrase_dup.tolist()
    assert metadata.running_index(ours.fold.to_numpy(), folds).tolist() == ref.idx.tolist()
    # a participant never spans folds
    assert (ours.groupby("participant_id").fold.nunique() == 1).all()
    nb["FLAGS"].folds, nb["FLAGS"].fold_seed = 4, 1229


def test_tokens_and_labels():
    assert vocab.tokens("1635/")[:7] == [17, 22, 19, 21, 15, 60, 0]  # the value printed in the reference's dataset.ipynb
    assert vocab.tokens("a" * 31)[-1] == 60
    assert 60 not in vocab.tokens("a" * 40) and len(vocab.tokens("a" * 40)) == 32
    assert vocab.tokens("a" * 40, eos_always=True)[-1] == 60
    assert vocab.cls_label("aab")[32] == 1 and sum(vocab.cls_label("aab")) == 2
    assert vocab.decode_tokens(vocab.tokens("hello world")) == "hello world"
    assert (vocab.PAD, vocab.EOS, vocab.VOCAB_SIZE, vocab.N_COLS) == (0, 60, 61, 384)
