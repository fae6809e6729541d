"""aioboto3 sessions and client configuration: loaded once, without ``Expect: 100-continue``, fixed up for B2."""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Literal

import aioboto3  # type: ignore[import-untyped]
from aiobotocore.config import AioConfig  # type: ignore[import-untyped]
from aiobotocore.session import AioSession  # type: ignore[import-untyped]
from botocore import handlers as botocore_handlers  # type: ignore[import-untyped]

from ..options import Limits, RetryPolicy, Timeouts
from ._url import Endpoint

__all__ = ["client_config", "make_session"]

_shared_loader: Any = None  # botocore's loader of service models, filled by the first session


def make_session(endpoint: Endpoint, region: str | None, *, b2: bool) -> Any:
    """The aioboto3 session, with the service model and config files loaded (a thread job: file I/O)."""
    global _shared_loader
    core = AioSession(profile=endpoint.profile)
    if _shared_loader is None:  # the models are the same for every session: load them once per process
        loader = core.get_component("data_loader")
        for kind in ("service-2", "endpoint-rule-set-1"):
            loader.load_service_model("s3", kind)
        for data in ("partitions", "endpoints", "_retry", "sdk-default-configuration"):
            loader.load_data(data)
        _shared_loader = loader
    core.register_component("data_loader", _shared_loader)
    core.get_scoped_config()
    # botocore asks for "100 Continue" before a PUT's body, and aiohttp waits for it with no timeout: a
    # server or link that never answers would hold the upload for ever. The body goes out at once.
    core.unregister("before-call.s3", botocore_handlers.add_expect_header)
    if b2:
        core.register("before-sign.s3", _content_md5_instead_of_crc32)
    return aioboto3.Session(
        aws_access_key_id=endpoint.access_key_id,
        aws_secret_access_key=endpoint.secret_access_key,
        region_name=region,
        botocore_session=core,
    )


def client_config(
    retry: RetryPolicy,
    limits: Limits,
    timeouts: Timeouts,
    *,
    retry_mode: Literal["standard", "adaptive"],
    addressing_style: Literal["path", "virtual", "auto"],
) -> Any:
    """The botocore config of the client: its pool, timeouts, retries and addressing."""
    return AioConfig(
        max_pool_connections=max(limits.connections or 1, limits.parts or 1),
        connect_timeout=timeouts.connect,
        read_timeout=timeouts.read,
        retries={"mode": retry_mode, "total_max_attempts": retry.attempts},
        tcp_keepalive=True,
        # The checksums are ours (set on each request, see checksum_args); botocore only checks the
        # ones the service returns when a GET asks for them (ChecksumMode).
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        s3={"addressing_style": addressing_style},
        signature_version="s3v4",  # also for presigned URLs (botocore would presign with SigV2)
    )


def _content_md5_instead_of_crc32(request: Any, **_: Any) -> None:
    """B2 rejects the CRC32 checksum botocore adds where one is required (DeleteObjects): send Content-MD5."""
    headers = request.headers
    if "x-amz-checksum-crc32" not in headers:
        return
    del headers["x-amz-checksum-crc32"]
    if "x-amz-sdk-checksum-algorithm" in headers:
        del headers["x-amz-sdk-checksum-algorithm"]
    body = request.body
    if "Content-MD5" not in headers and isinstance(body, bytes | bytearray):
        headers["Content-MD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()
