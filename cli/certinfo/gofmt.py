"""Go formatting helpers shared by the renderers: times, big integers, runes."""

from __future__ import annotations

from datetime import datetime

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def go_validity_time(when: datetime) -> str:
    """Go layout "Jan 2 15:04:05 2006 MST" in UTC."""
    return (
        f"{MONTHS[when.month - 1]} {when.day} {when.hour:02d}:{when.minute:02d}:"
        f"{when.second:02d} {when.year:04d} UTC"
    )


def go_rfc3339(when: datetime) -> str:
    return f"{when.year:04d}-{when.strftime('%m-%dT%H:%M:%S')}Z"


def int_bytes(value: int) -> bytes:
    """big.Int.Bytes(): magnitude, big-endian, no leading zeros."""
    value = abs(value)
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def go_runes(data: bytes) -> str:
    """Go's bytes.Runes: valid UTF-8 decoded, every invalid byte a separate U+FFFD."""
    out: list[str] = []
    index = 0
    while index < len(data):
        lead = data[index]
        size = 1 if lead < 0x80 else 2 if 0xC2 <= lead < 0xE0 else 3 if 0xE0 <= lead < 0xF0 else 4
        if lead < 0x80:
            out.append(chr(lead))
            index += 1
            continue
        if 0x80 <= lead < 0xC2 or lead > 0xF4:
            out.append("\ufffd")
            index += 1
            continue
        try:
            out.append(data[index : index + size].decode("utf-8"))
            index += size
        except UnicodeDecodeError:
            out.append("\ufffd")
            index += 1
    return "".join(out)


def go_printable(text: str) -> str:
    """certinfo's sanitising of raw extension bytes: non-printable runes become '.'."""
    return "".join(ch if (ch == " " or ch.isprintable()) and ch != "\ufffd" else "." for ch in text)
