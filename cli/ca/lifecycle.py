"""`step ca renew`, `step ca rekey` and `step ca revoke`."""

from __future__ import annotations

import logging
import random
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer
from cryptography.hazmat.primitives.serialization import Encoding

from cli.ca import ui
from cli.ca.certfiles import CertPair, load_pair, save_certificate, save_pair
from cli.ca.client import CAClient
from cli.ca.defaults import CA_URL_HELP, ROOT_HELP, require_ca_url, require_root
from cli.ca.issue import key_spec, make_csr, new_token
from cli.ca.renewal import AfterRenewal, Daemon, parse_chain, request_renewal
from cli.common import CLIError, check_outputs, check_writable, read_password_file
from cli.crypto_keyio import private_pem
from pki.durations import format_duration, parse_duration

REASON_CODES = {
    "unspecified": 0,
    "keycompromise": 1,
    "cacompromise": 2,
    "affiliationchanged": 3,
    "superseded": 4,
    "cessationofoperation": 5,
    "certificatehold": 6,
    "removefromcrl": 8,
    "privilegewithdrawn": 9,
    "aacompromise": 10,
}


def _duration(value: str | None, flag: str) -> timedelta | None:
    if not value:
        return None
    try:
        return parse_duration(value)
    except ValueError:
        raise CLIError(f"invalid value '{value}' for flag '{flag}'") from None


def _setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s: %(asctime)s %(message)s", stream=sys.stderr
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _not_due(pair: CertPair, expires_in: timedelta | None) -> bool:
    """One-shot renewals with --expires-in skip certificates that are not close to expiry."""
    if expires_in is None:
        return False
    remaining = pair.leaf.not_valid_after_utc - datetime.now(UTC)
    jitter = timedelta(seconds=random.uniform(0, expires_in.total_seconds() / 20))
    return remaining > expires_in + jitter


def renew_command(
    crt_file: Path = typer.Argument(..., help="The certificate (chain) to renew."),
    key_file: Path = typer.Argument(..., help="Its private key."),
    out: Path | None = typer.Option(None, "--out", "--output-file", help="Write here instead."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite without asking."),
    expires_in: str | None = typer.Option(
        None, "--expires-in", help="Only renew when the certificate expires within this duration."
    ),
    renew_period: str | None = typer.Option(
        None, "--renew-period", help="With --daemon: renew every period instead of at 2/3 of life."
    ),
    mtls: bool = typer.Option(
        True, "--mtls/--no-mtls", help="Authenticate with the certificate (mTLS) while it is valid."
    ),
    daemon: bool = typer.Option(False, "--daemon", help="Keep running and renew on schedule."),
    exec_cmd: str | None = typer.Option(None, "--exec", help="Command to run after each renewal."),
    pid: int | None = typer.Option(None, "--pid", help="Signal this process after renewal."),
    pid_file: Path | None = typer.Option(None, "--pid-file", help="File with the PID to signal."),
    signum: int = typer.Option(int(signal.SIGHUP), "--signal", help="Signal to send."),
    retry_interval: str = typer.Option(
        "1m", "--retry-interval", help="With --daemon: wait this long after a failed renewal."
    ),
    password_file: Path | None = typer.Option(
        None, "--password-file", help="File with the password of an encrypted key."
    ),
    ca_url: str | None = typer.Option(None, "--ca-url", help=CA_URL_HELP),
    root: str | None = typer.Option(None, "--root", help=ROOT_HELP),
) -> None:
    """Renew a certificate: same subject, names and lifetime, new validity window.

    Authenticates with the certificate itself over mTLS; once it has expired (or with
    --no-mtls) a token signed by its key is used instead. Files are replaced atomically.
    With --daemon, renews at about 2/3 of the lifetime (minus up to 5% jitter), retries every
    minute on failure, renews at once on SIGHUP and exits cleanly on SIGTERM.

    Examples:

      $ step ca renew foo.crt foo.key --force

      $ step ca renew foo.crt foo.key --expires-in 8h --force

      $ step ca renew foo.crt foo.key --daemon --exec "systemctl reload nginx"
    """
    url, root_path = require_ca_url(ca_url), require_root(root)
    period, window = (
        _duration(renew_period, "--renew-period"),
        _duration(expires_in, "--expires-in"),
    )
    if period and window:
        raise CLIError("flags '--expires-in' and '--renew-period' are mutually exclusive")
    retry = _duration(retry_interval, "--retry-interval") or timedelta(minutes=1)
    password = read_password_file(password_file) if password_file else None
    target = out or crt_file
    check_writable(target)
    pair = load_pair(crt_file, key_file, password)
    lifetime = pair.leaf.not_valid_after_utc - pair.leaf.not_valid_before_utc
    for name, value in (("--expires-in", window), ("--renew-period", period)):
        if value is not None and value >= lifetime:
            raise CLIError(f"flag '{name}' must be less than the certificate lifetime")

    def renew_once(current: CertPair) -> None:
        chain = request_renewal(
            url, root_path, crt_file, key_file, current, mtls=mtls, key_password=password
        )
        save_certificate(target, chain)

    after = AfterRenewal(pid, pid_file, signum, exec_cmd)
    if daemon:
        _setup_logging()
        Daemon(
            renew_once,
            lambda: load_pair(crt_file, key_file, password),
            expires_in=window,
            renew_period=period,
            retry_interval=retry,
            after=after,
        ).run()
        return
    if _not_due(pair, window):
        remaining = pair.leaf.not_valid_after_utc - datetime.now(UTC)
        remaining = timedelta(seconds=int(remaining.total_seconds()))
        ui.note(f"certificate not renewed: expires in {format_duration(remaining)}")
        return
    check_outputs([target], force)
    renew_once(pair)
    ui.note(f"Your certificate has been saved in {target}.")
    after.run()


def rekey_command(
    crt_file: Path = typer.Argument(..., help="The certificate (chain) to rekey."),
    key_file: Path = typer.Argument(..., help="Its private key."),
    out_cert: Path | None = typer.Option(None, "--out-cert", help="Write the certificate here."),
    out_key: Path | None = typer.Option(None, "--out-key", help="Write the new key here."),
    kty: str = typer.Option("EC", "--kty", help="Key type of the new key: EC, RSA or OKP."),
    curve: str | None = typer.Option(None, "--curve", "--crv", help="EC or OKP curve."),
    size: int = typer.Option(2048, "--size", help="RSA key size in bits."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite without asking."),
    ca_url: str | None = typer.Option(None, "--ca-url", help=CA_URL_HELP),
    root: str | None = typer.Option(None, "--root", help=ROOT_HELP),
) -> None:
    """Rekey a certificate: same identity on a new private key (mTLS with the old one).

    The new certificate and key replace the old pair so that a crash at any moment leaves
    either the old or the new pair on disk.

    Examples:

      $ step ca rekey foo.crt foo.key --force

      $ step ca rekey foo.crt foo.key --kty RSA --size 3072 --out-cert new.crt --out-key new.key
    """
    url, root_path = require_ca_url(ca_url), require_root(root)
    spec = key_spec(kty, curve, size)
    pair = load_pair(crt_file, key_file)
    crt_target, key_target = out_cert or crt_file, out_key or key_file
    check_outputs([crt_target, key_target], force)
    new_key = spec.generate()
    csr = make_csr("rekey", [], new_key).public_bytes(Encoding.PEM).decode()
    with CAClient(url, root_path, client_cert=(crt_file, key_file)) as client:
        chain = parse_chain(client.rekey(csr))
    del pair
    save_pair(crt_target, key_target, chain, private_pem(new_key, None))
    ui.note(f"Your certificate has been saved in {crt_target}.")
    ui.note(f"Your private key has been saved in {key_target}.")


def _reason_code(value: str | None) -> int:
    if value is None or value == "":
        return 0
    if value.isdigit():
        code = int(value)
    else:
        normalized = value.replace(" ", "").replace("_", "").lower()
        if normalized not in REASON_CODES:
            raise CLIError(f"invalid value '{value}' for flag '--reasonCode'")
        code = REASON_CODES[normalized]
    if not 0 <= code <= 10:
        raise CLIError(f"invalid value '{value}' for flag '--reasonCode': must be 0 to 10")
    return code


def _decimal_serial(serial: str) -> str:
    try:
        return str(int(serial.strip(), 0))
    except ValueError:
        try:
            return str(int(serial.replace(":", ""), 16))
        except ValueError:
            raise CLIError(f"'{serial}' is not a valid serial number") from None


def _revoked_serial(serial: str | None, cert: Path | None, key: Path | None) -> str:
    """The decimal serial to revoke: the argument, or the --cert certificate's (they must agree
    when both are given)."""
    if cert is None or key is None:
        if serial is None:
            raise CLIError("'step ca revoke' requires a serial number, or '--cert' and '--key'")
        return _decimal_serial(serial)
    own = str(load_pair(cert, key).leaf.serial_number)
    if serial is not None and _decimal_serial(serial) != own:
        raise CLIError(
            f"serial number {serial} does not match the serial number {own} of {cert}"
        )
    return own


def revoke_command(
    serial: str | None = typer.Argument(
        None, help="The serial number (decimal, or 0x-prefixed hex); with --cert, optional."
    ),
    reason: str = typer.Option("", "--reason", help="A free-text reason."),
    reason_code: str | None = typer.Option(
        None, "--reasonCode", "--reason-code", help="0-10 or a name such as keyCompromise."
    ),
    token: str | None = typer.Option(
        None, "--token", help="A revoke token (step ca token --revoke)."
    ),
    cert: Path | None = typer.Option(None, "--cert", help="Revoke with this certificate (mTLS)."),
    key: Path | None = typer.Option(None, "--key", help="The key of --cert."),
    provisioner: str | None = typer.Option(None, "--provisioner", "--issuer", help="Provisioner."),
    password_file: Path | None = typer.Option(
        None,
        "--password-file",
        "--provisioner-password-file",
        help="File with the password that decrypts the provisioner key.",
    ),
    ca_url: str | None = typer.Option(None, "--ca-url", help=CA_URL_HELP),
    root: str | None = typer.Option(None, "--root", help=ROOT_HELP),
) -> None:
    """Revoke a certificate (passive revocation: it can never be renewed again).

    Authorised by a one-time token (made for you from the provisioner unless --token is given)
    or, with --cert/--key, by the certificate itself over mTLS; then the serial number is the
    certificate's and need not be given.

    Examples:

      $ step ca revoke 308893286343609293989051180431574390766 --reason "laptop lost"

      $ step ca revoke --cert foo.crt --key foo.key --reasonCode keyCompromise
    """
    url, root_path = require_ca_url(ca_url), require_root(root)
    if (cert is None) != (key is None):
        raise CLIError("flags '--cert' and '--key' must be used together")
    decimal = _revoked_serial(serial, cert, key)
    body = {
        "serial": decimal,
        "reasonCode": _reason_code(reason_code),
        "reason": reason,
        "passive": True,
    }
    if cert is not None and key is not None:
        with CAClient(url, root_path, client_cert=(cert, key)) as client:
            client.revoke(body)
    else:
        with CAClient(url, root_path) as client:
            body["ott"] = token or new_token(
                client,
                root_path,
                decimal,
                [],
                provisioner,
                None,
                password_file,
                None,
                None,
                path="/1.0/revoke",
            )
            client.revoke(body)
    ui.note(f"Certificate with Serial Number {decimal} has been revoked.")
