"""aslfr: ASL Fingerspelling landmark parquet -> reference-identical fold-sharded TFRecords, and back
into PyTorch. The public API is imported lazily, so `python -m aslfr.convert --help` stays fast.

    import aslfr
    train_files, valid_files = aslfr.fold_files("out/tfrecords/train", valid_fold=0, sup_dir="out/tfrecords/sup")
    means, stds = aslfr.load_stats("out/tfrecords/train")
    stream = aslfr.TFRecordStream(train_files, batch_size=32, seed=0, keys=True)
    loader = aslfr.StreamLoader(stream, num_workers=2, collate_fn=aslfr.ReferenceCollate(means, stds, train=True))

Layers (each imports only those above it): `format` (the record contract, no torch) -> `source`
(competition CSV + parquet) -> `convert` (the writer) | `data` (the reader: Datasets, transforms,
collate). The commands live in `aslfr.commands` and run as `python -m aslfr.<command>` too.
"""

import os
from importlib import import_module

# `python -m aslfr.verify` finds aslfr/commands/verify.py: the commands keep their short names without
# a module per command directly under aslfr/, where `inspect.py` shadowed the standard library's
__path__.append(os.path.join(__path__[0], "commands"))

__version__ = "0.1.0"

_API = {
    "ParquetSequences": "aslfr.data.sequences",
    "TFRecordShards": "aslfr.data.datasets",
    "TFRecordIndexed": "aslfr.data.datasets",
    "TFRecordStream": "aslfr.data.stream",
    "StreamLoader": "aslfr.data.stream",
    "ThreadLoader": "aslfr.data.threads",
    "epoch_plan": "aslfr.data.plan",
    "fold_files": "aslfr.data.datasets",
    "read_shard": "aslfr.format.schema",
    "pad_collate": "aslfr.data.collate",
    "pack_collate": "aslfr.data.collate",
    "unpack": "aslfr.data.collate",
    "ReferenceCollate": "aslfr.data.collate",
    "record_key": "aslfr.data.transforms.counter",
    "FrameTransform": "aslfr.data.transforms.frame",
    "n_cols": "aslfr.data.transforms.frame",
    "load_stats": "aslfr.format.stats",
    "SCHEMA": "aslfr.format.schema",
    "reference_preprocess": "aslfr.data.transforms.reference",
    "reference_preprocess_batch": "aslfr.data.transforms.reference",
    "ReferencePreprocess": "aslfr.data.transforms.reference",
    "training_transforms": "aslfr.data.transforms.reference",
    "inference_transforms": "aslfr.data.transforms.reference",
    "generate_synthetic": "aslfr.source.synthetic",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        attr = "generate" if name == "generate_synthetic" else name
        return getattr(import_module(_API[name]), attr)
    try:  # subpackages and commands, e.g. aslfr.format
        return import_module(f"aslfr.{name}")
    except ModuleNotFoundError:
        pass
    raise AttributeError(f"module 'aslfr' has no attribute {name!r}")


def __dir__():
    return __all__
