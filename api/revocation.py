"""`GET /crl` (step-ca's, opt-in) and the OCSP responder at `/ocsp` (beyond step-ca)."""

from __future__ import annotations

import base64
from email.utils import format_datetime
from urllib.parse import unquote

import falcon
from cryptography.hazmat.primitives.serialization import Encoding

from api.render import GetResource
from appliance.authority import Authority
from pki.errors import CAError, ErrorKind, bad_request, not_found

MAX_OCSP_REQUEST = 8192


class CRL(GetResource):
    """The current CRL, DER or (`?pem`) PEM; 404 when `crl.enabled` is off."""

    def __init__(self, authority: Authority) -> None:
        self.authority = authority

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not self.authority.config.crl.enabled:
            raise not_found("CRL is disabled")
        crl = self.authority.crl.current()
        resp.status = 200
        resp.set_header("Expires", format_datetime(crl.next_update, usegmt=True))
        if "pem" in req.params:
            body = base64.encodebytes(crl.der).decode().replace("\n", "")
            lines = [body[i : i + 64] for i in range(0, len(body), 64)]
            resp.content_type = "application/x-pem-file"
            resp.set_header("Content-Disposition", 'attachment; filename="crl.pem"')
            resp.text = (
                "-----BEGIN X509 CRL-----\n" + "\n".join(lines) + "\n-----END X509 CRL-----\n"
            )
        else:
            resp.content_type = "application/pkix-crl"
            resp.set_header("Content-Disposition", 'attachment; filename="crl.crl"')
            resp.data = crl.der


class IntermediateDER(GetResource):
    """The issuing certificate in DER, the target of the leaves' caIssuers URL."""

    def __init__(self, authority: Authority) -> None:
        self.authority = authority

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.status = 200
        resp.content_type = "application/pkix-cert"
        resp.data = self.authority.intermediates[0].public_bytes(Encoding.DER)


class OCSP:
    """RFC 6960 over HTTP: POST the DER request, or GET it base64 in the path (a sink)."""

    def __init__(self, authority: Authority) -> None:
        self.authority = authority

    def _answer(self, resp: falcon.Response, request_der: bytes) -> None:
        resp.status = 200
        resp.content_type = "application/ocsp-response"
        resp.data = self.authority.ocsp.respond(request_der)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.content_type and req.content_type.split(";")[0] != "application/ocsp-request":
            raise bad_request("OCSP requests must be application/ocsp-request")
        self._answer(resp, req.bounded_stream.read(MAX_OCSP_REQUEST + 1)[: MAX_OCSP_REQUEST + 1])

    def sink(self, req: falcon.Request, resp: falcon.Response, **_: str) -> None:
        """GET /ocsp/{base64 request} (the path may contain `/`, hence a sink)."""
        req.context.route = req.path[: req.path.index("/ocsp/")] + "/ocsp/{request}"
        if req.method not in ("GET", "HEAD"):
            raise CAError(ErrorKind.METHOD_NOT_ALLOWED, f"{req.method} is not allowed")
        encoded = unquote(req.path.split("/ocsp/", 1)[1])
        try:
            der = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except ValueError:
            der = b""
        self._answer(resp, der)
