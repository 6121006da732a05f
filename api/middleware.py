"""The request log: one INFO line per request, with an id the client can quote.

The id comes from the client's `X-Request-Id` when it is short and plain (so a proxy's id
carries through), else it is made here; either way it is sent back in `X-Request-Id`, and
every record logged while the request is served carries it (see appliance.logs.REQUEST_ID).

Resources add what only they know to `req.context`:
- `issued`: the SignResult of a sign/renew/rekey (subject and serial are read from its
  certificate only when the line is written, so `--quiet` pays nothing);
- `provisioner`, `serial`: for revocation;
- `route`: for a sink, which has no route template.
"""

from __future__ import annotations

import logging
import os
import re
import time
from typing import Any

import falcon
from cryptography import x509
from cryptography.x509.oid import NameOID

from appliance.authority import SignResult
from appliance.logs import REQUEST_ID

log = logging.getLogger("stepstone.request")

HEADER = "X-Request-Id"
_SANE_ID = re.compile(r"[A-Za-z0-9._:+/=@-]{1,128}")


def request_id(given: str | None) -> str:
    """The client's id if it is short and plain, else a new random one."""
    if given is not None and _SANE_ID.fullmatch(given):
        return given
    return os.urandom(16).hex()


def common_name(cert: x509.Certificate) -> str:
    """The subject's common name, as step-ca logs it; the whole subject when it has none."""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if names:
        value = names[0].value
        return value if isinstance(value, str) else value.decode("utf-8", "replace")
    return cert.subject.rfc4514_string()


class RequestLog:
    """falcon middleware: the request id in, the request line and the id out."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        rid = request_id(req.get_header(HEADER))
        req.context.request_id = rid
        req.context.log_started = time.perf_counter()
        req.context.log_token = REQUEST_ID.set(rid)

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        ctx = req.context
        rid = ctx.get("request_id")
        if rid is None:  # an earlier middleware refused the request before ours ran
            rid = ctx.request_id = request_id(req.get_header(HEADER))
        resp.set_header(HEADER, rid)
        try:
            if log.isEnabledFor(logging.INFO):
                log.info("request", extra=self.fields(req, resp, rid))
        finally:
            token = ctx.get("log_token")
            if token is not None:
                REQUEST_ID.reset(token)
                ctx.log_token = None

    @staticmethod
    def fields(req: falcon.Request, resp: falcon.Response, rid: str) -> dict[str, Any]:
        """The request line's fields; client-given values are escaped by the formatter."""
        ctx = req.context
        started = ctx.get("log_started")
        fields: dict[str, Any] = {
            "request_id": rid,
            "method": req.method,
            "path": req.path,
            "route": req.uri_template or ctx.get("route"),
            "status": resp.status_code,
            "duration_ms": (
                round((time.perf_counter() - started) * 1000, 2) if started is not None else None
            ),
            "remote": req.remote_addr,
            "provisioner": ctx.get("provisioner"),
        }
        issued: SignResult | None = ctx.get("issued")
        if issued is not None:
            fields["provisioner"] = issued.provisioner
            fields["subject"] = common_name(issued.certificate)
            fields["serial"] = str(issued.certificate.serial_number)
        elif (serial := ctx.get("serial")) is not None:
            fields["serial"] = str(serial)
        return fields
