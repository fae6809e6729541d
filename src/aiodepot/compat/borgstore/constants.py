"""borgstore's constants, with the values aiodepot uses for the same purposes."""

from __future__ import annotations

from ...names import DEL_SUFFIX, HID_SUFFIX, MAX_NAME_LENGTH, ROOTNS, TMP_SUFFIX

__all__ = [
    "DEL_SUFFIX",
    "HID_SUFFIX",
    "MAX_NAME_LENGTH",
    "QUOTA_PERSIST_DELTA",
    "QUOTA_PERSIST_INTERVAL",
    "QUOTA_STORE_NAME",
    "ROOTNS",
    "TMP_SUFFIX",
]

QUOTA_STORE_NAME = "quota" + HID_SUFFIX
"""The internal file in which posixfs keeps its quota usage."""
QUOTA_PERSIST_DELTA = 10 * 1000 * 1000
"""posixfs writes its usage figure after it changed by this many bytes."""
QUOTA_PERSIST_INTERVAL = 300
"""... or after this many seconds."""
