"""OCSP latency probes for the load tests: a request for one certificate, POSTed on one
keep-alive connection to the stack's CA at a steady pace."""

from __future__ import annotations

import http.client
import statistics
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from tests.gateway.gateway_stack import GatewayStack

__all__ = ["ocsp_request", "p99", "probe_ocsp"]


def ocsp_request(stack: GatewayStack, certificate: Path) -> bytes:
    leaf = x509.load_pem_x509_certificate((certificate / "cert.pem").read_bytes())
    issuer = x509.load_pem_x509_certificate((stack.ca.data_dir / "issuing" / "ca.pem").read_bytes())
    builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1())
    return builder.build().public_bytes(serialization.Encoding.DER)


def probe_ocsp(stack: GatewayStack, request: bytes, seconds: float, per_second: int) -> list[float]:
    """OCSP POSTs on one keep-alive connection, paced; the latency of each in ms."""
    host, port = stack.ca.servers[0].http.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    latencies = []
    started = time.monotonic()
    try:
        for n in range(int(seconds * per_second)):
            time.sleep(max(0.0, started + n / per_second - time.monotonic()))
            sent = time.perf_counter()
            connection.request(
                "POST", "/ocsp", request, {"Content-Type": "application/ocsp-request"}
            )
            answer = connection.getresponse()
            body = answer.read()
            latencies.append((time.perf_counter() - sent) * 1000)
            assert answer.status == 200
            assert ocsp.load_der_ocsp_response(body).certificate_status == ocsp.OCSPCertStatus.GOOD
    finally:
        connection.close()
    return latencies


def p99(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100)[98]
