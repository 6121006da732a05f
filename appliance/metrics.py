"""The CA core's Prometheus metrics, recorded where the events happen (one line each).

The core knows no HTTP: it only counts. Who reads the counts, and how they are shared between
gunicorn's worker processes, is the API's business (api/metrics.py switches prometheus-client
to its multiprocess mode before the workers fork and serves the sum).

Every metric here has labels, on purpose: prometheus-client picks the storage of a value
(in memory, or a file shared between processes) when the value is made, and a labelled
metric makes its values on first use, in the worker, after the mode is chosen. Label values
come from the configuration (provisioner names, operation names), never from a request, so
the number of series stays bounded.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from types import TracebackType

from prometheus_client import Counter, Histogram

from keystores import KeyStoreError

CERTIFICATES_ISSUED = Counter(
    "stepstone_certificates_issued_total",
    "Certificates issued by POST /sign, by the provisioner that authorised them.",
    ["provisioner"],
)
CERTIFICATES_RENEWED = Counter(
    "stepstone_certificates_renewed_total",
    "Certificates renewed or rekeyed, by the provisioner named in the old certificate.",
    ["provisioner"],
)
CERTIFICATES_REVOKED = Counter(
    "stepstone_certificates_revoked_total",
    "Certificates revoked, by the provisioner that authorised the revocation.",
    ["provisioner"],
)
TOKEN_REPLAYS = Counter(
    "stepstone_token_replays_total",
    "Single-use tokens refused because they had been used before, by provisioner "
    "(empty for renewal tokens).",
    ["provisioner"],
)
KEYSTORE_SECONDS = Histogram(
    "stepstone_keystore_operation_seconds",
    "Time spent in key store operations (sign: build and sign a certificate with the "
    "issuing key), failures included.",
    ["operation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
KEYSTORE_ERRORS = Counter(
    "stepstone_keystore_errors_total",
    "Key store operations that failed with a key store error (the API answers 503).",
    ["operation"],
)

ALL = (
    CERTIFICATES_ISSUED,
    CERTIFICATES_RENEWED,
    CERTIFICATES_REVOKED,
    TOKEN_REPLAYS,
    KEYSTORE_SECONDS,
    KEYSTORE_ERRORS,
)


class _Timed:
    """The block's duration as a key store operation, and its key store failure if any (a
    class, not @contextmanager: it runs on every signature, and a generator's set-up costs
    about as much again as the two metric updates)."""

    __slots__ = ("operation", "started")

    def __init__(self, operation: str) -> None:
        self.operation = operation
        self.started = 0.0

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is not None and issubclass(kind, KeyStoreError):
            KEYSTORE_ERRORS.labels(self.operation).inc()
        KEYSTORE_SECONDS.labels(self.operation).observe(time.perf_counter() - self.started)


def keystore_operation(operation: str) -> _Timed:
    """`with keystore_operation("sign"): ...` times the block; a KeyStoreError is counted."""
    return _Timed(operation)


def start_at_zero(provisioners: Iterable[str]) -> None:
    """Make the series every process will use, at 0, so a scrape shows them before the first
    event and rate() sees the first one (Prometheus' advice for known label values)."""
    for name in provisioners:
        for counter in (
            CERTIFICATES_ISSUED,
            CERTIFICATES_RENEWED,
            CERTIFICATES_REVOKED,
            TOKEN_REPLAYS,
        ):
            counter.labels(name)
    KEYSTORE_SECONDS.labels("sign")
    KEYSTORE_ERRORS.labels("sign")
