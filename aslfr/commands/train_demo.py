"""`make train-demo` (`python -m aslfr.train_demo out_dir=out/demo`): a tiny CTC model trained for a few steps on
the demo records as the reference's stage 1 trains: the training path (augmentations, [raw |
normalized] + position, 320 frames) on DataLoader workers, train folds != valid_fold with the
supplemental records mixed in at their weight, CTC over 61 tokens (blank = PAD = 0, targets keep
EOS), loss = mean(weight x per-sample NLL); validation on the valid fold through the inference path.
The batches come from `aslfr.TFRecordStream`; with `--checkpoint PATH` the run saves the model, the
optimizer and the loader's place every `--checkpoint-every` steps and a rerun (after a crash or a
kill -9) resumes there, on the very batches the first run would have read next."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader  # validation reads once, in order

import aslfr
from aslfr.commands.cli import one_line_errors, out_dir_parser
from aslfr.errors import InputError
from aslfr.format.vocab import VOCAB_SIZE


class TinyCTC(nn.Module):
    """Linear -> GRU -> per-frame logits over the 61 tokens (blank = PAD = 0), 4x time pooling."""

    def __init__(self, width: int, hidden: int = 64):
        super().__init__()
        self.inp = nn.Sequential(nn.Linear(width, hidden), nn.GELU())
        self.rnn = nn.GRU(hidden, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, VOCAB_SIZE)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.inp(frames)
        x = nn.functional.avg_pool1d(x.transpose(1, 2), 4).transpose(1, 2)  # 320 -> 80 steps, as the reference
        return self.out(self.rnn(x)[0])


def ctc_losses(model: nn.Module, batch: dict, ctc: nn.CTCLoss) -> torch.Tensor:
    """Per-sample CTC NLL; every sample has all 80 output steps (the reference's input_lengths)."""
    logp = model(batch["frames"]).log_softmax(-1).transpose(0, 1)  # [T, B, V]
    steps = torch.full((logp.shape[1],), logp.shape[0], dtype=torch.int64)
    return ctc(logp, batch["phrase_"], steps, batch["target_lengths"])


def main(argv: list[str] | None = None) -> None:
    p = out_dir_parser("aslfr.train_demo", __doc__, "the converter's out_dir, with tfrecords/train (and "
                       "tfrecords/sup); `out_dir=` may be left out", default="out/demo")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--valid-fold", type=int, default=0)
    p.add_argument("--checkpoint", type=Path, help="a file to save the run to, and to resume from where it exists")
    p.add_argument("--checkpoint-every", type=int, default=10)
    a = p.parse_args(argv)
    with one_line_errors():
        run(a)


def run(a: argparse.Namespace) -> None:
    for name, low in (("steps", 1), ("batch_size", 1), ("workers", 0), ("checkpoint_every", 1)):
        if getattr(a, name) < low:
            raise InputError(f"--{name.replace('_', '-')} must be >= {low}, got {getattr(a, name)}")
    torch.manual_seed(0)
    records = Path(a.out_dir) / "tfrecords"
    sup = records / "sup" if (records / "sup" / "manifest.json").is_file() else None
    try:
        train_files, valid_files = aslfr.fold_files(records / "train", a.valid_fold, sup_dir=sup)
        means, stds = aslfr.load_stats(records / "train")
        train = aslfr.TFRecordStream(train_files, batch_size=a.batch_size, seed=0, keys=True, drop_last=True)
        valid = aslfr.TFRecordShards(valid_files)
        train_input = aslfr.ReferenceCollate(means, stds, train=True)
        valid_input = aslfr.ReferenceCollate(means, stds, train=False)
    except ValueError as e:  # the library's checks of what the user gave (--valid-fold, the stats)
        raise InputError(str(e)) from None
    loader = aslfr.StreamLoader(train, num_workers=a.workers, collate_fn=train_input, persistent_workers=a.workers > 0)
    model = TinyCTC(aslfr.n_cols())
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    ctc = nn.CTCLoss(blank=0, zero_infinity=True, reduction="none")
    print(f"training on {sum(train.shards.counts)} records from {len(train_files)} shards (valid fold {a.valid_fold}: "
          f"{len(valid)} records), {a.workers} DataLoader workers, training path: {aslfr.n_cols()} columns x 320 frames")
    step, first, last = 0, None, None
    if a.checkpoint is not None and a.checkpoint.exists():
        saved = torch.load(a.checkpoint)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        loader.load_state_dict(saved["loader"])
        step, first = saved["step"], saved["first_loss"]
        print(f"resumed from {a.checkpoint} at step {step} (epoch {loader.epoch}, batch {saved['loader']['step']})")
    epoch = loader.epoch
    while step < a.steps:
        loader.set_epoch(epoch)
        for batch in loader:
            loss = (ctc_losses(model, batch, ctc) * batch["weight"]).mean()  # supplemental records weigh 0.1
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            first = loss.item() if first is None else first
            last = loss.item()
            if step % 10 == 0 or step == 1:
                print(f"epoch {epoch} step {step:3d}  loss {last:.3f}", flush=True)
            if a.checkpoint is not None and (step % a.checkpoint_every == 0 or step == a.steps):
                save(a.checkpoint, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                    "loader": loader.state_dict(), "step": step, "first_loss": first})
            if step >= a.steps:
                break
        epoch += 1
    with torch.no_grad():
        nll = [ctc_losses(model, b, ctc) for b in DataLoader(valid, batch_size=32, collate_fn=valid_input)]
    last = "(none: resumed at the end)" if last is None else f"{last:.3f}"
    print(f"loss {first:.3f} -> {last} over {step} steps; valid CTC NLL {torch.cat(nll).mean():.3f} "
          f"(inference path, fold {a.valid_fold})")


def save(path: Path, state: dict) -> None:
    """Written whole beside `path`, then renamed over it: a kill leaves the old checkpoint or the new."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
