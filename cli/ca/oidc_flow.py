"""The OIDC token flow: log in at the identity provider in a browser, the ID token is the token.

What `step ca token` / `step ca certificate` do with an OIDC provisioner (step runs
`step oauth --oidc --bare --provider ... --client-id ... --client-secret ... [--listen ...]`):
discover the provider's endpoints, listen on a loopback port, send the browser to the
authorization endpoint (authorization code with PKCE S256, random `state` and `nonce`), take
the code on the redirect, exchange it at the token endpoint and return the `id_token`. The
flow itself is `step oauth`'s (cli.oauth_flow, cli.oauth_loopback).

Tests and headless setups can set `TokenRequest.options["browser"]` to a callable taking the
URL, or the environment variable `STEP_OIDC_BROWSER_CMD` to a command (`%s` is replaced by the
URL, or the URL is appended).
"""

from __future__ import annotations

from typing import Any

from cli.ca import ui
from cli.ca.flows import TokenRequest
from cli.common import CLIError
from cli.oauth_flow import DEFAULT_SCOPE, Client, discover, pkce_pair
from cli.oauth_loopback import BROWSER_ENV, LOGIN_TIMEOUT, Browser, loopback_login, open_browser
from provisioners.oidc import issuer_subject_uri

__all__ = [
    "BROWSER_ENV",
    "csr_names",
    "oidc_flow",
    "oidc_login",
    "open_browser",
    "pkce_pair",
]


def oidc_login(
    provisioner: dict[str, Any],
    *,
    browser: Browser | None = None,
    timeout: float = LOGIN_TIMEOUT,
) -> str:
    """Run the browser login against the provisioner's identity provider; the ID token."""
    endpoint = str(provisioner.get("configurationEndpoint") or "")
    client_id = str(provisioner.get("clientID") or "")
    if not endpoint or not client_id:
        raise CLIError(
            f"provisioner {provisioner.get('name')!r} has no configurationEndpoint or clientID"
        )
    scopes = provisioner.get("scopes")
    scope = " ".join(str(s) for s in scopes) if isinstance(scopes, list) and scopes else None
    auth_params = []
    for item in provisioner.get("authParams") or []:
        key, _, value = str(item).partition("=")
        if key:
            auth_params.append((key, value))
    client = Client(
        discover(endpoint),
        client_id,
        str(provisioner.get("clientSecret") or ""),
        scope=scope or DEFAULT_SCOPE,
        auth_params=auth_params,
    )
    token = loopback_login(
        client,
        listen=str(provisioner.get("listenAddress") or "") or None,
        browser=browser,
        timeout=timeout,
    )
    if not token.id_token:
        raise CLIError("the identity provider did not return an id_token")
    return token.id_token


def oidc_flow(req: TokenRequest, provisioner: dict[str, Any]) -> str:
    """The OIDC flow of `step ca token`/`step ca certificate`: the ID token is the token."""
    ui.selected(
        "Provisioner",
        f"{provisioner.get('name')} (OIDC) [client: {provisioner.get('clientID')}]",
    )
    browser = req.options.get("browser")
    if browser is not None and not callable(browser):
        raise CLIError("options['browser'] must be callable")
    timeout = float(req.options.get("oidc_timeout") or LOGIN_TIMEOUT)
    return oidc_login(provisioner, browser=browser, timeout=timeout)


def csr_names(claims: dict[str, Any], subject: str, sans: list[str]) -> tuple[str, list[str]]:
    """The CN and SANs step puts in the CSR for an OIDC token (step's CreateSignRequest).

    No `--san` and the subject argument is the token's e-mail: CN = `sub`, SANs = the e-mail
    and `<iss>#<sub>` (what the CA will issue). No `--san` otherwise: CN and SAN = subject.
    With `--san`: CN = subject, SANs = the flags.
    """
    if sans:
        return subject, list(sans)
    email = claims.get("email")
    sub = claims.get("sub")
    if (
        isinstance(email, str)
        and email
        and isinstance(sub, str)
        and sub
        and subject.casefold() == email.casefold()
    ):
        names = [email]
        uri = issuer_subject_uri(str(claims.get("iss") or ""), sub)
        if uri:
            names.append(uri)
        return sub, names
    return subject, [subject]
