"""`train_demo --checkpoint`: a rerun resumes where the saved run stopped, on the stream's next batch."""

from __future__ import annotations

import torch

from aslfr import train_demo


def test_train_demo_resumes_from_its_checkpoint(converted, tmp_path, capsys):
    ckpt = tmp_path / "run.pt"
    args = [f"out_dir={converted}", "--workers", "0", "--batch-size", "8", "--checkpoint", str(ckpt),
            "--checkpoint-every", "2"]
    train_demo.main(args + ["--steps", "5"])
    saved = torch.load(ckpt)
    assert saved["step"] == 5 and saved["loader"] == {"epoch": 0, "step": 5}  # 57 records: 7 steps an epoch
    capsys.readouterr()
    train_demo.main(args + ["--steps", "9"])
    out = capsys.readouterr().out
    assert "resumed from" in out and "at step 5 (epoch 0, batch 5)" in out and "over 9 steps" in out
    assert torch.load(ckpt)["loader"] == {"epoch": 1, "step": 2}
