"""The competition's input: the split CSVs with the notebook's derived columns (`metadata`) and the
landmark parquet files grouped into sequences (`landmarks`). Used by the converter and by
`aslfr.data.ParquetSequences`; imports no torch."""
