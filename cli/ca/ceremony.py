"""`step ca ceremony`: the offline root's commands, run on the root's machine, not the CA's.

`create-root` makes the root key and certificate, `sign-intermediate` signs the appliance's
intermediate CSR (from `step ca init --intermediate-csr`), `verify` checks the ceremony
record's hash chain. Each signing step appends to the record.
"""

from __future__ import annotations

from pathlib import Path

import typer
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from appliance import ceremony, ceremony_record
from cli.ca import ui
from cli.common import CLIError, check_writable
from cli.helptext import StepTyper
from cli.kms import new_key_path, record_path, store_password
from keystores import KeySpec, KeyStoreError, normalize_key_uri, redact_uri, write_atomic
from pki.certs import parse_certificates
from pki.fingerprint import certificate_fingerprint

app = StepTyper(
    help="Key ceremonies: create an offline root, sign an intermediate, verify the record."
)


def _write_out(path: Path, data: bytes, force: bool, command: str) -> None:
    try:
        write_atomic(path, data, 0o644, overwrite=force)
    except FileExistsError:
        raise CLIError(f"step ca ceremony {command}: {path} exists: use '--force'") from None
    except OSError as exc:
        raise CLIError(f"step ca ceremony {command}: cannot write {path}: {exc.strerror}") from None


def _fail(command: str, exc: Exception) -> CLIError:
    return CLIError(f"step ca ceremony {command}: {ceremony_record.key_store_error(exc)}")


def _read_csr(path: Path) -> x509.CertificateSigningRequest:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CLIError(
            f"step ca ceremony sign-intermediate: cannot read {path}: {exc.strerror}"
        ) from None
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_csr(data)
        return x509.load_der_x509_csr(data)
    except ValueError:
        raise CLIError(f"step ca ceremony sign-intermediate: {path} is not a CSR") from None


def _read_cert(path: Path, command: str) -> x509.Certificate:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CLIError(f"step ca ceremony {command}: cannot read {path}: {exc.strerror}") from None
    try:
        return parse_certificates(data)[0]
    except ValueError:
        raise CLIError(f"step ca ceremony {command}: {path} is not a certificate") from None


@app.command(name="create-root")
def create_root_command(
    root_kms: str = typer.Option(..., "--root-kms", help="Key URI of the root key."),
    name: str = typer.Option(..., "--name", help="The PKI name: the root is '<name> Root CA'."),
    out: Path = typer.Option(..., "--out", help="Where to write the root certificate (PEM)."),
    kty: str = typer.Option("EC", "--kty", help="Key type of a new root key: EC, RSA or OKP."),
    crv: str | None = typer.Option(None, "--crv", help="Curve: P-256 (default), P-384, Ed25519."),
    size: int = typer.Option(2048, "--size", help="RSA key size in bits."),
    password_file: Path | None = typer.Option(
        None, "--password-file", help="File with the password of a file root key."
    ),
    record: Path | None = typer.Option(
        None, "--record", help="The ceremony record (default $STEPPATH/ceremony/record.jsonl)."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite the --out file."),
) -> None:
    """Create the root on the offline machine: key (taken if it already exists) and certificate.

    The certificate is step's root profile: subject '<name> Root CA', O '<name>', self-signed,
    10 years, path length 1, keyCertSign+cRLSign. The key is created with --kty/--crv/--size
    unless one is already at the URI (e.g. made by 'step kms create'), which is then used.
    The step is appended to the ceremony record: bring the record (--record on the same
    removable medium) to every ceremony step to keep one chain.

    Examples:

      $ step ca ceremony create-root --name Acme --out /media/usb/root_ca.crt \\
          --root-kms file:/media/usb/root_ca_key --password-file root-pw.txt \\
          --record /media/usb/record.jsonl

      $ M=/usr/lib/softhsm/libsofthsm2.so
      $ step ca ceremony create-root --name Acme --out root_ca.crt --kty EC --crv P-384 \\
          --root-kms "pkcs11:module-path=$M;token=root;id=7330;object=root?pin-source=pin"
    """
    kty = kty.upper()
    curve = crv or ("Ed25519" if kty == "OKP" else "P-256")
    uri = normalize_key_uri(root_kms)
    try:
        spec = KeySpec(kty, curve, size)
    except KeyStoreError as exc:
        raise _fail("create-root", exc) from None
    check_writable(out, record_path(record), new_key_path(uri))
    if out.exists() and not force:
        raise CLIError(f"step ca ceremony create-root: {out} exists: use '--force'")
    password = store_password(uri, password_file, "Please enter the password of the root key")
    try:
        ceremony_record.check_appendable(record_path(record))
        result = ceremony.create_root(uri, name, spec, password)
    except (KeyStoreError, ceremony_record.CeremonyError, OSError) as exc:
        raise _fail("create-root", exc) from None
    cert = result.certificate
    _write_out(out, cert.public_bytes(Encoding.PEM), force, "create-root")
    try:
        ceremony_record.append_entry(
            record_path(record),
            "step ca ceremony create-root",
            key_uris=[uri],
            public_keys=[result.public_key],
            certificates=[cert],
            details={
                "subject": cert.subject.rfc4514_string(),
                "root_key": "created" if result.key_created else "existing",
                "out": str(out.absolute()),
            },
        )
    except (ceremony_record.CeremonyError, OSError) as exc:
        raise _fail("create-root", exc) from None
    existing = "" if result.key_created else " (existing)"
    ui.selected("Root key", redact_uri(uri) + existing)
    ui.selected("Root certificate", str(out))
    ui.selected("Root fingerprint", certificate_fingerprint(cert))


@app.command(name="sign-intermediate")
def sign_intermediate_command(
    csr_file: Path = typer.Argument(..., help="The intermediate's CSR (PEM or DER)."),
    root_kms: str = typer.Option(..., "--root-kms", help="Key URI of the root key."),
    root: Path = typer.Option(..., "--root", help="The root certificate."),
    out: Path = typer.Option(..., "--out", help="Where to write the intermediate (PEM)."),
    name: str | None = typer.Option(
        None, "--name", help="The PKI name (default: the CSR's organization)."
    ),
    password_file: Path | None = typer.Option(
        None, "--password-file", help="File with the password of a file root key."
    ),
    record: Path | None = typer.Option(
        None, "--record", help="The ceremony record (default $STEPPATH/ceremony/record.jsonl)."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite the --out file."),
) -> None:
    """Sign an intermediate CSR with the root key, on the root's machine.

    The CSR's signature must verify and the root key must match the root certificate. The
    certificate is step's intermediate profile: '<name> Intermediate CA', O '<name>', 10
    years, path length 0, keyCertSign+cRLSign, SKI/AKI; only the CSR's public key is taken
    from it. Check the printed public-key SHA-256 against the one 'step ca init
    --intermediate-csr' printed on the appliance before carrying the certificate back.

    Examples:

      $ step ca ceremony sign-intermediate /media/usb/intermediate.csr \\
          --root-kms file:/media/usb/root_ca_key --root /media/usb/root_ca.crt \\
          --out /media/usb/intermediate.crt --password-file root-pw.txt \\
          --record /media/usb/record.jsonl

      $ M=/usr/lib/softhsm/libsofthsm2.so
      $ step ca ceremony sign-intermediate ca.csr --root root_ca.crt --out ca.crt \\
          --root-kms "pkcs11:module-path=$M;token=root;id=7330;object=root?pin-source=pin"
    """
    csr = _read_csr(csr_file)
    root_cert = _read_cert(root, "sign-intermediate")
    uri = normalize_key_uri(root_kms)
    check_writable(out, record_path(record))
    if out.exists() and not force:
        raise CLIError(f"step ca ceremony sign-intermediate: {out} exists: use '--force'")
    password = store_password(uri, password_file, "Please enter the password of the root key")
    try:
        ceremony_record.check_appendable(record_path(record))
        cert, root_public = ceremony.sign_intermediate(csr, uri, root_cert, password, name)
    except (KeyStoreError, ceremony_record.CeremonyError, OSError) as exc:
        raise _fail("sign-intermediate", exc) from None
    _write_out(out, cert.public_bytes(Encoding.PEM), force, "sign-intermediate")
    csr_der = csr.public_bytes(Encoding.DER)
    try:
        ceremony_record.append_entry(
            record_path(record),
            "step ca ceremony sign-intermediate",
            key_uris=[uri],
            public_keys=[root_public],
            certificates=[cert, root_cert],
            details={
                "csr": str(csr_file.absolute()),
                "csr_sha256": ceremony_record.sha256_hex(csr_der),
                "intermediate_public_key_sha256": ceremony_record.public_key_sha256(cert),
                "subject": cert.subject.rfc4514_string(),
                "issuer": cert.issuer.rfc4514_string(),
                "serial": format(cert.serial_number, "x"),
                "out": str(out.absolute()),
            },
        )
    except (ceremony_record.CeremonyError, OSError) as exc:
        raise _fail("sign-intermediate", exc) from None
    ui.selected("Intermediate subject", cert.subject.rfc4514_string())
    ui.selected("Intermediate public key SHA-256", ceremony_record.public_key_sha256(cert))
    ui.selected("Intermediate certificate", str(out))
    ui.selected("Intermediate fingerprint", certificate_fingerprint(cert))


@app.command(name="verify")
def verify_command(
    record: Path | None = typer.Option(
        None, "--record", help="The ceremony record (default $STEPPATH/ceremony/record.jsonl)."
    ),
    expect_head: str | None = typer.Option(
        None,
        "--expect-head",
        help="A head SHA-256 written down at a ceremony: it must still be in the record.",
    ),
) -> None:
    """Check the ceremony record's hash chain.

    Every line must parse, number itself in order, hold the SHA-256 of the line before
    (prev_sha256) and of its own content (entry_sha256). Prints 'OK: N entries, head SHA'
    (the head is the SHA-256 of the last line: write it down to detect a rewritten record
    later with '--expect-head'), or the first broken link, exiting 1.

    Examples:

      $ step ca ceremony verify

      $ step ca ceremony verify --record /media/usb/record.jsonl \\
          --expect-head 3f1c...e09a
    """
    path = record_path(record)
    try:
        summary = ceremony_record.verify_record(path, expect_head)
    except ceremony_record.RecordError as exc:
        raise CLIError(f"step ca ceremony verify: {exc}") from None
    plural = "entry" if summary.entries == 1 else "entries"
    typer.echo(f"OK: {summary.entries} {plural}, head {summary.head_sha256}")
