"""``s3:`` and ``b2:`` — items as objects below a key prefix of an S3-compatible bucket (aioboto3).

URLs are borgstore's::

    s3:[profile|key:secret@][scheme://host[:port]]/bucket/path
    b2:[profile|key:secret@][scheme://host[:port]]/bucket/path

The layout is borgstore's too, so either library opens the other's stores: the object of item ``name``
is ``path/name``; a directory is emulated by the keys below it (delimiter listings) and, once made with
``mkdir``, by an empty marker object ``path/name/``; the store itself is the marker ``path/``.

An S3 PUT is atomic, so values are written in place (no temporary objects). Big values go up as multipart
uploads with parallel parts, and every PUT and part carries a checksum (SHA-256, or Content-MD5 on B2)
that the service checks; whole-object GETs ask for the stored checksum and verify it.

The package by concern: ``_backend`` (the backend's hooks), ``_errors`` (the one error table),
``_uploads`` (PUTs, and uploads in parts with ``_multipart``), ``_checksums`` (upload checksums and the ETag
check), ``_session`` (clients) and ``_url``; what other object stores share is in
[`aiodepot.backends._objectstore`][aiodepot.backends._objectstore].
"""

from __future__ import annotations

from .._objectstore import DELIMITER, name_bound
from ._backend import S3Backend
from ._checksums import Checksum, stored_other_bytes
from ._errors import ERRORS
from ._multipart import MAX_OBJECT_SIZE, MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE, MiB

__all__ = [
    "DELIMITER",
    "ERRORS",
    "MAX_OBJECT_SIZE",
    "MAX_PARTS",
    "MAX_PART_SIZE",
    "MIN_PART_SIZE",
    "Checksum",
    "MiB",
    "S3Backend",
]

# The private names of the single-module s3.py, kept for code that imported them.
_translate = ERRORS.translate
_name_bound = name_bound
_stored_other_bytes = stored_other_bytes
