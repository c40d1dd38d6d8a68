"""The record contract shared by the writer and every reader: vocabulary, schema (encode and decode
side by side), the Example wire format, TFRecord framing, the on-disk layout and the manifest.
Imports numpy and crc32c only: never torch, hydra or pandas."""
