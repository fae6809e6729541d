"""borgstore's ``S3`` backend (S3 and Backblaze B2) on aiodepot's [`aiodepot.backends.s3`][aiodepot.backends.s3]."""

from __future__ import annotations

import importlib.util
import re
from typing import Any
from urllib.parse import unquote

from .._portal import construct
from ._base import AiodepotBackend, BackendBase, ItemInfo, to_bytes, validate_name, validate_value
from ._lazy import backend_class
from ._utils import make_range_header
from .errors import (
    BackendAlreadyExists,
    BackendDoesNotExist,
    BackendError,
    BackendMustBeOpen,
    BackendMustNotBeOpen,
    ObjectNotFound,
)

__all__ = [
    "S3",
    "BackendAlreadyExists",
    "BackendBase",
    "BackendDoesNotExist",
    "BackendMustBeOpen",
    "BackendMustNotBeOpen",
    "ItemInfo",
    "ObjectNotFound",
    "boto3",
    "get_s3_backend",
    "make_range_header",
    "to_bytes",
    "validate_name",
    "validate_value",
]

boto3: Any = True if importlib.util.find_spec("aioboto3") is not None else None
"""Truthy when the S3 dependency (aioboto3, in place of borgstore's boto3) is installed, else None."""

_S3_URL = re.compile(
    r"(?P<kind>s3|b2):"
    r"(((?P<profile>[^@:]+)|(?P<key>[^:@]+):(?P<secret>[^@]+))@)?"
    r"((?P<scheme>[^:/]+)://(?P<host>[^:/]+)(:(?P<port>\d+))?)?"
    r"/(?P<bucket>[^/]+)/(?P<path>.+)"
)


def get_s3_backend(url: str) -> S3 | None:
    """``s3:[profile|key:secret@][scheme://host[:port]]/bucket/path`` (``b2:`` likewise) → an S3; else None."""
    if not url.startswith(("s3:", "b2:")):
        return None
    match = _S3_URL.match(url)
    if match is None:
        return None
    endpoint = None
    if match["scheme"] and match["host"]:
        endpoint = f"{match['scheme']}://{match['host']}" + (f":{match['port']}" if match["port"] else "")
    return S3(
        bucket=match["bucket"],
        path=unquote(match["path"]),
        is_b2=match["kind"] == "b2",
        profile=match["profile"],
        access_key_id=unquote(match["key"]) if match["key"] else None,
        access_key_secret=unquote(match["secret"]) if match["secret"] else None,
        endpoint_url=endpoint,
    )


class S3(AiodepotBackend):
    """Items as objects below ``path`` in an S3 bucket (aioboto3, not boto3).

    Args:
        bucket: the bucket name.
        path: the key prefix of the store.
        is_b2: talk to Backblaze B2's S3 API.
        profile: an AWS profile name.
        access_key_id: the access key (with ``access_key_secret``).
        access_key_secret: the secret key.
        endpoint_url: the S3 endpoint (None: AWS).
    """

    def __init__(
        self,
        bucket: str,
        path: str,
        is_b2: bool,
        profile: str | None = None,
        access_key_id: str | None = None,
        access_key_secret: str | None = None,
        endpoint_url: str | None = None,
    ) -> None:
        if profile and access_key_id:
            raise BackendError("S3: profile and access_key_id cannot be specified at the same time")
        if access_key_id and not access_key_secret:
            raise BackendError("S3: access_key_secret is mandatory when access_key_id is specified")
        self.bucket = bucket
        self.base_path = path.rstrip("/") + "/"
        backend_type = backend_class("s3", "S3Backend", "s3")
        super().__init__(
            construct(
                backend_type,
                bucket,
                path,
                endpoint_url=endpoint_url,
                profile=profile,
                access_key_id=access_key_id,
                secret_access_key=access_key_secret,
                b2=is_b2,
            )
        )
