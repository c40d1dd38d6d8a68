"""What every command shares: where the Hydra configs are, and errors printed as one line.

Commands that take converter settings (`convert`, `merge`, `inspect`) are Hydra apps over `conf/`;
the others (`verify`, `stats`, `synthetic`, `bench`, `train_demo`) use argparse. All print a bad
input as `aslfr: error: ...` and exit 1; `ASLFR_TRACEBACK=1` shows the traceback instead."""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
from argparse import ArgumentParser
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, NoReturn

_PACKAGE = Path(__file__).resolve().parents[1]
#: wheels ship conf/ inside the package; source and editable checkouts keep it at the repo root
CONFIG_DIR = str(_PACKAGE / "conf" if (_PACKAGE / "conf").is_dir() else _PACKAGE.parent / "conf")

INTERRUPTED = "interrupted; rerun the same command to resume (finished shards are kept)"


def fail(e: BaseException | str, code: int = 1) -> NoReturn:
    """One line on stderr and exit `code`."""
    if os.environ.get("ASLFR_TRACEBACK") and isinstance(e, BaseException):
        raise e
    print(f"aslfr: error: {e}", file=sys.stderr, flush=True)
    sys.exit(code)


def prog(module: str) -> str:
    """The command's name in its usage line: `aslfr <command>` under the console script (which sets
    argv[0] so), `aslfr-convert` under that script, else `python -m <module>`."""
    if sys.argv[0].startswith("aslfr ") or Path(sys.argv[0]).name == "aslfr-convert":
        return Path(sys.argv[0]).name
    return f"python -m {module}"


def hydra_prog() -> None:
    """Let the Hydra commands' help templates name the command as it was run: `${aslfr.prog:aslfr.convert}`."""
    from omegaconf import OmegaConf

    OmegaConf.register_new_resolver("aslfr.prog", prog, replace=True)


def out_dir_parser(module: str, doc: str, help: str, epilog: str | None = None,
                   default: str | None = None) -> ArgumentParser:
    """The argument parser of a command over the converter's output: usage named as run (`prog`), the
    description from the module's docstring, and the output folder as every command takes it:
    `out_dir=PATH`, the Hydra commands' spelling, or the bare PATH that verify, stats and train_demo
    took first."""
    parser = ArgumentParser(prog=prog(module), description=doc.split("\n\n")[0], epilog=epilog)
    parser.add_argument("out_dir", metavar="out_dir=PATH", type=lambda v: v.removeprefix("out_dir="),
                        nargs="?" if default else None, default=default, help=help)
    return parser


def path_as_out_dir(argv: list[str]) -> list[str]:
    """For the Hydra commands: a leading bare PATH (no `=`, not an option) is `out_dir=PATH`."""
    if len(argv) > 1 and "=" not in argv[1] and not argv[1].startswith("-"):
        return [argv[0], f"out_dir={argv[1]}", *argv[2:]]
    return argv


#: storage option names that carry credentials (s3fs, gcsfs, adlfs and botocore spellings)
SECRET_OPTIONS = {"key", "secret", "token", "password", "session_token", "access_key", "secret_key", "account_key",
                  "sas_token", "connection_string", "client_secret", "aws_access_key_id", "aws_secret_access_key",
                  "aws_session_token"}
#: gcsfs `token` values that say where to find the credentials rather than being them
_TOKEN_SOURCES = {"anon", "google_default", "cache", "cloud", "browser", "null", "none", "false"}


def refuse_credentials(argv: list[str]) -> None:
    """Fail before Hydra starts if a `storage_options` override on the command line carries a credential:
    Hydra prints a sweep's overrides, saves them in multirun.yaml and the job logs, and a SLURM launcher
    pickles them to disk; shell history keeps them too. The environment or a profile carries them instead."""
    for arg in argv[1:]:
        if "storage_options" not in arg:
            continue
        for name, value in re.findall(r"([A-Za-z_]\w*)\s*[=:]\s*['\"]?([^,{}'\"\s]*)", arg):
            if name.lower() not in SECRET_OPTIONS:
                continue
            if name.lower() == "token" and (value.lower() in _TOKEN_SOURCES or "/" in value):
                continue  # gcsfs: a method or a credentials file's path
            fail(f"storage_options.{name} on the command line: Hydra would print it and save it with the "
                 f"run's logs; give credentials through the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, "
                 f"GOOGLE_APPLICATION_CREDENTIALS) or a profile (+storage_options.profile=NAME, ~/.aws/credentials)")


def expected_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean bad input or a bad environment, not a bug: printed as one line."""
    from aslfr.errors import InputError
    from aslfr.format.manifest import ManifestError
    from aslfr.format.stats import StatsError
    from aslfr.format.store import StoreOptionError
    from aslfr.format.tfrecord import CorruptRecordError

    return InputError, ManifestError, CorruptRecordError, StatsError, StoreOptionError, OSError


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Run a command body: expected errors become one line (exit 1); Ctrl-C and SIGTERM become one
    line too (exit 130), whatever the interrupted worker processes raise on their way out, after
    `finally` blocks have removed this process's temporary files."""
    interrupted = []

    def on_signal(signum, frame):
        # once only, here and in forked workers (which inherit this handler): the DataLoader's
        # shutdown sends its workers SIGTERM, and a second KeyboardInterrupt raised inside a
        # `finally` would stop it from removing its temporary files
        if interrupted:
            return
        interrupted.append(signum)
        raise KeyboardInterrupt

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
                    if sig == signal.SIGTERM or signal.getsignal(sig) is signal.default_int_handler}
    try:
        yield
    except KeyboardInterrupt:
        fail(INTERRUPTED, 130)
    except expected_errors() as e:
        if interrupted:
            fail(INTERRUPTED, 130)
        fail(_describe(e))
    except Exception:
        if interrupted:
            fail(INTERRUPTED, 130)
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _describe(e: BaseException) -> str:
    if isinstance(e, OSError) and e.filename and e.strerror:
        return f"{e.filename}: {e.strerror}"
    return str(e)
