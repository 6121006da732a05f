"""step-ca's administration API for ACME External Account Binding keys (mounted only when
ca.json has `authority.enableAdmin: true`; authentication: appliance.admin's x5c token):

    POST   /admin/acme/eab/{provisioner}              {"reference": "..."} -> 201, the key
    GET    /admin/acme/eab/{provisioner}[?cursor=&limit=] -> {"eaks": [...], "nextCursor"}
    GET    /admin/acme/eab/{provisioner}/{reference}  the key with that reference
    DELETE /admin/acme/eab/{provisioner}/{keyID}      -> {"status": "deleted"}

A key is rendered as linkedca.EABKey in protojson (empty fields left out): id, hmacKey
(standard base64, only in the answer to POST), provisioner, reference, account, createdAt,
boundAt. Open-source step-ca answers these routes 501 (Certificate Manager only); Stepstone
keeps the keys in its own database. Errors are step-ca's `{"status","message"}`.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import falcon

from appliance.acme.eab import MAX_REFERENCE, DuplicateReference, EABStore
from appliance.acme.jws import b64decode
from appliance.acme.store import Row, aware
from appliance.admin import authorize_admin
from appliance.authority import Authority
from pki.errors import CAError, ErrorKind
from provisioners.acme import ACMEProvisioner

PREFIX = "/admin/acme/eab"


def _public(kind: ErrorKind, message: str) -> CAError:
    return CAError(kind, message, public=message, verbatim=True)


def _time(value: datetime | None) -> str | None:
    return aware(value).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def render_key(row: Row, *, secret: bool = False) -> dict[str, Any]:
    """linkedca.EABKey as protojson writes it: fields with empty values are omitted."""
    out: dict[str, Any] = {"id": row["id"]}
    if secret:
        out["hmacKey"] = base64.b64encode(b64decode(row["hmac_key"])).decode()
    out["provisioner"] = row["provisioner"]
    for name, value in (
        ("reference", row["reference"]),
        ("account", row["account_id"]),
        ("createdAt", _time(row["created_at"])),
        ("boundAt", _time(row["bound_at"])),
    ):
        if value:
            out[name] = value
    return out


class _Base:
    def __init__(self, authority: Authority) -> None:
        self.authority = authority
        self.store = EABStore(authority.repository.engine)

    def check(self, req: falcon.Request, provisioner: str) -> None:
        """The admin token, then an ACME provisioner that requires EAB (step-ca's order)."""
        authorize_admin(self.authority, req.get_header("Authorization"), req.path)
        prov = self.authority.registry.by_name(provisioner)
        if prov is None:
            raise _public(ErrorKind.NOT_FOUND, f"provisioner {provisioner} not found")
        if not isinstance(prov, ACMEProvisioner):
            raise _public(
                ErrorKind.BAD_REQUEST, f"provisioner {provisioner} is not an ACME provisioner"
            )
        if not prov.acme.requireEAB:
            raise _public(
                ErrorKind.BAD_REQUEST, f"ACME EAB not enabled for provisioner {provisioner}"
            )

    def page(self, req: falcon.Request, provisioner: str, reference: str | None) -> Any:
        limit_text = req.get_param("limit") or "0"
        if not (limit_text.isascii() and limit_text.isdigit() and len(limit_text) <= 9):
            raise _public(ErrorKind.BAD_REQUEST, f"limit '{limit_text}' is not an integer")
        rows, cursor = self.store.page(
            provisioner, reference, req.get_param("cursor") or "", int(limit_text)
        )
        return {"eaks": [render_key(r) for r in rows], "nextCursor": cursor}


class Keys(_Base):
    """`/admin/acme/eab/{provisioner}`: list and add."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, provisioner: str) -> None:
        self.check(req, provisioner)
        resp.media = self.page(req, provisioner, None)

    def on_post(self, req: falcon.Request, resp: falcon.Response, provisioner: str) -> None:
        self.check(req, provisioner)
        try:
            body = req.get_media(default_when_empty={})
        except falcon.MediaMalformedError:
            raise _public(ErrorKind.BAD_REQUEST, "error reading request body") from None
        reference = body.get("reference", "") if isinstance(body, dict) else None
        if not isinstance(reference, str):
            raise _public(ErrorKind.BAD_REQUEST, "reference must be a string")
        if len(reference) > MAX_REFERENCE:
            raise _public(
                ErrorKind.BAD_REQUEST,
                f"reference length {len(reference)} exceeds the maximum ({MAX_REFERENCE})",
            )
        try:
            row = self.store.create(provisioner, reference)
        except DuplicateReference as exc:
            raise CAError(ErrorKind.BAD_REQUEST, str(exc), public=str(exc), verbatim=True) from None
        resp.status = falcon.HTTP_201
        resp.media = render_key(row, secret=True)


class Key(_Base):
    """`/admin/acme/eab/{provisioner}/{key}`: GET by reference, DELETE by key id."""

    def on_get(
        self, req: falcon.Request, resp: falcon.Response, provisioner: str, key: str
    ) -> None:
        self.check(req, provisioner)
        resp.media = self.page(req, provisioner, key)

    def on_delete(
        self, req: falcon.Request, resp: falcon.Response, provisioner: str, key: str
    ) -> None:
        self.check(req, provisioner)
        if not self.store.remove(provisioner, key):
            raise _public(ErrorKind.NOT_FOUND, f"ACME EAB key {key} not found")
        resp.media = {"status": "deleted"}


def routes(authority: Authority) -> list[tuple[str, object]]:
    """The admin EAB routes, or none when the administration API is not enabled."""
    if not authority.config.enable_admin:
        return []
    return [
        (f"{PREFIX}/{{provisioner}}", Keys(authority)),
        (f"{PREFIX}/{{provisioner}}/{{key}}", Key(authority)),
    ]
