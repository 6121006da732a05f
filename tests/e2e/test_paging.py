"""A CA with three JWK provisioners (ca.json edited before start): paging and choosing one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from pki.jose import private_jwk, public_jwk
from pki.jwe import encrypt_jwk
from provisioners.extension import ProvisionerExtension
from tests.e2e.harness import (
    CA,
    PROVISIONER_PASSWORD,
    CAFactory,
    csr_pem,
    load_chain,
    make_csr,
    run_step,
)
from tests.e2e.tokens import TokenMaker

NAMES = ["admin", "second", "third"]


def _jwk_provisioner(name: str, key: Any) -> dict[str, Any]:
    return {
        "type": "JWK",
        "name": name,
        "key": public_jwk(key),
        "encryptedKey": encrypt_jwk(private_jwk(key), PROVISIONER_PASSWORD, p2c=100_000),
    }


@pytest.fixture(scope="module")
def three(ca_factory: CAFactory) -> CA:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["authority"]["provisioners"] += [
            _jwk_provisioner("second", ec.generate_private_key(ec.SECP256R1())),
            _jwk_provisioner("third", ed25519.Ed25519PrivateKey.generate()),
        ]

    return ca_factory("three-provisioners", edit)


def _page(ca: CA, prefix: str, **params: str) -> tuple[list[str], str]:
    with ca.http() as http:
        resp = http.get(f"{prefix}/provisioners", params=params)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) == {"provisioners", "nextCursor"}
    return [p["name"] for p in body["provisioners"]], body["nextCursor"]


@pytest.mark.parametrize("prefix", ["", "/1.0"])
def test_all_on_one_page(three: CA, prefix: str) -> None:
    assert _page(three, prefix) == (NAMES, "")


@pytest.mark.parametrize("prefix", ["", "/1.0"])
def test_limit_two_then_cursor(three: CA, prefix: str) -> None:
    names, cursor = _page(three, prefix, limit="2")
    assert names == NAMES[:2]
    assert cursor != ""
    names, cursor2 = _page(three, prefix, limit="2", cursor=cursor)
    assert names == NAMES[2:]
    assert cursor2 == ""


def test_limit_one_walks_every_provisioner(three: CA) -> None:
    seen: list[str] = []
    cursor = ""
    for _ in range(5):
        params = {"limit": "1"} | ({"cursor": cursor} if cursor else {})
        names, cursor = _page(three, "/1.0", **params)
        assert len(names) == 1
        seen += names
        if not cursor:
            break
    assert seen == NAMES


def test_provisioner_list_cli(three: CA, tmp_path: Path) -> None:
    out = run_step(
        ["ca", "provisioner", "list", "--ca-url", three.url, "--root", three.root_path],
        tmp_path / "step",
    )
    items = json.loads(out.stdout)
    assert [p["name"] for p in items] == NAMES
    assert items == three.config()["authority"]["provisioners"]


def test_eddsa_provisioner_token_signs(three: CA) -> None:
    with three.http() as http:
        maker = TokenMaker.fetch(http, PROVISIONER_PASSWORD, three.fingerprint, "third")
        assert maker.alg == "EdDSA"
        ott = maker.token("third.example")
        resp = http.post("/1.0/sign", json={
            "csr": csr_pem(make_csr("third.example", ["third.example"])), "ott": ott})
    assert resp.status_code == 201, resp.text
    (leaf,) = load_chain(resp.json()["crt"])
    ext = ProvisionerExtension.from_certificate(leaf, strict=True)
    assert ext is not None and ext.name == "third" and ext.credential_id == maker.kid


def test_cli_needs_provisioner_when_several(three: CA, tmp_path: Path) -> None:
    steppath = tmp_path / "step"
    common: list[str | Path] = ["--ca-url", three.url, "--root", three.root_path,
                                "--password-file", three.provisioner_password_file]
    refused = run_step(["ca", "token", "x.example", *common], steppath, check=False)
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr
    assert "--provisioner" in refused.stderr
    assert refused.stdout == ""

    crt, key = tmp_path / "x.crt", tmp_path / "x.key"
    run_step(["ca", "certificate", "x.example", crt, key, "--provisioner", "second", *common],
             steppath)
    leaf = load_chain(crt.read_bytes())[0]
    ext = ProvisionerExtension.from_certificate(leaf, strict=True)
    assert ext is not None and ext.name == "second"
    assert leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "x.example"
