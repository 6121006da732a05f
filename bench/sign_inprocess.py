"""`Authority.sign` alone, in process: the CA's own share of a certificate's CPU.

Not a test and not `make bench`: a micro-benchmark for work on the signing path (token,
CSR checks, leaf build and signature, the response body). A fresh CA (file key, SQLite) is
made in a temporary STEPPATH; N (CSR, one-time token) pairs are prepared before the clock
starts; each round times N calls of `Authority.sign` plus the JSON body `/sign` answers with,
in CPU time of this process. `--no-db` replaces `Repository.issue` by the signature alone, to
leave the database's share (bench.db_issue) out. Rounds repeat on a shared machine: compare
medians (and minimums) of two runs, never single rounds.

    .venv/bin/python -m bench.sign_inprocess [--count N] [--rounds R] [--no-db]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from api.sign import chain_json, tls_options_json
from appliance.authority import Authority
from appliance.config import CAConfig
from appliance.db.repository import UsedToken
from appliance.pki import InitRequest, init_pki
from pki.jose import key_from_jwk
from pki.jwe import decrypt_jwk
from provisioners.schema import JWKSchema

PASSWORD, PROV_PASSWORD = b"bench-password", b"bench-provisioner"
NAME = "bench.test"


def open_authority(base: Path) -> Authority:
    """A new CA under `base` (STEPPATH), opened as step-ca opens it."""
    os.environ["STEPPATH"] = str(base)
    init_pki(
        InitRequest(base, "Bench", ["ca.test"], "127.0.0.1:9000", "admin", PASSWORD, PROV_PASSWORD)
    )
    authority = Authority.open(CAConfig.load(base / "config" / "ca.json"), password=PASSWORD)
    authority.start_time -= 5  # tokens made right after the start are not older than the CA
    return authority


def token_maker(authority: Authority) -> Callable[[], str]:
    """One-time tokens of the CA's JWK provisioner, as `step ca token` makes them."""
    prov = next(p for p in authority.config.provisioners if isinstance(p, JWKSchema))
    assert prov.encryptedKey
    key = key_from_jwk(decrypt_jwk(prov.encryptedKey, PROV_PASSWORD))
    audience = f"https://{authority.config.dns_names[0]}:9000/1.0/sign"

    def make() -> str:
        now = int(time.time())
        claims = {
            "iss": prov.name,
            "aud": audience,
            "sub": NAME,
            "sans": [NAME],
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": os.urandom(16).hex(),
        }
        return jwt.encode(claims, key, algorithm="ES256", headers={"kid": prov.key.kid})  # type: ignore[arg-type]

    return make


def csr_pem() -> str:
    """A P-256 CSR for NAME (CN and DNS SAN)."""
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(NAME)]), critical=False)
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
        .public_bytes(Encoding.PEM)
        .decode()
    )


def _without_database(
    token: UsedToken | None, provisioner: str, build: Callable[[], object], audit: object = None
) -> object:
    return build()


def run(count: int, rounds: int, database: bool) -> list[float]:
    """µs of CPU per certificate, one figure per round."""
    with tempfile.TemporaryDirectory(prefix="stepstone-sign-") as tmp:
        authority = open_authority(Path(tmp) / "step")
        try:
            if not database:
                authority.repository.issue = _without_database  # type: ignore[assignment]
            token = token_maker(authority)
            tls = tls_options_json(authority)
            csrs = [csr_pem() for _ in range(min(count, 100))]
            figures = []
            for _ in range(rounds):
                work = [(csrs[i % len(csrs)], token()) for i in range(count)]
                started = time.process_time()
                for csr, ott in work:
                    chain_json(authority.sign(csr, ott), tls)
                figures.append((time.process_time() - started) / count * 1e6)
            return figures
        finally:
            authority.repository.engine.dispose()


def main(argv: list[str] | None = None) -> list[float]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=500, help="signs per round")
    parser.add_argument("--rounds", type=int, default=9, help="rounds (median and min shown)")
    parser.add_argument("--no-db", action="store_true", help="leave Repository.issue out")
    args = parser.parse_args(argv)
    figures = run(args.count, args.rounds, database=not args.no_db)
    label = "without the database" if args.no_db else "with SQLite"
    print(
        f"Authority.sign + body, {label}: median {statistics.median(figures):.0f} µs, "
        f"min {min(figures):.0f} µs of CPU per certificate "
        f"({args.rounds} rounds of {args.count})"
    )
    return figures


if __name__ == "__main__":
    main()
