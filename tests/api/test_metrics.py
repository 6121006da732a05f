"""api.metrics in-process: requests counted by route template (never the raw path), the CA
certificates' expiry, and the listener serving the sum of several real forked processes
(prometheus-client's multiprocess mode, as the gunicorn master and its workers use it)."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import falcon.testing
import httpx
import pytest
from prometheus_client import REGISTRY, generate_latest, values
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from api.metrics import REQUESTS, ExpiryCollector, MetricsListener, keep_in_memory
from api.server import listen_error
from appliance import metrics as core_metrics
from appliance.authority import Authority
from appliance.config import CAConfig
from appliance.pki import InitRequest, init_pki
from pki.fingerprint import certificate_fingerprint


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Authority]:
    base = tmp_path_factory.mktemp("metrics") / "step"
    mp = pytest.MonkeyPatch()
    mp.setenv("STEPPATH", str(base))
    try:
        init_pki(
            InitRequest(
                base, "Metrics", ["127.0.0.1"], "127.0.0.1:9000", "admin", b"ca-pw", b"prov-pw"
            )
        )
        auth = Authority.open(CAConfig.load(Path(base) / "config" / "ca.json"), password=b"ca-pw")
        yield auth
        auth.repository.engine.dispose()
    finally:
        mp.undo()


def sample(name: str, **labels: str) -> float:
    """A value of this process's metrics (0 when the series does not exist yet)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(listener: MetricsListener, **headers: str) -> dict[tuple[str, tuple[Any, ...]], float]:
    """GET /metrics, parsed: {(sample name, sorted labels): value}."""
    resp = httpx.get(f"http://{listener.address}/metrics", headers=headers)
    assert resp.status_code == 200, resp.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }


def test_requests_counted_by_route_template(authority: Authority) -> None:
    client = falcon.testing.TestClient(create_app(authority, metrics=True))
    sha = certificate_fingerprint(authority.roots[0])
    found = {"route": "/root/{sha}", "status": "200"}
    missing = {"route": "/root/{sha}", "status": "404"}
    unmatched = {"route": "unmatched", "status": "404"}
    before = {
        k: sample("stepstone_http_requests_total", **v)
        for k, v in (("found", found), ("missing", missing), ("unmatched", unmatched))
    }
    timed = sample("stepstone_http_request_duration_seconds_count", route="/root/{sha}")

    assert client.simulate_get(f"/root/{sha}").status_code == 200
    assert client.simulate_get("/root/" + "ab" * 32).status_code == 404
    assert client.simulate_get("/no/such/place-abcdef").status_code == 404

    assert sample("stepstone_http_requests_total", **found) == before["found"] + 1
    assert sample("stepstone_http_requests_total", **missing) == before["missing"] + 1
    assert sample("stepstone_http_requests_total", **unmatched) == before["unmatched"] + 1
    assert sample("stepstone_http_request_duration_seconds_count", route="/root/{sha}") == timed + 2
    exposed = generate_latest(REGISTRY).decode()
    assert sha not in exposed and "abab" not in exposed and "place-abcdef" not in exposed


def test_nothing_counted_without_metrics(authority: Authority) -> None:
    client = falcon.testing.TestClient(create_app(authority))
    before = sample("stepstone_http_requests_total", route="/health", status="200")
    assert client.simulate_get("/health").status_code == 200
    assert sample("stepstone_http_requests_total", route="/health", status="200") == before


def test_expiry_of_the_root_and_the_intermediate(authority: Authority) -> None:
    (family,) = ExpiryCollector(lambda: authority).collect()
    by_role = {s.labels["role"]: s for s in family.samples}
    assert sorted(by_role) == ["intermediate", "root"]
    for role, cert, name in (
        ("root", authority.roots[0], "Metrics Root CA"),
        ("intermediate", authority.intermediates[0], "Metrics Intermediate CA"),
    ):
        assert by_role[role].labels == {
            "role": role,
            "common_name": name,
            "sha256": certificate_fingerprint(cert),
        }
        left = (cert.not_valid_after_utc - datetime.now(UTC)).total_seconds()
        assert abs(by_role[role].value - left) < 600


def _restore_single_process_mode() -> None:
    """Undo what a MetricsListener did to this (test) process: the library's value class,
    the environment, and values that live in the removed directory."""
    keep_in_memory()
    assert values.ValueClass is values.MutexValue
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


@pytest.fixture
def listener(authority: Authority) -> Iterator[MetricsListener]:
    made = MetricsListener("127.0.0.1", 0, lambda: authority)
    made.start()
    try:
        yield made
    finally:
        made.close()
        _restore_single_process_mode()


def _in_child(work: Any) -> int:
    """Run `work` in a forked process (as a gunicorn worker would) and reap it."""
    pid = os.fork()
    if pid == 0:
        try:
            work()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    return pid


def test_a_scrape_sums_every_process(listener: MetricsListener) -> None:
    def worker(signs: int) -> None:
        for _ in range(signs):
            core_metrics.CERTIFICATES_ISSUED.labels("admin").inc()
            REQUESTS.labels("/1.0/sign", 201).inc()
        core_metrics.TOKEN_REPLAYS.labels("admin").inc()

    for signs in (2, 3):
        listener.worker_exited(_in_child(lambda signs=signs: worker(signs)))

    got = scrape(listener)
    assert got[("stepstone_certificates_issued_total", (("provisioner", "admin"),))] == 5
    assert got[("stepstone_token_replays_total", (("provisioner", "admin"),))] == 2
    assert got[("stepstone_http_requests_total", (("route", "/1.0/sign"), ("status", "201")))] == 5
    roles = sorted(
        dict(k[1])["role"] for k in got if k[0] == "stepstone_ca_certificate_expiry_seconds"
    )
    assert roles == ["intermediate", "root"]


def test_only_get_metrics_is_served(listener: MetricsListener) -> None:
    base = f"http://{listener.address}"
    assert httpx.get(f"{base}/").status_code == 404
    assert httpx.get(f"{base}/metrics/more").status_code == 404
    assert httpx.post(f"{base}/metrics").status_code == 501
    head = httpx.head(f"{base}/metrics")
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) > 0
    om = httpx.get(f"{base}/metrics", headers={"Accept": "application/openmetrics-text"})
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert om.text.endswith("# EOF\n")


def test_directory_private_and_removed_by_the_master_only(authority: Authority) -> None:
    made = MetricsListener("127.0.0.1", 0, lambda: authority)
    try:
        made.start()
        directory = Path(made.directory)
        assert directory.stat().st_mode & 0o777 == 0o700
        assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(directory)
        # A worker unwinds through the master's clean-up code when it exits: nothing happens.
        _in_child(made.close)
        assert directory.is_dir()
        assert httpx.get(f"http://{made.address}/metrics").status_code == 200
        address = made.address
        made.close()
        assert not directory.exists()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://{address}/metrics")
    finally:
        made.close()
        _restore_single_process_mode()


def test_port_in_use_is_one_line(authority: Authority) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError) as info:
            MetricsListener("127.0.0.1", port, lambda: authority)
    assert info.value.errno == errno.EADDRINUSE
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ  # nothing was switched on
    assert str(listen_error("127.0.0.1", port, info.value, "metrics")) == (
        f"cannot listen on 127.0.0.1:{port} for metrics: address already in use"
    )


def test_a_stray_multiprocess_directory_is_ignored_when_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Metrics off, $PROMETHEUS_MULTIPROC_DIR left in the environment, its directory gone:
    counting still works, in memory."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "gone"))
    # As prometheus-client's import chose it, the variable being set then:
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    try:
        keep_in_memory()
        core_metrics.TOKEN_REPLAYS.labels("stray").inc()
        assert sample("stepstone_token_replays_total", provisioner="stray") == 1
        assert not (tmp_path / "gone").exists()
    finally:
        keep_in_memory()
