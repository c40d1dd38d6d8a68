"""aslfr: ASL Fingerspelling landmark parquet -> reference-identical fold-sharded TFRecords, and back
into PyTorch. The public API is imported lazily, so `python -m aslfr.convert --help` stays fast.

    import aslfr
    train_files, valid_files = aslfr.fold_files("out/tfrecords/train", valid_fold=0, sup_dir="out/tfrecords/sup")
    means, stds = aslfr.load_stats("out/tfrecords/train")
    ds = aslfr.TFRecordShards(train_files, shuffle=True, transform=aslfr.FrameTransform(means, stds))
    loader = torch.utils.data.DataLoader(ds, batch_size=32, num_workers=2, collate_fn=aslfr.pad_collate)
"""

from importlib import import_module

__version__ = "0.1.0"

_API = {
    "ParquetSequences": "aslfr.parquet",
    "TFRecordShards": "aslfr.reader",
    "TFRecordIndexed": "aslfr.reader",
    "fold_files": "aslfr.reader",
    "read_shard": "aslfr.reader",
    "pad_collate": "aslfr.collate",
    "FrameTransform": "aslfr.transforms",
    "n_cols": "aslfr.transforms",
    "load_stats": "aslfr.transforms",
    "SCHEMA": "aslfr.record",
    "generate_synthetic": "aslfr.synthetic",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        attr = "generate" if name == "generate_synthetic" else name
        return getattr(import_module(_API[name]), attr)
    try:  # submodules, e.g. aslfr.vocab
        return import_module(f"aslfr.{name}")
    except ModuleNotFoundError:
        pass
    raise AttributeError(f"module 'aslfr' has no attribute {name!r}")


def __dir__():
    return __all__
