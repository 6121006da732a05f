"""`step ca sign`: an existing CSR signed by the CA, with a one-time token or, for an ACME
provisioner (or `--acme URL`), through an ACME order."""

from __future__ import annotations

from pathlib import Path

import typer
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from cli.ca import acme_flow, ui
from cli.ca.client import CAClient
from cli.ca.defaults import CA_URL_HELP, ROOT_HELP
from cli.ca.issue import new_token, resolve_token, save_chain
from cli.common import CLIError, check_outputs
from pki.sans import SubjectAltNames


def sign_command(
    csr_file: Path = typer.Argument(..., help="The certificate signing request (PEM)."),
    crt_file: Path = typer.Argument(..., help="Where to write the certificate chain."),
    token: str | None = typer.Option(
        None, "--token", help="A one-time token from 'step ca token'."
    ),
    provisioner: str | None = typer.Option(
        None, "--provisioner", "--issuer", help="The provisioner name to use."
    ),
    password_file: Path | None = typer.Option(
        None,
        "--password-file",
        "--provisioner-password-file",
        help="File with the password that decrypts the provisioner key.",
    ),
    not_before: str | None = typer.Option(None, "--not-before", help="Certificate valid from."),
    not_after: str | None = typer.Option(None, "--not-after", help="Certificate valid until."),
    x5c_cert: Path | None = typer.Option(
        None, "--x5c-cert", help="X5C: the certificate (chain) that authorises the request."
    ),
    x5c_key: Path | None = typer.Option(None, "--x5c-key", help="X5C: the key of --x5c-cert."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite an existing file."),
    acme: str | None = acme_flow.ACME_URL,
    standalone: bool = acme_flow.STANDALONE,
    webroot: Path | None = acme_flow.WEBROOT,
    contact: list[str] = acme_flow.CONTACT,
    http_listen: str = acme_flow.HTTP_LISTEN,
    ca_url: str | None = typer.Option(None, "--ca-url", help=CA_URL_HELP),
    root: str | None = typer.Option(None, "--root", help=ROOT_HELP),
) -> None:
    """Sign an existing CSR with the CA and write the certificate chain.

    Examples:

      $ step ca sign foo.csr foo.crt

      $ step ca sign foo.csr foo.crt --token "$TOKEN"
    """
    try:
        csr = x509.load_pem_x509_csr(csr_file.read_bytes())
    except OSError as exc:
        raise CLIError(f"open {csr_file}: {exc.strerror}") from None
    except ValueError:
        raise CLIError(f"error parsing {csr_file}: not a PEM certificate request") from None
    cn_attrs = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    subject = str(cn_attrs[0].value) if cn_attrs else ""
    try:
        ext = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = SubjectAltNames.of(ext)
        sans = [*names.dns, *(str(ip) for ip in names.ips), *names.emails, *names.uris]
    except x509.ExtensionNotFound:
        sans = []
    if not subject and not sans:
        raise CLIError(f"{csr_file} has neither a common name nor SANs")
    opts = acme_flow.ACMEOptions(standalone, webroot, http_listen, contact, not_before, not_after)
    if acme and not token:  # an ACME directory named by URL: no provisioner involved
        check_outputs([crt_file], force)
        acme_flow.sign(acme, None, root, csr, crt_file, opts)
        return
    url, root_path, _ = resolve_token(token, ca_url, root)
    check_outputs([crt_file], force)
    with CAClient(url, root_path) as client:
        try:
            ott = token or new_token(
                client,
                root_path,
                subject or sans[0],
                sans,
                provisioner,
                None,
                password_file,
                None,
                None,
                options={"x5c_cert": x5c_cert, "x5c_key": x5c_key},
            )
        except acme_flow.ACMETokenError as exc:  # an ACME provisioner: an order, no token
            acme_flow.sign(url, exc.name, root_path, csr, crt_file, opts)
            return
        ui.selected("CA", url)
        resp = client.sign(
            csr.public_bytes(Encoding.PEM).decode(), ott, not_before or "", not_after or ""
        )
    save_chain(resp, crt_file)
    ui.selected("Certificate", str(crt_file))
