"""`step ssh` without a CA: inspect, fingerprint, the agent commands, key files, and what a real
sshd and ssh-agent make of them (certificates signed here by a local CA key)."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from cli import ssh_agent, ssh_config, ssh_keys
from cli.common import CLIError
from cli.ssh_sign import default_principals, sanitize_principal
from tests.e2e.harness import STEP
from tests.sshd import USER, local_cert, public_line, require_openssh, ssh
from tests.sshd import ssh_agent as agent
from tests.sshd import sshd as run_sshd

pytestmark = pytest.mark.usefixtures("openssh")


@pytest.fixture
def openssh() -> None:
    require_openssh()


def step(
    tmp: Path, *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = env if env is not None else dict(os.environ)
    base = {k: v for k, v in base.items() if not k.startswith("STEP")}
    base.update(STEPPATH=str(tmp / "step"), HOME=str(tmp))
    if env is None:
        base.pop("SSH_AUTH_SOCK", None)
    return subprocess.run(
        [str(STEP), *map(str, args)],
        cwd=tmp,
        env=base,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def one_line_failure(proc: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert proc.returncode != 0, proc.stdout
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and fragment in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def keygen(*args: str | Path) -> str:
    proc = subprocess.run(
        ["ssh-keygen", *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def write_pair(tmp: Path, name: str, cert: object, key: ec.EllipticCurvePrivateKey) -> Path:
    """KEY, KEY.pub and KEY-cert.pub as `step ssh certificate` writes them."""
    base = tmp / name
    base.write_bytes(ssh_keys.private_openssh(key, None))
    base.chmod(0o600)
    Path(f"{base}.pub").write_bytes(ssh_keys.authorized_line(key.public_key(), "joe@example.com"))
    Path(f"{base}-cert.pub").write_bytes(ssh_keys.authorized_line(cert, "joe@example.com"))
    return base


@pytest.fixture
def user_ca() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_default_principals_follow_step() -> None:
    assert default_principals("Joe.Smith@example.com", False) == [
        "joesmith",
        "Joe.Smith",
        "Joe.Smith@example.com",
    ]
    assert default_principals("joe", False) == ["joe"]
    assert default_principals("host.example.com", True) == ["host.example.com"]
    assert sanitize_principal("a+b@x") == "a_b"


def test_inspect_matches_ssh_keygen(tmp_path: Path, user_ca: ec.EllipticCurvePrivateKey) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = local_cert(user_ca, key.public_key(), ["joe", "root"], key_id="joe@example.com")
    base = write_pair(tmp_path, "id_ecdsa", cert, key)
    crt = Path(f"{base}-cert.pub")
    proc = step(tmp_path, "ssh", "inspect", crt)
    assert proc.returncode == 0, proc.stderr
    ours = [line.strip() for line in proc.stdout.splitlines()]
    theirs = [line.strip() for line in keygen("-L", "-f", crt).splitlines()]
    assert ours[0] == theirs[0] == f"{crt}:"
    for field in ("Type:", "Public key:", "Key ID:", "Serial:", "Valid:"):
        assert next(x for x in ours if x.startswith(field)) == next(
            x for x in theirs if x.startswith(field)
        )
    assert next(x for x in ours if x.startswith("Signing CA:")).startswith(
        next(x for x in theirs if x.startswith("Signing CA:")).split(" (")[0]
    )
    assert ours[ours.index("Principals:") + 1 : ours.index("Principals:") + 3] == ["joe", "root"]
    assert "Critical Options: (none)" in ours
    assert "permit-pty" in ours
    assert ours[-1] and all(len(b) == 2 for b in ours[-1].split(":") if b)

    doc = json.loads(step(tmp_path, "ssh", "inspect", crt, "--format", "json").stdout)
    assert doc["Type"] == "user" and doc["KeyID"] == "joe@example.com"
    assert doc["Principals"] == ["joe", "root"] and doc["Extensions"] == {"permit-pty": ""}
    assert doc["Serial"] == cert.serial

    # stdin, as `step ssh list --raw | step ssh inspect`
    piped = subprocess.run(
        [str(STEP), "ssh", "inspect"],
        input=crt.read_text(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert piped.returncode == 0 and 'Key ID: "joe@example.com"' in piped.stdout


def test_inspect_refuses_what_is_not_a_certificate(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pub = tmp_path / "id.pub"
    pub.write_text(public_line(key.public_key()) + "\n")
    one_line_failure(step(tmp_path, "ssh", "inspect", pub), "not a certificate")
    (tmp_path / "junk").write_text("hello\n")
    one_line_failure(step(tmp_path, "ssh", "inspect", tmp_path / "junk"), "error parsing")
    one_line_failure(step(tmp_path, "ssh", "inspect", tmp_path / "absent"), "no such file")
    one_line_failure(step(tmp_path, "ssh", "inspect", pub, "--format", "xml"), "--format")


def test_fingerprint_matches_ssh_keygen(
    tmp_path: Path, user_ca: ec.EllipticCurvePrivateKey
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    base = write_pair(tmp_path, "id", local_cert(user_ca, key.public_key(), ["joe"]), key)
    for path in (Path(f"{base}.pub"), Path(f"{base}-cert.pub")):
        proc = step(tmp_path, "ssh", "fingerprint", path)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == keygen("-l", "-f", path).strip()
    whole = step(tmp_path, "ssh", "fingerprint", f"{base}-cert.pub", "--certificate").stdout
    assert whole.split()[1] != keygen("-l", "-f", f"{base}.pub").split()[1]
    hexed = step(tmp_path, "ssh", "fingerprint", f"{base}.pub", "--format", "hex").stdout
    assert len(hexed.split()[1]) == len("SHA256:") + 64
    one_line_failure(step(tmp_path, "ssh", "fingerprint", f"{base}.pub", "--certificate"), "not")


def test_private_key_is_openssh_and_encrypted(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "id"
    path.write_bytes(ssh_keys.private_openssh(key, b"correct horse"))
    path.chmod(0o600)
    assert path.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    public = keygen("-y", "-P", "correct horse", "-f", path).split()[:2]
    assert " ".join(public) == public_line(key.public_key())
    wrong = subprocess.run(
        ["ssh-keygen", "-y", "-P", "wrong", "-f", str(path)], capture_output=True, timeout=120
    )
    assert wrong.returncode != 0


def test_sshd_accepts_right_principal_refuses_wrong_and_expired(
    tmp_path: Path, user_ca: ec.EllipticCurvePrivateKey
) -> None:
    host_key = ec.generate_private_key(ec.SECP256R1())
    host_file = tmp_path / "ssh_host_ecdsa_key"
    host_file.write_bytes(ssh_keys.private_openssh(host_key, None))
    host_file.chmod(0o600)
    with run_sshd(tmp_path, host_key=host_file, user_ca=public_line(user_ca.public_key())) as srv:
        known = tmp_path / "known_hosts"
        known.write_text(f"[127.0.0.1]:{srv.port} {public_line(host_key.public_key())}\n")
        now = datetime.now(UTC)
        cases = {
            "good": local_cert(
                user_ca, (k1 := ec.generate_private_key(ec.SECP256R1())).public_key(), [USER]
            ),
            "wrong": local_cert(
                user_ca,
                (k2 := ec.generate_private_key(ec.SECP256R1())).public_key(),
                ["nobody-else"],
            ),
            "expired": local_cert(
                user_ca,
                (k3 := ec.generate_private_key(ec.SECP256R1())).public_key(),
                [USER],
                valid_after=now - timedelta(hours=2),
                valid_before=now - timedelta(hours=1),
            ),
        }
        keys = {"good": k1, "wrong": k2, "expired": k3}
        results = {}
        for name, cert in cases.items():
            base = write_pair(tmp_path, f"id_{name}", cert, keys[name])
            results[name] = ssh(
                srv,
                known,
                "-i",
                str(base),
                "-o",
                f"CertificateFile={base}-cert.pub",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "IdentityAgent=none",
            )
        assert results["good"].returncode == 0, results["good"].stderr + srv.log_text()
        assert results["good"].stdout.strip() == f"connected-as-{USER}"
        assert results["wrong"].returncode != 0 and "Permission denied" in results["wrong"].stderr
        assert results["expired"].returncode != 0
        log = srv.log_text()
        assert "name is not a listed principal" in log or "not in principal" in log.lower()
        assert "expired" in log.lower()


def test_agent_login_list_logout(
    tmp_path: Path, user_ca: ec.EllipticCurvePrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    host_key = ec.generate_private_key(ec.SECP256R1())
    host_file = tmp_path / "hostkey"
    host_file.write_bytes(ssh_keys.private_openssh(host_key, None))
    host_file.chmod(0o600)
    with (
        agent(tmp_path) as env,
        run_sshd(tmp_path, host_key=host_file, user_ca=public_line(user_ca.public_key())) as srv,
    ):
        monkeypatch.setenv("SSH_AUTH_SOCK", env["SSH_AUTH_SOCK"])
        empty = step(tmp_path, "ssh", "list", env=env)
        assert empty.stdout.strip() == "The agent has no identities."
        key = ec.generate_private_key(ec.SECP256R1())
        cert = local_cert(user_ca, key.public_key(), [USER], key_id="joe@example.com")
        ssh_agent.add_certificate("joe@example.com", cert, key)
        listed = ssh_agent.list_keys()
        assert len(listed) == 1 and listed[0].certificate is not None  # the cert only
        assert listed[0].comment == "joe@example.com"

        known = tmp_path / "known_hosts"
        known.write_text(f"[127.0.0.1]:{srv.port} {public_line(host_key.public_key())}\n")
        used = ssh(srv, known, "-o", f"IdentityAgent={env['SSH_AUTH_SOCK']}", env=env)
        assert used.returncode == 0, used.stderr + srv.log_text()

        fp = step(tmp_path, "ssh", "list", env=env)
        assert fp.returncode == 0 and fp.stdout.strip().endswith("joe@example.com (ECDSA-CERT)")
        raw = step(tmp_path, "ssh", "list", "--raw", "joe@example.com", env=env).stdout
        assert raw.startswith("ecdsa-sha2-nistp256-cert-v01@openssh.com ")
        assert step(tmp_path, "ssh", "list", "nobody", env=env).stdout == ""

        out = step(tmp_path, "ssh", "logout", "--all", env=env)
        assert out.stdout.strip() == "All identities removed."
        assert ssh_agent.list_keys() == []

        expired = local_cert(
            user_ca,
            key.public_key(),
            [USER],
            valid_after=datetime.now(UTC) - timedelta(hours=2),
            valid_before=datetime.now(UTC) - timedelta(hours=1),
        )
        with pytest.raises(CLIError, match="already expired"):
            ssh_agent.add_certificate("x", expired, key)


def test_agent_commands_need_an_agent(tmp_path: Path) -> None:
    one_line_failure(step(tmp_path, "ssh", "list"), "SSH_AUTH_SOCK")
    one_line_failure(step(tmp_path, "ssh", "logout", "--all"), "SSH_AUTH_SOCK")


def test_snippet_replaces_its_block_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("Host a\n\tUser b\n")
    ssh_config.write_snippet(path, b"Host *\n\tInclude x")
    ssh_config.write_snippet(path, b"Host *\n\tInclude y")
    text = path.read_text()
    assert text.startswith("Host a\n\tUser b\n\n# autogenerated by step @ ")
    assert text.count("# autogenerated by step") == 1 and text.endswith("\tInclude y\n# end\n")
    inc = tmp_path / "includes"
    inc.write_text('Include "/other"\nInclude "/s/ssh/config"\n')
    ssh_config.prepend_line(inc, b'Include "/s/ssh/config"')
    assert inc.read_text() == 'Include "/s/ssh/config"\nInclude "/other"'


def test_needs_renewal(tmp_path: Path, user_ca: ec.EllipticCurvePrivateKey) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    old = local_cert(
        user_ca,
        key.public_key(),
        ["joe"],
        valid_after=now - timedelta(minutes=90),
        valid_before=now + timedelta(minutes=30),
    )
    fresh = local_cert(
        user_ca,
        key.public_key(),
        ["joe"],
        valid_after=now - timedelta(minutes=1),
        valid_before=now + timedelta(hours=2),
    )
    (tmp_path / "old-cert.pub").write_bytes(ssh_keys.authorized_line(old, "joe"))
    (tmp_path / "fresh-cert.pub").write_bytes(ssh_keys.authorized_line(fresh, "joe"))
    needs = step(tmp_path, "ssh", "needs-renewal", "old-cert.pub", "--verbose")
    assert needs.returncode == 0 and needs.stdout.strip() == "certificate needs renewal"
    assert step(tmp_path, "ssh", "needs-renewal", "fresh-cert.pub").returncode == 1
    window = step(tmp_path, "ssh", "needs-renewal", "fresh-cert.pub", "--expires-in", "3h")
    assert window.returncode == 0
    assert step(tmp_path, "ssh", "needs-renewal", "absent-cert.pub").returncode == 2
    (tmp_path / "plain.pub").write_text(public_line(key.public_key()) + "\n")
    assert step(tmp_path, "ssh", "needs-renewal", "plain.pub").returncode == 255
    bad = step(tmp_path, "ssh", "needs-renewal", "old-cert.pub", "--expires-in", "101%")
    assert bad.returncode == 255 and "--expires-in" in bad.stderr
