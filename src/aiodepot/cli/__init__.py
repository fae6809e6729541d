"""The ``aiodepot`` command line."""

from __future__ import annotations

import click

from .. import __version__
from .demo import demo
from .serve import serve

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="aiodepot")
def main() -> None:
    """aiodepot: an asyncio-native key/value store."""


main.add_command(demo)
main.add_command(serve)
