"""A training process for the stream tests, run as a script (PYTHONPATH = the repository root):

`train RECORDS OUT [--workers N] [--persistent] [--epochs E] [--batch B] [--pause S]`: reads the
stream through `StreamLoader` and `ReferenceCollate`, appends one digest line per step to OUT/log
(flushed to disk) and checkpoints the loader's state to OUT/checkpoint.json every 3 steps (written
whole, then renamed); a second run with the same OUT resumes from that checkpoint.

`ddp RECORDS OUT --batch B [--drop-last] [--files F.json]`: one torch.distributed (gloo) rank, from MASTER_ADDR/MASTER_PORT/RANK/
WORLD_SIZE: 2 DataLoader workers, one all_reduce a step; writes {steps, sequence ids} to OUT/rank{r}.json."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path

import torch

import aslfr


def digest(batch: dict) -> str:
    """A hash of every value of a batch: bytes, dtype and shape of the tensors, repr of the rest."""
    h = hashlib.sha256()
    for k in sorted(batch):
        v = batch[k]
        if isinstance(v, torch.Tensor):
            h.update(f"{k}{v.dtype}{tuple(v.shape)}".encode())
            h.update(v.contiguous().numpy().tobytes())
        else:
            h.update(f"{k}{v!r}".encode())
    return h.hexdigest()


def stream(records: str, batch: int, files: list[str] | None = None, **kw) -> aslfr.TFRecordStream:
    """The stream of the tests: train and sup folders (or `files`), seed 11, with keys."""
    return aslfr.TFRecordStream(files or [f"{records}/train", f"{records}/sup"], batch_size=batch, seed=11,
                                keys=True, **kw)


def collate(records: str) -> aslfr.ReferenceCollate:
    means, stds = aslfr.load_stats(f"{records}/train")
    return aslfr.ReferenceCollate(means, stds, train=True)


def train(a: argparse.Namespace) -> None:
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "checkpoint.json"
    loader = aslfr.StreamLoader(stream(a.records, a.batch), num_workers=a.workers, collate_fn=collate(a.records),
                                persistent_workers=a.persistent)
    if ckpt.exists():
        loader.load_state_dict(json.loads(ckpt.read_text()))
    with open(out / "log", "a") as log:
        for epoch in range(loader.epoch, a.epochs):
            loader.set_epoch(epoch)
            for batch in loader:
                state = loader.state_dict()
                log.write(f"{state['epoch']} {state['step'] - 1} {digest(batch)}\n")
                log.flush()
                os.fsync(log.fileno())
                if state["step"] % 3 == 0:
                    (out / "checkpoint.tmp").write_text(json.dumps(state))
                    os.replace(out / "checkpoint.tmp", ckpt)
                time.sleep(a.pause)


def ddp(a: argparse.Namespace) -> None:
    torch.distributed.init_process_group("gloo")
    rank = torch.distributed.get_rank()
    files = json.loads(Path(a.files).read_text()) if a.files else None
    loader = aslfr.StreamLoader(stream(a.records, a.batch, files, drop_last=a.drop_last), num_workers=2,
                                collate_fn=aslfr.pack_collate)
    steps, ids = 0, []
    for batch in loader:
        t = torch.ones(1)
        torch.distributed.all_reduce(t)  # waits for every rank: a rank with fewer steps would hang the others
        steps += 1
        ids += batch["sequence_id"].tolist()
    torch.distributed.barrier()
    Path(a.out, f"rank{rank}.json").write_text(json.dumps({"steps": steps, "len": len(loader), "ids": ids}))
    torch.distributed.destroy_process_group()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["train", "ddp"])
    p.add_argument("records")
    p.add_argument("out")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--persistent", action="store_true")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--drop-last", action="store_true")
    p.add_argument("--pause", type=float, default=0.0)
    p.add_argument("--files", help="a JSON list of the shard files to read (default: the train and sup folders)")
    a = p.parse_args()
    (train if a.mode == "train" else ddp)(a)


if __name__ == "__main__":
    main()
