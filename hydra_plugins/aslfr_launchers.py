"""Hydra's submitit launchers (`hydra/launcher=aslfr_slurm`, and `aslfr_local` to try a sweep in local
processes), whose sweep, when a job fails or is cancelled, ends with one line naming the job, its
own error and its log file instead of submitit's page of traceback and log. Hydra takes launchers
from the `hydra_plugins` namespace only; without the submitit plugin this module defines none."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

try:
    from hydra_plugins.hydra_submitit_launcher import submitit_launcher as plugin
except ImportError:  # pip install -e '.[slurm]'
    plugin = None


def failed_job(message: str) -> str:
    """The line for a submitit error: its text names the job's result or log file under `.submitit/`
    (`{folder}/{job}_{task}/{job}_{task}_0_log.err`) and, when SLURM ended it, its state."""
    found = re.search(r"(\S*/\.submitit/([^/\s]+))/", message)
    if not found:
        return f"a sweep job failed: {message.strip().splitlines()[0]}"
    folder, job = Path(found[1]), found[2]
    log = folder / f"{job}_0_log.err"
    state = re.search(r"\(state: (\w+)", message)
    why = state[1] if state and state[1] not in ("FINISHED", "COMPLETED") else "FAILED"  # ended without a result
    try:  # the job's own one-line error, when aslfr ended it
        said = [ln for ln in log.read_text(errors="replace").splitlines() if ln.startswith("aslfr: error: ")]
    except OSError:
        said = []
    return f"job {job} {why}" + (f" ({said[-1].removeprefix('aslfr: error: ')})" if said else "") + f"; its log: {log}"


class _OneLineFailure:
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Any:
        from submitit.core.utils import UncompletedJobError

        try:
            return super().launch(job_overrides, initial_job_idx)
        except UncompletedJobError as e:  # FailedJobError too
            from aslfr.commands.cli import fail

            fail(failed_job(str(e)))


if plugin is not None:
    class SlurmLauncher(_OneLineFailure, plugin.SlurmLauncher):
        """submitit's SLURM launcher; a failed or cancelled job ends the sweep with one line."""

    class LocalLauncher(_OneLineFailure, plugin.LocalLauncher):
        """submitit's local-process launcher; a failed job ends the sweep with one line."""
