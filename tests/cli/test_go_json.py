"""cli.go_json: the standard library's decoder, with Go's RawMessage layout and wording."""

from __future__ import annotations

import pytest

from cli.go_json import GoJSONError, JSONObject, RawNumber, go_compact, go_indent, parse_go_json


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"", "unexpected end of JSON input"),
        (b"[1,]", "invalid character ']' looking for beginning of value"),
        (b'{"a":1,}', "invalid character '}' looking for beginning of object key string"),
        (b'{"a" 1}', "invalid character '1' after object key"),
        (b'{"a":1 "b"}', "invalid character '\"' after object key:value pair"),
        (b"[1 2]", "invalid character '2' after array element"),
        (b'[{"a":"]"} 2]', "invalid character '2' after array element"),
        (b"01", "invalid character '1' after top-level value"),
        (b"-x", "invalid character 'x' in numeric literal"),
        (b"1.e", "invalid character 'e' after decimal point in numeric literal"),
        (b"[1e+]", "invalid character ']' in exponent of numeric literal"),
        (b"1\ne", "invalid character 'e' after top-level value"),
        (b"1.5.3", "invalid character '.' after top-level value"),
        (b'"a\nb"', "invalid character '\\n' in string literal"),
        (b'"\\x"', "invalid character 'x' in string escape code"),
        (b'"\\u12g4"', "invalid character 'g' in \\u hexadecimal character escape"),
        (b'"abc', "unexpected end of JSON input"),
        (b"nul", "unexpected end of JSON input"),
        (b"not json", "invalid character 'o' in literal null (expecting 'u')"),
        (b"[NaN]", "invalid character 'N' looking for beginning of value"),
        (b"-Infinity", "invalid character 'I' in numeric literal"),
        ("é".encode(), "invalid character '\\u00c3' looking for beginning of value"),
    ],
)
def test_syntax_errors_are_worded_as_go(text: bytes, message: str) -> None:
    with pytest.raises(GoJSONError) as caught:
        parse_go_json(text)
    assert str(caught.value) == message


def test_order_duplicates_and_number_spelling_are_kept() -> None:
    value = parse_go_json(b'{"b": 1.50e3, "a": [], "b": -0, "c": {}}')
    assert isinstance(value, JSONObject)
    assert [key for key, _ in value.members] == ["b", "a", "b", "c"]
    assert value.members[0][1] == RawNumber("1.50e3")
    assert go_compact(value) == '{"b":1.50e3,"a":[],"b":-0,"c":{}}'


def test_indent_is_go_layout_with_html_escapes() -> None:
    value = parse_go_json(b'{"k":["<a&b>", true, null, "\\ud800\\u2028"]}')
    assert go_indent(value) == (
        "{\n"
        '  "k": [\n'
        '    "\\u003ca\\u0026b\\u003e",\n'
        "    true,\n"
        "    null,\n"
        '    "\\ud800\\u2028"\n'
        "  ]\n"
        "}"
    )
