"""Generated keys: names derived from content (a hash) or random (a UUID).

```python
name = await store.store_new("data", value)                 # "data/" + sha256 of value
name = await store.store_new("uploads", value, key="uuid")  # "uploads/" + a random uuid4, as hex
content_key(b"hello", "blake3")                             # the key alone, without storing
```

A content key is the lowercase hex digest of the value: the same content always gets the same name, so
storing it twice stores it once. A UUID key is 32 lowercase hex digits of a random (version 4) UUID. Both
fit the name rules: lowercase ASCII, no separators. Digests longer than the 100-character name limit
(sha512 and friends are 128 hex digits) are refused with a clear error before anything is stored.
"""

from __future__ import annotations

import uuid

from . import hashing
from .errors import InvalidName
from .items import StoreValue, validate_value
from .names import MAX_NAME_LENGTH, ROOTNS, validate_name, validate_namespace

__all__ = ["UUID", "check_key_method", "content_key", "full_name", "key_for", "uuid_key"]

UUID = "uuid"
"""The ``key=`` value for random keys."""
HASH_INLINE_LIMIT = 1024 * 1024
"""Values up to this many bytes (in total) are hashed on the event loop; more is hashed in a thread."""


def uuid_key() -> str:
    """A random key: the 32 lowercase hex digits of a version 4 UUID."""
    return uuid.uuid4().hex


def content_key(value: StoreValue, algorithm: str = "sha256") -> str:
    """The content key of ``value``: its lowercase hex digest with ``algorithm`` (any hashlib name or ``"blake3"``).

    Raises:
        ValueError: an unknown or variable-length algorithm.
    """
    return hashing.new(algorithm, validate_value(value)).hexdigest()


def check_key_method(key: str) -> None:
    """Raise ``ValueError`` unless ``key`` is ``"uuid"`` or a supported hash algorithm."""
    if not isinstance(key, str):
        raise TypeError(f"key must be 'uuid' or a hash algorithm name, got {key!r}")
    if key != UUID:
        try:
            hashing.check_algorithm(key)
        except ValueError:
            raise ValueError(
                f"key must be 'uuid' or a hash algorithm name (e.g. 'sha256', 'blake3'), got {key!r}"
            ) from None


def key_for(value: StoreValue, key: str = "sha256") -> str:
    """A new key for ``value``: a random one for ``key="uuid"``, else its content key with that algorithm."""
    check_key_method(key)
    return uuid_key() if key == UUID else content_key(value, key)


def full_name(namespace: str, key: str) -> str:
    """``namespace/key`` (just ``key`` in the root namespace), checked against the name rules."""
    bare = validate_namespace(namespace.strip("/") if isinstance(namespace, str) else namespace)
    name = f"{bare}/{key}" if bare != ROOTNS else key
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(
            f"a generated key of {len(key)} characters in namespace {bare!r} makes a name longer than "
            f"{MAX_NAME_LENGTH} characters; pick a shorter digest (e.g. 'sha256' or 'blake3')"
        )
    return validate_name(name)
