"""A small authoritative DNS server on 127.0.0.1 (UDP and TCP on one port) for ACME tests.

It answers from what the test sets: TXT values (in `txt`, or one per line in a file named
after the record in `records_dir`, which hook scripts of other processes can write) and A
records (`a`, e.g. NAME -> 127.0.0.1). Every other name is NXDOMAIN; it never recurses, so a
CA pointed at it with `step-ca --resolver 127.0.0.1:PORT` asks nothing beyond loopback. It
records every question (`queries`), so a test can show the CA really looked.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from pathlib import Path
from types import TracebackType

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

HOST = "127.0.0.1"
TTL = 5


class DNSServer:
    """Start with `with DNSServer(dir) as dns:`; `dns.port` is the port of both sockets."""

    def __init__(self, records_dir: Path | None = None) -> None:
        self.records_dir = records_dir
        self.txt: dict[str, list[str]] = {}
        self.a: dict[str, str] = {}
        self.queries: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._servers: list[socketserver.BaseServer] = []
        self._threads: list[threading.Thread] = []
        self.port = 0

    # --- records --------------------------------------------------------------------------

    def set_txt(self, name: str, *values: str) -> None:
        self.txt[_key(name)] = list(values)

    def txt_values(self, name: str) -> list[str]:
        values = list(self.txt.get(name, []))
        if self.records_dir is not None:
            path = self.records_dir / name
            if path.is_file():
                values += [v for v in path.read_text().split() if v]
        return values

    def asked(self, name: str, rdtype: str) -> bool:
        with self._lock:
            return (_key(name), rdtype) in self.queries

    def answer(self, wire: bytes) -> bytes | None:
        """The response to one query message (None for garbage, which gets no answer)."""
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # a test server drops what it cannot parse
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        response.flags &= ~dns.flags.RA
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return bytes(response.to_wire())
        question = query.question[0]
        name = _key(question.name.to_text())
        rdtype = dns.rdatatype.to_text(question.rdtype)
        with self._lock:
            self.queries.append((name, rdtype))
        txt, address = self.txt_values(name), self.a.get(name)
        if not txt and address is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif rdtype == "TXT" and txt:
            response.answer.append(
                dns.rrset.from_text_list(question.name, TTL, "IN", "TXT", [f'"{v}"' for v in txt])
            )
        elif rdtype == "A" and address is not None:
            response.answer.append(
                dns.rrset.from_text_list(question.name, TTL, "IN", "A", [address])
            )
        return bytes(response.to_wire())

    # --- serving --------------------------------------------------------------------------

    def start(self) -> None:
        owner = self

        class UDP(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                out = owner.answer(data)
                if out is not None:
                    sock.sendto(out, self.client_address)

        class TCP(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: socket.socket = self.request
                sock.settimeout(10)
                while True:
                    head = _read(sock, 2)
                    body = _read(sock, int.from_bytes(head, "big")) if head else b""
                    out = owner.answer(body) if body else None
                    if out is None:
                        return
                    sock.sendall(len(out).to_bytes(2, "big") + out)

        tcp = socketserver.ThreadingTCPServer((HOST, 0), TCP)
        tcp.daemon_threads = True
        self.port = tcp.server_address[1]
        udp = socketserver.ThreadingUDPServer((HOST, self.port), UDP)
        udp.daemon_threads = True
        self._servers = [tcp, udp]
        for server in self._servers:
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join()
        self._servers, self._threads = [], []

    def __enter__(self) -> DNSServer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _key(name: str) -> str:
    return name.lower().rstrip(".")


def _read(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        try:
            chunk = sock.recv(size - len(data))
        except OSError:
            return b""
        if not chunk:
            return b""
        data += chunk
    return data


def hook_script(path: Path, records_dir: Path, value: str = '"$CERTBOT_VALIDATION"') -> Path:
    """A certbot `--manual-auth-hook` that publishes the TXT value for $CERTBOT_DOMAIN (a
    wildcard's base name) in `records_dir`; `value` replaces the real one for negative tests."""
    path.write_text(
        f'#!/bin/sh\nset -e\necho {value} >> "{records_dir}/_acme-challenge.$CERTBOT_DOMAIN"\n'
    )
    path.chmod(0o755)
    return path


def cleanup_script(path: Path, records_dir: Path) -> Path:
    """The matching `--manual-cleanup-hook`: removes the domain's record file."""
    path.write_text(f'#!/bin/sh\nrm -f "{records_dir}/_acme-challenge.$CERTBOT_DOMAIN"\n')
    path.chmod(0o755)
    return path
