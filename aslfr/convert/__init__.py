"""The writer: competition parquet -> the reference's fold-sharded TFRecords.

`settings` (checked plain values) -> `converter` (a torch Dataset per parquet file, run by a
DataLoader's workers) -> `shards` (record order, framing, atomic files) -> `receipts` (resume,
manifest) with `stats` (means/stds); `merge` finalizes parts written by separate jobs; `cli` is the
Hydra app behind `python -m aslfr.convert`. It reads input through `aslfr.source` and writes the
format of `aslfr.format`; it never imports the reader (`aslfr.data`)."""
