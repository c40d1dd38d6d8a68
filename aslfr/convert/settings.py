"""Conversion settings as plain values: checked before any work starts and without importing torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from aslfr.errors import InputError
from aslfr.format import layout
from aslfr.format.store import Location, Store


@dataclass(frozen=True)
class Settings:
    """Everything a conversion needs, as plain values (picklable for spawned workers)."""

    data_dir: str
    out_dir: str
    split: str = "train"
    folds: int = layout.FOLDS
    fold_seed: int = layout.FOLD_SEED
    sup_weight: float = layout.SUP_WEIGHT
    shuffle_buffer: int = 1000
    shuffle_seed: int = 1024
    num_workers: int = 2
    fold: tuple[int, ...] | None = None
    shard_index: int = 0
    shard_count: int = 1
    eos_always: bool = False
    index_files: bool = True
    strict: bool = False
    skip_unknown_chars: bool = False
    resume: bool = True
    verify_resumed: bool = True
    multiprocessing_context: str | None = None
    progress: bool = True
    report: str | None = None
    #: keyword arguments of the filesystem of a URL data_dir / out_dir (credentials, endpoint, ...)
    storage_options: dict[str, Any] = field(default_factory=dict)

    @property
    def records_dir(self) -> Location:
        return layout.records_dir(self.out_dir, self.split)

    # The run's folders, each bound once with the options (a Store pickles as its URL and options,
    # so workers build their own clients).
    @cached_property
    def data(self) -> Store:
        return Store.at(self.data_dir, self.storage_options)

    @cached_property
    def out(self) -> Store:
        return Store.at(self.out_dir, self.storage_options)

    @cached_property
    def records(self) -> Store:
        return Store.at(self.records_dir, self.storage_options)

    @cached_property
    def receipts(self) -> Store:
        """The records folder's receipts, run markers and locks."""
        return self.records.child(layout.RECEIPTS)

    @property
    def weight(self) -> float:
        return layout.split_weight(self.split, self.sup_weight)

    @property
    def selected_folds(self) -> tuple[int, ...]:
        return tuple(range(self.folds)) if self.fold is None else self.fold

    _OUTPUT_KEYS = ("split", "folds", "fold_seed", "shuffle_buffer", "shuffle_seed", "eos_always", "index_files")

    def output_config(self) -> dict[str, Any]:
        """The settings that decide the bytes written (not how or which part of the work is done)."""
        cfg = {k: getattr(self, k) for k in self._OUTPUT_KEYS}
        cfg["weight"] = self.weight
        from aslfr.format.schema import schema_fingerprint  # numpy: not for --help or a config error

        cfg["schema"] = schema_fingerprint()
        return cfg

    @classmethod
    def from_output_config(cls, data_dir: str, out_dir: str, cfg: dict[str, Any], **work: Any) -> "Settings":
        """Settings that write what `cfg` (an `output_config()`, e.g. from a receipt) describes; `work`
        sets the other keys. Its own output_config() equals `cfg` unless the schema has changed."""
        values = {k: cfg[k] for k in cls._OUTPUT_KEYS}
        if layout.split(cfg["split"]).weight is None:
            values["sup_weight"] = cfg["weight"]
        return cls(data_dir, out_dir, **values, **work)

    def check(self) -> None:
        """Every value's type and range, before any work or any write."""
        import multiprocessing
        import typing

        hints = typing.get_type_hints(Settings)
        for name, hint in hints.items():
            value = getattr(self, name)
            base = {int: int, float: (int, float), bool: bool, str: str}.get(hint)
            if value is None and name in ("fold", "multiprocessing_context", "report"):
                continue
            if name == "storage_options":
                if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                    raise InputError(f"storage_options must be a mapping of option names to values, got {value!r}")
                continue
            if name == "fold":
                ok = isinstance(value, tuple) and all(isinstance(f, int) and not isinstance(f, bool) for f in value)
            elif hint == str | None:
                ok = isinstance(value, str)
            else:
                ok = base is not None and isinstance(value, base) and (hint is bool or not isinstance(value, bool))
            if not ok:
                kind = {int: "an integer", float: "a number", bool: "true or false"}.get(hint, "a string")
                raise InputError(f"{name} must be {kind}, got {value!r}")
        methods = multiprocessing.get_all_start_methods()
        if self.multiprocessing_context is not None and self.multiprocessing_context not in methods:
            raise InputError(f"multiprocessing_context must be null or one of {', '.join(methods)}, "
                             f"got {self.multiprocessing_context!r}")
        if self.split not in layout.SPLITS:
            raise InputError(f"split must be one of {', '.join(layout.SPLITS)}, got {self.split!r}")
        if self.folds < 2:
            raise InputError(f"folds must be >= 2, got {self.folds}")
        bad = [f for f in self.selected_folds if not 0 <= f < self.folds]
        if bad:
            raise InputError(f"fold {bad[0]} is outside 0..{self.folds - 1}")
        if not 0 <= self.shard_index < self.shard_count:
            raise InputError(f"shard_index must be in 0..shard_count-1, got {self.shard_index} of {self.shard_count}")
        for key in ("num_workers", "shuffle_buffer"):
            if getattr(self, key) < 0:
                raise InputError(f"{key} must be >= 0, got {getattr(self, key)}")
        if not 0 < self.sup_weight:
            raise InputError(f"sup_weight must be > 0, got {self.sup_weight}")
