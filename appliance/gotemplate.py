"""The part of Go's text/template (with the sprig functions) that step's SSH config templates
use: `{{ }}` actions with `-` trimming, `if`/`else if`/`else`/`end`, `range`/`end`, field
chains (`.User.Key`, `.`), string literals, pipelines (`a | f "x"`) and the functions `or`,
`and`, `not`, `eq`, `ne`, `replace`, `trimPrefix`, `trimSuffix`, `lower`, `upper`,
`toString`, `b64enc`, `default`. A template outside that subset is a TemplateError.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

NO_VALUE = "<no value>"  # what Go prints for a missing map key


class TemplateError(ValueError):
    """A template this renderer cannot parse or run."""


def _truth(value: Any) -> bool:
    return value not in (None, False, 0, "", b"") and not (
        isinstance(value, (list, dict, tuple)) and not value
    )


def _text(value: Any) -> str:
    if value is None:
        return NO_VALUE
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


FUNCS: dict[str, Callable[..., Any]] = {
    "or": lambda *a: next((v for v in a if _truth(v)), a[-1] if a else None),
    "and": lambda *a: next((v for v in a if not _truth(v)), a[-1] if a else None),
    "not": lambda v: not _truth(v),
    "eq": lambda a, *b: any(a == x for x in b),
    "ne": lambda a, b: a != b,
    "replace": lambda old, new, s: _text(s).replace(old, new),
    "trimPrefix": lambda p, s: _text(s).removeprefix(p),
    "trimSuffix": lambda p, s: _text(s).removesuffix(p),
    "lower": lambda s: _text(s).lower(),
    "upper": lambda s: _text(s).upper(),
    # Go strings are bytes: toString keeps a key's wire bytes for b64enc.
    "toString": lambda v: v if isinstance(v, bytes) else _text(v),
    "b64enc": lambda s: base64.b64encode(s if isinstance(s, bytes) else _text(s).encode()).decode(),
    "default": lambda d, v=None: v if _truth(v) else d,
}

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`|\||\(|\)|[^\s|()]+')


@dataclass
class _Node:
    kind: str  # text, action, if, range
    text: str = ""
    branches: list[tuple[str, list[_Node]]] = field(default_factory=list)  # (pipeline, body)
    orelse: list[_Node] = field(default_factory=list)


def _lex(src: str) -> list[tuple[str, str]]:
    """Text and action pieces, with Go's `{{- ` / ` -}}` whitespace trimming applied."""
    out: list[tuple[str, str]] = []
    pos, trim_next = 0, False
    for m in _ACTION.finditer(src):
        text = src[pos : m.start()]
        if trim_next:
            text = text.lstrip()
        if m.group(1):
            text = text.rstrip()
        if text:
            out.append(("text", text))
        body = m.group(2).strip()
        if not body.startswith("/*"):
            out.append(("action", body))
        trim_next, pos = bool(m.group(3)), m.end()
    tail = src[pos:]
    out.append(("text", tail.lstrip() if trim_next else tail))
    return out


def parse(src: str) -> list[_Node]:
    """The template's tree."""
    nodes, _ = _parse(_lex(src), 0, top=True)
    return nodes


def _parse(pieces: list[tuple[str, str]], i: int, top: bool = False) -> tuple[list[_Node], int]:
    nodes: list[_Node] = []
    while i < len(pieces):
        kind, text = pieces[i]
        if kind == "text":
            nodes.append(_Node("text", text))
            i += 1
            continue
        word = text.split(None, 1)[0] if text else ""
        if word in ("end", "else"):
            if top:
                raise TemplateError(f"unexpected {{{{{word}}}}}")
            return nodes, i
        if word in ("if", "range"):
            node = _Node(word)
            cond = text[len(word) :].strip()
            i += 1
            while True:
                body, i = _parse(pieces, i)
                node.branches.append((cond, body))
                if i >= len(pieces):
                    raise TemplateError(f"unterminated {{{{{word}}}}}")
                stop = pieces[i][1]
                i += 1
                if stop == "end":
                    break
                if word == "if" and stop.startswith("else if "):
                    cond = stop[len("else if ") :].strip()
                    continue
                if stop == "else":
                    node.orelse, i = _parse(pieces, i)
                    if i >= len(pieces) or pieces[i][1] != "end":
                        raise TemplateError(f"unterminated {{{{{word}}}}}")
                    i += 1
                    break
                raise TemplateError(f"unexpected {{{{{stop}}}}}")
            nodes.append(node)
            continue
        nodes.append(_Node("action", text))
        i += 1
    return nodes, i


def _field(value: Any, name: str) -> Any:
    if isinstance(value, dict):
        return value.get(name)
    attr = getattr(value, name, None)
    return attr() if callable(attr) else attr


def _operand(token: str, dot: Any) -> Any:
    if token.startswith('"'):
        return bytes(token[1:-1], "utf-8").decode("unicode_escape")
    if token.startswith("`"):
        return token[1:-1]
    if token == ".":
        return dot
    if token.startswith("."):
        value = dot
        for part in token[1:].split("."):
            value = _field(value, part)
        return value
    if token in ("true", "false"):
        return token == "true"
    if token.lstrip("-").isdigit():
        return int(token)
    if token in FUNCS:
        return FUNCS[token]()
    raise TemplateError(f"function {token!r} not defined")


def _command(tokens: list[str], dot: Any, piped: tuple[Any, ...]) -> Any:
    head, args = tokens[0], tokens[1:]
    if head in FUNCS:
        return FUNCS[head](*[_operand(t, dot) for t in args], *piped)
    if args or piped:
        raise TemplateError(f"can't give argument to non-function {head}")
    return _operand(head, dot)


def evaluate(pipeline: str, dot: Any) -> Any:
    """A pipeline's value (no parentheses: step's templates use none)."""
    tokens = _TOKEN.findall(pipeline)
    if "(" in tokens or ")" in tokens:
        raise TemplateError("parenthesised pipelines are not supported")
    commands: list[list[str]] = [[]]
    for token in tokens:
        if token == "|":
            commands.append([])
        else:
            commands[-1].append(token)
    value: tuple[Any, ...] = ()
    for cmd in commands:
        if not cmd:
            raise TemplateError(f"missing command in {pipeline!r}")
        value = (_command(cmd, dot, value),)
    return value[0]


def _run(nodes: list[_Node], dot: Any, out: list[str]) -> None:
    for node in nodes:
        if node.kind == "text":
            out.append(node.text)
        elif node.kind == "action":
            out.append(_text(evaluate(node.text, dot)))
        elif node.kind == "if":
            for cond, body in node.branches:
                if _truth(evaluate(cond, dot)):
                    _run(body, dot, out)
                    break
            else:
                _run(node.orelse, dot, out)
        else:  # range
            items = evaluate(node.branches[0][0], dot)
            values = list(items.values()) if isinstance(items, dict) else list(items or [])
            for item in values:
                _run(node.branches[0][1], item, out)
            if not values:
                _run(node.orelse, dot, out)


def render(src: str, data: Any) -> str:
    """Run the template `src` on `data`."""
    out: list[str] = []
    _run(parse(src), data, out)
    return "".join(out)
