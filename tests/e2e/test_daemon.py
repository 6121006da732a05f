"""The renewal daemon on the real server: schedule, outage and retry, SIGHUP, --exec, SIGTERM;
and crash safety: killing renew/rekey at any moment leaves a matching pair on disk."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from cli.ca.certfiles import load_pair
from tests.e2e.harness import CA, STEP, CAFactory, clean_env, load_chain, run_step


def _serial(path: Path) -> int:
    return load_chain(path.read_bytes())[0].serial_number


def _wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def _bootstrap(ca: CA, tmp: Path) -> Path:
    steppath = tmp / "client"
    run_step(["ca", "bootstrap", "--ca-url", ca.url, "--fingerprint", ca.fingerprint], steppath)
    return steppath


def _daemon(steppath: Path, tmp: Path, *args: str) -> subprocess.Popen[bytes]:
    log = open(tmp / "daemon.log", "ab")  # noqa: SIM115 - the child owns it
    return subprocess.Popen(
        [str(STEP), "ca", "renew", "c.crt", "c.key", "--daemon", *args],
        cwd=tmp,
        env=clean_env(steppath),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
    )


@pytest.fixture(scope="module")
def short_ca(ca_factory: CAFactory) -> CA:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["authority"]["claims"] = {"minTLSCertDuration": "1m"}

    return ca_factory("daemon", edit)


def test_daemon_schedule_outage_sighup_exec(short_ca: CA, tmp_path: Path) -> None:
    steppath = _bootstrap(short_ca, tmp_path)
    run_step(
        [
            "ca",
            "certificate",
            "d.test",
            "c.crt",
            "c.key",
            "--not-before",
            "0s",
            "--not-after",
            "2m",
            "--password-file",
            short_ca.provisioner_password_file,
        ],
        steppath,
        cwd=tmp_path,
    )
    crt = tmp_path / "c.crt"
    first = load_chain(crt.read_bytes())[0]
    exec_log = tmp_path / "exec.log"
    proc = _daemon(
        steppath,
        tmp_path,
        "--retry-interval",
        "2s",
        "--exec",
        f"sh -c 'echo renewed >> {exec_log}'",
    )
    try:
        # On schedule: at about 2/3 of the 2-minute life, minus at most 5% jitter.
        _wait_for(lambda: _serial(crt) != first.serial_number, 110, "the scheduled renewal")
        renewed_at = time.time()
        earliest = first.not_valid_before_utc.timestamp() + 120 * (2 / 3 - 1 / 20) - 2
        assert renewed_at >= earliest, "renewed before 2/3 of the lifetime"
        _wait_for(
            lambda: exec_log.exists() and exec_log.read_text().count("renewed") == 1,
            10,
            "--exec after the renewal",
        )
        second = _serial(crt)

        # The CA goes away; SIGHUP asks for a renewal now: it fails and is retried.
        short_ca.stop()
        os.kill(proc.pid, signal.SIGHUP)
        _wait_for(
            lambda: (tmp_path / "daemon.log").read_text().count("error renewing certificate") >= 2,
            20,
            "failed renewals being retried",
        )
        assert _serial(crt) == second
        short_ca.start()
        _wait_for(lambda: _serial(crt) != second, 20, "the renewal once the CA is back")
        _wait_for(lambda: exec_log.read_text().count("renewed") == 2, 10, "--exec again")
        assert proc.poll() is None
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=20) == 0  # SIGTERM is a clean exit
    assert "renewal daemon stopped" in (tmp_path / "daemon.log").read_text()


def _matching_pair(tmp: Path) -> None:
    pair = load_pair(tmp / "c.crt", tmp / "c.key")  # finishes an interrupted replacement
    assert isinstance(pair.leaf, x509.Certificate)
    assert not list(tmp.glob("*.next"))


def test_killing_renewals_never_leaves_a_mismatched_pair(main_ca: CA, tmp_path: Path) -> None:
    steppath = _bootstrap(main_ca, tmp_path)
    run_step(
        [
            "ca",
            "certificate",
            "k.test",
            "c.crt",
            "c.key",
            "--password-file",
            main_ca.provisioner_password_file,
        ],
        steppath,
        cwd=tmp_path,
    )
    rng = random.Random(1234)
    serials = {_serial(tmp_path / "c.crt")}
    for _ in range(12):  # the daemon renewing every second, SIGKILLed at random moments
        before = _serial(tmp_path / "c.crt")
        proc = _daemon(steppath, tmp_path, "--renew-period", "1s")
        # Let it renew at least once (however slow the machine), then kill it at a random
        # moment of the following renewals.
        _wait_for(lambda b=before: _serial(tmp_path / "c.crt") != b, 60, "a renewal")
        time.sleep(rng.uniform(0.0, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        _matching_pair(tmp_path)
        serials.add(_serial(tmp_path / "c.crt"))
    for _ in range(12):  # rekey replaces both files: killed at random moments
        proc = subprocess.Popen(
            [str(STEP), "ca", "rekey", "c.crt", "c.key", "--force"],
            cwd=tmp_path,
            env=clean_env(steppath),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.2, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        _matching_pair(tmp_path)
        serials.add(_serial(tmp_path / "c.crt"))
    assert len(serials) > 3, "the kills never let a renewal through: the test proves nothing"
    run_step(["ca", "renew", "c.crt", "c.key", "--force"], steppath, cwd=tmp_path)
