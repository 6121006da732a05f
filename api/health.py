"""`/health` and `/version`."""

from __future__ import annotations

import falcon

from api.render import GetResource, json_response

VERSION = "0.30.2"


class Health(GetResource):
    """Liveness: the process answers and the CA is loaded."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        json_response(resp, {"status": "ok"})


class Version(GetResource):
    """The step-ca version we are compatible with (clients compare it)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        json_response(resp, {"version": VERSION})
