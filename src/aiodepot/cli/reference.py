"""The command reference in ``docs/cli.md``, generated from the click commands so that it cannot drift.

The page keeps its prose; each command's ``--help`` text sits between two markers and is rewritten
from the commands themselves::

    <!-- aiodepot-help: ls -->
    ```text
    Usage: aiodepot ls [OPTIONS] URL [NAMESPACE]
    ...
    ```
    <!-- /aiodepot-help -->

``python -m aiodepot.cli.reference docs/cli.md`` rewrites the blocks; with ``--check`` it only says
whether the page is current (exit 1 if not), which a test runs.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

__all__ = ["help_text", "main", "render"]

WIDTH = 100
"""The width the help text is wrapped to on the page."""

_BLOCK = re.compile(r"<!-- aiodepot-help: (?P<command>[\w ]*?) -->\n.*?<!-- /aiodepot-help -->", re.DOTALL)


def help_text(command: str) -> str:
    """The ``--help`` text of ``aiodepot COMMAND`` (``""``: of ``aiodepot`` itself), wrapped to `WIDTH`."""
    from . import main as group

    words = command.split()
    info_name = " ".join(["aiodepot", *words])
    target: click.Command = group
    for word in words:
        assert isinstance(target, click.Group)
        found = target.get_command(click.Context(target), word)
        if found is None:
            raise KeyError(f"no command {info_name!r}")
        target = found
    ctx = click.Context(
        target,
        info_name=info_name,
        terminal_width=WIDTH,
        max_content_width=WIDTH,
        help_option_names=["-h", "--help"],
    )
    return target.get_help(ctx)


def render(page: str) -> str:
    """``page`` with every help block rewritten from the commands."""

    def block(match: re.Match[str]) -> str:
        command = match["command"].strip()
        return f"<!-- aiodepot-help: {command} -->\n```text\n{help_text(command)}\n```\n<!-- /aiodepot-help -->"

    return _BLOCK.sub(block, page)


def main(argv: list[str] | None = None) -> int:
    """``python -m aiodepot.cli.reference [--check] PAGE``: rewrite PAGE's help blocks, or check them."""
    args = sys.argv[1:] if argv is None else argv
    check = "--check" in args
    paths = [arg for arg in args if arg != "--check"]
    if len(paths) != 1:
        print("usage: python -m aiodepot.cli.reference [--check] docs/cli.md", file=sys.stderr)
        return 2
    path = Path(paths[0])
    page = path.read_text()
    current = render(page)
    if current == page:
        return 0
    if check:
        print(f"{path} is out of date: run python -m aiodepot.cli.reference {path}", file=sys.stderr)
        return 1
    path.write_text(current)
    return 0


if __name__ == "__main__":
    sys.exit(main())
