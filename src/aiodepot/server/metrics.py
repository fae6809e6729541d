"""Prometheus metrics of the REST server: requests, bytes, latency and errors, in the text format."""

from __future__ import annotations

import bisect
from collections import Counter

__all__ = ["Metrics"]

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Upper bounds (seconds) of the request latency histogram."""


class Metrics:
    """Counters the server updates per request and renders for Prometheus."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, int]] = Counter()
        self.bytes_received = 0
        self.bytes_sent = 0
        self._bucket_counts = [0] * (len(BUCKETS) + 1)
        self._latency_sum = 0.0
        self._latency_count = 0

    def observe(self, method: str, status: int, seconds: float, received: int, sent: int) -> None:
        """Count one finished request."""
        self.requests[(method, status)] += 1
        self.bytes_received += received
        self.bytes_sent += sent
        self._bucket_counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self._latency_sum += seconds
        self._latency_count += 1

    def render(self) -> str:
        """The metrics in Prometheus' text exposition format."""
        lines = [
            "# HELP aiodepot_requests_total Requests answered, by method and status.",
            "# TYPE aiodepot_requests_total counter",
        ]
        for (method, status), count in sorted(self.requests.items()):
            lines.append(f'aiodepot_requests_total{{method="{method}",status="{status}"}} {count}')
        lines += [
            "# HELP aiodepot_errors_total Requests answered with a 4xx or 5xx status, by status.",
            "# TYPE aiodepot_errors_total counter",
        ]
        errors: Counter[int] = Counter()
        for (_, status), count in self.requests.items():
            if status >= 400:
                errors[status] += count
        for status, count in sorted(errors.items()):
            lines.append(f'aiodepot_errors_total{{status="{status}"}} {count}')
        lines += [
            "# HELP aiodepot_received_bytes_total Request body bytes received.",
            "# TYPE aiodepot_received_bytes_total counter",
            f"aiodepot_received_bytes_total {self.bytes_received}",
            "# HELP aiodepot_sent_bytes_total Response body bytes sent.",
            "# TYPE aiodepot_sent_bytes_total counter",
            f"aiodepot_sent_bytes_total {self.bytes_sent}",
            "# HELP aiodepot_request_duration_seconds Time to answer a request.",
            "# TYPE aiodepot_request_duration_seconds histogram",
        ]
        cumulative = 0
        for bound, count in zip(BUCKETS, self._bucket_counts, strict=False):
            cumulative += count
            lines.append(f'aiodepot_request_duration_seconds_bucket{{le="{bound}"}} {cumulative}')
        lines.append(f'aiodepot_request_duration_seconds_bucket{{le="+Inf"}} {self._latency_count}')
        lines.append(f"aiodepot_request_duration_seconds_sum {self._latency_sum}")
        lines.append(f"aiodepot_request_duration_seconds_count {self._latency_count}")
        return "\n".join(lines) + "\n"
