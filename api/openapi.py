"""`GET /openapi.json`: the OpenAPI 3.1 description of every route (beyond step-ca).

The document is the file api/openapi.json, kept in the repository next to the routes it
describes (tests/api/test_openapi.py checks that the two agree) and shipped as package data.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

import falcon

from api.render import GetResource


@cache
def document() -> bytes:
    """The document's bytes, read once per process."""
    return files("api").joinpath("openapi.json").read_bytes()


class OpenAPI(GetResource):
    """The document as it is in the repository."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.status = 200
        resp.content_type = "application/json"
        resp.data = document()
