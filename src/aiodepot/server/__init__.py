"""aiodepot's REST server: any backend over the borgstore REST protocol, v1 (see PROTOCOL in the docs).

Run it with ``aiodepot serve``, ``aiodepot-server-rest`` or ``python -m aiodepot.server``; embed it with
:class:`StoreServer` (an aiohttp application) or :func:`serve`.
"""

from __future__ import annotations

from .app import StoreServer
from .run import backend_for, main, serve

__all__ = ["StoreServer", "backend_for", "main", "serve"]
