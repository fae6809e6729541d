"""SSH servers on loopback for the sftp backend: OpenSSH's sshd and asyncssh's in-process server.

``sshd(directory)`` runs ``/usr/sbin/sshd -D -e -f <generated config>`` as a child process (not a
daemon) on ``127.0.0.1:<free port>``, with a temporary host key, a temporary user key in
``AuthorizedKeysFile``, ``StrictModes no`` and key-only login (root included, as tests run as root in
CI). The benchmarks start it the same way. A missing sshd skips the tests on a developer machine and
fails them under CI (see ``tests.servers.require_program``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from . import free_port, require_program, stop_process, wait_for_port

__all__ = ["AsyncsshServer", "Sshd", "asyncssh_server", "ssh_home", "sshd"]

_CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey {directory}/host_key
PidFile none
AuthorizedKeysFile {directory}/authorized_keys
StrictModes no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
Subsystem sftp internal-sftp
MaxStartups 200
MaxSessions 32
LogLevel ERROR
"""


@dataclasses.dataclass
class Sshd:
    """A running sshd and what a client needs to reach it."""

    process: subprocess.Popen[bytes]
    port: int
    user: str
    directory: Path
    client_key: Path
    known_hosts: Path
    host_key_line: str
    """The host's public key as ``type base64`` (the middle of a known_hosts line)."""

    def url(self, path: str | os.PathLike[str], *, port: int | None = None) -> str:
        """An ``sftp://`` URL for ``path`` on this server (absolute paths get the double slash)."""
        return f"sftp://{self.user}@127.0.0.1:{port or self.port}/{os.fspath(path)}"

    def options(self, **more: Any) -> dict[str, Any]:
        """Backend options that trust this server and log in with its key, ignoring ``~/.ssh/config``."""
        options: dict[str, Any] = {
            "known_hosts": str(self.known_hosts),
            "client_keys": [str(self.client_key)],
            "ssh_options": {"config": [], "agent_path": None},
        }
        options.update(more)
        return options

    def session_pids(self) -> list[int]:
        """The processes serving current connections: every descendant of the listening sshd."""
        parents: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                    fields = f.read().rpartition(")")[2].split()
            except OSError:
                continue  # exited meanwhile
            parents[int(entry)] = int(fields[1])
        found: list[int] = []
        frontier = [self.process.pid]
        while frontier:
            pid = frontier.pop()
            children = [child for child, parent in parents.items() if parent == pid]
            found.extend(children)
            frontier.extend(children)
        return found

    def signal_sessions(self, signum: int) -> list[int]:
        """Send ``signum`` to the processes serving current connections (not to the listener)."""
        pids = self.session_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        return pids


def _keygen(path: Path) -> None:
    keygen = require_program("ssh-keygen", apt="openssh-client")
    subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", "aiodepot-test", "-f", str(path)], check=True)


@contextlib.contextmanager
def sshd(directory: Path) -> Iterator[Sshd]:
    """Run sshd on a free loopback port until the ``with`` block ends (its sessions are killed too)."""
    binary = require_program("sshd", apt="openssh-server")
    directory.mkdir(parents=True, exist_ok=True)
    _keygen(directory / "host_key")
    _keygen(directory / "client_key")
    (directory / "authorized_keys").write_text((directory / "client_key.pub").read_text())
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # Debian's privilege separation directory
    port = free_port()
    config = directory / "sshd_config"
    config.write_text(_CONFIG.format(port=port, directory=directory))
    host_key_line = " ".join((directory / "host_key.pub").read_text().split()[:2])
    known_hosts = directory / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_key_line}\n")
    log = (directory / "sshd.log").open("wb")
    process = subprocess.Popen(
        [binary, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
    )
    server = Sshd(
        process=process,
        port=port,
        user=getpass.getuser(),
        directory=directory,
        client_key=directory / "client_key",
        known_hosts=known_hosts,
        host_key_line=host_key_line,
    )
    try:
        try:
            wait_for_port(port, process=process)
        except BaseException:
            output = (directory / "sshd.log").read_text(errors="replace")
            pytest.fail(f"sshd did not start on port {port}: {output[-2000:]}")
        yield server
    finally:
        server.signal_sessions(signal.SIGKILL)  # also the stopped ones some tests leave behind
        stop_process(process)
        log.close()


# asyncssh's in-process server ------------------------------------------------------------------------------


@dataclasses.dataclass
class AsyncsshServer:
    """asyncssh's SFTP server in this process and event loop, serving ``root`` as ``/``."""

    port: int
    root: Path
    known_hosts: Path
    client_key: Path
    connections: list[Any]
    """The server side of every connection made so far (``asyncssh.SSHServerConnection``)."""

    def url(self, path: str) -> str:
        """An ``sftp://`` URL for ``path`` (relative to the served root)."""
        return f"sftp://tester@127.0.0.1:{self.port}/{path}"

    def options(self, **more: Any) -> dict[str, Any]:
        """Backend options that trust this server and log in with its key, ignoring ``~/.ssh/config``."""
        options: dict[str, Any] = {
            "known_hosts": str(self.known_hosts),
            "client_keys": [str(self.client_key)],
            "ssh_options": {"config": [], "agent_path": None},
        }
        options.update(more)
        return options


@contextlib.asynccontextmanager
async def asyncssh_server(
    directory: Path, *, sftp_server: Callable[..., Any] | None = None, **listen_options: Any
) -> AsyncIterator[AsyncsshServer]:
    """Serve ``directory/root`` over SFTP with asyncssh on a free loopback port.

    ``sftp_server`` is an ``asyncssh.SFTPServer`` subclass (called with the channel and ``chroot=``) to
    change what the server does; ``listen_options`` go to ``asyncssh.listen``.
    """
    import asyncssh

    directory.mkdir(parents=True, exist_ok=True)
    root = directory / "root"
    root.mkdir(exist_ok=True)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key.write_private_key(str(directory / "client_key"))
    server_class = sftp_server or asyncssh.SFTPServer
    connections: list[Any] = []

    class Server(asyncssh.SSHServer):
        def connection_made(self, conn: Any) -> None:
            connections.append(conn)

    acceptor = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_factory=Server,
        server_host_keys=[host_key],
        authorized_client_keys=asyncssh.import_authorized_keys(client_key.export_public_key().decode()),
        sftp_factory=lambda chan: server_class(chan, chroot=os.fsencode(root)),
        allow_scp=False,
        **listen_options,
    )
    port = acceptor.sockets[0].getsockname()[1]
    known_hosts = directory / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_key.export_public_key().decode()}")
    try:
        yield AsyncsshServer(port, root, known_hosts, directory / "client_key", connections)
    finally:
        acceptor.close()
        for conn in connections:
            conn.abort()
        await acceptor.wait_closed()


def ssh_home(home: Path, server: Sshd) -> Path:
    """A home directory whose ~/.ssh lets both ssh clients (asyncssh for the drop-in, paramiko for the real
    borgstore) log in to ``server`` with its key, as a user's would; the test's processes get it as $HOME."""
    ssh = home / ".ssh"
    ssh.mkdir(parents=True)
    shutil.copy(server.client_key, ssh / "id_ed25519")
    (ssh / "id_ed25519").chmod(0o600)
    shutil.copy(server.known_hosts, ssh / "known_hosts")
    (ssh / "config").write_text(
        f"Host 127.0.0.1\n  User {server.user}\n  IdentityFile {ssh / 'id_ed25519'}\n"
        f"  UserKnownHostsFile {ssh / 'known_hosts'}\n"
    )
    return home
