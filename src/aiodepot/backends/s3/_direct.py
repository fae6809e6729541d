"""The hot requests (GetObject, HeadObject, PutObject, UploadPart) sent without botocore's request pipeline.

botocore spends about 1 ms of CPU on a small request before and after the bytes travel: parameter validation,
endpoint ruleset resolution, a chain of event hooks, serialization, a second SHA-256 of the body to sign it
over http, parsing of every response header into a typed dict. For these four operations the backend builds
the request itself and signs it (SigV4, with botocore's credentials and region; a test holds the headers to
those botocore's signer gives), over the backend's own HTTP/1.1 pool (``.._http1``: about 250 µs less client
CPU per small request than aiohttp, most of it on servers that close the connection after each reply), with
the client's TLS settings, connection limit and timeouts. What the service answers stays the service's: an error
reply becomes the ``ClientError`` botocore would raise (code and message from S3's XML error body, the
status for a HEAD), so the error table, retries and codes are those of the botocore path. Retries follow
botocore's standard mode (5xx, throttling and transient codes, connections that worked before), with the
backend's ``retry`` policy for attempts and backoff.

The path is taken for S3-compatible services given by ``endpoint_url`` and the ``standard`` retry mode, without
a proxy; AWS itself (region redirects, S3 Express), ``adaptive`` retries and proxies keep botocore's pipeline.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import http
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar
from urllib.parse import parse_qs, quote, urlsplit
from xml.etree import ElementTree

from botocore.auth import SIGNED_HEADERS_BLACKLIST, _host_from_url  # type: ignore[import-untyped]
from botocore.exceptions import ClientError, FlexibleChecksumError  # type: ignore[import-untyped]
from botocore.httpsession import get_cert_path  # type: ignore[import-untyped]

from ...transfer import ValueBuffer
from .. import _http1
from ..options import RetryPolicy
from ._errors import CONNECTION_ERRORS

__all__ = ["DIRECT_OPERATIONS", "DirectBody", "DirectS3"]

logger = logging.getLogger("aiodepot.backends.s3")

DIRECT_OPERATIONS = frozenset({"get_object", "head_object", "put_object", "upload_part"})
"""The operations this module sends."""

_PARAMS = {
    "get_object": frozenset({"Key", "Range", "ChecksumMode", "IfMatch"}),
    "head_object": frozenset({"Key"}),
    "put_object": frozenset({"Key", "Body", "ChecksumAlgorithm", "ChecksumSHA256", "ContentMD5", "IfNoneMatch"}),
    "upload_part": frozenset(
        {"Key", "Body", "PartNumber", "UploadId", "ChecksumAlgorithm", "ChecksumSHA256", "ContentMD5"}
    ),
}
"""The parameters each direct operation takes; a call with any other goes through botocore."""

_NAMES = {
    "get_object": "GetObject",
    "head_object": "HeadObject",
    "put_object": "PutObject",
    "upload_part": "UploadPart",
}

_RETRY_STATUSES = frozenset({500, 502, 503, 504})
_RETRY_CODES = frozenset(
    {
        # botocore's standard mode: throttling and transient errors
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
    }
)
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_RECEIVE_AT = 256 * 1024
"""Bodies of this many bytes or more are received into one buffer rather than joined from their pieces."""
_UNSIGNED = "UNSIGNED-PAYLOAD"
_UNSIGNED_HEADERS = frozenset(SIGNED_HEADERS_BLACKLIST)
"""Headers a proxy may change on the way, which SigV4 leaves out of the signature (none of ours)."""


class _SigV4:
    """AWS Signature Version 4 of S3 requests, as AWS specifies it, for the direct path's four requests.

    botocore's signer spent about 70 µs of a small request's CPU here (under load, its caches cold): a
    request object, a URL parsed back into parts, header names lowercased and sorted several times, the
    signing key derived anew, debug log calls. This one takes what the backend knows already — the path as
    sent (S3 signs it as it is, without normalizing it), the query, headers named in lower case, the
    payload's SHA-256 — and derives the signing key (four HMACs of the secret, the day, the region and the
    service) once a day. A test compares its headers with those botocore's signer gives the same request.
    """

    _keys: ClassVar[dict[tuple[str, str, str], bytes]] = {}

    def __init__(self, region: str, service: str = "s3") -> None:
        self.region = region
        self.service = service
        self._scope_tail = f"/{region}/{service}/aws4_request"

    def sign(
        self, credentials: Any, method: str, path: str, query: str, headers: dict[str, str], payload: str, now: str
    ) -> None:
        """Add ``x-amz-date``, ``x-amz-content-sha256``, the session token (if any) and ``authorization`` to
        ``headers`` (names in lower case) for a request of ``method`` on ``path`` (URL-encoded, as sent) with
        ``query`` (URL-encoded, ``""`` for none) and a body whose SHA-256 (hex) is ``payload``; ``now`` is
        the time as ``YYYYMMDDTHHMMSSZ``."""
        headers["x-amz-date"] = now
        headers["x-amz-content-sha256"] = payload
        if credentials.token:
            headers["x-amz-security-token"] = credentials.token
        names = sorted(name for name in headers if name not in _UNSIGNED_HEADERS)
        signed = ";".join(names)
        canonical = "\n".join(
            (
                method,
                path,
                _canonical_query(query) if query else "",
                "".join(f"{name}:{' '.join(headers[name].split())}\n" for name in names),
                signed,
                payload,
            )
        )
        day = now[:8]
        scope = day + self._scope_tail
        to_sign = f"AWS4-HMAC-SHA256\n{now}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self._key(credentials.secret_key, day), to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, SignedHeaders={signed}, "
            f"Signature={signature}"
        )

    def _key(self, secret: str, day: str) -> bytes:
        cache = (secret, day, self.region)
        key = self._keys.get(cache)
        if key is None:
            key = f"AWS4{secret}".encode()
            for part in (day, self.region, self.service, "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            if len(self._keys) > 64:  # old days and rotated secrets
                self._keys.clear()
            self._keys[cache] = key
        return key


def _canonical_query(query: str) -> str:
    """The query's ``name=value`` pairs sorted by name, then value (both URL-encoded already)."""
    pairs = sorted(pair.partition("=")[::2] for pair in query.split("&"))
    return "&".join(f"{name}={value}" for name, value in pairs)


def _amz_now() -> str:
    """The current time as SigV4 writes it (``YYYYMMDDTHHMMSSZ``, UTC)."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


class DirectBody:
    """The body of a direct GET, read like botocore's streaming body (``read``, ``read(n)``, ``close``), and
    into a buffer (``readinto``).

    With ``sha256`` (the checksum the service stored, base64), the bytes are hashed as they arrive and checked
    once the body ends: ``FlexibleChecksumError`` if they differ, as botocore raises.
    """

    def __init__(self, response: _http1.Response, sha256: str | None) -> None:
        self._response = response
        self._expected = sha256
        self._hash: Any = None
        self._partly_read = False  # read(n) took some of the body: the rest is not content_length long

    async def read(self, amount: int | None = None) -> bytes:
        """The rest of the body, or at most ``amount`` bytes of it (``b""`` at the end)."""
        if amount is None:
            length = self._response.content_length
            if not self._partly_read and length is not None and length >= _RECEIVE_AT:
                return await self._read_whole(length)
            data = await self._response.read()
            if self._expected is not None:  # the whole body, or the rest after read(n)s
                if self._hash is None:
                    self._hash = hashlib.sha256(data)
                else:
                    self._hash.update(data)
                self._check(self._hash)
            return data
        self._partly_read = True
        data = await self._response.read_some(amount)
        if self._expected is not None:
            if self._hash is None:
                self._hash = hashlib.sha256()
            if data:
                self._hash.update(data)
            else:
                self._check(self._hash)
        return data

    async def _read_whole(self, length: int) -> bytes:
        """A body of ``length`` bytes received piece by piece into one buffer that becomes the bytes returned
        (no join of the pieces), checked as it comes."""
        buffer = ValueBuffer(length)
        with buffer.view() as view:
            filled = await self.readinto(view)
        if filled < length:  # the pool raises for a connection lost midway; this is a body that ended short
            raise _http1.ServerClosed(f"the body ended after {filled} of {length} bytes")
        return buffer.value(filled)

    async def readinto(self, buffer: memoryview) -> int:
        """Receive the body into ``buffer`` as its pieces arrive, up to ``len(buffer)`` bytes (one copy of
        each piece: no joined copy of the whole); return how many bytes came. A checksum is checked where the
        whole body fits into ``buffer``."""
        length = self._response.content_length
        filled = await self._response.readinto(buffer)
        if self._expected is not None and not self._partly_read and length is not None and filled == length:
            self._hash = hashlib.sha256(buffer[:filled])
            self._check(self._hash)
        return filled

    def _check(self, digest: Any) -> None:
        actual = base64.b64encode(digest.digest()).decode()
        if actual != self._expected:
            raise FlexibleChecksumError(
                error_msg=f"expected checksum {self._expected} did not match calculated checksum: {actual}"
            )

    def close(self) -> None:
        """Give the connection back (or drop it, when the body was not read to its end)."""
        self._response.release()


class DirectS3:
    """Signed requests for one bucket, sent on a pool of connections to its endpoint.

    Args:
        base_url: the URL of the bucket's keys, up to the key (``http://host:port/bucket/``).
        region: the region to sign for.
        credentials: botocore credentials (``await get_frozen_credentials()`` refreshes them).
        pool: the connections to the endpoint (closed by ``close()``).
        retry: attempts and backoff of retried requests.
        reached: whether a request of this backend ever got a reply (else a refused connection is final).
        replied: called on every reply.
    """

    def __init__(
        self,
        base_url: str,
        region: str,
        credentials: Any,
        pool: _http1.Pool,
        retry: RetryPolicy,
        *,
        reached: Callable[[], bool],
        replied: Callable[[], None],
        exceptions: Any = None,
    ) -> None:
        self.base_url = base_url
        self.region = region
        self.credentials = credentials
        self.retry = retry
        self.pool = pool
        self._secure = base_url.startswith("https:")
        self._host: str = _host_from_url(base_url)  # as botocore's signer would find it
        self._path = urlsplit(base_url).path
        self._signer = _SigV4(region)
        self._reached = reached
        self._replied = replied
        self._exceptions = exceptions

    @classmethod
    async def attach(cls, client: Any, bucket: str, retry: RetryPolicy, **hooks: Any) -> DirectS3 | None:
        """The direct path for ``client``'s ``bucket``, or None where this aiobotocore lacks the settings it
        reads (of its HTTP session), a proxy applies, or the client signs no requests (anonymous)."""
        credentials = getattr(getattr(client, "_request_signer", None), "_credentials", None)
        http = getattr(getattr(client, "_endpoint", None), "http_session", None)
        if credentials is None or http is None:
            return None
        if not all(hasattr(http, name) for name in ("_proxy_config", "_timeout", "_max_pool_connections", "_verify")):
            return None
        # botocore's own endpoint and addressing for the bucket, resolved once: a presigned URL of a key
        probe = "k"
        url = await client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": probe}, ExpiresIn=60)
        parts = urlsplit(url)
        if not parts.path.endswith("/" + probe):
            return None
        scope = parse_qs(parts.query).get("X-Amz-Credential", [""])[0].split("/")
        if len(scope) != 5:
            return None
        base_url = f"{parts.scheme}://{parts.netloc}{parts.path[: -len(probe)]}"
        if http._proxy_config.proxy_url_for(base_url) or parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        timeout = http._timeout
        pool = _http1.Pool(
            parts.scheme,
            parts.hostname,
            parts.port or (443 if parts.scheme == "https" else 80),
            ssl=_tls_context(http) if parts.scheme == "https" else None,
            limit=max(1, int(http._max_pool_connections)),
            connect_timeout=timeout.sock_connect,
            read_timeout=timeout.sock_read,
        )
        return cls(base_url, scope[2], credentials, pool, retry, exceptions=client.exceptions, **hooks)

    async def close(self) -> None:
        """Close the connections."""
        await self.pool.close()

    def takes(self, operation: str, params: Mapping[str, Any]) -> bool:
        """Whether ``operation`` with these parameters goes the direct way (the bucket is this one's)."""
        allowed = _PARAMS.get(operation)
        return allowed is not None and allowed.issuperset(params)

    async def call(self, operation: str, **params: Any) -> dict[str, Any]:
        """``operation`` on the bucket, answered as botocore's client method would (the fields the backend
        reads)."""
        key: str = params["Key"]
        headers = {"host": self._host}
        body: bytes | memoryview = b""
        query = ""
        payload = _EMPTY_SHA256
        if operation in ("put_object", "upload_part"):
            body = params["Body"]
            payload = self._payload_hash(params, body, headers)
            if "IfNoneMatch" in params:
                headers["if-none-match"] = params["IfNoneMatch"]
            if operation == "upload_part":
                query = f"partNumber={int(params['PartNumber'])}&uploadId={quote(params['UploadId'], safe='-_.~')}"
            method = "PUT"
        elif operation == "get_object":
            method = "GET"
            if "Range" in params:
                headers["range"] = params["Range"]
            if params.get("ChecksumMode") == "ENABLED":
                headers["x-amz-checksum-mode"] = "ENABLED"
            if "IfMatch" in params:
                headers["if-match"] = params["IfMatch"]
        else:
            method = "HEAD"
        path = self._path + quote(key, safe="/~")
        target = f"{path}?{query}" if query else path

        async def attempt() -> _http1.Response:
            return await self._send(operation, method, target, path, query, headers, body, payload)

        response = await self.retry.run(attempt, retryable=self._retryable, on_retry=self._log_retry(operation, key))
        if method == "GET":
            return self._get_result(response)
        if method == "HEAD":
            return _metadata(response)
        await response.read()  # a PUT's reply has no body worth reading; the connection goes back
        return self._put_result(response)

    def _payload_hash(self, params: Mapping[str, Any], body: bytes | memoryview, headers: dict[str, str]) -> str:
        """Set the checksum headers; return the payload's SHA-256 hex for the signature (the checksum's
        digest where it is one; ``UNSIGNED-PAYLOAD`` over TLS with a checksum the service verifies)."""
        if "ChecksumAlgorithm" in params:
            headers["x-amz-sdk-checksum-algorithm"] = params["ChecksumAlgorithm"]
        sha256 = params.get("ChecksumSHA256")
        if sha256 is not None:
            headers["x-amz-checksum-sha256"] = sha256
            try:
                return base64.b64decode(sha256, validate=True).hex()
            except binascii.Error:
                return hashlib.sha256(body).hexdigest()
        md5 = params.get("ContentMD5")
        if md5 is not None:
            headers["content-md5"] = md5
            if self._secure:
                return _UNSIGNED
        return hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA256

    async def _send(
        self,
        operation: str,
        method: str,
        target: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes | memoryview,
        payload: str,
    ) -> _http1.Response:
        """One signed request; an error reply raises botocore's ``ClientError`` for it."""
        frozen = await self.credentials.get_frozen_credentials()
        signed = dict(headers)  # a retry signs afresh
        self._signer.sign(frozen, method, path, query, signed, payload, _amz_now())
        if method == "GET":  # the bytes as stored, never re-encoded on the way (a PUT's or HEAD's reply has none)
            signed["accept-encoding"] = "identity"
        response = await self.pool.request(method, target, signed, body)
        self._replied()
        if response.status < 300:
            return response
        try:
            text = await response.read()
        finally:
            response.release()
        raise _client_error(operation, response, text, self._exceptions)

    def _retryable(self, exc: BaseException) -> bool:
        """botocore's standard retry conditions (a refused first connection is final: see the backend)."""
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            return status in _RETRY_STATUSES or error.get("Code") in _RETRY_CODES
        if isinstance(exc, _http1.CertificateError) or (isinstance(exc, _http1.ConnectError) and not self._reached()):
            return False
        return isinstance(exc, CONNECTION_ERRORS)

    @staticmethod
    def _log_retry(operation: str, key: str) -> Callable[[BaseException, int, float], None]:
        def log(exc: BaseException, attempt: int, wait: float) -> None:
            logger.debug("s3 %s %s: %r; attempt %d in %.2f s", operation, key, exc, attempt, wait)

        return log

    @staticmethod
    def _get_result(response: _http1.Response) -> dict[str, Any]:
        headers = response.headers
        sha256 = headers.get("x-amz-checksum-sha256")
        if sha256 is not None and ("-" in sha256 or headers.get("x-amz-checksum-type", "").upper() == "COMPOSITE"):
            sha256 = None  # a checksum of the parts' checksums: botocore does not check those either
        result = _metadata(response)
        result["Body"] = DirectBody(response, sha256)
        return result

    @staticmethod
    def _put_result(response: _http1.Response) -> dict[str, Any]:
        result: dict[str, Any] = {"ResponseMetadata": {"HTTPStatusCode": response.status}}
        for field, header in (
            ("ETag", "etag"),
            ("ServerSideEncryption", "x-amz-server-side-encryption"),
            ("SSECustomerAlgorithm", "x-amz-server-side-encryption-customer-algorithm"),
            ("ChecksumSHA256", "x-amz-checksum-sha256"),
        ):
            value = response.headers.get(header)
            if value is not None:
                result[field] = value
        return result


def _tls_context(http: Any) -> ssl.SSLContext:
    """The TLS context aiobotocore would make for the client (its CA bundle, client certificate and
    ``verify``), checking the server's name where it checks certificates."""
    verify = http._verify
    context: ssl.SSLContext
    if not verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    context = http._get_ssl_context()
    cert_file = getattr(http, "_cert_file", None)
    if cert_file:
        context.load_cert_chain(cert_file, getattr(http, "_key_file", None))
    ca_certs = get_cert_path(verify)
    if ca_certs:
        context.load_verify_locations(ca_certs, None, None)
    if context.verify_mode == ssl.CERT_REQUIRED:
        context.check_hostname = True  # urllib3 checks the name itself; here the context does it
    return context


def _metadata(response: _http1.Response) -> dict[str, Any]:
    """The fields of a GET or HEAD reply the backend reads, typed as botocore types them."""
    headers = response.headers
    result: dict[str, Any] = {
        "ResponseMetadata": {"HTTPStatusCode": response.status},
        "ContentLength": int(headers.get("content-length", 0)),
    }
    if "etag" in headers:
        result["ETag"] = headers["etag"]
    if "content-range" in headers:
        result["ContentRange"] = headers["content-range"]
    modified = headers.get("last-modified")
    if modified is not None:
        result["LastModified"] = parsedate_to_datetime(modified)
    return result


def _client_error(operation: str, response: _http1.Response, text: bytes, exceptions: Any) -> ClientError:
    """botocore's ``ClientError`` for an error reply: S3's XML ``<Error>`` body, else the status alone; the
    client's modeled subclass for the code (``NoSuchKey``, …) where it has one, as botocore raises."""
    status = response.status
    code, message = str(status), ""
    if text:
        try:
            root = ElementTree.fromstring(text)  # the service's reply; expands no entities
        except ElementTree.ParseError:
            root = None
        if root is not None:
            code = root.findtext("Code") or code
            message = root.findtext("Message") or ""
    if not message:
        try:
            message = http.HTTPStatus(status).phrase
        except ValueError:
            message = ""
    error = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {
            "HTTPStatusCode": status,
            "HTTPHeaders": dict(response.headers),
            "RequestId": response.headers.get("x-amz-request-id", ""),
        },
    }
    kind = ClientError if exceptions is None else exceptions.from_code(code)
    return kind(error, _NAMES[operation])
