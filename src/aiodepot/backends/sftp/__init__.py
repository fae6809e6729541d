"""``sftp://[user@]host[:port]/path`` — items as files on an SFTP server, over asyncssh.

The layout is borgstore's, as on ``file://``: one file per item at its nested path below the
base directory, ``.del`` for soft-deleted items, and ``….tmp`` files that are renamed into place, so a
reader never sees a half-written value. borgstore's sftp backend and this one open each other's stores.

Speed comes from keeping requests in flight: SFTP lets a client send many requests on one channel
without waiting, so concurrent operations share a connection (optionally a small pool of them), and the
requests of one operation that do not depend on each other go out together (the reads of a value, the
writes and the close of a store, the directories and the open of a store into a new directory). Big
values move in ``part_size`` ranges, each a burst of maximum-size SFTP reads or writes.

Connection loss is expected, not exceptional: keepalives notice a dead peer, every round of requests has
a timeout, and an operation that lost its connection reconnects and runs again (a bounded number of
times, with backoff). A retried delete or move that finds its item already gone counts as done.

The modules, by concern:

- ``_backend``: [`SftpBackend`][aiodepot.backends.sftp.SftpBackend], its hooks and the reconnect-and-retry loop;
- ``_connection``: one SSH connection with its SFTP session, and the pool of them;
- ``_files``: reads and writes in bursts of requests, temp files, atomic renames, removing a tree;
- ``_errors``: the one table from asyncssh's errors to aiodepot's, applied at the boundary;
- ``_config``: the URL and the known_hosts files.
"""

from __future__ import annotations

from ._backend import REMOTE_HASH_MIN_SIZE, SftpBackend

__all__ = ["REMOTE_HASH_MIN_SIZE", "SftpBackend"]
