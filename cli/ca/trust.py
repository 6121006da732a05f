"""Commands that establish and read the CA's trust: bootstrap, root, roots, health."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from cli.ca import ui
from cli.ca.client import CAClient
from cli.ca.defaults import (
    CA_URL_HELP,
    ROOT_HELP,
    defaults_path,
    flag_value,
    require_ca_url,
    require_root,
)
from cli.common import CLIError, check_outputs, step_path, write_output

FINGERPRINT_HELP = "The fingerprint (SHA-256 of the DER) of the targeted root certificate."

# The options the download and query commands share.
_CAUrl = Annotated[str | None, typer.Option("--ca-url", help=CA_URL_HELP)]
_Root = Annotated[str | None, typer.Option("--root", help=ROOT_HELP)]
_Force = Annotated[bool, typer.Option("--force", "-f", help="Overwrite an existing file.")]
_BundleFile = Annotated[
    Path | None, typer.Argument(help="Where to write the bundle (default: stdout).")
]


def _pem(certs: list[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(Encoding.PEM) for c in certs)


def bootstrap_command(
    ca_url: str = typer.Option(..., "--ca-url", help=CA_URL_HELP),
    fingerprint: str = typer.Option(..., "--fingerprint", help=FINGERPRINT_HELP),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite existing files."),
) -> None:
    """Trust a CA: fetch its root by fingerprint and write the client configuration.

    The root is downloaded without TLS verification, its SHA-256 is recomputed and must equal
    --fingerprint; then the CA's own TLS certificate must verify against that root. Only when
    both hold are $STEPPATH/certs/root_ca.crt and $STEPPATH/config/defaults.json written.

    Examples:

      $ step ca bootstrap --ca-url https://ca.internal:9000 \\
          --fingerprint 7dba4dde8502948ff58b09522c9bef1e003497ea3d8a4db1fc9ee46ee572db45
    """
    url = ca_url if "://" in ca_url else "https://" + ca_url
    url = url.rstrip("/")
    root_path = step_path() / "certs" / "root_ca.crt"
    config_path = defaults_path()
    check_outputs([root_path, config_path], force)
    with CAClient(url, insecure=True) as insecure:
        root = insecure.root(fingerprint)
    # Verify the live TLS certificate against the root before writing anything under STEPPATH.
    with tempfile.TemporaryDirectory(prefix="step-bootstrap-") as tmp:
        staging = Path(tmp) / "root.crt"
        staging.write_bytes(_pem([root]))
        with CAClient(url, staging) as trusted:
            trusted.health()
    write_output(root_path, _pem([root]), mode=0o600)
    ui.note(f"The root certificate has been saved in {root_path}.")
    defaults = {"ca-url": url, "fingerprint": fingerprint, "root": str(root_path)}
    write_output(config_path, json.dumps(defaults, indent=2).encode() + b"\n", mode=0o644)
    ui.note(f"The authority configuration has been saved in {config_path}.")


def root_command(
    root_file: Path | None = typer.Argument(
        None, help="Where to write the root (default: stdout)."
    ),
    ca_url: _CAUrl = None,
    fingerprint: str | None = typer.Option(None, "--fingerprint", help=FINGERPRINT_HELP),
    force: _Force = False,
) -> None:
    """Download the root certificate by its fingerprint (GET /root/{sha}).

    Examples:

      $ step ca root root_ca.crt

      $ step ca root --ca-url https://ca.internal:9000 --fingerprint 7dba4dde...db45
    """
    url = require_ca_url(ca_url)
    fp = flag_value(fingerprint, "fingerprint")
    if not fp:
        raise CLIError("'--fingerprint' is required: pass it or run 'step ca bootstrap' first")
    if root_file is not None:
        check_outputs([root_file], force)
    with CAClient(url, insecure=True) as client:
        cert = client.root(fp)
    _write_or_print(root_file, [cert], "The root certificate has been saved in {}.")


def _write_or_print(path: Path | None, certs: list[x509.Certificate], message: str) -> None:
    """Print the bundle, or write it to `path` (already checked with `check_outputs`)."""
    if path is None:
        sys.stdout.write(_pem(certs).decode())
        return
    write_output(path, _pem(certs), mode=0o600)
    ui.note(message.format(path))


def _download_bundle(
    endpoint: str,
    ca_url: str | None,
    root: str | None,
    path: Path | None,
    force: bool,
    message: str,
) -> None:
    """GET a certificate bundle (`/roots`, `/federation`) trusting --root; write or print it."""
    url, root_path = require_ca_url(ca_url), require_root(root)
    if path is not None:
        check_outputs([path], force)
    with CAClient(url, root_path) as client:
        certs = client.cert_list(endpoint)
    _write_or_print(path, certs, message)


def roots_command(
    roots_file: _BundleFile = None,
    ca_url: _CAUrl = None,
    root: _Root = None,
    force: _Force = False,
) -> None:
    """Download the CA's current root certificates (GET /roots), trusting --root.

    Examples:

      $ step ca roots roots.pem

      $ step ca roots
    """
    message = "The root certificate bundle has been saved in {}."
    _download_bundle("/roots", ca_url, root, roots_file, force, message)


def federation_command(
    federation_file: _BundleFile = None,
    ca_url: _CAUrl = None,
    root: _Root = None,
    force: _Force = False,
) -> None:
    """Download the CA's roots and the roots of the CAs it federates with (GET /federation).

    Examples:

      $ step ca federation federation.pem

      $ step ca federation --ca-url https://ca.internal:9000 --root root_ca.crt
    """
    message = "The federation certificate bundle has been saved in {}."
    _download_bundle("/federation", ca_url, root, federation_file, force, message)


def health_command(
    ca_url: _CAUrl = None,
    root: _Root = None,
) -> None:
    """Check that the CA is up: prints `ok`.

    Examples:

      $ step ca health
    """
    with CAClient(require_ca_url(ca_url), require_root(root)) as client:
        typer.echo(client.health())


def provisioner_list_command(
    ca_url: _CAUrl = None,
    root: _Root = None,
) -> None:
    """List the CA's provisioners as JSON (all pages).

    Examples:

      $ step ca provisioner list
    """
    with CAClient(require_ca_url(ca_url), require_root(root)) as client:
        items = client.provisioners()
    typer.echo(json.dumps(items, indent=3))
