"""`/provisioners` (paged like step-ca) and `/provisioners/{kid}/encrypted-key`."""

from __future__ import annotations

import falcon

from api.render import GetResource, json_response
from appliance.authority import Authority
from pki.errors import not_found


class Provisioners(GetResource):
    """The provisioner list, `cursor`/`limit` paging."""

    def __init__(self, authority: Authority) -> None:
        self.authority = authority

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        items, next_cursor = self.authority.registry.page(
            req.get_param("cursor") or "", req.get_param("limit")
        )
        json_response(resp, {"provisioners": items, "nextCursor": next_cursor})


class EncryptedKey(GetResource):
    """The escrowed, password-encrypted private key of a JWK provisioner."""

    def __init__(self, authority: Authority) -> None:
        self.authority = authority

    def on_get(self, req: falcon.Request, resp: falcon.Response, kid: str) -> None:
        key = self.authority.registry.encrypted_key(kid)
        if key is None:
            raise not_found(f"encrypted key with kid {kid!r} was not found")
        json_response(resp, {"key": key})
