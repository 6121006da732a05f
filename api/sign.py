"""`POST /sign`: a CSR and a one-time token in, a certificate chain out."""

from __future__ import annotations

from typing import Any

import falcon

from api.render import json_response, optional_string, read_json
from appliance.authority import Authority, SignResult, pem, require_csr
from pki.errors import bad_request


def chain_response(result: SignResult, tls_options: dict[str, Any]) -> dict[str, Any]:
    """step-ca's sign/renew/rekey body: crt, ca (= certChain[1]), certChain, tlsOptions."""
    chain = [pem(c) for c in result.chain]
    return {
        "crt": chain[0],
        "ca": chain[1] if len(chain) > 1 else "",
        "certChain": chain,
        "tlsOptions": tls_options,
    }


class Sign:
    """Thin responder: parse, ask the authority, render 201."""

    def __init__(self, authority: Authority) -> None:
        self.authority = authority

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req)
        csr = require_csr(body.get("csr"))
        ott = optional_string(body, "ott")
        if not ott:
            raise bad_request("missing ott")
        result = self.authority.sign(
            csr, ott, optional_string(body, "notBefore"), optional_string(body, "notAfter")
        )
        req.context.issued = result  # for the request log
        json_response(resp, chain_response(result, self.authority.config.tls_options()), 201)
