"""Prometheus metrics of one gateway process, in the text exposition format. Each worker
process counts its own requests; the ``pid`` label tells the workers apart."""

from __future__ import annotations

import bisect
import os
from collections import Counter
from typing import Protocol

__all__ = ["GatewayMetrics"]

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _Histogram:
    def __init__(self) -> None:
        self.counts = [0] * (len(_BUCKETS) + 1)
        self.total = 0.0
        self.n = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(_BUCKETS, seconds)] += 1
        self.total += seconds
        self.n += 1

    def lines(self, name: str, labels: str) -> list[str]:
        out = []
        running = 0
        for bound, count in zip((*_BUCKETS, float("inf")), self.counts, strict=True):
            running += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            out.append(f'{name}_bucket{{{labels},le="{le}"}} {running}')
        out.append(f"{name}_sum{{{labels}}} {self.total}")
        out.append(f"{name}_count{{{labels}}} {self.n}")
        return out


class _Freshness(Protocol):
    def is_fresh(self) -> bool: ...


class _Pool(Protocol):
    opened: int


class GatewayMetrics:
    def __init__(self) -> None:
        self._requests: Counter[int] = Counter()
        self._refusals: Counter[str] = Counter()
        self._upstream_errors: Counter[int] = Counter()
        self._duration = _Histogram()
        self._upstream = _Histogram()

    def request(self, status: int, seconds: float) -> None:
        self._requests[status] += 1
        self._duration.observe(seconds)

    def refused(self, reason: str) -> None:
        self._refusals[reason] += 1

    def upstream_error(self, status: int) -> None:
        self._upstream_errors[status] += 1

    def upstream_seconds(self, seconds: float) -> None:
        self._upstream.observe(seconds)

    def render(self, revocations: _Freshness, pool: _Pool) -> str:
        pid = f'pid="{os.getpid()}"'
        lines = [
            "# HELP gateway_requests_total Requests answered, by status.",
            "# TYPE gateway_requests_total counter",
        ]
        lines += [
            f'gateway_requests_total{{{pid},status="{s}"}} {n}'
            for s, n in sorted(self._requests.items())
        ]
        lines += [
            "# HELP gateway_request_duration_seconds Time to answer a request.",
            "# TYPE gateway_request_duration_seconds histogram",
            *self._duration.lines("gateway_request_duration_seconds", pid),
            "# HELP gateway_upstream_response_seconds Time until the upstream's response head.",
            "# TYPE gateway_upstream_response_seconds histogram",
            *self._upstream.lines("gateway_upstream_response_seconds", pid),
            "# HELP gateway_certificate_refusals_total Client certificates refused, by reason.",
            "# TYPE gateway_certificate_refusals_total counter",
        ]
        lines += [
            f'gateway_certificate_refusals_total{{{pid},reason="{r}"}} {n}'
            for r, n in sorted(self._refusals.items())
        ]
        lines += [
            "# HELP gateway_upstream_errors_total Upstream failures answered 502 or 504.",
            "# TYPE gateway_upstream_errors_total counter",
        ]
        lines += [
            f'gateway_upstream_errors_total{{{pid},status="{s}"}} {n}'
            for s, n in sorted(self._upstream_errors.items())
        ]
        lines += [
            "# HELP gateway_upstream_connections_opened_total Upstream connections opened.",
            "# TYPE gateway_upstream_connections_opened_total counter",
            f"gateway_upstream_connections_opened_total{{{pid}}} {pool.opened}",
            "# HELP gateway_revocations_fresh 1 while the revocation view is proved current.",
            "# TYPE gateway_revocations_fresh gauge",
            f"gateway_revocations_fresh{{{pid}}} {int(revocations.is_fresh())}",
        ]
        return "\n".join(lines) + "\n"
