"""V4 signed URLs (``GOOG4-RSA-SHA256``) with a service account's private key, signed here (no request).

The canonical request is GCS's: method, path-style resource (``/BUCKET/OBJECT``), sorted query with the
``X-Goog-*`` fields, the ``host`` header alone, ``UNSIGNED-PAYLOAD``; the string to sign carries its
SHA-256, and the signature is RSA PKCS#1 v1.5 over SHA-256, hex encoded.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
from typing import Any
from urllib.parse import quote, urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ...errors import NotSupported

__all__ = ["MAX_SECONDS", "Signer", "canonical_request", "string_to_sign"]

MAX_SECONDS = 7 * 24 * 3600
"""The longest a V4 signed URL may last."""
PUBLIC_ENDPOINT = "https://storage.googleapis.com"


def canonical_request(method: str, resource: str, query: dict[str, str], host: str) -> str:
    """The canonical request of a V4 signature (the query without ``X-Goog-Signature``)."""
    canonical_query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in sorted(query.items()))
    return "\n".join([method, resource, canonical_query, f"host:{host}\n", "host", "UNSIGNED-PAYLOAD"])


def string_to_sign(timestamp: str, scope: str, canonical: str) -> str:
    """What the private key signs."""
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"GOOG4-RSA-SHA256\n{timestamp}\n{scope}\n{digest}"


@dataclasses.dataclass(frozen=True, slots=True)
class Signer:
    """Signs URLs as the service account ``email`` with its RSA ``key``.

    Args:
        email: the service account's ``client_email``.
        key: its private key.
        endpoint: ``scheme://host[:port]`` the URLs point at (GCS, or an emulator).
    """

    email: str
    key: rsa.RSAPrivateKey
    endpoint: str = PUBLIC_ENDPOINT

    @classmethod
    def from_service_account(cls, data: dict[str, Any], endpoint: str | None, *, source: str) -> Signer:
        """The signer of a service-account key file's JSON ``data`` (NotSupported for any other credentials)."""
        email, pem = data.get("client_email"), data.get("private_key")
        if data.get("type") != "service_account" or not email or not pem:
            raise NotSupported(
                f"gs url_for needs a service account key to sign with; {source} holds no service account key"
            )
        try:
            key = serialization.load_pem_private_key(str(pem).encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise NotSupported(f"gs url_for: the private key in {source} cannot be read: {exc}") from exc
        if not isinstance(key, rsa.RSAPrivateKey):
            raise NotSupported(f"gs url_for: the private key in {source} is not an RSA key")
        return cls(str(email), key, (endpoint or PUBLIC_ENDPOINT).rstrip("/"))

    def sign(self, method: str, bucket: str, key: str, seconds: int, *, now: datetime.datetime | None = None) -> str:
        """A URL through which anyone may ``method`` the object ``key`` of ``bucket`` for ``seconds``."""
        if not 0 < seconds <= MAX_SECONDS:
            raise ValueError(f"gs signed URLs last at most {MAX_SECONDS} s (7 days), not {seconds}")
        now = now or datetime.datetime.now(datetime.UTC)
        timestamp, date = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        scope = f"{date}/auto/storage/goog4_request"
        host = urlsplit(self.endpoint).netloc
        resource = f"/{quote(bucket, safe='')}/{quote(key, safe='/~')}"
        query = {
            "X-Goog-Algorithm": "GOOG4-RSA-SHA256",
            "X-Goog-Credential": f"{self.email}/{scope}",
            "X-Goog-Date": timestamp,
            "X-Goog-Expires": str(seconds),
            "X-Goog-SignedHeaders": "host",
        }
        canonical = canonical_request(method, resource, query, host)
        signature = self.key.sign(
            string_to_sign(timestamp, scope, canonical).encode(), padding.PKCS1v15(), hashes.SHA256()
        )
        query_string = canonical.split("\n")[2]
        return f"{self.endpoint}{resource}?{query_string}&X-Goog-Signature={signature.hex()}"
