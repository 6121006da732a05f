"""`make bench`: the appliance under a signing load, every figure from one run on this machine.

Each scenario is a real `step-ca` (gunicorn, TLS, keep-alive) on loopback: the intermediate in
an encrypted file or in SoftHSM2, the record in SQLite or PostgreSQL. N (CSR, one-time token)
pairs are prepared before the clock starts and POSTed to `/1.0/sign` by C client processes,
each over one keep-alive HTTPS connection. Measured per scenario:

- requests/s and client-side latency percentiles (p50, p90, p99);
- the server's CPU per certificate, user and system, summed over the gunicorn master and its
  workers (read from /proc before and after the load), and the part of it spent in the
  workers' event-loop threads (TLS, HTTP framing, handing requests to the app threads; all
  of it where the loop signs itself, with a file or PKCS#11 key and SQLite: api/inline.py);
- the peak RSS of each worker (VmHWM);
- the clients' own CPU per request, and how busy the machine was (server + clients, as a
  share of all its cores over the run).

Figures are printed as a table, with ratios against the first scenario (file + SQLite) of the
same run, and as one JSON line for programs (with the machine and the date). The clients share
the machine with the server (Python clients spend about as much CPU per request as the server
does): on 2 cores the server gets about half of the box, so requests/s and latencies are lower
than a remote load would see. The CPU per certificate is the server's own and travels better.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import platform
import resource
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from appliance.config import CAConfig
from appliance.db.schema import upgrade
from appliance.pki import InitRequest, init_pki
from appliance.profiles import build_intermediate
from keystores import KeySpec, open_keystore
from pki.jose import key_from_jwk
from pki.jwe import decrypt_jwk
from tests.postgres import free_port, postgres_server

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PASSWORD = b"bench-password"
TICKS = os.sysconf("SC_CLK_TCK")
PIN = "1234"
MODULE = "/usr/lib/softhsm/libsofthsm2.so"


@dataclass(frozen=True)
class Scenario:
    """Where the intermediate key lives and where certificates are recorded."""

    store: str  # "file" or "pkcs11"
    database: str  # "sqlite" or "postgresql"

    @property
    def label(self) -> str:
        return f"{self.store}+{self.database}"


@dataclass
class Result:
    """One scenario's figures."""

    scenario: str
    requests: int
    clients: int
    requests_per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    cpu_ms_per_cert: float
    user_ms_per_cert: float
    system_ms_per_cert: float
    front_ms_per_cert: float
    """Of the CPU, the workers' event-loop threads: TLS, HTTP, handing requests to the app;
    all of a certificate's work where the loop signs itself (a file or PKCS#11 key, SQLite)."""
    worker_peak_rss_mb: float
    client_cpu_ms_per_cert: float
    machine_busy: float
    """(server + client CPU) / (cores x elapsed): near 1.0, the box itself was the limit."""


# --- the server and its processes ------------------------------------------------------------


def process_tree(root: int) -> list[int]:
    """`root` and every descendant, from /proc (gunicorn's workers are the master's children)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # ended while we looked
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(parents.get(pid, []))
    return tree


def cpu_seconds(pids: list[int], main_thread_only: bool = False) -> tuple[float, float]:
    """User and system CPU seconds used so far by the threads of `pids` (fields 14 and 15 of
    /proc/PID/task/TID/stat), or by their main threads only (a worker's main thread runs its
    event loop). Thread by thread for both, so the main threads' share can never come out
    larger than the whole: a process's own figures are rounded to ticks separately."""
    user = system = 0
    for pid in pids:
        try:
            tids = [pid] if main_thread_only else [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue
        for tid in tids:
            try:
                fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            user += int(fields[11])
            system += int(fields[12])
    return user / TICKS, system / TICKS


def peak_rss_mb(pid: int) -> float:
    """A process's peak resident set (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Server:
    """A `step-ca` started from a ca.json, stopped by its PID."""

    def __init__(self, cfg: Path, port: int, env: dict[str, str], log: Path) -> None:
        password_file = cfg.parent.parent / "password.txt"
        password_file.write_bytes(PASSWORD)
        self.port = port
        self.root = cfg.parent.parent / "certs" / "root_ca.crt"
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [str(BIN / "step-ca"), str(cfg), "--password-file", str(password_file), "--quiet"],
            stdout=self._log,
            stderr=self._log,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while not self._healthy():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"step-ca did not start; see {log}")
            time.sleep(0.1)

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.root))

    def _healthy(self) -> bool:
        try:
            status, _ = request(self.port, self.context(), "GET", "/health")
        except OSError:
            return False
        return status == 200

    def workers(self) -> list[int]:
        return [pid for pid in process_tree(self.proc.pid) if pid != self.proc.pid]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        self._log.close()


def request(
    port: int, context: ssl.SSLContext, method: str, path: str, body: bytes | None = None
) -> tuple[int, bytes]:
    """One request on a new connection (set-up calls, not the measured load)."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# --- the load --------------------------------------------------------------------------------


def prepare(server: Server, count: int) -> list[bytes]:
    """`count` sign request bodies, each a fresh CSR and one-time token, made before timing."""
    ctx = server.context()
    url = f"https://127.0.0.1:{server.port}"
    _, listing = request(server.port, ctx, "GET", "/provisioners")
    prov = json.loads(listing)["provisioners"][0]
    kid = prov["key"]["kid"]
    _, encrypted = request(server.port, ctx, "GET", f"/provisioners/{kid}/encrypted-key")
    key = key_from_jwk(decrypt_jwk(json.loads(encrypted)["key"], PASSWORD))
    csr_key = ec.generate_private_key(ec.SECP256R1())  # one key: CSR parsing cost is the same
    bodies = []
    for _ in range(count):
        name = f"bench-{secrets.token_hex(6)}.internal"
        now = int(time.time())
        claims = {
            "iss": prov["name"],
            "aud": f"{url}/1.0/sign",
            "sub": name,
            "sans": [name],
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "jti": secrets.token_hex(32),
        }
        ott = jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid})  # type: ignore[arg-type]
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(csr_key, hashes.SHA256())
        )
        body = {"csr": csr.public_bytes(Encoding.PEM).decode(), "ott": ott}
        bodies.append(json.dumps(body).encode())
    return bodies


def _client(port: int, cafile: str, bodies: list[bytes], out: Any) -> None:
    """One client process: its share of the bodies over one keep-alive connection."""
    context = ssl.create_default_context(cafile=cafile)
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=60)
    latencies, failures = [], []
    headers = {"Content-Type": "application/json"}
    for body in bodies:
        start = time.perf_counter()
        conn.request("POST", "/1.0/sign", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        latencies.append(time.perf_counter() - start)
        if response.status != 201:
            failures.append(response.status)
    conn.close()
    out.send((latencies, failures))
    out.close()


def run_load(
    server: Server, bodies: list[bytes], clients: int
) -> tuple[float, list[float], float]:
    """POST every body from `clients` processes; the elapsed seconds, every latency, and the
    CPU seconds (user + system) the client processes used."""
    context = multiprocessing.get_context("fork")
    pipes, procs = [], []
    for share in (bodies[i::clients] for i in range(clients)):
        receive, send = context.Pipe(duplex=False)
        proc = context.Process(target=_client, args=(server.port, str(server.root), share, send))
        pipes.append(receive)
        procs.append(proc)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    for proc in procs:
        proc.start()
    latencies: list[float] = []
    failures: list[int] = []
    for pipe in pipes:
        mine, failed = pipe.recv()
        latencies += mine
        failures += failed
    elapsed = time.perf_counter() - start
    for proc in procs:
        proc.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the clients, now waited for
    if failures:
        raise SystemExit(f"{len(failures)} sign requests failed: statuses {sorted(set(failures))}")
    client_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, latencies, client_cpu


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(server: Server, label: str, count: int, clients: int, warmup: int) -> Result:
    """Warm the workers up, then run the measured load with the server's CPU read around it."""
    if warmup:
        run_load(server, prepare(server, warmup), clients)
    bodies = prepare(server, count)
    pids = process_tree(server.proc.pid)
    workers = server.workers()
    user0, system0 = cpu_seconds(pids)
    front0 = sum(cpu_seconds(workers, main_thread_only=True))
    elapsed, latencies, client_cpu = run_load(server, bodies, clients)
    # The loops' window inside the processes' (read after them at the start, before them at
    # the end): where the loop does all of the work, `front` must not come out larger.
    front1 = sum(cpu_seconds(workers, main_thread_only=True))
    user1, system1 = cpu_seconds(pids)
    server_cpu = (user1 - user0) + (system1 - system0)
    user, system = (user1 - user0) * 1000 / count, (system1 - system0) * 1000 / count
    return Result(
        scenario=label,
        requests=count,
        clients=clients,
        requests_per_second=count / elapsed,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p90_ms=percentile(latencies, 0.90) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        cpu_ms_per_cert=user + system,
        user_ms_per_cert=user,
        system_ms_per_cert=system,
        front_ms_per_cert=(front1 - front0) * 1000 / count,
        worker_peak_rss_mb=max((peak_rss_mb(pid) for pid in server.workers()), default=0.0),
        client_cpu_ms_per_cert=client_cpu * 1000 / count,
        machine_busy=(server_cpu + client_cpu) / ((os.cpu_count() or 1) * elapsed),
    )


# --- the scenarios ---------------------------------------------------------------------------


@contextmanager
def scenario_server(
    work: Path, scenario: Scenario, postgres_url: str | None, workers: int | None = None
) -> Iterator[Server]:
    """A CA for `scenario` in `work`, served until the block ends (with `workers` gunicorn
    workers when given, else the appliance's default)."""
    base = work / scenario.label
    port = free_port()
    init_pki(
        InitRequest(base, "Bench", ["127.0.0.1"], f"127.0.0.1:{port}", "bench", PASSWORD, PASSWORD)
    )
    cfg_path = base / "config" / "ca.json"
    if scenario.store == "pkcs11":
        in_child(lambda: move_intermediate_to_hsm(base, "bench"))
    if scenario.database == "postgresql":
        assert postgres_url is not None
        cfg = json.loads(cfg_path.read_text())
        database = f"bench_{secrets.token_hex(4)}"
        subprocess.run(
            [*_psql(postgres_url), "-c", f"CREATE DATABASE {database}"],
            check=True,
            capture_output=True,
        )
        source = postgres_url.rsplit("/", 1)[0] + "/" + database
        cfg["db"] = {"type": "postgresql", "dataSource": source}
        cfg_path.write_text(json.dumps(cfg, indent="\t"))
    if workers is not None:
        cfg = json.loads(cfg_path.read_text())
        cfg.setdefault("stepstone", {})["workers"] = workers
        cfg_path.write_text(json.dumps(cfg, indent="\t"))
    upgrade(CAConfig.load(cfg_path))  # as `step-ca db upgrade`: the server never migrates
    server = Server(cfg_path, port, dict(os.environ), work / f"{scenario.label}.log")
    try:
        yield server
    finally:
        server.stop()


def move_intermediate_to_hsm(base: Path, token: str) -> None:
    """A new intermediate key in the SoftHSM2 token, certified by the root; ca.json points at it."""
    store_uri = f"pkcs11:module-path={MODULE};token={token}?pin-value={PIN}"
    key_uri = "pkcs11:id=7331;object=intermediate-key"
    hsm = open_keystore(store_uri)
    public = hsm.create_key(key_uri, KeySpec(), overwrite=True)
    root_key = open_keystore("file:", password=PASSWORD).signer(
        str(base / "secrets" / "root_ca_key")
    )
    root = x509.load_pem_x509_certificate((base / "certs" / "root_ca.crt").read_bytes())
    inter = build_intermediate("Bench HSM", public, root, root_key, datetime.now(UTC))
    (base / "certs" / "intermediate_ca.crt").write_bytes(inter.public_bytes(Encoding.PEM))
    cfg_path = base / "config" / "ca.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["key"] = key_uri
    cfg["kms"] = {"type": "pkcs11", "uri": store_uri}
    cfg_path.write_text(json.dumps(cfg, indent="\t"))
    hsm.close()


def in_child(work: Callable[[], None]) -> None:
    """Run `work` in a forked child: PKCS#11 state must never cross into the server's parent."""
    pid = os.fork()
    if pid == 0:
        try:
            work()
        except BaseException:
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("creating the SoftHSM2 intermediate failed")


def _psql(url: str) -> list[str]:
    from tests.postgres import _bin

    return [_bin("psql"), url, "-v", "ON_ERROR_STOP=1", "-q"]


def run(
    scenarios: list[Scenario], count: int, clients: int, warmup: int, workers: int | None = None
) -> list[Result]:
    """Every scenario, one after the other, in one temporary folder."""
    work = Path(tempfile.mkdtemp(prefix="stepstone-bench-"))
    results = []
    try:
        with ExitStack() as stack:
            if any(s.store == "pkcs11" for s in scenarios):
                subprocess.run(
                    [str(ROOT / "softhsm" / "setup-tokens.sh"), str(work / "hsm"), "bench"],
                    check=True,
                    capture_output=True,
                )
                os.environ["SOFTHSM2_CONF"] = str(work / "hsm" / "softhsm2.conf")
            url = None
            if any(s.database == "postgresql" for s in scenarios):
                url = stack.enter_context(postgres_server(durable=True))
            for scenario in scenarios:
                progress(f"{scenario.label}: starting the CA")
                with scenario_server(work, scenario, url, workers) as server:
                    progress(f"{scenario.label}: {count} signs from {clients} clients")
                    results.append(measure(server, scenario.label, count, clients, warmup))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


def progress(line: str) -> None:
    print(f"... {line}", file=sys.stderr, flush=True)


def table(results: list[Result]) -> str:
    """The figures for people, with each scenario's rate as a ratio of the first one's."""
    base = results[0].requests_per_second
    head = f"{'scenario':<20}{'req/s':>8}{'ratio':>7}{'p50':>7}{'p90':>7}{'p99':>7}"
    head += f"{'CPU ms':>8}{'user':>7}{'sys':>7}{'front':>7}{'RSS MB':>8}{'client':>8}{'busy':>6}"
    rows = [head]
    for r in results:
        rows.append(
            f"{r.scenario:<20}{r.requests_per_second:>8.0f}{r.requests_per_second / base:>7.2f}"
            f"{r.p50_ms:>7.1f}{r.p90_ms:>7.1f}{r.p99_ms:>7.1f}{r.cpu_ms_per_cert:>8.2f}"
            f"{r.user_ms_per_cert:>7.2f}{r.system_ms_per_cert:>7.2f}{r.front_ms_per_cert:>7.2f}"
            f"{r.worker_peak_rss_mb:>8.0f}"
            f"{r.client_cpu_ms_per_cert:>8.2f}{r.machine_busy:>6.2f}"
        )
    rows.append(
        f"({results[0].requests} signs per scenario, {results[0].clients} client processes, "
        "latencies in ms, CPU per certificate over master + workers, ratio = req/s / first row,\n"
        " front = the part of it in the workers' event loops (TLS, HTTP; all of it where the loop"
        " signs), client = the clients' "
        "CPU ms per request on the same cores, busy = share of the machine's cores in use)"
    )
    return "\n".join(rows)


def machine() -> dict[str, Any]:
    """What the figures were measured on: they depend on it."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def parse_scenarios(text: str) -> list[Scenario]:
    scenarios = []
    for item in text.split(","):
        store, _, database = item.strip().partition("+")
        if store not in ("file", "pkcs11") or database not in ("sqlite", "postgresql"):
            raise argparse.ArgumentTypeError(
                f"{item!r}: a scenario is STORE+DATABASE, STORE file|pkcs11, "
                "DATABASE sqlite|postgresql"
            )
        scenarios.append(Scenario(store, database))
    return scenarios


def main(argv: list[str] | None = None, emit: Callable[[str], None] = print) -> list[Result]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=1500, help="measured signs per scenario")
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured signs first")
    parser.add_argument(
        "--scenarios",
        type=parse_scenarios,
        default=parse_scenarios("file+sqlite,pkcs11+sqlite,file+postgresql"),
        help="comma-separated STORE+DATABASE (default: file+sqlite,pkcs11+sqlite,file+postgresql)",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="gunicorn workers (default: the appliance's)"
    )
    args = parser.parse_args(argv)
    where = machine()  # the load average before our own load
    results = run(args.scenarios, args.requests, args.clients, args.warmup, args.workers)
    emit(table(results))
    when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    line = {"bench": "sign", "date": when, "machine": where}
    emit(json.dumps({**line, "results": [asdict(r) for r in results]}))
    return results


if __name__ == "__main__":
    main()
