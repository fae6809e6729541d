"""A pyftpdlib server for the ftp backend tests, run as a subprocess by ``tests.servers.ftp``.

    python ftpd_main.py --port P --home DIR --user U --password PW [--certfile PEM] [--without MLSD,REST]

One user with full rights in ``--home``; with ``--certfile`` it speaks explicit TLS (AUTH TLS) and
insists on it for the control and data channels. ``--without`` removes commands (to play a server that
lacks them).
"""

from __future__ import annotations

import argparse
import logging

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--home", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--certfile")
    parser.add_argument("--without", default="")
    args = parser.parse_args()

    authorizer = DummyAuthorizer()
    authorizer.add_user(args.user, args.password, args.home, perm="elradfmwMT")
    handler: type[FTPHandler]
    if args.certfile:
        from pyftpdlib.handlers import TLS_FTPHandler

        class TLSHandler(TLS_FTPHandler):  # type: ignore[misc]
            certfile = args.certfile
            tls_control_required = True
            tls_data_required = True

        handler = TLSHandler
    else:

        class PlainHandler(FTPHandler):  # type: ignore[misc]
            pass

        handler = PlainHandler
    handler.authorizer = authorizer
    handler.passive_ports = None
    handler.banner = "aiodepot test ftpd ready."
    removed = [command.strip().upper() for command in args.without.split(",") if command.strip()]
    if removed:
        handler.proto_cmds = {k: v for k, v in handler.proto_cmds.items() if k not in removed}
    logging.basicConfig(level=logging.WARNING)
    server = FTPServer(("127.0.0.1", args.port), handler)
    server.max_cons = 256
    server.serve_forever()


if __name__ == "__main__":
    main()
