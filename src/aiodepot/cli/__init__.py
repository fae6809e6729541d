"""The ``aiodepot`` command line.

Commands live in one module per family: ``items`` (create, cat, get, put, rm, undelete, mv),
``inspect`` (ls, info, hash, du/stats), ``transfer`` (cp, sync), ``bench``, ``demo`` and ``serve``;
``common`` holds what they share (store options, errors and exit codes). Errors are reported as one
line on stderr, never as a traceback: see [`aiodepot.cli.common`][aiodepot.cli.common] for the exit codes.
"""

from __future__ import annotations

import logging
import os
from typing import Any

try:
    import click

    from .. import __version__
    from ..errors import StoreError
    from .bench import bench
    from .common import (
        EXIT_INTERRUPTED,
        EXIT_PIPE,
        CliError,
        display_url,
        is_broken_pipe,
        silence_stdout,
        translate_error,
    )
    from .demo import demo
    from .inspect import du, hash_, info, ls
    from .items import cat, config, create, get, mv, put, rm, undelete
    from .serve import serve
    from .transfer import cp, sync
except KeyboardInterrupt:  # Ctrl-C while the command starts: one line, no traceback
    from .._startup import interrupted_while_starting

    interrupted_while_starting()
    raise

__all__ = ["main"]


class _Main(click.Group):
    """The command group: turns errors into one-line messages and exit codes."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # in the order they were added: by family, not alphabetically

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        except (StoreError, OSError) as exc:
            if is_broken_pipe(exc):
                silence_stdout()
                raise click.exceptions.Exit(EXIT_PIPE) from None
            raise translate_error(exc) from exc
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:  # a bug, or a library error a backend let through: still one line
            if os.environ.get("AIODEPOT_DEBUG"):
                raise
            raise CliError(
                f"unexpected {type(exc).__module__}.{type(exc).__qualname__}: {display_url(str(exc))} "
                "(please report it; AIODEPOT_DEBUG=1 shows the traceback)"
            ) from exc


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="aiodepot")
def main() -> None:
    """aiodepot: an asyncio-native key/value store.

    Store commands take a store URL (file:///srv/depot, memory://name, sftp://host/path, s3:…, or a
    local path), then item names or namespaces as further arguments: aiodepot cat URL data/0123abcd.
    """
    _log_to_stderr()


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = "" if record.levelno >= logging.WARNING else f"{record.levelname.lower()}: "
        return f"aiodepot: {prefix}{display_url(record.getMessage())}".replace("\n", "; ")


def _log_to_stderr() -> None:
    """Library log records as ``aiodepot:`` lines on stderr: warnings only, everything with AIODEPOT_DEBUG
    (retries, for example, are logged at debug level and stay off the terminal)."""
    logger = logging.getLogger("aiodepot")
    if any(isinstance(handler.formatter, _OneLine) for handler in logger.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(_OneLine())
    if os.environ.get("AIODEPOT_DEBUG"):
        logger.setLevel(logging.DEBUG)
    else:
        handler.setLevel(logging.WARNING)
    logger.addHandler(handler)
    # asyncio's own notes (e.g. on a child process that ssh reaped first) are for debugging, not users
    quiet = logging.StreamHandler()
    quiet.setFormatter(_OneLine())
    quiet.setLevel(logging.DEBUG if os.environ.get("AIODEPOT_DEBUG") else logging.ERROR)
    logging.getLogger("asyncio").addHandler(quiet)


for _command in (ls, cat, get, put, rm, undelete, mv, cp, sync, hash_, info, du):
    main.add_command(_command)
main.add_command(du, "stats")
for _command in (create, config, bench, demo, serve):
    main.add_command(_command)
