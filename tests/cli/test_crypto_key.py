"""`step crypto key inspect|public|format|fingerprint|sign|verify` (cli.crypto_key*),
checked against OpenSSL, ssh-keygen, jwcrypto and fixed vectors."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_der_private_key,
    load_pem_private_key,
)
from jwcrypto import jwk  # type: ignore[import-untyped]

from tests.cli.crypto_cli import step_process as _step

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

# RFC 8032 section 7.1, TEST 1.
ED25519_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
ED25519_PUBLIC = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"


def _out(tmp: Path, *args: str | Path, stdin: bytes | None = None) -> bytes:
    proc = _step(tmp, *args, stdin=stdin)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


def _fails(tmp: Path, *args: str | Path, stdin: bytes | None = None) -> str:
    proc = _step(tmp, *args, stdin=stdin)
    assert proc.returncode != 0
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def _run(*args: str | Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(a) for a in args], input=stdin, capture_output=True, timeout=120, check=False
    )


def _write_private(path: Path, key: PrivateKey, password: bytes | None = None) -> Path:
    encryption = BestAvailableEncryption(password) if password else NoEncryption()
    path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, encryption))
    return path


def _write_public(path: Path, key: PrivateKey) -> Path:
    path.write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    return path


def _hex_lines(data: bytes) -> str:
    """Go's bytesPrinter body, written out independently: 16 bytes a line."""
    items = [f"{b:02x}" + (":" if i < len(data) - 1 else "") for i, b in enumerate(data)]
    return "\n".join("    " + "".join(items[i : i + 16]) for i in range(0, len(items), 16))


# --- inspect --------------------------------------------------------------------------------


def test_inspect_ed25519_rfc8032_vector(tmp_path: Path) -> None:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(ED25519_SEED)
    _write_private(tmp_path / "ed.key", key)
    _write_public(tmp_path / "ed.pub", key)
    public_lines = _hex_lines(bytes.fromhex(ED25519_PUBLIC))
    assert _out(tmp_path, "crypto", "key", "inspect", "ed.key").decode() == (
        "Ed25519 Private-Key: (512 bit)\n"
        f"Public:\n{public_lines}\n"
        f"Private:\n{_hex_lines(ED25519_SEED)}\n"
    )
    assert _out(tmp_path, "crypto", "key", "inspect", "ed.pub").decode() == (
        f"Ed25519 Public-Key: (256 bit)\nPublic:\n{public_lines}\n"
    )


def test_inspect_encrypted_ec_and_rsa_match_openssl(tmp_path: Path) -> None:
    ec_key = ec.generate_private_key(ec.SECP384R1())
    _write_private(tmp_path / "ec.key", ec_key, b"pw")
    (tmp_path / "pw").write_text("pw\n")
    args = ("crypto", "key", "inspect", "ec.key", "--password-file", "pw")
    text = _out(tmp_path, *args).decode()
    lines = text.splitlines()
    assert lines[0] == "EC PrivateKey-Key: (384 bit)"
    assert lines[-1] == "Curve: P-384"
    d = ec_key.private_numbers().private_value.to_bytes(48, "big")
    assert f"D:\n{_hex_lines(d)}\n" in text
    assert _fails(tmp_path, "crypto", "key", "inspect", "ec.key") == (
        "ec.key is encrypted: use '--password-file' to give its password"
    )

    rsa_key = rsa.generate_private_key(65537, 2048)
    _write_public(tmp_path / "rsa.pub", rsa_key)
    text = _out(tmp_path, "crypto", "key", "inspect", "rsa.pub").decode()
    openssl = _run("openssl", "rsa", "-pubin", "-in", tmp_path / "rsa.pub", "-noout", "-modulus")
    modulus = bytes.fromhex(openssl.stdout.decode().strip().split("=")[1])
    assert text == (
        f"RSA Public-Key: (2048 bit)\nModulus:\n{_hex_lines(modulus)}\nExponent: 65537 (0x10001)\n"
    )


def test_inspect_reads_stdin_certificates_and_rejects_junk(tmp_path: Path) -> None:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", tmp_path / "c.key", "-out", tmp_path / "c.crt", "-subj", "/CN=x",
         "-days", "1"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    from_cert = _out(tmp_path, "crypto", "key", "inspect", "c.crt")
    assert from_cert.startswith(b"EC Public-Key: (256 bit)\n")
    from_stdin = _out(tmp_path, "crypto", "key", "inspect", stdin=(tmp_path / "c.crt").read_bytes())
    assert from_stdin == from_cert
    # `openssl x509 -text` output: the text before the PEM block is skipped.
    text = _run("openssl", "x509", "-in", tmp_path / "c.crt", "-text").stdout
    assert _out(tmp_path, "crypto", "key", "inspect", stdin=text) == from_cert
    (tmp_path / "junk").write_bytes(b"\x00\x01 not a key")
    assert _fails(tmp_path, "crypto", "key", "inspect", "junk").startswith("error parsing junk:")
    assert _fails(tmp_path, "crypto", "key", "inspect", "nope") == (
        "open nope: no such file or directory"
    )


# --- public, fingerprint ------------------------------------------------------------------


def test_public_matches_openssl_and_writes_with_force(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    _write_private(tmp_path / "k.key", key, b"pw")
    (tmp_path / "pw").write_text("pw")
    expected = _run("openssl", "pkey", "-in", tmp_path / "k.key", "-passin", "pass:pw", "-pubout")
    assert (
        _out(tmp_path, "crypto", "key", "public", "k.key", "--password-file", "pw")
        == expected.stdout
    )
    (tmp_path / "pub.pem").write_text("keep")
    line = _fails(
        tmp_path, "crypto", "key", "public", "k.key", "--password-file", "pw", "--out", "pub.pem"
    )
    assert line == "file pub.pem already exists: use '--force' to overwrite it"
    assert (tmp_path / "pub.pem").read_text() == "keep"
    _out(
        tmp_path,
        "crypto",
        "key",
        "public",
        "k.key",
        "--password-file",
        "pw",
        "--out",
        "pub.pem",
        "-f",
    )
    assert (tmp_path / "pub.pem").read_bytes() == expected.stdout
    (tmp_path / "bad").write_text("nope")
    line = _fails(tmp_path, "crypto", "key", "public", "k.key", "--password-file", "bad")
    assert line.startswith("error decrypting k.key: wrong password")


def test_fingerprints_match_openssl_and_ssh_keygen(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    _write_private(tmp_path / "k.key", key)
    _write_public(tmp_path / "k.pub", key)
    point = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    spki = _run("openssl", "pkey", "-pubin", "-in", tmp_path / "k.pub", "-outform", "DER").stdout
    default = base64.b64encode(hashlib.sha256(point).digest()).decode()
    assert _out(tmp_path, "crypto", "key", "fingerprint", "k.pub").decode() == f"SHA256:{default}\n"
    assert _out(tmp_path, "crypto", "key", "fingerprint", "k.key").decode() == f"SHA256:{default}\n"
    pkix = hashlib.sha256(spki).hexdigest()
    out = _out(tmp_path, "crypto", "key", "fingerprint", "--pkix", "--format", "hex", "k.pub")
    assert out.decode() == f"SHA256:{pkix}\n"
    assert _out(tmp_path, "crypto", "key", "fingerprint", "--raw", "k.pub") == point

    # --sha1 is the Subject Key Identifier OpenSSL puts in a certificate (RFC 5280 method 1).
    subprocess.run(
        ["openssl", "req", "-x509", "-key", tmp_path / "k.key", "-out", tmp_path / "c.crt",
         "-subj", "/CN=x", "-days", "1", "-addext", "subjectKeyIdentifier=hash"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    cert = x509.load_pem_x509_certificate((tmp_path / "c.crt").read_bytes())
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert _out(tmp_path, "crypto", "key", "fingerprint", "--sha1", "c.crt").decode() == (
        f"SHA1:{ski.hex()}\n"
    )

    ssh_pub = _out(tmp_path, "crypto", "key", "format", "--ssh", "k.pub")
    (tmp_path / "k.ssh").write_bytes(ssh_pub)
    keygen = _run("ssh-keygen", "-l", "-E", "sha256", "-f", tmp_path / "k.ssh").stdout.decode()
    ours = _out(
        tmp_path, "crypto", "key", "fingerprint", "--ssh", "--format", "base64-raw", "k.ssh"
    )
    assert ours.decode().strip() == keygen.split()[1]

    assert _fails(tmp_path, "crypto", "key", "fingerprint", "--format", "nope", "k.pub") == (
        "error parsing fingerprint format: 'nope' is not a valid fingerprint format"
    )
    assert _fails(tmp_path, "crypto", "key", "fingerprint", "--pkix", "--ssh", "k.pub") == (
        "flag '--pkix' and flag '--ssh' are mutually exclusive"
    )


# --- format -------------------------------------------------------------------------------


def test_format_public_pem_der_ssh_jwk(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    _write_public(tmp_path / "k.pub", key)
    der = _out(tmp_path, "crypto", "key", "format", "k.pub")
    assert (
        der
        == _run("openssl", "pkey", "-pubin", "-in", tmp_path / "k.pub", "-outform", "DER").stdout
    )
    (tmp_path / "k.der").write_bytes(der)
    assert _out(tmp_path, "crypto", "key", "format", "k.der") == (tmp_path / "k.pub").read_bytes()
    jwk_out = json.loads(_out(tmp_path, "crypto", "key", "format", "--jwk", "k.pub"))
    theirs = json.loads(jwk.JWK.from_pem((tmp_path / "k.pub").read_bytes()).export_public())
    theirs.pop("kid", None)  # jwcrypto adds the thumbprint; step's plain JWK has no kid
    assert jwk_out == theirs
    (tmp_path / "k.jwk").write_text(json.dumps(jwk_out))
    assert _out(tmp_path, "crypto", "key", "format", "k.jwk") == (tmp_path / "k.pub").read_bytes()
    ssh = _out(tmp_path, "crypto", "key", "format", "--ssh", "k.pub")
    assert ssh.startswith(b"ecdsa-sha2-nistp256 ") and ssh.endswith(b"\n")
    (tmp_path / "k.ssh").write_bytes(ssh)
    pem_from_ssh = _run("ssh-keygen", "-e", "-m", "PKCS8", "-f", tmp_path / "k.ssh").stdout
    assert pem_from_ssh == (tmp_path / "k.pub").read_bytes()
    assert _fails(tmp_path, "crypto", "key", "format", "--pem", "--der", "k.pub") == (
        "flag '--pem' is incompatible with '--der'"
    )


def test_format_private_keys_stay_encrypted_unless_insecure(tmp_path: Path) -> None:
    key = rsa.generate_private_key(65537, 2048)
    (tmp_path / "rsa.pem").write_bytes(
        key.private_bytes(Encoding.PEM, PrivateFormat.TraditionalOpenSSL, NoEncryption())
    )
    (tmp_path / "pw").write_text("pw\n")
    line = _fails(tmp_path, "crypto", "key", "format", "rsa.pem")
    assert line.startswith("a private key in DER form would be unencrypted")
    line = _fails(tmp_path, "crypto", "key", "format", "--no-password", "rsa.pem")
    assert line == "flag '--no-password' requires the '--insecure' flag"
    der = _out(tmp_path, "crypto", "key", "format", "rsa.pem", "--no-password", "--insecure")
    assert (
        der
        == _run(
            "openssl", "rsa", "-in", tmp_path / "rsa.pem", "-outform", "DER", "-traditional"
        ).stdout
    )
    pkcs8 = _out(
        tmp_path,
        "crypto",
        "key",
        "format",
        "--der",
        "--pkcs8",
        "--no-password",
        "--insecure",
        "rsa.pem",
    )
    assert load_der_private_key(pkcs8, None).private_numbers() == key.private_numbers()  # type: ignore[union-attr]
    encrypted = _out(
        tmp_path, "crypto", "key", "format", "--pem", "--password-file", "pw", "rsa.pem"
    )
    assert encrypted.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    openssl = _run("openssl", "pkey", "-passin", "pass:pw", "-noout", stdin=encrypted)
    assert openssl.returncode == 0, openssl.stderr
    wrapped = _out(tmp_path, "crypto", "key", "format", "--jwk", "--password-file", "pw", "rsa.pem")
    assert set(json.loads(wrapped)) == {"protected", "encrypted_key", "iv", "ciphertext", "tag"}
    (tmp_path / "rsa.jwe").write_bytes(wrapped)
    back = _out(
        tmp_path, "crypto", "key", "format", "rsa.jwe", "--password-file", "pw", "--out", "back.pem"
    )
    assert back == b""
    assert load_pem_private_key((tmp_path / "back.pem").read_bytes(), b"pw").private_numbers() == (  # type: ignore[union-attr]
        key.private_numbers()
    )
    assert (tmp_path / "back.pem").stat().st_mode & 0o777 == 0o600


# --- sign, verify ---------------------------------------------------------------------------


def test_sign_verified_by_openssl(tmp_path: Path) -> None:
    (tmp_path / "msg").write_bytes(b"message to be signed\n")
    (tmp_path / "pw").write_text("pw\n")
    ec_key = ec.generate_private_key(ec.SECP384R1())
    _write_private(tmp_path / "ec.key", ec_key, b"pw")
    _write_public(tmp_path / "ec.pub", ec_key)
    sig = _out(tmp_path, "crypto", "key", "sign", "--key", "ec.key", "--password-file", "pw", "msg")
    (tmp_path / "ec.sig").write_bytes(base64.b64decode(sig))
    check = _run("openssl", "dgst", "-sha384", "-verify", tmp_path / "ec.pub", "-signature",
                 tmp_path / "ec.sig", tmp_path / "msg")  # fmt: skip
    assert check.stdout == b"Verified OK\n", check.stderr

    rsa_key = rsa.generate_private_key(65537, 2048)
    _write_private(tmp_path / "rsa.key", rsa_key)
    _write_public(tmp_path / "rsa.pub", rsa_key)
    raw = _out(tmp_path, "crypto", "key", "sign", "--key", "rsa.key", "--pss", "--alg", "sha512",
               "--raw", stdin=(tmp_path / "msg").read_bytes())  # fmt: skip
    (tmp_path / "rsa.sig").write_bytes(raw)
    check = _run("openssl", "dgst", "-sha512", "-sigopt", "rsa_padding_mode:pss", "-sigopt",
                 "rsa_pss_saltlen:-2", "-verify", tmp_path / "rsa.pub", "-signature",
                 tmp_path / "rsa.sig", tmp_path / "msg")  # fmt: skip
    assert check.stdout == b"Verified OK\n", check.stderr

    ed_key = ed25519.Ed25519PrivateKey.generate()
    _write_private(tmp_path / "ed.key", ed_key)
    _write_public(tmp_path / "ed.pub", ed_key)
    sig = _out(tmp_path, "crypto", "key", "sign", "--key", "ed.key", "msg")
    (tmp_path / "ed.sig").write_bytes(base64.b64decode(sig))
    check = _run("openssl", "pkeyutl", "-verify", "-pubin", "-inkey", tmp_path / "ed.pub",
                 "-rawin", "-in", tmp_path / "msg", "-sigfile", tmp_path / "ed.sig")  # fmt: skip
    assert b"Signature Verified Successfully" in check.stdout, check.stderr


def test_verify_openssl_signatures(tmp_path: Path) -> None:
    (tmp_path / "msg").write_bytes(b"hello")
    key = rsa.generate_private_key(65537, 2048)
    _write_private(tmp_path / "rsa.key", key)
    _write_public(tmp_path / "rsa.pub", key)
    signed = _run("openssl", "dgst", "-sha256", "-sign", tmp_path / "rsa.key", tmp_path / "msg")
    sig = base64.b64encode(signed.stdout).decode()
    assert (
        _out(tmp_path, "crypto", "key", "verify", "--key", "rsa.pub", "--sig", sig, "msg")
        == b"true\n"
    )
    (tmp_path / "other").write_bytes(b"hellO")
    proc = _step(tmp_path, "crypto", "key", "verify", "--key", "rsa.pub", "--sig", sig, "other")
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, b"", b"false\n")
    line = _fails(
        tmp_path,
        "crypto",
        "key",
        "verify",
        "--key",
        "rsa.pub",
        "--sig",
        sig,
        "--alg",
        "sha3",
        "msg",
    )
    assert line == "unsupported algorithm sha3"
    line = _fails(tmp_path, "crypto", "key", "verify", "--key", "rsa.pub", "--sig", "@@", "msg")
    assert line.startswith("error decoding base64 signature")


def test_sign_failures(tmp_path: Path) -> None:
    (tmp_path / "msg").write_bytes(b"hello")
    key = ec.generate_private_key(ec.SECP256R1())
    _write_public(tmp_path / "k.pub", key)
    _write_private(tmp_path / "k.key", key, b"right")
    (tmp_path / "wrong").write_text("wrong")
    assert _fails(tmp_path, "crypto", "key", "sign", "msg") == (
        "'step crypto key sign' requires the '--key' flag"
    )
    assert (
        _fails(tmp_path, "crypto", "key", "sign", "--key", "k.pub", "msg")
        == "key k.pub is not a signer"
    )
    line = _fails(
        tmp_path, "crypto", "key", "sign", "--key", "k.key", "--password-file", "wrong", "msg"
    )
    assert line.startswith("error decrypting k.key: wrong password")
    line = _fails(tmp_path, "crypto", "key", "sign", "--key", "k.key", "--alg", "sha999", "msg")
    assert line == "unsupported algorithm sha999"
