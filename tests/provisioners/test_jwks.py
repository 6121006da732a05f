"""JWKS fetches never run on the worker's event loop (pki/blocking.py): there they raise
WouldBlock, and the request is run again on an app thread."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from pki.blocking import WouldBlock, run_here_only_fast
from pki.jose import public_jwk
from provisioners.jwks import Fetched, JWKSCache, fetch_json

_KEY = {**public_jwk(ec.generate_private_key(ec.SECP256R1())), "kid": "k1"}


@pytest.fixture
def on_the_loop() -> Iterator[None]:
    """This test's thread stands for the worker's event loop."""
    run_here_only_fast(threading.get_ident())
    yield
    run_here_only_fast(None)


def test_a_fetch_on_the_loop_would_block(on_the_loop: None) -> None:
    with pytest.raises(WouldBlock, match=re.escape("fetching JWKS http://127.0.0.1:9/keys")):
        fetch_json("http://127.0.0.1:9/keys", what="JWKS")


def test_cached_keys_are_served_on_the_loop(on_the_loop: None) -> None:
    fetches: list[str] = []

    def fetch(url: str) -> Fetched:
        fetches.append(url)
        return Fetched({"keys": [_KEY]}, 3600.0)

    cache = JWKSCache("http://127.0.0.1:9/keys", fetch=fetch)
    run_here_only_fast(None)
    cache.load()  # at start-up, off the loop
    run_here_only_fast(threading.get_ident())
    assert [k.kid for k in cache.get("k1")] == ["k1"]
    assert len(fetches) == 1


def test_waiting_for_another_threads_fetch_would_block(on_the_loop: None) -> None:
    cache = JWKSCache("http://127.0.0.1:9/keys", fetch=lambda _u: Fetched({"keys": [_KEY]}, 1.0))
    with cache._lock, pytest.raises(WouldBlock, match="waiting for JWKS"):  # another fetches
        cache.get("k1")


def test_a_refresh_refused_on_the_loop_is_done_by_the_app_thread(on_the_loop: None) -> None:
    served = [{"keys": []}, {"keys": [_KEY]}]
    cache = JWKSCache("http://127.0.0.1:9/keys", fetch=lambda _u: Fetched(served.pop(0), 3600.0))
    run_here_only_fast(None)
    cache.load()  # at start-up: no keys yet
    run_here_only_fast(threading.get_ident())
    with pytest.raises(WouldBlock):
        cache.get("k1")  # an unknown kid wants a refresh: not here
    run_here_only_fast(None)  # the request's second run, on an app thread
    assert [k.kid for k in cache.get("k1")] == ["k1"]
