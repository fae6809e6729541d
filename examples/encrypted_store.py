"""An encrypted store whose names are hidden too.

Stores items through ``HashedNames(Encrypt(PosixFSBackend(...)))`` in a temporary directory: values are
encrypted and authenticated with AES-256-GCM, names are replaced by keyed hashes (the original names
travel encrypted inside the values, so listings still show them). Then it looks at the files on disk,
reads a byte range of a big value, and changes one stored byte to show that the change is detected.
Needs ``pip install 'aiodepot[crypto]'``. Run it with ``python examples/encrypted_store.py``.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from aiodepot import IntegrityError, Store
from aiodepot.backends.posixfs import PosixFSBackend
from aiodepot.layers import Encrypt, HashedNames
from aiodepot.layers.crypto import derive_key

CONFIG = {"config/": {"levels": [0]}, "files/": {"levels": [0]}}


async def main(workdir: Path) -> None:
    salt = os.urandom(16)  # kept next to the store in real use; it is not secret
    key = derive_key("correct horse battery staple", salt, n=2**14)
    backend = HashedNames(Encrypt(PosixFSBackend(workdir / "depot"), key), key=b"names are secret too")
    store = Store(backend=backend, config=CONFIG)
    await store.create()

    big = os.urandom(1_000_000)
    async with store:
        await store.store("config/secret-plans", b"attack at dawn")
        await store.store("files/holiday-photo.jpg", big)
        assert await store.load("config/secret-plans") == b"attack at dawn"
        assert [info.name async for info in store.list("config")] == ["secret-plans"]
        info = await store.info("files/holiday-photo.jpg")
        assert info.size == len(big)
        # a range decrypts only the 64 KiB segments it covers
        assert await store.load("files/holiday-photo.jpg", offset=500_000, size=100) == big[500_000:500_100]
        print("stored and read back 2 items; the listing shows their names:", "secret-plans")

    on_disk = sorted(path for path in (workdir / "depot").rglob("*") if path.is_file())
    for path in on_disk:
        content = path.read_bytes()
        for secret in (b"attack", b"secret-plans", b"holiday"):
            assert secret not in content
        print(f"on disk: {path.relative_to(workdir / 'depot')} ({len(content)} bytes, no plaintext)")

    # someone changes one byte of the stored config item
    config_file = next(path for path in on_disk if path.parent.name == "config")
    stored = bytearray(config_file.read_bytes())
    stored[-1] ^= 0x01
    config_file.write_bytes(bytes(stored))
    async with store:
        try:
            await store.load("config/secret-plans")
        except IntegrityError as exc:
            print(f"a changed byte is detected: {exc}")
        else:
            raise AssertionError("tampering went unnoticed")
    await store.destroy()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(main(Path(tmp)))
