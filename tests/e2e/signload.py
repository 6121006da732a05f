"""A signing load from several client processes that survives the server dying under it.

Each client process POSTs /1.0/sign over one keep-alive HTTPS connection, every request with a
fresh one-time token for its own subject (`c{client}-{n}.crash.test`: one subject per token,
so the database tells which token bought which certificate). On a connection error it
reconnects and goes on with a NEW token. It notes every token it sent and what came back:
the certificate, a status, or nothing (the answer was lost). While no connection can be
opened no token is made; those attempts are only counted.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from tests.e2e.harness import CA, HOST, csr_pem, ec_key, load_chain, make_csr
from tests.e2e.tokens import TokenMaker, claims_of

SUFFIX = "crash.test"
ISSUED, LOST = "issued", "lost"
RECONNECT_PAUSE = 0.02
TOKEN_LIFETIME = 1800  # seconds: tokens stay valid for the replays at the end


@dataclass(frozen=True)
class Sent:
    """One token that went out in a request, and what became of it."""

    client: int
    jti: str
    subject: str
    token: str
    outcome: str  # ISSUED, LOST, or "status NNN"
    der: str | None = None  # the received leaf certificate, hex DER
    detail: str = ""  # the body of a refusal

    @property
    def cn(self) -> str:
        """The subject as the database stores it."""
        return f"CN={self.subject}"


def _client(
    index: int,
    port: int,
    cafile: str,
    maker: TokenMaker,
    stop: Any,
    issued: Any,
    unsent: Any,
    out: str,
) -> None:
    """One client process (forked): sign until `stop` is set, then write what it sent."""
    context = ssl.create_default_context(cafile=cafile)
    key = ec_key()
    sent: list[Sent] = []
    conn: http.client.HTTPSConnection | None = None
    n = 0
    while not stop.is_set():
        if conn is None:
            conn = http.client.HTTPSConnection(HOST, port, context=context, timeout=60)
            try:
                conn.connect()
            except OSError:  # nothing listens (the appliance is down): no token goes out
                conn.close()
                conn = None
                with unsent.get_lock():
                    unsent.value += 1
                time.sleep(RECONNECT_PAUSE)
                continue
        n += 1
        subject = f"c{index}-{n}.{SUFFIX}"
        token = maker.token(subject, exp=int(time.time()) + TOKEN_LIFETIME)
        jti = str(claims_of(token)["jti"])
        body = json.dumps({"csr": csr_pem(make_csr(subject, [subject], key)), "ott": token})
        try:
            conn.request("POST", "/1.0/sign", body=body,
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException):
            sent.append(Sent(index, jti, subject, token, LOST))
            conn.close()
            conn = None
            continue
        if resp.status == 201:
            leaf = load_chain(json.loads(data)["crt"])[0]
            der = leaf.public_bytes(Encoding.DER).hex()
            sent.append(Sent(index, jti, subject, token, ISSUED, der))
            with issued.get_lock():
                issued.value += 1
        else:
            detail = data.decode(errors="replace")[:300]
            sent.append(Sent(index, jti, subject, token, f"status {resp.status}", None, detail))
    if conn is not None:
        conn.close()
    Path(out).write_text(json.dumps([asdict(s) for s in sent]))


class SignLoad:
    """Handle on the running clients: how many certificates they received so far."""

    def __init__(self, issued: Any, unsent: Any) -> None:
        self._issued = issued
        self._unsent = unsent
        self.sent: list[Sent] = []

    @property
    def issued(self) -> int:
        return int(self._issued.value)

    @property
    def unsent(self) -> int:
        return int(self._unsent.value)

    def wait_issued(self, count: int, timeout: float = 180.0) -> None:
        """Until the clients have received `count` certificates in all (a liveness guard:
        the timeout only stops a hung test)."""
        deadline = time.monotonic() + timeout
        while self.issued < count:
            assert time.monotonic() < deadline, f"only {self.issued} of {count} certificates"
            time.sleep(0.01)


@contextmanager
def sign_load(ca: CA, maker: TokenMaker, clients: int, work: Path) -> Iterator[SignLoad]:
    """Run `clients` client processes against `ca` for the block; afterwards (clients stopped
    and joined) `.sent` holds every token they sent."""
    ctx = multiprocessing.get_context("fork")
    stop = ctx.Event()
    issued = ctx.Value("i", 0)
    unsent = ctx.Value("i", 0)
    work.mkdir(parents=True, exist_ok=True)
    outs = [work / f"client-{i}.json" for i in range(clients)]
    procs = [
        ctx.Process(
            target=_client,
            args=(i, ca.port, str(ca.root_path), maker, stop, issued, unsent, str(outs[i])),
            daemon=True,
        )
        for i in range(clients)
    ]
    for p in procs:
        p.start()
    load = SignLoad(issued, unsent)
    try:
        yield load
    finally:
        stop.set()
        for p in procs:
            p.join(timeout=120)
            if p.is_alive():
                p.kill()
                p.join()
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    for out in outs:
        load.sent.extend(Sent(**raw) for raw in json.loads(out.read_text()))
