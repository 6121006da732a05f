"""The repository's own rules: single-use tokens, serial retries, revocations, CRL numbers."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, insert
from sqlalchemy.exc import IntegrityError

from api.errors import http_error
from appliance.db.models import revoked_x509_certs, used_tokens, x509_certs
from appliance.db.repository import (
    SERIAL_ATTEMPTS,
    Repository,
    Revocation,
    StoredCRL,
    UsedToken,
    unique_violation_table,
)
from pki.errors import CAError, ErrorKind
from tests.appliance.db.conftest import Builder
from tests.appliance.db.conftest import count as _count
from tests.appliance.db.conftest import make_cert as _cert
from tests.appliance.db.conftest import make_token as _token


@pytest.fixture
def repo(engine: Engine) -> Repository:
    """On SQLite and on PostgreSQL (conftest.py)."""
    return Repository(engine)


def _revocation(serial: int, token_id: str = "") -> Revocation:
    return Revocation(
        serial=serial,
        reason_code=1,
        reason="key compromise",
        provisioner="admin",
        token_id=token_id,
        mtls=not token_id,
        revoked_at=datetime.now(UTC).replace(microsecond=0),
    )


def _raises(kind: ErrorKind, call: Callable[[], object]) -> CAError:
    with pytest.raises(CAError) as err:
        call()
    assert err.value.kind is kind, err.value.reason
    return err.value


# --- issuance -------------------------------------------------------------------------------


def test_issue_records_token_and_certificate(repo: Repository) -> None:
    build = Builder(10)
    cert = repo.issue(_token(), "admin", build)
    assert cert.serial_number == 10 and build.calls == 1
    assert repo.certificate(10) == cert
    assert repo.is_issued(10) and not repo.is_issued(11)
    assert repo.certificate(11) is None
    assert (_count(repo, x509_certs), _count(repo, used_tokens)) == (1, 1)


def test_replay_is_refused_before_signing(repo: Repository) -> None:
    repo.issue(_token(), "admin", Builder(10))
    again = Builder(11)
    err = _raises(ErrorKind.UNAUTHORIZED, lambda: repo.issue(_token(), "admin", again))
    assert err.reason == "authority.Authorize: token already used"
    assert again.calls == 0, "a replay must cost no signature"
    assert (_count(repo, x509_certs), _count(repo, used_tokens)) == (1, 1)


def test_issue_without_token_burns_nothing(repo: Repository) -> None:
    repo.issue(None, "", Builder(10))
    repo.issue(None, "", Builder(11))
    assert (_count(repo, x509_certs), _count(repo, used_tokens)) == (2, 0)


def test_serial_collision_is_retried_with_a_new_serial(repo: Repository) -> None:
    repo.issue(None, "", Builder(10))
    build = Builder(10, 12)
    cert = repo.issue(_token(), "admin", build)
    assert cert.serial_number == 12 and build.calls == 2
    assert repo.is_issued(12)
    assert (_count(repo, x509_certs), _count(repo, used_tokens)) == (2, 1)


def test_serial_collisions_without_end_are_500_not_replay(repo: Repository) -> None:
    repo.issue(None, "", Builder(10))
    build = Builder(10)
    err = _raises(ErrorKind.INTERNAL, lambda: repo.issue(_token(), "admin", build))
    assert "serial" in err.reason
    assert build.calls == SERIAL_ATTEMPTS
    # Rolled back: the token was not spent on a certificate nobody got.
    assert (_count(repo, x509_certs), _count(repo, used_tokens)) == (1, 0)


def test_failure_after_the_burn_writes_nothing(repo: Repository) -> None:
    """A signer failing (HSM gone) or a crash after the burn leaves no token and no row."""
    boom = Builder(10, fail=RuntimeError("HSM unplugged"))
    with pytest.raises(RuntimeError):
        repo.issue(_token(), "admin", boom)
    assert (_count(repo, x509_certs), _count(repo, used_tokens)) == (0, 0)
    assert repo.issue(_token(), "admin", Builder(10)).serial_number == 10


def test_other_integrity_errors_are_not_replays(repo: Repository) -> None:
    bad = UsedToken("jti-1", None, datetime.now(UTC))  # type: ignore[arg-type]
    with pytest.raises(IntegrityError):
        repo.issue(bad, "admin", Builder(10))


def test_unavailable_database_is_503_and_signs_nothing(tmp_path: Path) -> None:
    repo = Repository(create_engine(f"sqlite:///{tmp_path / 'missing' / 'ca.db'}"))
    build = Builder(10)
    _raises(ErrorKind.UNAVAILABLE, lambda: repo.issue(_token(), "admin", build))
    assert build.calls == 0


def test_reads_from_an_unavailable_database_are_503(tmp_path: Path) -> None:
    """OCSP, CRL and renewal lookups answer 503 rather than 500 when the database is gone."""
    repo = Repository(create_engine(f"sqlite:///{tmp_path / 'missing' / 'ca.db'}"))
    for read in (lambda: repo.revocation(1), lambda: repo.is_issued(1),
                 lambda: repo.certificate(1), repo.current_crl,
                 lambda: repo.revoked_since(datetime.now(UTC)),
                 lambda: repo.purge_tokens(datetime.now(UTC))):
        _raises(ErrorKind.UNAVAILABLE, read)


def test_unique_violation_table_names_the_table(repo: Repository) -> None:
    repo.issue(_token(), "admin", Builder(10))
    repo.revoke(_revocation(10), None)
    now = datetime.now(UTC)
    rows: list[tuple[object, dict[str, object]]] = [
        (used_tokens, {"id": "jti-1", "provisioner": "", "used_at": now, "expires_at": now}),
        (x509_certs, {"serial": "10", "der": b"", "not_after": now, "issued_at": now}),
        (
            revoked_x509_certs,
            {"serial": "10", "reason_code": 0, "revoked_at": now, "expires_at": now},
        ),
    ]
    for table, values in rows:
        with pytest.raises(IntegrityError) as err, repo.engine.begin() as conn:
            conn.execute(insert(table).values(**values))  # type: ignore[arg-type]
        assert unique_violation_table(err.value) == table.name  # type: ignore[attr-defined]
    with pytest.raises(IntegrityError) as err, repo.engine.begin() as conn:
        conn.execute(
            insert(used_tokens).values(id="x", provisioner=None, used_at=now, expires_at=now)
        )
    assert unique_violation_table(err.value) is None


# --- revocation -----------------------------------------------------------------------------


def test_revoke_records_and_reports(repo: Repository) -> None:
    repo.issue(None, "", Builder(10))
    rev = _revocation(10, token_id="jti-r")
    repo.revoke(rev, _token("jti-r"))
    entry = repo.revocation(10)
    assert entry is not None
    assert (entry.serial, entry.reason_code, entry.revoked_at) == (10, 1, rev.revoked_at)
    assert repo.is_revoked(10) and not repo.is_revoked(11)
    assert _count(repo, used_tokens) == 1


def test_revoke_twice_is_400_and_does_not_burn_the_second_token(repo: Repository) -> None:
    repo.issue(None, "", Builder(10))
    repo.revoke(_revocation(10), None)
    again = _revocation(10, "jti-2")
    err = _raises(ErrorKind.BAD_REQUEST, lambda: repo.revoke(again, _token("jti-2")))
    assert http_error(err)[1] == (
        "The request could not be completed: certificate with serial number '10' is already "
        "revoked."
    )
    assert _count(repo, used_tokens) == 0


def test_revoke_unknown_serial_is_404_and_keeps_the_token(repo: Repository) -> None:
    unknown = _revocation(99, "jti-r")
    err = _raises(ErrorKind.NOT_FOUND, lambda: repo.revoke(unknown, _token("jti-r")))
    assert http_error(err)[1] == "certificate with serial number '99' was not found"
    assert _count(repo, used_tokens) == 0


def test_revoke_with_a_used_token_is_401(repo: Repository) -> None:
    repo.issue(_token("jti-1"), "admin", Builder(10))
    _raises(ErrorKind.UNAUTHORIZED, lambda: repo.revoke(_revocation(10, "jti-1"), _token("jti-1")))
    assert not repo.is_revoked(10)


def test_revoked_since_skips_long_expired_certificates(repo: Repository) -> None:
    repo.issue(None, "", Builder(10))
    repo.issue(None, "", lambda: _cert(11, days=-1))
    repo.revoke(_revocation(10), None)
    repo.revoke(_revocation(11), None)
    recent = repo.revoked_since(datetime.now(UTC) - timedelta(hours=1))
    assert [e.serial for e in recent] == [10]
    assert {e.serial for e in repo.revoked_since(datetime.now(UTC) - timedelta(days=2))} == {
        10,
        11,
    }


# --- CRLs and token housekeeping ------------------------------------------------------------


def _crl(number: int) -> StoredCRL:
    now = datetime.now(UTC).replace(microsecond=0)
    return StoredCRL(number, f"crl {number}".encode(), now, now + timedelta(hours=24))


def test_crl_numbers_grow_and_the_last_is_current(repo: Repository) -> None:
    assert repo.current_crl() is None
    assert [repo.replace_crl(_crl).number for _ in range(3)] == [1, 2, 3]
    current = repo.current_crl()
    assert current is not None and (current.number, current.der) == (3, b"crl 3")


def test_first_crls_made_at_once_get_distinct_numbers_in_utc(repo: Repository) -> None:
    """On an empty table too (PostgreSQL locks no row an UPDATE does not find), and read back
    in datetime.UTC, which the CRL's HTTP headers require (psycopg hands back Etc/UTC)."""
    with ThreadPoolExecutor(max_workers=6) as pool:
        numbers = sorted(pool.map(lambda _: repo.replace_crl(_crl).number, range(6)))
    assert numbers == [1, 2, 3, 4, 5, 6]
    current = repo.current_crl()
    assert current is not None and current.number == 6
    assert current.this_update.tzinfo is UTC and current.next_update.tzinfo is UTC
    format_datetime(current.next_update, usegmt=True)


def test_failed_crl_build_keeps_the_previous_one(repo: Repository) -> None:
    repo.replace_crl(_crl)

    def broken(number: int) -> StoredCRL:
        raise RuntimeError("signer gone")

    with pytest.raises(RuntimeError):
        repo.replace_crl(broken)
    current = repo.current_crl()
    assert current is not None and current.number == 1
    assert repo.replace_crl(_crl).number == 2


def test_purge_forgets_only_expired_tokens(repo: Repository) -> None:
    now = datetime.now(UTC)
    repo.issue(UsedToken("old", "admin", now - timedelta(hours=2)), "admin", Builder(10))
    repo.issue(UsedToken("new", "admin", now + timedelta(hours=2)), "admin", Builder(11))
    assert repo.purge_tokens(now) == 1
    assert repo.purge_tokens(now) == 0
    reused = UsedToken("new", "admin", now)
    _raises(ErrorKind.UNAUTHORIZED, lambda: repo.issue(reused, "admin", Builder(12)))
