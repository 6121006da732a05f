"""SSH configuration templates: what `step ca init --ssh` writes (`templates/ssh/*.tpl` and
ca.json's `templates` block, as step lays them out) and what `POST /ssh/config` renders
from them for `step ssh config` (the user's `~/.ssh/config` pieces, or a host's sshd
configuration). Rendering is appliance.gotemplate's subset of Go's text/template.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.gotemplate import TemplateError, render
from keystores import write_atomic
from pki.errors import CAError, ErrorKind, bad_request
from pki.steppath import resolve

VERSION_KEY = "StepSSHTemplateVersion"

# step's default SSH templates (name, type, destination path, required data), in its order.
USER_TEMPLATES = (
    ("config.tpl", "snippet", "~/.ssh/config", ()),
    ("step_includes.tpl", "prepend-line", "${STEPPATH}/ssh/includes", ()),
    ("step_config.tpl", "file", "ssh/config", ()),
    ("known_hosts.tpl", "file", "ssh/known_hosts", ()),
)
HOST_TEMPLATES = (
    ("sshd_config.tpl", "snippet", "/etc/ssh/sshd_config", ("Certificate", "Key")),
    ("ca.tpl", "snippet", "/etc/ssh/ca.pub", ()),
)

_WINDOWS = '{{- if or .User.GOOS "none" | eq "windows" }}'
_CTX = "{{- if .User.Context }} --context {{ .User.Context }}{{- end }}"
_PROV = "{{- if .User.Provisioner }} --provisioner {{ .User.Provisioner }}{{- end }}"
_UNIX_PATH = '{{ .User.%s | replace "\\\\" "/" | trimPrefix "C:" }}'

# The contents step writes (step's templates.DefaultSSHTemplateData).
DEFAULT_CONTENT = {
    "config.tpl": "Host *\n"
    f"{_WINDOWS}\n"
    "{{- if .User.StepBasePath }}\n"
    f'\tInclude "{_UNIX_PATH % "StepBasePath"}/ssh/includes"\n'
    "{{- else }}\n"
    f'\tInclude "{_UNIX_PATH % "StepPath"}/ssh/includes"\n'
    "{{- end }}\n"
    "{{- else }}\n"
    "{{- if .User.StepBasePath }}\n"
    '\tInclude "{{.User.StepBasePath}}/ssh/includes"\n'
    "{{- else }}\n"
    '\tInclude "{{.User.StepPath}}/ssh/includes"\n'
    "{{- end }}\n"
    "{{- end }}",
    "step_includes.tpl": f'{_WINDOWS}Include "{_UNIX_PATH % "StepPath"}/ssh/config"'
    '{{- else }}Include "{{.User.StepPath}}/ssh/config"{{- end }}',
    "step_config.tpl": f'Match exec "step ssh check-host{_CTX} %h"\n'
    "{{- if .User.User }}\n"
    "\tUser {{.User.User}}\n"
    "{{- end }}\n"
    f"{_WINDOWS}\n"
    '\tUserKnownHostsFile "{{.User.StepPath}}\\ssh\\known_hosts"\n'
    "\tProxyCommand C:\\Windows\\System32\\cmd.exe /c step ssh proxycommand"
    f"{_CTX}{_PROV} %r %h %p\n"
    "{{- else }}\n"
    '\tUserKnownHostsFile "{{.User.StepPath}}/ssh/known_hosts"\n'
    f"\tProxyCommand step ssh proxycommand{_CTX}{_PROV} %r %h %p\n"
    "{{- end }}\n",
    "known_hosts.tpl": "@cert-authority * {{.Step.SSH.HostKey.Type}} "
    "{{.Step.SSH.HostKey.Marshal | toString | b64enc}}\n"
    "{{- range .Step.SSH.HostFederatedKeys}}\n"
    "@cert-authority * {{.Type}} {{.Marshal | toString | b64enc}}\n"
    "{{- end }}\n",
    "sshd_config.tpl": "Match all\n"
    "\tTrustedUserCAKeys /etc/ssh/ca.pub\n"
    "\tHostCertificate /etc/ssh/{{.User.Certificate}}\n"
    "\tHostKey /etc/ssh/{{.User.Key}}",
    "ca.tpl": "{{.Step.SSH.UserKey.Type}} {{.Step.SSH.UserKey.Marshal | toString | b64enc}}\n"
    "{{- range .Step.SSH.UserFederatedKeys}}\n"
    "{{.Type}} {{.Marshal | toString | b64enc}}\n"
    "{{- end }}\n",
}


def _entry(name: str, kind: str, path: str, requires: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": name,
        "type": kind,
        "template": f"templates/ssh/{name}",
        "path": path,
        "comment": "#",
    }
    if requires:
        out["requires"] = list(requires)
    return out


def default_block() -> dict[str, Any]:
    """ca.json's `templates` as `step ca init --ssh` writes it."""
    return {
        "ssh": {
            "user": [_entry(*t) for t in USER_TEMPLATES],
            "host": [_entry(*t) for t in HOST_TEMPLATES],
        }
    }


def write_defaults(step_path: Path) -> list[Path]:
    """`templates/ssh/*.tpl` with step's contents; the files written."""
    folder = step_path / "templates" / "ssh"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    written = []
    for name, content in DEFAULT_CONTENT.items():
        path = folder / name
        write_atomic(path, content.encode(), mode=0o644)
        written.append(path)
    return written


class SSHKeyValue:
    """An SSH public key as step's templates see it: `.Type` and `.Marshal` (wire bytes)."""

    def __init__(self, openssh_text: str) -> None:
        kind, b64 = openssh_text.split()[:2]
        self._type, self._wire = kind, base64.b64decode(b64)

    def Type(self) -> str:
        return self._type

    def Marshal(self) -> bytes:
        return self._wire


@dataclass(frozen=True)
class Output:
    """One rendered template (`content` is sent as base64, like Go's []byte)."""

    name: str
    type: str
    comment: str
    path: str
    content: bytes

    def to_json(self) -> dict[str, str]:
        return {
            "name": self.name,
            "type": self.type,
            "comment": self.comment,
            "path": self.path,
            "content": base64.b64encode(self.content).decode(),
        }


def render_config(
    block: dict[str, Any] | None,
    kind: str,
    data: dict[str, Any],
    step: dict[str, Any],
    base_dir: Path,
) -> list[Output]:
    """step-ca's GetSSHConfig: the `kind` (user/host) templates of ca.json's `templates`
    block rendered with `{"Step": step, "User": data}`."""
    ssh = block.get("ssh") if isinstance(block, dict) else None
    if not isinstance(ssh, dict):
        raise CAError(
            ErrorKind.NOT_FOUND,
            "getSSHConfig: ssh templates are not configured",
            public="ssh templates are not configured",
        )
    entries = ssh.get(kind) or []
    merged = {"Step": step, "User": data} if data else {"Step": step}
    out = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        name = str(entry.get("name", ""))
        for key in entry.get("requires") or []:
            if key not in data:
                raise bad_request(
                    f"required variable '{key}' is missing, please use `--set <key=value>` flag"
                )
        text = _load(entry, base_dir)
        try:
            content = render(text, merged).encode()
        except (TemplateError, TypeError) as exc:
            raise CAError(
                ErrorKind.INTERNAL,
                f"template {name}: {exc}",
                public=f"error rendering template {name}",
            ) from None
        kind_out, path = str(entry.get("type", "")), str(entry.get("path", ""))
        if name == "step_includes.tpl" and not data.get(VERSION_KEY):
            kind_out, path = "file", path.removeprefix("${STEPPATH}/")  # step < 0.18 clients
        out.append(Output(name, kind_out, str(entry.get("comment", "#")), path, content))
    return out


def _load(entry: dict[str, Any], base_dir: Path) -> str:
    template = entry.get("template")
    if isinstance(template, str) and template:
        try:
            return resolve(template, base_dir).read_text()
        except OSError as exc:
            raise CAError(
                ErrorKind.INTERNAL,
                f"error reading {template}: {exc}",
                public="error reading ssh template",
            ) from None
    name = str(entry.get("name", ""))
    if name in DEFAULT_CONTENT:
        return DEFAULT_CONTENT[name]
    raise CAError(ErrorKind.INTERNAL, f"template {name}: no template file")
