"""PEM blocks and bundles read the way Go's encoding/pem and step's pemutil read them."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass

from cli.certinfo.der import CertParseError
from cli.certinfo.model import (
    Certificate,
    CertificateRequest,
    parse_certificate,
    parse_certificate_request,
)


@dataclass(frozen=True)
class PEMBlock:
    type: str
    headers: dict[str, str]
    data: bytes


_PEM_BEGIN = re.compile(rb"(?:^|\n)-----BEGIN ([^\r\n]*?)-----[ \t\r]*\n")


def pem_blocks(data: bytes) -> Iterator[PEMBlock]:
    """Go's encoding/pem.Decode applied repeatedly (malformed blocks are skipped)."""
    position = 0
    while True:
        match = _PEM_BEGIN.search(data, position)
        if match is None:
            return
        kind = match.group(1)
        end_marker = b"\n-----END " + kind + b"-----"
        end = data.find(end_marker, match.end() - 1)
        if end < 0:
            position = match.end()
            continue
        body = data[match.end() : end + 1]
        position = end + len(end_marker)
        headers: dict[str, str] = {}
        lines = body.split(b"\n")
        if lines and b":" in lines[0]:
            while lines and b":" in lines[0]:
                key, _, val = lines.pop(0).partition(b":")
                headers[key.strip().decode("latin-1")] = val.strip().decode("latin-1")
            if lines and lines[0].strip() == b"":
                lines.pop(0)
        text = b"".join(lines)
        text = re.sub(rb"[ \t\r\n]", b"", text)
        try:
            decoded = base64.b64decode(text, validate=True)
        except ValueError:
            continue
        yield PEMBlock(kind.decode("latin-1"), headers, decoded)


def pem_encode(kind: str, der: bytes) -> str:
    body = base64.b64encode(der).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return (
        f"-----BEGIN {kind}-----\n"
        + "".join(line + "\n" for line in lines)
        + (f"-----END {kind}-----\n")
    )


def parse_certificate_bundle(data: bytes) -> list[Certificate]:
    """pemutil.ParseCertificateBundle: every CERTIFICATE block (no headers), or one DER cert."""
    if b"-----BEGIN " in data:
        bundle: list[Certificate] = []
        for block in pem_blocks(data):
            if block.type != "CERTIFICATE" or block.headers:
                continue
            bundle.append(parse_certificate(block.data))
        if not bundle:
            raise CertParseError("does not contain a valid PEM encoded certificate")
        return bundle
    return [parse_certificate(data)]


def parse_certificate_request_data(data: bytes) -> CertificateRequest:
    """pemutil.ParseCertificateRequest: the first *CERTIFICATE REQUEST block, else DER."""
    if b"-----BEGIN " in data:
        for block in pem_blocks(data):
            if block.type.endswith("CERTIFICATE REQUEST"):
                return parse_certificate_request(block.data)
    return parse_certificate_request(data)
