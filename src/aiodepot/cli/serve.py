"""``aiodepot serve``: run the REST server for a store (the same server as ``aiodepot-server-rest``)."""

from __future__ import annotations

import click

__all__ = ["serve"]


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--backend", "backend_url", required=True, help="Store URL to serve, e.g. file:///srv/depot.")
@click.pass_context
def serve(ctx: click.Context, backend_url: str) -> None:
    """Serve a store over HTTP with the borgstore REST protocol (v1).

    Every option of aiodepot-server-rest is accepted: --host, --port, --username, --password,
    --permissions, --quota, --socket-activation, --stdio, --max-body-size, --idle-timeout,
    --request-timeout, --log-level.
    """
    from ..server import run  # aiohttp loads only for this command, not for every aiodepot command

    run.main(["--backend", backend_url, *ctx.args])
