"""The helpers object-store backends share (``aiodepot.backends._objectstore``), on their own.

The S3 conformance run (tests/backends/test_s3.py) drives them against a server; these pin the edges.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aiodepot.backends._objectstore import (
    ErrorRule,
    ErrorTable,
    KeyLayout,
    ListingPage,
    MultipartUpload,
    Native,
    PartRules,
    get_with_retry,
    merge_listing,
    range_header,
    send_stream,
)
from aiodepot.backends.options import RetryPolicy
from aiodepot.errors import BackendError, ConnectionLost, IntegrityError, ObjectNotFound, StoreNotFound

MiB = 1024 * 1024


class ServiceError(Exception):
    def __init__(self, code: str, status: int) -> None:
        super().__init__(f"{code} ({status})")
        self.code, self.status = code, status


def native(exc: BaseException) -> Native:
    if isinstance(exc, ServiceError):
        return Native(exc.code, exc.status, "said the service")
    return Native(message=str(exc))


TABLE = ErrorTable(
    rules=(
        ErrorRule(StoreNotFound, "{where}: no container", codes=frozenset({"NoContainer"})),
        ErrorRule(ObjectNotFound, "{name}", statuses=frozenset({404}), unless_codes=frozenset({"NoUpload"})),
        ErrorRule(BackendError, "{where}: {code_or_status}: {text}", types=(ServiceError,)),
        ErrorRule(ConnectionLost, "{where}: {exc_type}: {exc}", types=(TimeoutError,)),
    ),
    native=native,
)


def test_error_table_takes_the_first_matching_row() -> None:
    assert type(TABLE.translate(ServiceError("NoContainer", 404), "a")) is StoreNotFound
    assert type(TABLE.translate(ServiceError("NoKey", 404), "a")) is ObjectNotFound
    assert type(TABLE.translate(ServiceError("NoUpload", 404), "a")) is BackendError  # excepted from 404
    assert str(TABLE.translate(ServiceError("", 500), "")) == "the store: 500: said the service"
    assert str(TABLE.translate(TimeoutError("slow"), "ns/x")) == "ns/x: TimeoutError: slow"
    assert TABLE.translate(ValueError("not ours"), "x") is None


def test_the_boundary_keeps_the_cause_and_lets_the_rest_through() -> None:
    native_error = ServiceError("NoKey", 404)
    with pytest.raises(ObjectNotFound) as caught, TABLE.boundary("ns/x"):
        raise native_error
    assert caught.value.__cause__ is native_error
    assert TABLE.code_of(caught.value) == "NoKey"
    with pytest.raises(ValueError), TABLE.boundary("ns/x"):
        raise ValueError("not ours")
    already = ObjectNotFound("ns/y")
    with pytest.raises(ObjectNotFound) as passed, TABLE.boundary("ns/x"):
        raise already
    assert passed.value is already


def test_key_layout_has_borgstores_markers() -> None:
    layout = KeyLayout("depot/")
    assert layout.key("data/00") == "depot/data/00"
    assert layout.dir_prefix("data") == "depot/data/" and layout.dir_prefix("") == "depot/"


async def pages(*listed: ListingPage) -> AsyncIterator[ListingPage]:
    for page in listed:
        yield page


async def test_merged_listing_is_sorted_by_name_across_pages() -> None:
    # key order puts "a.del" before "a/" ("." < "/"), name order puts the directory "a" first
    listed = pages(
        ListingPage(files=[("", 0, 0.0), ("a.del", 1, 1.0)]),
        ListingPage(files=[("b", 2, 2.0), ("c.tmp", 3, 3.0)], directories=["a/", "Foreign/"]),
    )
    entries = [(info.name, info.directory) async for info in merge_listing("ns", listed)]
    assert entries == [("a", True), ("a.del", False), ("b", False)]
    with pytest.raises(ObjectNotFound):
        [info async for info in merge_listing("ns", pages(ListingPage()))]


async def test_range_header_asks_for_the_size_only_when_a_suffix_wastes_too_much() -> None:
    async def object_size() -> int:
        sizes.append(1000)
        return 1000

    sizes: list[int] = []
    assert await range_header(0, None, object_size) is None
    assert await range_header(10, None, object_size) == "bytes=10-"
    assert await range_header(10, 5, object_size) == "bytes=10-14"
    assert await range_header(-100, 10, object_size) == "bytes=-100"
    assert sizes == []
    assert await range_header(-100, 10, object_size, slack=0) == "bytes=900-909"
    assert sizes == [1000]


def test_part_rules_keep_within_the_part_count() -> None:
    rules = PartRules(min_part=5 * MiB, max_part=5 * 1024 * MiB, max_parts=100, max_object=10 * 1024 * MiB)
    assert rules.part_size(1, 8 * MiB) == 8 * MiB
    assert rules.part_size(1, 1) == 5 * MiB
    assert rules.part_size(2000 * MiB, 8 * MiB) == 20 * MiB
    assert rules.spans(10, 4) == [(0, 4), (4, 4), (8, 2)]
    with pytest.raises(ValueError, match="at most"):
        rules.part_size(10 * 1024 * MiB + 1, 8 * MiB)


class InMemoryUpload(MultipartUpload):
    """An upload that keeps its parts, to watch the driver."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.parts: dict[int, bytes] = {}
        self.fail_at = fail_at
        self.completed = self.aborted = False

    async def send(self, number: int, body: bytes, checksum: Any) -> None:
        if number == self.fail_at:
            raise ConnectionLost(f"part {number}")
        assert checksum == len(body)
        self.parts[number] = body

    async def complete(self, *, if_none_match: bool = False) -> bool:
        self.completed = True
        return True

    async def abort(self) -> None:
        self.aborted = True


async def test_parts_are_sent_in_order_of_number_and_a_failure_aborts() -> None:
    data = bytes(range(256)) * 40

    async def read(start: int, length: int) -> tuple[bytes, int]:
        return data[start : start + length], length

    upload = InMemoryUpload()

    async def send_all(up: InMemoryUpload) -> None:
        await up.send_spans(PartRules.spans(len(data), 1000), 1000, read, max_concurrency=3)

    assert await upload.run(send_all)
    assert upload.completed and not upload.aborted
    assert b"".join(upload.parts[n] for n in sorted(upload.parts)) == data
    failing = InMemoryUpload(fail_at=4)
    with pytest.raises(ConnectionLost):
        await failing.run(send_all)
    assert failing.aborted and not failing.completed


async def chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_a_stream_goes_up_in_parts_and_a_wrong_length_fails() -> None:
    data = b"x" * 2500 + b"y" * 501

    async def checksum(part: bytes) -> int:
        return len(part)

    options: dict[str, Any] = {"name": "ns/x", "part_size": 1000, "max_parts": 10, "max_concurrency": 2}
    upload = InMemoryUpload()
    await send_stream(
        upload, bytearray(data[:10]), chunks(data[10:], 333), size=len(data), checksum=checksum, **options
    )
    assert [len(upload.parts[n]) for n in sorted(upload.parts)] == [1000, 1000, 1000, 1]
    assert b"".join(upload.parts[n] for n in sorted(upload.parts)) == data
    for size, message in ((len(data) + 1, "expected"), (len(data) - 1, "more than")):
        with pytest.raises(ValueError, match=message):
            await send_stream(InMemoryUpload(), bytearray(), chunks(data, 333), size=size, checksum=checksum, **options)
    with pytest.raises(ValueError, match="more than 2 parts"):
        await send_stream(
            InMemoryUpload(),
            bytearray(),
            chunks(data, 333),
            size=None,
            checksum=checksum,
            **{**options, "max_parts": 2},
        )


async def test_a_get_is_fetched_again_only_once_its_body_began() -> None:
    retry = RetryPolicy(attempts=3, backoff=0.001, jitter=0)
    log = logging.getLogger("test")
    tries: list[str] = []

    async def body_breaks_once(began: Any) -> bytes:
        began()
        tries.append("body")
        if len(tries) == 1:
            raise IntegrityError("damaged")
        return b"value"

    assert await get_with_retry(retry, body_breaks_once, logger=log, what="GET x") == b"value"
    assert tries == ["body", "body"]

    async def never_began(began: Any) -> bytes:
        tries.append("request")
        raise ConnectionLost("refused")

    tries.clear()
    with pytest.raises(ConnectionLost):
        await get_with_retry(retry, never_began, logger=log, what="GET x")
    assert tries == ["request"]  # the client library retried the request already
