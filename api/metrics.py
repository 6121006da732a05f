"""Prometheus metrics: the request metrics, the CA certificates' expiry, and the listener.

Off unless ca.json sets `stepstone.metrics.address` (or step-ca's `metricsAddress`). When on,
the gunicorn master binds that address before it forks and serves `GET /metrics` (plain
HTTP) from a thread of its own, so one scrape sees every worker: the workers record into a
private directory (prometheus-client's multiprocess mode, one file per process) that the
master made and reads at each scrape, and removes at exit. Counters of a worker that exited
stay in the sum. The listener carries no secrets: counts, latencies, route templates,
provisioner names, and the CA certificates' names and expiry. See docs/metrics.md.

prometheus-client picks where a value lives when the value is made, from
$PROMETHEUS_MULTIPROC_DIR as it was when the library was imported (before ca.json was read,
here); `use_directory` sets both before any value is made. Every metric is labelled, so its
values are made on first use, in the workers.

The listener is the standard library's threading HTTP server with a handler of a few lines,
not prometheus-client's `start_http_server`: that one answers every path with the metrics,
looks the bound address up in reverse DNS, and prints a failed scrape's traceback to stderr.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from socketserver import TCPServer, ThreadingMixIn
from typing import Any
from urllib.parse import urlsplit

import falcon
from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from api.middleware import common_name
from appliance import metrics as core_metrics
from appliance.authority import Authority
from pki.fingerprint import certificate_fingerprint

log = logging.getLogger("stepstone.metrics")

REQUESTS = Counter(
    "stepstone_http_requests_total",
    "HTTP requests answered by the API, by route template and status code.",
    ["route", "status"],
)
REQUEST_SECONDS = Histogram(
    "stepstone_http_request_duration_seconds",
    "Time the API spent on a request (from its start to its response), by route template.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
UNMATCHED = "unmatched"
"""The route label of a request no route matched (a 404): never the raw path."""


class RequestMetrics:
    """falcon middleware: count each answered request and observe its duration. The start
    time is the request log's (api.middleware.RequestLog), taken once for both."""

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        ctx = req.context
        route = req.uri_template or ctx.get("route") or UNMATCHED
        REQUESTS.labels(route, resp.status_code).inc()
        started = ctx.get("log_started")
        if started is not None:
            REQUEST_SECONDS.labels(route).observe(time.perf_counter() - started)


class ExpiryCollector:
    """`stepstone_ca_certificate_expiry_seconds`, computed at each scrape from the running
    authority (so a reload that rotates a certificate shows at the next scrape)."""

    def __init__(self, authority: Callable[[], Authority]) -> None:
        self._authority = authority

    def collect(self) -> Iterable[Metric]:
        authority = self._authority()
        gauge = GaugeMetricFamily(
            "stepstone_ca_certificate_expiry_seconds",
            "Seconds until a CA certificate expires (negative once it has).",
            labels=["role", "common_name", "sha256"],
        )
        now = datetime.now(UTC)
        for role, certs in (("root", authority.roots), ("intermediate", authority.intermediates)):
            for cert in certs:
                left = (cert.not_valid_after_utc - now).total_seconds()
                gauge.add_metric([role, common_name(cert), certificate_fingerprint(cert)], left)
        yield gauge


def keep_in_memory() -> None:
    """Each process counts in its own memory (metrics off), whatever the environment says: a
    $PROMETHEUS_MULTIPROC_DIR left there would make every count a file write, or fail when
    the directory is gone. Values made before are dropped."""
    for name in ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir"):
        os.environ.pop(name, None)
    for metric in (*core_metrics.ALL, REQUESTS, REQUEST_SECONDS):
        metric.clear()  # with the variable gone: prometheus-client warns otherwise
    values.ValueClass = values.MutexValue


def use_directory(directory: str) -> None:
    """Record into `directory`, shared by every process forked from now on (prometheus-client's
    multiprocess mode). Values made before (none are expected: the master serves no request)
    are dropped, so every value lives in the directory."""
    keep_in_memory()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


class _Handler(BaseHTTPRequestHandler):
    """GET (or HEAD) /metrics; 404 elsewhere, 501 for other methods."""

    server: _Server
    server_version = "stepstone-metrics"
    timeout = 10  # a scraper that stalls does not keep its thread

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def _answer(self, *, with_body: bool) -> None:
        if urlsplit(self.path).path != "/metrics":
            body, content_type, status = b"404 page not found\n", "text/plain; charset=utf-8", 404
        else:
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            body, status = encoder(self.server.registry), 200
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged: one every few seconds would drown the request log."""


class _Server(ThreadingMixIn, HTTPServer):
    daemon_threads = True
    registry: CollectorRegistry

    def __init__(self, host: str, port: int) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), _Handler)

    def server_bind(self) -> None:
        # TCPServer's bind, without HTTPServer's getfqdn(): a reverse DNS lookup of the
        # address that nothing here needs and that can hang on a box without DNS.
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("answering a metrics scrape from %s failed", client_address[0])


class MetricsListener:
    """The master's side: the bound listener, the shared directory, the scrape registry.

    Made in the gunicorn master before it forks: binding first, so a bad address fails the
    start (OSError) before anything else is made."""

    def __init__(self, host: str, port: int, authority: Callable[[], Authority]) -> None:
        self.server = _Server(host, port)
        self._owner = os.getpid()
        self.directory = tempfile.mkdtemp(prefix="stepstone-metrics-")  # 0700, this user's
        use_directory(self.directory)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(  # type: ignore[no-untyped-call]
            registry, path=self.directory
        )
        registry.register(ExpiryCollector(authority))
        self.server.registry = registry
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        host, port = self.server.server_name, self.server.server_port
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def start(self) -> None:
        """Serve scrapes from a daemon thread of this process."""
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="metrics", daemon=True
        )
        self._thread.start()

    def after_fork(self) -> None:
        """In a worker: close its copy of the listening socket (only the master serves it)."""
        self.server.socket.close()

    def worker_exited(self, pid: int) -> None:
        """gunicorn's child_exit: prometheus-client's bookkeeping for a process that ended."""
        multiprocess.mark_process_dead(pid, self.directory)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        """Stop serving and remove the directory; only in the master (workers inherit this
        object, and their exit runs the master's cleanups too)."""
        if os.getpid() != self._owner:
            return
        if self._thread is not None:
            self.server.shutdown()
            self._thread = None
        self.server.server_close()
        shutil.rmtree(self.directory, ignore_errors=True)
