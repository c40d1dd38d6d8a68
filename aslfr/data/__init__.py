"""The reader side, for PyTorch training: Datasets over the records (`datasets`) and over the parquet
files (`sequences`), record values as tensors (`tensors`), transforms and batching (`collate`).
Everything it knows about the files comes from `aslfr.format`; it never imports the writer."""
