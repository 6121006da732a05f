"""The device authorization grant (RFC 8628) of the test identity provider (tests/oidc_idp.py).

`/device/code` hands out a device code and a user code; the user decides at the verification
URI (`/device?user_code=...&decision=approve|deny`), or `decision` decides for every new device;
until then polls of the token endpoint answer `authorization_pending`, after the errors queued
in `script` (e.g. `slow_down`).
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

Response = tuple[int, dict[str, str], bytes]


class Provider(Protocol):
    """What the grant needs of the identity provider."""

    client_id: str

    @property
    def url(self) -> str: ...

    def device_tokens(self, scope: str) -> Response: ...

    def json_response(self, status: int, body: Any) -> Response: ...


@dataclass
class _Device:
    user_code: str
    scope: str
    created: float
    decision: str | None = None  # "approve", "deny" or "expire"


class DeviceGrants:
    """Device codes handed out, and how the provider answers their polls."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self.interval = 5
        self.expires_in = 600
        self.complete_uri = False  # also send verification_uri_complete
        self.decision: str | None = None
        self.script: list[str] = []
        self.requests: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._devices: dict[str, _Device] = {}

    def authorize(self, form: dict[str, str]) -> Response:
        """The device authorization endpoint."""
        self.requests.append(dict(form))
        json = self.provider.json_response
        if form.get("client_id") != self.provider.client_id:
            return json(401, {"error": "invalid_client"})
        device_code = secrets.token_urlsafe(32)
        user_code = "-".join(secrets.token_hex(2).upper() for _ in range(2))
        with self._lock:
            self._devices[device_code] = _Device(
                user_code, form.get("scope", ""), time.monotonic(), self.decision
            )
        url = self.provider.url
        body: dict[str, Any] = {
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": f"{url}/device",
            "expires_in": self.expires_in,
            "interval": self.interval,
        }
        if self.complete_uri:
            body["verification_uri_complete"] = f"{url}/device?user_code={user_code}"
        return json(200, body)

    def decide(self, query: dict[str, str]) -> Response:
        """The user at the verification URI: approve (the default) or deny a user code."""
        decision = query.get("decision", "approve")
        with self._lock:
            found = [d for d in self._devices.values() if d.user_code == query.get("user_code")]
            for device in found:
                device.decision = decision
        if not found or decision not in ("approve", "deny"):
            return 400, {"Content-Type": "text/plain"}, b"unknown user code"
        return 200, {"Content-Type": "text/plain"}, f"device {decision}d".encode()

    def poll(self, device_code: str) -> Response:
        """The token endpoint for the device_code grant type."""
        json = self.provider.json_response
        with self._lock:
            device = self._devices.get(device_code)
            scripted = self.script.pop(0) if device and self.script else None
        if device is None:
            return json(400, {"error": "invalid_grant", "error_description": "unknown code"})
        if scripted:
            return json(400, {"error": scripted})
        if device.decision == "expire" or time.monotonic() - device.created > self.expires_in:
            return json(400, {"error": "expired_token"})
        if device.decision == "deny":
            return json(400, {"error": "access_denied"})
        if device.decision != "approve":
            return json(400, {"error": "authorization_pending"})
        with self._lock:
            self._devices.pop(device_code, None)
        return self.provider.device_tokens(device.scope)
