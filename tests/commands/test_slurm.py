"""SLURM sweeps through `hydra/launcher=aslfr_slurm`: a failed or cancelled job ends the sweep with one
line naming the job and its log; jobs are named after the command; on a machine with `sbatch`, a
two-job sweep writes the bytes of one local run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, needs, tree_bytes

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
pytestmark = needs("hydra_plugins.hydra_submitit_launcher")


def test_a_failed_job_ends_the_sweep_with_one_line(small_data, tmp_path):
    """submitit's local launcher runs the same job code as SLURM's: fold 9 fails in its job."""
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "aslfr.convert", "-m", f"data_dir={small_data}", f"out_dir={out}",
                          "+fold=0,9", "num_workers=0", "progress=false", "hydra/launcher=aslfr_local"],
                         capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=600)
    assert res.returncode == 1
    line, = res.stderr.strip().splitlines()
    assert line.startswith("aslfr: error: job ") and " FAILED (fold 9 is outside 0..3); its log: " in line
    log = line.rsplit("its log: ", 1)[1]
    assert log.startswith(f"{out}/.hydra/") and "/.submitit/" in log and os.path.isfile(log)


def test_a_cancelled_slurm_task_is_named_with_its_log(tmp_path, monkeypatch):
    """The error submitit raises for a task SLURM cancelled (its state from sacct, mocked here)."""
    from submitit.slurm.slurm import SlurmJob

    from hydra_plugins.aslfr_launchers import failed_job

    monkeypatch.setattr(SlurmJob, "done", lambda self, force_check=False: True)
    monkeypatch.setattr(SlurmJob, "state", property(lambda self: "CANCELLED"))
    job = SlurmJob(folder=tmp_path / ".submitit/%j", job_id="4242_1")
    job._results_timeout_s = 0
    job.paths.stderr.parent.mkdir(parents=True)
    job.paths.stderr.write_text("slurmstepd: error: *** JOB 4243 ON node1 CANCELLED AT 2026-12-01T10:00:00 ***\n")
    error = job.exception()
    assert error is not None and str(error).count("\n") > 2
    assert failed_job(str(error)) == f"job 4242_1 CANCELLED; its log: {tmp_path}/.submitit/4242_1/4242_1_0_log.err"


def test_jobs_are_named_after_the_command():
    from hydra import compose, initialize_config_dir

    from aslfr.commands.cli import CONFIG_DIR

    with initialize_config_dir(version_base="1.3", config_dir=CONFIG_DIR):
        cfg = compose(config_name="convert", overrides=["hydra/launcher=aslfr_slurm"], return_hydra_config=True)
    assert cfg.hydra.job.name == "aslfr-convert"
    assert cfg.hydra.launcher._target_ == "hydra_plugins.aslfr_launchers.SlurmLauncher"


@pytest.mark.skipif(shutil.which("sbatch") is None, reason="sbatch not found: no SLURM cluster on this machine")
def test_a_two_job_slurm_sweep_writes_the_bytes_of_one_local_run(small_data, converted, tmp_path):
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "aslfr.convert", "-m", f"data_dir={small_data}", f"out_dir={out}",
                          "shard_index=0,1", "shard_count=2", "progress=false", "hydra/launcher=aslfr_slurm"],
                         capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=3600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert tree_bytes(out / "tfrecords/train") == tree_bytes(converted / "tfrecords/train")
