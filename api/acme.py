"""ACME (RFC 8555) routes at `/acme/{provisioner}/...` and `/2.0/acme/{provisioner}/...`:
parse and check the JWS envelope (url, nonce), call appliance.acme.service, render objects
with links built as step-ca builds them (`https://<dnsNames[0]>[:port]/acme/<name>/...`)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import falcon

from appliance.acme import jws
from appliance.acme.problems import ACMEProblem, malformed, not_found
from appliance.acme.service import ACME, Account, KeyInUse
from appliance.acme.store import Row, Store, aware
from appliance.authority import Authority, pem
from provisioners.acme import ACMEProvisioner

MAX_BODY = 64 * 1024
PREFIXES = ("/acme", "/2.0/acme")


def _time(value: datetime | None) -> str | None:
    return aware(value).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def _serial(text: str) -> bool:
    """A certificate id as this CA writes one: a decimal serial (at most 160 bits)."""
    return text.isascii() and text.isdigit() and len(text) <= 49


class Context:
    """What every ACME resource shares: the authority, the store, the link builder."""

    def __init__(self, authority: Authority) -> None:
        self.authority = authority
        self.store = Store(authority.repository.engine)

    def service(self, name: str) -> ACME:
        prov = self.authority.registry.by_name(name)
        if not isinstance(prov, ACMEProvisioner):
            raise ACMEProblem("accountDoesNotExist", f"provisioner {name!r} not found", 404)
        return ACME(self.authority, prov, self.store)

    def link(self, name: str, *parts: str) -> str:
        base = f"{self.authority.config.base_url}/acme/{quote(name, safe='')}"
        return "/".join([base, *parts])

    def headers(self, resp: falcon.Response, name: str) -> None:
        """Every ACME answer: a fresh nonce, the directory link, no caching."""
        resp.set_header("Replay-Nonce", self.store.new_nonce())
        resp.set_header("Cache-Control", "no-store")
        resp.append_header("Link", f'<{self.link(name, "directory")}>;rel="index"')

    def problem(
        self, req: falcon.Request, resp: falcon.Response, ex: ACMEProblem, params: dict[str, Any]
    ) -> None:
        resp.status = ex.status
        resp.content_type = "application/problem+json"
        resp.text = json.dumps(ex.document())
        name = params.get("provisioner")
        # A nonce only from a provisioner that exists: a 404 costs no database row.
        if isinstance(name, str) and isinstance(
            self.authority.registry.by_name(name), ACMEProvisioner
        ):
            self.headers(resp, name)
            if isinstance(ex, KeyInUse):
                resp.set_header("Location", self.link(name, "account", ex.account_id))

    # --- the JWS envelope -----------------------------------------------------------------

    def read(self, req: falcon.Request, provisioner: str) -> tuple[ACME, jws.Request]:
        """The service and the parsed request, its url and nonce checked (the signature is
        checked by the service, which knows the key)."""
        acme = self.service(provisioner)
        if req.content_type is None or not req.content_type.startswith("application/jose+json"):
            raise ACMEProblem("malformed", "expected content-type application/jose+json", 415)
        if (req.content_length or 0) > MAX_BODY:
            raise malformed("request body too large")
        request = jws.parse(req.bounded_stream.read(MAX_BODY + 1)[:MAX_BODY])
        if not self.is_request_url(request.url, req):
            raise ACMEProblem("unauthorized", f"url header {request.url!r} is not this URL", 401)
        if not self.store.use_nonce(request.nonce):
            raise ACMEProblem("badNonce", "the nonce is unknown, expired or already used")
        return acme, request

    def is_request_url(self, url: str, req: falcon.Request) -> bool:
        """Whether the JWS `url` is the URL this request was sent to (RFC 8555 §6.4), its
        origin the one links are built with (`https://<dnsNames[0]>[:port]`)."""
        got, base = urlsplit(url), urlsplit(self.authority.config.base_url)
        try:
            origin = (got.scheme.lower(), got.hostname, got.port or 443)
        except ValueError:  # a port that is not a number
            return False
        return (
            origin == (base.scheme, base.hostname, base.port or 443)
            and unquote(got.path) == req.path
            and got.query == req.query_string
            and not got.fragment
        )

    def account(self, req: falcon.Request, provisioner: str) -> tuple[ACME, jws.Request, Account]:
        acme, request = self.read(req, provisioner)
        return acme, request, acme.account_for(request, self.link(provisioner, "account", ""))

    # --- objects --------------------------------------------------------------------------

    def render_account(self, name: str, row: Row) -> dict[str, Any]:
        return {
            "status": row["status"],
            "contact": json.loads(row["contact"]),
            "orders": self.link(name, "account", row["id"], "orders"),
        }

    def render_order(self, name: str, row: Row) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": row["status"],
            "expires": _time(row["expires"]),
            "identifiers": json.loads(row["identifiers"]),
        }
        if row["not_before"]:
            out["notBefore"] = _time(row["not_before"])
        if row["not_after"]:
            out["notAfter"] = _time(row["not_after"])
        if row["error"]:
            out["error"] = json.loads(row["error"])
        out["authorizations"] = [self.link(name, "authz", a) for a in json.loads(row["authz_ids"])]
        out["finalize"] = self.link(name, "order", row["id"], "finalize")
        if row["serial"]:
            out["certificate"] = self.link(name, "certificate", row["serial"])
        return out

    def render_challenge(self, name: str, row: Row) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": row["kind"],
            "status": row["status"],
            "token": row["token"],
            "url": self.link(name, "challenge", row["authz_id"], row["id"]),
        }
        if row["validated"] and row["status"] == "valid":  # processing: when it started
            out["validated"] = _time(row["validated"])
        if row["error"]:
            out["error"] = json.loads(row["error"])
        return out

    def render_authz(self, name: str, row: Row, challenges: list[Row]) -> dict[str, Any]:
        # RFC 8555 §7.1.4, as step-ca: a wildcard's authorization names its base domain
        out: dict[str, Any] = {
            "identifier": {"type": row["kind"], "value": row["value"]},
            "status": row["status"],
            "expires": _time(row["expires"]),
            "challenges": [self.render_challenge(name, c) for c in challenges],
        }
        if row["wildcard"]:
            out["wildcard"] = True
        return out


def _json(resp: falcon.Response, body: Any, status: int = 200) -> None:
    resp.status = status
    resp.content_type = "application/json"
    resp.text = json.dumps(body)


class _Resource:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx


class Directory(_Resource):
    def on_head(self, req: falcon.Request, resp: falcon.Response, provisioner: str) -> None:
        self.on_get(req, resp, provisioner)

    def on_get(self, req: falcon.Request, resp: falcon.Response, provisioner: str) -> None:
        acme = self.ctx.service(provisioner)
        conf, link = acme.prov.acme, self.ctx.link
        meta: dict[str, Any] = {}
        if conf.termsOfService:
            meta["termsOfService"] = conf.termsOfService
        if conf.website:
            meta["website"] = conf.website
        if conf.caaIdentities:
            meta["caaIdentities"] = conf.caaIdentities
        meta["externalAccountRequired"] = bool(conf.requireEAB)
        _json(
            resp,
            {
                "newNonce": link(provisioner, "new-nonce"),
                "newAccount": link(provisioner, "new-account"),
                "newOrder": link(provisioner, "new-order"),
                "revokeCert": link(provisioner, "revoke-cert"),
                "keyChange": link(provisioner, "key-change"),
                "meta": meta,
            },
        )


class NewNonce(_Resource):
    def on_head(self, req: falcon.Request, resp: falcon.Response, provisioner: str) -> None:
        self.ctx.service(provisioner)
        self.ctx.headers(resp, provisioner)
        resp.status = 200

    def on_get(self, req: falcon.Request, resp: falcon.Response, provisioner: str) -> None:
        self.ctx.service(provisioner)
        self.ctx.headers(resp, provisioner)
        resp.status = 204


class NewAccount(_Resource):
    def on_post(self, req: falcon.Request, resp: falcon.Response, provisioner: str) -> None:
        acme, request = self.ctx.read(req, provisioner)
        row, created = acme.new_account(request)
        self.ctx.headers(resp, provisioner)
        resp.set_header("Location", self.ctx.link(provisioner, "account", row["id"]))
        _json(resp, self.ctx.render_account(provisioner, row), 201 if created else 200)


class AccountResource(_Resource):
    def on_post(
        self, req: falcon.Request, resp: falcon.Response, provisioner: str, account_id: str
    ) -> None:
        acme, request, account = self.ctx.account(req, provisioner)
        if account.id != account_id:
            raise ACMEProblem("unauthorized", "the account is not the signer's", 401)
        row = acme.update_account(account, request.json_payload())
        self.ctx.headers(resp, provisioner)
        _json(resp, self.ctx.render_account(provisioner, row))


class AccountOrders(_Resource):
    def on_post(
        self, req: falcon.Request, resp: falcon.Response, provisioner: str, account_id: str
    ) -> None:
        _, _, account = self.ctx.account(req, provisioner)
        if account.id != account_id:
            raise ACMEProblem("unauthorized", "the account is not the signer's", 401)
        ids = self.ctx.store.orders_of(account.id)
        self.ctx.headers(resp, provisioner)
        _json(resp, {"orders": [self.ctx.link(provisioner, "order", i) for i in ids]})


class NewOrder(_Resource):
    def on_post(self, req: falcon.Request, resp: falcon.Response, provisioner: str) -> None:
        acme, request, account = self.ctx.account(req, provisioner)
        row = acme.new_order(account, request.json_payload())
        self.ctx.headers(resp, provisioner)
        resp.set_header("Location", self.ctx.link(provisioner, "order", row["id"]))
        _json(resp, self.ctx.render_order(provisioner, row), 201)


class Order(_Resource):
    def on_post(
        self, req: falcon.Request, resp: falcon.Response, provisioner: str, order_id: str
    ) -> None:
        acme, _, account = self.ctx.account(req, provisioner)
        row = acme.order(account, order_id)
        self.ctx.headers(resp, provisioner)
        if row["status"] in ("pending", "processing"):
            resp.set_header("Retry-After", "1")
        resp.set_header("Location", self.ctx.link(provisioner, "order", order_id))
        _json(resp, self.ctx.render_order(provisioner, row))


class Finalize(_Resource):
    def on_post(
        self, req: falcon.Request, resp: falcon.Response, provisioner: str, order_id: str
    ) -> None:
        acme, request, account = self.ctx.account(req, provisioner)
        row = acme.finalize(account, order_id, request.json_payload())
        req.context.provisioner = provisioner  # for the request log
        self.ctx.headers(resp, provisioner)
        resp.set_header("Location", self.ctx.link(provisioner, "order", order_id))
        _json(resp, self.ctx.render_order(provisioner, row))


class Authz(_Resource):
    def on_post(
        self, req: falcon.Request, resp: falcon.Response, provisioner: str, authz_id: str
    ) -> None:
        acme, _, account = self.ctx.account(req, provisioner)
        row, challenges = acme.authz(account, authz_id)
        self.ctx.headers(resp, provisioner)
        if row["status"] == "pending":
            resp.set_header("Retry-After", "1")
        _json(resp, self.ctx.render_authz(provisioner, row, challenges))


class Challenge(_Resource):
    def on_post(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        provisioner: str,
        authz_id: str,
        challenge_id: str,
    ) -> None:
        acme, request, account = self.ctx.account(req, provisioner)
        payload = request.json_payload()  # device-attest-01's attestation comes in it
        row = acme.start_challenge(
            account, authz_id, challenge_id, payload if request.payload else None
        )
        self.ctx.headers(resp, provisioner)
        # rel quoted as step-ca writes it: lego only finds `rel="up"`
        resp.append_header("Link", f'<{self.ctx.link(provisioner, "authz", authz_id)}>;rel="up"')
        if row["status"] == "processing":
            resp.set_header("Retry-After", "1")
        _json(resp, self.ctx.render_challenge(provisioner, row))


class Certificate(_Resource):
    def on_post(
        self, req: falcon.Request, resp: falcon.Response, provisioner: str, cert_id: str
    ) -> None:
        _, _, account = self.ctx.account(req, provisioner)
        if not _serial(cert_id) or self.ctx.store.certificate_account(int(cert_id)) != account.id:
            raise not_found("certificate")
        cert = self.ctx.authority.repository.certificate(int(cert_id))
        if cert is None:
            raise not_found("certificate")
        self.ctx.headers(resp, provisioner)
        resp.status = 200
        resp.content_type = "application/pem-certificate-chain"
        resp.text = "".join(pem(c) for c in [cert, *self.ctx.authority.intermediates])


class KeyChange(_Resource):
    def on_post(self, req: falcon.Request, resp: falcon.Response, provisioner: str) -> None:
        acme, request = self.ctx.read(req, provisioner)
        row = acme.key_change(request, self.ctx.link(provisioner, "account", ""))
        self.ctx.headers(resp, provisioner)
        resp.set_header("Location", self.ctx.link(provisioner, "account", row["id"]))
        _json(resp, self.ctx.render_account(provisioner, row))


class RevokeCert(_Resource):
    def on_post(self, req: falcon.Request, resp: falcon.Response, provisioner: str) -> None:
        acme, request = self.ctx.read(req, provisioner)
        acme.revoke(request, self.ctx.link(provisioner, "account", ""))
        self.ctx.headers(resp, provisioner)
        resp.status = 200
        resp.text = ""


def routes(authority: Authority) -> list[tuple[str, object]]:
    """(route, resource) pairs under both prefixes; never under `/1.0`."""
    ctx = Context(authority)
    table: list[tuple[str, object]] = [
        ("directory", Directory(ctx)),
        ("new-nonce", NewNonce(ctx)),
        ("new-account", NewAccount(ctx)),
        ("account/{account_id}", AccountResource(ctx)),
        ("account/{account_id}/orders", AccountOrders(ctx)),
        ("new-order", NewOrder(ctx)),
        ("order/{order_id}", Order(ctx)),
        ("order/{order_id}/finalize", Finalize(ctx)),
        ("authz/{authz_id}", Authz(ctx)),
        ("challenge/{authz_id}/{challenge_id}", Challenge(ctx)),
        ("certificate/{cert_id}", Certificate(ctx)),
        ("revoke-cert", RevokeCert(ctx)),
        ("key-change", KeyChange(ctx)),
    ]
    return [(f"{p}/{{provisioner}}/{path}", res) for p in PREFIXES for path, res in table]


def error_handler(authority: Authority) -> Any:
    """The falcon error handler rendering ACMEProblem as a problem document."""
    return Context(authority).problem
