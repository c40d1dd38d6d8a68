"""The writer: competition parquet -> the reference's fold-sharded TFRecords.

`settings` (checked plain values) -> `converter` (an item per parquet file, run by a torch
DataLoader's workers) -> `shards` (record order, framing, atomic files) -> `receipts` (resume,
manifest) with `stats` (means/stds); `locks` keeps runs of other settings apart; `merge` finalizes
parts written by separate jobs. The Hydra app behind `python -m aslfr.convert` is
`aslfr.commands.convert`. It reads input through `aslfr.source` and writes the format of
`aslfr.format`; it never imports the reader (`aslfr.data`)."""
