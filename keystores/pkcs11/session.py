"""PKCS#11 sessions and locking: one library load and one session per token per process.

SoftHSM2 and python-pkcs11 crash under concurrent sessions, and a PKCS#11 library must not be
used across fork. So the library is initialised lazily in the process that uses it (never in
the gunicorn master); state inherited over fork is thrown away (`pkcs11.unload`) before first
use in the child; each process keeps one session per token, shared by all stores; every
PKCS#11 call runs under one process-wide lock (`process_lock()`). When a call fails in a way
that means the token or session is gone, the library is finalised, one warning is logged and
KeyStoreUnavailableError (-> 503) is raised; the next call reloads the library and logs in
again, so the same store and signer objects keep working.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import pkcs11
from pkcs11 import exceptions as p11

from keystores.base import KeyStoreError, KeyStoreUnavailableError, WrongPasswordError
from keystores.pkcs11.keys import TokenSelector

__all__ = [
    "Connection",
    "KeyVanished",
    "finalize_process",
    "process_lock",
    "run",
]

# One logger name for the whole backend, as operators filter on it.
log = logging.getLogger("keystores.pkcs11")

_ED25519_OID = "1.3.101.112"

# Errors after which the session (or the whole library state) cannot be trusted: the token
# was removed or re-initialised, the HSM restarted, or its files vanished (SoftHSM reports
# GeneralError then). A bare PKCS11Error is what python-pkcs11 raises for "not initialized".
_LOST_ERRORS: tuple[type[p11.PKCS11Error], ...] = (
    p11.SessionHandleInvalid,
    p11.SessionClosed,
    p11.TokenNotPresent,
    p11.TokenNotRecognised,
    p11.NoSuchToken,
    p11.DeviceRemoved,
    p11.DeviceError,
    p11.DeviceMemory,
    p11.GeneralError,
    p11.FunctionFailed,
    p11.SlotIDInvalid,
    p11.ObjectHandleInvalid,
    p11.KeyHandleInvalid,
)
HANDLE_ERRORS = (p11.ObjectHandleInvalid, p11.KeyHandleInvalid)


class KeyVanished(Exception):
    """A key this process was signing with is no longer in the token (token re-initialised)."""


_LOCK = threading.RLock()


def _lock_before_fork() -> None:
    _LOCK.acquire()


def _unlock_after_fork_in_parent() -> None:
    _LOCK.release()


def _new_lock_in_child() -> None:
    # The child has one thread; a fresh lock cannot be left held by a thread that is gone.
    global _LOCK
    _LOCK = threading.RLock()


# Fork only between PKCS#11 calls, so no child inherits a library caught mid-call.
os.register_at_fork(
    before=_lock_before_fork,
    after_in_parent=_unlock_after_fork_in_parent,
    after_in_child=_new_lock_in_child,
)


def process_lock() -> threading.RLock:
    """The lock every PKCS#11 call of this process runs under (renewed in a forked child)."""
    return _LOCK


class Connection:
    """This process's session on one token, with the key handles found through it."""

    def __init__(self, token: Any, session: Any, logged_in: bool) -> None:
        self.token = token
        self.session = session
        self.logged_in = logged_in
        self.keys: dict[tuple[bytes | None, str | None], Any] = {}


class _Module:
    """One loaded PKCS#11 library and its sessions, in one process."""

    def __init__(self, path: str, lib: Any) -> None:
        self.path = path
        self.lib = lib
        self.connections: dict[TokenSelector, Connection] = {}


class _ProcessState:
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.modules: dict[str, _Module] = {}
        self.lost: set[TokenSelector] = set()


_state = _ProcessState()


def _modules() -> dict[str, _Module]:
    """This process's libraries. State inherited over fork is unloaded first: the parent's
    sessions and login are not ours, and python-pkcs11 would hand back its cached library."""
    global _state
    if _state.pid != os.getpid():
        inherited = _state
        _state = _ProcessState()
        for path in inherited.modules:
            pkcs11.unload(path)
    return _state.modules


def _drop_module(path: str) -> None:
    """Forget a library's sessions and handles and finalise it (C_Finalize closes sessions)."""
    module = _modules().pop(path, None)
    if module is None:
        return
    module.connections.clear()
    pkcs11.unload(path)


def finalize_process() -> None:
    """Finalise every PKCS#11 library this process loaded (e.g. from gunicorn `worker_exit`).

    Stores stay usable: their next call loads the library again.
    """
    with _LOCK:
        for path in list(_modules()):
            _drop_module(path)


def _load(path: str) -> tuple[_Module, bool]:
    """The loaded library for `path`, and whether it was loaded just now."""
    modules = _modules()
    module = modules.get(path)
    if module is not None:
        return module, False
    try:
        lib = pkcs11.lib(path)
    except p11.PKCS11Error as exc:
        pkcs11.unload(path)
        hint = " (is SOFTHSM2_CONF set and readable?)" if "softhsm" in path else ""
        message = f"cannot load PKCS#11 module {path}: {_reason(exc)}{hint}"
        if isinstance(exc, _LOST_ERRORS):  # e.g. a network HSM that is down right now
            raise KeyStoreUnavailableError(message) from None
        raise KeyStoreError(message) from None
    module = modules[path] = _Module(path, lib)
    return module, True


def _find_token(lib: Any, selector: TokenSelector) -> Any | None:
    """The token the selector names, skipping slots that fail to answer."""
    matches = []
    for slot in lib.get_slots(token_present=True):
        if selector.kind == "slot-id" and str(slot.slot_id) != selector.value:
            continue
        try:
            token = slot.get_token()
        except p11.PKCS11Error:
            continue
        if selector.kind == "token" and token.label != selector.value:
            continue
        if selector.kind == "serial" and token.serial.decode("ascii", "replace") != selector.value:
            continue
        matches.append(token)
    if len(matches) > 1:
        raise KeyStoreError(f"{len(matches)} PKCS#11 tokens match {selector.describe()}")
    return matches[0] if matches else None


def _open_session(token: Any, selector: TokenSelector, pin: str | None) -> Any:
    try:
        if pin is None:
            return token.open(rw=True)
        return token.open(rw=True, user_pin=pin)
    except p11.UserAlreadyLoggedIn:
        return token.open(rw=True)  # login is per token: another session here already did it
    except (p11.PinIncorrect, p11.PinInvalid, p11.PinLenRange):
        raise WrongPasswordError(f"wrong PIN for PKCS#11 token {selector.describe()}") from None
    except p11.PinLocked:
        raise KeyStoreError(f"the PIN of PKCS#11 token {selector.describe()} is locked") from None


def _connect(selector: TokenSelector, pin: str | None) -> Connection:
    """This process's session on the token, opened (and logged in) on first use."""
    module, fresh = _load(selector.module)
    conn = module.connections.get(selector)
    if conn is not None and (conn.logged_in or pin is None):
        return conn
    try:
        token = _find_token(module.lib, selector)
        if token is None and not fresh:
            # Libraries such as SoftHSM2 see only the tokens present at C_Initialize.
            _drop_module(selector.module)
            module, _ = _load(selector.module)
            token = _find_token(module.lib, selector)
        if token is None:
            raise p11.NoSuchToken(f"no token with {selector.describe()}")
        session = _open_session(token, selector, pin)
    except BaseException:
        _drop_module(selector.module)  # also closes a session left open by a failed login
        raise
    module.connections[selector] = Connection(token, session, pin is not None)
    if selector in _state.lost:
        _state.lost.discard(selector)
        log.warning("PKCS#11 session to token %s reopened", selector.describe())
    return module.connections[selector]


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


T = TypeVar("T")


def _openssl_error_clearer() -> Callable[[], None]:
    """OpenSSL's ERR_clear_error, for the libcrypto this process shares with Python's ssl.

    Why: a PKCS#11 module built on OpenSSL (SoftHSM2 is) can leave entries on OpenSSL's
    per-thread error queue (SoftHSM2 does when it opens a session). Python's ssl module does
    not clear that queue before a read, and OpenSSL's SSL_get_error then reports the stale
    entry as the failure of the thread's next non-blocking TLS read: a dropped connection.
    Neither ssl nor cryptography exposes ERR_clear_error, hence ctypes. Without a libcrypto
    to load there is nothing to clear."""
    for name in ("libcrypto.so.3", ctypes.util.find_library("crypto")):
        if name:
            try:
                clear: Callable[[], None] = ctypes.CDLL(name).ERR_clear_error
            except (OSError, AttributeError):
                continue
            return clear
    return lambda: None


_clear_openssl_errors = _openssl_error_clearer()


def run(selector: TokenSelector, pin: str | None, work: Callable[[Connection], T]) -> T:
    """Run `work` on the token's session under the process lock, turning a lost token or
    session into KeyStoreUnavailableError (after dropping the state so the next call reopens)
    and any other PKCS#11 error into a one-line KeyStoreError. The calling thread's OpenSSL
    error queue is left empty (see `_openssl_error_clearer`)."""
    with _LOCK:
        try:
            return _run(selector, pin, work)
        finally:
            _clear_openssl_errors()


def _run(selector: TokenSelector, pin: str | None, work: Callable[[Connection], T]) -> T:
    try:
        return work(_connect(selector, pin))
    except KeyVanished as exc:
        _lose(selector, str(exc))
    except p11.PKCS11Error as exc:
        not_logged_in = isinstance(exc, p11.UserNotLoggedIn)
        if not_logged_in and pin is None:
            raise KeyStoreError(
                f"PKCS#11 token {selector.describe()} needs a login: "
                "give pin-value or pin-source"
            ) from None
        if not_logged_in or isinstance(exc, _LOST_ERRORS) or type(exc) is p11.PKCS11Error:
            _lose(selector, _reason(exc))
        raise KeyStoreError(
            f"PKCS#11 error on token {selector.describe()}: {_reason(exc)}"
        ) from None


def _lose(selector: TokenSelector, reason: str) -> NoReturn:
    """Drop the library state after a lost session and raise the 503 error. The warning is
    logged once per outage; further failed reopen attempts only at debug level."""
    _drop_module(selector.module)
    already = selector in _state.lost
    _state.lost.add(selector)
    log.log(
        logging.DEBUG if already else logging.WARNING,
        "PKCS#11 session lost (%s, token %s, module %s); will reopen on next use",
        reason,
        selector.describe(),
        selector.module,
    )
    raise KeyStoreUnavailableError(
        f"PKCS#11 token {selector.describe()} is unavailable ({reason}); try again"
    ) from None
