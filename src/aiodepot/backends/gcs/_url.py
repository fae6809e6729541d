"""``gs://`` URLs: bucket, path, and the options of the query (``?endpoint=…&credentials=…&project=…``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ...errors import BackendURLInvalid

__all__ = ["parse_url"]

_OPTIONS = {"endpoint": "endpoint", "credentials": "credentials", "project": "project"}
"""URL query keys → constructor keywords."""


def parse_url(url: str) -> tuple[str, str, dict[str, Any]]:
    """Bucket, path and the constructor's keywords for ``gs://BUCKET/PATH[?endpoint=URL&credentials=FILE&project=ID]``.

    The path may be percent-encoded.
    """
    parts = urlsplit(url)
    if parts.scheme != "gs" or not parts.netloc or parts.fragment:
        raise BackendURLInvalid(f"not a gs:// URL (gs://BUCKET/PATH[?endpoint=…]): {url!r}")
    if "@" in parts.netloc or ":" in parts.netloc:
        raise BackendURLInvalid(
            f"gs:// URLs name the bucket alone (credentials go in ?credentials=FILE or the environment): {url!r}"
        )
    path = unquote(parts.path).strip("/")
    if not path:
        raise BackendURLInvalid(f"a gs store needs a path inside the bucket (gs://BUCKET/PATH): {url!r}")
    options: dict[str, Any] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query)):
        if key not in _OPTIONS:
            known = ", ".join(sorted(_OPTIONS))
            raise BackendURLInvalid(f"unknown gs:// URL option {key!r} (known: {known})")
        if not value:
            raise BackendURLInvalid(f"the gs:// URL option {key!r} needs a value")
        options[_OPTIONS[key]] = value
    endpoint = options.get("endpoint")
    if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
        raise BackendURLInvalid(f"the endpoint must be http:// or https://, not {endpoint!r}")
    return parts.netloc, path, options
