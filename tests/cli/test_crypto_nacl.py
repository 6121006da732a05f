"""`step crypto nacl` (cli.crypto_nacl): boxes and signatures checked against PyNaCl."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import nacl.public
import nacl.secret
import nacl.signing
import nacl.utils
import pytest

from cli.crypto_nacl import decode_nonce
from tests.cli.crypto_cli import step

MESSAGE = b"a message\n\x00\xff"


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _unb64(data: bytes) -> bytes:
    text = data.strip()
    return base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))


def test_nonce_forms() -> None:
    assert decode_nonce("nonce") == b"nonce" + b"\0" * 19
    assert decode_nonce("string:base64:x") == b"base64:x".ljust(24, b"\0")
    assert decode_nonce("base64:bm9uY2U=") == b"nonce".ljust(24, b"\0")
    assert decode_nonce("x" * 24) == b"x" * 24


def test_box_both_ways_with_pynacl(tmp_path: Path) -> None:
    alice_pub, alice_priv = tmp_path / "alice.pub", tmp_path / "alice.priv"
    code, _, err = step("crypto", "nacl", "box", "keypair", alice_pub, alice_priv)
    assert code == 0 and f"Your private key has been saved in {alice_priv}." in err
    assert stat.S_IMODE(alice_priv.stat().st_mode) == 0o600
    assert len(alice_pub.read_bytes()) == len(alice_priv.read_bytes()) == 32
    bob = nacl.public.PrivateKey.generate()
    bob_pub, bob_priv = tmp_path / "bob.pub", tmp_path / "bob.priv"
    bob_pub.write_bytes(bytes(bob.public_key))
    bob_priv.write_bytes(bytes(bob))
    nonce = decode_nonce("base64:bm9uY2U=")

    # Alice seals for Bob; PyNaCl (as Bob) opens.
    code, out, err = step("crypto", "nacl", "box", "seal", "base64:bm9uY2U=", bob_pub, alice_priv,
                          stdin=MESSAGE)  # fmt: skip
    assert code == 0, err
    alice_public = nacl.public.PublicKey(alice_pub.read_bytes())
    assert nacl.public.Box(bob, alice_public).decrypt(_unb64(out), nonce) == MESSAGE

    # PyNaCl (as Bob) seals for Alice; step opens, base64 and --raw.
    box = nacl.public.Box(bob, alice_public).encrypt(MESSAGE, nonce).ciphertext
    code, out, err = step("crypto", "nacl", "box", "open", "base64:bm9uY2U=", bob_pub, alice_priv,
                          stdin=_b64(box) + b"\n")  # fmt: skip
    assert (code, out) == (0, MESSAGE), err
    code, out, _ = step("crypto", "nacl", "box", "open", "--raw", "base64:bm9uY2U=", bob_pub,
                        alice_priv, stdin=box)  # fmt: skip
    assert (code, out) == (0, MESSAGE)

    # A tampered box, the wrong sender and the wrong nonce are all refused.
    tampered = bytes([box[0] ^ 1]) + box[1:]
    for args, data in (
        (("base64:bm9uY2U=", bob_pub, alice_priv), _b64(tampered)),
        (("base64:bm9uY2U=", alice_pub, alice_priv), _b64(box)),
        (("other", bob_pub, alice_priv), _b64(box)),
    ):
        code, out, err = step("crypto", "nacl", "box", "open", *args, stdin=data)
        assert (code, out, err) == (1, b"", "error authenticating or decrypting input\n")


def test_secretbox_both_ways(tmp_path: Path) -> None:
    key_file = tmp_path / "secret.key"
    key_file.write_bytes(nacl.utils.random(32))
    box = nacl.secret.SecretBox(key_file.read_bytes())
    nonce = decode_nonce("nonce")
    code, out, err = step("crypto", "nacl", "secretbox", "seal", "nonce", key_file, stdin=MESSAGE)
    assert code == 0, err
    assert box.decrypt(_unb64(out), nonce) == MESSAGE
    code, out, _ = step("crypto", "nacl", "secretbox", "seal", "--raw", "nonce", key_file,
                        stdin=MESSAGE)  # fmt: skip
    assert box.decrypt(out, nonce) == MESSAGE

    sealed = box.encrypt(MESSAGE, nonce).ciphertext
    code, out, err = step("crypto", "nacl", "secretbox", "open", "nonce", key_file,
                          stdin=_b64(sealed))  # fmt: skip
    assert (code, out) == (0, MESSAGE), err
    code, out, err = step("crypto", "nacl", "secretbox", "open", "nonce", key_file,
                          stdin=_b64(sealed[:-1]))  # fmt: skip
    assert (code, err) == (1, "error authenticating or decrypting input\n")


def test_sign_both_ways(tmp_path: Path) -> None:
    pub, priv = tmp_path / "sign.pub", tmp_path / "sign.priv"
    assert step("crypto", "nacl", "sign", "keypair", pub, priv)[0] == 0
    assert len(pub.read_bytes()) == 32 and len(priv.read_bytes()) == 64
    code, out, err = step("crypto", "nacl", "sign", "sign", priv, stdin=MESSAGE)
    assert code == 0, err
    assert nacl.signing.VerifyKey(pub.read_bytes()).verify(_unb64(out)) == MESSAGE

    signer = nacl.signing.SigningKey.generate()
    their_pub = tmp_path / "their.pub"
    their_pub.write_bytes(bytes(signer.verify_key))
    signed = bytes(signer.sign(MESSAGE))
    code, out, err = step("crypto", "nacl", "sign", "open", their_pub, stdin=_b64(signed))
    assert (code, out) == (0, MESSAGE), err
    code, out, _ = step("crypto", "nacl", "sign", "open", "--raw", their_pub, stdin=signed)
    assert (code, out) == (0, MESSAGE)
    code, out, err = step("crypto", "nacl", "sign", "open", pub, stdin=_b64(signed))
    assert (code, out, err) == (1, b"", "error authenticating input\n")


def test_auth_rfc4231_vector(tmp_path: Path) -> None:
    """crypto_auth is HMAC-SHA-512-256: RFC 4231 test case 2, cut to 32 bytes."""
    key = tmp_path / "auth.key"
    key.write_bytes(b"Jefe".ljust(32, b"\0"))
    data = b"what do ya want for nothing?"
    expected = "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"
    code, out, err = step("crypto", "nacl", "auth", "digest", key, stdin=data)
    assert (code, out.decode()) == (0, expected + "\n"), err
    assert step("crypto", "nacl", "auth", "verify", key, expected, stdin=data)[:2] == (0, b"ok\n")
    code, out, err = step("crypto", "nacl", "auth", "verify", key, expected, stdin=data + b"!")
    assert (code, out, err) == (1, b"", "fail\n")
    code, _, err = step("crypto", "nacl", "auth", "verify", key, "zz", stdin=data)
    assert code == 1 and err.startswith("error decoding digest")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["box", "seal", "x" * 25, "K32", "K32"], "nonce cannot be longer than 24 bytes"),
        (["box", "seal", "n", "K31", "K32"], "invalid public key: key size is not 32 bytes"),
        (["box", "open", "n", "K32", "K31"], "invalid private key: key size is not 32 bytes"),
        (["secretbox", "seal", "base64:!!", "K32"], "error decoding base64 nonce"),
        (["secretbox", "open", "n", "K32"], "error decoding base64 input"),
        (["sign", "sign", "K32"], "invalid private key: key size is not 64 bytes"),
        (["auth", "digest", "K31"], "invalid key file: key size is not 32 bytes"),
        (["auth", "digest", "MISSING"], "open "),
    ],
)
def test_bad_inputs(tmp_path: Path, args: list[str], message: str) -> None:
    files = {"K32": b"k" * 32, "K31": b"k" * 31}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    paths = [str(tmp_path / a) if a in (*files, "MISSING") else a for a in args]
    code, out, err = step("crypto", "nacl", *paths, stdin=b"not*base64")
    assert code == 1 and out == b"" and message in err and len(err.splitlines()) == 1


def test_keypair_never_overwrites_without_force(tmp_path: Path) -> None:
    pub, priv = tmp_path / "pub", tmp_path / "priv"
    priv.write_bytes(b"precious")
    code, _, err = step("crypto", "nacl", "sign", "keypair", pub, priv)
    assert (code, err) == (1, f"file {priv} already exists: use '--force' to overwrite it\n")
    assert priv.read_bytes() == b"precious" and not pub.exists()
    assert step("crypto", "nacl", "sign", "keypair", pub, priv, "--force")[0] == 0
    assert len(priv.read_bytes()) == 64
    code, _, err = step("crypto", "nacl", "box", "keypair", pub, pub)
    assert code == 1 and "cannot be equal" in err
