"""`step oauth`: an OAuth 2.0 access token or OIDC ID token from any provider.

Follows smallstep/cli's command/oauth/cmd.go: the same flags, defaults and output (Go's
indented JSON of the token response, `--bare` for the token alone, `--header` for an HTTP
Authorization header, `--oidc` for the ID token instead of the access token). Three ways to
log in: the browser with a redirect to a loopback listener (the default), the device
authorization grant (`--console`, or `--console-flow device`), and the out-of-band flow
(`--console-flow oob`: the user pastes the code). Google service accounts (`--account`,
`--jwt`) and the hidden implicit flow are not implemented, and there is no built-in client:
`--client-id` is always required.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import typer

from cli.common import CLIError
from cli.oauth_flow import (
    DEFAULT_SCOPE,
    KNOWN_PROVIDERS,
    Client,
    Endpoints,
    Token,
    device_flow,
    discover,
    manual_flow,
    parse_auth_params,
)
from cli.oauth_loopback import loopback_login
from provisioners.jwks import FetchError, check_url

_CONSOLE_FLOWS = ("device", "oob")


def _check_provider(provider: str) -> None:
    if provider in KNOWN_PROVIDERS:
        return
    try:
        check_url(provider, "provider")
    except FetchError:
        raise CLIError(
            f"invalid value '{provider}' for flag '--provider': use google, github or an "
            "https:// URL"
        ) from None


def _endpoints(
    provider: str, authorization: str, device_authorization: str, token: str, device: bool
) -> Endpoints:
    """The endpoints given as flags (step then ignores --provider), or else the provider's."""
    if not (authorization or device_authorization):
        if token:
            raise CLIError(
                "flag '--token-endpoint' requires flag '--authorization-endpoint' or "
                "'--device-authorization-endpoint'"
            )
        _check_provider(provider)
        return discover(provider, device=device)
    given = (
        ("--authorization-endpoint", authorization),
        ("--device-authorization-endpoint", device_authorization),
        ("--token-endpoint", token),
    )
    for flag, url in given:
        if url and not token:
            raise CLIError(f"flag '{flag}' requires flag '--token-endpoint'")
        if url:
            try:
                check_url(url, flag)
            except FetchError as exc:
                raise CLIError(str(exc)) from None
    return Endpoints(authorization, token, device_authorization)


def _output(tok: Token, *, oidc: bool, bare: bool, header: bool) -> str:
    if not (bare or header):
        return tok.to_json()
    value = tok.id_token if oidc else tok.access_token
    if not value:
        what = "an ID token (was the 'openid' scope asked for?)" if oidc else "an access token"
        raise CLIError(f"the provider did not return {what}")
    return f"Authorization: Bearer {value}" if header else value


def oauth_command(
    provider: str = typer.Option(
        "google", "--provider", "--idp", help="OAuth provider: google, github, or an issuer URL."
    ),
    email: str = typer.Option("", "--email", "-e", help="Email to authenticate (login hint)."),
    console: bool = typer.Option(
        False,
        "--console",
        "-c",
        help="Complete the flow while remaining only inside the terminal (the device flow "
        "unless --console-flow says otherwise).",
    ),
    console_flow: str = typer.Option(
        "",
        "--console-flow",
        metavar="flow",
        help="The flow for input constrained devices: device (RFC 8628 device authorization "
        "grant) or oob (out of band: paste the code the provider shows).",
    ),
    client_id: str = typer.Option("", "--client-id", help="OAuth client ID."),
    client_secret: str = typer.Option("", "--client-secret", help="OAuth client secret."),
    authorization_endpoint: str = typer.Option(
        "", "--authorization-endpoint", metavar="url", help="OAuth authorization endpoint."
    ),
    device_authorization_endpoint: str = typer.Option(
        "",
        "--device-authorization-endpoint",
        metavar="url",
        help="OAuth device authorization endpoint.",
    ),
    token_endpoint: str = typer.Option(
        "", "--token-endpoint", metavar="url", help="OAuth token endpoint."
    ),
    header: bool = typer.Option(
        False, "--header", help="Output an HTTP Authorization header (for use with curl)."
    ),
    oidc: bool = typer.Option(
        False, "--oidc", help="Output the OIDC ID token instead of the OAuth access token."
    ),
    bare: bool = typer.Option(False, "--bare", help="Only output the token."),
    scope: list[str] = typer.Option(
        [], "--scope", help="OAuth scope; repeat the flag for several (default: openid email)."
    ),
    auth_param: list[str] = typer.Option(
        [],
        "--auth-param",
        metavar="key=value",
        help="An additional parameter of the authorization URL; repeat the flag for several.",
    ),
    prompt: str = typer.Option(
        "",
        "--prompt",
        help="Whether the provider prompts for reauthentication and consent: none, login, "
        "consent or select_account (OpenID Connect values; providers may support fewer).",
    ),
    listen: str = typer.Option(
        "",
        "--listen",
        metavar="address",
        help="Callback listener address, e.g. ':10000' (default: 127.0.0.1 on a random port).",
    ),
    listen_url: str = typer.Option(
        "",
        "--listen-url",
        metavar="url",
        help="The redirect_uri in the authorization request, e.g. 'http://127.0.0.1:10000'.",
    ),
    redirect_url: str = typer.Option(
        "",
        "--redirect-url",
        metavar="url",
        help="The URL the browser is sent to when the OAuth flow is successful.",
    ),
) -> None:
    """Get an OAuth 2.0 access token or an OpenID Connect ID token from a provider.

    OAuth is an open standard for access delegation: it lets a program act
    for a user at a provider without knowing the user's password. By default
    the browser is sent to the provider's authorization page (authorization
    code flow with PKCE) and the provider redirects it back to a listener on
    127.0.0.1; --console logs in from the terminal alone.

    --provider is google, github, or the issuer URL of an OpenID Connect
    provider, whose endpoints are read from its discovery document
    (/.well-known/openid-configuration); --authorization-endpoint and
    --token-endpoint name the endpoints directly. --client-id is required.

    The output is the provider's token response as JSON; --bare prints only
    the access token, or the ID token with --oidc. The authorization URL is
    always printed on stderr; a browser is opened only when a display is
    available (STEP_OPEN_BROWSER=0 never opens one).

    Examples:

      $ step oauth --provider https://login.example.com \\
          --client-id my-client-id --client-secret my-client-secret

      $ step oauth --provider https://login.example.com \\
          --client-id my-client-id --client-secret my-client-secret --oidc --bare

      $ step oauth --client-id my-client-id --client-secret my-client-secret \\
          --listen :10000

      $ step oauth --provider https://login.example.com \\
          --client-id my-client-id --console

      $ step oauth --provider https://login.example.com \\
          --client-id my-client-id --console-flow oob

      $ step oauth --provider https://login.example.com --client-id my-client-id \\
          --scope openid --scope email --scope groups --auth-param access_type=offline
    """
    flow = console_flow.lower()
    if console_flow and flow not in _CONSOLE_FLOWS:
        raise CLIError(
            f"invalid value '{console_flow}' for flag '--console-flow'; options are device, oob"
        )
    if console and not flow:
        flow = "device"
    if not client_id:
        raise CLIError("flag '--client-id' is required")
    if listen_url and not urlsplit(listen_url).scheme:
        raise CLIError(f"invalid value '{listen_url}' for flag '--listen-url'")
    endpoints = _endpoints(
        provider,
        authorization_endpoint,
        device_authorization_endpoint,
        token_endpoint,
        device=flow == "device",
    )
    client = Client(
        endpoints,
        client_id,
        client_secret,
        scope=" ".join(scope) if scope else DEFAULT_SCOPE,
        prompt=prompt,
        login_hint=email,
        auth_params=parse_auth_params(auth_param),
    )
    if flow == "device":
        tok = device_flow(client)
    elif flow == "oob":
        tok = manual_flow(client)
    else:
        tok = loopback_login(
            client, listen=listen or None, listen_url=listen_url, terminal_redirect=redirect_url
        )
    typer.echo(_output(tok, oidc=oidc, bare=bare, header=header))
