"""The HTTPS client of the CA API, trusting only the CA's root."""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509

from cli.common import CLIError
from pki.fingerprint import certificate_fingerprint, normalize_fingerprint

USER_AGENT = "Stepstone CLI/0.1.0"


def _error_message(resp: httpx.Response) -> str:
    try:
        body = resp.json()
        message = str(body["message"])
    except (ValueError, KeyError, TypeError):
        message = f"{resp.request.method} {resp.request.url} failed: {resp.status_code}"
    if os.environ.get("STEPDEBUG") == "1":
        return f"{message}\n(HTTP {resp.status_code} from {resp.request.url})"
    return f"{message}\nRe-run with STEPDEBUG=1 for more info."


class CAClient:
    """One CA at `ca_url`; TLS verified against `root` (or not at all when `insecure`)."""

    def __init__(
        self,
        ca_url: str,
        root: Path | None = None,
        *,
        insecure: bool = False,
        client_cert: tuple[Path, Path] | None = None,
        key_password: bytes | None = None,
    ) -> None:
        self.ca_url = ca_url.rstrip("/")
        if insecure:
            verify: ssl.SSLContext | bool = False
        else:
            if root is None:
                raise CLIError("a root certificate is required to trust the CA")
            try:
                verify = ssl.create_default_context(cafile=str(root))
            except (OSError, ssl.SSLError) as exc:
                raise CLIError(f"error loading root certificate {root}: {exc}") from None
            if client_cert is not None:
                try:
                    verify.load_cert_chain(
                        str(client_cert[0]), str(client_cert[1]), password=key_password
                    )
                except (OSError, ssl.SSLError) as exc:
                    raise CLIError(f"error loading client certificate: {exc}") from None
        self._http = httpx.Client(
            base_url=self.ca_url, verify=verify, timeout=30.0, headers={"User-Agent": USER_AGENT}
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CAClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request; transport failures and error statuses become one-line CLIErrors."""
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            reason = str(exc) or type(exc).__name__
            if "CERTIFICATE_VERIFY_FAILED" in reason:
                raise CLIError(
                    f"client {method} {self.ca_url}{path} failed: tls: the CA's certificate is "
                    "not trusted by the root certificate"
                ) from None
            raise CLIError(f"client {method} {self.ca_url}{path} failed: {reason}") from None
        except httpx.HTTPError as exc:
            raise CLIError(f"client {method} {self.ca_url}{path} failed: {exc}") from None
        if resp.status_code >= 400:
            raise CLIError(_error_message(resp))
        return resp

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """A request whose answer must be a JSON object."""
        resp = self.request(method, path, **kwargs)
        try:
            body = resp.json()
        except ValueError:
            raise CLIError(f"error decoding the CA's answer to {path}") from None
        if not isinstance(body, dict):
            raise CLIError(f"error decoding the CA's answer to {path}")
        return body

    # --- the API --------------------------------------------------------------------------

    def health(self) -> str:
        return str(self.json("GET", "/health").get("status", ""))

    def root(self, fingerprint: str) -> x509.Certificate:
        """GET /root/{sha}, then check the answer really has that fingerprint."""
        want = normalize_fingerprint(fingerprint)
        body = self.json("GET", f"/root/{want}")
        try:
            cert = x509.load_pem_x509_certificate(str(body.get("ca", "")).encode())
        except ValueError:
            raise CLIError("error parsing the root certificate sent by the CA") from None
        if certificate_fingerprint(cert) != want:
            raise CLIError(
                "The request could not be completed: root certificate fingerprint does not match."
            )
        return cert

    def cert_list(self, path: str) -> list[x509.Certificate]:
        """GET /roots or /federation: `{"crts": [PEM...]}`."""
        body = self.json("GET", path)
        try:
            return [x509.load_pem_x509_certificate(str(c).encode()) for c in body["crts"]]
        except (KeyError, TypeError, ValueError):
            raise CLIError(f"error parsing the certificates sent by the CA at {path}") from None

    def provisioners(self) -> list[dict[str, Any]]:
        """Every provisioner, following the cursor (100 a page, as step asks)."""
        out: list[dict[str, Any]] = []
        cursor = ""
        for _ in range(10_000):
            params = {"limit": "100"}
            if cursor:
                params["cursor"] = cursor
            body = self.json("GET", "/provisioners", params=params)
            items = body.get("provisioners") or []
            if not isinstance(items, list):
                raise CLIError("error decoding the provisioner list")
            out += [p for p in items if isinstance(p, dict)]
            cursor = str(body.get("nextCursor") or "")
            if not cursor:
                break
        return out

    def encrypted_key(self, kid: str) -> str:
        return str(self.json("GET", f"/provisioners/{kid}/encrypted-key").get("key", ""))

    def renew(self, bearer: str | None = None) -> dict[str, Any]:
        """POST /renew: by the client certificate, or by a bearer token when given."""
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        return self.json("POST", "/1.0/renew", headers=headers)

    def rekey(self, csr_pem: str) -> dict[str, Any]:
        return self.json("POST", "/1.0/rekey", json={"csr": csr_pem})

    def revoke(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.json("POST", "/1.0/revoke", json=body)

    def sign(self, csr_pem: str, ott: str, not_before: str, not_after: str) -> dict[str, Any]:
        return self.json(
            "POST",
            "/1.0/sign",
            json={"csr": csr_pem, "ott": ott, "notAfter": not_after, "notBefore": not_before},
        )
