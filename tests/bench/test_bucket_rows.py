"""`make bench`'s object-storage rows (`python -m aslfr.bench --bucket-only`): on a tiny dataset they
print every figure as a number, with moto's server started and stopped inside; without moto or s3fs
they print one row saying why they were skipped, and the bench goes on. No figure is asserted."""

from __future__ import annotations

import os
import re
import sys

import pytest

from conftest import needs

from aslfr.bench import cli as bench

NUMBER = r"[\d,]+(?:\.\d+)?"


@needs("moto.server")
@needs("s3fs")
def test_bucket_rows_on_a_tiny_dataset(tmp_path):
    before = dict(os.environ)
    rows = dict(bench.bucket_rows(tmp_path, epochs=1, repeat=1, size=(3, 8, 8)))
    assert os.environ == before  # the fake credentials and the endpoint were for the rows only
    assert any("127.0.0.1" in k and "not cloud latency" in k for k in rows)
    data = next(v for k, v in rows.items() if k.strip().startswith("data:"))
    assert re.fullmatch(rf"3 x 8 \(8\), {NUMBER}", data)
    # 3 files x 8 sequences: 24 records; each file's 8 sequences in 4 folds, at most 12 shards
    shards, records, largest, epochs = rows[next(k for k in rows if k.strip().startswith("records:"))].split(", ")
    assert records == "24" and 1 <= int(shards) <= 12 and float(largest) > 0 and epochs == "1"
    reads = {k: v for k, v in rows.items() if k.strip().startswith("read, pack_collate, 2 workers")}
    assert [re.search(r"workers, (.*) \(rec/s\)", k)[1] for k in reads] == ["local disk", "s3://", "s3:// + cache_dir"]
    for k, v in reads.items():
        ratio = "" if "local disk" in k else rf"   /local {NUMBER}"
        assert re.fullmatch(rf"{NUMBER} \[{NUMBER}-{NUMBER}\]{ratio}", v), (k, v)
    converter = next(v for k, v in rows.items() if "local -> local / s3:// -> s3://" in k)
    assert re.fullmatch(rf"{NUMBER} / {NUMBER}   s3/local {NUMBER}", converter)
    # the cached path read every shard through the cache: each shard and its index is an entry there
    from aslfr.format.cache import OWNED

    cached = sorted(p.name.split(".", 2)[2] for p in (tmp_path / "bucket-cache" / OWNED).iterdir())
    written = sorted(p.name for p in (tmp_path / "bucket-out/tfrecords/train").iterdir()
                     if p.suffix in (".tfrec", ".tfindex"))
    assert cached == written and len(written) == 2 * int(shards)


@pytest.mark.parametrize("missing", ["moto.server", "s3fs"])
def test_bucket_rows_are_skipped_with_the_reason(missing, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, missing, None)  # importing it now raises ImportError
    bench.main(["--bucket-only", "--data", str(tmp_path)])
    out = capsys.readouterr().out.strip()
    assert out.startswith("object storage rows") and "skipped" in out and f"{missing} is not installed" in out
    assert len(out.splitlines()) == 1 and not any(tmp_path.iterdir())  # nothing generated, nothing run


def test_bucket_only_runs_alone(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--bucket-only", "--readers-only"])
    assert "--bucket-only runs alone" in capsys.readouterr().err
