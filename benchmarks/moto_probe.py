"""Where moto's threads wait for a client: ``python -m benchmarks.moto_probe [--count N] [--rounds N]``.

moto (``python -m moto.server``) runs on werkzeug's development server, a thread per connection. A thread that
looks for the request and finds nothing yet gives up the GIL, sleeps, and competes for the GIL again when
the bytes arrive; after each reply werkzeug drains the connection (a ``select`` of up to 10 ms) until the
client's end comes, and a thread that must wait for it pays the same. How often that happens depends on how
soon the client sends its request after the connect and how soon it closes after the reply, which is how a
client's scheduling (an asyncio loop's turns, tokio's threads) shows up in a Python server's CPU.

This runs moto's app on werkzeug's threaded server (the same as ``python -m moto.server``) with a handler
that counts, for each PUT or GET of an object (the stores and loads of ``benchmarks/s3.py``):

- whether the request was readable when the connection's thread first looked (``select`` with no wait),
- whether the client's end (or more bytes) had already arrived when the post-reply drain began,
- the handler thread's CPU time (``time.thread_time``).

aiodepot and obstore then run ``benchmarks/s3.py``'s small-value rounds (``--count`` stores then loads, 32 in
flight) in turn, A O O A …, against one such server, and the table shows each round's counts. The server
itself: ``python -P benchmarks/moto_probe.py -p PORT [-H HOST]``.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import selectors
import threading
import time
import urllib.request
from typing import Any

_PROBE_PATH = "/__probe__"


class _Counts:
    """What the handler threads saw, per method, since the last read (guarded by ``lock``)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_method: dict[str, dict[str, float]] = {}
        self.running = 0  # handlers that have not counted yet (the probe's own request among them)

    def add(self, method: str, first_look: bool, end_there: bool | None, cpu: float) -> None:
        with self.lock:
            counts = self.by_method.setdefault(
                method, {"requests": 0, "first_look": 0, "drains": 0, "end_there": 0, "cpu": 0.0}
            )
            counts["requests"] += 1
            counts["first_look"] += first_look
            counts["cpu"] += cpu
            if end_there is not None:
                counts["drains"] += 1
                counts["end_there"] += end_there

    def take(self) -> dict[str, dict[str, float]]:
        """The counts, once every other handler has counted (a reply reaches the client before its handler
        ends: the drain after it waits for the client's end), then reset. Runs in the probe's own handler."""
        deadline = time.monotonic() + 2.0
        while self.running > 1 and time.monotonic() < deadline:
            time.sleep(0.001)
        with self.lock:
            counts, self.by_method = self.by_method, {}
        return counts


_state = threading.local()


class _FirstSelectSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """werkzeug's drain selector: its first ``select`` records whether the connection was readable at once."""

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if getattr(_state, "end_there", False) is None:
            _state.end_there = bool(super().select(0))
        return super().select(timeout)  # type: ignore[no-any-return]


def serve(port: int, host: str = "127.0.0.1") -> None:
    """moto's app on werkzeug's threaded server, every handler counting (see the module's text)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug import serving

    counts = _Counts()

    class _Selectors:
        DefaultSelector = _FirstSelectSelector
        EVENT_READ = selectors.EVENT_READ

    serving.selectors = _Selectors  # type: ignore[assignment]

    class ProbeHandler(serving.WSGIRequestHandler):
        def handle(self) -> None:
            started = time.thread_time()
            first_look = bool(select.select([self.connection], [], [], 0)[0])
            _state.end_there = None
            with counts.lock:
                counts.running += 1
            try:
                super().handle()
            finally:
                path = getattr(self, "path", "") or ""
                method = getattr(self, "command", "") or ""
                is_object = path.count("/") >= 2 and "?" not in path and not path.startswith(_PROBE_PATH)
                if is_object and method in ("PUT", "GET"):
                    counts.add(method, first_look, _state.end_there, time.thread_time() - started)
                with counts.lock:
                    counts.running -= 1

        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass  # no access log: its formatting would be counted in every thread's CPU

    moto_app = DomainDispatcherApplication(create_backend_app)
    moto_app.debug = True  # as moto.server sets it

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == _PROBE_PATH:
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps(counts.take()).encode()]
        return moto_app(environ, start_response)

    os.environ.setdefault("MOTO_PORT", str(port))
    serving.run_simple(host, port, app, threaded=True, request_handler=ProbeHandler)


def start_probe_server() -> Any:
    """Start the probe server (``serve``) in a process of its own on a free port; a ``MotoServer`` to stop."""
    from tests.servers.moto import start_moto_server

    return start_moto_server(script=os.path.abspath(__file__))


def take_counts(server: Any) -> dict[str, dict[str, float]]:
    """The counts since the last call, per method: requests, first_look, drains, end_there, cpu (seconds)."""
    with urllib.request.urlopen(f"{server.endpoint_url}{_PROBE_PATH}") as reply:
        return json.loads(reply.read())  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> None:
    """Run the rounds and print, per round and contender, the stores' and loads' counts."""
    from . import s3

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="stores and loads a round (default 1000)")
    parser.add_argument("--rounds", type=int, default=4, help="rounds per contender, in turn (default 4)")
    args = parser.parse_args(argv)
    contenders = (("aiodepot", s3.aiodepot_run), ("obstore", s3.obstore_run))
    server = start_probe_server()
    print(
        f"{'round':>5}  {'contender':<9} {'op':<5} {'items/s':>8} {'read at 1st look':>17} "
        f"{'end at drain':>13} {'thread CPU':>11}"
    )
    try:
        s3._warm_up(server)
        take_counts(server)
        for round_ in range(args.rounds):
            order = contenders if round_ % 2 == 0 else contenders[::-1]
            for label, run in order:
                times = run(server, args.count, 4096, None)
                if times is None:
                    raise SystemExit(f"{label} is not installed")
                counts = take_counts(server)
                for op, method in (("store", "PUT"), ("load", "GET")):
                    seen = counts.get(method, {})
                    requests = seen.get("requests", 0) or 1
                    drains = seen.get("drains", 0) or 1
                    print(
                        f"{round_ + 1:>5}  {label:<9} {op:<5} {args.count / times[op].seconds:>8,.0f} "
                        f"{seen.get('first_look', 0) / requests:>17.1%} {seen.get('end_there', 0) / drains:>13.1%} "
                        f"{seen.get('cpu', 0) / requests * 1e6:>8,.0f} µs"
                    )
    finally:
        server.stop()


if __name__ == "__main__":
    if not __package__:  # run as a file (``python -P benchmarks/moto_probe.py -p PORT -H HOST``): the server
        parser = argparse.ArgumentParser()
        parser.add_argument("-p", "--port", type=int, required=True)
        parser.add_argument("-H", "--host", default="127.0.0.1")
        arguments = parser.parse_args()
        serve(arguments.port, arguments.host)
    else:
        main()
