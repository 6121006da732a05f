"""`POST /ssh/config`: the templates `init --ssh` wrote, rendered for `step ssh config`; and
the Go-template subset they need (appliance.gotemplate)."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import falcon.testing
import pytest

from api.app import create_app
from appliance.authority import Authority
from appliance.gotemplate import NO_VALUE, TemplateError, render
from appliance.ssh_templates import DEFAULT_CONTENT
from tests.api.test_ssh import open_authority, opened_authority, ssh_ca


@pytest.fixture(scope="module")
def steppath(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with ssh_ca(tmp_path_factory, "Cfg") as base:
        yield base


@pytest.fixture(scope="module")
def authority(steppath: Path) -> Iterator[Authority]:
    with opened_authority(steppath) as auth:
        yield auth


@pytest.fixture(scope="module")
def client(authority: Authority) -> falcon.testing.TestClient:
    return falcon.testing.TestClient(create_app(authority))


def _content(item: dict[str, Any]) -> str:
    return base64.b64decode(item["content"]).decode()


def test_init_writes_step_templates(steppath: Path) -> None:
    folder = steppath / "templates" / "ssh"
    assert sorted(p.name for p in folder.iterdir()) == sorted(DEFAULT_CONTENT)
    cfg = json.loads((steppath / "config" / "ca.json").read_text())
    user = cfg["templates"]["ssh"]["user"]
    assert user[0] == {
        "name": "config.tpl",
        "type": "snippet",
        "template": "templates/ssh/config.tpl",
        "path": "~/.ssh/config",
        "comment": "#",
    }
    assert cfg["templates"]["ssh"]["host"][0]["requires"] == ["Certificate", "Key"]


def test_user_config(client: falcon.testing.TestClient, steppath: Path) -> None:
    data = {"StepPath": "/home/alice/.step", "GOOS": "linux", "StepSSHTemplateVersion": "v2"}
    for path in ("/ssh/config", "/1.0/ssh/config", "/ssh/config/user"):
        resp = client.simulate_post(path, json={"type": "user", "data": data})
        assert resp.status_code == 200, resp.text
        items = resp.json["userTemplates"]
        assert [i["name"] for i in items] == [
            "config.tpl", "step_includes.tpl", "step_config.tpl", "known_hosts.tpl",
        ]  # fmt: skip
        by_name = {i["name"]: i for i in items}
        assert _content(by_name["config.tpl"]) == (
            'Host *\n\tInclude "/home/alice/.step/ssh/includes"'
        )
        assert by_name["step_includes.tpl"]["type"] == "prepend-line"
        assert by_name["step_includes.tpl"]["path"] == "${STEPPATH}/ssh/includes"
        assert _content(by_name["step_config.tpl"]) == (
            'Match exec "step ssh check-host %h"\n'
            '\tUserKnownHostsFile "/home/alice/.step/ssh/known_hosts"\n'
            "\tProxyCommand step ssh proxycommand %r %h %p\n"
        )
        host_pub = (steppath / "certs" / "ssh_host_ca_key.pub").read_text().strip()
        assert _content(by_name["known_hosts.tpl"]) == f"@cert-authority * {host_pub}\n"


def test_old_clients_get_step_includes_as_a_file(client: falcon.testing.TestClient) -> None:
    resp = client.simulate_post("/ssh/config", json={"data": {"StepPath": "/s"}})
    item = next(i for i in resp.json["userTemplates"] if i["name"] == "step_includes.tpl")
    assert (item["type"], item["path"]) == ("file", "ssh/includes")


def test_host_config(client: falcon.testing.TestClient, steppath: Path) -> None:
    data = {"Certificate": "ssh_host_ecdsa_key-cert.pub", "Key": "ssh_host_ecdsa_key"}
    resp = client.simulate_post("/ssh/config", json={"type": "host", "data": data})
    assert resp.status_code == 200, resp.text
    assert set(resp.json) == {"hostTemplates"}
    sshd, ca = resp.json["hostTemplates"]
    assert _content(sshd) == (
        "Match all\n\tTrustedUserCAKeys /etc/ssh/ca.pub\n"
        "\tHostCertificate /etc/ssh/ssh_host_ecdsa_key-cert.pub\n"
        "\tHostKey /etc/ssh/ssh_host_ecdsa_key"
    )
    user_pub = (steppath / "certs" / "ssh_user_ca_key.pub").read_text().strip()
    assert _content(ca) == user_pub + "\n"
    assert ca["path"] == "/etc/ssh/ca.pub"


def test_config_refusals(client: falcon.testing.TestClient) -> None:
    resp = client.simulate_post("/ssh/config", json={"type": "host", "data": {"Key": "k"}})
    assert resp.status_code == 400
    assert "required variable 'Certificate' is missing" in resp.json["message"]
    resp = client.simulate_post("/ssh/config", json={"type": "admin"})
    assert resp.status_code == 400 and "unsupported type admin" in resp.json["message"]


def test_edited_template_is_used(
    steppath: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "step"
    monkeypatch.setenv("STEPPATH", str(copy))  # relative template paths hang off STEPPATH
    shutil.copytree(steppath, copy)
    (copy / "config" / "ca.json").write_text(
        (steppath / "config" / "ca.json").read_text().replace(str(steppath), str(copy))
    )
    (copy / "templates" / "ssh" / "ca.tpl").write_text("# ours\n{{ .User.Note | upper }}\n")
    auth = open_authority(copy)
    try:
        c = falcon.testing.TestClient(create_app(auth))
        body = {"type": "host", "data": {"Certificate": "c", "Key": "k", "Note": "hi"}}
        resp = c.simulate_post("/ssh/config", json=body)
        assert _content(resp.json["hostTemplates"][1]) == "# ours\nHI\n"
    finally:
        auth.repository.engine.dispose()


@pytest.mark.parametrize(
    ("src", "data", "out"),
    [
        ("a {{- .X -}} b", {"X": 1}, "a1b"),
        ("{{ .Missing }}", {}, NO_VALUE),
        ('{{ if eq .A "x" }}yes{{ else if .B }}b{{ else }}no{{ end }}', {"A": "y", "B": 1}, "b"),
        ("{{ range .L }}[{{ . }}]{{ else }}none{{ end }}", {"L": ["a", "b"]}, "[a][b]"),
        ("{{ range .L }}x{{ else }}none{{ end }}", {"L": []}, "none"),
        ('{{ .P | replace "\\\\" "/" | trimPrefix "C:" }}', {"P": "C:\\a\\b"}, "/a/b"),
        ('{{ or .G "none" | eq "windows" }}', {}, "false"),
        ("{{ .B | toString | b64enc }}", {"B": b"\x00\xff"}, "AP8="),
    ],
)
def test_go_template_subset(src: str, data: dict[str, Any], out: str) -> None:
    assert render(src, data) == out


@pytest.mark.parametrize("src", ["{{ if .A }}x", "{{ end }}", "{{ nope .A }}", "{{ (.A) }}"])
def test_go_template_errors(src: str) -> None:
    with pytest.raises(TemplateError):
        render(src, {"A": 1})
