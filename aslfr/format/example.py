"""`tf.train.Example` wire format, encoded and decoded directly.

Building the protobuf through `FloatList(value=...)` converts every float and costs ~13 ms per
record; a packed float list on the wire is just the little-endian float32 bytes behind a varint
length, so the frames go in with one memcpy. Keys are written sorted, as protobuf's deterministic
serializer does, so the bytes are reproducible and `tf.train.Example` parses them identically."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np



_SMALL = [bytes((i,)) for i in range(0x80)]


def varint(n: int) -> bytes:
    """Protobuf base-128 varint; negative ints as 64-bit two's complement (10 bytes)."""
    if 0 <= n < 0x80:
        return _SMALL[n]
    n &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _packed_ints(values: Iterable[int]) -> bytes:
    values = [int(v) for v in values]
    if all(0 <= v < 0x80 for v in values):
        return bytes(values)
    return b"".join(varint(v) for v in values)


_KEYS: dict[str, bytes] = {}


def _key(name: str) -> bytes:
    """Serialized map-entry key field, cached per feature name."""
    k = _KEYS.get(name)
    if k is None:
        raw = name.encode()
        k = _KEYS[name] = b"\x0a" + varint(len(raw)) + raw
    return k


def encode_example(features: Mapping[str, tuple[str, Any]]) -> bytes:
    """Serialize {name: (kind, values)} as a `tf.train.Example` (keys sorted)."""
    return b"".join(example_chunks(features))


class ExampleBuffer:
    """Encodes Examples into one reused buffer, so that a writer touches no fresh memory per record
    (fresh ~250 KB allocations cost page faults and kernel zeroing). Each result is a view that is
    valid until the next `encode`."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def encode(self, features: Mapping[str, tuple[str, Any]]) -> memoryview:
        chunks = example_chunks(features)
        size = sum(len(c) for c in chunks)
        if len(self.buf) < size:
            self.buf = bytearray(size + size // 4)  # a new one: views of the old stay valid
        view = memoryview(self.buf)
        pos = 0
        for c in chunks:
            view[pos:pos + len(c)] = c
            pos += len(c)
        return view[:size]


def example_chunks(features: Mapping[str, tuple[str, Any]]) -> list:
    """The serialized Example as a list of byte chunks. Each map entry is `0a len {0a len key}
    {12 len Feature}`; a float list's payload is a zero-copy view of its array, so the frames are
    copied once, where the chunks are joined."""
    chunks: list = []
    for name in sorted(features):
        kind, values = features[name]
        raw = None
        if kind == "float":
            raw = memoryview(np.ascontiguousarray(values, dtype="<f4")).cast("B")
            payload_len = len(raw)
            tag = b"\x12"
        else:
            if kind == "int":
                payload = _packed_ints(values)
                tag = b"\x1a"
            elif kind == "byte":
                payload = b"".join(b"\x0a" + varint(len(v)) + v for v in values)
                tag = b"\x0a"
            else:
                raise ValueError(f"unknown feature kind {kind!r}")
            payload_len = len(payload)
        # Int64List/FloatList wrap a packed field 1; BytesList is already its repeated field 1
        inner = payload_len if kind == "byte" else payload_len + 1 + len(varint(payload_len))
        feature = tag + varint(inner) + (b"" if kind == "byte" else b"\x0a" + varint(payload_len))
        value_len = len(feature) + payload_len
        key = _key(name)
        head = key + b"\x12" + varint(value_len) + feature
        chunks.append(b"\x0a" + varint(len(head) + payload_len) + head)
        chunks.append(raw if raw is not None else payload)
    body_len = sum(len(c) for c in chunks)
    return [b"\x0a" + varint(body_len), *chunks]


class DecodeError(ValueError):
    """The bytes are not a well-formed `tf.train.Example`."""


def _read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise DecodeError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise DecodeError("varint too long")


def _fields(buf: memoryview):
    """Yield (field_number, wire_type, value) for one message; value is a memoryview for LEN fields."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _read_varint(buf, pos)
        field, wt = key >> 3, key & 7
        if wt == 2:
            n, pos = _read_varint(buf, pos)
            if pos + n > end:
                raise DecodeError("field runs past the end of the message")
            yield field, wt, buf[pos:pos + n]
            pos += n
        elif wt == 0:
            v, pos = _read_varint(buf, pos)
            yield field, wt, v
        elif wt == 5:
            yield field, wt, buf[pos:pos + 4]
            pos += 4
        elif wt == 1:
            yield field, wt, buf[pos:pos + 8]
            pos += 8
        else:
            raise DecodeError(f"unsupported wire type {wt}")
    if pos != end:
        raise DecodeError("message runs past its end")


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _decode_list(kind: str, buf: memoryview) -> Any:
    if kind == "float":
        packed, singles = [], []
        for field, wt, v in _fields(buf):
            if field == 1 and wt == 2:
                packed.append(np.frombuffer(v, dtype="<f4"))
            elif field == 1 and wt == 5:
                singles.append(np.frombuffer(v, dtype="<f4"))
        parts = packed + singles
        return parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.empty(0, np.float32)
    if kind == "int":
        out: list[int] = []
        for field, wt, v in _fields(buf):
            if field == 1 and wt == 2:
                raw = bytes(v)
                if raw.isascii():  # every varint is one byte
                    out.extend(raw)
                else:
                    pos = 0
                    while pos < len(v):
                        x, pos = _read_varint(v, pos)
                        out.append(_signed(x))
            elif field == 1 and wt == 0:
                out.append(_signed(v))
        return out
    return [bytes(v) for field, wt, v in _fields(buf) if field == 1 and wt == 2]


def decode_example(data: bytes | memoryview) -> dict[str, tuple[str, Any]]:
    """Parse a serialized `tf.train.Example` into {name: (kind, values)}.

    Values: float -> float32 ndarray (a view into `data`), int -> list[int], byte -> list[bytes].
    One flat loop handles the canonical layout (what aslfr and TensorFlow write); anything else
    (unpacked lists, unknown fields) goes through the general field-by-field parser."""
    try:
        return _decode_canonical(memoryview(data))
    except _NotCanonical:
        return _decode_general(data)


class _NotCanonical(Exception):
    pass


def _decode_canonical(buf: memoryview) -> dict[str, tuple[str, Any]]:
    out: dict[str, tuple[str, Any]] = {}
    n = len(buf)
    pos = 0
    while pos < n:
        if buf[pos] != 0x0A:
            raise _NotCanonical
        ln = buf[pos + 1]
        pos += 2
        if ln >= 0x80:
            ln, pos = _read_varint(buf, pos - 1)
        end = pos + ln
        if end > n:
            raise DecodeError("features run past the end of the example")
        while pos < end:  # map entries: 0a len {0a klen key} {12 vlen {tag len {0a plen payload}}}
            if buf[pos] != 0x0A:
                raise _NotCanonical
            entry_len = buf[pos + 1]
            if entry_len >= 0x80:
                entry_len, p = _read_varint(buf, pos + 1)
            else:
                p = pos + 2
            entry_end = p + entry_len
            if buf[p] != 0x0A:
                raise _NotCanonical
            klen = buf[p + 1]
            if klen >= 0x80:
                raise _NotCanonical
            key = bytes(buf[p + 2:p + 2 + klen]).decode()
            p += 2 + klen
            if buf[p] != 0x12:
                raise _NotCanonical
            vlen, p = _read_varint(buf, p + 1)
            tag = buf[p]
            llen, p = _read_varint(buf, p + 1)
            list_end = p + llen
            if list_end != entry_end or entry_end > end:
                raise _NotCanonical
            if tag == 0x0A:  # BytesList: repeated 0a len bytes
                values = []
                while p < list_end:
                    if buf[p] != 0x0A:
                        raise _NotCanonical
                    blen, p = _read_varint(buf, p + 1)
                    values.append(bytes(buf[p:p + blen]))
                    p += blen
                out[key] = ("byte", values)
            elif tag == 0x12 or tag == 0x1A:
                if p == list_end:
                    payload = buf[p:p]
                else:
                    if buf[p] != 0x0A:
                        raise _NotCanonical
                    plen, p = _read_varint(buf, p + 1)
                    if p + plen != list_end:
                        raise _NotCanonical
                    payload = buf[p:list_end]
                if tag == 0x12:
                    if len(payload) % 4:
                        raise DecodeError(f"float list {key!r} is not a whole number of floats")
                    out[key] = ("float", np.frombuffer(payload, dtype="<f4"))
                else:
                    raw = bytes(payload)
                    if raw.isascii():
                        out[key] = ("int", list(raw))
                    else:
                        values, q = [], 0
                        while q < len(payload):
                            x, q = _read_varint(payload, q)
                            values.append(_signed(x))
                        out[key] = ("int", values)
            else:
                raise _NotCanonical
            pos = entry_end
    return out


def _decode_general(data: bytes | memoryview) -> dict[str, tuple[str, Any]]:
    out: dict[str, tuple[str, Any]] = {}
    for f1, _, features in _fields(memoryview(data)):
        if f1 != 1:
            continue
        for f2, _, entry in _fields(features):
            if f2 != 1:
                continue
            key, value = "", None
            for f3, _, v in _fields(entry):
                if f3 == 1:
                    key = bytes(v).decode()
                elif f3 == 2:
                    value = v
            kind, values = "float", np.empty(0, np.float32)
            if value is not None:
                for f4, _, inner in _fields(value):
                    if f4 in (1, 2, 3):
                        kind = {1: "byte", 2: "float", 3: "int"}[f4]
                        values = _decode_list(kind, inner)
            out[key] = (kind, values)
    return out
