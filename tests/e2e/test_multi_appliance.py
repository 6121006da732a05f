"""Two appliances of one CA on one PostgreSQL database, each on its own port, no balancer.

Both share the CA's keys (the second is a copy of the first's STEPPATH with another address).
A revocation through one holds on the other; their CRLs and OCSP answers agree; and the CRL
number only grows, whether the two publish in turn or at the same time.
"""

from __future__ import annotations

import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from cryptography.x509 import ocsp

from tests.e2e.fleet import Record, create_pg_database, forget_crl, twin, use_database
from tests.e2e.harness import (
    CA,
    DEFAULT_401,
    OPENSSL,
    PROVISIONER_PASSWORD,
    CAFactory,
    csr_pem,
    ec_key,
    error_body,
    load_chain,
    make_csr,
    run_step,
)
from tests.e2e.tokens import TokenMaker
from tests.postgres import _bin, postgres_server
from tests.tools import missing


@pytest.fixture(scope="module")
def pg_server() -> Iterator[str]:
    try:
        _bin("initdb")
    except RuntimeError as exc:
        missing(str(exc))
    with postgres_server() as url:
        yield url


@dataclass
class Appliance:
    """One of the two: its server, a token maker and an httpx client bound to it."""

    ca: CA
    tokens: TokenMaker
    http: httpx.Client

    def sign(
        self, name: str, key: ec.EllipticCurvePrivateKey | None = None
    ) -> list[x509.Certificate]:
        """A certificate for `name` (JWK token of this appliance); the chain, leaf first."""
        resp = self.http.post(
            "/1.0/sign",
            json={"csr": csr_pem(make_csr(name, [name], key)), "ott": self.tokens.token(name)},
        )
        assert resp.status_code == 201, resp.text
        return [x509.load_pem_x509_certificate(c.encode()) for c in resp.json()["certChain"]]

    def issue_files(self, name: str, work: Path) -> tuple[Path, Path, int]:
        """A certificate and key as `step` keeps them (chain PEM, PKCS#8 key); its serial."""
        key = ec_key()
        chain = self.sign(name, key)
        crt, key_file = work / f"{name}.crt", work / f"{name}.key"
        crt.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in chain))
        key_file.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        return crt, key_file, chain[0].serial_number

    def revoke(self, serial: int, reason_code: int = 1, http: httpx.Client | None = None) -> None:
        token = self.tokens.token(str(serial), aud=f"{self.ca.url}/1.0/revoke", omit=("sans",))
        resp = (http or self.http).post(
            "/1.0/revoke",
            json={"serial": str(serial), "ott": token, "reasonCode": reason_code,
                  "passive": True},
        )
        assert resp.status_code == 200, resp.text

    def crl(self) -> x509.CertificateRevocationList:
        resp = self.http.get("/1.0/crl")
        assert resp.status_code == 200, resp.text
        crl = x509.load_der_x509_crl(resp.content)
        assert crl.is_signature_valid(self.ca.intermediate.public_key())  # type: ignore[arg-type]
        return crl

    def ocsp(self, serial: int) -> ocsp.OCSPResponse:
        """This appliance's OCSP answer for `serial`, its signature checked."""
        issuer = self.ca.intermediate
        builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
            _sha1(issuer.subject.public_bytes()),
            _sha1(issuer.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)),
            serial,
            hashes.SHA1(),
        )
        resp = self.http.post(
            "/ocsp",
            content=builder.build().public_bytes(Encoding.DER),
            headers={"Content-Type": "application/ocsp-request"},
        )
        assert resp.status_code == 200, resp.text
        answer = ocsp.load_der_ocsp_response(resp.content)
        assert answer.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
        public = issuer.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey)  # `step ca init`'s default
        assert answer.signature_hash_algorithm is not None
        public.verify(
            answer.signature, answer.tbs_response_bytes, ec.ECDSA(answer.signature_hash_algorithm)
        )
        return answer

    def mtls(self, crt: Path, key: Path) -> httpx.Client:
        """httpx presenting `crt` as the client certificate."""
        ctx: ssl.SSLContext = self.ca.ssl_context()
        ctx.load_cert_chain(str(crt), str(key))
        return httpx.Client(base_url=self.ca.url, verify=ctx, timeout=30.0)


def _sha1(data: bytes) -> bytes:
    """An OCSP CertID hash (the issuer key's is over the EC point: the BIT STRING's content)."""
    digest = hashes.Hash(hashes.SHA1())
    digest.update(data)
    return digest.finalize()


def _crl_number(crl: x509.CertificateRevocationList) -> int:
    return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)


def _crl_config(idp_url: str) -> Callable[[dict[str, Any]], None]:
    """CRL and OCSP on, a CRL published at each revocation, one CRL URL for both appliances.

    A relying party uses a CRL only if its scope (IssuingDistributionPoint) names the URL in
    the certificate's CRLDistributionPoints. By default both are this appliance's own
    https://<first dns name>:<port>/1.0/crl, which differs between two appliances on two
    ports: whichever published last would fix the scope, and the other's certificates would
    fail CRL checks ("different CRL scope"). A shared `crl.idpURL` makes them agree.
    """

    def edit(cfg: dict[str, Any]) -> None:
        cfg["crl"] = {"enabled": True, "generateOnRevoke": True, "idpURL": idp_url}

    return edit


@dataclass
class Pair:
    a: Appliance
    b: Appliance
    record: Record


@pytest.fixture(scope="module")
def pair(
    ca_factory: CAFactory, pg_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    """Two appliances of one CA on a fresh PostgreSQL database (schema migrated first)."""
    first = ca_factory("multi-a", start=False)
    first.edit_config(_crl_config(f"{first.url}/1.0/crl"))
    record = Record(use_database(first, create_pg_database(pg_server)))
    second = twin(first, tmp_path_factory.mktemp("multi-b") / "ca")
    first.start()
    try:
        second.start()
        with first.http() as http_a, second.http() as http_b:
            a = Appliance(first, TokenMaker.fetch(http_a, PROVISIONER_PASSWORD,
                                                  first.fingerprint), http_a)
            b = Appliance(second, TokenMaker.fetch(http_b, PROVISIONER_PASSWORD,
                                                   second.fingerprint), http_b)
            yield Pair(a, b, record)
    finally:
        second.stop()
        first.stop()


def test_both_appliances_serve_one_ca(pair: Pair) -> None:
    """Separate servers (ports, processes), one CA: what one issues the other knows."""
    assert pair.a.ca.port != pair.b.ca.port and pair.a.ca.pid != pair.b.ca.pid
    leaf = pair.a.sign("both.test")[0]
    assert leaf.issuer == pair.b.ca.intermediate.subject
    assert pair.b.ocsp(leaf.serial_number).certificate_status is ocsp.OCSPCertStatus.GOOD


def test_revoked_through_one_cannot_be_renewed_through_the_other(
    pair: Pair, tmp_path: Path
) -> None:
    one = pair.a.issue_files("one.test", tmp_path)
    two = pair.b.issue_files("two.test", tmp_path)
    kept = pair.a.issue_files("kept.test", tmp_path)
    pair.a.revoke(one[2])
    pair.b.revoke(two[2])
    for (crt, key, _), other in ((one, pair.b), (two, pair.a)):
        out = run_step(
            ["ca", "renew", crt, key, "--force", "--ca-url", other.ca.url,
             "--root", other.ca.root_path],
            tmp_path / "step", check=False,
        )
        assert out.returncode == 1, out.stdout
        assert "lacked necessary authorization" in out.stderr, out.stderr
        with other.mtls(crt, key) as http:
            resp = http.post("/1.0/renew")
        assert (resp.status_code, resp.json()) == (401, error_body(401, DEFAULT_401))
    # Not revoked: renewed through the other appliance, and recorded in the shared database.
    crt, key, serial = kept
    run_step(["ca", "renew", crt, key, "--force", "--ca-url", pair.b.ca.url,
              "--root", pair.b.ca.root_path], tmp_path / "step")
    renewed = load_chain(crt.read_bytes())[0].serial_number
    assert renewed != serial
    assert str(renewed) in {c.serial for c in pair.record.certificates()}


def test_crl_and_ocsp_agree(pair: Pair) -> None:
    good = pair.a.sign("good.test")[0]
    by_a = pair.a.sign("by-a.test")[0]
    by_b = pair.b.sign("by-b.test")[0]
    pair.a.revoke(by_a.serial_number, reason_code=1)  # keyCompromise
    pair.b.revoke(by_b.serial_number, reason_code=4)  # superseded
    crl_a, crl_b = pair.a.crl(), pair.b.crl()
    assert crl_a.public_bytes(Encoding.DER) == crl_b.public_bytes(Encoding.DER)
    listed = {r.serial_number for r in crl_a}
    assert {by_a.serial_number, by_b.serial_number} <= listed == pair.record.revoked_serials()
    unknown = good.serial_number ^ 0xFFFF
    for serial in (good.serial_number, by_a.serial_number, by_b.serial_number, unknown):
        one, other = pair.a.ocsp(serial), pair.b.ocsp(serial)
        assert one.serial_number == other.serial_number == serial
        assert one.certificate_status == other.certificate_status
        if one.certificate_status is ocsp.OCSPCertStatus.REVOKED:
            assert one.revocation_time_utc == other.revocation_time_utc
            assert one.revocation_reason == other.revocation_reason
            entry = crl_a.get_revoked_certificate_by_serial_number(serial)
            assert entry is not None and entry.revocation_date_utc == one.revocation_time_utc
    statuses = [pair.b.ocsp(s).certificate_status for s in
                (good.serial_number, by_a.serial_number, unknown)]
    assert statuses == [ocsp.OCSPCertStatus.GOOD, ocsp.OCSPCertStatus.REVOKED,
                        ocsp.OCSPCertStatus.UNKNOWN]
    assert pair.a.ocsp(by_a.serial_number).revocation_reason is x509.ReasonFlags.key_compromise
    assert pair.a.ocsp(by_b.serial_number).revocation_reason is x509.ReasonFlags.superseded


def test_crl_number_grows_when_both_publish_in_turn(pair: Pair) -> None:
    number = _crl_number(pair.a.crl())
    for i in range(6):
        publisher = (pair.a, pair.b)[i % 2]
        leaf = publisher.sign(f"turn-{i}.test")[0]
        publisher.revoke(leaf.serial_number)  # generateOnRevoke: this appliance publishes
        crl_a, crl_b = pair.a.crl(), pair.b.crl()
        assert crl_a.public_bytes(Encoding.DER) == crl_b.public_bytes(Encoding.DER)
        assert _crl_number(crl_a) == number + 1
        assert crl_a.get_revoked_certificate_by_serial_number(leaf.serial_number) is not None
        number += 1
    assert pair.record.crl_number() == number


def test_crl_number_grows_when_both_publish_at_once(pair: Pair) -> None:
    """16 revocations, half through each appliance, 8 at a time: each publishes one CRL.
    Meanwhile a reader per appliance fetches CRLs: numbers never go back, and one number is
    never two different CRLs."""
    start = _crl_number(pair.a.crl())
    certs = [(pair.a, pair.b)[i % 2].sign(f"race-{i}.test")[0] for i in range(16)]
    done = threading.Event()
    seen: list[list[tuple[int, int, bytes]]] = [[], []]

    def watch(i: int) -> None:
        with (pair.a, pair.b)[i].ca.http() as http:
            while not done.is_set():
                resp = http.get("/1.0/crl")
                der = resp.content
                number = _crl_number(x509.load_der_x509_crl(der)) if resp.status_code == 200 else 0
                seen[i].append((resp.status_code, number, der))

    def revoke(i: int) -> None:
        appliance = (pair.a, pair.b)[i % 2]
        with appliance.ca.http() as http:
            appliance.revoke(certs[i].serial_number, http=http)

    watchers = [threading.Thread(target=watch, args=(i,)) for i in range(2)]
    for w in watchers:
        w.start()
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(revoke, range(len(certs))))
    finally:
        done.set()
        for w in watchers:
            w.join()
    final = pair.a.crl()
    # Every revocation published exactly one CRL, and no number went to two of them.
    assert _crl_number(final) == start + len(certs) == pair.record.crl_number()
    assert {c.serial_number for c in certs} <= {r.serial_number for r in final}
    by_number: dict[int, bytes] = {}
    for watched in seen:
        assert {status for status, _, _ in watched} == {200}, watched[:1]
        numbers = [n for _, n, _ in watched]
        assert numbers == sorted(numbers), numbers  # never went back
        for _, n, der in watched:
            assert by_number.setdefault(n, der) == der, f"two CRLs numbered {n}"


def test_first_crl_published_by_both_at_once(pair: Pair) -> None:
    """No CRL stored yet (a new database): both appliances are asked for it at once, and
    each generates one. Every answer is a CRL, and no number is two different CRLs."""
    forget_crl(pair.record.url)
    barrier = threading.Barrier(8)

    def fetch(i: int) -> tuple[int, bytes]:
        with (pair.a, pair.b)[i % 2].ca.http() as http:
            barrier.wait()
            resp = http.get("/1.0/crl")
        return resp.status_code, resp.content

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(fetch, range(8)))
    statuses = [status for status, _ in answers]
    assert statuses == [200] * 8, statuses
    by_number: dict[int, bytes] = {}
    for _, der in answers:
        n = _crl_number(x509.load_der_x509_crl(der))
        assert by_number.setdefault(n, der) == der, f"two CRLs numbered {n}"
    assert pair.record.crl_number() == max(by_number)



def test_a_relying_party_checks_either_appliances_certificates_with_either_crl(
    pair: Pair, tmp_path: Path
) -> None:
    """`openssl verify -crl_check`: each appliance's certificates against each one's CRL."""
    leaves = {
        "a-good": pair.a.sign("rp-a.test")[0],
        "b-good": pair.b.sign("rp-b.test")[0],
        "a-revoked": pair.a.sign("rp-a-gone.test")[0],
        "b-revoked": pair.b.sign("rp-b-gone.test")[0],
    }
    pair.b.revoke(leaves["a-revoked"].serial_number)
    pair.a.revoke(leaves["b-revoked"].serial_number)
    for label, appliance in (("a", pair.a), ("b", pair.b)):
        crl = tmp_path / f"{label}.crl.pem"
        crl.write_bytes(appliance.crl().public_bytes(Encoding.PEM))
        for name, leaf in leaves.items():
            pem = tmp_path / f"{name}.pem"
            pem.write_bytes(leaf.public_bytes(Encoding.PEM))
            out = subprocess.run(
                [OPENSSL, "verify", "-crl_check", "-CAfile", str(pair.a.ca.root_path),
                 "-untrusted", str(pair.a.ca.intermediate_path), "-CRLfile", str(crl), str(pem)],
                capture_output=True, text=True, timeout=60,
            )
            if name.endswith("good"):
                assert out.returncode == 0, (label, name, out.stdout, out.stderr)
            else:
                assert out.returncode != 0 and "certificate revoked" in out.stdout + out.stderr, (
                    label, name, out.stdout, out.stderr)
