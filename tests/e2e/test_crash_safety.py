"""Crash safety, end to end: SIGKILL the whole appliance under a signing load, 10 times.

A real `step-ca` (gunicorn master and workers) signs for several client processes; at random
moments under load the master and every worker are SIGKILLed together and the appliance is
started again on the same port. The clients carry on with new tokens. Afterwards the database
must hold every certificate a client received (same DER), no serial twice, one certificate at
most per token, a burned token for every certificate and none without one; and every token
whose use was committed must be refused when replayed. A token whose transaction never
committed was not burned: it may still buy its certificate, but none exists for it before.

`disableIssuedAtCheck` is on, so a token made before a restart is not refused for its age:
only the database stops a replay.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from tests.e2e.fleet import Record, create_pg_database, kill_appliance, use_database
from tests.e2e.harness import (
    CA,
    DEFAULT_401,
    PROVISIONER_PASSWORD,
    CAFactory,
    csr_pem,
    error_body,
    make_csr,
)
from tests.e2e.signload import ISSUED, LOST, SUFFIX, Sent, sign_load
from tests.e2e.tokens import TokenMaker
from tests.postgres import _bin, postgres_server
from tests.tools import missing

KILLS = 10
CLIENTS = 3
REPLAYED_ISSUED = 30  # answered tokens replayed (every token whose answer was lost is, too)
REFUSED = "authority.Authorize: token already used"


@pytest.fixture(scope="module")
def pg_server() -> Iterator[str]:
    try:
        _bin("initdb")
    except RuntimeError as exc:
        missing(str(exc))
    with postgres_server() as url:
        yield url


def _no_iat_check(cfg: dict[str, Any]) -> None:
    cfg["authority"]["disableIssuedAtCheck"] = True


def _log_reasons(ca: CA) -> dict[str, list[str]]:
    """Request id -> the messages the appliance logged for it (every start's log). No
    request of any start was answered with a 5xx."""
    found: dict[str, list[str]] = {}
    for log in sorted(ca.base.glob("server-*.log")):
        for line in log.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if not isinstance(entry, dict):
                continue
            assert int(entry.get("status") or 0) < 500, f"{log.name}: {line}"
            if "request_id" in entry:
                found.setdefault(str(entry["request_id"]), []).append(str(entry.get("msg")))
    return found


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_sigkill_under_load_loses_nothing(
    database: str,
    ca_factory: CAFactory,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ca = ca_factory(f"crash-{database}", _no_iat_check, start=False)
    pg = create_pg_database(request.getfixturevalue("pg_server")) if database != "sqlite" else None
    record = Record(use_database(ca, pg))
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    ca.start()
    request.addfinalizer(ca.stop)
    with ca.http() as http:
        maker = TokenMaker.fetch(http, PROVISIONER_PASSWORD, ca.fingerprint)

    # --- the load, and the kills -----------------------------------------------------------
    killed: list[list[int]] = []
    with sign_load(ca, maker, CLIENTS, tmp_path / "clients") as load:
        for _ in range(KILLS):
            # Under load: some certificates issued since the last start, then a random moment.
            load.wait_issued(load.issued + rng.randint(2, 25))
            time.sleep(rng.uniform(0.0, 0.25))
            tree = kill_appliance(ca)
            assert len(tree) >= 2, f"expected a master and workers, killed {tree}"
            killed.append(tree)
            ca.start()
        load.wait_issued(load.issued + 10)

    assert len(killed) == KILLS
    issued, stored, duplicates = _check_record(load.sent, record)
    lost = [s for s in load.sent if s.outcome == LOST]
    sample = lost + rng.sample(issued, min(REPLAYED_ISSUED, len(issued)))
    refused, usable = _replay(ca, sample, record.used_tokens(), stored)

    figures = {
        "database": database,
        "seed": seed,
        "kills": len(killed),
        "processes_killed": sum(len(t) for t in killed),
        "tokens_sent": len(load.sent),
        "never_sent": load.unsent,
        "answers_lost": len(lost),
        "certificates_received": len(issued),
        "certificates_recorded": len(stored),
        "duplicates": duplicates,
        "replays": len(sample),
        "replays_refused": refused,
        "tokens_never_committed": usable,
    }
    with capsys.disabled():
        print(f"\ncrash figures: {json.dumps(figures)}")
    assert len(stored) >= len(issued) > 0


def _serial(sent: Sent) -> str:
    """The serial of the certificate a client received for `sent`."""
    return str(x509.load_der_x509_certificate(bytes.fromhex(sent.der or "")).serial_number)


def _check_record(sent: list[Sent], record: Record) -> tuple[list[Sent], set[str], int]:
    """What the clients received against what the database holds. Returns the tokens that
    bought a received certificate, the subjects of the stored certificates, and how many
    serials appeared twice (asserted 0)."""
    outcomes = Counter(s.outcome for s in sent)
    assert set(outcomes) <= {ISSUED, LOST}, (
        "answers other than a certificate or a lost connection: "
        + repr([(s.outcome, s.detail) for s in sent if s.outcome not in (ISSUED, LOST)][:5])
    )
    issued = [s for s in sent if s.outcome == ISSUED]
    received_serials = Counter(_serial(s) for s in issued)
    stored = [c for c in record.certificates() if c.subject.endswith(f".{SUFFIX}")]
    by_serial = {c.serial: c for c in stored}
    duplicates = sum(n - 1 for n in received_serials.values()) + len(stored) - len(by_serial)
    assert duplicates == 0, f"serials issued twice: {received_serials.most_common(3)}"
    per_subject = Counter(c.subject for c in stored)
    assert max(per_subject.values()) == 1, f"a token bought two: {per_subject.most_common(3)}"
    missing = [s for s in issued if _serial(s) not in by_serial]
    assert not missing, f"{len(missing)} received certificates not in x509_certs: {missing[:3]}"
    burned = record.used_tokens()
    for s in issued:
        assert by_serial[_serial(s)].der.hex() == s.der, f"stored DER differs for {_serial(s)}"
    # The burn and the certificate commit together: every burned token has its certificate
    # (received or not), and no certificate exists for a token that is not burned.
    for s in sent:
        assert (s.jti in burned) == (s.cn in per_subject), (s.outcome, s.subject)
    assert set(per_subject) <= {s.cn for s in sent}, "a certificate no client asked for"
    return issued, set(per_subject), duplicates


def _replay(ca: CA, sample: list[Sent], burned: set[str], stored: set[str]) -> tuple[int, int]:
    """Send each token of `sample` again. A burned one is refused (401, logged as a used
    token); one whose transaction never committed has no certificate and buys one now.
    Returns (refused, never committed)."""
    answers: list[tuple[Sent, str, int, Any]] = []
    with ca.http() as http:
        for i, s in enumerate(sample):
            rid = f"replay-{i}"
            resp = http.post(
                "/1.0/sign",
                json={"csr": csr_pem(make_csr(s.subject, [s.subject])), "ott": s.token},
                headers={"X-Request-Id": rid},
            )
            answers.append((s, rid, resp.status_code, resp.json()))
    reasons = _log_reasons(ca)
    refused = usable = 0
    for s, rid, status, body in answers:
        if s.jti in burned:
            assert (status, body) == (401, error_body(401, DEFAULT_401)), (s, status, body)
            assert any(REFUSED in msg for msg in reasons.get(rid, [])), reasons.get(rid)
            refused += 1
        else:
            assert s.outcome == LOST and s.cn not in stored, s
            assert status == 201, (s, status, body)
            usable += 1
    return refused, usable
