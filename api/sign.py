"""`POST /sign`: a CSR and a one-time token in, a certificate chain out."""

from __future__ import annotations

import json
from functools import lru_cache

import falcon
from cryptography import x509

from api.render import json_text_response, optional_string, read_json
from appliance.authority import Authority, SignResult, pem, require_csr
from pki.errors import bad_request


@lru_cache(maxsize=16)
def _ca_json(certs: tuple[x509.Certificate, ...]) -> tuple[str, str]:
    """The intermediates rendered once (they follow every certificate issued): `"ca"`'s JSON
    value, and certChain's tail (each item preceded by a comma)."""
    items = [json.dumps(pem(c)) for c in certs]
    return (items[0] if items else '""'), "".join("," + i for i in items)


def tls_options_json(authority: Authority) -> str:
    """`tlsOptions` as JSON, rendered once per authority (a reload builds a new app)."""
    return json.dumps(authority.config.tls_options(), separators=(",", ":"))


def chain_json(result: SignResult, tls_json: str) -> str:
    """step-ca's sign/renew/rekey body as compact JSON: crt, ca (= certChain[1]), certChain
    (leaf first, no root), tlsOptions. The CA certificates' part is rendered once."""
    crt = json.dumps(pem(result.chain[0]))
    ca, tail = _ca_json(tuple(result.chain[1:]))
    return f'{{"crt":{crt},"ca":{ca},"certChain":[{crt}{tail}],"tlsOptions":{tls_json}}}'


class Sign:
    """Thin responder: parse, ask the authority, render 201."""

    def __init__(self, authority: Authority) -> None:
        self.authority = authority
        self.tls_options = tls_options_json(authority)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req)
        csr = require_csr(body.get("csr"))
        ott = optional_string(body, "ott")
        if not ott:
            raise bad_request("missing ott")
        # Announced to the repository: a batch about to commit waits a little for it.
        with self.authority.repository.expecting():
            result = self.authority.sign(
                csr, ott, optional_string(body, "notBefore"), optional_string(body, "notAfter")
            )
        req.context.issued = result  # for the request log
        json_text_response(resp, chain_json(result, self.tls_options), 201)
