"""The on-disk format layer: `manifest.json` as one typed definition, `verify`'s verdict on every
kind of damage (one line, exit 1), and readers that check untrusted lengths before allocating."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import crc32c
import pytest

from aslfr.format.folder import resolve_shards
from aslfr.format.manifest import Manifest, ManifestError, load_manifest
from aslfr.source.synthetic import SplitSpec, generate
from conftest import convert


@pytest.fixture(scope="module")
def finished_once(tmp_path_factory) -> Path:
    """A converted output folder (train split, index files), made once per module."""
    root = tmp_path_factory.mktemp("format")
    data = generate(root / "data", SplitSpec(2, 8, 4, 6), SplitSpec(1, 8, 4, 4), seed=3)
    convert(data, root / "out", "num_workers=0")
    return root / "out"


@pytest.fixture
def out(finished_once, tmp_path) -> Path:
    """A private copy of the converted output folder, free to damage."""
    return Path(shutil.copytree(finished_once, tmp_path / "out"))


def records(out: Path) -> Path:
    return out / "tfrecords" / "train"


def edit_manifest(d: Path, fn) -> None:
    """Rewrite d/manifest.json through `fn(dict)`, formatted as the writer formats it."""
    path = d / "manifest.json"
    m = json.loads(path.read_text())
    fn(m)
    path.write_text(json.dumps(m, indent=1, sort_keys=True) + "\n")


# -- manifest.json, defined once ---------------------------------------------------------------


def test_manifest_reads_what_the_files_say_and_writes_the_same_bytes(out):
    d = records(out)
    text = (d / "manifest.json").read_text()
    m = Manifest.from_json(text)
    assert m.to_json() == text  # the writer's exact formatting (indent=1, sorted keys)
    assert m.version == 1 and m.folds == 4
    for s in m.shards:
        raw = (d / s.name).read_bytes()
        number, count = map(int, s.name.split(".")[:2])
        assert (s.bytes, s.crc32c, s.records, s.fold) == (len(raw), f"{crc32c.crc32c(raw):08x}", count, number % 4)
        idx = (d / s.name.replace(".tfrec", ".tfindex")).read_bytes()
        assert (s.index_bytes, s.records) == (len(idx), idx.count(b"\n"))
    assert m.records == 16 == sum(m.records_per_fold.values())  # tiny: 2 files x 8 sequences
    assert set(m.records_per_fold) == {0, 1, 2, 3}


@pytest.mark.parametrize("version, found", [(2, "version 2"), ("1", "version '1'"), (None, "no version")])
def test_unknown_manifest_version_is_one_clear_error(out, version, found):
    d = records(out)
    edit_manifest(d, lambda m: m.pop("version") if version is None else m.update(version=version))
    with pytest.raises(ManifestError) as e:
        load_manifest(d)
    assert str(e.value) == (f"{d / 'manifest.json'}: manifest has {found}, this aslfr reads version 1 "
                            "(use the aslfr that wrote it, or convert again)")
    with pytest.raises(ManifestError, match=f"{d / 'manifest.json'}: manifest has {found}"):
        resolve_shards(d)


@pytest.mark.parametrize("key", ["bytes", "name", "records", "crc32c", "fold"])
def test_shard_entry_missing_a_key_names_the_file_and_the_key(out, key, capsys):
    from aslfr.commands.verify import main

    d = records(out)
    edit_manifest(d, lambda m: m["shards"][1].pop(key))
    expected = f'{d / "manifest.json"}: shard entry 1: missing key "{key}"'
    with pytest.raises(ManifestError) as e:
        resolve_shards(d)
    assert str(e.value) == expected
    assert main([str(out)]) == 1
    assert capsys.readouterr().out == f"{d}: FAIL {expected}\n"


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["shards"][0].update(bytes="19997"), "shard entry 0: \"bytes\" is '19997', expected int"),
    (lambda m: m["shards"][0].update(records=True), 'shard entry 0: "records" is True, expected int'),
    (lambda m: m.update(shards={}), '"shards" is {}, expected list[ShardEntry]'),
    (lambda m: m["config"].pop("folds"), '"config" has no fold count ("folds")'),
    (lambda m: m.update(records_per_fold={"x": 1}), '"records_per_fold" is not {fold: records}'),
])
def test_manifest_of_the_wrong_shape_is_one_clear_error(out, edit, message):
    d = records(out)
    edit_manifest(d, edit)
    with pytest.raises(ManifestError) as e:
        load_manifest(d)
    assert str(e.value) == f"{d / 'manifest.json'}: {message}"


# -- verify: every kind of damage is one FAIL line and exit 1 ----------------------------------


def masked(data: bytes) -> bytes:
    """TFRecord's masked CRC32C, worked out here from its definition (rotate right 15, add a constant)."""
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8 & 0xFFFFFFFF).to_bytes(4, "little")


def verify(path, capsys) -> tuple[int, str, str]:
    from aslfr.commands.verify import main

    code = main([str(path)])
    res = capsys.readouterr()
    return code, res.out, res.err


def test_verify_ok(out, capsys):
    assert verify(out, capsys) == (0, f"{records(out)}: OK 7 shards, 16 records, CRCs, indexes and schema verified\n", "")


def first_shard(d: Path) -> Path:
    return d / json.loads((d / "manifest.json").read_text())["shards"][0]["name"]


def test_verify_listed_shard_missing(out, capsys):
    d = records(out)
    shard = first_shard(d)
    shard.unlink()
    assert verify(out, capsys) == (1, f"{d}: FAIL 1 problem(s): {shard.name}: missing\n", "")


def test_verify_unlisted_extra_shard(out, capsys):
    d = records(out)
    shutil.copy(first_shard(d), d / "99.3.tfrec")
    assert verify(out, capsys) == (1, f"{d}: FAIL 1 problem(s): 1 shard(s) not in the manifest, first 99.3.tfrec\n", "")


def test_verify_checksum_mismatch_at_the_same_size(out, capsys):
    d = records(out)
    shard = first_shard(d)
    raw = bytearray(shard.read_bytes())
    raw[12 + 40] ^= 0x01  # inside record 0's payload; the size is unchanged
    shard.write_bytes(bytes(raw))
    assert verify(out, capsys) == (1, f"{d}: FAIL 1 problem(s): {shard.name}: checksum differs from the manifest\n", "")


def test_verify_missing_index_file(out, capsys):
    d = records(out)
    shard = first_shard(d)
    shard.with_suffix(".tfindex").unlink()
    assert verify(out, capsys) == (1, f"{d}: FAIL 1 problem(s): {shard.stem}.tfindex: index file missing\n", "")


@pytest.mark.parametrize("target", ["out", "records"])
def test_verify_no_manifest(out, capsys, target):
    (records(out) / "manifest.json").unlink()
    path = out if target == "out" else records(out)
    assert verify(path, capsys) == (1, f"{path}: FAIL no manifest.json found (is the conversion finished?)\n", "")


def test_verify_record_that_does_not_decode_although_its_crcs_hold(out, capsys):
    """A garbage payload framed with correct CRCs, and the manifest's size and CRC32C made to match,
    so that only decoding can find it."""
    d = records(out)
    shard = first_shard(d)
    raw = shard.read_bytes()
    length = int.from_bytes(raw[:8], "little")
    payload = b"\xff" * length
    raw = raw[:12] + payload + masked(payload) + raw[16 + length:]
    assert raw[8:12] == masked(raw[:8])  # the length header and its CRC are untouched
    shard.write_bytes(raw)

    def fix(m):
        m["shards"][0]["crc32c"] = f"{crc32c.crc32c(raw):08x}"
    edit_manifest(d, fix)
    assert verify(out, capsys) == (
        1, f"{d}: FAIL 1 problem(s): {shard}: record 0: not a valid tf.train.Example (varint too long)\n", "")


# -- verify: a manifest that contradicts itself or its shard names -----------------------------


def per_fold_from_names(d: Path, folds: int) -> dict[int, int]:
    """Records per fold worked out from the shard file names alone ({number}.{count}.tfrec)."""
    out = {f: 0 for f in range(folds)}
    for p in d.glob("*.tfrec"):
        number, count = map(int, p.name.split(".")[:2])
        out[number % folds] += count
    return out


def test_verify_fails_when_the_total_disagrees_with_the_shards(out, capsys):
    d = records(out)
    edit_manifest(d, lambda m: m.update(records=m["records"] + 1))
    assert verify(out, capsys) == (1, f"{d}: FAIL 1 problem(s): manifest.json: records 17, its shards hold 16\n", "")


def test_verify_fails_when_records_per_fold_disagrees_with_the_shards(out, capsys):
    d = records(out)
    truth = per_fold_from_names(d, 4)
    wrong = {0: truth[1], 1: truth[0], 2: truth[2], 3: truth[3]}  # same total, folds 0 and 1 swapped
    assert wrong != truth
    edit_manifest(d, lambda m: m.update(records_per_fold={str(f): n for f, n in wrong.items()}))
    assert verify(out, capsys) == (
        1, f"{d}: FAIL 1 problem(s): manifest.json: records_per_fold {wrong}, its shards give {truth}\n", "")


def test_verify_fails_when_the_fold_count_disagrees_with_the_shard_names(out, capsys):
    d = records(out)
    m = json.loads((d / "manifest.json").read_text())
    bad = [s for s in m["shards"] if int(s["name"].split(".")[0]) != s["file_index"] * 3 + s["fold"] or s["fold"] >= 3]
    assert bad  # 4 folds' shard numbers do not fit 3 folds
    edit_manifest(d, lambda m: m["config"].update(folds=3))
    s = bad[0]
    first = (f"manifest.json: {s['name']}: file {s['file_index']}, fold {s['fold']} do not give shard number "
             f"{s['name'].split('.')[0]} with folds=3")
    assert verify(out, capsys) == (1, f"{d}: FAIL {len(bad) + 1} problem(s): {first}\n", "")  # + records_per_fold


def test_verify_fails_on_a_shard_number_out_of_range(out, capsys):
    """The last shard renamed (with its index, and in the manifest) to a number no file and fold give."""
    d = records(out)
    m = json.loads((d / "manifest.json").read_text())
    last = m["shards"][-1]
    number, count = map(int, last["name"].split(".")[:2])
    new = f"{number + 8}.{count}.tfrec"  # 2 files x 4 folds: numbers 0..7
    (d / last["name"]).rename(d / new)
    (d / last["name"].replace(".tfrec", ".tfindex")).rename(d / new.replace(".tfrec", ".tfindex"))
    edit_manifest(d, lambda m: m["shards"][-1].update(name=new))
    assert verify(out, capsys) == (1, f"{d}: FAIL 1 problem(s): manifest.json: {new}: file {last['file_index']}, "
                                      f"fold {last['fold']} do not give shard number {number + 8} with folds=4\n", "")


# -- verify and stats: a path that is no folder says what it is --------------------------------


@pytest.mark.parametrize("command", ["verify", "stats"])
@pytest.mark.parametrize("kind", ["nonexistent", "file"])
def test_a_path_that_is_no_folder_gets_its_own_message(out, capsys, command, kind):
    import importlib

    path = {"nonexistent": str(out / "nope"), "file": str(first_shard(records(out)))}[kind]
    reason = {"nonexistent": "no such file or folder",
              "file": "is a file: give an output folder or a records folder"}[kind]
    with pytest.raises(SystemExit) as e:
        importlib.import_module(f"aslfr.{command}").main([path])
    assert e.value.code == 1
    assert capsys.readouterr() == ("", f"aslfr: error: {path}: {reason}\n")


# -- readers check an untrusted length before allocating for it --------------------------------


def corrupt_length(shard: Path, record: int, length: int) -> tuple[int, int]:
    """Set record `record`'s length header to `length` (its CRC left stale, as damage leaves it);
    return (the record's byte offset, the bytes left after its 16 bytes of framing)."""
    raw = bytearray(shard.read_bytes())
    pos = 0
    for _ in range(record):
        pos += 16 + int.from_bytes(raw[pos:pos + 8], "little")
    raw[pos:pos + 8] = length.to_bytes(8, "little")
    shard.write_bytes(bytes(raw))
    return pos, len(raw) - pos - 16


@pytest.mark.parametrize("length", [2**40, 2**62, "one too many"])
@pytest.mark.parametrize("record", [0, 1])
def test_a_length_past_the_end_of_the_file_is_a_corrupt_record_not_an_allocation(out, length, record):
    from aslfr import TFRecordShards
    from aslfr.format.tfrecord import CorruptRecordError, count_records, read_records

    d = records(out)
    shard = next(p for p in sorted(d.glob("*.tfrec")) if int(p.name.split(".")[1]) >= 2)
    if length == "one too many":
        pos, left = corrupt_length(shard, record, 0)
        length = left + 1
    pos, left = corrupt_length(shard, record, length)
    message = (f"{shard}: record {record} at byte {pos}: truncated record (length header says {length} bytes, "
               f"{left} left in the file)")
    with pytest.raises(CorruptRecordError) as e:
        list(read_records(shard, verify=False))
    assert str(e.value) == message
    with pytest.raises(CorruptRecordError) as e:
        count_records(shard)
    assert str(e.value) == message
    with pytest.raises(CorruptRecordError) as e:
        list(TFRecordShards(d, verify=False, torch_values=False))  # the manifest's size check passes: same size
    assert str(e.value) == message
