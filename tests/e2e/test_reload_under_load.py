"""SIGHUP under a running load of signs: not one request fails, and once a client is served
by the new configuration every certificate it gets follows the new claim. A broken ca.json
sent with SIGHUP under the same load is refused with one log line and the running
configuration keeps serving."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
from cryptography import x509

from tests.e2e.harness import CA, PROVISIONER_PASSWORD, CAFactory, csr_pem, ec_key, make_csr
from tests.e2e.tokens import TokenMaker

CLIENTS = 4
BEFORE = 5  # certificates each client gets before the reload
AFTER = 10  # and after it has seen the new claim
DEADLINE = 120.0  # seconds to wait for any condition below (never a timing assertion)
OLD = "24h"  # the default TLS certificate duration step ca init leaves
NEW = "2h"


class Load:
    """CLIENTS threads, each with its own keep-alive connection, signing until stopped.

    Per client, the validity (notAfter - notBefore) of every certificate in order; every
    failure (an exception or a status other than 201) is kept.
    """

    def __init__(self, ca: CA, tokens: TokenMaker) -> None:
        self.ca = ca
        self.tokens = tokens
        self.issued: list[list[timedelta]] = [[] for _ in range(CLIENTS)]
        self.failures: list[str] = []
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(CLIENTS)
        ]

    def _client(self, index: int) -> None:
        with self.ca.http(timeout=60) as http:
            number = 0
            while not self.stopping.is_set():
                number += 1
                name = f"load{index}-{number}.reload.test"
                body = {
                    "csr": csr_pem(make_csr(name, [name], ec_key())),
                    "ott": self.tokens.token(name),
                }
                try:
                    resp = http.post("/1.0/sign", json=body)
                except httpx.HTTPError as exc:
                    self.failures.append(f"{name}: {exc!r}")
                    continue
                if resp.status_code != 201:
                    self.failures.append(f"{name}: {resp.status_code} {resp.text}")
                    continue
                cert = x509.load_pem_x509_certificate(resp.json()["crt"].encode())
                self.issued[index].append(cert.not_valid_after_utc - cert.not_valid_before_utc)

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=DEADLINE)

    def counts(self) -> list[int]:
        return [len(items) for items in self.issued]

    def wait(self, condition: Callable[[], bool], what: str) -> None:
        """Wait (up to DEADLINE) for `condition`; a failure stops the wait early."""
        deadline = time.monotonic() + DEADLINE
        while not condition():
            assert not self.failures, self.failures[:3]
            assert time.monotonic() < deadline, f"{what}: {self.counts()}\n{self.ca.log_tail()}"
            time.sleep(0.05)

    def wait_for_more(self, more: int, what: str) -> None:
        """Until every client got `more` certificates beyond what it has now."""
        start = self.counts()
        self.wait(
            lambda: all(n >= s + more for n, s in zip(self.counts(), start, strict=True)), what
        )


def _duration(text: str) -> timedelta:
    return timedelta(hours=int(text.removesuffix("h")))


def _set_claim(ca: CA, duration: str) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        provisioner = cfg["authority"]["provisioners"][0]
        provisioner["claims"] = {
            **provisioner.get("claims", {}),
            "defaultTLSCertDuration": duration,
        }

    ca.edit_config(edit)


def _error_lines(ca: CA) -> list[str]:
    lines = ca.log_path.read_text(errors="replace").splitlines()
    return [line for line in lines if '"level":"error"' in line]


def test_sighup_under_load_changes_the_claim_without_a_failed_request(
    ca_factory: CAFactory,
) -> None:
    ca = ca_factory("reload-load")
    with ca.http() as http:
        tokens = TokenMaker.fetch(http, PROVISIONER_PASSWORD, ca.fingerprint)
    with Load(ca, tokens) as load:
        load.wait_for_more(BEFORE, "signing under the first configuration")
        validity = {d for items in load.issued for d in items}
        assert len(validity) == 1, validity
        (old,) = validity
        backdate = old - _duration(OLD)  # notBefore is backdated; the claim is the rest
        new = _duration(NEW) + backdate

        _set_claim(ca, NEW)
        reloaded = ca.log_path.read_text().count("configuration reloaded")
        os.kill(ca.pid, signal.SIGHUP)
        load.wait(
            lambda: all(new in items for items in load.issued), "every client on the new claim"
        )
        load.wait_for_more(AFTER, "signing under the new configuration")
        assert ca.log_path.read_text().count("configuration reloaded") == reloaded + 1

        # A broken ca.json under the same load: one log line, and the new claim keeps serving.
        errors = len(_error_lines(ca))
        good = ca.ca_json.read_text()
        ca.ca_json.write_text("{ not json")
        os.kill(ca.pid, signal.SIGHUP)
        load.wait(lambda: len(_error_lines(ca)) > errors, "the refused reload logged")
        load.wait_for_more(AFTER, "signing after the refused reload")
        ca.ca_json.write_text(good)
    assert load.failures == []
    refused = _error_lines(ca)[errors:]
    assert len(refused) == 1, refused
    assert "keeping the running configuration" in json.loads(refused[0])["msg"]
    for items in load.issued:
        first_new = items.index(new)
        # Before the switch the old claim, after it only the new one: a client, once served
        # by the new configuration, never gets the old one back, refused reload included.
        assert set(items[:first_new]) == {old}
        assert set(items[first_new:]) == {new}, items
        assert first_new >= BEFORE and len(items) - first_new >= 2 * AFTER
