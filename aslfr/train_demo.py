"""`make train-demo` (`python -m aslfr.train_demo OUT_DIR`): a tiny CTC model trained for a few steps
on the demo records, the way the reference training reads them (folds != valid_fold, supplemental
mixed in with its weight, normalized + raw frames + position, DataLoader workers). Prints the loss."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

import aslfr
from aslfr.format.vocab import VOCAB_SIZE


class TinyCTC(nn.Module):
    """Linear -> GRU -> per-frame logits over the 61 tokens (blank = PAD = 0)."""

    def __init__(self, width: int, hidden: int = 64):
        super().__init__()
        self.inp = nn.Sequential(nn.Linear(width, hidden), nn.GELU())
        self.rnn = nn.GRU(hidden, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, VOCAB_SIZE)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.out(self.rnn(self.inp(frames))[0])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m aslfr.train_demo", description=__doc__.split("\n\n")[0])
    p.add_argument("out_dir", nargs="?", default="out/demo")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--valid-fold", type=int, default=0)
    a = p.parse_args(argv)
    torch.manual_seed(0)
    records = Path(a.out_dir) / "tfrecords"
    sup = records / "sup" if (records / "sup").is_dir() else None
    train_files, valid_files = aslfr.fold_files(records / "train", a.valid_fold, sup_dir=sup)
    means, stds = aslfr.load_stats(records / "train")
    transform = aslfr.FrameTransform(means, stds, max_frames=256)
    ds = aslfr.TFRecordShards(train_files, shuffle=True, seed=0, transform=transform)
    loader = DataLoader(ds, batch_size=16, num_workers=a.workers, collate_fn=aslfr.pad_collate,
                        persistent_workers=a.workers > 0)
    model = TinyCTC(transform.width)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    ctc = nn.CTCLoss(blank=0, zero_infinity=True, reduction="none")
    print(f"training on {len(ds)} records from {len(train_files)} shards (valid fold {a.valid_fold}: "
          f"{len(valid_files)} shards), {a.workers} DataLoader workers")
    step, epoch, first, last = 0, 0, None, None
    while step < a.steps:
        ds.set_epoch(epoch)
        for batch in loader:
            logp = model(batch["frames"]).log_softmax(-1).transpose(0, 1)  # [T, B, V]
            frame_lengths = torch.full((len(batch["lengths"]),), logp.shape[0], dtype=torch.int64)
            loss = ctc(logp, batch["phrase_"], frame_lengths, batch["target_lengths"])
            loss = (loss * batch["weight"]).mean()  # supplemental records weigh sup_weight
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            first = loss.item() if first is None else first
            last = loss.item()
            if step % 10 == 0 or step == 1:
                print(f"epoch {epoch} step {step:3d}  loss {last:.3f}", flush=True)
            if step >= a.steps:
                break
        epoch += 1
    print(f"loss {first:.3f} -> {last:.3f} over {step} steps")


if __name__ == "__main__":
    main()
