"""Credentials given as storage options on the command line are refused before Hydra prints or saves
anything: no byte of them reaches stdout, stderr or any file a sweep writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT


def _files_holding(root: Path, secret: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret in p.read_bytes()]


@pytest.mark.parametrize("command, extra", [
    ("aslfr.convert", ["-m", "+fold=0,1"]),
    ("aslfr.convert", []),
    ("aslfr.merge", []),
])
def test_a_sweep_with_credentials_on_the_command_line_writes_them_nowhere(small_data, tmp_path, command, extra):
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", command, f"data_dir={small_data}", f"out_dir={out}", "progress=false",
                          "+storage_options.key=AKIAXXXXKEYID", "+storage_options.secret=SUPERSECRET", *extra],
                         capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    for secret in ("SUPERSECRET", "AKIAXXXXKEYID"):
        assert secret not in res.stdout + res.stderr
        assert not _files_holding(tmp_path, secret.encode())
    assert res.returncode == 1
    assert res.stderr.startswith("aslfr: error: storage_options.key on the command line") and res.stderr.count("\n") == 1
    assert "environment" in res.stderr and "profile" in res.stderr


@pytest.mark.parametrize("arg", ["+storage_options.client_kwargs.aws_secret_access_key=SUPERSECRET",
                                 "+storage_options={secret: SUPERSECRET}", "+storage_options.token=SUPERSECRET"])
def test_every_spelling_is_refused(arg):
    from aslfr.commands.cli import refuse_credentials

    with pytest.raises(SystemExit):
        refuse_credentials(["aslfr convert", arg])


@pytest.mark.parametrize("arg", ["+storage_options.profile=dev", "+storage_options.endpoint_url=http://127.0.0.1:9000",
                                 "+storage_options.token=anon", "+storage_options.token=/etc/gcs/sa.json", "out_dir=key"])
def test_options_that_are_no_credentials_pass(arg):
    from aslfr.commands.cli import refuse_credentials

    refuse_credentials(["aslfr convert", arg])
