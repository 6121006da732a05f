"""`step ssh hosts`, `check-host` and `proxycommand`: what the generated ssh config runs.

`Match exec "step ssh check-host %h"` asks the CA whether it issued a host certificate for the
host; `ProxyCommand step ssh proxycommand %r %h %p` logs the user in if the agent has no
certificate from the CA, then connects (through the CA's bastion when one is configured)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
from pathlib import Path

import typer

from cli import ssh_agent
from cli.ca.defaults import CA_URL_HELP, ROOT_HELP
from cli.ca.issue import key_spec
from cli.common import CLIError
from cli.ssh_config import MISSING_ROUTE
from cli.ssh_login import user_ca_keys
from cli.ssh_sign import connect, one_minute_ago, sign, sign_body, ssh_token


def hosts_command(
    ca_url: str | None = typer.Option(None, "--ca-url", help=CA_URL_HELP),
    root: str | None = typer.Option(None, "--root", help=ROOT_HELP),
) -> None:
    """List the hosts the CA has issued host certificates to (GET /ssh/hosts).

    Examples:

      $ step ssh hosts
    """
    client, _ = connect(None, ca_url, root)
    with client:
        body = client.json("GET", "/1.0/ssh/hosts")
    rows: list[tuple[str, ...]] = [("HOSTNAME", "ID", "TAGS")]
    for h in body.get("hosts") or []:
        if not isinstance(h, dict):
            continue
        tags = ",".join(
            f"{t.get('Name', '')}={t.get('Value', '')}" for t in h.get("host_tags") or []
        )
        rows.append((str(h.get("hostname", "")), str(h.get("hid", "")), tags))
    typer.echo(_tabwriter(rows), nl=False)


def _tabwriter(rows: list[tuple[str, ...]]) -> str:
    """Go's tabwriter with tab stops of 8 and tab padding, as step prints tables."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    out = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row[:-1]):
            stop = (widths[i] + 1 + 7) // 8 * 8
            tabs = (stop - len(cell) + 7) // 8
            cells.append(cell + "\t" * max(tabs, 1))
        out.append("".join(cells) + row[-1] + "\n")
    return "".join(out)


def check_host_command(
    hostname: str = typer.Argument(..., metavar="HOSTNAME", help="The host to check."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Print true or false."),
    ca_url: str | None = typer.Option(None, "--ca-url", help=CA_URL_HELP),
    root: str | None = typer.Option(None, "--root", help=ROOT_HELP),
) -> None:
    """Exit 0 if the CA has issued a host certificate for HOSTNAME, 1 if not.

    Examples:

      $ step ssh check-host internal.example.com -v
    """
    client, _ = connect(None, ca_url, root)
    with client:
        try:
            body = client.json(
                "POST", "/1.0/ssh/check-host", json={"type": "host", "principal": hostname}
            )
        except CLIError as exc:
            raise CLIError(f"error checking ssh host eligibility: {exc}") from None
    exists = bool(body.get("exists"))
    if verbose:
        typer.echo("true" if exists else "false")
    if not exists:
        raise typer.Exit(1)


def _login_if_needed(
    user: str,
    provisioner: str | None,
    password_file: Path | None,
    ca_url: str | None,
    root: str | None,
) -> None:
    """A user certificate from the CA into the agent, unless a valid one is there."""
    keys = ssh_agent.list_keys()
    client, root_path = connect(None, ca_url, root)
    with client:
        ca_keys = user_ca_keys(client)
        if ca_keys is not None:
            live = [k for k in keys if ssh_agent.signed_by(k, ca_keys)]
            if any(not ssh_agent.expired(k) for k in live):
                return
            ssh_agent.remove([k for k in live if ssh_agent.expired(k)])
        valid_after = one_minute_ago()
        ott = ssh_token(
            client,
            root_path,
            key_id=user,
            cert_type="user",
            principals=[user],
            valid_after=valid_after,
            valid_before="",
            provisioner=provisioner,
            password_file=password_file,
        )
        priv = key_spec("EC", None, 2048).generate()
        body = sign_body(priv.public_key(), ott, "user", user, [user], valid_after, "")
        cert, _ = sign(client, body)
    ssh_agent.add_certificate(user, cert, priv)


def _bastion(user: str, host: str, ca_url: str | None, root: str | None) -> dict[str, str] | None:
    client, _ = connect(None, ca_url, root)
    with client:
        try:
            body = client.json("POST", "/1.0/ssh/bastion", json={"user": user, "hostname": host})
        except CLIError as exc:
            if str(exc).startswith(MISSING_ROUTE):
                return None
            raise
    bastion = body.get("bastion")
    if isinstance(bastion, dict) and bastion.get("hostname"):
        return {k: str(v) for k, v in bastion.items()}
    return None


def relay(host: str, port: str) -> None:
    """nc: stdin to the host, the host to stdout; done when either side finishes."""
    try:
        sock = socket.create_connection((host, int(port)), timeout=30)
    except (OSError, ValueError) as exc:
        raise CLIError(f"error connecting to {host}:{port}: {exc}") from None
    sock.settimeout(None)
    done = threading.Event()

    def upstream() -> None:
        try:
            while chunk := os.read(0, 65536):
                sock.sendall(chunk)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        done.set()

    def downstream() -> None:
        try:
            while chunk := sock.recv(65536):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(1, view) :]
        except OSError:
            pass
        done.set()

    for target in (upstream, downstream):
        threading.Thread(target=target, daemon=True).start()
    done.wait()
    sock.close()


def proxycommand_command(
    user: str = typer.Argument(..., metavar="USER", help="The remote user (%r)."),
    host: str = typer.Argument(..., metavar="HOST", help="The remote host (%h)."),
    port: str = typer.Argument(..., metavar="PORT", help="The remote port (%p)."),
    provisioner: str | None = typer.Option(
        None, "--provisioner", "--issuer", help="The provisioner name to use."
    ),
    password_file: Path | None = typer.Option(
        None,
        "--provisioner-password-file",
        "--password-file",
        help="File with the password that decrypts the provisioner key.",
    ),
    ca_url: str | None = typer.Option(None, "--ca-url", help=CA_URL_HELP),
    root: str | None = typer.Option(None, "--root", help=ROOT_HELP),
) -> None:
    """The ssh ProxyCommand: log in to the CA if needed, then connect to HOST:PORT.

    Examples:

      $ ssh -o ProxyCommand='step ssh proxycommand %r %h %p' internal.example.com
    """
    _login_if_needed(user, provisioner, password_file, ca_url, root)
    bastion = _bastion(user, host, ca_url, root)
    if bastion is None:
        relay(host, port)
        return
    ssh = shutil.which("ssh") or "/usr/bin/ssh"
    args = [ssh]
    if bastion.get("user"):
        args += ["-l", bastion["user"]]
    if bastion.get("port"):
        args += ["-p", bastion["port"]]
    args += bastion.get("flags", "").split()
    args.append(bastion["hostname"])
    command = bastion.get("cmd")
    if command:
        args.append(command.replace("%r", user).replace("%h", host).replace("%p", port))
    else:
        args += ["nc", host, port]
    os.execv(ssh, args)
