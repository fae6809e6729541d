"""Import an aiodepot backend module on first use, with borgstore's error when its extra is missing."""

from __future__ import annotations

import importlib
from typing import Any

from .errors import BackendDoesNotExist

__all__ = ["backend_class"]


def backend_class(module: str, name: str, extra: str) -> Any:
    """Return ``aiodepot.backends.<module>.<name>``; a missing dependency raises ``BackendDoesNotExist``."""
    try:
        loaded = importlib.import_module(f"aiodepot.backends.{module}")
    except ImportError as exc:
        raise BackendDoesNotExist(
            f"The {module} backend needs aiodepot's {extra!r} extra ({exc.name or exc}): "
            f"pip install 'aiodepot[{extra}]'"
        ) from exc
    return getattr(loaded, name)
