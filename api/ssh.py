"""step-ca's SSH routes: `/ssh/sign` (and the legacy `/sign-ssh`), `/ssh/renew`,
`/ssh/rekey`, `/ssh/revoke`, `/ssh/roots`, `/ssh/federation`, `/ssh/check-host`,
`/ssh/hosts` (alias `/ssh/get-hosts`), `/ssh/bastion`."""

from __future__ import annotations

import base64
import logging
import weakref
from typing import Any

import falcon
from cryptography.hazmat.primitives.serialization import SSHCertificate

from api.render import GetResource, json_response, optional_string, read_json
from api.revoke import parse_revoke
from appliance import ssh_renew
from appliance.authority import Authority
from appliance.ssh import SSHAuthority, SSHSignRequest
from appliance.ssh_keys import cert_wire, decode_public_key
from pki.errors import CAError, ErrorKind, bad_request, not_found
from provisioners.ssh import HOST, USER, SSHOptions

log = logging.getLogger(__name__)

_opened: weakref.WeakKeyDictionary[Authority, SSHAuthority] = weakref.WeakKeyDictionary()


def ssh_authority(authority: Authority) -> SSHAuthority:
    """The SSH CA of `authority` (its keys were opened at start), made once per authority: a
    reload builds a new one."""
    found = _opened.get(authority)
    if found is None:
        found = _opened[authority] = SSHAuthority(authority, authority.ssh_keys)
    return found


def _b64(cert: SSHCertificate) -> str:
    return base64.b64encode(cert_wire(cert)).decode()


class _SSHResource:
    def __init__(self, authority: Authority) -> None:
        self.authority = authority

    @property
    def ssh(self) -> SSHAuthority:
        return ssh_authority(self.authority)


class SSHSign(_SSHResource):
    """POST /ssh/sign: 201 `{"crt": base64 certificate, "addUserCrt"?: ...}`."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req)
        public_text = optional_string(body, "publicKey")
        ott = optional_string(body, "ott")
        if not public_text:
            raise bad_request("missing or empty publicKey")
        if not ott:
            raise bad_request("missing or empty ott")
        options = SSHOptions.from_json(body, "request")
        if options.cert_type not in ("", USER, HOST):
            raise bad_request(f"invalid certType '{options.cert_type}'")
        add_user_text = optional_string(body, "addUserPublicKey")
        request = SSHSignRequest(
            public_key=decode_public_key(public_text),
            ott=ott,
            options=options,
            add_user_key=decode_public_key(add_user_text) if add_user_text else None,
        )
        result = self.ssh.sign(request)
        req.context.provisioner = result.provisioner  # for the request log
        req.context.serial = result.certificate.serial
        out: dict[str, Any] = {"crt": _b64(result.certificate)}
        if result.add_user is not None:
            out["addUserCrt"] = _b64(result.add_user)
        json_response(resp, out, 201)


class SSHRoots(_SSHResource, GetResource):
    """GET /ssh/roots: the CA's user and host public keys."""

    federated = False

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        json_response(resp, self.ssh.roots(federated=self.federated))


class SSHFederation(SSHRoots):
    """GET /ssh/federation: own keys plus ca.json's `ssh.keys`."""

    federated = True


class SSHCheckHost(_SSHResource):
    """POST /ssh/check-host: `{"type":"host","principal","token"}` -> `{"exists": bool}`."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req)
        cert_type = optional_string(body, "type") or ""
        principal = optional_string(body, "principal") or ""
        optional_string(body, "token")  # step-ca passes it on without checking it
        json_response(resp, {"exists": self.ssh.check_host(cert_type, principal)})


class SSHHosts(_SSHResource, GetResource):
    """GET /ssh/hosts: `{"hosts":[{"hid":"","host_tags":null,"hostname":...}]}`."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not self.ssh.keys.enabled:
            raise CAError(ErrorKind.NOT_IMPLEMENTED, "ssh is not configured")
        hosts = [{"hid": "", "host_tags": None, "hostname": h} for h in self.ssh.hosts()]
        json_response(resp, {"hosts": hosts})


class SSHRenew(_SSHResource):
    """POST /ssh/renew `{"ott"}` (SSHPOP token of a host certificate): 201 `{"crt"}`."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        ott = optional_string(read_json(req), "ott")
        if not ott:
            raise bad_request("missing or empty ott")
        json_response(resp, {"crt": _b64(ssh_renew.renew(self.ssh, ott))}, 201)


class SSHRekey(_SSHResource):
    """POST /ssh/rekey `{"ott","publicKey"}`: 201 `{"crt"}` on the new key."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req)
        ott = optional_string(body, "ott")
        public_text = optional_string(body, "publicKey")
        if not ott:
            raise bad_request("missing or empty ott")
        if not public_text:
            raise bad_request("missing or empty public key")
        cert = ssh_renew.rekey(self.ssh, ott, decode_public_key(public_text))
        json_response(resp, {"crt": _b64(cert)}, 201)


class SSHRevoke(_SSHResource):
    """POST /ssh/revoke, `/revoke`'s body: 200 `{"status":"ok"}` (passive only)."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        parsed = parse_revoke(read_json(req))
        if not parsed.ott:
            raise bad_request("missing ott")
        request = ssh_renew.SSHRevokeRequest(
            parsed.serial, parsed.ott, parsed.reason_code, parsed.reason, True
        )
        req.context.serial = parsed.serial
        req.context.provisioner = ssh_renew.revoke(self.ssh, request)
        json_response(resp, {"status": "ok"})


class SSHConfig(_SSHResource):
    """POST /ssh/config[/{type}] `{"type":"user|host","data":{...}}`: the rendered
    templates, `{"userTemplates":[...]}` or `{"hostTemplates":[...]}`."""

    def on_post(self, req: falcon.Request, resp: falcon.Response, type: str = "") -> None:
        body = read_json(req)
        kind = optional_string(body, "type") or USER
        if kind not in (USER, HOST):
            raise bad_request(f"unsupported type {kind}")
        data = body.get("data") or {}
        if not isinstance(data, dict):
            raise bad_request("error decoding json")
        outputs = [o.to_json() for o in self.ssh.ssh_config(kind, data)]
        key = "userTemplates" if kind == USER else "hostTemplates"
        json_response(resp, {key: outputs} if outputs else {})  # Go's omitempty


class SSHBastion(_SSHResource):
    """POST /ssh/bastion `{"user","hostname"}`: `{"hostname","bastion"?}` with ca.json's
    `ssh.bastion` (step-ca's GetSSHBastion): none for the bastion itself (names compared
    case-insensitively) or without one; 404 without an `ssh` block."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req)
        optional_string(body, "user")  # step-ca passes it on to a custom bastion function
        hostname = optional_string(body, "hostname") or ""
        if not hostname:
            raise bad_request("missing or empty hostname")
        ssh = self.authority.config.ssh
        if ssh is None:
            raise not_found("authority.GetSSHBastion; ssh is not configured")
        out: dict[str, Any] = {"hostname": hostname}
        bastion = ssh.bastion
        own = bastion.hostname if bastion is not None else None
        if bastion is not None and own and hostname.casefold() != own.casefold():
            out["bastion"] = {"hostname": bastion.hostname} | {
                k: v
                for k, v in (
                    ("user", bastion.user),
                    ("port", bastion.port),
                    ("cmd", bastion.cmd),
                    ("flags", bastion.flags),
                )
                if v
            }
        json_response(resp, out)


def routes(authority: Authority) -> list[tuple[str, object]]:
    """The SSH routes, for api.app's table (each also under /1.0)."""
    sign = SSHSign(authority)
    hosts = SSHHosts(authority)
    config = SSHConfig(authority)
    return [
        ("/ssh/sign", sign),
        ("/sign-ssh", sign),
        ("/ssh/renew", SSHRenew(authority)),
        ("/ssh/rekey", SSHRekey(authority)),
        ("/ssh/revoke", SSHRevoke(authority)),
        ("/ssh/roots", SSHRoots(authority)),
        ("/ssh/federation", SSHFederation(authority)),
        ("/ssh/check-host", SSHCheckHost(authority)),
        ("/ssh/config", config),
        ("/ssh/config/{type}", config),
        ("/ssh/hosts", hosts),
        ("/ssh/get-hosts", hosts),
        ("/ssh/bastion", SSHBastion(authority)),
    ]
