"""schemathesis drives a live loopback server from its own OpenAPI document: no request may end in a 5xx.

CI runs a bounded number of examples per operation; ``-m slow`` runs many more.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from aiodepot.backends.memory import MemoryBackend
from aiodepot.server.openapi import document
from tests.servers.rest import ThreadedServer

schema = schemathesis.openapi.from_dict(document())
DOCUMENTED_METHODS = {"get", "head", "post", "delete"}
EXAMPLES = int(os.environ.get("AIODEPOT_FUZZ_EXAMPLES", "25"))


@pytest.fixture(scope="module")
def live_server() -> Iterator[ThreadedServer]:
    with ThreadedServer(MemoryBackend(f"fuzz-{uuid.uuid4().hex}"), max_body_size=1 << 20) as server:
        yield server


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: schemathesis.Case, live_server: ThreadedServer) -> None:
    response = case.call(base_url=live_server.url, timeout=10)
    if response.status_code == 501 and case.method.lower() not in DOCUMENTED_METHODS:
        return  # the protocol answers methods it does not define with 501 (schemathesis probes TRACE etc.)
    assert response.status_code < 500, (case.method, case.formatted_path, response.status_code, response.text[:200])
