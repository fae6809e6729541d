"""A pyftpdlib FTP server on loopback for the ftp backend tests, plain or with explicit TLS.

The server runs in a subprocess (``ftpd_main.py`` beside this file), not in the test process: its
blocking I/O loop must not share a process with the event loops under test. The TLS variant uses a
self-signed certificate for 127.0.0.1 made with ``cryptography`` in the server's directory. A missing
pyftpdlib (or pyopenssl, which its TLS handler needs) skips the tests on a developer machine and fails
them under CI (see ``tests.servers.require_module``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import ipaddress
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import free_port, require_module, start_process, stop_process, wait_for_port

__all__ = ["FtpServer", "ftp_server", "make_certificate"]

USER = "depot"
PASSWORD = "s3cret p@ss"  # a blank and an @: the URL must percent-encode them


@dataclasses.dataclass(frozen=True)
class FtpServer:
    """A running test server: where it listens, whose home it serves, and how to reach it."""

    port: int
    home: Path
    tls: bool
    certfile: Path | None

    def url(self, path: str, *, user: str = USER, password: str = PASSWORD) -> str:
        """The store URL of ``path`` (relative to the user's home) with the test user's login."""
        from urllib.parse import quote

        scheme = "ftps" if self.tls else "ftp"
        return f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{self.port}/{path}"

    def options(self) -> dict[str, Any]:
        """Backend options: trust the test certificate."""
        return {"cafile": str(self.certfile)} if self.certfile is not None else {}


def make_certificate(directory: Path) -> Path:
    """A self-signed certificate and its key for 127.0.0.1, in one PEM file."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    path = directory / "server.pem"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        + certificate.public_bytes(serialization.Encoding.PEM)
    )
    return path


@contextlib.contextmanager
def ftp_server(directory: Path, *, tls: bool = False, without: str = "") -> Iterator[FtpServer]:
    """Run pyftpdlib on a free port of 127.0.0.1 with the test user at home in ``directory/home``."""
    require_module("pyftpdlib", pip="pyftpdlib")
    if tls:
        require_module("OpenSSL", pip="pyopenssl")
    home = directory / "home"
    home.mkdir(parents=True, exist_ok=True)
    certfile = make_certificate(directory) if tls else None
    port = free_port()
    command = [sys.executable, str(Path(__file__).with_name("ftpd_main.py")), "--port", str(port)]
    command += ["--home", str(home), "--user", USER, "--password", PASSWORD]
    if certfile is not None:
        command += ["--certfile", str(certfile)]
    if without:
        command += ["--without", without]
    process = start_process(command)
    try:
        wait_for_port(port, process=process)
        yield FtpServer(port, home, tls, certfile)
    finally:
        stop_process(process)
