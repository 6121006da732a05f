"""Group commit: concurrent issuances of one process share one transaction and one commit.

SQLite lets one transaction write at a time, and an issuance holds its transaction from the
token's burn to the durable commit (an fsync). The other threads of the worker used to wait
in SQLite's busy handler, which sleeps and polls (1, 2, 5, 10... ms), and then paid a commit
each. Here they queue instead: the thread that finds no batch running leads one, which
issues every queued request (each under its own savepoint: burn, sign, insert) in one
transaction and commits once; the others sleep on an event and wake with their outcome.
Every outcome is handed out only after the commit (or as the commit's failure), so no
certificate leaves before its row is durable.

No extra thread: the leader is a request thread. It leads one batch, then passes the lead to
the first request queued meanwhile, so its own response waits for one batch at most.

Requests announced as on their way (`expecting`: a signing request checking its token and
CSR) are waited for, briefly (LINGER_SECONDS), before a batch starts: otherwise two requests
a few hundred µs apart pay a durable commit each, the most costly step of an issuance (an
fsync and a dozen WAL pages), and under load that is most batches. The wait releases the GIL,
which the announced request needs to get here.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Requests one batch takes at most: bounds a batch's transaction, and the leader's wait.
MAX_BATCH = 32
#: How long a leader waits at most for announced requests to be queued (`expecting`).
LINGER_SECONDS = 0.002


class Job(Generic[R]):
    """One request in the queue: its outcome, and the event its thread sleeps on."""

    __slots__ = ("_wake", "context", "error", "finished", "result")

    def __init__(self) -> None:
        self.context = contextvars.copy_context()  # the request's log fields, for the leader
        self.result: R | None = None
        self.error: BaseException | None = None
        self.finished = False
        self._wake = threading.Event()

    def finish(self, result: R | None, error: BaseException | None) -> None:
        self.result, self.error, self.finished = result, error, True
        self._wake.set()

    def outcome(self) -> R:
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class GroupCommit(Generic[T, R]):
    """Runs `run_batch(items, jobs)` for queued items, one batch at a time per process.

    `run_batch` must `finish` every job it is given (after its commit), and not raise.
    """

    def __init__(self, run_batch: Callable[[list[T], list[Job[R]]], None]) -> None:
        self._run_batch = run_batch
        self._mutex = threading.Lock()
        self._arrived = threading.Condition(self._mutex)
        self._queue: list[tuple[T, Job[R]]] = []
        self._leading = False
        self._coming = 0  # announced requests (`expecting`) not queued yet
        self._announced = threading.local()

    @contextmanager
    def expecting(self) -> Iterator[None]:
        """Announce that this thread will `submit` soon (or fail before it): a leader about to
        start a batch waits a little for it. Nested announcements count once."""
        mine = self._announced
        if getattr(mine, "pending", False):
            yield
            return
        with self._mutex:
            self._coming += 1
        mine.pending = True
        try:
            yield
        finally:
            if mine.pending:  # never submitted: refused before the database
                mine.pending = False
                with self._mutex:
                    self._coming -= 1
                    if self._coming == 0:
                        self._arrived.notify_all()

    def submit(self, item: T) -> R:
        """Queue `item`, wait for the commit of the batch that took it, return its result."""
        job: Job[R] = Job()
        mine = self._announced
        with self._mutex:
            if getattr(mine, "pending", False):
                mine.pending = False
                self._coming -= 1
            self._queue.append((item, job))
            lead = not self._leading
            self._leading = True
            self._arrived.notify_all()  # a lingering leader
        if not lead:
            job._wake.wait()
            if job.finished:
                return job.outcome()
            job._wake.clear()  # handed the lead; our item is first in the queue
        self._lead()
        return job.outcome()

    def _lead(self) -> None:
        with self._mutex:
            if self._coming > 0 and len(self._queue) < MAX_BATCH:
                deadline = time.monotonic() + LINGER_SECONDS
                while self._coming > 0 and len(self._queue) < MAX_BATCH:
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._arrived.wait(left):
                        break
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
        jobs = [job for _, job in batch]
        try:
            self._run_batch([item for item, _ in batch], jobs)
        except BaseException as exc:  # a bug in run_batch must not leave a thread asleep
            for job in jobs:
                if not job.finished:
                    job.finish(None, exc)
        finally:
            with self._mutex:
                if self._queue:
                    self._queue[0][1]._wake.set()  # not finished: it leads the next batch
                else:
                    self._leading = False

    def after_fork(self) -> None:
        """In a new process: a batch the parent was running is not ours to finish."""
        self._mutex = threading.Lock()
        self._arrived = threading.Condition(self._mutex)
        self._queue = []
        self._leading = False
        self._coming = 0
        self._announced = threading.local()
