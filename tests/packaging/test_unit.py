"""packaging/ without installing anything: the unit's exposure score (alone and with each
drop-in), the settings the issue asks of it, the defaults file it reads, and maintainer
scripts that a POSIX shell parses."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.packaging.unit_file import Unit, expand_command

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"
UNIT = PACKAGING / "stepstone.service"
DEFAULTS = PACKAGING / "stepstone.default"
DROPINS = sorted((PACKAGING / "dropins").glob("*.conf"))
SCRIPTS = [PACKAGING / "debian" / name for name in ("postinst", "prerm", "postrm", "config")]
MAX_EXPOSURE = 2.5
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def exposure(root: Path, unit: str = "stepstone.service") -> tuple[float, str]:
    """`systemd-analyze security --offline=true` of the unit under `root`: its score and
    stderr (where systemd reports settings it could not parse)."""
    assert SYSTEMD_ANALYZE is not None
    proc = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=true", f"--root={root}", "--no-pager", unit],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", proc.stdout)
    assert found, f"no score in:\n{proc.stdout}\n{proc.stderr}"
    return float(found.group(1)), proc.stderr


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("dropin", [None, *DROPINS], ids=lambda d: d.name if d else "unit")
def test_unit_exposure_is_at_most_2_5(tmp_path: Path, dropin: Path | None) -> None:
    units = tmp_path / "etc" / "systemd" / "system"
    units.mkdir(parents=True)
    shutil.copy(UNIT, units / UNIT.name)
    if dropin is not None:
        (units / f"{UNIT.name}.d").mkdir()
        shutil.copy(dropin, units / f"{UNIT.name}.d" / dropin.name)
    score, errors = exposure(tmp_path)
    assert score <= MAX_EXPOSURE, f"exposure {score} > {MAX_EXPOSURE}"
    assert not re.search(r"unknown|failed to parse|invalid", errors, re.I), errors


def test_unit_runs_step_ca_hardened_as_the_issue_asks() -> None:
    unit = Unit.read(UNIT)
    one = unit.value
    assert (one("User"), one("Group")) == ("stepstone", "stepstone")
    assert (one("Type"), one("NotifyAccess")) == ("notify", "all")
    env = unit.environment(root=Path("/nonexistent"))  # the unit's own defaults
    assert unit.commands("ExecStartPre", env) == [  # the schema, then the whole ca.json
        ["/usr/bin/step-ca", "db", "upgrade", "/var/lib/stepstone/config/ca.json"],
        ["/usr/bin/step-ca", "--check", "/var/lib/stepstone/config/ca.json"],
    ]
    assert unit.commands("ExecStart", env) == [
        ["/usr/bin/step-ca", "/var/lib/stepstone/config/ca.json"]
    ]
    assert unit.commands("ExecReload", {"MAINPID": "42"}) == [["/bin/kill", "-HUP", "42"]]
    assert unit.values("LoadCredential") == [
        "ca-password:/etc/stepstone/credentials/ca-password"
    ]
    assert unit.values("ReadWritePaths") == ["/var/lib/stepstone"]
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices",
                "LockPersonality", "MemoryDenyWriteExecute"):
        assert one(key) == "yes", key
    assert one("ProtectSystem") == "strict"
    assert one("UMask") == "0077"
    assert one("CapabilityBoundingSet") == one("AmbientCapabilities") == "CAP_NET_BIND_SERVICE"
    assert unit.values("SystemCallFilter")[0] == "@system-service"
    assert one("RestrictAddressFamilies") == "AF_INET AF_INET6 AF_UNIX"
    # Secrets never on a command line or in the environment.
    assert not any("password" in line for line in unit.values("ExecStart"))
    assert not any("PASSWORD" in v or "PIN" in v for v in unit.values("Environment"))


def test_defaults_file_agrees_with_the_unit(tmp_path: Path) -> None:
    """/etc/default/stepstone as shipped changes nothing: the same STEPPATH and CONFIG, inside
    the one folder the unit may write."""
    default = tmp_path / "etc" / "default" / "stepstone"
    default.parent.mkdir(parents=True)
    shutil.copy(DEFAULTS, default)
    unit = Unit.read(UNIT)
    assert unit.environment(root=tmp_path) == unit.environment(root=Path("/nonexistent"))
    env = unit.environment(root=tmp_path)
    writable = unit.values("ReadWritePaths")
    assert env["STEPPATH"] in writable
    assert Path(env["CONFIG"]).is_relative_to(env["STEPPATH"])
    assert not re.search(r"(?im)^\s*\w*(PASSWORD|PIN)\w*\s*=", DEFAULTS.read_text())


def test_dropins_open_the_hardware_and_add_the_pin() -> None:
    yubikey = Unit.read(UNIT, PACKAGING / "dropins" / "yubikey.conf")
    assert "BindPaths" in dict(yubikey.settings["Service"])
    assert yubikey.values("BindPaths") == ["/dev/bus/usb"]
    assert yubikey.values("DeviceAllow") == ["char-usb_device rw"]
    assert "pcscd.socket" in (yubikey.value("After", "Unit") or "")
    assert yubikey.values("LoadCredential") == [
        "ca-password:/etc/stepstone/credentials/ca-password",
        "kms-pin:/etc/stepstone/credentials/kms-pin",
    ]
    hsm = Unit.read(UNIT, PACKAGING / "dropins" / "hsm.conf")
    assert hsm.values("LoadCredential") == ["kms-pin:/etc/stepstone/credentials/kms-pin"]
    assert "/var/lib/softhsm/tokens" in hsm.values("ReadWritePaths")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_maintainer_script_is_posix_sh(script: Path) -> None:
    assert script.read_text().startswith("#!/bin/sh\n")
    assert script.stat().st_mode & 0o111, f"{script.name} is not executable"
    for shell in ("sh", "dash"):
        if shutil.which(shell):
            proc = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True)
            assert proc.returncode == 0, f"{shell} -n {script.name}: {proc.stderr}"


def test_expand_command_follows_systemd() -> None:
    env = {"CONFIG": "/a b/ca.json", "OPTS": "--quiet  --log-format text", "EMPTY": ""}
    assert expand_command("-/usr/bin/x ${CONFIG} $OPTS $EMPTY $UNSET", env) == [
        "/usr/bin/x", "/a b/ca.json", "--quiet", "--log-format", "text",
    ]
