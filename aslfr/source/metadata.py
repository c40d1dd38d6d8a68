"""The CSV side of a split: per-sequence metadata with the reference notebook's derived columns
(phrase_len, phrase_type, file_path, fold, phrase_dup, idx), in CSV order."""

from __future__ import annotations

import io
import posixpath
import re
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from aslfr.errors import InputError
from aslfr.format import layout
from aslfr.format.layout import FOLD_SEED, FOLDS
from aslfr.format.store import Store
from aslfr.format.vocab import phrase_type

CSV_COLUMNS = ["path", "file_id", "sequence_id", "participant_id", "phrase"]



def read_csv(data: Store, name: str) -> pd.DataFrame:
    """Read and check competition CSV `name` of the data folder: the five columns, integer ids,
    non-empty phrases."""
    csv_path = data.where(name)
    if not data.is_file(name):
        raise InputError(f"{csv_path}: CSV file not found")
    source = csv_path if data.is_local else io.BytesIO(data.read_bytes(name))
    try:
        df = pd.read_csv(source, dtype={"phrase": str, "path": str}, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise InputError(f"{csv_path}: unreadable CSV ({' '.join(str(e).split())})") from None
    missing = [c for c in CSV_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{csv_path}: missing required column(s) {', '.join(missing)}")
    if df.empty:
        raise InputError(f"{csv_path}: no rows (only a header)")
    for col in ("file_id", "sequence_id", "participant_id"):
        if df[col].dtype != np.int64:  # pandas reads anything else, e.g. an id beyond int64, as another dtype
            _refuse_non_integer(csv_path, source, col)
    # line numbers count the header as line 1, as an editor shows them (no quoted field spans lines)
    empty = df.index[df["phrase"].str.len() == 0]
    if len(empty):
        r = int(empty[0])
        raise InputError(f"{csv_path}: sequence {df.sequence_id.iloc[r]}: empty phrase (line {r + 2})")
    dup = df.sequence_id.duplicated(keep=False)
    if dup.any():
        ids = sorted(set(df.sequence_id[dup].tolist()))
        raise InputError(f"{csv_path}: sequence {ids[0]}: duplicate sequence_id ({len(ids)} duplicated id(s))")
    return df


def _refuse_non_integer(csv_path, source, col: str) -> None:
    """InputError naming the first value of `col`, as written in the CSV, that is not an int64."""
    if isinstance(source, io.BytesIO):
        source.seek(0)
    texts = pd.read_csv(source, usecols=[col], dtype=str, keep_default_na=False)[col]
    for r, text in enumerate(texts):
        if not re.fullmatch(r"\s*[+-]?\d+\s*", text) or not -2**63 <= int(text) < 2**63:
            raise InputError(f"{csv_path}: column {col} must hold 64-bit integers (line {r + 2}: {text!r})")


def assign_folds(df: pd.DataFrame, folds: int, seed: int) -> np.ndarray:
    """The notebook's folds: StratifiedGroupKFold(shuffle, seed) by participant, stratified by phrase_type."""
    from sklearn.model_selection import StratifiedGroupKFold

    n_groups = df.participant_id.nunique()
    if n_groups < folds:
        raise InputError(f"cannot make {folds} folds from {n_groups} participant(s): need at least one per fold")
    out = np.zeros(len(df), dtype=np.int64)
    skf = StratifiedGroupKFold(n_splits=folds, random_state=seed, shuffle=True)
    with warnings.catch_warnings():
        # "The least populated class in y has only N members": a rare phrase type (few phone numbers in a
        # small CSV) cannot be spread over every fold. The split is still the reference's, so say nothing.
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        try:
            for i, (_, val_idx) in enumerate(skf.split(df, df["phrase_type"], df["participant_id"])):
                out[val_idx] = i
        except ValueError as e:  # e.g. every phrase type has fewer sequences than folds
            raise InputError(f"cannot make {folds} folds from {len(df)} sequence(s): {e}") from None
    return out


def phrase_dup(phrases: pd.Series, folds: np.ndarray) -> np.ndarray:
    """1 where the same phrase also occurs in another fold."""
    total = Counter(phrases)
    per_fold = Counter(zip(folds.tolist(), phrases))
    return np.array([int(per_fold[(f, p)] < total[p]) for f, p in zip(folds.tolist(), phrases)], dtype=np.int64)


def running_index(folds: np.ndarray, n_folds: int) -> np.ndarray:
    """`idx`: a running counter per fold, in CSV order."""
    counters = [0] * n_folds
    out = np.empty(len(folds), dtype=np.int64)
    for i, f in enumerate(folds.tolist()):
        out[i] = counters[f]
        counters[f] += 1
    return out


def load_metadata(data_dir: Store | str | Path, split: str, folds: int = FOLDS,
                  fold_seed: int = FOLD_SEED) -> pd.DataFrame:
    """The split's CSV in the data folder (a store, or a folder or URL prefix without options) plus
    phrase_len, phrase_type, file_path, fold, phrase_dup and idx."""
    data = Store.of(data_dir)
    if not data.exists():
        raise InputError(f"{data.where()}: data directory not found")
    df = read_csv(data, layout.split(split).csv)
    df["phrase_len"] = df["phrase"].str.len().astype(np.int64)
    df["phrase_type"] = [phrase_type(p) for p in df["phrase"]]
    df["file_path"] = [str(data.where(p)) for p in df["path"]]
    _refuse_two_spellings(data.where(layout.split(split).csv), df)
    df["fold"] = assign_folds(df, folds, fold_seed)
    df["phrase_dup"] = phrase_dup(df["phrase"], df["fold"].to_numpy())
    df["idx"] = running_index(df["fold"].to_numpy(), folds)
    return df


def _refuse_two_spellings(csv_path, df: pd.DataFrame) -> None:
    """Two `path` values naming one parquet file (`../x` reaching out of data_dir and back) would
    convert it twice, its sequence ids duplicated in the output."""
    seen: dict[str, str] = {}
    for path, file_path in dict.fromkeys(zip(df["path"], df["file_path"])):
        scheme, sep, rest = file_path.rpartition("://")
        key = scheme + sep + posixpath.normpath(rest)
        if seen.setdefault(key, path) != path:
            raise InputError(f"{csv_path}: paths {seen[key]!r} and {path!r} name the same parquet file {key}")


def parquet_files(df: pd.DataFrame) -> list[str]:
    """Parquet files in the CSV's order of first appearance: position i names shards i*folds+fold."""
    return list(dict.fromkeys(df["file_path"]))
