"""JSON read with the standard library, written and worded the way Go's encoding/json does it.

`step crypto jwt inspect` prints a token's payload as a Go ``json.RawMessage``: its key order,
duplicate keys and number spelling are kept, ``<``, ``>`` and ``&`` are escaped, and syntax
errors read like Go's ("invalid character 'x' after object key"). :func:`parse_go_json` uses
:mod:`json` with hooks that keep order, duplicates and the numbers' text, and rewords the
decoder's errors; :func:`go_indent` writes Go's ``json.Indent`` layout.

Differences from Go that remain (no test nor script known to depend on them): string escapes
are re-encoded rather than kept as the token spelled them (``"\\u00e9"`` prints as ``"é"``,
``"\\/"`` as ``"/"``), and a syntax error at a byte that is not valid UTF-8 names the
first byte of U+FFFD (``'\u00ef'``) rather than that byte.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from cli.certinfo.json_common import go_html_escape


class GoJSONError(ValueError):
    """A syntax error, worded as Go's encoding/json words it."""


class RawNumber(str):
    """A JSON number kept as written (Go's json.RawMessage keeps its spelling)."""


@dataclass(frozen=True)
class JSONObject:
    """A JSON object with its members in order, duplicates included."""

    members: list[tuple[str, JSONValue]]


JSONValue = JSONObject | list["JSONValue"] | str | bool | None


class _ConstantError(ValueError):
    """NaN, Infinity or -Infinity: Python's decoder takes them, Go's refuses them."""


def _refuse_constant(text: str) -> None:
    raise _ConstantError(text)


def json_type(value: JSONValue) -> str:
    """The JSON type's name as Go's UnmarshalTypeError says it."""
    if isinstance(value, JSONObject):
        return "object"
    if isinstance(value, list):
        return "array"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, RawNumber):
        return "number"
    return "string"


def parse_go_json(data: bytes) -> JSONValue:
    """json.Unmarshal into a json.RawMessage-like tree; GoJSONError with Go's message."""
    text = data.decode("utf-8", "replace")
    try:
        value: JSONValue = json.loads(
            text,
            object_pairs_hook=JSONObject,
            parse_int=RawNumber,
            parse_float=RawNumber,
            parse_constant=_refuse_constant,
        )
    except json.JSONDecodeError as exc:
        raise GoJSONError(_go_syntax_error(exc.msg, text, exc.pos)) from None
    except _ConstantError as exc:  # the decoder stops at the first one, as Go does
        constant = str(exc)
        if constant.startswith("-"):
            raise GoJSONError("invalid character 'I' in numeric literal") from None
        raise GoJSONError(f"invalid character {_quote_char(constant[0])} {_BEGIN_VALUE}") from None
    return value


# --- Go's wording of syntax errors ----------------------------------------------------------

_BEGIN_VALUE = "looking for beginning of value"
_EOF = "unexpected end of JSON input"
_CONTEXTS = {
    "Expecting property name enclosed in double quotes": "looking for beginning of object key "
    "string",
    "Expecting ':' delimiter": "after object key",
    "Extra data": "after top-level value",
    "Invalid control character at": "in string literal",
}
_NUMBER_BEFORE = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?\Z")
_HEX = "0123456789abcdefABCDEF"


def _quote_char(char: str) -> str:
    """Go's quoteChar."""
    if char == "'":
        return "'\\''"
    if char == '"':
        return "'\"'"
    return f"'{json.dumps(char)[1:-1]}'"


def _at(text: str, pos: int, context: str) -> str:
    """Go's message for the byte at `pos` (the first byte of a multi-byte character)."""
    if pos >= len(text):
        return _EOF
    first_byte = text[pos].encode("utf-8", "surrogatepass")[0]
    return f"invalid character {_quote_char(chr(first_byte))} {context}"


def _go_syntax_error(message: str, text: str, pos: int) -> str:
    """Go's message for the error Python's decoder reports as `message` at `pos`."""
    if message.startswith("Unterminated string"):
        return _EOF
    if message.startswith("Invalid \\"):
        backslash = text.rfind("\\", 0, pos + 1)
        if text[backslash + 1 : backslash + 2] != "u":
            return _at(text, backslash + 1, "in string escape code")
        hex_end = backslash + 2
        while hex_end < backslash + 6 and hex_end < len(text) and text[hex_end] in _HEX:
            hex_end += 1
        return _at(text, hex_end, "in \\u hexadecimal character escape")
    if message == "Expecting value" and pos < len(text):
        return _value_error(text, pos)
    number_problem = _number_continuation(text, pos)
    if number_problem is not None:
        return number_problem
    if message == "Expecting ',' delimiter":
        in_array = _innermost_container(text, pos) == "["
        return _at(text, pos, "after array element" if in_array else "after object key:value pair")
    return _at(text, pos, _CONTEXTS.get(message, _BEGIN_VALUE))


def _value_error(text: str, pos: int) -> str:
    """A value that Python's decoder could not start: a broken literal or number, or none."""
    char = text[pos]
    if char == "-":
        return _at(text, pos + 1, "in numeric literal")
    for word in ("true", "false", "null"):
        if char == word[0]:
            for index, expected in enumerate(word):
                if pos + index >= len(text):
                    return _EOF
                if text[pos + index] != expected:
                    context = f"in literal {word} (expecting {_quote_char(expected)})"
                    return _at(text, pos + index, context)
    return _at(text, pos, _BEGIN_VALUE)


def _number_continuation(text: str, pos: int) -> str | None:
    """Go's error when a number that ends at `pos` goes on with a bad fraction or exponent."""
    number = _NUMBER_BEFORE.search(text[max(0, pos - 400) : pos])
    if number is None or pos >= len(text):
        return None
    fraction, exponent = number.group(1), number.group(2)
    if text[pos] == "." and not fraction and not exponent:
        return _at(text, pos + 1, "after decimal point in numeric literal")
    if text[pos] in "eE" and not exponent:
        after = pos + 1 + (text[pos + 1 : pos + 2] in ("+", "-"))
        return _at(text, after, "in exponent of numeric literal")
    return None


def _innermost_container(text: str, pos: int) -> str:
    """'{' or '[': the container open at `pos` (strings skipped)."""
    stack: list[str] = []
    in_string = escaped = False
    for char in text[:pos]:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            stack.append(char)
        elif char in "}]" and stack:
            stack.pop()
    return stack[-1] if stack else ""


# --- writing ---------------------------------------------------------------------------------

_SURROGATE = re.compile("[\ud800-\udfff]")


def go_string(text: str) -> str:
    """A JSON string as Go writes it: UTF-8 kept, HTML-sensitive characters escaped."""
    encoded = go_html_escape(json.dumps(text, ensure_ascii=False))
    return _SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", encoded)


def _scalar(value: JSONValue) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, RawNumber):
        return str(value)
    assert isinstance(value, str)
    return go_string(value)


def go_compact(value: JSONValue) -> str:
    """Go's json.Compact (with HTML escaping) of `value`."""
    if isinstance(value, JSONObject):
        return "{" + ",".join(f"{go_string(k)}:{go_compact(v)}" for k, v in value.members) + "}"
    if isinstance(value, list):
        return "[" + ",".join(go_compact(item) for item in value) + "]"
    return _scalar(value)


def go_indent(value: JSONValue, depth: int = 0) -> str:
    """Go's json.Indent with prefix "" and indent "  ", for a value nested `depth` deep."""
    pad = "  " * (depth + 1)
    if isinstance(value, JSONObject):
        if not value.members:
            return "{}"
        body = ",\n".join(
            f"{pad}{go_string(k)}: {go_indent(v, depth + 1)}" for k, v in value.members
        )
        return "{\n" + body + "\n" + "  " * depth + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        body = ",\n".join(pad + go_indent(item, depth + 1) for item in value)
        return "[\n" + body + "\n" + "  " * depth + "]"
    return _scalar(value)
