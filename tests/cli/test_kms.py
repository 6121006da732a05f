"""`step kms create|key|sign|list` as a subprocess, keys in the file store."""

from __future__ import annotations

import base64
import json
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)

from appliance import ceremony
from tests.e2e.harness import STEP, clean_env, run_step
from tests.softhsm import MODULE, SoftHSM, Token, softhsm_session

PASSWORD = "kms-password"
DATA = b"the quick brown fox\x00\xff"


def _error(proc: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert proc.returncode == 1, proc.stdout
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert fragment in lines[0], proc.stderr


@pytest.fixture
def env(tmp_path: Path) -> tuple[Path, Path]:
    """(STEPPATH, password file)."""
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    return tmp_path / "step", pw


def _step(env: tuple[Path, Path], *args: str | Path, stdin: str | None = None,
          check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_step(list(args), env[0], stdin=stdin, check=check, cwd=env[0].parent)


def _sign_bytes(env: tuple[Path, Path], uri: str, *flags: str) -> bytes:
    """`step kms sign --format raw` with the data on stdin, as bytes."""
    proc = subprocess.run(
        [str(STEP), "kms", "sign", uri, "--password-file", str(env[1]), "--format", "raw",
         *flags],
        input=DATA, capture_output=True, env=clean_env(env[0]), timeout=120, check=True,
    )
    return proc.stdout


def test_commands_registered(env: tuple[Path, Path]) -> None:
    out = _step(env, "kms", "--help").stdout
    for command in ("create", "key", "sign", "list", "attest"):
        assert f" {command} " in out, command


def test_create_ec_default(env: tuple[Path, Path], tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "ec.key"
    proc = _step(env, "kms", "create", f"file:{key_file}", "--password-file", env[1])
    public = load_pem_public_key(proc.stdout.encode())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public.curve.name == "secp256r1"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")

    again = _step(env, "kms", "key", str(key_file), "--password-file", env[1])
    assert again.stdout == proc.stdout

    record = env[0] / "ceremony" / "record.jsonl"
    (entry,) = [json.loads(x) for x in record.read_text().splitlines()]
    assert entry["command"] == "step kms create"
    assert entry["key_uris"] == [str(key_file)]
    assert entry["public_key_sha256"] == [ceremony.public_key_sha256(public)]
    assert entry["details"] == {"kty": "EC", "crv": "P-256"}


def test_create_relative_path_and_record_flag(env: tuple[Path, Path], tmp_path: Path) -> None:
    record = tmp_path / "usb" / "record.jsonl"
    _step(env, "kms", "create", "rel.key", "--kty", "EC", "--crv", "P-384",
          "--password-file", env[1], "--record", record)
    assert (tmp_path / "rel.key").is_file()
    (entry,) = [json.loads(x) for x in record.read_text().splitlines()]
    assert entry["key_uris"] == [str(tmp_path / "rel.key")]
    assert not (env[0] / "ceremony").exists()


def test_create_existing_needs_force(env: tuple[Path, Path], tmp_path: Path) -> None:
    key_file = str(tmp_path / "k.key")
    first = _step(env, "kms", "create", key_file, "--password-file", env[1]).stdout
    _error(_step(env, "kms", "create", key_file, "--password-file", env[1], check=False),
           "step kms create: key already exists")
    second = _step(env, "kms", "create", key_file, "--force", "--password-file", env[1]).stdout
    assert first != second
    assert _step(env, "kms", "key", key_file, "--password-file", env[1]).stdout == second


def test_create_refuses_broken_record(env: tuple[Path, Path], tmp_path: Path) -> None:
    record = tmp_path / "record.jsonl"
    record.write_text("not json\n")
    _error(_step(env, "kms", "create", str(tmp_path / "k.key"), "--password-file", env[1],
                 "--record", record, check=False), "line 1: not JSON")
    assert not (tmp_path / "k.key").exists()


def test_create_file_needs_password(env: tuple[Path, Path], tmp_path: Path) -> None:
    _error(_step(env, "kms", "create", str(tmp_path / "k.key"), check=False),
           "file keys are encrypted: use '--password-file'")
    assert not (tmp_path / "k.key").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--kty", "DSA"], "unsupported key type 'DSA'"),
        (["--crv", "P-192"], "unsupported EC curve 'P-192'"),
        (["--kty", "RSA", "--size", "1024"], "RSA key size 1024 is too small"),
        (["--kty", "OKP", "--crv", "X25519"], "unsupported OKP curve 'X25519'"),
    ],
)
def test_create_bad_spec(env: tuple[Path, Path], tmp_path: Path, flags: list[str],
                         message: str) -> None:
    _error(_step(env, "kms", "create", str(tmp_path / "k.key"), *flags, "--password-file",
                 env[1], check=False), message)


def test_key_errors(env: tuple[Path, Path], tmp_path: Path) -> None:
    key_file = str(tmp_path / "k.key")
    _error(_step(env, "kms", "key", key_file, "--password-file", env[1], check=False),
           "step kms key: key not found")
    _step(env, "kms", "create", key_file, "--password-file", env[1])
    wrong = tmp_path / "wrong"
    wrong.write_text("nope\n")
    proc = _step(env, "kms", "key", key_file, "--password-file", wrong, check=False)
    # About 1 in 250 wrong passwords pass the CBC padding check: "cannot load" then.
    _error(proc, "step kms key: ")
    assert "failed to decrypt" in proc.stderr or "cannot load" in proc.stderr
    _error(_step(env, "kms", "key", "nosuch:thing", check=False), "unsupported key store")


def test_sign_ec_stdin_base64(env: tuple[Path, Path], tmp_path: Path) -> None:
    key_file = str(tmp_path / "ec.key")
    public = load_pem_public_key(
        _step(env, "kms", "create", key_file, "--password-file", env[1]).stdout.encode()
    )
    assert isinstance(public, ec.EllipticCurvePublicKey)
    (tmp_path / "data").write_bytes(DATA)
    out = _step(env, "kms", "sign", key_file, "--in", tmp_path / "data",
                "--password-file", env[1]).stdout
    assert out.endswith("\n") and out.count("\n") == 1
    public.verify(base64.b64decode(out), DATA, ec.ECDSA(hashes.SHA256()))
    raw = _sign_bytes(env, key_file)
    public.verify(raw, DATA, ec.ECDSA(hashes.SHA256()))
    raw512 = _sign_bytes(env, key_file, "--alg", "SHA512")
    public.verify(raw512, DATA, ec.ECDSA(hashes.SHA512()))


def test_sign_p384_hex(env: tuple[Path, Path], tmp_path: Path) -> None:
    key_file = str(tmp_path / "p384.key")
    public = load_pem_public_key(_step(env, "kms", "create", key_file, "--crv", "P-384",
                                       "--password-file", env[1]).stdout.encode())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    (tmp_path / "data").write_bytes(DATA)
    out = _step(env, "kms", "sign", key_file, "--in", tmp_path / "data", "--format", "hex",
                "--password-file", env[1]).stdout
    public.verify(bytes.fromhex(out.strip()), DATA, ec.ECDSA(hashes.SHA384()))


def test_sign_rsa_pkcs1_and_pss(env: tuple[Path, Path], tmp_path: Path) -> None:
    key_file = str(tmp_path / "rsa.key")
    public = load_pem_public_key(_step(env, "kms", "create", key_file, "--kty", "RSA",
                                       "--size", "2048", "--password-file",
                                       env[1]).stdout.encode())
    assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 2048
    public.verify(_sign_bytes(env, key_file), DATA, padding.PKCS1v15(), hashes.SHA256())
    public.verify(
        _sign_bytes(env, key_file, "--pss", "--alg", "SHA384"),
        DATA,
        padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48),
        hashes.SHA384(),
    )


def test_sign_ed25519(env: tuple[Path, Path], tmp_path: Path) -> None:
    key_file = str(tmp_path / "ed.key")
    public = load_pem_public_key(_step(env, "kms", "create", key_file, "--kty", "OKP",
                                       "--password-file", env[1]).stdout.encode())
    assert isinstance(public, ed25519.Ed25519PublicKey)
    public.verify(_sign_bytes(env, key_file), DATA)
    _error(_step(env, "kms", "sign", key_file, "--alg", "SHA256", "--password-file", env[1],
                 stdin="x", check=False), "Ed25519 signs the data itself")


def test_sign_bad_flags(env: tuple[Path, Path], tmp_path: Path) -> None:
    key_file = str(tmp_path / "ec.key")
    _step(env, "kms", "create", key_file, "--password-file", env[1])
    _error(_step(env, "kms", "sign", key_file, "--format", "pem", stdin="x", check=False),
           "unsupported --format 'pem'")
    _error(_step(env, "kms", "sign", key_file, "--alg", "MD5", "--password-file", env[1],
                 stdin="x", check=False), "unsupported --alg 'MD5'")
    _error(_step(env, "kms", "sign", key_file, "--pss", "--password-file", env[1],
                 stdin="x", check=False), "'--pss' is for RSA keys")
    _error(_step(env, "kms", "sign", key_file, "--in", tmp_path / "missing",
                 "--password-file", env[1], check=False), "step kms sign:")


@pytest.mark.parametrize("uri", ["file:", "/some/dir", "softkms:"])
def test_list_file_store_not_supported(env: tuple[Path, Path], uri: str) -> None:
    _error(_step(env, "kms", "list", uri, check=False),
           "step kms list: the file key store cannot list keys")


# --- PKCS#11 (SoftHSM2) ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHSM]:
    """Private SoftHSM2 tokens; SOFTHSM2_CONF reaches the `step` children through os.environ."""
    with softhsm_session(tmp_path_factory.mktemp("softhsm")) as hsm:
        yield hsm


@pytest.fixture
def token(hsm: SoftHSM, tmp_path: Path) -> tuple[Token, str, Path]:
    """(token, store URI with pin-source, the PIN file)."""
    token = hsm.init_token()
    pin = tmp_path / "pin"
    pin.write_text(token.pin + "\n")
    return token, f"pkcs11:module-path={MODULE};token={token.label}?pin-source={pin}", pin


def _key_uri(token: tuple[Token, str, Path], attrs: str) -> str:
    store, _, query = token[1].partition("?")
    return f"{store};{attrs}?{query}"


def test_pkcs11_create_key_sign_list(env: tuple[Path, Path],
                                     token: tuple[Token, str, Path]) -> None:
    ec_uri = _key_uri(token, "id=7331;object=intermediate-key")
    public = load_pem_public_key(_step(env, "kms", "create", ec_uri).stdout.encode())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert _step(env, "kms", "key", ec_uri).stdout == public.public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    out = _step(env, "kms", "sign", ec_uri, stdin="signed in the token").stdout
    public.verify(base64.b64decode(out), b"signed in the token", ec.ECDSA(hashes.SHA256()))
    _error(_step(env, "kms", "create", ec_uri, check=False), "already exists")

    rsa_uri = _key_uri(token, "id=01;object=rsa")
    rsa_public = load_pem_public_key(_step(env, "kms", "create", rsa_uri, "--kty", "RSA",
                                           "--size", "3072").stdout.encode())
    assert isinstance(rsa_public, rsa.RSAPublicKey) and rsa_public.key_size == 3072
    proc = subprocess.run(
        [str(STEP), "kms", "sign", rsa_uri, "--format", "raw", "--pss"],
        input=DATA, capture_output=True, env=clean_env(env[0]), timeout=120, check=True,
    )
    rsa_public.verify(proc.stdout, DATA,
                      padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                      hashes.SHA256())

    assert _step(env, "kms", "list", token[1]).stdout.splitlines() == [
        "pkcs11:id=01;object=rsa",
        "pkcs11:id=7331;object=intermediate-key",
    ]
    rows = json.loads(_step(env, "kms", "list", "--json", token[1]).stdout)
    assert [(r["label"], r["type"]) for r in rows] == [("rsa", "RSA 3072"),
                                                      ("intermediate-key", "EC P-256")]

    entries = [json.loads(x) for x in (env[0] / "ceremony" / "record.jsonl")
               .read_text().splitlines()]
    assert [e["key_uris"] for e in entries] == [[ec_uri], [rsa_uri]]
    assert entries[0]["public_key_sha256"] == [ceremony.public_key_sha256(public)]


def test_pkcs11_pin_value_redacted_and_password_as_pin(
    env: tuple[Path, Path], token: tuple[Token, str, Path], tmp_path: Path
) -> None:
    tok = token[0]
    base = f"pkcs11:module-path={MODULE};token={tok.label};id=02;object=k2"
    _step(env, "kms", "create", f"{base}?pin-value={tok.pin}")
    (entry,) = [json.loads(x) for x in (env[0] / "ceremony" / "record.jsonl")
                .read_text().splitlines()]
    assert entry["key_uris"] == [f"{base}?pin-value=REDACTED"]
    assert tok.pin not in (env[0] / "ceremony" / "record.jsonl").read_text()
    # Without a PIN in the URI, --password-file is the PIN; without either, no login.
    pin = tmp_path / "pin-as-password"
    pin.write_text(tok.pin)
    assert _step(env, "kms", "key", base, "--password-file", pin).stdout.startswith(
        "-----BEGIN PUBLIC KEY-----")
    _error(_step(env, "kms", "key", base, check=False), "not found (no PIN given")
    wrong = tmp_path / "wrong-pin"
    wrong.write_text("0000")
    _error(_step(env, "kms", "key", base, "--password-file", wrong, check=False), "wrong PIN")


def test_pkcs11_create_needs_id_and_object(env: tuple[Path, Path],
                                            token: tuple[Token, str, Path]) -> None:
    _error(_step(env, "kms", "create", _key_uri(token, "object=only"), check=False),
           "needs both id and object")
