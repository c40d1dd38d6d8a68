"""`aslfr.inspect`: the summary table's numbers against a direct computation, and the PNG."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from aslfr.data.summary import render, summarize
from aslfr.data.datasets import TFRecordShards
from conftest import needs


@pytest.fixture(autouse=True)
def fresh_matplotlib_cache(tmp_path, monkeypatch):
    """Every run here is matplotlib's first on a fresh machine: it builds its font cache (and logs
    that it did), as it does once in CI."""
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mplconfig"))


@pytest.mark.parametrize("split,csv_name", [("train", "train.csv"), ("sup", "supplemental_metadata.csv")])
def test_summary_numbers(small_data, converted, reference_out, split, csv_name):
    """The table's numbers derived independently: folds, phrase types and phrase_dup from the reference
    notebook's own records (parsed with protobuf), frame counts and missing hands from the parquet files
    by column name (pandas), lost EOS from the CSV."""
    import pandas as pd

    from compare import records

    ref = [r for p in sorted((reference_out / "tfrecords" / split).glob("*.tfrec")) for r in records(p)]
    fold = {r["sequence_id"][1][0]: r["fold"][1][0] for r in ref}
    ptype = {r["sequence_id"][1][0]: r["phrase_type"][1][0].decode() for r in ref}
    dup = {r["sequence_id"][1][0]: r["phrase_dup"][1][0] for r in ref}
    csv = pd.read_csv(small_data / csv_name, keep_default_na=False)
    n_frames, no_left, no_right = {}, {}, {}
    for path in csv.path.unique():
        df = pd.read_parquet(small_data / path)
        left = df[[c for c in df.columns if "_left_hand_" in c]].isna().all(axis=1)
        right = df[[c for c in df.columns if "_right_hand_" in c]].isna().all(axis=1)
        for sid, rows in df.groupby(level=0):
            n_frames[sid] = len(rows)
            no_left[sid], no_right[sid] = int(left[df.index == sid].sum()), int(right[df.index == sid].sum())
    rows = summarize(converted / "tfrecords" / split)
    assert sorted(rows) == sorted(set(fold.values()))
    for f, row in rows.items():
        ids = [sid for sid in csv.sequence_id if fold[sid] == f]
        n = np.array([n_frames[sid] for sid in ids])
        assert row["records"] == len(ids)
        assert row["frames_mean"] == pytest.approx(n.mean()) and row["frames_max"] == n.max()
        assert row["frames_p95"] == pytest.approx(np.percentile(n, 95))
        assert row["phrase_dup_share"] == pytest.approx(np.mean([dup[sid] for sid in ids]))
        assert row["no_left_hand_share"] == pytest.approx(sum(no_left[sid] for sid in ids) / n.sum())
        assert row["no_right_hand_share"] == pytest.approx(sum(no_right[sid] for sid in ids) / n.sum())
        phrases = csv.set_index("sequence_id").loc[ids, "phrase"]
        assert row["lost_eos"] == int((phrases.str.len() >= 32).sum())  # phrase + EOS cut at 32
        assert row["phrase_types"] == dict(Counter(ptype[sid] for sid in ids))
    assert sum(r["records"] for r in rows.values()) == len(csv) == {"train": 48, "sup": 24}[split]
    if split == "sup":
        assert sum(r["lost_eos"] for r in rows.values()) >= 2  # the generator's 32+ character sentences
    else:
        assert set(ptype.values()) == {"address", "phone", "url"}  # the type counts are really checked


def test_cli_table(converted, tmp_path):
    res = subprocess.run([sys.executable, "-m", "aslfr.inspect", f"out_dir={converted}"], capture_output=True,
                         text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "[train]" in res.stdout and "[sup]" in res.stdout and "lost EOS" in res.stdout
    assert "no L hand / no R hand = share of frames whose left / right hand is entirely missing" in res.stdout
    assert [p for p in tmp_path.iterdir() if p.name != "mplconfig"] == []  # no PNG, nothing else


@needs("matplotlib")
def test_png_of_a_sequence(converted, tmp_path):
    from PIL import Image  # matplotlib's own dependency

    rec = max(TFRecordShards(converted / "tfrecords/train", torch_values=False), key=lambda r: r["n_frames"])
    res = subprocess.run([sys.executable, "-m", "aslfr.inspect", f"out_dir={converted}",
                          f"+sequence_id={rec['sequence_id']}", f"png={tmp_path}/seq.png"], capture_output=True,
                         text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"{tmp_path}/seq.png: PNG of ")  # says where it went
    img = np.asarray(Image.open(tmp_path / "seq.png").convert("L"))
    assert img.shape == (640, 1200)  # 2 rows x 4 frames at 100 dpi
    assert (img < 128).mean() > 0.002 and len(np.unique(img)) > 20  # real drawing, not blank


@needs("matplotlib")
def test_missing_hands_are_not_drawn_at_origin(tmp_path):
    """The points scattered are exactly the drawn frames' non-NaN landmarks (hands, lips, eyes, nose;
    the arms are lines only): a missing hand is left out, never put at (0, 0)."""
    import matplotlib

    matplotlib.use("Agg")
    t, p = np.meshgrid(np.arange(4), np.arange(128), indexing="ij")
    frames = np.stack([0.1 + p / 200 + t / 1000, 0.2 + p / 300 - t / 1000, np.zeros_like(p, float)], -1)
    frames = frames.reshape(4, 384).astype(np.float32)
    frames[:, :63] = np.nan  # no left hand at all
    frames[3, 63 + 3 * 5:63 + 3 * 6] = np.nan  # one right-hand point missing in the last frame
    rec = {"frames": frames, "phrase": "x", "sequence_id": 1}
    import matplotlib.pyplot as plt

    drawn = []
    real_scatter = plt.Axes.scatter

    def spy(self, x, y, *a, **k):
        drawn.extend(zip(np.asarray(x).tolist(), np.asarray(y).tolist()))
        return real_scatter(self, x, y, *a, **k)

    plt.Axes.scatter = spy
    try:
        render(rec, tmp_path / "x.png", 2)
    finally:
        plt.Axes.scatter = real_scatter
    pts = frames.reshape(4, 128, 3)
    scattered = [i for i in range(128) if not 42 <= i < 52]  # every point but the 10 arm-pose ones
    want = [(float(pts[f, i, 0]), float(pts[f, i, 1])) for f in (0, 3) for i in scattered
            if not np.isnan(pts[f, i]).any()]  # 2 frames of 4: the first and the last
    assert len(want) == 2 * (118 - 21) - 1
    assert sorted(xy for xy in drawn if not np.isnan(xy).any()) == sorted(want)


@needs("matplotlib")
def test_png_of_the_training_augmentations(converted, tmp_path):
    from PIL import Image

    rec = max(TFRecordShards(converted / "tfrecords/train", torch_values=False), key=lambda r: r["n_frames"])
    res = subprocess.run([sys.executable, "-m", "aslfr.inspect", f"out_dir={converted}", f"+sequence_id={rec['sequence_id']}",
                          "augment=true", f"png={tmp_path}/aug.png"], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"{tmp_path}/aug.png: PNG of the training augmentations")
    img = np.asarray(Image.open(tmp_path / "aug.png").convert("L"))
    assert img.shape == (640, 1300) and (img < 128).mean() > 0.002


def _inspect(tmp_path, *args):
    res = subprocess.run([sys.executable, "-m", "aslfr.inspect", *args], capture_output=True, text=True, cwd=tmp_path,
                         timeout=300)
    return res.returncode, res.stdout, res.stderr


def _one_error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("aslfr: error: "), stderr
    return lines[0]


@pytest.mark.parametrize("made", [True, False], ids=["empty-folder", "no-folder"])
def test_inspect_without_records_folder(tmp_path, made):
    out = tmp_path / "out"
    if made:
        out.mkdir()
    rc, stdout, stderr = _inspect(tmp_path, f"out_dir={out}")
    line = _one_error_line(stderr)
    assert rc == 1 and stdout == ""
    assert line == f"aslfr: error: {out}: " + ("no finished records folder (tfrecords/<split>/manifest.json); convert first"
                                               if made else "no such file or folder")
    written = sorted(p.name for p in tmp_path.iterdir() if p.name != "mplconfig")  # matplotlib's own cache
    assert written == (["out"] if made else [])  # nothing written


def test_inspect_unknown_sequence_id(converted, tmp_path):
    pytest.importorskip("matplotlib", reason="pictures need matplotlib (aslfr[viz])")
    rc, stdout, stderr = _inspect(tmp_path, f"out_dir={converted}", "+sequence_id=987654321", f"png={tmp_path}/x.png")
    line = _one_error_line(stderr)
    assert rc == 1 and stdout == ""
    assert "sequence 987654321 not found" in line and str(converted) in line
    assert [p for p in tmp_path.iterdir() if p.name != "mplconfig"] == []  # no PNG, nothing else
