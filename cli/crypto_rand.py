"""`step crypto rand`: random strings in step's formats, from the operating system's CSPRNG.

Formats and defaults follow smallstep/cli's command/crypto/rand: 32 printable ASCII
characters by default, 6 dash-joined words with `--dictionary`, a roll of a 6-sided die with
`--format die`. Each character is drawn uniformly (`secrets.choice`), as go.step.sm's randutil
does. The emoji format is not offered: it needs step's own list of 256 emoji.
"""

from __future__ import annotations

import secrets
import sys
import uuid
from pathlib import Path

import typer

from cli.common import CLIError, go_strerror

_ASCII = "".join(chr(c) for c in range(0x21, 0x7F))  # the 94 printable characters
_LOWER = "abcdefghijklmnopqrstuvwxyz"
_UPPER = _LOWER.upper()
_DIGITS = "0123456789"
_ALPHABETS = {
    "": _ASCII,
    "ascii": _ASCII,
    "alphanumeric": _UPPER + _LOWER + _DIGITS,
    "alphabet": _UPPER + _LOWER,
    "hex": _DIGITS + "abcdef",
    "hexadecimal": _DIGITS + "abcdef",
    "dec": _DIGITS,
    "decimal": _DIGITS,
    "lower": _LOWER,
    "upper": _UPPER,
}
_MILLER_RABIN_ROUNDS = 20


def _probably_prime(n: int) -> bool:
    """Miller-Rabin with random bases: wrong with probability below 4^-20."""
    if n < 4:
        return n in (2, 3)
    if n % 2 == 0:
        return False
    d, r = n - 1, 0
    while d % 2 == 0:
        d //= 2
        r += 1
    for _ in range(_MILLER_RABIN_ROUNDS):
        x = pow(2 + secrets.randbelow(n - 3), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def random_prime(bits: int) -> int:
    """A random prime of exactly `bits` bits, top two bits set (Go's crypto/rand.Prime)."""
    if bits < 2:
        raise CLIError("crypto/rand: prime size must be at least 2-bit")
    if bits == 2:
        return 2 + secrets.randbelow(2)
    while True:
        candidate = secrets.randbits(bits) | (1 << (bits - 1)) | (1 << (bits - 2)) | 1
        if _probably_prime(candidate):
            return candidate


def _from_dictionary(path: Path, count: int) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise CLIError(f"open {path}: {go_strerror(exc)}") from None
    words = [line.strip() for line in text.splitlines()]
    if not words:
        raise CLIError(f"the dictionary {path} has no words")
    return "-".join(secrets.choice(words) for _ in range(count))


def random_text(fmt: str, length: int) -> str:
    """A random string of `fmt` (any format but raw) and `length`."""
    if fmt in _ALPHABETS:
        alphabet = _ALPHABETS[fmt]
        return "".join(secrets.choice(alphabet) for _ in range(length))
    if fmt == "uuid":
        return str(uuid.uuid4())
    if fmt in ("die", "dice"):
        return str(1 + secrets.randbelow(length))
    if fmt == "prime":
        return str(random_prime(length))
    if fmt == "emoji":
        raise CLIError("invalid value 'emoji' for flag '--format': not supported by Stepstone")
    raise CLIError(f"invalid value '{fmt}' for flag '--format'")


def rand_command(
    length: str | None = typer.Argument(
        None,
        metavar="LENGTH",
        help="Characters or words to print; the highest number of a die; the bits of a prime.",
    ),
    fmt: str = typer.Option(
        "",
        "--format",
        metavar="FORMAT",
        help=(
            "ascii (the default), alphanumeric, alphabet, hex, dec, lower, upper, raw "
            "(bytes), die, prime or uuid."
        ),
    ),
    dictionary: Path | None = typer.Option(
        None, "--dictionary", "--dict", help="A <file> of words, one a line, to pick words from."
    ),
) -> None:
    """Print a random string.

    By default 32 characters are drawn from the 94 printable ASCII
    characters. --format picks another alphabet: alphanumeric (a-z, A-Z,
    0-9), alphabet (a-z, A-Z), hex (0-9, a-f), dec (0-9), lower (a-z) or
    upper (A-Z); raw prints random bytes. The special formats are die (a
    number from 1 to 6, or to LENGTH), prime (a prime number of LENGTH bits,
    prime with high probability) and uuid (a random UUIDv4). --dictionary
    prints 6 words (or LENGTH words) from a file, joined by dashes.

    Examples:

      $ step crypto rand
      Ijghm(Y?pfZiTPkHv0Z=1@MC<n&gsMe|

      $ step crypto rand --format hex 16
      f86a3f7b9299a413

      $ step crypto rand --format upper 20

      $ step crypto rand --format die

      $ step crypto rand --dictionary words.txt
    """
    fmt = fmt.lower()
    if dictionary is not None and fmt:
        raise CLIError("flag '--format' is incompatible with '--dictionary'")
    count = 6 if dictionary is not None or fmt in ("die", "dice") else 32
    if length is not None:
        try:
            count = int(length, 10)
        except ValueError:
            raise CLIError(
                f'positional argument <length> "{length}" is not a valid number'
            ) from None
        if count <= 0:
            raise CLIError(f'positional argument <length> "{length}" must be greater than 0')
    if dictionary is not None:
        typer.echo(_from_dictionary(dictionary, count))
    elif fmt == "raw":
        sys.stdout.buffer.write(secrets.token_bytes(count))
        sys.stdout.flush()
    else:
        typer.echo(random_text(fmt, count))
