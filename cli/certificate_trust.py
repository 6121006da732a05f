"""`step certificate install` and `uninstall`: a root CA in the system, NSS and Java stores.

Follows smallstep/cli's command/certificate/install.go and smallstep/truststore on Debian:
the root is written to /usr/local/share/ca-certificates/<name>.crt, where <name> is
`--prefix` (default: the common name and a space) followed by the decimal serial number,
spaces made underscores, and `update-ca-certificates` rebuilds /etc/ssl/certs. `--firefox`
adds it with `certutil` to every NSS database ($HOME/.pki/nssdb and Firefox profiles),
`--java` with `keytool` to $JAVA_HOME's cacerts; a store whose tool is missing is skipped
with a note, as truststore does (it says nothing).

`--sysroot DIR` (a Stepstone addition, for tests and image builds) relocates the system
trust store tree under DIR and runs update-ca-certificates with its own directory options
pointed there. Where update-ca-certificates is absent, the bundle is built the way it does
(the certificates ca-certificates.conf enables, then the local ones, sorted) without the
hash links.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import typer
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from cli.certificate_x509 import read_certificates
from cli.certinfo import certificate_short_text, parse_certificate
from cli.common import CLIError, write_output

__all__ = ["install_command", "uninstall_command"]

_LOCAL = "usr/local/share/ca-certificates"
_CERTS = "usr/share/ca-certificates"
_CONF = "etc/ca-certificates.conf"
_ETC = "etc/ssl/certs"
_HOOKS = "etc/ca-certificates/update.d"
_BUNDLE = "ca-certificates.crt"
_JAVA_PASS = "changeit"
_TIMEOUT = 300


@dataclass(frozen=True)
class _Options:
    prefix: str | None
    java: bool
    firefox: bool
    system: bool
    sysroot: Path | None


def _root(crt_file: str) -> x509.Certificate:
    cert = read_certificates(crt_file)[0]
    try:
        ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        cert.verify_directly_issued_by(cert)
    except (x509.ExtensionNotFound, ValueError, TypeError, InvalidSignature):
        ca = False
    if not ca:
        raise CLIError(f"certificate {crt_file} is not a root CA")
    return cert


def unique_name(cert: x509.Certificate, prefix: str | None) -> str:
    """truststore's name for the root: the prefix (or `CN `) and the decimal serial."""
    if prefix:
        return prefix + str(cert.serial_number)
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common_name = cns[0].value if cns else ""
    if isinstance(common_name, str) and common_name:
        return f"{common_name} {cert.serial_number}"
    return f"Smallstep Development CA {cert.serial_number}"


def _run(args: list[str], data: bytes | None = None) -> None:
    try:
        proc = subprocess.run(args, input=data, capture_output=True, timeout=_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CLIError(f'failed to execute "{" ".join(args)}": {exc}') from None
    if proc.returncode != 0:
        output = (proc.stderr or proc.stdout).decode(errors="replace")
        detail = " ".join(output.split()) or f"exit status {proc.returncode}"
        raise CLIError(f'failed to execute "{" ".join(args)}" failed with: {detail}')


def _privileged(args: list[str], sysroot: Path | None) -> list[str]:
    """As truststore does: through sudo when not root (and not in a sysroot)."""
    if sysroot is None and os.geteuid() != 0 and shutil.which("sudo"):
        return ["sudo", "--", *args]
    return args


def _update_system(sysroot: Path | None) -> None:
    tool = shutil.which("update-ca-certificates")
    if sysroot is None:
        if tool is None:
            raise CLIError("update-ca-certificates was not found: install ca-certificates")
        _run(_privileged([tool], None))
        return
    etc = sysroot / _ETC
    etc.mkdir(parents=True, exist_ok=True)
    parts = _bundle_parts(sysroot)
    if tool is None or not parts:
        # update-ca-certificates leaves a stale bundle when nothing is left to bundle.
        _build_bundle(sysroot, parts)
        if tool is None:
            return
    _run(
        [
            tool,
            "--certsconf", str(sysroot / _CONF),
            "--certsdir", str(sysroot / _CERTS),
            "--localcertsdir", str(sysroot / _LOCAL),
            "--etccertsdir", str(etc),
            "--hooksdir", str(sysroot / _HOOKS),
        ]
    )  # fmt: skip


def _bundle_parts(sysroot: Path) -> list[bytes]:
    """What update-ca-certificates bundles: enabled distribution certificates, then local
    ones, sorted."""
    parts: list[bytes] = []
    conf = sysroot / _CONF
    if conf.is_file():
        for line in conf.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith(("#", "!")) and (sysroot / _CERTS / line).is_file():
                parts.append((sysroot / _CERTS / line).read_bytes())
    local = sysroot / _LOCAL
    if local.is_dir():
        parts += [p.read_bytes() for p in sorted(local.rglob("*.crt")) if p.is_file()]
    return parts


def _build_bundle(sysroot: Path, parts: list[bytes]) -> None:
    data = b"".join(p if p.endswith(b"\n") else p + b"\n" for p in parts)
    write_output(sysroot / _ETC / _BUNDLE, data, mode=0o644)


def _system_file(cert: x509.Certificate, opts: _Options) -> Path:
    name = unique_name(cert, opts.prefix).replace(" ", "_") + ".crt"
    base = opts.sysroot if opts.sysroot is not None else Path("/")
    local = base / _LOCAL
    if opts.sysroot is None and not local.is_dir():
        raise CLIError(
            "the system trust store is not supported here: "
            "/usr/local/share/ca-certificates does not exist"
        )
    return local / name


def _nss_profiles() -> list[str]:
    home = os.environ.get("HOME", "")
    candidates = glob.glob(os.path.join(home, ".mozilla", "firefox", "*"))
    candidates.append(os.path.join(home, ".pki", "nssdb"))
    found = []
    for path in candidates:
        if os.path.isfile(os.path.join(path, "cert9.db")):
            found.append("sql:" + path)
        elif os.path.isfile(os.path.join(path, "cert8.db")):
            found.append("dbm:" + path)
    return found


def _nss(cert_pem: Path, name: str, install: bool) -> None:
    certutil = shutil.which("certutil")
    if certutil is None:
        typer.echo(
            'certutil was not found: the NSS databases were skipped (install "libnss3-tools")',
            err=True,
        )
        return
    profiles = _nss_profiles()
    if not profiles:
        if install:
            raise CLIError("no NSS security databases found")
        return
    for profile in profiles:
        present = (
            subprocess.run(
                [certutil, "-V", "-d", profile, "-u", "L", "-n", name],
                capture_output=True,
                timeout=_TIMEOUT,
                check=False,
            ).returncode
            == 0
        )
        if install and not present:
            _run([certutil, "-A", "-d", profile, "-t", "C,,", "-n", name, "-i", str(cert_pem)])
        elif not install and present:
            _run([certutil, "-D", "-d", profile, "-n", name])


def _java(cert_pem: Path, name: str, install: bool) -> None:
    home = os.environ.get("JAVA_HOME", "")
    keytool = os.path.join(home, "bin", "keytool")
    cacerts = next(
        (
            p
            for p in (
                os.path.join(home, "lib", "security", "cacerts"),
                os.path.join(home, "jre", "lib", "security", "cacerts"),
            )
            if os.path.isfile(p)
        ),
        None,
    )
    if not home or not os.path.isfile(keytool) or cacerts is None:
        typer.echo(
            "keytool was not found: the Java trust store was skipped (set JAVA_HOME)", err=True
        )
        return
    store = ["-keystore", cacerts, "-storepass", _JAVA_PASS]
    present = (
        subprocess.run(
            [keytool, "-list", *store, "-alias", name],
            capture_output=True,
            timeout=_TIMEOUT,
            check=False,
        ).returncode
        == 0
    )
    if install and not present:
        _run([keytool, "-importcert", "-noprompt", *store, "-file", str(cert_pem), "-alias", name])
    elif not install and present:
        _run([keytool, "-delete", *store, "-alias", name])


def _apply(crt_file: str, opts: _Options, install: bool) -> x509.Certificate:
    cert = _root(crt_file)
    pem = cert.public_bytes(Encoding.PEM)
    name = unique_name(cert, opts.prefix)
    if opts.firefox or opts.java:
        with tempfile.TemporaryDirectory(prefix="step-install-") as tmp:
            staged = Path(tmp) / "root.crt"
            staged.write_bytes(pem)
            if opts.firefox:
                _nss(staged, name, install)
            if opts.java:
                _java(staged, name, install)
    if opts.system:
        target = _system_file(cert, opts)
        as_user = opts.sysroot is None and os.geteuid() != 0
        if install and as_user:
            _run(_privileged(["tee", str(target)], None), pem)
        elif install:
            try:
                write_output(target, pem, mode=0o644)
            except CLIError as exc:
                raise CLIError(f"failed to install {crt_file}: {exc}") from None
        elif as_user:
            _run(_privileged(["rm", "-f", str(target)], None))
        else:
            try:
                target.unlink(missing_ok=True)
            except OSError as exc:
                raise CLIError(f"failed to uninstall {crt_file}: {exc.strerror}") from None
        _update_system(opts.sysroot)
    return cert


def _report(cert: x509.Certificate, crt_file: str, verb: str) -> None:
    typer.echo(f"Certificate {crt_file} has been {verb}.")
    with contextlib.suppress(ValueError):
        typer.echo(
            certificate_short_text(parse_certificate(cert.public_bytes(Encoding.DER))), nl=False
        )


_CrtArg = typer.Argument(
    ..., metavar="CRT_FILE", help="The root certificate (PEM or DER).", show_default=False
)
_PREFIX_HELP = (
    "The prefix of the root's name in the trust stores; the serial number is appended. "
    "Default: the common name and a space."
)
_SYSROOT_HELP = (
    "Use the system trust store tree under DIR instead of / (for tests and image builds)."
)


def _options(
    prefix: str | None, java: bool, firefox: bool, no_system: bool, all_: bool, sysroot: Path | None
) -> _Options:
    return _Options(
        prefix=prefix or None,
        java=java or all_,
        firefox=firefox or all_,
        system=not no_system,
        # update-ca-certificates cds into its directories: they must be absolute.
        sysroot=sysroot.resolve() if sysroot is not None else None,
    )


def install_command(
    crt_file: str = _CrtArg,
    prefix: str | None = typer.Option(None, "--prefix", metavar="NAME", help=_PREFIX_HELP),
    java: bool = typer.Option(False, "--java", help="Also install in the Java key store."),
    firefox: bool = typer.Option(
        False, "--firefox", help="Also install in the NSS databases (Firefox, Chromium)."
    ),
    no_system: bool = typer.Option(
        False, "--no-system", help="Do not install in the system trust store."
    ),
    all_: bool = typer.Option(
        False, "--all", help="Install in the system, NSS and Java trust stores."
    ),
    sysroot: Path | None = typer.Option(None, "--sysroot", metavar="DIR", help=_SYSROOT_HELP),
) -> None:
    """Install a root certificate in the system trust store (and NSS, Java).

    The certificate must be a self-signed CA. On Debian and Ubuntu it is written to
    /usr/local/share/ca-certificates/ and update-ca-certificates rebuilds
    /etc/ssl/certs/ca-certificates.crt (this needs root; sudo is used otherwise).
    --firefox adds it to every NSS database with certutil, --java to $JAVA_HOME's cacerts
    with keytool.

    Examples:

      $ step certificate install root-ca.pem

      $ step certificate install --all root-ca.pem

      $ step certificate install --firefox --java --no-system root-ca.pem

      $ step certificate install root-ca.pem --sysroot ./image
    """
    opts = _options(prefix, java, firefox, no_system, all_, sysroot)
    _report(_apply(crt_file, opts, install=True), crt_file, "installed")


def uninstall_command(
    crt_file: str = _CrtArg,
    prefix: str | None = typer.Option(None, "--prefix", metavar="NAME", help=_PREFIX_HELP),
    java: bool = typer.Option(False, "--java", help="Also uninstall from the Java key store."),
    firefox: bool = typer.Option(False, "--firefox", help="Also uninstall from the NSS databases."),
    no_system: bool = typer.Option(
        False, "--no-system", help="Do not uninstall from the system trust store."
    ),
    all_: bool = typer.Option(
        False, "--all", help="Uninstall from the system, NSS and Java trust stores."
    ),
    sysroot: Path | None = typer.Option(None, "--sysroot", metavar="DIR", help=_SYSROOT_HELP),
) -> None:
    """Remove a root certificate from the system trust store (and NSS, Java).

    The root is found by the name 'install' gave it (--prefix and the serial number), so
    give the same --prefix.

    Examples:

      $ step certificate uninstall root-ca.pem

      $ step certificate uninstall --all root-ca.pem

      $ step certificate uninstall --firefox --java --no-system root-ca.pem
    """
    opts = _options(prefix, java, firefox, no_system, all_, sysroot)
    _report(_apply(crt_file, opts, install=False), crt_file, "removed")
