"""`POST /renew` (client certificate or bearer token) and `POST /rekey` (client certificate)."""

from __future__ import annotations

import falcon

from api.mtls import peer_certificate
from api.render import json_text_response, read_json
from api.sign import chain_json, tls_options_json
from appliance.authority import Authority, require_csr
from pki.errors import bad_request


class Renew:
    """Same identity, same lifetime, new serial."""

    def __init__(self, authority: Authority) -> None:
        self.authority = authority
        self.tls_options = tls_options_json(authority)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        peer = peer_certificate(req)
        if peer is not None:
            result = self.authority.renew(peer)
        else:
            auth = req.get_header("Authorization") or ""
            scheme, _, token = auth.partition(" ")
            if scheme != "Bearer" or not token.strip():
                raise bad_request("missing client certificate")
            result = self.authority.renew_with_token(token.strip())
        req.context.issued = result  # for the request log
        json_text_response(resp, chain_json(result, self.tls_options), 201)


class Rekey:
    """Same identity on a new key (the CSR's)."""

    def __init__(self, authority: Authority) -> None:
        self.authority = authority
        self.tls_options = tls_options_json(authority)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        peer = peer_certificate(req)
        if peer is None:
            raise bad_request("missing client certificate")
        csr = require_csr(read_json(req).get("csr"))
        result = self.authority.rekey(peer, csr)
        req.context.issued = result  # for the request log
        json_text_response(resp, chain_json(result, self.tls_options), 201)
