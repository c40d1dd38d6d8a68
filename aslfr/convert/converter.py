"""The conversion: a map-style dataset whose item i converts parquet file i into its fold shards, driven
by a torch DataLoader with worker processes. Files are independent, so the bytes written do not depend
on the number of workers; the main process only collects receipts, shows progress and finalizes. A run
with nothing to write (every shard resumed) or no workers imports neither torch nor the writer."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from aslfr.convert import receipts
from aslfr.convert.locks import claimed, locked_all
from aslfr.convert.procinfo import peak_rss_mb, process_age, rss_mb
from aslfr.convert.settings import Settings
from aslfr.convert.stats import ColumnStats
from aslfr.errors import InputError
from aslfr.format import layout, vocab
from aslfr.format.example import ExampleBuffer
from aslfr.format.manifest import Manifest
from aslfr.format.schema import METADATA_KEYS, encode_record_into
from aslfr.format.store import Store
from aslfr.source.landmarks import parquet_identity, read_landmarks
from aslfr.source.metadata import load_metadata, parquet_files
from aslfr.source.records import make_record

@dataclass
class Plan:
    """The metadata and the files this run converts."""

    settings: Settings
    files: list[str]
    file_numbers: list[int]  # positions in the CSV's file order of the files this job owns
    meta: dict[int, dict[str, Any]]
    by_file: dict[str, list[int]] = field(default_factory=dict)  # CSV sequence ids per parquet path
    skipped: set[int] = field(default_factory=set)
    expected: dict[int, int] = field(default_factory=dict)  # records per fold in the CSV
    inputs: list[str] = field(default_factory=list)  # per file: fingerprint of what shapes its shards

    def fingerprint(self) -> str:
        """What decides every byte of the split's output: the output config and every file's inputs."""
        return hashlib.sha256(json.dumps([self.settings.output_config(), self.inputs]).encode()).hexdigest()[:16]

    def numbers(self, i: int) -> list[int]:
        """Shard numbers (units of work) of file i that this run writes."""
        return [layout.shard_number(i, f, self.settings.folds) for f in self.settings.selected_folds]


def plan(s: Settings) -> Plan:
    """Read the CSV, derive folds, and check phrases before any parquet work starts."""
    df = load_metadata(s.data, s.split, s.folds, s.fold_seed)
    skipped: set[int] = set()
    bad = [(sid, p) for sid, p in zip(df.sequence_id.tolist(), df.phrase) if vocab.unknown_chars(p)]
    if bad:
        if not s.skip_unknown_chars:
            sid, p = bad[0]
            chars = "".join(vocab.unknown_chars(p))
            csv = layout.csv_path(s.data_dir, s.split)
            raise InputError(f"{csv}: sequence {sid}: phrase {p!r} has character(s) {chars!r} outside the "
                             f"character map ({len(bad)} such phrase(s); skip_unknown_chars=true skips them)")
        skipped = {sid for sid, _ in bad}
    meta, by_file = {}, {}
    for row in df[METADATA_KEYS + ["file_path"]].itertuples(index=False):
        if row.sequence_id not in skipped:
            meta[row.sequence_id] = row._asdict()
            by_file.setdefault(row.file_path, []).append(row.sequence_id)
    files = parquet_files(df)
    mine = [i for i in range(len(files)) if i % s.shard_count == s.shard_index]
    kept = df[~df.sequence_id.isin(skipped)]
    expected = {f: int((kept.fold == f).sum()) for f in s.selected_folds}
    rows = df[METADATA_KEYS + ["file_path"]]
    inputs = [input_fingerprint(rows[rows.file_path == f], f, s.storage_options) for f in files]
    return Plan(s, files, mine, meta, by_file, skipped, expected, inputs)


def input_fingerprint(rows, path: str, options=None) -> str:
    """What shapes a file's shards besides the config: its CSV rows with the derived columns (fold,
    phrase_dup and idx depend on the whole CSV) and the parquet file's identity (size + footer)."""
    h = hashlib.sha256(rows.drop(columns="file_path").to_csv(index=False).encode())
    h.update(parquet_identity(path, options).encode())
    return h.hexdigest()[:16]


class FileConversion:
    """Item j converts parquet file `plan.file_numbers[j]` into its shards and returns a summary."""

    def __init__(self, p: Plan):
        self.p = p
        self.rss_start: float | None = None  # set in the process that converts (each worker has a copy)

    def __len__(self) -> int:
        return len(self.p.file_numbers)

    def __getitem__(self, j: int) -> dict[str, Any]:
        if self.rss_start is None:  # resident memory before this process's first file
            self.rss_start = rss_mb()
        i = self.p.file_numbers[j]
        try:
            return {**convert_file(self.p, i), "rss_start": self.rss_start}
        except InputError as e:  # returned, not raised: a worker's exception would arrive with a traceback
            return {"error": str(e)}
        except OSError as e:  # disk full, permissions: the shard writer has removed its temporary file
            if e.filename is None and e.strerror is None:  # a store's error: its text begins with the URL
                return {"error": f"{e} (while converting {self.p.files[i]})"}
            where = e.filename or self.p.files[i]
            return {"error": f"{where}: {e.strerror or e} (while converting {self.p.files[i]})"}


def _completed(p: Plan, i: int, check_crc: bool) -> dict[int, dict]:
    """fold -> receipt for the selected folds of file i whose shards are complete, intact (their CRC32C
    checked with `check_crc`) and made from the same config and inputs. Under strict=true a shard
    written without some of its CSV sequences is not kept: converting it again fails naming them, as
    a fresh strict run does."""
    s = p.settings
    out = {}
    for f in s.selected_folds:
        r = receipts.load_receipt(s.records, layout.shard_number(i, f, s.folds))
        if s.strict and r and r.get("missing"):
            continue
        if receipts.receipt_holds(s.records, r, s.output_config(), check_crc, p.inputs[i]):
            out[f] = r
    return out


def _nothing_to_write(p: Plan) -> bool:
    """Whether every shard of this run looks complete by its receipt and size (the CRCs are checked
    by `convert_file` as it resumes each file)."""
    s = p.settings
    return s.resume and all(len(_completed(p, i, False)) == len(s.selected_folds) for i in p.file_numbers)


class RecordBuffers:
    """Per process: the buffers one record passes through (row-major frames, NaN mask, NaN -> 0,
    float64 for the statistics, the encoded Example), reused from record to record. Fresh ~250 KB
    arrays per record cost page faults and zeroing in the kernel, which two workers then contend for."""

    def __init__(self) -> None:
        self.rows = 0
        self.encoded = ExampleBuffer()

    def _grow(self, n: int) -> None:
        if n > self.rows:
            self.rows = max(n, int(self.rows * 1.25), 256)
            cols = vocab.N_COLS
            self.frames = np.empty((self.rows, cols), np.float32)
            self.nan = np.empty((self.rows, cols), bool)
            self.zeroed = np.empty((self.rows, cols), np.float32)
            self.f64 = np.empty((self.rows, cols), np.float64)

    def record(self, lm, k: int, meta: dict[str, Any], s: Settings, stats: ColumnStats) -> memoryview:
        """Sequence k of `lm` as encoded Example bytes (a view of the reused buffer), its frames
        added to `stats`."""
        self._grow(lm.n_rows(k))
        frames = lm.frames(k, out=self.frames)
        n = frames.shape[0]
        nan = np.isnan(frames, out=self.nan[:n])
        zeroed = self.zeroed[:n]
        np.copyto(zeroed, frames)
        np.copyto(zeroed, 0, where=nan)  # shared by frame_mean and the statistics
        rec = make_record(meta, frames, s.weight, s.eos_always, zeroed)
        stats.add_zeroed(zeroed, nan, self.f64)
        return encode_record_into(rec, self.encoded)


_BUFFERS = RecordBuffers()


def convert_file(p: Plan, i: int) -> dict[str, Any]:
    """Write the selected folds' shards of parquet file i that are not complete already, holding
    their unit locks; one receipt per shard written."""
    s = p.settings
    with locked_all(s.receipts, map(layout.lock_name, p.numbers(i))):
        done = _completed(p, i, s.verify_resumed) if s.resume else {}
        summary = {"pid": os.getpid(), "file_index": i, "records": {f: 0 for f in s.selected_folds},
                   "shards": [], "resumed": len(done), "missing": 0}
        for f, r in done.items():
            summary["records"][f] = r["shard"]["records"] if r["shard"] else 0
            summary["missing"] += r.get("missing", 0)
        todo = [f for f in s.selected_folds if f not in done]
        if todo:
            _write_file(p, i, todo, summary)
    return summary


def _write_file(p: Plan, i: int, todo: list[int], summary: dict[str, Any]) -> None:
    from aslfr.convert.shards import ShardWriter, reference_order

    s = p.settings
    path = p.files[i]
    t0 = time.perf_counter()
    lm = read_landmarks(path, reuse_buffer=True, options=s.storage_options)
    if len(lm) == 0:
        raise InputError(f"{path}: empty parquet file (no frames)")
    groups: dict[int, list[int]] = {f: [] for f in todo}
    present = set()
    for k, sid in enumerate(lm.sequence_ids.tolist()):
        row = p.meta.get(sid)
        if row is None:
            if sid in p.skipped:
                continue
            raise InputError(f"{path}: sequence {sid}: in the parquet file but not in the CSV")
        present.add(sid)
        if row["fold"] in groups:
            groups[row["fold"]].append(k)
    missing: dict[int, list[int]] = {f: [] for f in todo}
    for sid in p.by_file.get(path, []):
        if sid not in present and p.meta[sid]["fold"] in missing:
            missing[p.meta[sid]["fold"]].append(sid)
    if s.strict and any(missing.values()):
        sid = next(m[0] for m in missing.values() if m)
        raise InputError(f"{path}: sequence {sid}: in the CSV but not in the parquet file (strict=true)")
    source = _relative(path, s.data)
    cfg = s.output_config()
    receipts.withdraw_manifest(s.records)
    for f, ks in groups.items():
        number = layout.shard_number(i, f, s.folds)
        stats = ColumnStats()
        with ShardWriter(s.records, number, len(ks), s.index_files) as w:
            for pos in reference_order(len(ks), s.shuffle_buffer, s.shuffle_seed):
                k = ks[pos]
                w.write(_BUFFERS.record(lm, k, p.meta[int(lm.sequence_ids[k])], s, stats))
        shard = w.info.to_dict() if w.info else None
        receipts.write_receipt(s.records, number, {
            "config": cfg, "inputs": p.inputs[i], "file_index": i, "fold": f, "source": source, "shard": shard,
            "missing": len(missing[f]), "stats": stats.to_dict()})
        summary["records"][f] = len(ks)
        summary["missing"] += len(missing[f])
        if shard:
            summary["shards"].append(shard["name"])
    del lm
    summary["peak_rss"] = peak_rss_mb()
    summary["seconds"] = time.perf_counter() - t0


def _relative(path: str, data: Store) -> str:
    """`path` relative to the data folder where it lies inside it (a URL compared as a string), else `path`."""
    if data.is_local:
        return str(Path(path).relative_to(data.root)) if Path(path).is_relative_to(data.root) else path
    return path.removeprefix(f"{data.root}/")


def _start_method(s: Settings) -> str | None:
    """The configured start method; on Linux default to fork, which also works inside the joblib
    launcher's loky workers (where torch's default fails) and keeps worker start-up cheap."""
    if s.multiprocessing_context:
        return s.multiprocessing_context
    return "fork" if sys.platform.startswith("linux") else None


def _shutdown(it) -> None:
    """Stop the loader's workers now: on an interrupt, its `__del__` at exit would print a
    traceback about workers that are already gone."""
    try:
        getattr(it, "_shutdown_workers", lambda: None)()
    except Exception:  # workers killed by the same signal
        pass


def _identity(x):
    return x


def _unwind_on_sigterm(worker_id: int) -> None:
    """torch's workers end at SIGTERM without unwinding, so a worker stopped mid-shard would leave
    its temporary file: give them back the handler the command installed (`one_line_errors`)."""
    handler = signal.getsignal(signal.SIGTERM)
    if callable(handler):
        signal.signal(signal.SIGTERM, handler)


def inference_args_bytes() -> bytes:
    """`inference_args.json` exactly as the reference's json.dump writes it."""
    return json.dumps({"selected_columns": vocab.SELECTED_COLUMNS}).encode()


def run(s: Settings, finalize: bool = True) -> dict[str, Any]:
    """Convert one split (or this job's part of it); return the summary printed at the end."""
    s.check()
    t0 = time.perf_counter()
    p = plan(s)
    _write_inference_args(s)
    with claimed(s.records, p.fingerprint()):
        result = _convert(p, t0)
        if finalize:
            result["finalized"] = finalize_split(p)[0] is not None
    if s.report:
        store, name = Store.of_file(s.report, s.storage_options)
        store.write_bytes(name, json.dumps(result, indent=1).encode())
    return result


def _write_inference_args(s: Settings) -> None:
    """`inference_args.json` in out_dir, unless it is there already (the first write into an out_dir)."""
    try:
        s.out.makedirs()
    except FileExistsError:
        raise InputError(f"out_dir={s.out_dir}: a file, not a folder") from None
    except NotADirectoryError:
        raise InputError(f"out_dir={s.out_dir}: cannot be a folder, a file is in its path") from None
    try:
        same = s.out.read_bytes(layout.INFERENCE_ARGS) == inference_args_bytes()
    except FileNotFoundError:
        same = False
    if not same:
        s.out.write_bytes(layout.INFERENCE_ARGS, inference_args_bytes())


def _summaries(p: Plan) -> Iterator[dict[str, Any]]:
    """Each file's summary: from DataLoader workers when there is work for them, else converted (or
    resumed) in this process, one file after another."""
    s = p.settings
    files = FileConversion(p)
    if s.num_workers == 0 or _nothing_to_write(p):
        yield from (files[j] for j in range(len(files)))
        return
    from torch.utils.data import DataLoader

    it = iter(DataLoader(files, batch_size=None, shuffle=False, num_workers=s.num_workers, collate_fn=_identity,
                         worker_init_fn=_unwind_on_sigterm, multiprocessing_context=_start_method(s),
                         prefetch_factor=1))
    try:
        yield from it
    finally:
        _shutdown(it)


def _convert(p: Plan, t0: float) -> dict[str, Any]:
    """Write this run's shards and receipts (`_summaries`); the summary."""
    from tqdm import tqdm

    s = p.settings
    s.records.makedirs()
    per_fold = {f: 0 for f in s.selected_folds}
    shards, resumed, files_resumed, missing = [], 0, 0, 0
    workers: dict[int, tuple[float, float]] = {}  # pid -> (rss at start, peak rss)
    file_seconds: list[float] = []
    startup = process_age()
    disable = None if s.progress else True  # None: tqdm shows bars on a terminal only, never in logs
    with tqdm(total=len(p.file_numbers), desc=f"{s.split} files", unit="file", disable=disable) as files_bar, \
            tqdm(total=sum(p.expected.values()), desc=f"{s.split} records", unit="rec", disable=disable) as rec_bar:
        summaries = _summaries(p)
        try:
            for summary in summaries:
                if "error" in summary:
                    raise InputError(summary["error"])
                for f, n in summary["records"].items():
                    per_fold[f] += n
                    rec_bar.update(n)
                shards += summary["shards"]
                if "peak_rss" in summary:
                    workers[summary["pid"]] = (summary["rss_start"], summary["peak_rss"])
                    file_seconds.append(round(summary["seconds"], 3))
                resumed += summary["resumed"]
                files_resumed += summary["resumed"] == len(s.selected_folds)
                missing += summary["missing"]
                files_bar.update(1)
        finally:
            summaries.close()  # stops the workers now, not at garbage collection
    result = {
        "split": s.split,
        "records_dir": str(s.records_dir),
        "records_per_fold": per_fold,
        "files": len(p.file_numbers),
        "files_resumed": files_resumed,
        "shards_resumed": resumed,
        "shards_written": len(shards),
        "skipped_unknown_chars": len(p.skipped),
        "missing_in_parquet": missing,
        "seconds": round(time.perf_counter() - t0, 2),
        "startup_seconds": round(startup, 2),
        "file_seconds": file_seconds,
        "peak_rss_mb": {"main": round(peak_rss_mb(), 1),
                        "worker": round(max((w[1] for w in workers.values()), default=0.0), 1),
                        "worker_growth": round(max((w[1] - w[0] for w in workers.values()), default=0.0), 1)},
        "finalized": False,
    }
    return result


def finalize_split(p: Plan) -> tuple[Manifest | None, list[int]]:
    """Write the manifest and statistics if every unit of the split is complete for this config and
    these inputs; holds the run-wide lock and every unit lock, so no unit is being written meanwhile.
    Returns the manifest, or None and the shard numbers of the units missing or out of date."""
    s = p.settings
    numbers = [layout.shard_number(i, f, s.folds) for i in range(len(p.files)) for f in range(s.folds)]
    with claimed(s.records, p.fingerprint()), s.receipts.lock(layout.lock_name()), \
            locked_all(s.receipts, map(layout.lock_name, numbers)):
        held, missing = {}, []
        for n in numbers:
            r = receipts.load_receipt(s.records, n)
            if receipts.receipt_holds(s.records, r, s.output_config(), False, p.inputs[n // s.folds]):
                held[n] = r
            else:
                missing.append(n)
        if missing:
            return None, missing
        return receipts.finalize(s.records, held, s.output_config()), []


def format_summary(r: dict[str, Any], in_sweep: bool = False) -> str:
    folds = ", ".join(f"fold {f}: {n}" for f, n in r["records_per_fold"].items())
    lines = [f"{r['split']}: {sum(r['records_per_fold'].values())} records ({folds}) from {r['files']} parquet "
             f"file(s) in {r['seconds']:.1f} s -> {r['records_dir']}",
             f"  {r['shards_written']} shard(s) written"
             + (f", {r['shards_resumed']} already complete (resumed): config and inputs unchanged, "
                f"{r['files_resumed']} file(s) not read" if r["shards_resumed"] else "")]
    if r["missing_in_parquet"]:
        lines.append(f"  {r['missing_in_parquet']} CSV sequence(s) not found in their parquet file (skipped)")
    if r["skipped_unknown_chars"]:
        lines.append(f"  {r['skipped_unknown_chars']} sequence(s) skipped for characters outside the map")
    if r["finalized"]:
        lines.append("  manifest.json, means.npy, stds.npy written")
    elif not in_sweep:
        lines.append("  other folds/parts pending: run `python -m aslfr.merge out_dir=...` when all jobs are done")
    return "\n".join(lines)
