"""`step crypto hash digest|compare`: file digests as `sha256sum` prints them, and step's
hash tree of a directory.

A directory's digest follows smallstep/cli's command/crypto/hash: the hash of its Go
`FileMode` (4 bytes, little-endian), then for each entry in name order the entry's own
FileMode and content digest (a file, or a symbolic link's target), or the digest of a
subdirectory (whose mode its own digest covers). Modes are Go's, not the Unix `st_mode`
bits, so that the digests equal the ones step prints.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import os
import stat
from collections.abc import Callable
from typing import Any

import typer

from cli.common import CLIError, go_strerror
from cli.helptext import StepTyper

app = StepTyper(help="Generate and check hashes of files and directories.")

Hasher = Callable[[], Any]

_ALGS: dict[str, Hasher] = {
    "sha": hashlib.sha1,
    "sha1": hashlib.sha1,
    "sha224": hashlib.sha224,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
    "sha512-224": lambda: hashlib.new("sha512_224"),
    "sha512-256": lambda: hashlib.new("sha512_256"),
}
_ALG_HELP = (
    "The hash algorithm: sha1 (or sha), sha224, sha256, sha384, sha512, sha512-224, "
    "sha512-256, or md5 (with --insecure)."
)
_PATH_HELP = "The path to a file or directory to hash."

# Go's os.FileMode type bits (io/fs).
_GO_DIR = 1 << 31
_GO_SYMLINK = 1 << 27
_GO_DEVICE = 1 << 26
_GO_PIPE = 1 << 25
_GO_SOCKET = 1 << 24
_GO_SETUID = 1 << 23
_GO_SETGID = 1 << 22
_GO_CHAR = 1 << 21
_GO_STICKY = 1 << 20


def go_file_mode(st_mode: int) -> int:
    """The Go os.FileMode of a Unix st_mode (os/stat_linux.go)."""
    mode = st_mode & 0o777
    kind = stat.S_IFMT(st_mode)
    mode |= {
        stat.S_IFBLK: _GO_DEVICE,
        stat.S_IFCHR: _GO_DEVICE | _GO_CHAR,
        stat.S_IFDIR: _GO_DIR,
        stat.S_IFIFO: _GO_PIPE,
        stat.S_IFLNK: _GO_SYMLINK,
        stat.S_IFSOCK: _GO_SOCKET,
    }.get(kind, 0)
    if st_mode & stat.S_ISGID:
        mode |= _GO_SETGID
    if st_mode & stat.S_ISUID:
        mode |= _GO_SETUID
    if st_mode & stat.S_ISVTX:
        mode |= _GO_STICKY
    return mode


def hasher_for(alg: str, insecure: bool) -> Hasher:
    """The hash constructor of `--alg`, as step names them (md5 only with --insecure)."""
    name = alg.lower()
    if name == "md5":
        if not insecure:
            raise CLIError(f"flag '--alg {alg}' requires the '--insecure' flag")
        return lambda: hashlib.md5(usedforsecurity=False)
    if name not in _ALGS:
        raise CLIError(f"invalid value '{alg}' for flag '--alg'")
    return _ALGS[name]


def _os_error(exc: OSError, path: str) -> CLIError:
    return CLIError(f"open {path}: {go_strerror(exc)}")


def _hash_file(new: Hasher, path: str) -> bytes:
    digest = new()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise _os_error(exc, path) from None
    result: bytes = digest.digest()
    return result


def _hash_symlink(new: Hasher, path: str) -> bytes:
    try:
        target = os.readlink(path)
        if not os.path.isabs(target):
            target = os.path.join(os.path.dirname(path), target)
        info = os.stat(target)
    except OSError as exc:
        raise _os_error(exc, path) from None
    if stat.S_ISDIR(info.st_mode):
        return hash_dir(new, target)
    return _hash_file(new, target)


def hash_dir(new: Hasher, path: str) -> bytes:
    """step's digest of a directory tree (see the module docstring)."""
    try:
        names = sorted(os.listdir(path), key=os.fsencode)
        info = os.stat(path)
    except OSError as exc:
        raise _os_error(exc, path) from None
    digest = new()
    digest.update(go_file_mode(info.st_mode).to_bytes(4, "little"))
    for name in names:
        child = os.path.join(path, name)
        try:
            entry = os.lstat(child)
        except OSError as exc:
            raise _os_error(exc, child) from None
        if stat.S_ISDIR(entry.st_mode):
            digest.update(hash_dir(new, child))
            continue
        digest.update(go_file_mode(entry.st_mode).to_bytes(4, "little"))
        if stat.S_ISLNK(entry.st_mode):
            digest.update(_hash_symlink(new, child))
        else:
            digest.update(_hash_file(new, child))
    result: bytes = digest.digest()
    return result


def hash_path(new: Hasher, path: str) -> bytes:
    """The digest of a file, or step's hash tree of a directory."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise _os_error(exc, path) from None
    return hash_dir(new, path) if stat.S_ISDIR(info.st_mode) else _hash_file(new, path)


@app.command("digest")
def digest_command(
    paths: list[str] = typer.Argument(..., metavar="FILE_OR_DIRECTORY", help=_PATH_HELP),
    alg: str = typer.Option("sha256", "--alg", metavar="ALGORITHM", help=_ALG_HELP),
    insecure: bool = typer.Option(False, "--insecure", hidden=True, help="Allow md5."),
) -> None:
    """Print the hash digest of files or directories.

    For a file the output is the one of tools like sha256sum: the digest in
    hex, two spaces and the name. For a directory a hash tree of its
    contents and modes is computed and printed as one digest.

    Examples:

      $ step crypto hash digest foo.crt
      1d14bfeab8532f0fca6220f6a870d069496798e92520c4437e13b9921a3cb7f3  foo.crt

      $ step crypto hash digest --alg sha1 config/

      $ step crypto hash digest --alg md5 --insecure foo.crt

      $ find . -type f | xargs step crypto hash digest --alg sha512-256
    """
    new = hasher_for(alg, insecure)
    for path in paths:
        typer.echo(f"{hash_path(new, path).hex()}  {path}")


@app.command("compare")
def compare_command(
    expected: str = typer.Argument(..., metavar="HASH", help="The expected digest, in hex."),
    path: str = typer.Argument(..., metavar="FILE_OR_DIRECTORY", help=_PATH_HELP),
    alg: str = typer.Option("sha256", "--alg", metavar="ALGORITHM", help=_ALG_HELP),
    insecure: bool = typer.Option(False, "--insecure", hidden=True, help="Allow md5."),
) -> None:
    """Check that a file or directory has the expected hash digest.

    Prints "ok" when it does; prints "fail" on standard error and exits 1
    when it does not.

    Examples:

      $ step crypto hash compare \\
          1d14bfeab8532f0fca6220f6a870d069496798e92520c4437e13b9921a3cb7f3 foo.crt
      ok

      $ step crypto hash compare --alg sha1 d419284e29382983683c294f9593183f7e00961b config

      $ cat checksums.txt | xargs -n 2 step crypto hash compare --alg sha512-256
    """
    new = hasher_for(alg, insecure)
    try:
        wanted = binascii.unhexlify(expected)
    except binascii.Error:
        raise CLIError(f"error decoding {expected}: invalid hexadecimal digest") from None
    if not hmac.compare_digest(hash_path(new, path), wanted):
        raise CLIError("fail")
    typer.echo("ok")
