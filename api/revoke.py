"""`POST /revoke`: passive revocation by one-time token or by the certificate itself."""

from __future__ import annotations

from typing import Any

import falcon

from api.mtls import peer_certificate
from api.render import json_response, optional_string, read_json
from appliance.authority import Authority, RevokeRequest
from pki.errors import bad_request, not_implemented


def parse_revoke(body: dict[str, Any]) -> RevokeRequest:
    """Validate the body as step-ca does (serial in any base, reason code 0..10, passive)."""
    serial_text = body.get("serial")
    if serial_text in (None, ""):
        raise bad_request("missing serial")
    if not isinstance(serial_text, str):
        raise bad_request("error decoding json")
    try:
        serial = int(serial_text.strip(), 0)
    except ValueError:
        raise bad_request(f"serial number '{serial_text}' is not valid") from None
    if serial < 0:
        raise bad_request(f"serial number '{serial_text}' is not valid")
    code = body.get("reasonCode", 0)
    if isinstance(code, bool) or not isinstance(code, int):
        raise bad_request("error decoding json")
    if not 0 <= code <= 10:
        raise bad_request("reasonCode out of bounds")
    if body.get("passive") is not True:
        raise not_implemented("non-passive revocation not implemented")
    return RevokeRequest(
        serial, code, optional_string(body, "reason") or "", optional_string(body, "ott") or None
    )


class Revoke:
    """Thin responder: parse, ask the authority, `{"status":"ok"}`."""

    def __init__(self, authority: Authority) -> None:
        self.authority = authority

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        revoke = parse_revoke(read_json(req))
        req.context.serial = revoke.serial  # for the request log
        peer = None if revoke.ott else peer_certificate(req)
        req.context.provisioner = self.authority.revoke(revoke, peer)
        json_response(resp, {"status": "ok"})
