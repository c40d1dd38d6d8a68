"""TFRecord framing and the writer's record layout parsed in numba, without the GIL: both masked
CRC32Cs of every record checked (slicing-by-8), then each Example's 19 features located and their
numbers read in one pass, with no Python per feature. A record in any other layout (another
writer's key order, unpacked lists, the "(a,b)" string quirk, an error to report) goes to the
Python decoder (`schema.decode_record`), which gives the same values or the error it names."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from llvmlite import binding, ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from aslfr.data.kernels import jit
from aslfr.format.schema import SCHEMA, decode_record
from aslfr.format.tfrecord import OVERHEAD, CorruptRecordError

_M32 = np.uint64(0xFFFFFFFF)
_MASK_DELTA = np.uint64(0xA282EAD8)
_U8, _U15, _U16, _U17, _U24, _U32 = (np.uint64(s) for s in (8, 15, 16, 17, 24, 32))
_FF = np.uint64(0xFF)


def _crc_tables() -> np.ndarray:
    """CRC32C (Castagnoli, reflected 0x82F63B78) slicing-by-8 tables [8, 256]."""
    t = np.zeros((8, 256), np.uint64)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
        t[0, i] = c
    for k in range(1, 8):
        for i in range(256):
            t[k, i] = (int(t[k - 1, i]) >> 8) ^ int(t[0, int(t[k - 1, i]) & 0xFF])
    return t


_CRC = _crc_tables()

# the layout: features in key order (the writer sorts them), each with its kind and where it goes
_NAMES = sorted(SCHEMA)
_INT, _INTS, _FLOAT, _FRAMES, _TEXT = range(5)


def _layout():
    kinds, counts, cols, names, ints, floats, texts = [], [], [], [], [], [], []
    for name in _NAMES:
        f = SCHEMA[name]
        if f.kind == "byte":
            kind, col = _TEXT, len(texts)
            texts.append(name)
        elif f.kind == "float":
            kind, col = (_FRAMES, 0) if f.shape else (_FLOAT, len(floats))
            floats += [] if f.shape else [name]
        else:
            kind, col = (_INTS if f.shape else _INT), sum(c for _, c in ints)
            ints.append((name, f.shape[0] if f.shape else 1))
        kinds.append(kind)
        counts.append(f.shape[0] if kind == _INTS else f.shape[1] if kind == _FRAMES else 1)
        cols.append(col)
        names.append(name.encode())
    offsets = np.cumsum([0] + [len(n) for n in names])
    return (np.array(kinds, np.int64), np.array(counts, np.int64), np.array(cols, np.int64),
            np.frombuffer(b"".join(names), np.uint8).copy(), offsets.astype(np.int64), ints, floats, texts)


_KINDS, _COUNTS, _COLS, _NAME_BYTES, _NAME_OFFSETS, _INT_FEATURES, _FLOAT_FEATURES, _TEXT_FEATURES = _layout()
_N_INTS = sum(c for _, c in _INT_FEATURES)


@jit
def crc32c_table(buf, words, start, end, table):
    """CRC32C of buf[start:end] (uint8), slicing by 8 (`words`: unused, as `crc32c_sse42`)."""
    crc = _M32
    i = start
    while i + 8 <= end:
        one = crc ^ (np.uint64(buf[i]) | (np.uint64(buf[i + 1]) << _U8) | (np.uint64(buf[i + 2]) << _U16)
                     | (np.uint64(buf[i + 3]) << _U24))
        two = (np.uint64(buf[i + 4]) | (np.uint64(buf[i + 5]) << _U8) | (np.uint64(buf[i + 6]) << _U16)
               | (np.uint64(buf[i + 7]) << _U24))
        crc = (table[7, one & _FF] ^ table[6, (one >> _U8) & _FF] ^ table[5, (one >> _U16) & _FF]
               ^ table[4, one >> _U24] ^ table[3, two & _FF] ^ table[2, (two >> _U8) & _FF]
               ^ table[1, (two >> _U16) & _FF] ^ table[0, two >> _U24])
        i += 8
    while i < end:
        crc = table[0, (crc ^ np.uint64(buf[i])) & _FF] ^ (crc >> _U8)
        i += 1
    return crc ^ _M32


def _x86_crc(bits: int, data_type):
    """The SSE4.2 crc32 instruction on `bits`-bit data, as a numba intrinsic."""
    acc = types.uint64 if bits == 64 else types.uint32

    @intrinsic
    def crc(typingctx, c, data):
        def codegen(context, builder, signature, args):
            width = 64 if bits == 64 else 32
            fnty = ir.FunctionType(ir.IntType(width), [ir.IntType(width), ir.IntType(bits)])
            fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.x86.sse42.crc32.{width}.{bits}")
            return builder.call(fn, args)
        return acc(acc, data_type), codegen
    return crc


_crc_byte, _crc_word = _x86_crc(8, types.uint8), _x86_crc(64, types.uint64)


@jit
def crc32c_sse42(buf, words, start, end, table):
    """CRC32C of buf[start:end] by the CPU's crc32 instruction, 8 bytes at a time from `words`
    (buf as uint64: buf must start 8-byte aligned); ~5x the tables' speed."""
    c = np.uint32(0xFFFFFFFF)
    i = start
    while i < end and i % 8:
        c = _crc_byte(c, buf[i])
        i += 1
    crc = np.uint64(c)
    while i + 8 <= end:
        crc = _crc_word(crc, words[i // 8])
        i += 8
    c = np.uint32(crc)
    while i < end:
        c = _crc_byte(c, buf[i])
        i += 1
    return np.uint64(c) ^ _M32


SSE42 = platform.machine().lower() in ("x86_64", "amd64") and "sse4.2" in binding.get_host_cpu_features().flatten()
crc32c = crc32c_sse42 if SSE42 else crc32c_table


@jit
def _masked_crc_ok(buf, words, start, end, at, table):
    """Whether the 4 bytes at `at` are the masked CRC32C of buf[start:end], as TFRecord frames it."""
    crc = crc32c(buf, words, start, end, table)
    masked = ((((crc >> _U15) | (crc << _U17)) & _M32) + _MASK_DELTA) & _M32
    stored = (np.uint64(buf[at]) | (np.uint64(buf[at + 1]) << _U8) | (np.uint64(buf[at + 2]) << _U16)
              | (np.uint64(buf[at + 3]) << _U24))
    return masked == stored


@jit
def scan(buf, words, verify, table):
    """The records framed back to back in buf: (data starts, data lengths, count, error, error's
    record, error's byte). error: 0 none, 1 truncated header, 2 length CRC, 3 truncated record,
    4 data CRC; the records before the error are valid."""
    n = len(buf)
    starts = np.empty(n // OVERHEAD + 1, np.int64)
    lengths = np.empty(n // OVERHEAD + 1, np.int64)
    pos, k = 0, 0
    while pos < n:
        if pos + 12 > n:
            return starts, lengths, k, 1, k, pos
        if verify and not _masked_crc_ok(buf, words, pos, pos + 8, pos + 8, table):
            return starts, lengths, k, 2, k, pos
        length = np.uint64(0)
        for j in range(8):
            length |= np.uint64(buf[pos + j]) << np.uint64(8 * j)
        if length > np.uint64(n - pos - OVERHEAD):
            return starts, lengths, k, 3, k, pos
        s = pos + 12
        e = s + np.int64(length)
        if verify and not _masked_crc_ok(buf, words, s, e, e, table):
            return starts, lengths, k, 4, k, pos
        starts[k], lengths[k] = s, e - s
        k += 1
        pos = e + 4
    return starts, lengths, k, 0, k, pos


@jit
def _varint(buf, pos, end):
    """(value, next position), or position -1 past `end` or beyond 10 bytes."""
    v, shift = np.uint64(0), 0
    while pos < end and shift < 64:
        b = np.uint64(buf[pos])
        pos += 1
        v |= (b & np.uint64(0x7F)) << np.uint64(shift)
        if b < np.uint64(0x80):
            return v, pos
        shift += 7
    return v, -1


@jit
def _field(buf, pos, end, tag):
    """A length-delimited field `tag` at pos: (payload start, payload end), or (-1, -1)."""
    if pos >= end or buf[pos] != tag:
        return -1, -1
    n, p = _varint(buf, pos + 1, end)
    if p < 0 or p + np.int64(n) > end:
        return -1, -1
    return p, p + np.int64(n)


@jit
def _parse_one(buf, s, e, kinds, counts, cols, names, name_offsets, ints, floats_at, frames_at, texts_at):
    """One Example in the writer's layout into its rows; False for any other layout."""
    p, end = _field(buf, s, e, 0x0A)  # Features
    if p < 0 or end != e:
        return False
    for k in range(len(kinds)):
        es, ee = _field(buf, p, end, 0x0A)  # map entry
        if es < 0:
            return False
        ks, ke = _field(buf, es, ee, 0x0A)  # key
        a, b = name_offsets[k], name_offsets[k + 1]
        if ks < 0 or ke - ks != b - a:
            return False
        for j in range(b - a):
            if buf[ks + j] != names[a + j]:
                return False
        vs, ve = _field(buf, ke, ee, 0x12)  # Feature
        kind = kinds[k]
        tag = 0x0A if kind == 4 else 0x12 if kind == 2 or kind == 3 else 0x1A
        ls, le = _field(buf, vs, ee, tag)  # its list
        if vs < 0 or ve != ee or ls < 0 or le != ee:
            return False
        ps, pe = _field(buf, ls, le, 0x0A)  # the packed values (a BytesList: its one value)
        if ps < 0 or pe != le:
            return False
        if kind == 4:
            texts_at[cols[k], 0], texts_at[cols[k], 1] = ps, pe - ps
        elif kind == 2:
            if pe - ps != 4:
                return False
            floats_at[cols[k]] = ps
        elif kind == 3:
            if (pe - ps) % (4 * counts[k]):
                return False
            frames_at[0], frames_at[1] = ps, (pe - ps) // (4 * counts[k])
        else:
            q, col = ps, cols[k]
            for j in range(counts[k]):
                v, q = _varint(buf, q, pe)
                if q < 0:
                    return False
                ints[col + j] = np.int64(v)
            if q != pe:
                return False
        p = ee
    return p == end


@jit
def parse(buf, starts, lengths, kinds, counts, cols, names, name_offsets, ints, floats_at, frames_at, texts_at, ok):
    """Every record buf[starts[r]:starts[r] + lengths[r]]: ok[r] when in the writer's layout."""
    for r in range(len(starts)):
        ok[r] = _parse_one(buf, starts[r], starts[r] + lengths[r], kinds, counts, cols, names, name_offsets,
                           ints[r], floats_at[r], frames_at[r], texts_at[r])


class Parsed(NamedTuple):
    """A buffer's records, located and read: where each record's data is, whether it has the
    writer's layout (ok), its ints [R, n] (scalars, phrase_, cls_label), float scalars [R, 3],
    frames (byte offset, frames) and texts (byte offset, length) in the buffer."""
    buf: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    ok: np.ndarray
    ints: np.ndarray
    floats: np.ndarray
    frames_at: np.ndarray
    texts_at: np.ndarray


def aligned(data) -> np.ndarray:
    """data as uint8, starting 8-byte aligned (copied if it does not)."""
    buf = np.frombuffer(data, np.uint8)
    return buf if buf.ctypes.data % 8 == 0 else buf.copy()


def words(buf: np.ndarray) -> np.ndarray:
    """An aligned uint8 buffer's whole 8-byte words, as uint64 (for `crc32c_sse42`)."""
    return buf[:len(buf) // 8 * 8].view(np.uint64)


_ERRORS = {1: "truncated length header", 2: "length CRC mismatch", 3: "truncated record", 4: "data CRC mismatch"}


def parse_framed(data, path: str | Path = "records", verify: bool = True, first_record: int = 0,
                 start: int = 0) -> Parsed:
    """The TFRecords framed back to back in `data` (bytes-like: a file, or its byte range from
    `start` holding whole records), CRCs checked with `verify`. Errors name the file, the record
    (counted from first_record) and its byte, as `tfrecord.records_from`."""
    buf = aligned(data)
    starts, lengths, n, err, at, pos = scan(buf, words(buf), verify, _CRC)
    if err:
        raise CorruptRecordError(f"{path}: record {first_record + at} at byte {start + pos}: {_ERRORS[err]}")
    starts, lengths = starts[:n].copy(), lengths[:n].copy()
    ints = np.zeros((n, _N_INTS), np.int64)
    floats_at = np.zeros((n, len(_FLOAT_FEATURES)), np.int64)
    frames_at = np.zeros((n, 2), np.int64)
    texts_at = np.zeros((n, len(_TEXT_FEATURES), 2), np.int64)
    ok = np.zeros(n, np.bool_)
    parse(buf, starts, lengths, _KINDS, _COUNTS, _COLS, _NAME_BYTES, _NAME_OFFSETS, ints, floats_at, frames_at,
          texts_at, ok)
    floats = buf[floats_at[..., None] + np.arange(4)].copy().view("<f4")[..., 0]
    return Parsed(buf, starts, lengths, ok, ints, floats, frames_at, texts_at)


def decode_framed(data, path: str | Path = "records", verify: bool = True, first_record: int = 0,
                  start: int = 0) -> list[dict[str, Any]]:
    """`schema.decode_record` of every record framed in `data` (see `parse_framed`): the same
    values, frames as float32 views into `data`."""
    p = parse_framed(data, path, verify, first_record, start)
    out = []
    for r in range(len(p.starts)):
        if not p.ok[r]:
            a = int(p.starts[r])
            out.append(decode_record(memoryview(p.buf)[a:a + int(p.lengths[r])],
                                     f"{path}: record {first_record + r}"))
            continue
        out.append(_record(p, r))
    return out


def _record(p: Parsed, r: int) -> dict[str, Any]:
    rec: dict[str, Any] = {}
    row, col = p.ints[r], 0
    for name, count in _INT_FEATURES:
        rec[name] = int(row[col]) if count == 1 else row[col:col + count].copy()
        col += count
    for j, name in enumerate(_FLOAT_FEATURES):
        rec[name] = float(p.floats[r, j])
    for j, name in enumerate(_TEXT_FEATURES):
        a, n = p.texts_at[r, j]
        rec[name] = bytes(p.buf[a:a + n]).decode()
    a, t = p.frames_at[r]
    rec["frames"] = np.frombuffer(p.buf, "<f4", int(t) * SCHEMA["frames"].shape[1], int(a)).reshape(int(t), -1)
    return {name: rec[name] for name in SCHEMA}
