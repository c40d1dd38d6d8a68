"""`python paused_convert.py ARGS` runs `python -m aslfr.convert ARGS` with every shard writer of
shard number >= $ASLFR_TEST_PAUSE_AT stopped forever after its first record (or once it has written
$ASLFR_TEST_PAUSE_BYTES bytes, where that is set and the shard gets there), each pause announced by
a line in $ASLFR_TEST_PAUSED: once every process has paused, the run holds half-written temporary
shards and can never finish, so a test interrupts or kills it at a known point instead of racing it."""

import os
import runpy
import sys
import time

from aslfr.convert import shards

PAUSE_AT = int(os.environ["ASLFR_TEST_PAUSE_AT"])
PAUSED = os.environ["ASLFR_TEST_PAUSED"]
PAUSE_BYTES = int(os.environ.get("ASLFR_TEST_PAUSE_BYTES", "0"))
_write = shards.ShardWriter.write


def write(self, record) -> None:
    _write(self, record)
    if self.number >= PAUSE_AT and self._writer.size >= PAUSE_BYTES:
        with open(PAUSED, "a") as f:  # one short append: whole lines even from two processes
            f.write(f"{os.getpid()} {self.number}\n")
        while True:  # until a signal ends the process
            time.sleep(1)


shards.ShardWriter.write = write
sys.argv = ["aslfr.convert", *sys.argv[1:]]
runpy.run_module("aslfr.convert", run_name="__main__", alter_sys=True)
