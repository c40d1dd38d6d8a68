"""`aslfr.inspect`: the summary table's numbers against a direct computation, and the PNG."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from aslfr.data.summary import render, summarize
from aslfr.data.datasets import TFRecordShards


def test_summary_numbers(converted):
    d = converted / "tfrecords/sup"
    rows = summarize(d)
    recs = list(TFRecordShards(d, torch_values=False))
    for fold, row in rows.items():
        mine = [r for r in recs if r["fold"] == fold]
        n = np.array([r["n_frames"] for r in mine])
        assert row["records"] == len(mine)
        assert row["frames_mean"] == pytest.approx(n.mean()) and row["frames_max"] == n.max()
        assert row["frames_p95"] == pytest.approx(np.percentile(n, 95))
        assert row["phrase_dup_share"] == pytest.approx(np.mean([r["phrase_dup"] for r in mine]))
        no_left = sum(int(np.isnan(r["frames"][:, :63]).all(1).sum()) for r in mine)
        no_right = sum(int(np.isnan(r["frames"][:, 63:126]).all(1).sum()) for r in mine)
        assert row["no_left_hand_share"] == pytest.approx(no_left / n.sum())
        assert row["no_right_hand_share"] == pytest.approx(no_right / n.sum())
        assert row["lost_eos"] == sum(60 not in r["phrase_"] for r in mine)
        assert sum(row["phrase_types"].values()) == len(mine)
    assert sum(r["lost_eos"] for r in rows.values()) >= 2  # the generator's 32+ character sentences
    assert sum(r["records"] for r in rows.values()) == 24


def test_cli_table(converted, tmp_path):
    res = subprocess.run([sys.executable, "-m", "aslfr.inspect", f"out_dir={converted}"], capture_output=True,
                         text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "[train]" in res.stdout and "[sup]" in res.stdout and "lost EOS" in res.stdout
    assert list(tmp_path.iterdir()) == []


def test_png_of_a_sequence(converted, tmp_path):
    from PIL import Image  # matplotlib's own dependency

    rec = max(TFRecordShards(converted / "tfrecords/train", torch_values=False), key=lambda r: r["n_frames"])
    res = subprocess.run([sys.executable, "-m", "aslfr.inspect", f"out_dir={converted}",
                          f"+sequence_id={rec['sequence_id']}", f"png={tmp_path}/seq.png"], capture_output=True,
                         text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    img = np.asarray(Image.open(tmp_path / "seq.png").convert("L"))
    assert img.shape == (640, 1200)  # 2 rows x 4 frames at 100 dpi
    assert (img < 128).mean() > 0.002 and len(np.unique(img)) > 20  # real drawing, not blank


def test_missing_hands_are_not_drawn_at_origin(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    frames = np.full((4, 384), 0.5, np.float32)
    frames[:, :63] = np.nan  # no left hand at all
    rec = {"frames": frames, "phrase": "x", "sequence_id": 1}
    import matplotlib.pyplot as plt

    drawn = []
    real_scatter = plt.Axes.scatter

    def spy(self, x, y, *a, **k):
        drawn.append((np.asarray(x), np.asarray(y)))
        return real_scatter(self, x, y, *a, **k)

    plt.Axes.scatter = spy
    try:
        render(rec, tmp_path / "x.png", 2)
    finally:
        plt.Axes.scatter = real_scatter
    for x, y in drawn:
        assert not ((x == 0) & (y == 0)).any()
