"""api.worker.AppThreads: every request handed to the app threads comes back to the loop,
answers and app failures alike, however many finish at once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from api.worker import AppThreads


def _app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    if environ["n"] % 7 == 0:
        raise RuntimeError(f"failed {environ['n']}")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(environ["n"]).encode()]


class _Connection:
    """Records what the loop hands back, and in which thread."""

    def __init__(self, done: asyncio.Future[None], outcomes: dict[int, Any], n: int) -> None:
        self.done, self.outcomes, self.n = done, outcomes, n

    def respond(self, outcome: Any) -> None:
        assert threading.current_thread() is threading.main_thread()  # the loop's thread
        self.outcomes[self.n] = outcome
        if len(self.outcomes) == 200 and not self.done.done():
            self.done.set_result(None)


def test_every_request_comes_back_to_the_loop() -> None:
    async def main() -> dict[int, Any]:
        loop = asyncio.get_running_loop()
        threads = AppThreads(loop, _app, 4)
        done: asyncio.Future[None] = loop.create_future()
        outcomes: dict[int, Any] = {}
        for n in range(200):
            threads.submit(_Connection(done, outcomes, n), {"n": n})  # type: ignore[arg-type]
        await asyncio.wait_for(done, 30)
        threads.close()
        return outcomes

    outcomes = asyncio.run(main())
    assert sorted(outcomes) == list(range(200))
    for n, outcome in outcomes.items():
        if n % 7 == 0:
            assert isinstance(outcome, RuntimeError) and str(outcome) == f"failed {n}"
        else:
            assert outcome == ("200 OK", [("Content-Type", "text/plain")], str(n).encode())
