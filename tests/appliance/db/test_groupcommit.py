"""Group commit's wait for announced requests (appliance/db/groupcommit.py `expecting`): a
batch about to start takes a request announced as on its way, so both share one commit."""

from __future__ import annotations

import threading

import pytest

from appliance.db import groupcommit
from appliance.db.groupcommit import GroupCommit, Job


class Recorder:
    """A batch runner that records each batch's items and answers each item doubled."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __call__(self, items: list[int], jobs: list[Job[int]]) -> None:
        self.batches.append(list(items))
        for item, job in zip(items, jobs, strict=True):
            job.finish(item * 2, None)


@pytest.fixture(autouse=True)
def patient(monkeypatch: pytest.MonkeyPatch) -> None:
    """A leader waits as long as the test needs: the outcome, not the clock, is checked."""
    monkeypatch.setattr(groupcommit, "LINGER_SECONDS", 60.0)


def _leader_waiting(group: GroupCommit[int, int], leader: threading.Thread) -> None:
    """Until the leader's item is queued and its thread waits for the announced one."""
    while True:
        with group._mutex:
            if group._queue:
                return
        assert leader.is_alive()
        leader.join(0.001)


def test_a_leader_waits_for_an_announced_request_and_commits_both_at_once() -> None:
    runner = Recorder()
    group: GroupCommit[int, int] = GroupCommit(runner)
    announced, go = threading.Event(), threading.Event()
    results: dict[str, int] = {}

    def announced_request() -> None:
        with group.expecting():
            announced.set()
            assert go.wait(30)  # still checking its token and CSR
            results["second"] = group.submit(2)

    second = threading.Thread(target=announced_request)
    second.start()
    assert announced.wait(30)
    first = threading.Thread(target=lambda: results.update(first=group.submit(1)))
    first.start()
    _leader_waiting(group, first)
    go.set()
    first.join(30)
    second.join(30)
    assert results == {"first": 2, "second": 4}
    assert runner.batches == [[1, 2]], "one batch, one commit, for both"


def test_an_announced_request_refused_early_lets_the_leader_go() -> None:
    runner = Recorder()
    group: GroupCommit[int, int] = GroupCommit(runner)
    announced, refuse = threading.Event(), threading.Event()

    def refused_request() -> None:
        with pytest.raises(ValueError), group.expecting():
            announced.set()
            assert refuse.wait(30)
            raise ValueError("bad token")  # never reaches the database

    other = threading.Thread(target=refused_request)
    other.start()
    assert announced.wait(30)
    results: list[int] = []
    leader = threading.Thread(target=lambda: results.append(group.submit(5)))
    leader.start()
    _leader_waiting(group, leader)
    refuse.set()
    leader.join(30)
    other.join(30)
    assert results == [10]
    assert runner.batches == [[5]]
    assert group._coming == 0


def test_nothing_announced_nothing_waited_for() -> None:
    """A lone request (or one nobody announced) starts its batch at once."""
    runner = Recorder()
    group: GroupCommit[int, int] = GroupCommit(runner)
    with group.expecting(), group.expecting():  # nested: counted once, then submitted
        assert group._coming == 1
        assert group.submit(3) == 6
        assert group._coming == 0
    assert group.submit(4) == 8
    assert runner.batches == [[3], [4]]
    assert group._coming == 0
