"""``gs://`` — items as objects below a name prefix of a Google Cloud Storage bucket (gcloud-aio-storage).

URLs::

    gs://BUCKET/PATH[?endpoint=URL&credentials=KEY.json&project=ID]

The layout is borgstore's, as on S3: the object of item ``name`` is ``PATH/name``; a directory is emulated
by the objects below it (delimiter listings) and, once made with ``mkdir``, by an empty marker object
``PATH/name/``; the store itself is the marker ``PATH/``.

A GCS upload is atomic, so values are written in place. Small values go up in one request with their
CRC32C, which the service checks; big ones as resumable uploads in chunks, the CRC32C of the whole value
on the last. Whole-object GETs are checked against the stored CRC32C. ``if_absent`` is the precondition
``ifGenerationMatch=0``; ``url_for`` signs V4 URLs with a service account's key.

The package by concern: ``_backend`` (the hooks), ``_errors`` (the one error table), ``_checksums``,
``_signing`` (V4 signed URLs) and ``_url``; what other object stores share is in
[`aiodepot.backends._objectstore`][aiodepot.backends._objectstore].
"""

from __future__ import annotations

from ._backend import CHUNK_GRAIN, GcsBackend
from ._errors import ERRORS
from ._signing import MAX_SECONDS, Signer

__all__ = ["CHUNK_GRAIN", "ERRORS", "MAX_SECONDS", "GcsBackend", "Signer"]
