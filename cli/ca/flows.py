"""Token flows by provisioner type: `step ca token` / `step ca certificate` pick the flow from
the type of the provisioner they use (JWK password, OIDC browser login, cloud instance
identity, X5C certificate; ACME has no token but an RFC 8555 order, cli.ca.acme_flow)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import typer

from cli.ca import ui
from cli.ca.client import CAClient
from cli.common import CLIError


@dataclass
class TokenRequest:
    """Everything a flow may need to make one token."""

    client: CAClient
    root: Path
    root_fingerprint: str
    subject: str
    sans: list[str]
    audience: str  # the CA URL with the method's path, e.g. https://ca:9000/1.0/sign
    not_before: datetime
    expires: datetime
    password_file: Path | None = None
    # Flow-specific flags (x5c_cert, x5c_key, listen, browser, metadata_url, ...).
    options: dict[str, Any] = field(default_factory=dict)


Flow = Callable[[TokenRequest, dict[str, Any]], str]

# provisioner type (upper case) -> "module:function"; loaded on first use.
FLOWS: dict[str, str] = {
    "JWK": "cli.ca.tokens:jwk_flow",
    "OIDC": "cli.ca.oidc_flow:oidc_flow",
    "AWS": "cli.ca.cloud_flows:aws_flow",
    "GCP": "cli.ca.cloud_flows:gcp_flow",
    "AZURE": "cli.ca.cloud_flows:azure_flow",
    "X5C": "cli.ca.x5c_flow:x5c_flow",
    # No token: raises ACMETokenError, on which `step ca certificate`/`sign` run ACME.
    "ACME": "cli.ca.acme_flow:acme_token_flow",
}


def flow_for(kind: str) -> Flow | None:
    target = FLOWS.get(kind.upper())
    if target is None:
        return None
    module_name, _, func = target.partition(":")
    try:
        return cast(Flow, getattr(importlib.import_module(module_name), func))
    except (ImportError, AttributeError):
        return None


def _label(p: dict[str, Any]) -> str:
    kind = str(p.get("type", "")).upper()
    if kind == "JWK":
        return f"{p.get('name')} (JWK) [kid: {(p.get('key') or {}).get('kid')}]"
    if kind == "OIDC":
        return f"{p.get('name')} (OIDC) [client: {p.get('clientID')}]"
    return f"{p.get('name')} ({p.get('type')})"


def choose_provisioner(
    provisioners: list[dict[str, Any]],
    name: str | None,
    kid: str | None,
    kind: str | None = None,
) -> dict[str, Any]:
    """Pick by `--provisioner`/`--kid` (and type, e.g. X5C when `--x5c-cert` is given), or
    the only usable one, or ask on a terminal."""
    usable = [p for p in provisioners if flow_for(str(p.get("type", ""))) is not None]
    usable = [p for p in usable if p.get("state") != "Uninitialized"]
    if kind:
        usable = [p for p in usable if str(p.get("type", "")).upper() == kind]
    if name:
        usable = [p for p in usable if p.get("name") == name]
    if kid:
        usable = [p for p in usable if (p.get("key") or {}).get("kid") == kid]
    if not usable:
        wanted = f" named {name!r}" if name else ""
        raise CLIError(f"cannot find a provisioner{wanted} on the CA that step can use")
    if len(usable) == 1:
        return usable[0]
    if not sys.stdin.isatty():
        names = ", ".join(str(p.get("name")) for p in usable)
        raise CLIError(f"more than one provisioner ({names}): use '--provisioner NAME'")
    for i, p in enumerate(usable, 1):
        ui.note(f"  {i}) {_label(p)}")
    index: int = typer.prompt("What provisioner key do you want to use?", type=int)
    if not 1 <= index <= len(usable):
        raise CLIError("invalid provisioner selection")
    return usable[index - 1]


def make_token(req: TokenRequest, provisioner: dict[str, Any]) -> str:
    """Run the flow of the provisioner's type."""
    flow = flow_for(str(provisioner.get("type", "")))
    if flow is None:
        raise CLIError(f"provisioner type {provisioner.get('type')!r} is not supported by step")
    return flow(req, provisioner)
