"""Just enough of `tensorflow` for the reference notebook, on the `tfrecord` package's protobufs:
the same `tf.train.Example` messages and the same TFRecord framing, so the notebook's own code runs
in tests without TensorFlow. Golden files written by real TensorFlow check this stand-in."""

import types

from tfrecord import example_pb2
from tfrecord.writer import TFRecordWriter as _Framing

__version__ = "shim"

train = types.SimpleNamespace(
    Example=example_pb2.Example, Features=example_pb2.Features, Feature=example_pb2.Feature,
    Int64List=example_pb2.Int64List, FloatList=example_pb2.FloatList, BytesList=example_pb2.BytesList)


class _TFRecordWriter(_Framing):
    def __init__(self, path: str) -> None:  # unbuffered: the notebook renames files it never closes
        self.file = open(path, "wb", buffering=0)

    def write(self, record: bytes) -> None:  # tf.io.TFRecordWriter.write takes serialized bytes
        import struct

        length = struct.pack("<Q", len(record))
        self.file.write(length + _Framing.masked_crc(length) + record + _Framing.masked_crc(record))

    def __del__(self):
        if not self.file.closed:
            self.file.close()


io = types.SimpleNamespace(TFRecordWriter=_TFRecordWriter)
