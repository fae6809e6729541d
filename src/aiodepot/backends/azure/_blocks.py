"""Block blobs in parts: blocks staged in parallel, each with its Content-MD5, then one commit of the list."""

from __future__ import annotations

import base64
import hashlib
import io
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from azure.core import MatchConditions
from azure.storage.blob import BlobBlock

from ...errors import BackendError
from .._objectstore import MultipartUpload, PartRules
from ._errors import is_conflict

__all__ = ["BLOCKS", "MAX_BLOCKS", "MAX_BLOCK_SIZE", "BlockUpload", "Call", "md5"]

MiB = 1024 * 1024
MAX_BLOCK_SIZE = 4000 * MiB
"""The biggest block the service takes."""
MAX_BLOCKS = 50_000
"""The most blocks in one blob."""
BLOCKS = PartRules(
    1, MAX_BLOCK_SIZE, MAX_BLOCKS, MAX_BLOCK_SIZE * MAX_BLOCKS, too_big="block blobs are at most 190.7 TiB"
)
"""The service's limits on block blobs."""

Call = Callable[[str, Callable[[], Awaitable[Any]]], Awaitable[Any]]
"""``await call(name, request)``: one request through the backend's error boundary and retry policy."""


def md5(body: bytes | memoryview) -> bytes:
    """The MD5 digest of ``body`` (what the service checks a block or a PUT against)."""
    return hashlib.md5(body).digest()


class BlockUpload(MultipartUpload):
    """One upload of ``blob`` as staged blocks; nothing is visible until the block list is committed.

    Block IDs carry a random upload ID, so writers racing for one name never mix their blocks. There is no
    abort in the service: uncommitted blocks are dropped by the service after a week, or by the next commit.
    """

    def __init__(self, call: Call, blob: Any, name: str) -> None:
        self.call = call
        self.blob = blob
        self.name = name
        self.upload_id = uuid.uuid4().hex
        self.blocks: dict[int, str] = {}

    def block_id(self, number: int) -> str:
        """The ID of block ``number`` (all IDs of a blob have the same length)."""
        return base64.b64encode(f"{self.upload_id}-{number:06d}".encode()).decode()

    async def send(self, number: int, body: bytes | memoryview, checksum: bytes) -> None:
        """Stage block ``number``; the service checks it against the MD5 ``checksum``."""
        block_id = self.block_id(number)

        def stage() -> Awaitable[Any]:  # a stream (a new one each attempt): aiohttp sends big bytes with a warning
            staged: Awaitable[Any] = self.blob.stage_block(
                block_id, io.BytesIO(body), len(body), transactional_content_md5=checksum
            )
            return staged

        await self.call(self.name, stage)
        self.blocks[number] = block_id

    async def complete(self, *, if_none_match: bool = False) -> bool:
        """Commit the blocks in order; False if ``if_none_match`` found a blob there already."""
        blocks = [BlobBlock(self.blocks[number]) for number in sorted(self.blocks)]
        extra = {"match_condition": MatchConditions.IfMissing} if if_none_match else {}
        try:
            await self.call(self.name, lambda: self.blob.commit_block_list(blocks, **extra))
        except BackendError as exc:
            if if_none_match and is_conflict(exc):
                return False
            raise
        return True

    async def abort(self) -> None:
        """Nothing to do: the staged blocks were never committed, and the service drops them."""
