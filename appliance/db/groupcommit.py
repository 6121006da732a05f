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
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Requests one batch takes at most: bounds a batch's transaction, and the leader's wait.
MAX_BATCH = 32


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
        self._queue: list[tuple[T, Job[R]]] = []
        self._leading = False

    def submit(self, item: T) -> R:
        """Queue `item`, wait for the commit of the batch that took it, return its result."""
        job: Job[R] = Job()
        with self._mutex:
            self._queue.append((item, job))
            lead = not self._leading
            self._leading = True
        if not lead:
            job._wake.wait()
            if job.finished:
                return job.outcome()
            job._wake.clear()  # handed the lead; our item is first in the queue
        self._lead()
        return job.outcome()

    def _lead(self) -> None:
        with self._mutex:
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
        self._queue = []
        self._leading = False
