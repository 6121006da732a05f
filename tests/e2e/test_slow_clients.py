"""Slow and stalled clients cannot starve the CA (the worker in api/worker.py).

200 TLS clients announce a 100 kB body and stall after a few bytes of it; 50 more trickle one
byte a second. While they hang on, `/health` answers in under a second and a certificate is
issued in under two; each of them is disconnected within the configured request timeout.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.e2e.harness import CA, HOST, PROVISIONER_PASSWORD, CAFactory, csr_pem, make_csr
from tests.e2e.tokens import TokenMaker

REQUEST_TIMEOUT = 4.0
HANDSHAKE_TIMEOUT = 2.0
STALLED = 200
TRICKLING = 50
# How late past the deadline a drop may come: the loop's timer and a busy 2-core machine.
DROP_SLACK = 3.0


@dataclass
class SlowClient:
    """One connection that sends headers and then too little, too slowly."""

    started: float = 0.0
    dropped: float | None = None


def _edit(config: dict[str, Any]) -> None:
    config["serverLimits"] = {
        "requestTimeout": f"{REQUEST_TIMEOUT:g}s",
        "handshakeTimeout": f"{HANDSHAKE_TIMEOUT:g}s",
    }


@pytest.fixture(scope="module")
def slow_ca(ca_factory: CAFactory) -> CA:
    return ca_factory("slow", _edit)


HEAD = (
    b"POST /1.0/sign HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100000\r\n\r\n"
)


async def _slow(ca: CA, client: SlowClient, trickle: bool) -> None:
    reader, writer = await asyncio.open_connection(HOST, ca.port, ssl=ca.ssl_context())
    client.started = time.monotonic()
    writer.write(HEAD + b'{"csr":"')
    await writer.drain()

    async def trickle_bytes() -> None:
        while True:  # until the server drops us (or the task is cancelled)
            await asyncio.sleep(1.0)
            try:
                writer.write(b"A")
                await writer.drain()
            except (ConnectionError, ssl.SSLError, RuntimeError):
                return

    feeder = asyncio.create_task(trickle_bytes()) if trickle else None
    try:
        await asyncio.wait_for(reader.read(), timeout=REQUEST_TIMEOUT * 4)
    except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
        pass
    except TimeoutError:
        return  # never dropped: client.dropped stays None
    finally:
        if feeder is not None:
            feeder.cancel()
        writer.transport.abort()
    client.dropped = time.monotonic()


def _timed(fn: Any) -> tuple[float, Any]:
    start = time.monotonic()
    result = fn()
    return time.monotonic() - start, result


def test_stalled_clients_do_not_starve_the_ca(slow_ca: CA) -> None:
    with slow_ca.http(timeout=10.0) as http:
        tokens = TokenMaker.fetch(http, PROVISIONER_PASSWORD, slow_ca.fingerprint)
    stalled = [SlowClient() for _ in range(STALLED)]
    trickling = [SlowClient() for _ in range(TRICKLING)]

    async def scenario() -> tuple[float, httpx.Response, float, httpx.Response]:
        tasks = [asyncio.create_task(_slow(slow_ca, c, False)) for c in stalled]
        tasks += [asyncio.create_task(_slow(slow_ca, c, True)) for c in trickling]
        while sum(1 for c in stalled + trickling if c.started) < STALLED + TRICKLING:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # all of them are now inside the server, mid-request

        def health() -> httpx.Response:
            with slow_ca.http(timeout=10.0) as http:
                return http.get("/health")

        def sign() -> httpx.Response:
            sub = "busy.example.internal"
            body = {"csr": csr_pem(make_csr(sub, [sub])), "ott": tokens.token(sub, [sub])}
            with slow_ca.http(timeout=10.0) as http:
                return http.post("/1.0/sign", json=body)

        health_s, health_resp = await asyncio.to_thread(_timed, health)
        sign_s, sign_resp = await asyncio.to_thread(_timed, sign)
        await asyncio.gather(*tasks)
        return health_s, health_resp, sign_s, sign_resp

    health_s, health_resp, sign_s, sign_resp = asyncio.run(scenario())
    assert health_resp.status_code == 200 and health_resp.json() == {"status": "ok"}
    assert health_s < 1.0, f"/health took {health_s:.2f}s behind stalled clients"
    assert sign_resp.status_code == 201, sign_resp.text
    assert sign_s < 2.0, f"/sign took {sign_s:.2f}s behind stalled clients"
    for client in stalled + trickling:
        assert client.dropped is not None, "a stalled client was never disconnected"
        held = client.dropped - client.started
        assert held < REQUEST_TIMEOUT + DROP_SLACK, f"held {held:.1f}s"


def test_a_silent_client_is_dropped_after_the_handshake_timeout(slow_ca: CA) -> None:
    """A TCP client that never starts TLS holds nothing beyond the handshake timeout."""
    with socket.create_connection((HOST, slow_ca.port), timeout=30) as sock:
        start = time.monotonic()
        assert sock.recv(1) == b""  # the server closed it
        assert time.monotonic() - start < HANDSHAKE_TIMEOUT + DROP_SLACK


def test_keep_alive_still_works(slow_ca: CA) -> None:
    """Several requests on one connection (the worker reads each one whole)."""
    with slow_ca.http(timeout=10.0) as http:
        for _ in range(5):
            assert http.get("/health").status_code == 200
        assert http.get("/roots").status_code == 201


def test_oversized_body_is_refused_before_it_is_read(slow_ca: CA) -> None:
    """A body announced far beyond the limit is a 413 in step-ca's error form, at once."""
    raw = socket.create_connection((HOST, slow_ca.port), timeout=10)
    with slow_ca.ssl_context().wrap_socket(raw, server_hostname=HOST) as sock:
        sock.sendall(HEAD.replace(b"100000", str(50 << 20).encode()) + b"{}")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert json.loads(body) == {"status": 413, "message": "The request body is too large."}
