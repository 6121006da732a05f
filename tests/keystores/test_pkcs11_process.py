"""PKCS#11 store process safety against real SoftHSM2: lazy loading, fork, threads, and a
token that vanishes and comes back (KeyStoreUnavailableError, then a transparent reopen)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

from keystores import KeySpec, KeyStoreUnavailableError, SigningKey
from keystores.pkcs11 import Pkcs11KeyStore
from tests.softhsm import MODULE, SoftHSM, Token, softhsm_session

LOGGER = "keystores.pkcs11"


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHSM]:
    with softhsm_session(tmp_path_factory.mktemp("softhsm")) as hsm:
        yield hsm


@pytest.fixture
def token(hsm: SoftHSM) -> Token:
    return hsm.init_token()


@pytest.fixture
def store(token: Token) -> Pkcs11KeyStore:
    store = Pkcs11KeyStore.from_uri(token.uri(), password=None, base_dir=None)
    store.create_key("pkcs11:id=01;object=ec", KeySpec("EC", "P-256"))
    return store


def _sign_and_verify(key: SigningKey, data: bytes) -> None:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        algorithm = ec.ECDSA(hashes.SHA256())
        key.public_key().verify(key.sign(data, algorithm), data, algorithm)
    elif isinstance(key, rsa.RSAPrivateKey):
        pss = padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH)
        key.public_key().verify(key.sign(data, pss, hashes.SHA256()), data, pss, hashes.SHA256())
    else:
        assert isinstance(key, ed25519.Ed25519PrivateKey)
        key.public_key().verify(key.sign(data), data)


def _csr_builder() -> x509.CertificateSigningRequestBuilder:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    return x509.CertificateSigningRequestBuilder().subject_name(name)


def _module_mapped() -> bool:
    with open("/proc/self/maps") as maps:
        return "libsofthsm2" in maps.read()


_LAZY = """
import sys
from keystores import open_keystore
store = open_keystore(sys.argv[1])
signer_uri = "pkcs11:id=01"
maps = open("/proc/self/maps").read()
print("loaded-after-open" if "libsofthsm2" in maps else "not-loaded-after-open")
store.signer(signer_uri)
maps = open("/proc/self/maps").read()
print("loaded-after-use" if "libsofthsm2" in maps else "not-loaded-after-use")
"""


def test_opening_the_store_loads_no_library(hsm: SoftHSM, token: Token, store: object) -> None:
    """What a gunicorn master does (open the store from ca.json) must not touch PKCS#11."""
    done = subprocess.run(
        [sys.executable, "-c", _LAZY, token.uri()],
        env=hsm.env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["not-loaded-after-open", "loaded-after-use"]


def _in_child(work: Callable[[], None]) -> str:
    """Run `work` in a forked child; its error (or "ok") comes back through a pipe."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            work()
            message = b"ok"
        except BaseException as exc:
            message = f"{type(exc).__name__}: {exc}".encode()
        os.write(write, message)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        message = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child crashed"
    return message.decode()


def test_fork_parent_and_child_both_sign(store: Pkcs11KeyStore) -> None:
    key = store.signer("pkcs11:id=01")
    _sign_and_verify(key, b"parent, before fork")

    def child() -> None:
        # The same store and signer objects, inherited: the child reloads the library itself.
        _sign_and_verify(key, b"child")
        _sign_and_verify(store.signer("pkcs11:object=ec"), b"child, via a new lookup")
        store.create_key("pkcs11:id=02;object=made-in-child", KeySpec("EC", "P-384"))

    assert _in_child(child) == "ok"
    _sign_and_verify(key, b"parent, after fork")
    # The key the child made is in the token (the parent session sees token objects).
    _sign_and_verify(store.signer("pkcs11:id=02;object=made-in-child"), b"parent sees it")


def test_child_of_a_parent_that_never_loaded_the_library(token: Token) -> None:
    opened = Pkcs11KeyStore.from_uri(token.uri(), password=None, base_dir=None)

    def child() -> None:
        opened.create_key("pkcs11:id=01;object=k", KeySpec())
        _sign_and_verify(opened.signer("pkcs11:id=01"), b"child")

    assert _in_child(child) == "ok"
    _sign_and_verify(opened.signer("pkcs11:id=01"), b"parent")


def test_fork_while_another_thread_is_signing(store: Pkcs11KeyStore) -> None:
    """The fork waits for the PKCS#11 lock, so no child inherits a library caught mid-call
    or a lock held by a thread that does not exist in the child."""
    key = store.signer("pkcs11:id=01")
    stop = threading.Event()
    errors: list[BaseException] = []

    def busy() -> None:
        while not stop.is_set():
            try:
                _sign_and_verify(key, b"busy")
            except BaseException as exc:
                errors.append(exc)
                return

    thread = threading.Thread(target=busy)
    thread.start()
    try:
        results = [_in_child(lambda: _sign_and_verify(key, b"child")) for _ in range(5)]
    finally:
        stop.set()
        thread.join()
    assert results == ["ok"] * 5
    assert errors == []


def test_many_threads_sign_through_one_store(store: Pkcs11KeyStore) -> None:
    store.create_key("pkcs11:id=02;object=rsa", KeySpec("RSA", size=2048))
    store.create_key("pkcs11:id=03;object=ed", KeySpec("OKP", "Ed25519"))
    keys = [store.signer(f"pkcs11:id=0{i}") for i in (1, 2, 3)]
    errors: list[BaseException] = []
    done: list[int] = []
    start = threading.Barrier(12)

    def worker(n: int) -> None:
        start.wait()
        try:
            for i in range(40):
                key = keys[(n + i) % 3]
                _sign_and_verify(key, f"thread {n} message {i}".encode())
                if i % 10 == 0:  # lookups and listings interleave with signing
                    store.signer("pkcs11:object=rsa")
                    store.list_keys()
            done.append(n)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(done) == list(range(12))


def test_two_stores_on_one_token_by_label_and_by_serial(
    hsm: SoftHSM, token: Token, store: Pkcs11KeyStore
) -> None:
    """A second session on an already logged-in token (UserAlreadyLoggedIn) is fine."""
    _, serial = hsm.slot_and_serial(token)
    uri = f"pkcs11:module-path={MODULE};serial={serial}?pin-value={token.pin}"
    by_serial = Pkcs11KeyStore.from_uri(uri, password=None, base_dir=None)
    _sign_and_verify(store.signer("pkcs11:id=01"), b"by label")
    _sign_and_verify(by_serial.signer("pkcs11:id=01"), b"by serial")
    _sign_and_verify(store.signer("pkcs11:id=01"), b"by label again")


def _lost_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if "session lost" in r.getMessage() and r.levelno == logging.WARNING
    ]


def test_token_removed_then_restored(
    hsm: SoftHSM, token: Token, store: Pkcs11KeyStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    key = store.signer("pkcs11:id=01")
    _sign_and_verify(key, b"before")

    hsm.remove_token(token)
    with pytest.raises(KeyStoreUnavailableError, match="unavailable") as info:
        _sign_and_verify(key, b"token gone")
    assert token.label in str(info.value) and "pin" not in str(info.value).lower()
    [line] = _lost_lines(caplog)
    assert "will reopen on next use" in line and token.label in line

    # Still gone: every request gets the same clear error, nothing crashes; the error comes
    # out of cryptography's certificate builder unchanged (the API maps it to 503).
    for _ in range(3):
        with pytest.raises(KeyStoreUnavailableError):
            _sign_and_verify(key, b"still gone")
    with pytest.raises(KeyStoreUnavailableError):
        _csr_builder().sign(key, hashes.SHA256())
    with pytest.raises(KeyStoreUnavailableError):
        store.signer("pkcs11:object=ec")
    assert len(_lost_lines(caplog)) == 1  # one warning per outage, not one per request

    hsm.restore_token(token)
    caplog.clear()
    _sign_and_verify(key, b"after restore: same signer object, same store")
    assert any("reopened" in r.getMessage() for r in caplog.records)
    _sign_and_verify(store.signer("pkcs11:id=01"), b"lookups work again")
    assert _csr_builder().sign(key, hashes.SHA256()).is_signature_valid


def test_token_removed_before_the_first_lookup(
    hsm: SoftHSM, token: Token, store: Pkcs11KeyStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A token that vanishes finds no keys; that is reported as unavailable, not missing."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    store.list_keys()  # the session is open, no key handle cached yet
    hsm.remove_token(token)
    with pytest.raises(KeyStoreUnavailableError):
        store.signer("pkcs11:id=01")
    assert len(_lost_lines(caplog)) == 1
    hsm.restore_token(token)
    _sign_and_verify(store.signer("pkcs11:id=01"), b"back")


def test_token_reinitialised_then_restored(
    hsm: SoftHSM, token: Token, store: Pkcs11KeyStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    key = store.signer("pkcs11:id=01")
    _sign_and_verify(key, b"before")
    hsm.reinit_token(token)
    with pytest.raises(KeyStoreUnavailableError, match="no longer in the token"):
        _sign_and_verify(key, b"keys wiped")
    assert len(_lost_lines(caplog)) == 1
    hsm.restore_token(token)
    _sign_and_verify(key, b"restored from backup")


def test_other_tokens_keep_working_while_one_is_gone(
    hsm: SoftHSM, token: Token, store: Pkcs11KeyStore
) -> None:
    other_token = hsm.init_token()
    other = Pkcs11KeyStore.from_uri(other_token.uri(), password=None, base_dir=None)
    other.create_key("pkcs11:id=01;object=ec", KeySpec())
    key, other_key = store.signer("pkcs11:id=01"), other.signer("pkcs11:id=01")
    hsm.remove_token(token)
    with pytest.raises(KeyStoreUnavailableError):
        _sign_and_verify(key, b"gone")
    _sign_and_verify(other_key, b"the other token is still there")
    hsm.restore_token(token)
    _sign_and_verify(key, b"back")
    _sign_and_verify(other_key, b"still fine")


def test_library_state_is_per_process(store: Pkcs11KeyStore) -> None:
    """In the test process the module is mapped once used (a sanity check of the probe
    used by test_opening_the_store_loads_no_library)."""
    store.signer("pkcs11:id=01")
    assert _module_mapped()
