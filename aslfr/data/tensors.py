"""Record values as torch values: what every Dataset of aslfr yields."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from aslfr.format.schema import SCHEMA


def to_torch(rec: Mapping[str, Any]) -> dict[str, Any]:
    """Typed item for PyTorch: frames float32 [n_frames, 384], ints int64, floats float32, strings str."""
    out: dict[str, Any] = {}
    for name, feat in SCHEMA.items():
        value = rec[name]
        if feat.kind == "byte":
            out[name] = value if isinstance(value, str) else value.decode()
        elif name == "frames":
            out[name] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32).reshape(feat.shape))
        elif not feat.shape:  # through numpy: a quarter of torch.tensor's cost, per record and feature
            out[name] = torch.from_numpy(np.array(int(value), np.int64) if feat.kind == "int"
                                         else np.array(float(value), np.float32))
        else:
            out[name] = torch.from_numpy(np.asarray(value, dtype=np.int64 if feat.kind == "int" else np.float32))
    return out
