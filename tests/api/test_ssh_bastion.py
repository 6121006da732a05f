"""`POST /ssh/bastion` in process: ca.json's `ssh.bastion` as step-ca's GetSSHBastion serves
it (none for the bastion itself, none configured, 404 without an `ssh` block)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import falcon.testing
import pytest

from api.app import create_app
from tests.api.test_ssh import open_authority, ssh_ca

BASTION = {"hostname": "Bastion.example.com", "user": "jump", "port": "2222", "cmd": "nc %h %p",
           "flags": "-A -o StrictHostKeyChecking=yes"}  # fmt: skip


@pytest.fixture(scope="module")
def steppath(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with ssh_ca(tmp_path_factory, "Bastion") as base:
        yield base


def client_for(steppath: Path, edit: Any) -> Iterator[falcon.testing.TestClient]:
    authority = open_authority(steppath, edit)
    try:
        yield falcon.testing.TestClient(create_app(authority))
    finally:
        authority.repository.engine.dispose()


@pytest.fixture
def with_bastion(steppath: Path) -> Iterator[falcon.testing.TestClient]:
    def edit(raw: dict[str, Any]) -> None:
        raw["ssh"]["bastion"] = dict(BASTION)

    yield from client_for(steppath, edit)


@pytest.fixture
def without_bastion(steppath: Path) -> Iterator[falcon.testing.TestClient]:
    def edit(raw: dict[str, Any]) -> None:
        raw["ssh"].pop("bastion", None)

    yield from client_for(steppath, edit)


@pytest.fixture
def without_ssh(steppath: Path) -> Iterator[falcon.testing.TestClient]:
    def edit(raw: dict[str, Any]) -> None:
        raw["ssh"].pop("bastion", None)
        raw["_ssh"] = raw.pop("ssh")

    def restore(raw: dict[str, Any]) -> None:
        raw["ssh"] = raw.pop("_ssh")

    try:
        yield from client_for(steppath, edit)
    finally:
        open_authority(steppath, restore).repository.engine.dispose()


def bastion(client: falcon.testing.TestClient, body: Any, path: str = "/ssh/bastion") -> Any:
    return client.simulate_post(path, json=body)


def test_bastion_for_other_hosts(with_bastion: falcon.testing.TestClient) -> None:
    for path in ("/ssh/bastion", "/1.0/ssh/bastion"):
        resp = bastion(with_bastion, {"user": "joe", "hostname": "web.example.com"}, path)
        assert resp.status_code == 200
        assert resp.json == {"hostname": "web.example.com", "bastion": BASTION}
    # No user is fine (step-ca only hands it to a custom bastion function).
    resp = bastion(with_bastion, {"hostname": "db.example.com"})
    assert resp.json == {"hostname": "db.example.com", "bastion": BASTION}


def test_no_bastion_for_the_bastion(with_bastion: falcon.testing.TestClient) -> None:
    resp = bastion(with_bastion, {"user": "joe", "hostname": "bastion.EXAMPLE.com"})
    assert resp.status_code == 200
    assert resp.json == {"hostname": "bastion.EXAMPLE.com"}


def test_only_the_fields_set(steppath: Path) -> None:
    def edit(raw: dict[str, Any]) -> None:
        raw["ssh"]["bastion"] = {"hostname": "jump.example.com", "port": ""}

    for client in client_for(steppath, edit):
        resp = bastion(client, {"hostname": "web.example.com"})
        assert resp.json == {"hostname": "web.example.com",
                             "bastion": {"hostname": "jump.example.com"}}  # fmt: skip


def test_without_bastion(without_bastion: falcon.testing.TestClient) -> None:
    resp = bastion(without_bastion, {"user": "joe", "hostname": "web.example.com"})
    assert resp.status_code == 200
    assert resp.json == {"hostname": "web.example.com"}


def test_without_ssh(without_ssh: falcon.testing.TestClient) -> None:
    resp = bastion(without_ssh, {"user": "joe", "hostname": "web.example.com"})
    assert resp.status_code == 404
    assert resp.json["status"] == 404


def test_bad_requests(with_bastion: falcon.testing.TestClient) -> None:
    for body in ({"user": "joe"}, {"hostname": ""}, {}):
        resp = bastion(with_bastion, body)
        assert resp.status_code == 400
        assert "missing or empty hostname" in resp.json["message"]
    wrong_types: list[dict[str, Any]] = [{"hostname": 7}, {"hostname": "h", "user": ["joe"]}]
    for wrong in wrong_types:
        assert bastion(with_bastion, wrong).status_code == 400
    resp = with_bastion.simulate_post("/ssh/bastion", body="{not json")
    assert resp.status_code == 400
