"""``s3:``/``b2:`` URLs and what they say besides bucket and path: where and as whom to connect."""

from __future__ import annotations

import dataclasses
import re
from typing import Any
from urllib.parse import unquote

from ...errors import BackendURLInvalid
from .. import without_secrets

__all__ = ["Endpoint", "parse_url"]

_URL = re.compile(
    r"""
    (?P<scheme>s3|b2):
    (?:(?:
        (?P<profile>[^@:/]+)                               # a profile (no colon)
        |
        (?P<access_key_id>[^:@/]+):(?P<secret_access_key>[^@]+)   # or key:secret
    )@)?
    (?P<endpoint>
        (?P<endpoint_scheme>[a-z][a-z0-9+.-]*)://
        (?P<host>\[[0-9a-fA-F:.]+\]|[^:/\[\]]+)
        (?::(?P<port>\d+))?
    )?
    /(?P<bucket>[^/]+)
    /(?P<path>.+)
    """,
    re.VERBOSE,
)
_B2_REGION = re.compile(r"s3\.([a-z0-9-]+)\.backblazeb2\.com$")


@dataclasses.dataclass(slots=True)
class Endpoint:
    """Where and as whom to connect: what a URL says besides bucket and path (checked when made)."""

    endpoint_url: str | None = None
    profile: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None

    def __post_init__(self) -> None:
        if self.profile is not None and self.access_key_id is not None:
            raise BackendURLInvalid("give a profile or an access key, not both")
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise BackendURLInvalid("an access key needs its secret (key:secret@)")

    def b2_region(self) -> str | None:
        """The region a B2 endpoint names (``s3.REGION.backblazeb2.com``), else None."""
        match = _B2_REGION.search(self.endpoint_url.rstrip("/")) if self.endpoint_url else None
        return match.group(1) if match else None


def parse_url(url: str) -> tuple[str, str, dict[str, Any]]:
    """Bucket, path and the constructor's keywords for ``s3:[profile|key:secret@][scheme://host[:port]]/bucket/path``.

    Key and secret may be percent-encoded (a ``/`` or ``@`` in a secret must be); so may the path.
    """
    match = _URL.fullmatch(url)
    if match is None:
        raise BackendURLInvalid(
            f"not an s3:/b2: URL (s3:[profile|key:secret@][scheme://host[:port]]/bucket/path): {without_secrets(url)!r}"
        )
    endpoint = match["endpoint"]
    if match["endpoint_scheme"] not in (None, "http", "https"):
        raise BackendURLInvalid(f"the endpoint must be http:// or https://: {without_secrets(url)!r}")
    b2 = match["scheme"] == "b2"
    if b2 and not endpoint:
        raise BackendURLInvalid("b2: URLs need the endpoint, e.g. b2:https://s3.us-west-004.backblazeb2.com/b/p")
    key, secret = match["access_key_id"], match["secret_access_key"]
    return (
        match["bucket"],
        unquote(match["path"]),
        {
            "endpoint_url": endpoint,
            "profile": match["profile"],
            "access_key_id": unquote(key) if key is not None else None,
            "secret_access_key": unquote(secret) if secret is not None else None,
            "b2": b2,
        },
    )
