"""Ctrl-C while the ``aiodepot`` command is still starting (importing its modules): one line, exit 130.

The command's own code turns an interrupt into ``aiodepot: interrupted…`` and exit code 130, but only once
it runs; an interrupt that comes while Python imports the package would end in a traceback. The
package's ``__init__`` and the command line's modules call
[`interrupted_while_starting`][aiodepot._startup.interrupted_while_starting] when an import is interrupted:
in the ``aiodepot`` command (the console script or ``python -m aiodepot``) it exits quietly; in any other
program the ``KeyboardInterrupt`` goes on as usual.
"""

from __future__ import annotations

import os
import sys

__all__ = ["EXIT_INTERRUPTED", "interrupted_while_starting", "is_the_command_line"]

EXIT_INTERRUPTED = 130
"""The exit code of an interrupted command (128 + SIGINT), as the command line documents it."""


def is_the_command_line() -> bool:
    """True if this process is the ``aiodepot`` command, not a program that imports the package."""
    if sys.argv and os.path.basename(sys.argv[0]) == "aiodepot":
        return True
    argv: list[str] = [str(arg) for arg in getattr(sys, "orig_argv", ())]
    for index, arg in enumerate(argv[:-1]):
        if arg == "-m":
            return argv[index + 1] == "aiodepot"
    return False


def interrupted_while_starting() -> None:
    """In the ``aiodepot`` command: say that it was interrupted and exit with 130 (else return, and the
    caller re-raises the ``KeyboardInterrupt``)."""
    if is_the_command_line():
        sys.stderr.write("aiodepot: interrupted\n")
        sys.stderr.flush()
        raise SystemExit(EXIT_INTERRUPTED)
