"""Prometheus metrics against the real server: a scrape of the master sums every worker, dead
ones included; nothing listens unless ca.json asks; a port in use is one line at start-up."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.harness import (
    CA,
    HOST,
    PROVISIONER_PASSWORD,
    STEP_CA,
    CAFactory,
    cert_fingerprint,
    clean_env,
    csr_pem,
    ec_key,
    free_port,
    load_chain,
    make_csr,
)
from tests.e2e.tokens import TokenMaker

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def workers(master: int) -> set[int]:
    """The master's child processes, from /proc."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue  # ended while we looked
            if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                found.add(int(entry))
    return found


def listening_ports(pids: Iterable[int]) -> set[int]:
    """TCP ports in LISTEN state whose socket one of `pids` holds open."""
    inodes = set()
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def scrape(port: int) -> Samples:
    resp = httpx.get(f"http://{HOST}:{port}/metrics", timeout=30)
    assert resp.status_code == 200, resp.text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _with_metrics(port: int) -> Any:
    def edit(cfg: dict[str, Any]) -> None:
        cfg.setdefault("stepstone", {})["metrics"] = {"address": f"{HOST}:{port}"}

    return edit


def _sign(ca: CA, tokens: TokenMaker, name: str) -> tuple[httpx.Response, str]:
    """POST /1.0/sign on a connection of its own (any worker may take it)."""
    ott = tokens.token(name)
    with ca.http() as http:
        resp = http.post("/1.0/sign", json={"csr": csr_pem(make_csr(name, [name])), "ott": ott})
    return resp, ott


def _restart_workers(ca: CA) -> None:
    """SIGTERM every worker; gunicorn starts new ones (new processes, new files)."""
    old = workers(ca.pid)
    assert len(old) == 2, old
    for pid in old:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = workers(ca.pid)
        if len(now) == 2 and not now & old:
            return
        time.sleep(0.1)
    raise AssertionError(f"workers {old} were not replaced:\n{ca.log_tail()}")


def test_a_scrape_sums_every_worker(ca_factory: CAFactory, tmp_path: Path) -> None:
    port = free_port()
    ca = ca_factory("metrics", _with_metrics(port))
    with ca.http() as http:
        tokens = TokenMaker.fetch(http, PROVISIONER_PASSWORD, ca.fingerprint)

    # Only the master holds the metrics listener; the workers hold the CA's port alone.
    assert listening_ports([ca.pid]) == {ca.port, port}
    for worker in workers(ca.pid):
        assert listening_ports([worker]) == {ca.port}

    # Three certificates from the first workers, then three from their replacements.
    for i in range(3):
        resp, used = _sign(ca, tokens, f"m{i}.example")
        assert resp.status_code == 201, resp.text
    _restart_workers(ca)
    for i in range(3, 6):
        resp, _ = _sign(ca, tokens, f"m{i}.example")
        assert resp.status_code == 201, resp.text
    leaf_pem = resp.json()["crt"]
    (leaf,) = load_chain(leaf_pem)

    # A replayed token, a renewal over mTLS, a revocation by token.
    with ca.http() as http:
        body = {"csr": csr_pem(make_csr("m2.example", ["m2.example"])), "ott": used}
        assert http.post("/1.0/sign", json=body).status_code == 401
    key = ec_key()
    resp, _ = _sign_with_key(ca, tokens, "mtls.example", key)
    crt, key_file = _write_pair(tmp_path, resp.json()["crt"] + resp.json()["ca"], key)
    context = ca.ssl_context()
    context.load_cert_chain(crt, key_file)
    with httpx.Client(base_url=ca.url, verify=context, timeout=30) as mtls:
        assert mtls.post("/1.0/renew").status_code == 201
    revoke = tokens.token(str(leaf.serial_number), aud=f"{ca.url}/1.0/revoke")
    with ca.http() as http:
        resp = http.post(
            "/1.0/revoke",
            json={"serial": str(leaf.serial_number), "ott": revoke, "passive": True},
        )
        assert resp.status_code == 200, resp.text

    got = scrape(port)
    assert value(got, "stepstone_certificates_issued_total", provisioner="admin") == 7
    assert value(got, "stepstone_certificates_renewed_total", provisioner="admin") == 1
    assert value(got, "stepstone_certificates_revoked_total", provisioner="admin") == 1
    assert value(got, "stepstone_token_replays_total", provisioner="admin") == 1
    requests = "stepstone_http_requests_total"
    assert value(got, requests, route="/1.0/sign", status="201") == 7
    assert value(got, requests, route="/1.0/sign", status="401") == 1
    assert value(got, requests, route="/1.0/renew", status="201") == 1
    assert value(got, requests, route="/1.0/revoke", status="200") == 1
    assert value(got, "stepstone_http_request_duration_seconds_count", route="/1.0/sign") == 8
    assert value(got, "stepstone_keystore_operation_seconds_count", operation="sign") == 8
    assert value(got, "stepstone_keystore_errors_total", operation="sign") == 0
    # Route templates only: no serial, no raw path, no token in any label.
    labels = {v for (_, pairs) in got for (_, v) in pairs}
    assert str(leaf.serial_number) not in labels

    now = datetime.now(UTC)
    for role, cert in (("root", ca.root), ("intermediate", ca.intermediate)):
        left = value(
            got,
            "stepstone_ca_certificate_expiry_seconds",
            role=role,
            common_name=f"{ca.name} {role.capitalize()} CA",
            sha256=cert_fingerprint(cert),
        )
        assert abs(left - (cert.not_valid_after_utc - now).total_seconds()) < 600


def _sign_with_key(ca: CA, tokens: TokenMaker, name: str, key: Any) -> tuple[httpx.Response, str]:
    ott = tokens.token(name)
    with ca.http() as http:
        csr = csr_pem(make_csr(name, [name], key))
        resp = http.post("/1.0/sign", json={"csr": csr, "ott": ott})
    assert resp.status_code == 201, resp.text
    return resp, ott


def _write_pair(directory: Path, chain_pem: str, key: Any) -> tuple[Path, Path]:
    crt, key_file = directory / "client.crt", directory / "client.key"
    crt.write_text(chain_pem)
    key_file.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    return crt, key_file


def test_nothing_listens_by_default(main_ca: CA) -> None:
    assert main_ca.config().get("stepstone", {}).get("metrics") is None
    assert "metricsAddress" not in main_ca.config()
    assert listening_ports([main_ca.pid, *workers(main_ca.pid)]) == {main_ca.port}


def test_a_port_in_use_is_one_line_at_start(ca_factory: CAFactory) -> None:
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        ca = ca_factory("metrics-busy", _with_metrics(port), start=False)
        proc = subprocess.run(
            [str(STEP_CA), str(ca.ca_json), "--password-file", str(ca.password_file), "--quiet"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=clean_env(ca.steppath),
            timeout=120,
        )
    assert proc.returncode == 1
    assert proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert line.endswith(f"cannot listen on {HOST}:{port} for metrics: address already in use")
