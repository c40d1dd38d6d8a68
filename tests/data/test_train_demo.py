"""`train_demo --checkpoint`: a rerun resumes where the saved run stopped, on the stream's next batch."""

from __future__ import annotations

import torch

from aslfr import train_demo


def test_train_demo_resumes_from_its_checkpoint(converted, tmp_path, capsys):
    ckpt = tmp_path / "run.pt"
    args = [f"out_dir={converted}", "--workers", "0", "--batch-size", "16", "--checkpoint", str(ckpt),
            "--checkpoint-every", "2"]
    train_demo.main(args + ["--steps", "2"])
    saved = torch.load(ckpt)
    assert saved["step"] == 2 and saved["loader"] == {"epoch": 0, "step": 2}  # 57 records: 3 steps an epoch
    capsys.readouterr()
    train_demo.main(args + ["--steps", "4"])
    out = capsys.readouterr().out
    assert "resumed from" in out and "at step 2 (epoch 0, batch 2)" in out and "over 4 steps" in out
    assert torch.load(ckpt)["loader"] == {"epoch": 1, "step": 1}
