"""`step certificate needs-renewal` (cli.renewal_check): thresholds, bundles, exit codes."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from cli.certificate import app
from cli.certinfo import parse_certificate
from cli.renewal_check import (
    Threshold,
    certificate_needs_renewal,
    parse_expires_in,
    percent_used,
)
from pki.durations import parse_duration_ns

runner = CliRunner()
NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)
HOUR = datetime.timedelta(hours=1)
MINUTE = datetime.timedelta(minutes=1)

ROOT_KEY = ec.generate_private_key(ec.SECP256R1())
LEAF_KEY = ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


ROOT = (
    x509.CertificateBuilder()
    .subject_name(_name("Renewal Root"))
    .issuer_name(_name("Renewal Root"))
    .public_key(ROOT_KEY.public_key())
    .serial_number(1)
    .not_valid_before(NOW - DAY)
    .not_valid_after(NOW + 365 * DAY)
    .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    .sign(ROOT_KEY, hashes.SHA256())
)


def _cert(not_before: datetime.datetime, not_after: datetime.datetime) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(_name("renew.example.com"))
        .issuer_name(ROOT.subject)
        .public_key(LEAF_KEY.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ROOT_KEY, hashes.SHA256())
    )


def _used(percent: int, lifetime: datetime.timedelta = 100 * DAY) -> x509.Certificate:
    """A certificate that has used `percent` of its lifetime now, give or take a few seconds."""
    start = NOW - lifetime * percent / 100
    return _cert(start, start + lifetime)


def _write(path: Path, *certs: x509.Certificate) -> str:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    return str(path)


def _invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["needs-renewal", *args])
    return result.exit_code, result.stdout, result.stderr


# Thresholds ------------------------------------------------------------------------------------


def test_default_threshold_is_66_percent(tmp_path: Path) -> None:
    assert _invoke(_write(tmp_path / "70.crt", _used(70))) == (0, "", "")
    assert _invoke(_write(tmp_path / "10.crt", _used(10))) == (1, "", "")
    assert _invoke(_write(tmp_path / "60.crt", _used(60))) == (1, "", "")
    expired = _write(tmp_path / "expired.crt", _cert(NOW - 2 * DAY, NOW - DAY))
    assert _invoke(expired) == (0, "", "")


def test_percent_thresholds(tmp_path: Path) -> None:
    seventy = _write(tmp_path / "70.crt", _used(70))
    assert _invoke(seventy, "--expires-in", "75%")[0] == 1
    assert _invoke(seventy, "--expires-in", "50%")[0] == 0
    assert _invoke(seventy, "--expires-in", "0%")[0] == 0
    assert _invoke(seventy, "--expires-in", "+69%")[0] == 0
    assert _invoke(seventy, "--expires-in", "100%")[0] == 1
    expired = _write(tmp_path / "expired.crt", _cert(NOW - 2 * DAY, NOW - DAY))
    assert _invoke(expired, "--expires-in", "100%")[0] == 0
    fresh = _write(tmp_path / "fresh.crt", _cert(NOW - MINUTE, NOW + 100 * DAY))
    assert _invoke(fresh, "--expires-in", "0%")[0] == 0
    assert _invoke(fresh, "--expires-in", "1%")[0] == 1


def test_duration_thresholds(tmp_path: Path) -> None:
    two_hours = _write(tmp_path / "2h.crt", _cert(NOW - DAY, NOW + 2 * HOUR))
    assert _invoke(two_hours, "--expires-in", "3h")[0] == 0
    assert _invoke(two_hours, "--expires-in", "2h30m")[0] == 0
    assert _invoke(two_hours, "--expires-in", "1h")[0] == 1
    assert _invoke(two_hours, "--expires-in", "1h15m")[0] == 1
    assert _invoke(two_hours, "--expires-in", "0.5h")[0] == 1
    assert _invoke(two_hours, "--expires-in", "10000s")[0] == 0
    assert _invoke(two_hours, "--expires-in", "0s")[0] == 1
    expired = _write(tmp_path / "expired.crt", _cert(NOW - 2 * DAY, NOW - 2 * HOUR))
    assert _invoke(expired, "--expires-in", "0s")[0] == 0
    assert _invoke(expired, "--expires-in", "-1h")[0] == 0
    assert _invoke(expired, "--expires-in", "-3h")[0] == 1


def test_bundle_checks_every_certificate(tmp_path: Path) -> None:
    bundle = _write(tmp_path / "bundle.crt", _used(10), _used(90))
    assert _invoke(bundle) == (1, "", "")
    assert _invoke(bundle, "--bundle") == (0, "", "")
    assert _invoke(bundle, "--bundle", "--expires-in", "95%") == (1, "", "")


def test_der_input(tmp_path: Path) -> None:
    der = tmp_path / "cert.der"
    der.write_bytes(_used(80).public_bytes(serialization.Encoding.DER))
    assert _invoke(str(der)) == (0, "", "")


def test_verbose_messages(tmp_path: Path) -> None:
    assert _invoke(_write(tmp_path / "a.crt", _used(70)), "--verbose") == (
        0,
        "certificate needs renewal\n",
        "",
    )
    assert _invoke(_write(tmp_path / "b.crt", _used(10)), "-v") == (
        1,
        "",
        "certificate does not need renewal\n",
    )


# Exit codes 2 and 255 --------------------------------------------------------------------------


def test_missing_file_exits_2(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.crt")
    assert _invoke(missing) == (2, "", f"stat {missing}: no such file or directory\n")
    # The file is looked at before the flags: a missing file wins over a bad --expires-in.
    assert _invoke(missing, "--expires-in", "nonsense")[0] == 2


def test_other_errors_exit_255(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.crt"
    garbage.write_bytes(b"not a certificate")
    code, out, err = _invoke(str(garbage))
    assert (code, out) == (255, "")
    assert err.startswith(f"error parsing {garbage}: error parsing certificate as DER format: ")
    key_only = tmp_path / "key.pem"
    key_only.write_bytes(
        LEAF_KEY.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    assert _invoke(str(key_only)) == (
        255,
        "",
        f"error parsing {key_only}: does not contain a valid PEM encoded certificate\n",
    )
    assert _invoke(str(tmp_path)) == (255, "", f'error reading "{tmp_path}": is a directory\n')


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "invalid value 'abc' for flag '--expires-in'"),
        ("1x", "invalid value '1x' for flag '--expires-in'"),
        ("%", "invalid value '%' for flag '--expires-in'"),
        ("50%%", "invalid value '50%%' for flag '--expires-in'"),
        ("1.5%", "invalid value '1.5%' for flag '--expires-in'"),
        ("150%", "invalid value '150%' for flag '--expires-in'; value must be in range 0-100%"),
        ("-5%", "invalid value '-5%' for flag '--expires-in'; value must be in range 0-100%"),
    ],
)
def test_bad_expires_in_exits_255(tmp_path: Path, value: str, message: str) -> None:
    cert = _write(tmp_path / "c.crt", _used(10))
    assert _invoke(cert, "--expires-in", value) == (255, "", message + "\n")


def test_argument_count_exits_255(tmp_path: Path) -> None:
    usage = "'step certificate needs-renewal <cert-file or hostname>'"
    assert _invoke() == (
        255,
        "",
        f"not enough positional arguments were provided in {usage}\n",
    )
    cert = _write(tmp_path / "c.crt", _used(10))
    assert _invoke(cert, cert) == (
        255,
        "",
        f"too many positional arguments were provided in {usage}\n",
    )


# Remote ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def _tls_server(tmp_path: Path, leaf: x509.Certificate) -> Iterator[int]:
    chain = _write(tmp_path / "served.crt", leaf)
    key = tmp_path / "served.key"
    key.write_bytes(
        LEAF_KEY.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain, str(key))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except OSError:
                pass
            finally:
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def test_remote_certificate(tmp_path: Path) -> None:
    roots = _write(tmp_path / "root.crt", ROOT)
    with _tls_server(tmp_path, _used(80, lifetime=10 * DAY)) as port:
        url = f"https://127.0.0.1:{port}"
        assert _invoke(url, "--roots", roots) == (0, "", "")
        assert _invoke(url, "--roots", roots, "--expires-in", "90%") == (1, "", "")
        assert _invoke(url, "--roots", roots, "--expires-in", "24h")[0] == 1
        assert _invoke(url, "--roots", roots, "--expires-in", "72h")[0] == 0
        code, out, err = _invoke(url)  # the system store does not trust the test root
        assert (code, out) == (255, "")
        assert err.startswith("failed to connect: ")
    with socket.create_server(("127.0.0.1", 0)) as probe:
        closed = probe.getsockname()[1]
    code, _, err = _invoke(f"https://127.0.0.1:{closed}", "--roots", roots)
    assert code == 255 and err.startswith(f"failed to connect: dial tcp 127.0.0.1:{closed}: ")


# The arithmetic ----------------------------------------------------------------------------------


def _ns(when: datetime.datetime) -> int:
    return round(when.timestamp()) * 10**9


def test_percent_arithmetic_is_steps() -> None:
    start = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    cert = parse_certificate(
        _cert(start, start + 100 * MINUTE).public_bytes(serialization.Encoding.DER)
    )
    at = {m: _ns(start + m * MINUTE) for m in (0, 65, 66, 67, 100, 200)}
    assert percent_used(cert, at[0]) == 0
    assert percent_used(cert, at[100]) == 100
    assert percent_used(cert, at[200]) == 200
    default = parse_expires_in(None)
    assert default == Threshold(percent=66)
    assert not certificate_needs_renewal(cert, default, at[65])
    assert certificate_needs_renewal(cert, default, at[67])
    # Before notBefore the share used is negative: int() truncates toward zero, so "0%"
    # is reached already a little before the start, as in Go.
    assert certificate_needs_renewal(cert, Threshold(percent=0), at[0] - 30 * 10**9)
    assert not certificate_needs_renewal(cert, Threshold(percent=0), at[0] - 120 * 10**9)
    window = parse_expires_in("35m")
    assert not certificate_needs_renewal(cert, window, at[65] - 1)
    assert certificate_needs_renewal(cert, window, at[65])


def test_zero_lifetime_counts_as_used() -> None:
    start = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    cert = parse_certificate(_cert(start, start).public_bytes(serialization.Encoding.DER))
    assert certificate_needs_renewal(cert, Threshold(percent=100), _ns(start) - 10**9)


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        ("0", 0),
        ("300ms", 300 * 10**6),
        ("-1.5h", -5400 * 10**9),
        ("2h45m", 9900 * 10**9),
        ("1h15m", 4500 * 10**9),
        ("1.5\u00b5s", 1500),
        ("1\u03bcs", 1000),
        ("1us", 1000),
        (".5s", 500 * 10**6),
        ("1.s", 10**9),
        ("+3ns", 3),
        ("9223372036854775807ns", 2**63 - 1),
        ("2562047h", 2562047 * 3600 * 10**9),
    ],
)
def test_go_durations(text: str, nanoseconds: int) -> None:
    assert parse_duration_ns(text) == nanoseconds


@pytest.mark.parametrize(
    "text", ["", "+", "1", "1e3s", "1h-1m", "s", ".s", "1d", "9223372036854775808ns", "2562048h"]
)
def test_invalid_go_durations(text: str) -> None:
    with pytest.raises(ValueError, match=r"^time: "):
        parse_duration_ns(text)
