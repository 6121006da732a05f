"""`make bench`: signing throughput with the intermediate in SoftHSM2 vs in an encrypted file.

Both CAs are made and measured in the same run, on the same machine, so the figures are
reported as ratios (HSM / file) as well as absolute numbers:

1. the issuing key alone: P-256 signatures per second, in this process;
2. the whole appliance: `POST /1.0/sign` requests per second against a real `step-ca`
   (gunicorn, TLS, keep-alive, 2 workers) with concurrent clients on loopback.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from appliance.pki import InitRequest, init_pki
from appliance.profiles import build_intermediate
from keystores import KeySpec, SigningKey, open_keystore
from pki.jose import key_from_jwk
from pki.jwe import decrypt_jwk

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PASSWORD = b"bench-password"
PIN = "1234"
MODULE = "/usr/lib/softhsm/libsofthsm2.so"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_ca(base: Path, name: str) -> tuple[Path, int]:
    port = free_port()
    init_pki(
        InitRequest(base, name, ["127.0.0.1"], f"127.0.0.1:{port}", "bench", PASSWORD, PASSWORD)
    )
    return base / "config" / "ca.json", port


def move_intermediate_to_hsm(base: Path, token: str) -> tuple[str, str]:
    """Generate a new intermediate key in the token, have the root sign it, point ca.json at it."""
    store_uri = f"pkcs11:module-path={MODULE};token={token}?pin-value={PIN}"
    key_uri = "pkcs11:id=7331;object=intermediate-key"
    hsm = open_keystore(store_uri)
    public = hsm.create_key(key_uri, KeySpec(), overwrite=True)
    files = open_keystore("file:", password=PASSWORD)
    root_key = files.signer(str(base / "secrets" / "root_ca_key"))
    root = x509.load_pem_x509_certificate((base / "certs" / "root_ca.crt").read_bytes())
    inter = build_intermediate("Bench HSM", public, root, root_key, datetime.now(UTC))
    (base / "certs" / "intermediate_ca.crt").write_bytes(inter.public_bytes(Encoding.PEM))
    cfg_path = base / "config" / "ca.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["key"] = key_uri
    cfg["kms"] = {"type": "pkcs11", "uri": store_uri}
    cfg_path.write_text(json.dumps(cfg, indent="\t"))
    hsm.close()
    return store_uri, key_uri


def signs_per_second(key: SigningKey, seconds: float) -> float:
    digest = b"\x01" * 32
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        key.sign(digest, ec.ECDSA(hashes.SHA256()))  # type: ignore[call-arg, arg-type]
        count += 1
    return count / (time.perf_counter() - start)


class Server:
    def __init__(self, cfg: Path, port: int, env: dict[str, str], log: Path) -> None:
        pw = cfg.parent.parent / "password.txt"
        pw.write_bytes(PASSWORD)
        self.port = port
        self.root = cfg.parent.parent / "certs" / "root_ca.crt"
        self.log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(BIN / "step-ca"), str(cfg), "--password-file", str(pw), "--quiet"],
            stdout=self.log,
            stderr=self.log,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        ctx = ssl.create_default_context(cafile=str(self.root))
        for _ in range(300):
            try:
                with httpx.Client(verify=ctx, timeout=2) as c:
                    if c.get(f"https://127.0.0.1:{port}/health").status_code == 200:
                        return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise SystemExit(f"step-ca did not start; see {log}")

    def stop(self) -> None:
        os.kill(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=30)
        self.log.close()


def requests_per_second(server: Server, count: int, clients: int) -> float:
    ctx = ssl.create_default_context(cafile=str(server.root))
    url = f"https://127.0.0.1:{server.port}"
    with httpx.Client(verify=ctx) as c:
        prov = c.get(f"{url}/provisioners").json()["provisioners"][0]
        jwe = c.get(f"{url}/provisioners/{prov['key']['kid']}/encrypted-key").json()["key"]
    key = key_from_jwk(decrypt_jwk(jwe, PASSWORD))
    bodies = []
    for i in range(count):  # tokens and CSRs made before the clock starts
        name = f"bench-{i}.internal"
        now = int(time.time())
        claims = {
            "iss": prov["name"],
            "aud": f"{url}/1.0/sign",
            "sub": name,
            "sans": [name],
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "jti": secrets.token_hex(32),
        }
        ott = jwt.encode(
            claims,
            key,
            algorithm="ES256",  # type: ignore[arg-type]
            headers={"kid": prov["key"]["kid"], "typ": "JWT"},
        )
        csr_key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .sign(csr_key, hashes.SHA256())
        )
        bodies.append({"csr": csr.public_bytes(Encoding.PEM).decode(), "ott": ott})
    failures: list[int] = []
    slices = [bodies[i::clients] for i in range(clients)]

    def worker(mine: list[dict[str, Any]]) -> None:
        with httpx.Client(verify=ctx, base_url=url, timeout=60) as c:
            for body in mine:
                status = c.post("/1.0/sign", json=body).status_code
                if status != 201:
                    failures.append(status)

    threads = [threading.Thread(target=worker, args=(s,)) for s in slices]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if failures:
        raise SystemExit(f"{len(failures)} requests failed: {sorted(set(failures))}")
    return count / elapsed


def in_child(fn: Callable[[], float]) -> float:
    """Run a measurement in a fresh process (PKCS#11 state never crosses fork)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        os.write(write, str(fn()).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        value = float(f.read() or "0")
    os.waitpid(pid, 0)
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=600, help="signing requests per CA")
    parser.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients")
    parser.add_argument("--seconds", type=float, default=2.0, help="per key micro-benchmark")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="stepstone-bench-"))
    try:
        subprocess.run(
            [str(ROOT / "softhsm" / "setup-tokens.sh"), str(work / "hsm"), "bench"],
            check=True,
            capture_output=True,
        )
        os.environ["SOFTHSM2_CONF"] = str(work / "hsm" / "softhsm2.conf")
        file_cfg, file_port = make_ca(work / "file", "Bench File")
        hsm_cfg, hsm_port = make_ca(work / "pkcs11", "Bench HSM")
        store_uri, key_uri = in_child_setup(work)

        file_key = open_keystore("file:", password=PASSWORD).signer(
            str(work / "file" / "secrets" / "intermediate_ca_key")
        )
        results: dict[str, dict[str, float]] = {"file": {}, "pkcs11": {}}
        results["file"]["signs/s"] = signs_per_second(file_key, args.seconds)
        results["pkcs11"]["signs/s"] = in_child(
            lambda: signs_per_second(open_keystore(store_uri).signer(key_uri), args.seconds)
        )
        env = dict(os.environ)
        for label, cfg, port in (("file", file_cfg, file_port), ("pkcs11", hsm_cfg, hsm_port)):
            server = Server(cfg, port, env, work / f"{label}.log")
            try:
                requests_per_second(server, min(50, args.requests), args.clients)  # warm-up
                results[label]["sign req/s"] = requests_per_second(
                    server, args.requests, args.clients
                )
            finally:
                server.stop()
        print(f"{'measure':<14}{'file':>12}{'pkcs11':>12}{'pkcs11/file':>14}")
        for measure in ("signs/s", "sign req/s"):
            f, h = results["file"][measure], results["pkcs11"][measure]
            print(f"{measure:<14}{f:>12.0f}{h:>12.0f}{h / f:>14.2f}")
        print(f"({args.requests} requests, {args.clients} clients, P-256, same run)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def in_child_setup(work: Path) -> tuple[str, str]:
    """Create the HSM intermediate from a child process, keeping this one PKCS#11-free."""
    result: dict[str, str] = {}
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        store_uri, key_uri = move_intermediate_to_hsm(work / "pkcs11", "bench")
        os.write(write, json.dumps([store_uri, key_uri]).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        result_list = json.loads(f.read())
    os.waitpid(pid, 0)
    result["store"], result["key"] = result_list
    return result["store"], result["key"]


if __name__ == "__main__":
    main()
