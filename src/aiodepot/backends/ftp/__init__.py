"""``ftp://[user[:password]@]host[:port]/path`` and ``ftps://…`` — items as files on an FTP server, over aioftp.

The layout is borgstore's, as on ``file://`` and ``sftp://``: one file per item at its nested path below the
base directory, ``.del`` for soft-deleted items, and ``….tmp`` files that are renamed into place
(``STOR`` to the temp name, then ``RNFR``/``RNTO``), so a reader never sees a half-written value.

``ftps://`` is explicit TLS: ``AUTH TLS`` on the control connection, then ``PBSZ 0``/``PROT P`` so that every
data connection is encrypted too (resuming the control connection's TLS session, as servers demand).

An FTP control connection carries one command at a time, so concurrency comes from a small pool of
logged-in connections (``Limits(connections=…)``, default 4); a command's error reply leaves its
connection usable, anything else (a timeout, a reset, a transfer cut short) drops it. Ranged loads send
``REST offset`` before ``RETR`` and close the data connection once they have what they asked for;
listings and item info use ``MLSD``/``MLST`` (RFC 3659), which the server must offer with ``REST STREAM``:
the first connection checks ``FEAT`` and a server without them fails at ``open`` with
[`NotSupported`][aiodepot.errors.NotSupported].

Not atomic: ``replace=False`` (a permission map that allows creating items but not replacing them)
checks that the target is absent, then renames — FTP has no rename that refuses an existing target, and
most servers replace on ``RNTO``. ``capabilities.atomic_create`` is False, so ``store(…, if_absent=True)``
raises [`NotSupported`][aiodepot.errors.NotSupported].

The modules, by concern:

- ``_backend``: [`FtpBackend`][aiodepot.backends.ftp.FtpBackend], its hooks and the reconnect-and-retry loop;
- ``_connection``: a transfer's data connection, the pool of control connections, ``MLSD`` lines;
- ``_errors``: FTP replies and network errors to aiodepot's errors, applied at the boundary.
"""

from __future__ import annotations

from ._backend import FtpBackend

__all__ = ["FtpBackend"]
