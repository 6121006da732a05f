"""`step crypto hash digest|compare` (cli.crypto_hash) against coreutils, and `step crypto
rand` (cli.crypto_rand) against the alphabets step documents and `openssl prime`."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.cli.crypto_cli import step_process as _step


def _out(tmp: Path, *args: str | Path) -> bytes:
    proc = _step(tmp, *args)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


def _fails(tmp: Path, *args: str | Path) -> str:
    proc = _step(tmp, *args)
    assert proc.returncode != 0
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture
def files(tmp_path: Path) -> list[str]:
    (tmp_path / "a.txt").write_bytes(b"hello\n")
    (tmp_path / "b file.bin").write_bytes(os.urandom(3000))
    (tmp_path / "empty").write_bytes(b"")
    return ["a.txt", "b file.bin", "empty"]


@pytest.mark.parametrize(
    ("flags", "tool"),
    [((), "sha256sum"), (("--alg", "sha1"), "sha1sum"), (("--alg", "SHA512"), "sha512sum"),
     (("--alg", "md5", "--insecure"), "md5sum"), (("--alg", "sha384"), "sha384sum")],
)  # fmt: skip
def test_digest_equals_coreutils(
    tmp_path: Path, files: list[str], flags: tuple[str, ...], tool: str
) -> None:
    ours = _out(tmp_path, "crypto", "hash", "digest", *flags, *files)
    theirs = subprocess.run(
        [tool, *files], cwd=tmp_path, capture_output=True, check=True, timeout=60
    ).stdout
    assert ours == theirs


def test_digest_truncated_sha512(tmp_path: Path, files: list[str]) -> None:
    out = _out(tmp_path, "crypto", "hash", "digest", "--alg", "sha512-256", "a.txt")
    digest = hashlib.new("sha512_256", b"hello\n").hexdigest()
    assert out.decode() == f"{digest}  a.txt\n"


def test_digest_of_a_directory_is_steps_hash_tree(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "b").write_bytes(b"bee")
    (tree / "sub" / "c").write_bytes(b"sea")
    (tree / "a").symlink_to("b")
    os.chmod(tree, 0o750)
    os.chmod(tree / "sub", 0o700)
    os.chmod(tree / "b", 0o640)
    os.chmod(tree / "sub" / "c", 0o600)

    def le32(n: int) -> bytes:
        return n.to_bytes(4, "little")

    def sha(data: bytes) -> bytes:
        return hashlib.sha256(data).digest()

    go_dir, go_symlink = 1 << 31, 1 << 27  # Go's fs.ModeDir and fs.ModeSymlink
    sub = sha(le32(go_dir | 0o700) + le32(0o600) + sha(b"sea"))
    expected = sha(
        le32(go_dir | 0o750)
        + le32(go_symlink | 0o777) + sha(b"bee")  # "a" -> b, hashed as its target
        + le32(0o640) + sha(b"bee")  # "b"
        + sub  # "sub": its own digest, which covers its mode
    )  # fmt: skip
    assert (
        _out(tmp_path, "crypto", "hash", "digest", "tree").decode() == f"{expected.hex()}  tree\n"
    )
    assert _out(tmp_path, "crypto", "hash", "compare", expected.hex(), "tree") == b"ok\n"


def test_compare(tmp_path: Path, files: list[str]) -> None:
    digest = hashlib.sha256(b"hello\n").hexdigest()
    assert _out(tmp_path, "crypto", "hash", "compare", digest, "a.txt") == b"ok\n"
    assert _out(tmp_path, "crypto", "hash", "compare", digest.upper(), "a.txt") == b"ok\n"
    proc = _step(tmp_path, "crypto", "hash", "compare", digest, "empty")
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, b"", b"fail\n")
    assert _fails(tmp_path, "crypto", "hash", "compare", "xyz", "a.txt").startswith(
        "error decoding xyz"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("digest", "--alg", "md5", "a.txt"), "flag '--alg md5' requires the '--insecure' flag"),
        (("digest", "--alg", "sha3", "a.txt"), "invalid value 'sha3' for flag '--alg'"),
        (("digest", "a.txt", "missing"), "open missing: no such file or directory"),
        (("compare", "00", "missing"), "open missing: no such file or directory"),
    ],
)
def test_hash_failures(
    tmp_path: Path, files: list[str], args: tuple[str, ...], message: str
) -> None:
    assert _fails(tmp_path, "crypto", "hash", *args) == message


# --- rand -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        ((), r"[!-~]{32}"),
        (("--format", "hex", "16"), r"[0-9a-f]{16}"),
        (("--format", "alphanumeric", "40"), r"[A-Za-z0-9]{40}"),
        (("--format", "alphabet"), r"[A-Za-z]{32}"),
        (("--format", "dec", "5"), r"[0-9]{5}"),
        (("--format", "lower", "7"), r"[a-z]{7}"),
        (("--format", "UPPER", "20"), r"[A-Z]{20}"),
        (("--format", "die"), r"[1-6]"),
    ],
)
def test_rand_formats(tmp_path: Path, args: tuple[str, ...], pattern: str) -> None:
    out = _out(tmp_path, "crypto", "rand", *args).decode()
    assert out.endswith("\n")
    assert re.fullmatch(pattern, out[:-1]), out


def test_rand_special_formats(tmp_path: Path) -> None:
    assert len(_out(tmp_path, "crypto", "rand", "--format", "raw", "48")) == 48
    assert (
        uuid.UUID(_out(tmp_path, "crypto", "rand", "--format", "uuid").decode().strip()).version
        == 4
    )
    prime = _out(tmp_path, "crypto", "rand", "--format", "prime", "128").decode().strip()
    assert int(prime).bit_length() == 128
    check = subprocess.run(["openssl", "prime", prime], capture_output=True, timeout=60, check=True)
    assert check.stdout.decode().strip().endswith("is prime")
    (tmp_path / "words").write_text("alpha\nbeta\ngamma\n")
    words = _out(tmp_path, "crypto", "rand", "--dictionary", "words", "4").decode().strip()
    assert len(words.split("-")) == 4
    assert set(words.split("-")) <= {"alpha", "beta", "gamma"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("abc",), 'positional argument <length> "abc" is not a valid number'),
        (("0",), 'positional argument <length> "0" must be greater than 0'),
        (("--format", "base32"), "invalid value 'base32' for flag '--format'"),
        (("--format", "hex", "--dictionary", "words"),
         "flag '--format' is incompatible with '--dictionary'"),
        (("--dictionary", "missing"), "open missing: no such file or directory"),
    ],
)  # fmt: skip
def test_rand_failures(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    assert _fails(tmp_path, "crypto", "rand", *args) == message
