"""The falcon application: every route at `/` and under `/1.0`, errors in step-ca's form."""

from __future__ import annotations

from typing import Any

import falcon

from api import (
    acme,
    admin_eab,
    health,
    openapi,
    provisioners,
    renew,
    revocation,
    revoke,
    roots,
    sign,
    ssh,
)
from api.metrics import RequestMetrics
from api.middleware import RequestLog
from api.render import (
    handle_ca_error,
    handle_http_error,
    handle_keystore_error,
    handle_unexpected,
)
from appliance.acme.problems import ACMEProblem
from appliance.authority import Authority
from keystores import KeyStoreError
from pki.errors import CAError


class NoOptions:
    """step-ca's router has no OPTIONS handler, so OPTIONS is a 405 like any method a route
    lacks; falcon would otherwise answer every route's OPTIONS with a 200."""

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: object, params: dict[str, Any]
    ) -> None:
        if req.method == "OPTIONS" and resource is not None:
            allowed = [m for m in falcon.COMBINED_METHODS if hasattr(resource, f"on_{m.lower()}")]
            raise falcon.HTTPMethodNotAllowed([m for m in allowed if m != "OPTIONS"])


def create_app(
    authority: Authority, *, metrics: bool = False
) -> falcon.App[falcon.Request, falcon.Response]:
    """Wire resources to routes; no CA logic here. `metrics`: count requests for Prometheus
    (only when a listener serves them: otherwise nothing is paid per request)."""
    # list[Any]: mypy cannot join two middleware classes that meet different parts of falcon's
    # middleware union.
    middleware: list[Any] = [RequestLog(), NoOptions()]
    if metrics:
        middleware.append(RequestMetrics())
    app = falcon.App(media_type=falcon.MEDIA_JSON, middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = True
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(falcon.HTTPError, handle_http_error)
    app.add_error_handler(CAError, handle_ca_error)
    app.add_error_handler(KeyStoreError, handle_keystore_error)
    routes: list[tuple[str, object]] = [
        ("/health", health.Health()),
        ("/version", health.Version()),
        ("/root/{sha}", roots.Root(authority)),
        ("/roots", roots.Roots(authority)),
        ("/roots.pem", roots.RootsPEM(authority)),
        ("/intermediates", roots.Intermediates(authority)),
        ("/intermediates.pem", roots.IntermediatesPEM(authority)),
        ("/federation", roots.Federation(authority)),
        ("/provisioners", provisioners.Provisioners(authority)),
        ("/provisioners/{kid}/encrypted-key", provisioners.EncryptedKey(authority)),
        ("/sign", sign.Sign(authority)),
        ("/renew", renew.Renew(authority)),
        ("/re-sign", renew.Renew(authority)),
        ("/rekey", renew.Rekey(authority)),
        ("/revoke", revoke.Revoke(authority)),
        ("/crl", revocation.CRL(authority)),
        ("/intermediate.crt", revocation.IntermediateDER(authority)),
        ("/openapi.json", openapi.OpenAPI()),
    ]
    routes += ssh.routes(authority)
    ocsp = revocation.OCSP(authority)
    routes.append(("/ocsp", ocsp))
    for path, resource in routes:
        app.add_route(path, resource)
        app.add_route("/1.0" + path, resource)
    app.add_sink(ocsp.sink, prefix=r"^(/1\.0)?/ocsp/")
    app.add_error_handler(ACMEProblem, acme.error_handler(authority))
    for path, resource in acme.routes(authority):  # not under /1.0, as step-ca
        app.add_route(path, resource)
    for path, resource in admin_eab.routes(authority):  # only with enableAdmin
        app.add_route(path, resource)
    return app
