"""`step crypto jwt sign` and `verify`, registered on cli.crypto's `jwt_app`.

Follows smallstep/cli's command/crypto/jwt/{sign,verify}.go: a token needs iss, aud, sub and
a future exp unless `--subtle`; nbf and iat default to now and jti to 64 random hex digits;
the header is {alg, kid, typ: JWT} and, as go-jose writes maps, header and claims come out
with sorted keys. `verify` checks the signature, iss, aud, nbf and exp (no leeway, as step)
and prints the token as `jwt inspect` does. Signing and verifying are PyJWT's.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import jwt
import typer

from cli.common import CLIError, go_strerror
from cli.crypto_jose_key import StepKey, read_key, read_keyset, validate
from cli.jws_parse import parse_jws

__all__ = ["go_duration", "sign_command", "verify_command"]


def _read_payload(source: str | None) -> dict[str, Any]:
    """readPayload: a JSON object from a file, '-' (stdin), or stdin when it has data."""
    if source is None and sys.stdin.isatty():
        return {}
    if source in (None, "-"):
        data, where = sys.stdin.buffer.read(), "STDIN"
    else:
        try:
            data, where = Path(source).read_bytes(), source
        except OSError as exc:
            raise CLIError(f"open {source}: {go_strerror(exc)}") from None
    if source is None and not data.strip():
        return {}
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise CLIError(f"error decoding JSON from {where}: {exc}") from None
    if not isinstance(value, dict):
        raise CLIError(f"error decoding JSON from {where}: not a JSON object")
    return value


def _key_source(key: Path | None, jwks: Path | None, kid: str) -> None:
    if key is None and jwks is None:
        raise CLIError("either --key or --jwks must be used")
    if key is not None and jwks is not None:
        raise CLIError("flag '--key' and flag '--jwks' are mutually exclusive")


def _load(key: Path | None, jwks: Path | None, use: str, **options: Any) -> StepKey:
    if key is not None:
        return read_key(key, use, **options)
    assert jwks is not None
    return read_keyset(jwks, use, **options)


def sign_command(
    claims_file: str | None = typer.Argument(
        None, metavar="FILE", help="A JSON file of extra claims ('-' for standard input)."
    ),
    alg: str = typer.Option(
        "",
        "--alg",
        "--algorithm",
        metavar="algorithm",
        help="The signature or MAC algorithm (default: the key's).",
    ),
    iss: str = typer.Option("", "--iss", "--issuer", metavar="issuer", help="The issuer (iss)."),
    aud: list[str] = typer.Option(
        [], "--aud", "--audience", metavar="audience", help="An audience (aud); repeat for several."
    ),
    sub: str = typer.Option("", "--sub", "--subject", metavar="subject", help="The subject (sub)."),
    exp: int | None = typer.Option(
        None,
        "--exp",
        "--expiration",
        metavar="expiration",
        help="The expiration as a Unix timestamp.",
    ),
    nbf: int | None = typer.Option(
        None,
        "--nbf",
        "--not-before",
        metavar="not-before",
        help="The not-before Unix timestamp (default: now).",
    ),
    iat: int | None = typer.Option(
        None,
        "--iat",
        "--issued-at",
        metavar="issued-at",
        help="The issued-at Unix timestamp (default: now).",
    ),
    jti: str | None = typer.Option(
        None,
        "--jti",
        "--jwt-id",
        metavar="jti",
        help="The token ID (default: 64 random hex digits).",
    ),
    header: list[str] = typer.Option(
        [], "--header", metavar="key=value", help="An extra (string) header; repeat for several."
    ),
    key: Path | None = typer.Option(
        None, "--key", metavar="file", help="The private key: a JWK (maybe encrypted) or a PEM key."
    ),
    jwks: Path | None = typer.Option(
        None, "--jwks", metavar="jwks", help="A JWK set holding the key (needs --kid)."
    ),
    kid: str = typer.Option("", "--kid", metavar="kid", help="The ID of the key to sign with."),
    password_file: Path | None = typer.Option(
        None,
        "--password-file",
        metavar="file",
        help="The path to the <file> containing the password to decrypt the key.",
    ),
    no_kid: bool = typer.Option(
        False, "--no-kid", hidden=True, help="Leave kid out of the header."
    ),
    subtle: bool = typer.Option(
        False, "--subtle", hidden=True, help="Allow tokens without iss, aud, sub or exp."
    ),
) -> None:
    """Create a signed JSON Web Token (JWT).

    The claims are --iss, --aud, --sub, --exp, --nbf, --iat and --jti, plus those of a JSON
    file (or standard input), which override them. iss, aud, sub and a future exp are
    required unless --subtle is given; nbf and iat default to now, jti to a random value.
    The key comes from --key (a private JWK, a JWE-encrypted JWK or a PEM private key) or
    from a JWK set with --jwks and --kid.

    Examples:

      $ step crypto jwt sign --key jwk.json --iss joe --aud bob --sub hi --exp 1900000000

      $ echo '{"admin":true}' | step crypto jwt sign --key key.pem --alg ES256 \\
          --iss joe --aud bob --sub hi --exp $(date -d +5min +%s)

      $ step crypto jwt sign --jwks jwks.json --kid my-kid \\
          --iss joe --aud bob --sub hello --exp 1900000000
    """
    payload = _read_payload(claims_file)
    _key_source(key, jwks, kid)
    if jwks is not None and not kid:
        raise CLIError("flag '--jwks' requires the '--kid' flag")
    sk = _load(key, jwks, "sig", alg=alg, kid=kid, subtle=subtle, password_file=password_file)
    if sk.is_public:
        raise CLIError("cannot use a public key for signing")
    if sk.use not in ("sig", ""):
        raise CLIError(f"invalid jwk use: found '{sk.use}', expecting 'sig' (signature)")
    if not sk.alg:
        raise CLIError("flag '--alg' is required with the given key")
    validate(sk)
    now = int(time.time())
    if not subtle and exp and exp < now:
        raise CLIError("flag '--exp' must be in the future unless the '--subtle' flag is provided")
    if jti is None:
        jti = secrets.token_hex(32)
    elif not jti:
        jti = secrets.token_hex(20)
    claims: dict[str, Any] = {
        "iss": iss, "sub": sub, "aud": aud, "exp": exp, "nbf": nbf or now, "iat": iat or now,
        "jti": jti,
    }  # fmt: skip
    if not subtle:
        for flag in ("iss", "aud", "sub", "exp"):
            if not claims[flag]:
                raise CLIError(f"flag '--{flag}' is required unless '--subtle' is used")
    if len(aud) == 1:
        claims["aud"] = aud[0]  # some implementations only accept a string
    claims = {k: v for k, v in claims.items() if v} | payload
    headers: dict[str, Any] = {"typ": "JWT"}
    if sk.kid and not no_kid:
        headers["kid"] = sk.kid
    for item in header:
        name, sep, value = item.partition("=")
        if not sep:
            raise CLIError(f"invalid value '{item}' for flag '--header'")
        headers[name] = value
    signing_key: Any = sk.key  # a private key or a secret: checked above
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            token = jwt.encode(
                dict(sorted(claims.items())), signing_key, algorithm=sk.alg,
                headers=headers, sort_headers=True,
            )  # fmt: skip
    except (jwt.PyJWTError, TypeError, ValueError) as exc:
        raise CLIError(f"error serializing JWT: {exc}") from None
    typer.echo(token)


def go_duration(ms: int) -> str:
    """A millisecond count as Go's time.Duration prints it (1h2m3.5s, 2m0s, 500ms)."""
    if ms == 0:
        return "0s"
    sign, ms = ("-", -ms) if ms < 0 else ("", ms)
    if ms < 1000:
        return f"{sign}{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds = f"{rest // 1000}" + (f".{rest % 1000:03d}".rstrip("0") if rest % 1000 else "")
    text = f"{seconds}s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return sign + text


def _compact(token: str) -> str:
    """The compact form of a JWS that go-jose accepted (JSON form with one signature)."""
    if not token.startswith("{"):
        return token
    obj = json.loads(token)
    signature = obj["signatures"][0] if "signatures" in obj else obj
    return ".".join(
        [signature.get("protected", ""), obj.get("payload", ""), signature["signature"]]
    )


def _check_signature(token: str, sk: StepKey, header_alg: str) -> bytes:
    """The verified payload; the token's alg must suit the key (no alg=none, no key confusion)."""
    try:
        validate(StepKey(sk.key, use="sig", alg=header_alg))
    except CLIError:
        raise CLIError("validation failed: invalid signature") from None
    public: Any = sk.public().key
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            decoded = jwt.PyJWS().decode_complete(token, key=public, algorithms=[header_alg])
    except jwt.InvalidSignatureError:
        raise CLIError("validation failed: invalid signature") from None
    except (jwt.PyJWTError, TypeError, ValueError) as exc:
        raise CLIError(f"claim verify failed: {exc}") from None
    payload: bytes = decoded["payload"]
    return payload


def _numeric(claims: dict[str, Any], name: str) -> int | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CLIError(f"claim verify failed: json: cannot unmarshal {name} into a NumericDate")
    return int(value)


def _claim_errors(claims: dict[str, Any], iss: str, aud: str, no_exp_check: bool) -> list[str]:
    """validateClaimsWithLeeway with no leeway: every failed check, in step's order."""
    errors = []
    token_aud = claims.get("aud")
    audiences = [token_aud] if isinstance(token_aud, str) else token_aud or []
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise CLIError("claim verify failed: json: cannot unmarshal aud")
    if iss and iss != claims.get("iss"):
        errors.append("invalid issuer claim (iss)")
    if aud and aud not in audiences:
        errors.append("invalid audience claim (aud)")
    now_ms = int(time.time() * 1000)
    nbf, exp = _numeric(claims, "nbf"), _numeric(claims, "exp")
    if nbf is not None and now_ms < nbf * 1000:
        errors.append("token not valid yet (nbf)")
    if exp is not None and not no_exp_check and now_ms > exp * 1000:
        errors.append(f"token is expired by {go_duration(now_ms - exp * 1000)} (exp)")
    return errors


def verify_command(
    iss: str = typer.Option(
        "",
        "--iss",
        "--issuer",
        metavar="issuer",
        help="The issuer the iss claim must equal (required unless --subtle).",
    ),
    aud: str = typer.Option(
        "",
        "--aud",
        "--audience",
        metavar="audience",
        help="An audience the aud claim must hold (required unless --subtle).",
    ),
    alg: str = typer.Option(
        "",
        "--alg",
        "--algorithm",
        metavar="algorithm",
        help="The algorithm the token must be signed with; required when the key does not say.",
    ),
    key: Path | None = typer.Option(
        None,
        "--key",
        metavar="file",
        help="The key: a public or private JWK (maybe encrypted) or PEM key or certificate.",
    ),
    jwks: Path | None = typer.Option(
        None,
        "--jwks",
        metavar="jwks",
        help="A JWK set holding the key, chosen by --kid or the token's kid.",
    ),
    kid: str = typer.Option("", "--kid", metavar="kid", help="The ID of the key to verify with."),
    password_file: Path | None = typer.Option(
        None,
        "--password-file",
        metavar="file",
        help="The path to the <file> containing the password to decrypt the key.",
    ),
    no_exp_check: bool = typer.Option(
        False, "--no-exp-check", hidden=True, help="Accept an expired token (requires --insecure)."
    ),
    subtle: bool = typer.Option(
        False, "--subtle", hidden=True, help="Make --iss and --aud optional."
    ),
    insecure: bool = typer.Option(
        False, "--insecure", hidden=True, help="Allow --no-exp-check and default algorithms."
    ),
) -> None:
    """Verify the JSON Web Token (JWT) read from standard input and print it decoded.

    The signature is checked with the key, then the claims: iss must equal --iss, aud must
    hold --aud, and the token must be within its nbf and exp. Every failed check is listed
    on one line and the exit status is 1. --iss and --aud are required unless --subtle.

    Examples:

      $ echo $TOKEN | step crypto jwt verify --key jwk.pub.json --iss joe --aud bob

      $ echo $TOKEN | step crypto jwt verify --jwks jwks.json --iss joe --aud bob

      $ echo $TOKEN | step crypto jwt verify --key key.pub.pem --alg ES256 --iss joe --aud bob
    """
    from cli.crypto import inspect_token  # cli.crypto registers this command: import late

    token = sys.stdin.buffer.readline().decode("utf-8", "replace").strip()
    jws = parse_jws(token)
    _key_source(key, jwks, kid)
    header_kid = jws.header.get("kid")
    if jwks is not None and not kid:
        if not isinstance(header_kid, str) or not header_kid:
            raise CLIError("flag '--jwks' requires the '--kid' flag")
        kid = header_kid
    if not subtle and not iss:
        raise CLIError("flag '--iss' is required unless the '--subtle' flag is provided")
    if not subtle and not aud:
        raise CLIError("flag '--aud' is required unless the '--subtle' flag is provided")
    if no_exp_check and not insecure:
        raise CLIError("flag '--no-exp-check' requires the '--insecure' flag")
    sk = _load(key, jwks, "sig", alg=alg, kid=kid, subtle=subtle, no_defaults=not insecure,
               password_file=password_file)  # fmt: skip
    if not sk.alg:
        raise CLIError("flag '--alg' is required with the given key")
    validate(sk)
    if "crit" in jws.header:
        raise CLIError("validation failed: unrecognized critical headers (crit)")
    header_alg = jws.header.get("alg")
    if not isinstance(header_alg, str):
        raise CLIError("validation failed: invalid signature")
    if not subtle and alg and header_alg and alg != header_alg:
        raise CLIError(f"alg {alg} does not match the alg on JWT ({header_alg})")
    payload = _check_signature(_compact(token), sk, header_alg)
    try:
        claims = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise CLIError(f"claim verify failed: {exc}") from None
    if not isinstance(claims, dict):
        raise CLIError("claim verify failed: the payload is not a JSON object")
    errors = _claim_errors(claims, iss, aud, no_exp_check)
    if errors:
        raise CLIError(f"validation failed: {', '.join(errors)}")
    typer.echo(inspect_token(token), nl=False)
