"""Every public name of the real borgstore 0.7 exists in the drop-in, module by module."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

# borgstore internals that have no counterpart, each for its reason (docs/compat.md says the same)
KNOWN_DIFFERENCES = {
    # borgstore's requests-compatible transport over an ssh pipe; the drop-in's REST client is aiohttp and
    # speaks to the pipe itself
    "borgstore.backends.rest.StdioSession",
    # the http.server plumbing of borgstore's threaded server; the drop-in serves with aiodepot's aiohttp server
    "borgstore.server.rest.BorgStoreRESTRequestHandler",
    "borgstore.server.rest.StdIOHTTPServer",
    "borgstore.server.rest.StdinStdoutSocket",
    # the bookkeeping of borgstore's own cache scan; the drop-in caches with aiodepot's Cache layer
    "borgstore.store.CACHE_RESCAN_DIVISOR",
    "borgstore.store.CACHE_SCAN_STEP_TIME",
    "borgstore.store.CacheIndex",
    "borgstore.store.CacheScan",
}

WALK = textwrap.dedent(
    """
    import importlib, inspect, json, pkgutil, types
    import borgstore

    def public(module):
        names = {}
        for name, value in vars(module).items():
            if name.startswith("_"):
                continue
            if isinstance(value, types.ModuleType):
                if value.__name__.startswith("borgstore."):
                    names[name] = "module"
            elif inspect.isclass(value) or inspect.isfunction(value):
                if (getattr(value, "__module__", "") or "").startswith("borgstore"):
                    names[name] = "class" if inspect.isclass(value) else "function"
            elif isinstance(value, (bool, int, float, str, bytes, tuple, list, dict, set, frozenset)):
                names[name] = "constant"
        return names

    modules = ["borgstore"] + [m.name for m in pkgutil.walk_packages(borgstore.__path__, "borgstore.")]
    real = {name: public(importlib.import_module(name)) for name in modules}
    drop_in = {}
    for name in modules:  # import every drop-in module first, so packages have their submodules
        try:
            drop_in[name] = importlib.import_module("aiodepot.compat." + name)
        except ImportError as exc:
            drop_in[name] = repr(exc)
    report = {"version": borgstore.__version__, "modules": len(modules), "names": 0, "missing": [], "kinds": []}
    for name, names in real.items():
        module = drop_in[name]
        if isinstance(module, str):
            report["missing"].append(f"{name} (module: {module})")
            continue
        for attr, kind in names.items():
            report["names"] += 1
            if not hasattr(module, attr):
                report["missing"].append(f"{name}.{attr}")
            elif kind in ("class", "function") and not callable(getattr(module, attr)):
                report["kinds"].append(f"{name}.{attr}")
    print(json.dumps(report))
    """
)


def test_every_public_name_of_borgstore_exists_in_the_drop_in() -> None:
    completed = subprocess.run([sys.executable, "-c", WALK], capture_output=True, text=True, check=True)
    report = json.loads(completed.stdout)
    assert report["version"].startswith("0.7."), report
    assert report["modules"] >= 19 and report["names"] > 150, report
    assert sorted(set(report["missing"]) - KNOWN_DIFFERENCES) == []
    assert sorted(KNOWN_DIFFERENCES - set(report["missing"])) == [], "a known difference is gone: update the list"
    assert report["kinds"] == []
