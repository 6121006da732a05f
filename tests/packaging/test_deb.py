"""The Debian package end to end: `packaging/build-deb.sh` builds it, `dpkg -i` installs it,
`step ca init` runs as the stepstone user into /var/lib/stepstone, the unit's ExecStartPre
(`step-ca db upgrade`, `step-ca --check`) and ExecStart run as the service would run them (the
upgrade also on a database left by an older release), a certificate is signed
with the packaged `step` and shows in a metrics scrape, then upgrade and purge keep the CA,
and only a confirmed purge (STEPSTONE_PURGE_KEYS=yes, or debconf) deletes it.

No systemd runs here: the unit file is read (tests/packaging/unit_file.py) and its commands
are started with its environment, user, umask, a CREDENTIALS_DIRECTORY like systemd's, and
the kernel's no-new-privileges and memory-deny-write-execute (PR_SET_MDWE) flags.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.db.engine import migrate, open_engine
from tests.packaging.box import (
    ETC,
    STATE,
    Box,
    dpkg,
    package_state,
    purge_left_by_killed_run,
    snapshot,
)

ROOT = Path(__file__).resolve().parents[2]
HAVE_DPKG = all(shutil.which(tool) for tool in ("dpkg", "dpkg-deb"))
needs_dpkg = pytest.mark.skipif(not HAVE_DPKG, reason="dpkg/dpkg-deb are not installed")
needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="installing a package and a system user needs root"
)


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package, built as `make deb` builds it (fast gzip: the contents are the same)."""
    if not HAVE_DPKG:
        pytest.skip("dpkg/dpkg-deb are not installed")
    out = tmp_path_factory.mktemp("deb")
    env = dict(
        os.environ,
        PIP=str(Path(sys.executable).parent / "pip"),
        WORK_DIR=str(out / "work"),
        DEB_COMPRESSION="gzip",
        DEB_COMPRESSION_LEVEL="1",
    )
    proc = subprocess.run(
        [str(ROOT / "packaging" / "build-deb.sh"), str(out)],
        env=env, capture_output=True, text=True, timeout=1200, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"build-deb.sh failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    built = Path(proc.stdout.strip().splitlines()[-1])
    assert built.name.startswith("stepstone_") and built.suffix == ".deb"
    shutil.rmtree(out / "work")
    return built


@needs_dpkg
def test_package_holds_the_venv_the_commands_and_the_unit(deb: Path) -> None:
    listing = subprocess.run(
        ["dpkg-deb", "--contents", str(deb)], capture_output=True, text=True, check=True
    ).stdout
    paths = {line.split(maxsplit=5)[5].split(" -> ")[0].lstrip("."): line
             for line in listing.splitlines()}
    assert "-> /opt/stepstone/bin/step" in paths["/usr/bin/step"]
    assert "-> /opt/stepstone/bin/step-ca" in paths["/usr/bin/step-ca"]
    for path in ("/opt/stepstone/bin/step-ca", "/opt/stepstone/pyvenv.cfg",
                 "/lib/systemd/system/stepstone.service", "/etc/default/stepstone",
                 "/usr/share/doc/stepstone/examples/yubikey.conf",
                 "/usr/share/doc/stepstone/examples/hsm.conf"):
        assert path in paths, path
    interpreter = [line for path, line in paths.items() if path.startswith("/opt/stepstone/bin/py")
                   and "-> /usr/bin/python3." in line]
    assert interpreter, "the venv's python is not Debian's /usr/bin/python3.X"
    assert not [p for p in paths if "__pycache__" in p]  # compiled by postinst
    assert not [p for p in paths if "/site-packages/pytest" in p or "/site-packages/mypy/" in p]

    def field(name: str) -> str:
        return subprocess.run(["dpkg-deb", "--field", str(deb), name],
                              capture_output=True, text=True, check=True).stdout.strip()

    depends = field("Depends")
    assert re.search(r"\bpython3\.\d+\b", depends) and "adduser" in depends, depends
    assert "debconf" in depends and "libc6" in depends, depends
    assert field("Version") in deb.name


@needs_dpkg
def test_maintainer_scripts_in_the_package_parse(deb: Path, tmp_path: Path) -> None:
    subprocess.run(["dpkg-deb", "--control", str(deb), str(tmp_path)], check=True)
    assert (tmp_path / "conffiles").read_text().split() == ["/etc/default/stepstone"]
    assert "Template: stepstone/purge-keys" in (tmp_path / "templates").read_text()
    for name in ("postinst", "prerm", "postrm", "config"):
        proc = subprocess.run(["sh", "-n", str(tmp_path / name)], capture_output=True, text=True)
        assert proc.returncode == 0, f"sh -n {name}: {proc.stderr}"


@needs_dpkg
@pytest.mark.skipif(shutil.which("lintian") is None,
                    reason="lintian is not installed (make system-deps installs it)")
def test_lintian_reports_no_error(deb: Path) -> None:
    proc = subprocess.run(
        ["lintian", "--fail-on", "error", "--no-tag-display-limit", str(deb)],
        capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL,
    )
    errors = [line for line in proc.stdout.splitlines() if line.startswith("E:")]
    assert proc.returncode == 0 and not errors, "\n".join(errors) or proc.stderr


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    """This machine as a server to install on; purged and cleaned up whatever happens."""
    purge_left_by_killed_run()
    if package_state() not in ("not-installed", "unknown"):
        pytest.fail("a stepstone package is installed here: the test will not touch it "
                    "(a test run that was killed? STEPSTONE_PURGE_KEYS=yes dpkg --purge stepstone)")
    if STATE.exists() or ETC.exists():
        pytest.fail(f"{STATE} or {ETC} exists here: the test will not touch them "
                    "(left by a killed test run? remove them)")
    box = Box(tmp_path)
    try:
        yield box
    finally:
        box.clean_up()


@needs_dpkg
@needs_root
def test_install_serve_upgrade_purge(deb: Path, box: Box) -> None:
    # Install: the user, the folders and their modes, the commands on the PATH.
    box.install(deb)
    user = pwd.getpwnam("stepstone")
    assert user.pw_uid < 1000 and user.pw_shell == "/usr/sbin/nologin"
    assert user.pw_dir == str(STATE)
    assert box.owner_mode(ETC) == ("root", "stepstone", 0o750)
    assert box.owner_mode(ETC / "credentials") == ("root", "root", 0o700)
    assert box.owner_mode(STATE) == ("stepstone", "stepstone", 0o700)
    assert Path("/usr/bin/step-ca").resolve() == Path("/opt/stepstone/bin/step-ca")
    assert (Path("/opt/stepstone/bin/python").resolve().parent) == Path("/usr/bin")
    assert list(Path("/opt/stepstone/lib").glob("python3*/site-packages/cli/__pycache__/*.pyc"))
    version = box.as_service(["/usr/bin/step-ca", "version"])
    assert version.returncode == 0 and "Stepstone" in version.stdout, version.stderr
    box.verify_unit()

    # `step ca init` as the stepstone user into /var/lib/stepstone; the credential as an
    # operator writes it.
    box.init_ca()
    for name in ("root_ca_key", "intermediate_ca_key"):
        assert box.owner_mode(STATE / "secrets" / name) == ("stepstone", "stepstone", 0o600)
    box.write_credential()

    # ExecStartPre, then ExecStart, as systemd would run them. `step ca init` made the schema.
    upgrade, check = box.run_unit_commands("ExecStartPre")
    assert (upgrade.returncode, upgrade.stderr) == (0, ""), upgrade.stderr
    assert upgrade.stdout.startswith("database schema already at head "), upgrade.stdout
    assert check.returncode == 0, f"step-ca --check failed:\n{check.stdout}\n{check.stderr}"
    assert "Packaged CA" in check.stdout and "OK" in check.stdout, check.stdout
    box.enable_metrics()
    box.listen_for_notifications()
    box.start_service()
    assert box.wait_for_notification("READY=1")  # Type=notify: systemd would now call it up
    assert box.health() == {"status": "ok"}

    # A certificate with the packaged `step`, then the metrics scrape that counts it.
    cert = box.sign_with_packaged_step("pkg.internal")
    assert "pkg.internal" in cert
    issued = box.metric("stepstone_certificates_issued_total", provisioner="admin")
    assert issued >= 1, box.scrape()

    # ExecReload (SIGHUP): still serving; SIGTERM stops cleanly.
    box.reload_service()
    box.wait_for_notification("RELOADING=1")
    box.wait_for_notification("READY=1")  # the new workers serve
    assert box.health() == {"status": "ok"}
    assert box.stop_service() == 0, box.log_tail()

    # Upgrade (the same package again): keys, ca.json, database, credentials and a changed
    # /etc/default/stepstone stay exactly as they were.
    defaults = Path("/etc/default/stepstone")
    defaults.write_text(defaults.read_text() + "# changed by the operator\n")
    before = snapshot()
    box.install(deb)
    assert snapshot() == before
    assert box.start_checks_pass()

    # A database an older release left (its first schema): the unit upgrades it before the
    # check, and the CA serves from it.
    db = STATE / "db" / "stepstone.db"
    db.unlink()
    engine = open_engine(f"sqlite:///{db}")
    migrate(engine, "0001")
    engine.dispose()
    shutil.chown(db, "stepstone", "stepstone")
    upgrade, check = box.run_unit_commands("ExecStartPre")
    assert upgrade.returncode == 0 and upgrade.stdout.startswith(
        "database schema upgraded from 0001 to "
    ), upgrade.stdout + upgrade.stderr
    assert check.returncode == 0, check.stderr
    assert box.owner_mode(db) == ("stepstone", "stepstone", 0o600)

    # Purge without confirmation: the program goes, the CA stays.
    kept = snapshot(STATE, ETC)
    purge = dpkg("--purge", "stepstone")
    assert purge.returncode == 0, purge.stderr
    assert "kept /var/lib/stepstone" in purge.stderr
    assert package_state() in ("not-installed", "unknown")
    for gone in ("/opt/stepstone", "/usr/bin/step", "/usr/bin/step-ca",
                 "/lib/systemd/system/stepstone.service", "/etc/default/stepstone"):
        assert not os.path.lexists(gone), gone
    assert snapshot(STATE, ETC) == kept
    assert pwd.getpwnam("stepstone") and grp.getgrnam("stepstone")

    # A new install finds the CA as it was, and it checks out.
    box.install(deb)
    assert snapshot(STATE, ETC) == kept
    assert box.start_checks_pass()

    # Purge confirmed by STEPSTONE_PURGE_KEYS=yes: everything goes.
    purge = dpkg("--purge", "stepstone", env={"STEPSTONE_PURGE_KEYS": "yes"})
    assert purge.returncode == 0, purge.stderr
    assert not STATE.exists() and not ETC.exists()

    # Purge confirmed through debconf (preseeded, as for an unattended purge).
    box.install(deb)
    assert box.owner_mode(STATE) == ("stepstone", "stepstone", 0o700)
    (STATE / "marker").write_text("a CA would be here\n")
    box.preseed("stepstone stepstone/purge-keys boolean true")
    purge = dpkg("--purge", "stepstone")
    assert purge.returncode == 0, purge.stderr
    assert not STATE.exists() and not ETC.exists()
