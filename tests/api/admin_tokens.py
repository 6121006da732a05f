"""In-process helpers for the admin API tests: a CA with `enableAdmin` and an ACME provisioner
that requires EAB, an admin certificate got through POST /1.0/sign with a JWK token (as
`step ca acme eab` gets one), and x5c admin tokens signed with it."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import falcon.testing
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from api.app import create_app
from appliance.authority import Authority
from appliance.config import CAConfig
from appliance.pki import InitRequest, init_pki
from pki.jose import default_alg, key_from_jwk
from pki.jwe import decrypt_jwk

ORIGIN = "https://127.0.0.1:9"


def make_ca(base: Path, *, enable_admin: bool = True) -> Path:
    """A fresh CA (JWK provisioner `admin`, password prov-pw) with ACME provisioners `acme`
    (requireEAB) and `open`; the path of its ca.json."""
    init_pki(InitRequest(base, "EAB", ["127.0.0.1"], "127.0.0.1:9", "admin", b"ca-pw", b"prov-pw"))
    path = base / "config" / "ca.json"
    cfg = json.loads(path.read_text())
    cfg["authority"]["enableAdmin"] = enable_admin
    for name, eab in (("acme", True), ("open", False)):
        cfg["authority"]["provisioners"].append(
            {"type": "ACME", "name": name, "requireEAB": eab, "challenges": ["http-01"]}
        )
    path.write_text(json.dumps(cfg))
    return path


@contextmanager
def admin_app(base: Path) -> Iterator[falcon.testing.TestClient]:
    """The app of a fresh :func:`make_ca` CA under `base` (STEPPATH set meanwhile)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("STEPPATH", str(base))
    try:
        authority = Authority.open(CAConfig.load(make_ca(base)), password=b"ca-pw")
        yield falcon.testing.TestClient(create_app(authority))
    finally:
        mp.undo()


class Admin:
    """An admin certificate (subject `subject`, from JWK provisioner `admin`) and its tokens."""

    def __init__(self, http: falcon.testing.TestClient, subject: str = "step") -> None:
        self.subject = subject
        prov = next(
            p for p in http.simulate_get("/provisioners").json["provisioners"] if p["type"] == "JWK"
        )
        kid = prov["key"]["kid"]
        jwe = http.simulate_get(f"/provisioners/{kid}/encrypted-key").json["key"]
        prov_key = key_from_jwk(decrypt_jwk(jwe, "prov-pw"))
        now = int(time.time())
        ott = jwt.encode(
            {"iss": prov["name"], "aud": f"{ORIGIN}/1.0/sign", "sub": subject, "sans": [subject],
             "iat": now, "nbf": now, "exp": now + 300, "jti": secrets.token_hex(32)},
            prov_key,  # type: ignore[arg-type]
            algorithm=default_alg(prov_key),
            headers={"kid": kid},
        )  # fmt: skip
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, subject)])
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(name)
            .sign(self.key, hashes.SHA256())
        )
        got = http.simulate_post(
            "/1.0/sign",
            json={"csr": csr.public_bytes(Encoding.PEM).decode(), "ott": ott},
        )
        assert got.status_code == 201, got.text
        self.chain = [x509.load_pem_x509_certificate(c.encode()) for c in got.json["certChain"]]

    def token(self, path: str, **override: Any) -> str:
        """An x5c admin token for `path`; `override` changes or (None) drops claims."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": "step-admin-client/1.0", "aud": f"{ORIGIN}{path}", "sub": self.subject,
            "iat": now, "nbf": now, "exp": now + 300, "jti": secrets.token_hex(32),
        }  # fmt: skip
        claims.update(override)
        claims = {k: v for k, v in claims.items() if v is not None}
        x5c = [base64.b64encode(c.public_bytes(Encoding.DER)).decode() for c in self.chain]
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"x5c": x5c})

    def headers(self, path: str, **override: Any) -> dict[str, str]:
        return {"Authorization": self.token(path, **override)}


def add_key(http: falcon.testing.TestClient, admin: Admin, reference: str = "") -> dict[str, Any]:
    """POST a new EAB key for provisioner `acme`; the answer's JSON."""
    path = "/admin/acme/eab/acme"
    got = http.simulate_post(path, json={"reference": reference}, headers=admin.headers(path))
    assert got.status_code == 201, got.text
    return dict(got.json)
