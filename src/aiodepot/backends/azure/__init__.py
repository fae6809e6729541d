"""``azure://`` — items as block blobs below a name prefix of an Azure Blob Storage container.

URLs::

    azure://ACCOUNT:KEY@CONTAINER/PATH[?endpoint=URL]
    azure://CONTAINER/PATH          (the account from $AZURE_STORAGE_CONNECTION_STRING)

``endpoint`` is the blob service's URL for an emulator (Azurite: ``http://127.0.0.1:10000/devstoreaccount1``)
or a sovereign cloud. The layout is the one of the S3 backend (and borgstore's): the blob of item ``name``
is ``path/name``; a directory is the blobs below it and, once made with ``mkdir``, an empty marker blob
``path/name/``; the store itself is the marker ``path/``.

A Put Blob and a Put Block List are atomic, so values are written in place. Big values go up as blocks
staged in parallel, each with its Content-MD5 that the service checks, then one commit of the block list;
every load asks for the service's MD5 of each range (at most 4 MiB) and checks it. ``replace=False`` writes
(create-only permissions, conditional creates) are one atomic request with ``If-None-Match: *``.

The package by concern: ``_backend`` (the backend's hooks), ``_errors`` (the one error table), ``_blocks``
(staged blocks) and ``_url`` (URLs and connection strings); what object stores share is in
[`aiodepot.backends._objectstore`][aiodepot.backends._objectstore].
"""

from __future__ import annotations

from ._backend import AzureBackend
from ._blocks import BLOCKS, MAX_BLOCK_SIZE, MAX_BLOCKS
from ._errors import ERRORS
from ._url import CONNECTION_STRING_VARIABLE, DEVELOPMENT_KEY, Account, parse_connection_string

__all__ = [
    "BLOCKS",
    "CONNECTION_STRING_VARIABLE",
    "DEVELOPMENT_KEY",
    "ERRORS",
    "MAX_BLOCKS",
    "MAX_BLOCK_SIZE",
    "Account",
    "AzureBackend",
    "parse_connection_string",
]
