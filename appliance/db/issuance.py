"""An issuance's writes, the signing hot path: burn the token, sign, store, commit.

The statements run on the pooled DB-API connection (rawtx.py); on SQLite, concurrent
issuances of a worker share one transaction and one durable commit (groupcommit.py).
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from appliance.db.audit import AuditEvent, AuditLog
from appliance.db.certrow import CertInsert, cert_row
from appliance.db.groupcommit import GroupCommit, Job
from appliance.db.models import used_tokens
from appliance.db.rawtx import InsertNew, RawTransaction, RawWriter
from appliance.db.writerlock import WriterLock
from pki.errors import internal, unavailable

log = logging.getLogger("appliance.db.repository")  # where the warning always came from

# Signatures tried before giving up on finding a free serial (odds of one clash: 2^-128 per
# stored certificate, unless the generator is broken).
SERIAL_ATTEMPTS = 3


@dataclass(frozen=True)
class UsedToken:
    """A token id to burn together with the certificate it paid for."""

    id: str
    provisioner: str
    expires_at: datetime

    def row(self, used_at: datetime) -> dict[str, object]:
        """The used_tokens row."""
        return {
            "id": self.id,
            "provisioner": self.provisioner,
            "used_at": used_at,
            "expires_at": self.expires_at,
        }


class TokenAlreadyUsed(Exception):
    """The token's id is burned already (the repository counts and words the refusal)."""


@dataclass(frozen=True, slots=True)
class _Request:
    token: UsedToken | None
    provisioner: str
    build: Callable[[], x509.Certificate]
    audit: AuditEvent | None = None


class DeferredCommit:
    """A batch of issuances on one thread that commit together when the batch ends.

    For the worker's event loop (api/inline.py), which runs the signing requests that are
    ready at once, one after the other, and answers them only after `close`: the first
    issuance takes the writer lock and begins the transaction, each runs under its own
    savepoint, and `close` commits. `error` is then set if the batch's transaction failed:
    no certificate of the batch was stored, so none may be handed out.
    """

    def __init__(self, issuance: Issuance | None) -> None:
        self._issuance = issuance
        self._open: AbstractContextManager[RawTransaction] | None = None
        self.tx: RawTransaction | None = None
        self.error: BaseException | None = None

    def begin(self) -> RawTransaction:
        """The batch's transaction, begun (under the writer lock) by its first issuance."""
        if self.error is not None:  # an earlier statement broke the transaction
            raise unavailable("database unavailable: the batch's transaction failed")
        if self.tx is None:
            assert self._issuance is not None
            transaction = self._issuance._transaction()
            self.tx = transaction.__enter__()
            self._open = transaction
        return self.tx

    def fail(self, error: BaseException) -> None:
        """Roll the whole batch back (its transaction cannot go on)."""
        self.error = error
        self._end(error)

    def close(self) -> None:
        """Commit what the batch wrote; on failure `error` says why."""
        try:
            self._end(None)
        except BaseException as exc:
            self.error = exc

    def _end(self, error: BaseException | None) -> None:
        transaction, self._open, self.tx = self._open, None, None
        if transaction is None:
            return
        if error is None:
            transaction.__exit__(None, None, None)  # commits
        else:  # rolls back
            transaction.__exit__(type(error), error, error.__traceback__)


class Issuance:
    """`issue` for one engine; group commit on SQLite unless told otherwise."""

    def __init__(self, engine: Engine, *, group_commit: bool | None = None) -> None:
        if group_commit is None:
            # PostgreSQL writers do not block each other (row locks), and a savepoint there
            # costs two round trips per request: one commit each is cheaper.
            group_commit = engine.dialect.name == "sqlite"
        # One batch at a time per process: its connection stays out of the pool in between.
        self._raw = RawWriter(
            engine, keep_connection=group_commit and engine.dialect.name == "sqlite"
        )
        self._new_token = InsertNew(used_tokens, used_tokens.c.id, engine)
        self._audit = AuditLog(engine)
        self._new_cert = CertInsert(engine)
        # SQLite: the issuance transactions of all processes take turns on a fair lock.
        self._writer_lock = WriterLock.for_engine(engine)
        self._group: GroupCommit[_Request, x509.Certificate] | None = None
        self._deferred = threading.local()  # .batch: this thread's DeferredCommit, if any
        if group_commit:
            self._group = GroupCommit(self._run_batch)
            reset = weakref.WeakMethod(self._group.after_fork)
            os.register_at_fork(after_in_child=lambda: (method := reset()) and method())

    def expecting(self) -> AbstractContextManager[None]:
        """See `Repository.expecting`."""
        if self._group is None or getattr(self._deferred, "batch", None) is not None:
            return nullcontext()
        return self._group.expecting()

    @contextmanager
    def deferred(self) -> Iterator[DeferredCommit]:
        """See `Repository.deferred`. Only with group commit (SQLite): elsewhere each
        issuance commits alone, as writers there do not exclude each other."""
        if self._group is None:
            yield DeferredCommit(None)
            return
        batch = DeferredCommit(self)
        self._deferred.batch = batch
        try:
            yield batch
        except BaseException as exc:
            batch.fail(exc)
            raise
        finally:
            self._deferred.batch = None
        batch.close()

    def issue(
        self,
        token: UsedToken | None,
        provisioner: str,
        build: Callable[[], x509.Certificate],
        audit: AuditEvent | None = None,
    ) -> x509.Certificate:
        """See `Repository.issue`. Raises TokenAlreadyUsed for a replay."""
        request = _Request(token, provisioner, build, audit)
        batch: DeferredCommit | None = getattr(self._deferred, "batch", None)
        if batch is not None:
            return self._issue_deferred(batch, request)
        if self._group is not None:
            return self._group.submit(request)
        job: Job[x509.Certificate] = Job()
        self._run_batch([request], [job])
        return job.outcome()

    def _issue_deferred(self, batch: DeferredCommit, request: _Request) -> x509.Certificate:
        """One issuance of a deferred batch: under its savepoint in the batch's transaction,
        undone alone if it fails; a database failure fails the whole batch."""
        tx = batch.begin()
        try:
            tx.savepoint()
            cert = self._issue_one(tx, request, datetime.now(UTC))
            tx.release_savepoint()
            return cert
        except OperationalError as exc:
            batch.fail(exc)
            raise unavailable(f"database unavailable: {exc.orig}") from None
        except BaseException:
            try:
                tx.rollback_to_savepoint()
            except BaseException as exc:
                batch.fail(exc)
                raise unavailable("database unavailable: rolling back failed") from None
            raise

    def _run_batch(self, requests: list[_Request], jobs: list[Job[x509.Certificate]]) -> None:
        """Issue `requests` in one transaction; finish every job once the commit is done.

        A request that fails (replay, signer error) is undone alone, under its savepoint; a
        database failure, or a failed commit, fails every request of the batch that had not
        failed already. A batch of one needs no savepoint: its transaction is the unit.
        """
        now = datetime.now(UTC)
        certs: list[x509.Certificate | None] = [None] * len(jobs)
        errors: list[BaseException | None] = [None] * len(jobs)
        try:
            with self._transaction() as tx:
                if len(jobs) == 1:
                    certs[0] = jobs[0].context.run(self._issue_one, tx, requests[0], now)
                else:
                    for i, (request, job) in enumerate(zip(requests, jobs, strict=True)):
                        tx.savepoint()
                        try:
                            certs[i] = job.context.run(self._issue_one, tx, request, now)
                        except OperationalError:
                            raise  # the database, not this request: the batch fails
                        except Exception as exc:
                            errors[i] = exc
                            tx.rollback_to_savepoint()  # if this fails, the batch fails
                        else:
                            tx.release_savepoint()
        except BaseException as exc:
            for i, job in enumerate(jobs):
                job.finish(None, errors[i] or exc)
            return
        for i, job in enumerate(jobs):
            job.finish(certs[i], errors[i])

    @contextmanager
    def _transaction(self) -> Iterator[RawTransaction]:
        """An issuance transaction, under the writer lock on SQLite; a database that fails
        is `unavailable` (a 503)."""
        lock = self._writer_lock
        with lock.held() if lock is not None else nullcontext():
            try:
                with self._raw.transaction() as tx:
                    yield tx
            except OperationalError as exc:
                raise unavailable(f"database unavailable: {exc.orig}") from None

    def _issue_one(self, tx: RawTransaction, request: _Request, now: datetime) -> x509.Certificate:
        token = request.token
        if token is not None and not tx.insert_new(self._new_token, token.row(now)):
            raise TokenAlreadyUsed(token.id)
        for _ in range(SERIAL_ATTEMPTS):
            cert = request.build()
            subject = cert.subject.rfc4514_string()
            row = cert_row(cert, request.provisioner, token.id if token else None, now, subject)
            if self._new_cert.insert(tx, row, cert):
                self._record(tx, request, subject, row["serial"], now)
                return cert
            log.warning("serial %s already issued; signing again", cert.serial_number)
        raise internal(f"no free serial number after {SERIAL_ATTEMPTS} attempts")

    def _record(
        self, tx: RawTransaction, request: _Request, subject: str, serial: str, now: datetime
    ) -> None:
        """The audit entry of the certificate, in its transaction (and savepoint)."""
        given = request.audit
        event = (
            AuditEvent("certificate.sign", request.provisioner, subject, serial)
            if given is None
            else AuditEvent(
                given.kind, given.actor, subject, serial, given.details, given.request_id
            )
        )
        self._audit.append(tx, event, now)
