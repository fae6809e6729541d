"""A drop-in for borgstore 0.7's synchronous API, running on aiodepot's async core.

```python
from aiodepot.compat.borgstore.store import Store        # use it directly, or:

import aiodepot.compat.borgstore
aiodepot.compat.borgstore.install()                      # make "import borgstore" give this package
from borgstore.store import Store                        # an application written for borgstore, unchanged
```

The modules mirror borgstore 0.7's, all of them: ``store``, ``constants``, ``backends.errors``,
``backends._base``, ``backends._utils``, ``backends.posixfs``/``sftp``/``s3``/``rest``/``rclone``,
``utils.nesting``/``utils.hashing``, ``server.rest`` (on aiodepot's REST server) and ``__main__``. Every
operation is one blocking call through the [`Portal`][aiodepot.Portal]. borgstore's exception classes are
also aiodepot's (``ObjectNotFound`` is both), so either ``except`` clause catches them.

While [`install`][aiodepot.compat.borgstore.install] is active, a ``borgstore`` submodule this package does not
provide (a newer borgstore's) is loaded from the real borgstore package if it is installed; its imports of
sibling modules then get the compat ones.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
from collections.abc import Sequence
from types import ModuleType
from typing import Any

__all__ = ["__version__", "install", "installed", "uninstall", "version"]

from ._version import __version__, version

_PACKAGE = "borgstore"
_lock = threading.Lock()
_finder: _BorgstoreFinder | None = None
_saved: dict[str, ModuleType] = {}


def _ours(fullname: str) -> bool:
    return fullname == _PACKAGE or fullname.startswith(_PACKAGE + ".")


class _AliasLoader(importlib.abc.Loader):
    """Loads ``borgstore.x`` as the (same module object as) ``aiodepot.compat.borgstore.x``."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._own_spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(self.target)
        self._own_spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run (the compat module is already executed); keep its own ``__spec__``.

        The import system has just set ``__spec__`` to the alias spec; relative imports and reloads of the
        compat module need its real one.
        """
        if self._own_spec is not None:
            module.__spec__ = self._own_spec


class _BorgstoreFinder(importlib.abc.MetaPathFinder):
    """Resolves ``borgstore`` and its submodules to this package, falling back to the real package."""

    def __init__(self, real_locations: Sequence[str] | None) -> None:
        self.real_locations = list(real_locations or [])

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not _ours(fullname):
            return None
        compat_name = f"{__name__}{fullname[len(_PACKAGE) :]}"
        try:
            compat_spec = importlib.util.find_spec(compat_name)
        except ModuleNotFoundError:
            compat_spec = None
        if compat_spec is not None:
            return importlib.machinery.ModuleSpec(
                fullname, _AliasLoader(compat_name), is_package=compat_spec.submodule_search_locations is not None
            )
        parent = sys.modules.get(fullname.rpartition(".")[0])
        if parent is not None and getattr(parent, "__name__", "") != __name__ and not _is_compat(parent):
            return None  # inside a real borgstore subpackage: the ordinary finders use its __path__
        if not self.real_locations:
            return None
        # a module the compat layer does not provide, directly below a compat package: the real one
        relative = fullname[len(_PACKAGE) + 1 :].split(".")
        locations = self.real_locations
        for part in relative[:-1]:
            locations = [f"{location}/{part}" for location in locations]
        return importlib.machinery.PathFinder.find_spec(fullname, locations)


def _is_compat(module: ModuleType) -> bool:
    return getattr(module, "__name__", "").startswith(__name__)


def _real_locations() -> list[str] | None:
    spec = importlib.machinery.PathFinder.find_spec(_PACKAGE)
    if spec is None or spec.submodule_search_locations is None:
        return None
    return list(spec.submodule_search_locations)


def install() -> None:
    """Make ``import borgstore`` (and its submodules) resolve to this package until `uninstall`.

    borgstore modules imported before are set aside (and put back by `uninstall`); code that still holds
    references to them keeps using the real borgstore.
    """
    global _finder
    with _lock:
        if _finder is not None:
            return
        for name in [name for name in sys.modules if _ours(name)]:
            _saved[name] = sys.modules.pop(name)
        _finder = _BorgstoreFinder(_real_locations())
        sys.meta_path.insert(0, _finder)
        importlib.invalidate_caches()


def uninstall() -> None:
    """Undo `install`: ``import borgstore`` gives the real package (or fails, if it is not installed)."""
    global _finder
    with _lock:
        if _finder is None:
            return
        sys.meta_path[:] = [entry for entry in sys.meta_path if entry is not _finder]
        _finder = None
        for name in [name for name in sys.modules if _ours(name)]:
            del sys.modules[name]
        sys.modules.update(_saved)
        _saved.clear()
        importlib.invalidate_caches()


def installed() -> bool:
    """True while `install` is in effect."""
    return _finder is not None


def __getattr__(name: str) -> Any:
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
