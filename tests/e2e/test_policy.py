"""Issuance policies on the real appliance (`step ca init --ssh`, `step-ca`, `step`): a name
outside `authority.policy` or the provisioner's `policy` is refused with step-ca's 403 text,
SSH host certificates too, and a policy step-ca would not load stops `step-ca` in one line."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import (
    CA,
    FORBIDDEN,
    PROVISIONER_PASSWORD,
    STEP_CA,
    clean_env,
    free_port,
    load_chain,
    run_step,
)

AUTHORITY_POLICY = {
    "x509": {"allow": {"dns": ["*.example.test"], "ip": ["10.0.0.0/8"]}},
    "ssh": {"host": {"allow": {"dns": ["*.example.test"]}}},
}
PROVISIONER_POLICY = {"x509": {"deny": {"dns": ["denied.example.test"]}}}


def _with_policies(cfg: dict[str, Any]) -> None:
    cfg["authority"]["policy"] = AUTHORITY_POLICY
    cfg["authority"]["provisioners"][0]["policy"] = PROVISIONER_POLICY


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CA]:
    base = tmp_path_factory.mktemp("ca-policy")
    ca = CA(base=base, port=free_port(), name="Policy")
    ca.steppath.mkdir(parents=True)
    ca.password_file.write_text("ca-password-for-tests\n")
    ca.provisioner_password_file.write_text(PROVISIONER_PASSWORD + "\n")
    run_step(["ca", "init", "--ssh", *ca.init_flags()], ca.steppath)
    ca.edit_config(_with_policies)
    ca.start()
    try:
        yield ca
    finally:
        ca.stop()


def _certificate(
    ca: CA, tmp_path: Path, subject: str, *sans: str
) -> subprocess.CompletedProcess[str]:
    flags = [arg for san in sans for arg in ("--san", san)]
    return run_step(
        ["ca", "certificate", subject, tmp_path / "leaf.crt", tmp_path / "leaf.key", *flags,
         "--password-file", ca.provisioner_password_file],
        ca.steppath,
        check=False,
    )  # fmt: skip


def _refused(proc: subprocess.CompletedProcess[str], message: str) -> None:
    assert proc.returncode != 0, proc.stdout
    assert f"{FORBIDDEN}{message}" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_names_inside_both_policies_are_issued(ca: CA, tmp_path: Path) -> None:
    proc = _certificate(ca, tmp_path, "www.example.test", "www.example.test", "10.1.2.3")
    assert proc.returncode == 0, proc.stderr
    leaf = load_chain((tmp_path / "leaf.crt").read_bytes())[0]
    assert leaf.subject.rfc4514_string() == "CN=www.example.test"


def test_name_outside_the_authority_policy_is_refused(ca: CA, tmp_path: Path) -> None:
    _refused(_certificate(ca, tmp_path, "www.other.test"), 'dns name "www.other.test" not allowed')
    _refused(_certificate(ca, tmp_path, "www.example.test", "www.example.test", "192.168.1.1"),
             'ip name "192.168.1.1" not allowed')  # fmt: skip
    assert not (tmp_path / "leaf.crt").exists()


def test_name_outside_the_provisioner_policy_is_refused(ca: CA, tmp_path: Path) -> None:
    _refused(_certificate(ca, tmp_path, "denied.example.test"),
             'dns name "denied.example.test" not allowed')  # fmt: skip


def test_ssh_host_certificate_outside_the_policy_is_refused(ca: CA, tmp_path: Path) -> None:
    def host(name: str) -> subprocess.CompletedProcess[str]:
        return run_step(
            ["ssh", "certificate", "--host", name, tmp_path / f"{name}_key", "--no-password",
             "--insecure", "--provisioner-password-file", ca.provisioner_password_file],
            ca.steppath,
            check=False,
        )  # fmt: skip

    ok = host("web.example.test")
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "web.example.test_key-cert.pub").exists()
    _refused(host("web.other.test"), 'dns name "web.other.test" not allowed')
    assert not (tmp_path / "web.other.test_key-cert.pub").exists()


def test_ssh_user_certificate_refused_under_a_host_only_policy(ca: CA, tmp_path: Path) -> None:
    """step-ca's rule: with only an SSH host policy, user certificates are not signed."""
    proc = run_step(
        ["ssh", "certificate", "joe@example.test", tmp_path / "id_joe", "--no-password",
         "--insecure", "--no-agent", "--provisioner-password-file",
         ca.provisioner_password_file],
        ca.steppath,
        check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert f"{FORBIDDEN}error validating ssh certificate." in proc.stderr, proc.stderr


def test_invalid_policy_stops_step_ca_in_one_line(ca: CA) -> None:
    original = ca.ca_json.read_text()

    def bad(cfg: dict[str, Any]) -> None:
        cfg["authority"]["policy"] = {"x509": {"allow": {"ip": ["10.0.0.0/33"]}}}

    try:
        ca.edit_config(bad)
        proc = subprocess.run(
            [str(STEP_CA), str(ca.ca_json), "--password-file", str(ca.password_file)],
            capture_output=True,
            text=True,
            env=clean_env(ca.steppath),
            stdin=subprocess.DEVNULL,
            timeout=120,
        )
    finally:
        ca.ca_json.write_text(original)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].endswith(
        'authority.policy: cannot parse permitted constraint "10.0.0.0/33" as IP nor CIDR'
    ), proc.stderr
