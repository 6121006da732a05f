"""`step certificate verify` (cli.verify): path validation, --host, CRL and OCSP checks.

A root -> intermediate -> leaf chain is built here with `cryptography`; CRLs and OCSP
responses are served from a threaded http.server on 127.0.0.1 and built per request, so the
OCSP nonce can be echoed (or not, or wrongly).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import re
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID
from typer.testing import CliRunner

from cli.certificate import app
from cli.verify_hostname import go_hostname_problem
from cli.verify_inputs import Cert
from tests.http_server import QuietServer, serve

runner = CliRunner()
NOW = datetime.datetime.now(datetime.UTC)
HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)

Key = ec.EllipticCurvePrivateKey


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Verify Test"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _key() -> Key:
    return ec.generate_private_key(ec.SECP256R1())


def _ca(
    subject: str,
    key: Key,
    issuer: x509.Certificate | None,
    issuer_key: Key,
    *,
    not_before: datetime.datetime = NOW - DAY,
    not_after: datetime.datetime = NOW + 365 * DAY,
    path_length: int | None = None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer.subject if issuer else _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass
class PKI:
    root: x509.Certificate
    root_key: Key
    intermediate: x509.Certificate
    intermediate_key: Key
    leaf_key: Key
    directory: Path
    serial: int = 1000

    def write(self, name: str, *certs: x509.Certificate) -> str:
        path = self.directory / name
        path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
        return str(path)

    @property
    def roots(self) -> str:
        return self.write("root.crt", self.root)

    def leaf(
        self,
        *,
        crl: list[str] | None = None,
        ocsp_urls: list[str] | None = None,
        not_before: datetime.datetime = NOW - HOUR,
        not_after: datetime.datetime = NOW + DAY,
        sans: list[x509.GeneralName] | None = None,
        issuer: x509.Certificate | None = None,
        issuer_key: Key | None = None,
    ) -> x509.Certificate:
        self.serial += 1
        names = (
            sans
            if sans is not None
            else [
                x509.DNSName("leaf.example.com"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            ]
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name("leaf.example.com"))
            .issuer_name((issuer or self.intermediate).subject)
            .public_key(self.leaf_key.public_key())
            .serial_number(self.serial)
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    (issuer_key or self.intermediate_key).public_key()
                ),
                critical=False,
            )
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        if crl:
            points = [
                x509.DistributionPoint([x509.UniformResourceIdentifier(u)], None, None, None)
                for u in crl
            ]
            builder = builder.add_extension(x509.CRLDistributionPoints(points), critical=False)
        if ocsp_urls:
            access = [
                x509.AccessDescription(
                    AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(u)
                )
                for u in ocsp_urls
            ]
            builder = builder.add_extension(x509.AuthorityInformationAccess(access), critical=False)
        return builder.sign(issuer_key or self.intermediate_key, hashes.SHA256())

    def chain_file(self, leaf: x509.Certificate, name: str = "chain.crt") -> str:
        return self.write(name, leaf, self.intermediate)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    root_key, intermediate_key = _key(), _key()
    root = _ca("Verify Root CA", root_key, None, root_key, path_length=1)
    intermediate = _ca("Verify Intermediate CA", intermediate_key, root, root_key, path_length=0)
    return PKI(root, root_key, intermediate, intermediate_key, _key(), tmp_path_factory.mktemp("v"))


def _invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["verify", *args])
    return result.exit_code, result.stdout, result.stderr


# A CRL and OCSP server -------------------------------------------------------------------------


@dataclass
class Responder:
    pki: PKI
    base: str = ""
    revoked: set[int] = field(default_factory=set)
    requests: list[tuple[str, str, bytes]] = field(default_factory=list)
    rogue_key: Key = field(default_factory=_key)
    delegate_key: Key = field(default_factory=_key)

    def url(self, path: str) -> str:
        return f"{self.base}/{path}"

    def crl(self, mode: str) -> bytes:
        pki = self.pki
        last, following = NOW - HOUR, NOW + DAY
        if mode == "expired":
            last, following = NOW - 2 * DAY, NOW - HOUR
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(pki.intermediate.subject)
            .last_update(last)
            .next_update(following)
        )
        serials = {424242} | (self.revoked if mode == "revoked" else set())
        for serial in sorted(serials):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(NOW - HOUR)
                .build()
            )
        key = self.rogue_key if mode == "badsig" else pki.intermediate_key
        crl = builder.sign(key, hashes.SHA256())
        encoding = serialization.Encoding.PEM if mode == "pem" else serialization.Encoding.DER
        return crl.public_bytes(encoding)

    def delegate(self, *, ocsp_signing: bool) -> x509.Certificate:
        pki = self.pki
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name("Verify OCSP Responder"))
            .issuer_name(pki.intermediate.subject)
            .public_key(self.delegate_key.public_key())
            .serial_number(77)
            .not_valid_before(NOW - DAY)
            .not_valid_after(NOW + DAY)
        )
        if ocsp_signing:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False
            )
        return builder.sign(pki.intermediate_key, hashes.SHA256())

    def ocsp(self, mode: str, body: bytes) -> bytes:
        pki = self.pki
        if mode == "unauthorized":
            return ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.UNAUTHORIZED
            ).public_bytes(serialization.Encoding.DER)
        request = ocsp.load_der_ocsp_request(body)
        nonce = request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        status = {
            "revoked": ocsp.OCSPCertStatus.REVOKED,
            "unknown": ocsp.OCSPCertStatus.UNKNOWN,
        }.get(mode, ocsp.OCSPCertStatus.GOOD)
        this_update, next_update = NOW - HOUR, NOW + DAY
        if mode == "expired":
            this_update, next_update = NOW - 2 * DAY, NOW - HOUR
        builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
            issuer_name_hash=request.issuer_name_hash,
            issuer_key_hash=request.issuer_key_hash,
            serial_number=request.serial_number,
            algorithm=request.hash_algorithm,
            cert_status=status,
            this_update=this_update,
            next_update=next_update,
            revocation_time=NOW - HOUR if status == ocsp.OCSPCertStatus.REVOKED else None,
            revocation_reason=None,
        )
        signer_cert, signer_key = pki.intermediate, pki.intermediate_key
        if mode.startswith("delegated"):
            signer_cert = self.delegate(ocsp_signing=mode == "delegated")
            signer_key = self.delegate_key
            builder = builder.certificates([signer_cert])
        encoding = (
            ocsp.OCSPResponderEncoding.NAME if mode == "byname" else ocsp.OCSPResponderEncoding.HASH
        )
        builder = builder.responder_id(encoding, signer_cert)
        if mode == "nonce":
            builder = builder.add_extension(x509.OCSPNonce(b"\x01" * 16), critical=False)
        elif mode != "nononce":
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        response = builder.sign(signer_key, hashes.SHA256())
        der = response.public_bytes(serialization.Encoding.DER)
        if mode == "badsig":  # the same response with one bit of its signature flipped
            signature = response.signature
            der = der.replace(signature, signature[:-1] + bytes([signature[-1] ^ 1]))
        return der


class _Handler(BaseHTTPRequestHandler):
    responder: Responder

    def log_message(self, format: str, *args: object) -> None:
        del format, args

    def _reply(self, code: int, body: bytes, kind: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        responder = type(self).responder
        responder.requests.append(("GET", self.path, b""))
        parts = self.path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == "crl" and parts[1] != "missing":
            self._reply(200, responder.crl(parts[1]), "application/pkix-crl")
        else:
            self._reply(404, b"not found\n", "text/plain")

    def do_POST(self) -> None:
        responder = type(self).responder
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        responder.requests.append(("POST", self.path, body))
        responder.requests.append(("Content-Type", self.headers.get("Content-Type", ""), b""))
        parts = self.path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == "ocsp":
            self._reply(200, responder.ocsp(parts[1], body), "application/ocsp-response")
        else:
            self._reply(404, b"not found\n", "text/plain")


@pytest.fixture
def responder(pki: PKI) -> Iterator[Responder]:
    state = Responder(pki)
    handler = type("Handler", (_Handler,), {"responder": state})
    server = QuietServer(("127.0.0.1", 0), handler)
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    with serve(server, 0.05):
        yield state


def _closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port: int = probe.getsockname()[1]
    return port


# Path validation -------------------------------------------------------------------------------


def test_valid_chain_prints_nothing(pki: PKI) -> None:
    chain = pki.chain_file(pki.leaf())
    assert _invoke(chain, "--roots", pki.roots) == (0, "", "")
    code, out, err = _invoke(chain, "--roots", pki.roots, "--verbose")
    assert (code, err) == (0, "")
    assert out == "certificate validated against roots\ncertficiate is valid\n"


def test_system_store_is_the_default(
    pki: PKI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain = pki.chain_file(pki.leaf())
    monkeypatch.setenv("SSL_CERT_FILE", pki.roots)
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    assert _invoke(chain) == (0, "", "")
    other_key = _key()
    monkeypatch.setenv(
        "SSL_CERT_FILE", pki.write("other.crt", _ca("Other", other_key, None, other_key))
    )
    code, out, err = _invoke(chain)
    assert (code, out) == (1, "")
    assert err == "failed to verify certificate: x509: certificate signed by unknown authority\n"


def test_expired_and_not_yet_valid_leaf(pki: PKI) -> None:
    expired = pki.chain_file(pki.leaf(not_before=NOW - 2 * DAY, not_after=NOW - DAY))
    code, out, err = _invoke(expired, "--roots", pki.roots)
    assert (code, out) == (1, "")
    after = (NOW - DAY).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert re.fullmatch(
        "failed to verify certificate: x509: certificate has expired or is not yet valid: "
        rf"current time \S+ is after {after}\n",
        err,
    )
    future = pki.chain_file(pki.leaf(not_before=NOW + DAY, not_after=NOW + 2 * DAY))
    code, _, err = _invoke(future, "--roots", pki.roots)
    before = (NOW + DAY).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert code == 1
    assert re.fullmatch(rf".*: current time \S+ is before {before}\n", err)


def test_wrong_root(pki: PKI) -> None:
    chain = pki.chain_file(pki.leaf())
    other_key = _key()
    other = pki.write("other-root.crt", _ca("Another Root", other_key, None, other_key))
    code, out, err = _invoke(chain, "--roots", other)
    assert (code, out) == (1, "")
    assert err == "failed to verify certificate: x509: certificate signed by unknown authority\n"
    # A root with the right name but another key: Go's hint names the candidate.
    impostor_key = _key()
    impostor = pki.write("impostor.crt", _ca("Verify Root CA", impostor_key, None, impostor_key))
    code, _, err = _invoke(chain, "--roots", impostor)
    assert code == 1
    assert err == (
        "failed to verify certificate: x509: certificate signed by unknown authority "
        '(possibly because of "x509: ECDSA verification failure" while trying to verify '
        'candidate authority certificate "Verify Root CA")\n'
    )


def test_missing_and_expired_intermediate(pki: PKI) -> None:
    leaf = pki.leaf()
    code, _, err = _invoke(pki.write("leaf-only.crt", leaf), "--roots", pki.roots)
    assert (code, err) == (
        1,
        "failed to verify certificate: x509: certificate signed by unknown authority\n",
    )
    old = _ca(
        "Verify Intermediate CA",
        pki.intermediate_key,
        pki.root,
        pki.root_key,
        not_before=NOW - 3 * DAY,
        not_after=NOW - 2 * DAY,
    )
    code, _, err = _invoke(pki.write("old-chain.crt", leaf, old), "--roots", pki.roots)
    assert code == 1
    assert re.fullmatch(
        "failed to verify certificate: x509: certificate has expired or is not yet valid: "
        r"current time \S+ is after \S+Z\n",
        err,
    )


def test_intermediate_and_root_verify_as_leaves(pki: PKI) -> None:
    assert _invoke(pki.write("int.crt", pki.intermediate), "--roots", pki.roots) == (0, "", "")
    assert _invoke(pki.roots, "--roots", pki.roots) == (0, "", "")


def test_host(pki: PKI) -> None:
    chain = pki.chain_file(pki.leaf())
    for host in ("leaf.example.com", "LEAF.example.com.", "127.0.0.1", "[127.0.0.1]"):
        code, out, err = _invoke(chain, "--roots", pki.roots, "--host", host, "--verbose")
        assert (code, err) == (0, ""), host
        assert out == (
            "certificate validated against roots\ncertificate host name validated\n"
            "certficiate is valid\n"
        )
    code, out, err = _invoke(chain, "--roots", pki.roots, "--host", "wrong.example.com")
    assert (code, out) == (1, "")
    assert err == (
        "failed to verify certificate: x509: certificate is valid for leaf.example.com, "
        "not wrong.example.com\n"
    )
    code, _, err = _invoke(chain, "--roots", pki.roots, "--host", "10.0.0.1")
    assert err == (
        "failed to verify certificate: x509: certificate is valid for 127.0.0.1, not 10.0.0.1\n"
    )


def test_host_messages_follow_go() -> None:
    def cert(sans: list[x509.GeneralName], cn: str = "leaf.example.com") -> Cert:
        key = _key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(_name("Issuer"))
            .public_key(key.public_key())
            .serial_number(1)
            .not_valid_before(NOW - DAY)
            .not_valid_after(NOW + DAY)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return Cert.from_der(
            builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
        )

    wildcard = cert([x509.DNSName("*.example.com"), x509.DNSName("under_score.test")])
    assert go_hostname_problem(wildcard, "a.example.com") is None
    assert go_hostname_problem(wildcard, "under_score.test") is None
    assert go_hostname_problem(wildcard, "a.b.example.com") == (
        "x509: certificate is valid for *.example.com, under_score.test, not a.b.example.com"
    )
    no_san = cert([])
    assert go_hostname_problem(no_san, "leaf.example.com") == (
        "x509: certificate relies on legacy Common Name field, use SANs instead"
    )
    assert go_hostname_problem(no_san, "other.example.com") == (
        "x509: certificate is not valid for any names, but wanted to match other.example.com"
    )
    assert go_hostname_problem(no_san, "::1") == (
        "x509: cannot validate certificate for ::1 because it doesn't contain any IP SANs"
    )
    v6 = cert([x509.IPAddress(ipaddress.ip_address("::ffff:10.1.2.3"))])
    assert go_hostname_problem(v6, "10.1.2.3") is None


def test_host_without_san(pki: PKI) -> None:
    chain = pki.chain_file(pki.leaf(sans=[]))
    assert _invoke(chain, "--roots", pki.roots) == (0, "", "")
    code, _, err = _invoke(chain, "--roots", pki.roots, "--host", "leaf.example.com")
    assert (code, err) == (
        1,
        "failed to verify certificate: x509: certificate relies on legacy Common Name field, "
        "use SANs instead\n",
    )


def test_file_errors(pki: PKI, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.crt")
    assert _invoke(missing) == (1, "", f"open {missing} failed: no such file or directory\n")
    der = tmp_path / "leaf.der"
    der.write_bytes(pki.leaf().public_bytes(serialization.Encoding.DER))
    assert _invoke(str(der)) == (1, "", f"{der} contains an invalid PEM block\n")
    key = tmp_path / "key.pem"
    key.write_bytes(
        pki.leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    assert _invoke(str(key)) == (1, "", f"{key} contains no PEM certificate blocks\n")
    code, _, err = _invoke(pki.chain_file(pki.leaf()), "--roots", str(tmp_path / "nope.crt"))
    assert code == 1
    assert err.startswith("failure to load root certificate pool from input path ")


# CRL -------------------------------------------------------------------------------------------


def test_crl_good(pki: PKI, responder: Responder) -> None:
    url = responder.url("crl/good")
    chain = pki.chain_file(pki.leaf(crl=[url]))
    assert _invoke(chain, "--roots", pki.roots, "--verify-crl") == (0, "", "")
    code, out, err = _invoke(chain, "--roots", pki.roots, "--verify-crl", "--verbose")
    assert (code, err) == (0, "")
    assert out == (
        "certificate validated against roots\n"
        f"certificate not revoked in CRL {url}\n"
        "certficiate is valid\n"
    )
    # A PEM-encoded CRL is accepted too.
    pem_chain = pki.chain_file(pki.leaf(crl=[responder.url("crl/pem")]))
    assert _invoke(pem_chain, "--roots", pki.roots, "--verify-crl") == (0, "", "")


def test_crl_revoked(pki: PKI, responder: Responder) -> None:
    url = responder.url("crl/revoked")
    leaf = pki.leaf(crl=[url])
    responder.revoked.add(leaf.serial_number)
    code, out, err = _invoke(pki.chain_file(leaf), "--roots", pki.roots, "--verify-crl")
    assert (code, out, err) == (1, "", f"certificate marked as revoked in CRL {url}\n")


def test_crl_expired_and_bad_signature_are_not_trusted(pki: PKI, responder: Responder) -> None:
    for mode, detail in (
        ("expired", "error validating the CRL: CRL {url} expired at "),
        (
            "badsig",
            "error validating the CRL against the CA issuer: x509: ECDSA verification failure",
        ),
    ):
        url = responder.url(f"crl/{mode}")
        chain = pki.chain_file(pki.leaf(crl=[url]))
        code, out, err = _invoke(chain, "--roots", pki.roots, "--verify-crl")
        assert (code, out) == (1, "")
        assert err == "could not verify certificate against CRL distribution point(s)\n"
        code, out, err = _invoke(chain, "--roots", pki.roots, "--verify-crl", "--verbose")
        assert code == 1
        assert out.startswith(detail.format(url=url)), out
        assert out.count("\n") == 1
        assert err == "could not verify certificate against CRL distribution point(s)\n"


def test_crl_next_endpoint_after_failures(pki: PKI, responder: Responder) -> None:
    refused = f"http://127.0.0.1:{_closed_port()}/crl"
    missing, good = responder.url("crl/missing"), responder.url("crl/good")
    chain = pki.chain_file(pki.leaf(crl=[refused, missing, good]))
    code, out, err = _invoke(chain, "--roots", pki.roots, "--verify-crl", "--verbose")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith(f'error downloading crl: Get "{refused}": ')
    assert lines[1:] == [
        "error downloading crl: status code 404",
        "certificate validated against roots",
        f"certificate not revoked in CRL {good}",
        "certficiate is valid",
    ]


def test_crl_missing_extension_and_issuing_ca(pki: PKI, responder: Responder) -> None:
    chain = pki.chain_file(pki.leaf())
    code, _, err = _invoke(chain, "--roots", pki.roots, "--verify-crl")
    assert (code, err) == (1, "CRL distribution endpoint not found in certificate\n")
    url = responder.url("crl/good")
    chain = pki.chain_file(pki.leaf(crl=[url]))
    issuer = pki.write("issuer.crt", pki.intermediate)
    args = (chain, "--roots", pki.roots, "--verify-crl", "--issuing-ca", issuer)
    assert _invoke(*args) == (0, "", "")
    # The wrong issuer: the CRL does not verify, so no endpoint decides.
    code, _, err = _invoke(*args[:-1], pki.roots)
    assert (code, err) == (1, "could not verify certificate against CRL distribution point(s)\n")


@contextlib.contextmanager
def _https(responder: Responder, issuer: x509.Certificate, issuer_key: Key) -> Iterator[str]:
    """The responder's endpoints over HTTPS, with a server certificate `issuer` signed."""
    key = _key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - HOUR)
        .not_valid_after(NOW + DAY)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(issuer_key, hashes.SHA256())
    )
    pki = responder.pki
    chain = pki.write(f"https-{cert.serial_number}.crt", cert, issuer)
    key_file = pki.directory / f"https-{cert.serial_number}.key"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with _tls_server(responder, chain, str(key_file)) as port:
        yield f"https://127.0.0.1:{port}"


def test_crl_over_https_is_verified_against_roots(pki: PKI, responder: Responder) -> None:
    with _https(responder, pki.intermediate, pki.intermediate_key) as base:
        url = f"{base}/crl/good"
        chain = pki.chain_file(pki.leaf(crl=[url]))
        assert _invoke(chain, "--roots", pki.roots, "--verify-crl") == (0, "", "")
    other_key = _key()
    other = _ca("Other HTTPS CA", other_key, None, other_key)
    with _https(responder, other, other_key) as base:
        url = f"{base}/crl/good"
        chain = pki.chain_file(pki.leaf(crl=[url]))
        code, out, err = _invoke(chain, "--roots", pki.roots, "--verify-crl", "--verbose")
        assert code == 1
        assert out.startswith(f'error downloading crl: Get "{url}": ')
        assert "CERTIFICATE_VERIFY_FAILED" in out
        assert err == "could not verify certificate against CRL distribution point(s)\n"


# OCSP ------------------------------------------------------------------------------------------


def test_ocsp_good_and_request_shape(pki: PKI, responder: Responder) -> None:
    url = responder.url("ocsp/good")
    leaf = pki.leaf(ocsp_urls=[url])
    chain = pki.chain_file(leaf)
    code, out, err = _invoke(chain, "--roots", pki.roots, "--verify-ocsp", "--verbose")
    assert (code, err) == (0, "")
    assert out == (
        "certificate validated against roots\n"
        f"certificate status is good according OCSP {url}\n"
        "certficiate is valid\n"
    )
    method, path, body = responder.requests[0]
    assert (method, path) == ("POST", "/ocsp/good")
    assert responder.requests[1][:2] == ("Content-Type", "application/ocsp-request")
    request = ocsp.load_der_ocsp_request(body)
    assert request.serial_number == leaf.serial_number
    assert isinstance(request.hash_algorithm, hashes.SHA1)
    nonce = request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    assert len(nonce) == 16
    for mode in ("byname", "nononce", "delegated"):
        chain = pki.chain_file(pki.leaf(ocsp_urls=[responder.url(f"ocsp/{mode}")]))
        assert _invoke(chain, "--roots", pki.roots, "--verify-ocsp") == (0, "", ""), mode


def test_ocsp_revoked_and_unknown(pki: PKI, responder: Responder) -> None:
    for mode, message in (
        ("revoked", "certificate has been revoked according to OCSP {url}\n"),
        ("unknown", "certificate status is unknown according to OCSP {url}\n"),
    ):
        url = responder.url(f"ocsp/{mode}")
        chain = pki.chain_file(pki.leaf(ocsp_urls=[url]))
        assert _invoke(chain, "--roots", pki.roots, "--verify-ocsp") == (
            1,
            "",
            message.format(url=url),
        )


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("badsig", "bad OCSP signature"),
        ("nonce", "the response nonce does not match the request"),
        ("expired", "the response expired at "),
        ("unauthorized", "ocsp: error from server: unauthorized"),
        ("delegated-noeku", "the responder certificate is not authorized to sign OCSP responses"),
        ("missing", "HTTP status 404"),
    ],
)
def test_ocsp_untrustworthy_answers(pki: PKI, responder: Responder, mode: str, reason: str) -> None:
    url = responder.url(f"ocsp/{mode}" if mode != "missing" else "nowhere/missing")
    chain = pki.chain_file(pki.leaf(ocsp_urls=[url]))
    code, out, err = _invoke(chain, "--roots", pki.roots, "--verify-ocsp")
    assert (code, out, err) == (1, "", "could not verify certificate against OCSP server(s)\n")
    code, out, err = _invoke(chain, "--roots", pki.roots, "--verify-ocsp", "--verbose")
    assert code == 1
    assert out.startswith(f"error parsing response from OCSP server: {url}: {reason}"), out
    assert out.count("\n") == 1


def test_ocsp_falls_through_to_next_responder(pki: PKI, responder: Responder) -> None:
    refused = f"http://127.0.0.1:{_closed_port()}/ocsp"
    good = responder.url("ocsp/good")
    chain = pki.chain_file(pki.leaf(ocsp_urls=[refused, good]))
    code, out, err = _invoke(chain, "--roots", pki.roots, "--verify-ocsp", "--verbose")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"error contacting OCSP server: {refused}",
        "certificate validated against roots",
        f"certificate status is good according OCSP {good}",
        "certficiate is valid",
    ]


def test_ocsp_missing_extension_and_both_checks(pki: PKI, responder: Responder) -> None:
    code, _, err = _invoke(pki.chain_file(pki.leaf()), "--roots", pki.roots, "--verify-ocsp")
    assert (code, err) == (1, "no OCSP AIA extension found\n")
    crl, good = responder.url("crl/good"), responder.url("ocsp/good")
    chain = pki.chain_file(pki.leaf(crl=[crl], ocsp_urls=[good]))
    code, out, _ = _invoke(
        chain,
        "--roots",
        pki.roots,
        "--verify-crl",
        "--verify-ocsp",
        "--host",
        "leaf.example.com",
        "-v",
    )
    assert code == 0
    assert out.splitlines() == [
        "certificate validated against roots",
        "certificate host name validated",
        f"certificate not revoked in CRL {crl}",
        f"certificate status is good according OCSP {good}",
        "certficiate is valid",
    ]
    # The chain is validated before anything is downloaded.
    responder.requests.clear()
    expired = pki.chain_file(pki.leaf(crl=[crl], not_before=NOW - 2 * DAY, not_after=NOW - DAY))
    assert _invoke(expired, "--roots", pki.roots, "--verify-crl")[0] == 1
    assert responder.requests == []


# Remote ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def _tls_server(responder: Responder, certfile: str, keyfile: str) -> Iterator[int]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    handler = type("Handler", (_Handler,), {"responder": responder})
    server = QuietServer(("127.0.0.1", 0), handler)
    server.socket = context.wrap_socket(
        server.socket, server_side=True, do_handshake_on_connect=False
    )
    with serve(server, 0.05):
        yield server.server_address[1]


@pytest.fixture
def tls_server(pki: PKI) -> Iterator[int]:
    """A TLS server on 127.0.0.1 presenting a fresh leaf + the intermediate."""
    chain = pki.write("served.crt", pki.leaf(), pki.intermediate)
    key_file = pki.directory / "served.key"
    key_file.write_bytes(
        pki.leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with _tls_server(Responder(pki), chain, str(key_file)) as port:
        yield port


def test_remote_chain(pki: PKI, tls_server: int) -> None:
    url = f"https://127.0.0.1:{tls_server}"
    assert _invoke(url, "--roots", pki.roots, "--host", "leaf.example.com") == (0, "", "")
    assert _invoke(url, "--roots", pki.roots, "--servername", "leaf.example.com") == (0, "", "")
    code, out, err = _invoke(url, "--roots", pki.roots, "--host", "other.example.com")
    assert (code, out) == (1, "")
    assert err.startswith("failed to verify certificate: x509: certificate is valid for ")
    other_key = _key()
    code, _, err = _invoke(url, "--roots", pki.write("o.crt", _ca("O", other_key, None, other_key)))
    assert code == 1 and err.startswith("failed to connect: ")
