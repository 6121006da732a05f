"""`step ca token`, `step ca certificate` and `step ca sign`: the JWK provisioner flow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import (
    Encoding,
)
from cryptography.x509.oid import NameOID

from cli.ca import acme_flow, ui
from cli.ca.certfiles import load_pair
from cli.ca.client import CAClient
from cli.ca.cloud_flows import default_sans
from cli.ca.defaults import CA_URL_HELP, ROOT_HELP, flag_value, require_ca_url, require_root
from cli.ca.flows import TokenRequest, choose_provisioner, make_token
from cli.ca.oidc_flow import csr_names as oidc_csr_names
from cli.ca.renewal import renew_token
from cli.ca.tokens import audience, token_window, unverified_claims
from cli.common import CLIError, check_outputs, check_writable, write_output
from cli.crypto_keyio import private_pem
from keystores import KeySpec, KeyStoreError
from pki.fingerprint import certificate_fingerprint
from pki.sans import SubjectAltNames


def _root_fingerprint(root: Path) -> str:
    try:
        cert = x509.load_pem_x509_certificates(root.read_bytes())[0]
    except (OSError, ValueError, IndexError):
        raise CLIError(f"error reading root certificate {root}") from None
    return certificate_fingerprint(cert)


def new_token(
    client: CAClient,
    root: Path,
    subject: str,
    sans: list[str],
    provisioner: str | None,
    kid: str | None,
    password_file: Path | None,
    not_before: str | None,
    not_after: str | None,
    path: str = "/1.0/sign",
    options: dict[str, Any] | None = None,
) -> str:
    """A token from the chosen provisioner, by that provisioner type's flow."""
    nbf, exp = token_window(not_before, not_after)
    kind = "X5C" if options and options.get("x5c_cert") else None
    prov = choose_provisioner(client.provisioners(), provisioner, kid, kind)
    request = TokenRequest(
        client=client,
        root=root,
        root_fingerprint=_root_fingerprint(root),
        subject=subject,
        sans=sans,
        audience=audience(client.ca_url, path),
        not_before=nbf,
        expires=exp,
        password_file=password_file,
        options=options or {},
    )
    return make_token(request, prov)


def token_command(
    subject: str = typer.Argument(..., help="The subject (common name) of the certificate."),
    san: list[str] = typer.Option([], "--san", help="A SAN for the certificate (repeatable)."),
    provisioner: str | None = typer.Option(
        None, "--provisioner", "--issuer", help="The provisioner name to use."
    ),
    kid: str | None = typer.Option(None, "--kid", help="The provisioner key id to use."),
    password_file: Path | None = typer.Option(
        None,
        "--password-file",
        "--provisioner-password-file",
        help="File with the password that decrypts the provisioner key.",
    ),
    not_before: str | None = typer.Option(
        None, "--not-before", help="Token valid from (RFC 3339 time or duration like 5m)."
    ),
    not_after: str | None = typer.Option(
        None, "--not-after", help="Token valid until (RFC 3339 time or duration, default 5m)."
    ),
    output_file: Path | None = typer.Option(None, "--output-file", help="Write the token here."),
    revoke: bool = typer.Option(
        False, "--revoke", help="A token to revoke the certificate whose serial is SUBJECT."
    ),
    renew: bool = typer.Option(
        False, "--renew", help="A renewal token signed by --x5c-cert/--x5c-key (no provisioner)."
    ),
    x5c_cert: Path | None = typer.Option(
        None, "--x5c-cert", help="Certificate (chain) for an X5C provisioner or --renew."
    ),
    x5c_key: Path | None = typer.Option(None, "--x5c-key", help="The key of --x5c-cert."),
    ssh: bool = typer.Option(False, "--ssh", help="A token for an SSH certificate."),
    host: bool = typer.Option(False, "--host", help="With --ssh: for a host certificate."),
    principal: list[str] = typer.Option(
        [], "--principal", "-n", help="With --ssh: a principal the token allows (repeatable)."
    ),
    ca_url: str | None = typer.Option(None, "--ca-url", help=CA_URL_HELP),
    root: str | None = typer.Option(None, "--root", help=ROOT_HELP),
) -> None:
    """Generate a one-time token that authorises one certificate for SUBJECT.

    Lists the CA's provisioners, fetches the chosen JWK provisioner's encrypted key, decrypts
    it with the password (prompting when no file is given) and signs the token. The token goes
    to stdout (or --output-file, 0600); it is valid for 5 minutes unless asked otherwise.

    Examples:

      $ TOKEN=$(step ca token foo.internal --san foo.internal --san 10.0.0.5)

      $ step ca token foo.internal --provisioner admin --password-file pw.txt --not-after 1m

      $ step ca token 1234567890 --revoke --password-file pw.txt

      $ step ca token foo.internal --renew --x5c-cert foo.crt --x5c-key foo.key

      $ step ca token joe@example.com --ssh --principal joe
    """
    url, root_path = require_ca_url(ca_url), require_root(root)
    if revoke and renew:
        raise CLIError("flags '--revoke' and '--renew' are mutually exclusive")
    for flag, given in (("--ssh", ssh), ("--host", host), ("--principal", bool(principal))):
        if given and san:
            raise CLIError(f"flag '{flag}' is incompatible with '--san'")
    if (host or principal) and not ssh:
        raise CLIError(f"flag '{'--host' if host else '--principal'}' requires the '--ssh' flag")
    if ssh and renew:
        raise CLIError("flag '--renew' with '--ssh' needs an SSHPOP token: use 'step ssh renew'")
    options: dict[str, Any] = {"x5c_cert": x5c_cert, "x5c_key": x5c_key}
    path = "/1.0/revoke" if revoke else "/1.0/sign"
    if ssh:
        path = "/1.0/ssh/revoke" if revoke else "/1.0/ssh/sign"
        if not revoke:
            options["ssh"] = {
                "certType": "host" if host else "user",
                "keyID": subject,
                "principals": list(principal),
                "validAfter": "",
                "validBefore": "",
            }
    check_writable(output_file)
    if renew:
        if x5c_cert is None or x5c_key is None:
            raise CLIError("flag '--renew' requires '--x5c-cert' and '--x5c-key'")
        token = renew_token(load_pair(x5c_cert, x5c_key), url, "/1.0/renew")
    else:
        with CAClient(url, root_path) as client:
            token = new_token(
                client,
                root_path,
                subject,
                [] if revoke else san,
                provisioner,
                kid,
                password_file,
                not_before,
                not_after,
                path=path,
                options=options,
            )
    if output_file:
        write_output(output_file, token.encode(), mode=0o600)
    else:
        typer.echo(token)


def key_spec(kty: str, curve: str | None, size: int) -> KeySpec:
    try:
        if kty == "OKP":
            return KeySpec("OKP", curve or "Ed25519")
        return KeySpec(kty, curve or "P-256", size)
    except KeyStoreError as exc:
        raise CLIError(str(exc)) from None


def make_csr(subject: str, sans: list[str], key: Any) -> x509.CertificateSigningRequest:
    names = SubjectAltNames.split(sans)
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names.general_names()), False)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)


def resolve_token(
    token: str | None, ca_url: str | None, root: str | None
) -> tuple[str, Path, dict[str, Any] | None]:
    """ca-url and root for a request, reading the audience of a given token if needed."""
    claims = unverified_claims(token) if token else None
    url = flag_value(ca_url, "ca-url")
    if not url and claims:
        aud = claims.get("aud")
        aud0 = aud[0] if isinstance(aud, list) and aud else aud
        if isinstance(aud0, str) and "://" in aud0:
            url = audience(aud0, "")
    return require_ca_url(url), require_root(root), claims


def _disables_custom_sans(client: CAClient, claims: dict[str, Any]) -> bool:
    """Whether the cloud provisioner a token is for (its audience fragment) restricts SANs."""
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    fragments = {str(a).partition("#")[2] for a in auds if isinstance(a, str) and "#" in a}
    for prov in client.provisioners():
        kind = str(prov.get("type", "")).lower()
        if f"{kind}/{prov.get('name')}" in fragments or (
            kind == "azure" and prov.get("tenantID") == claims.get("tid")
        ):
            return bool(prov.get("disableCustomSANs", False))
    return False


def save_chain(resp: dict[str, Any], crt_file: Path) -> None:
    chain = resp.get("certChain") or [resp.get("crt"), resp.get("ca")]
    data = "".join(str(c) for c in chain if c).encode()
    write_output(crt_file, data, mode=0o600)


def certificate_command(
    subject: str = typer.Argument(..., help="The subject (common name) of the certificate."),
    crt_file: Path = typer.Argument(..., help="Where to write the certificate chain."),
    key_file: Path | None = typer.Argument(
        None, help="Where to write the private key (unencrypted); none with --attestation-uri."
    ),
    token: str | None = typer.Option(
        None, "--token", help="A one-time token from 'step ca token'."
    ),
    san: list[str] = typer.Option([], "--san", help="A SAN for the certificate (repeatable)."),
    provisioner: str | None = typer.Option(
        None, "--provisioner", "--issuer", help="The provisioner name to use."
    ),
    password_file: Path | None = typer.Option(
        None,
        "--password-file",
        "--provisioner-password-file",
        help="File with the password that decrypts the provisioner key.",
    ),
    not_before: str | None = typer.Option(
        None, "--not-before", help="Certificate valid from (RFC 3339 time or duration)."
    ),
    not_after: str | None = typer.Option(
        None, "--not-after", help="Certificate valid until (RFC 3339 time or duration, e.g. 2h)."
    ),
    kty: str = typer.Option("EC", "--kty", help="Key type: EC, RSA or OKP."),
    curve: str | None = typer.Option(None, "--curve", "--crv", help="EC curve or OKP curve."),
    size: int = typer.Option(2048, "--size", help="RSA key size in bits."),
    x5c_cert: Path | None = typer.Option(
        None, "--x5c-cert", help="X5C: the certificate (chain) that authorises the request."
    ),
    x5c_key: Path | None = typer.Option(None, "--x5c-key", help="X5C: the key of --x5c-cert."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite existing files."),
    metadata_url: str | None = typer.Option(
        None, "--metadata-url", help="AWS/GCP/Azure: the instance metadata service's URL."
    ),
    acme: str | None = acme_flow.ACME_URL,
    standalone: bool = acme_flow.STANDALONE,
    webroot: Path | None = acme_flow.WEBROOT,
    contact: list[str] = acme_flow.CONTACT,
    http_listen: str = acme_flow.HTTP_LISTEN,
    attestation_uri: str | None = acme_flow.ATTESTATION_URI,
    ca_url: str | None = typer.Option(None, "--ca-url", help=CA_URL_HELP),
    root: str | None = typer.Option(None, "--root", help=ROOT_HELP),
) -> None:
    """Get a certificate for SUBJECT: new key, CSR, POST /sign; writes the chain and the key.

    Without --token, runs the provisioner flow of 'step ca token' first. The certificate file
    holds the leaf and the intermediate; the key file is written unencrypted with mode 0600.

    Examples:

      $ step ca certificate foo.internal foo.crt foo.key --san foo.internal --san 10.0.0.5

      $ step ca certificate foo.internal foo.crt foo.key --token "$TOKEN"

      $ step ca certificate svc svc.crt svc.key --kty RSA --size 3072 --not-after 2h

      $ step ca certificate app.test app.crt app.key --provisioner acme --webroot /srv/www

      $ step ca certificate 12345678 yk.crt --provisioner acme-da \
          --attestation-uri 'yubikey:slot-id=9a?pin-source=pin.txt'
    """
    opts = acme_flow.ACMEOptions(
        standalone, webroot, http_listen, contact, not_before, not_after, attestation_uri
    )
    spec = key_spec(kty, curve, size)
    if key_file is None and not attestation_uri:  # the key stays on the device with one
        raise CLIError("Missing argument '<key-file>'.")
    outputs = [crt_file] if key_file is None else [crt_file, key_file]
    if acme and not token:  # an ACME directory named by URL: no provisioner involved
        check_outputs(outputs, force)
        acme_flow.certificate(acme, None, root, subject, san, (crt_file, key_file), spec, opts)
        return
    url, root_path, claims = resolve_token(token, ca_url, root)
    check_outputs(outputs, force)
    sans = list(san)
    with CAClient(url, root_path) as client:
        if token:
            assert claims is not None
            # JWK/X5C tokens name the subject (cloud and OIDC tokens carry the instance or
            # user id in `sub`, so there is nothing to compare).
            if "sans" in claims and claims.get("sub") != subject:
                raise CLIError(
                    f"token subject '{claims.get('sub')}' and argument '{subject}' do not match"
                )
            token_sans = claims.get("sans")
            if isinstance(token_sans, list):
                sans = [str(s) for s in token_sans]
            ott = token
        else:
            try:
                ott = new_token(
                    client,
                    root_path,
                    subject,
                    sans,
                    provisioner,
                    None,
                    password_file,
                    None,
                    None,
                    options={
                        "x5c_cert": x5c_cert,
                        "x5c_key": x5c_key,
                        "metadata_url": metadata_url,
                    },
                )
            except acme_flow.ACMETokenError as exc:  # an ACME provisioner: an order, no token
                files = (crt_file, key_file)
                acme_flow.certificate(url, exc.name, root_path, subject, sans, files, spec, opts)
                return
            sans = sans or [subject]
        if key_file is None:
            raise CLIError("--attestation-uri needs an ACME provisioner")
        ui.selected("CA", url)
        token_claims = unverified_claims(ott)
        if "sans" not in token_claims and token_claims.get("email"):  # an OIDC ID token
            subject, sans = oidc_csr_names(token_claims, subject, list(san))
        elif not san:  # step's default CSR names for an instance identity token
            cloud = default_sans(ott, subject, _disables_custom_sans(client, token_claims))
            if cloud is not None:
                sans = cloud
        key = spec.generate()
        csr = make_csr(subject, sans, key)
        resp = client.sign(
            csr.public_bytes(Encoding.PEM).decode(), ott, not_before or "", not_after or ""
        )
    write_output(key_file, private_pem(key, None), mode=0o600)
    save_chain(resp, crt_file)
    ui.selected("Certificate", str(crt_file))
    ui.selected("Private Key", str(key_file))
