"""How every command fails: user errors as one line `error: ...` and exit 2; SIGINT and
SIGTERM as one line and exit 128 + the signal; click usage errors as one line too."""
from __future__ import annotations

import contextlib
import functools
import io
import signal
import sys

import click

from ..config import ConfigError
from ..errors import NeurovaeError

EXIT_USER_ERROR = 2
LIGHT_COMMANDS = ("inspect",)   # commands that never import lava-dl (see quiet_imports)


def user_errors(fn):
    """Turn the project's user-facing errors into one message and exit code 2, and a
    SIGINT/SIGTERM into one line and exit code 128 + signal."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from ..data import DatasetError
        if fn.__name__ not in LIGHT_COMMANDS:
            quiet_imports()
        try:
            return fn(*args, **kwargs)
        except (NeurovaeError, ConfigError, DatasetError, _net_error()) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_USER_ERROR)
        except KeyboardInterrupt as exc:
            signum = getattr(exc, "signum", signal.SIGINT)
            detail = str(exc) if hasattr(exc, "signum") else "SIGINT: stopped"
            click.echo(f"interrupted: {detail}", err=True)
            sys.exit(128 + signum)
    return wrapper


def _net_error():
    from ..export import NetFormatError
    return NetFormatError


def quiet_imports():
    """Import lava-dl with its import-time chatter (a Prophesee toolbox notice on stdout,
    torch's CUDA_HOME note on stderr) swallowed, so a command's output is only its own.
    Every command but LIGHT_COMMANDS imports lava-dl anyway (models, emulator, Lava)."""
    if "lava.lib.dl.slayer" in sys.modules:
        return
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        with contextlib.suppress(ImportError):
            import lava.lib.dl.slayer  # noqa: F401


class OneLineErrors(click.Group):
    """Click usage errors as one line, `error: ... (see 'neurovae CMD --help')`, exit 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except click.ClickException as exc:
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            click.echo(f"error: {exc.format_message().rstrip('.')}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("interrupted", err=True)
            sys.exit(128 + signal.SIGINT)
        sys.exit(rv if isinstance(rv, int) else 0)
