"""Trust bundles: `/root/{sha}`, `/roots`, `/intermediates`, `/federation` and their PEM forms."""

from __future__ import annotations

import falcon
from cryptography import x509

from api.render import GetResource, json_response
from appliance.authority import Authority, pem
from pki.errors import not_implemented


def _pem_bundle(resp: falcon.Response, certs: list[x509.Certificate]) -> None:
    resp.status = 200
    resp.content_type = "application/x-pem-file"
    resp.text = "".join(pem(c) for c in certs)


class Root(GetResource):
    """A root (own or federated) by its SHA-256 fingerprint: the bootstrap path."""

    def __init__(self, authority: Authority) -> None:
        self.authority = authority

    def on_get(self, req: falcon.Request, resp: falcon.Response, sha: str) -> None:
        json_response(resp, {"ca": pem(self.authority.root_by_fingerprint(sha))})


class Roots(GetResource):
    """The configured roots; 201 like step-ca."""

    def __init__(self, authority: Authority) -> None:
        self.authority = authority

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        json_response(resp, {"crts": [pem(c) for c in self.authority.roots]}, 201)


class RootsPEM(Roots):
    """The configured roots as one PEM file."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        _pem_bundle(resp, self.authority.roots)


class Intermediates(GetResource):
    """The intermediate chain; 201 like step-ca, 501 when there is none."""

    def __init__(self, authority: Authority) -> None:
        self.authority = authority

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        certs = self.authority.intermediates
        if not certs:
            raise not_implemented("no intermediates configured")
        json_response(resp, {"crts": [pem(c) for c in certs]}, 201)


class IntermediatesPEM(Intermediates):
    """The intermediate chain as one PEM file."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not self.authority.intermediates:
            raise not_implemented("no intermediates configured")
        _pem_bundle(resp, self.authority.intermediates)


class Federation(GetResource):
    """Own roots plus the federated roots; 201 like step-ca."""

    def __init__(self, authority: Authority) -> None:
        self.authority = authority

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        json_response(resp, {"crts": [pem(c) for c in self.authority.federation()]}, 201)
