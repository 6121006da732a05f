"""`step ssh` against the real appliance (`step ca init --ssh`, `step-ca`) and real OpenSSH:
certificates read by `ssh-keygen -L`, an sshd that trusts the user CA, a client that trusts the
host CA through known_hosts `@cert-authority`, and `step ssh login` into a private ssh-agent."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.harness import CA, HOST, PROVISIONER, PROVISIONER_PASSWORD, STEP, free_port, run_step
from tests.e2e.tokens import TokenMaker
from tests.sshd import USER, require_openssh, ssh, ssh_agent, sshd

KEY_PASSWORD = "ssh-key-password-for-tests"


@dataclass
class Env:
    """The CA, a bootstrapped client STEPPATH with its own HOME, and password files."""

    ca: CA
    home: Path
    provisioner_pw: Path
    key_pw: Path

    @property
    def steppath(self) -> Path:
        return self.home / ".step"

    def step(
        self, *args: str | Path, agent: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}
        env.update(STEPPATH=str(self.steppath), HOME=str(self.home))
        env.pop("SSH_AUTH_SOCK", None)
        if agent is not None:
            env["SSH_AUTH_SOCK"] = agent["SSH_AUTH_SOCK"]
        return subprocess.run(
            [str(STEP), *map(str, args)],
            cwd=self.home,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    def ok(self, *args: str | Path, agent: dict[str, str] | None = None) -> str:
        proc = self.step(*args, agent=agent)
        assert proc.returncode == 0, f"{args}\n{proc.stderr}\n{self.ca.log_tail()}"
        return proc.stdout


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    require_openssh()
    base = tmp_path_factory.mktemp("ca-ssh")
    ca = CA(base=base, port=free_port(), name="SSH")
    ca.steppath.mkdir(parents=True)
    ca.password_file.write_text("ca-password-for-tests\n")
    ca.provisioner_password_file.write_text(PROVISIONER_PASSWORD + "\n")
    init = run_step(["ca", "init", "--ssh", *ca.init_flags()], ca.steppath, check=False)
    assert init.returncode == 0, init.stderr
    ca.start()
    try:
        with ca.http() as client:
            assert client.get("/ssh/roots").status_code == 200
        home = base / "home"
        home.mkdir()
        key_pw = base / "key-password"
        key_pw.write_text(KEY_PASSWORD + "\n")
        e = Env(ca=ca, home=home, provisioner_pw=ca.provisioner_password_file, key_pw=key_pw)
        e.ok("ca", "bootstrap", "--ca-url", ca.url, "--fingerprint", ca.fingerprint)
        yield e
    finally:
        ca.stop()


def keygen_list(cert: Path) -> str:
    proc = subprocess.run(
        ["ssh-keygen", "-L", "-f", str(cert)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def user_cert(env: Env, name: str, *extra: str | Path) -> Path:
    key = env.home / name
    env.ok(
        "ssh",
        "certificate",
        "joe@example.com",
        key,
        "--no-agent",
        "--provisioner-password-file",
        env.provisioner_pw,
        *extra,
    )
    return key


def host_cert(env: Env, hostname: str, name: str) -> Path:
    key = env.home / name
    env.ok(
        "ssh",
        "certificate",
        "--host",
        hostname,
        key,
        "--no-password",
        "--insecure",
        "--provisioner-password-file",
        env.provisioner_pw,
    )
    return key


def test_user_certificate_files_and_sshd(env: Env, tmp_path: Path) -> None:
    key = user_cert(env, "id_ecdsa", "--principal", USER, "--password-file", env.key_pw)
    cert = Path(f"{key}-cert.pub")
    listing = keygen_list(cert)
    assert "user certificate" in listing and 'Key ID: "joe@example.com"' in listing
    assert USER in listing.split("Principals:")[1].split("Critical")[0]
    assert key.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert Path(f"{key}.pub").read_text().endswith(" joe@example.com\n")
    # The key is encrypted with --password-file: ssh-keygen needs that password.
    derived = subprocess.run(
        ["ssh-keygen", "-y", "-P", KEY_PASSWORD, "-f", str(key)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        derived.returncode == 0
        and derived.stdout.split()[1] == Path(f"{key}.pub").read_text().split()[1]
    )
    inspected = env.ok("ssh", "inspect", cert)
    assert 'Key ID: "joe@example.com"' in inspected

    # sshd trusts the CA's user key (`step ssh config --roots`); the same key file, decrypted
    # for ssh, with the right principal gets in; a certificate for someone else does not.
    user_ca = env.ok("ssh", "config", "--roots")
    plain = user_cert(env, "id_plain", "--principal", USER, "--no-password", "--insecure")
    other = user_cert(
        env, "id_other", "--principal", "somebody-else", "--no-password", "--insecure"
    )
    later = user_cert(
        env,
        "id_later",
        "--principal",
        USER,
        "--no-password",
        "--insecure",
        "--not-before",
        "1h",
        "--not-after",
        "2h",
    )
    host_key = host_cert(env, "ssh.test", "ssh_host_ecdsa_key")
    with sshd(tmp_path, host_key=host_key, user_ca=user_ca) as srv:
        known = tmp_path / "known_hosts"
        known.write_text(f"[{HOST}]:{srv.port} {Path(f'{host_key}.pub').read_text()}")
        good = ssh(
            srv,
            known,
            "-i",
            str(plain),
            "-o",
            f"CertificateFile={plain}-cert.pub",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "IdentityAgent=none",
        )
        assert good.returncode == 0, good.stderr + srv.log_text()
        assert good.stdout.strip() == f"connected-as-{USER}"
        bad = ssh(
            srv,
            known,
            "-i",
            str(other),
            "-o",
            f"CertificateFile={other}-cert.pub",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "IdentityAgent=none",
        )
        assert bad.returncode != 0 and "Permission denied" in bad.stderr
        assert "not a listed principal" in srv.log_text() or "principal" in srv.log_text()
        early = ssh(
            srv,
            known,
            "-i",
            str(later),
            "-o",
            f"CertificateFile={later}-cert.pub",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "IdentityAgent=none",
        )
        assert early.returncode != 0 and "Permission denied" in early.stderr
        assert "not yet valid" in srv.log_text()


def test_host_certificate_trusted_through_step_ssh_config(env: Env, tmp_path: Path) -> None:
    host_key = host_cert(env, "ssh.test", "ssh_host_key_b")
    cert = Path(f"{host_key}-cert.pub")
    assert "host certificate" in keygen_list(cert)
    env.ok("ssh", "config", "--set", f"User={USER}", "--force")
    known = env.steppath / "ssh" / "known_hosts"
    host_ca = env.ok("ssh", "config", "--roots", "--host").strip()
    assert known.read_text().splitlines()[0] == f"@cert-authority * {host_ca}"
    ssh_config = (env.home / ".ssh" / "config").read_text()
    assert f'Include "{env.steppath}/ssh/includes"' in ssh_config
    assert (
        (env.steppath / "ssh" / "includes")
        .read_text()
        .startswith(f'Include "{env.steppath}/ssh/config"')
    )
    step_config = (env.steppath / "ssh" / "config").read_text()
    assert 'Match exec "step ssh check-host %h"' in step_config and f"User {USER}" in step_config
    user_ca = env.ok("ssh", "config", "--roots")
    login = user_cert(env, "id_host_test", "--principal", USER, "--no-password", "--insecure")
    with sshd(tmp_path, host_key=host_key, host_cert=cert, user_ca=user_ca) as srv:
        opts = [
            "-i",
            str(login),
            "-o",
            f"CertificateFile={login}-cert.pub",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "IdentityAgent=none",
            "-o",
            "HostKeyAlias=ssh.test",
        ]
        trusted = ssh(srv, known, *opts)
        assert trusted.returncode == 0, trusted.stderr + srv.log_text()
        empty = tmp_path / "empty_known_hosts"
        empty.write_text("")
        untrusted = ssh(srv, empty, *opts)
        assert untrusted.returncode != 0 and "Host key verification failed" in untrusted.stderr

    hosts = env.ok("ssh", "hosts")
    assert hosts.splitlines()[0].split() == ["HOSTNAME", "ID", "TAGS"]
    assert "ssh.test" in hosts
    assert env.ok("ssh", "check-host", "ssh.test", "--verbose").strip() == "true"
    missing = env.step("ssh", "check-host", "never-issued.test", "--verbose")
    assert missing.returncode == 1 and missing.stdout.strip() == "false"


def test_login_puts_the_certificate_in_the_agent(env: Env, tmp_path: Path) -> None:
    user_ca = env.ok("ssh", "config", "--roots")
    host_key = host_cert(env, "ssh.test", "ssh_host_key_c")
    with ssh_agent(tmp_path) as agent, sshd(tmp_path, host_key=host_key, user_ca=user_ca) as srv:
        out = env.step(
            "ssh",
            "login",
            USER,
            "--provisioner-password-file",
            env.provisioner_pw,
            "--not-after",
            "1h",
            agent=agent,
        )
        assert out.returncode == 0, out.stderr + env.ca.log_tail()
        assert "SSH Agent: yes" in out.stderr
        listed = env.ok("ssh", "list", agent=agent).splitlines()
        assert len(listed) == 1 and listed[0].endswith(f" {USER} (ECDSA-CERT)")
        raw = env.ok("ssh", "list", "--raw", agent=agent)
        inspected = subprocess.run(
            [str(STEP), "ssh", "inspect"], input=raw, capture_output=True, text=True, timeout=120
        )
        assert f'Key ID: "{USER}"' in inspected.stdout

        known = tmp_path / "known_hosts"
        known.write_text(f"[{HOST}]:{srv.port} {Path(f'{host_key}.pub').read_text()}")
        used = ssh(srv, known, "-o", f"IdentityAgent={agent['SSH_AUTH_SOCK']}", env=agent)
        assert used.returncode == 0, used.stderr + srv.log_text()

        again = env.ok("ssh", "login", USER, agent=agent)
        assert "is already present in the SSH agent" in again

        gone = env.ok("ssh", "logout", USER, agent=agent)
        assert gone.strip() == f"Identity removed: {USER}"
        assert env.ok("ssh", "list", agent=agent).strip() == "The agent has no identities."


def test_bad_input_fails_with_one_line(env: Env) -> None:
    def fails(fragment: str, *args: str | Path) -> None:
        proc = env.step(*args)
        lines = [x for x in proc.stderr.splitlines() if x.strip()]
        assert proc.returncode != 0 and lines and fragment in lines[-1], proc.stderr
        assert "Traceback" not in proc.stderr

    fails("--insecure", "ssh", "certificate", "x", env.home / "k1", "--no-password")
    fails("incompatible", "ssh", "certificate", "--host", "--add-user", "x", env.home / "k2")
    fails(
        "decrypt",
        "ssh",
        "certificate",
        "x",
        env.home / "k3",
        "--no-password",
        "--insecure",
        "--provisioner-password-file",
        env.key_pw,
    )


def test_sign_an_existing_public_key(env: Env) -> None:
    key = env.home / "existing"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "mine", "-f", str(key)],
        check=True,
        timeout=120,
    )
    before = key.read_bytes()
    out = env.step(
        "ssh",
        "certificate",
        "--sign",
        "joe@example.com",
        f"{key}.pub",
        "--provisioner-password-file",
        env.provisioner_pw,
    )
    assert out.returncode == 0, out.stderr
    assert "Private Key" not in out.stderr and key.read_bytes() == before
    listing = keygen_list(Path(f"{key}-cert.pub"))
    assert "ssh-ed25519-cert-v01@openssh.com user certificate" in listing
    again = env.step(
        "ssh",
        "certificate",
        "--sign",
        "joe@example.com",
        f"{key}.pub",
        "--provisioner-password-file",
        env.provisioner_pw,
    )
    assert again.returncode != 0 and "--force" in again.stderr


def test_sshd_config_lines_for_a_host(env: Env) -> None:
    out = env.ok(
        "ssh",
        "config",
        "--host",
        "--dry-run",
        "--set",
        "Certificate=ssh_host_ecdsa_key-cert.pub",
        "--set",
        "Key=ssh_host_ecdsa_key",
    )
    user_ca = env.ok("ssh", "config", "--roots").strip()
    assert "/etc/ssh/sshd_config\nMatch all\n\tTrustedUserCAKeys /etc/ssh/ca.pub\n" in out
    assert "\tHostCertificate /etc/ssh/ssh_host_ecdsa_key-cert.pub\n" in out
    assert "\tHostKey /etc/ssh/ssh_host_ecdsa_key\n" in out
    assert f"/etc/ssh/ca.pub\n{user_ca}\n" in out
    missing = env.step("ssh", "config", "--host", "--dry-run")
    assert missing.returncode != 0 and "'Certificate' is missing" in missing.stderr


def test_proxycommand_logs_in_and_connects(env: Env, tmp_path: Path) -> None:
    user_ca = env.ok("ssh", "config", "--roots")
    host_key = host_cert(env, "ssh.test", "ssh_host_key_d")
    with ssh_agent(tmp_path) as agent, sshd(tmp_path, host_key=host_key, user_ca=user_ca) as srv:
        known = tmp_path / "known_hosts"
        known.write_text(f"[{HOST}]:{srv.port} {Path(f'{host_key}.pub').read_text()}")
        child = dict(agent, STEPPATH=str(env.steppath), HOME=str(env.home))
        proxy = f"{STEP} ssh proxycommand --provisioner-password-file {env.provisioner_pw} %r %h %p"
        out = ssh(
            srv,
            known,
            "-o",
            f"ProxyCommand={proxy}",
            "-o",
            f"IdentityAgent={agent['SSH_AUTH_SOCK']}",
            env=child,
        )
        assert out.returncode == 0, out.stderr + srv.log_text() + env.ca.log_tail()
        assert out.stdout.strip() == f"connected-as-{USER}"
        listed = env.ok("ssh", "list", agent=agent)
        assert listed.strip().endswith(f" {USER} (ECDSA-CERT)")


def test_given_token_sets_principals_and_is_single_use(env: Env) -> None:
    with env.ca.http() as http:
        maker = TokenMaker.fetch(http, PROVISIONER_PASSWORD, env.ca.fingerprint)
    claim = {
        "certType": "user",
        "keyID": "joe@example.com",
        "principals": ["ops"],
        "validAfter": "",
        "validBefore": "",
    }
    token = maker.token(
        "joe@example.com",
        aud=f"{env.ca.url}/1.0/ssh/sign",
        omit=("sans",),
        extra={"step": {"ssh": claim}},
    )
    key = env.home / "id_token"
    env.ok(
        "ssh",
        "certificate",
        "joe@example.com",
        key,
        "--token",
        token,
        "--no-password",
        "--insecure",
        "--no-agent",
    )
    listing = keygen_list(Path(f"{key}-cert.pub"))
    assert listing.split("Principals:")[1].split("Critical")[0].split() == ["ops"]
    replay = env.step(
        "ssh",
        "certificate",
        "joe@example.com",
        env.home / "id_token2",
        "--token",
        token,
        "--no-password",
        "--insecure",
        "--no-agent",
    )
    assert replay.returncode != 0 and "authorization" in replay.stderr
    assert not (env.home / "id_token2").exists()


def serial_of(cert: Path) -> str:
    return keygen_list(cert).split("Serial:")[1].split()[0]


def test_renew_rekey_revoke_over_sshpop(env: Env, tmp_path: Path) -> None:
    with env.ca.http() as http:
        listed = http.get("/provisioners", params={"limit": "100"}).json()["provisioners"]
    assert any(str(p.get("type", "")).upper() == "SSHPOP" for p in listed), listed
    key = host_cert(env, "renew.test", "ssh_host_renew")
    cert = Path(f"{key}-cert.pub")
    first = serial_of(cert)
    out = env.step("ssh", "renew", cert, key, "--force")
    assert out.returncode == 0, out.stderr + env.ca.log_tail()
    renewed = keygen_list(cert)
    assert "host certificate" in renewed and "renew.test" in renewed
    assert serial_of(cert) != first
    assert cert.read_text().endswith(" renew.test\n")

    # Without --force an existing file is not replaced (no terminal to ask on).
    refused = env.step("ssh", "renew", cert, key)
    assert refused.returncode != 0 and "--force" in refused.stderr

    new_key = env.home / "ssh_host_rekeyed"
    out = env.step("ssh", "rekey", cert, key, "--out", new_key, "--no-password", "--insecure")
    assert out.returncode == 0, out.stderr + env.ca.log_tail()
    new_cert = Path(f"{new_key}-cert.pub")
    pub = Path(f"{new_key}.pub").read_text().split()[1]
    assert pub != Path(f"{key}.pub").read_text().split()[1]
    listing = keygen_list(new_cert)
    assert "renew.test" in listing
    derived = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(new_key)], capture_output=True, text=True, timeout=120
    )
    assert derived.stdout.split()[1] == pub

    # Revoked with its own key (SSHPOP), the rekeyed certificate can no longer be renewed.
    gone = env.ok("ssh", "revoke", "--sshpop-cert", new_cert, "--sshpop-key", new_key)
    assert (
        gone.strip()
        == f"SSH Certificate with Serial Number {serial_of(new_cert)} has been revoked."
    )
    denied = env.step("ssh", "renew", new_cert, new_key, "--force")
    assert denied.returncode != 0 and "authorization" in denied.stderr

    # Revoked by serial with the JWK provisioner's token.
    other = host_cert(env, "revoke.test", "ssh_host_revoke")
    serial = serial_of(Path(f"{other}-cert.pub"))
    by_serial = env.ok(
        "ssh",
        "revoke",
        serial,
        "--provisioner",
        PROVISIONER,
        "--provisioner-password-file",
        env.provisioner_pw,
        "--reason",
        "test",
    )
    assert f"Serial Number {serial} has been revoked" in by_serial

    user = user_cert(env, "id_user_renew", "--no-password", "--insecure")
    not_host = env.step("ssh", "renew", f"{user}-cert.pub", user, "--force")
    assert not_host.returncode != 0 and "host" in not_host.stderr
    wrong_key = env.step("ssh", "renew", cert, user, "--force")
    assert wrong_key.returncode != 0 and "does not match" in wrong_key.stderr


def test_add_user_writes_the_provisioner_certificate(env: Env) -> None:
    key = env.home / "id_adduser"
    out = env.step(
        "ssh",
        "certificate",
        "joe@example.com",
        key,
        "--add-user",
        "--principal",
        "joe",
        "--no-password",
        "--insecure",
        "--no-agent",
        "--provisioner-password-file",
        env.provisioner_pw,
    )
    assert out.returncode == 0, out.stderr
    prov_cert = Path(f"{key}-provisioner-cert.pub")
    assert "Add User Certificate" in out.stderr and prov_cert.exists()
    listing = keygen_list(prov_cert)
    assert "force-command" in listing and "user certificate" in listing
    assert Path(f"{key}-provisioner.pub").read_text().endswith(" joe-provisioner\n")
    assert oct(Path(f"{key}-provisioner").stat().st_mode & 0o777) == "0o600"


def test_step_ca_token_ssh_makes_a_token_step_ssh_certificate_takes(env: Env) -> None:
    """`step ca token --ssh --principal`: a one-time token with the `step.ssh` claim."""
    token = env.ok(
        "ca", "token", "ann@example.com", "--ssh", "--principal", "ann", "--principal", "ops",
        "--password-file", env.provisioner_pw,
    ).strip()
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["step"]["ssh"]["principals"] == ["ann", "ops"]
    assert claims["step"]["ssh"]["certType"] == "user" and claims["aud"].endswith("/ssh/sign")
    key = env.home / "id_ca_token"
    env.ok("ssh", "certificate", "ann@example.com", key, "--token", token,
           "--no-password", "--insecure", "--no-agent")
    listing = keygen_list(Path(f"{key}-cert.pub"))
    assert listing.split("Principals:")[1].split("Critical")[0].split() == ["ann", "ops"]
    for args, message in ((("--host",), "requires the '--ssh' flag"),
                          (("--ssh", "--san", "x.test"), "incompatible with '--san'")):
        refused = env.step("ca", "token", "x.test", *args, "--password-file", env.provisioner_pw)
        assert refused.returncode == 1 and message in refused.stderr, refused.stderr
