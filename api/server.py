"""Run the appliance: gunicorn with TLS on the configured address, serving the falcon app.

`kill -HUP <master>` reloads ca.json: the master builds a new authority (keeping the old one
if the new configuration is bad), then gunicorn starts fresh workers from it and lets the old
workers finish their in-flight requests.

Around gunicorn, in the master: the Prometheus listener when ca.json asks for one
(api/metrics.py), and systemd's readiness protocol when $NOTIFY_SOCKET is set (api/notify.py):
READY=1 once a worker serves (sent by the worker, so the unit needs `NotifyAccess=all`:
gunicorn tells its master nothing when a worker is up), RELOADING=1 on SIGHUP until a worker
of the new generation serves, STOPPING=1 when the shutdown begins, and STATUS= lines.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import ssl
from pathlib import Path
from typing import Any

from gunicorn import glogging
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from api.app import create_app
from api.connection import Limits
from api.inline import InlineRoutes
from api.metrics import MetricsListener, keep_in_memory
from api.notify import Notifier
from api.tls import ServerTLS
from appliance import metrics as core_metrics
from appliance.audit import record_reload
from appliance.authority import Authority
from appliance.config import CAConfig
from appliance.config_schema import split_address
from appliance.credentials import with_kms_pin

log = logging.getLogger("stepstone.server")


class ListenError(Exception):
    """The configured address cannot be bound; the message is one line for the operator."""


def listen_error(host: str, port: int, exc: OSError, purpose: str = "") -> ListenError:
    """`cannot listen on HOST:PORT[ for PURPOSE]: reason`, the reason in the kernel's words."""
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if isinstance(exc, socket.gaierror):
        reason = (exc.strerror or "unknown host").lower()
    else:
        reason = os.strerror(exc.errno or errno.EINVAL).lower()
    return ListenError(f"cannot listen on {shown}{f' for {purpose}' if purpose else ''}: {reason}")


def check_listen(host: str, port: int) -> None:
    """Bind the address once, as gunicorn will, so a port in use is one clear line before
    gunicorn's arbiter starts (it would log a burst of retries and errors instead)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as exc:
        raise listen_error(host, port, exc) from None


class _Arbiter(Arbiter):  # type: ignore[misc]
    """gunicorn's master, telling systemd STOPPING=1 as the shutdown begins (gunicorn has no
    hook there: `on_exit` runs once the workers are gone)."""

    def stop(self, graceful: bool = True) -> None:
        self.app.notifier.stopping("stopping: finishing the requests in flight")
        super().stop(graceful)


class ApplianceServer(BaseApplication):  # type: ignore[misc]
    """gunicorn, configured in code: our asyncio front workers, our TLS context hook, no
    control socket; the metrics listener and systemd notifications in the master."""

    def __init__(
        self,
        authority: Authority,
        tls: ServerTLS,
        *,
        config_path: Path,
        password: bytes | None = None,
        pidfile: str | None = None,
    ) -> None:
        self.authority = authority
        self.tls = tls
        self.config_path = config_path
        self._password = password
        self.pidfile = pidfile
        self._loaded = False
        self.notifier = Notifier(None)  # from the environment in run(), in the master
        self.metrics: MetricsListener | None = None
        self.status = ""
        """The STATUS= a worker sends with READY=1 (the master's, inherited at fork)."""
        self.limits = Limits.from_config(authority.config.server_limits)
        super().__init__()

    def _reload_authority(self) -> None:
        """SIGHUP: a new authority from ca.json; on any error keep serving the old one."""
        old = self.authority
        self.notifier.reloading(f"reloading {self.config_path}")
        try:
            config = with_kms_pin(CAConfig.load(self.config_path))
            # Never migrates: a schema not at head is refused ('step-ca db upgrade').
            new = Authority.open(config, password=self._password, migrate_schema=False)
        except Exception as exc:  # a bad edit must not take the CA down
            log.error(
                "reloading %s failed, keeping the running configuration: %s", self.config_path, exc
            )
            self.status = f"{self._serving()}; the last reload failed: {exc}"
            return
        new.start_time = old.start_time  # tokens made before the reload stay valid
        try:  # config.reload and each provisioner change, in the new database's audit log
            record_reload(new.repository.engine, old.config, new.config)
        except Exception as exc:  # the reload still happens: the file is already changed
            log.error("recording the reload in the audit log failed: %s", exc)
        self.authority = new
        self.limits = Limits.from_config(new.config.server_limits)
        self.tls.authority = new
        old.repository.engine.dispose()
        log.info("configuration reloaded from %s", self.config_path)
        self.status = self._serving()
        if new.config.metrics_address != old.config.metrics_address:
            log.warning("the metrics address changes at the next start, not on a reload")
        if new.intermediates != old.intermediates:  # a rotated intermediate: new TLS chain
            try:
                new.issuer_signer.run_safely(self.tls.issue)
            except Exception as exc:  # keep the old TLS certificate; it is still valid
                log.error("re-issuing the TLS certificate after the reload failed: %s", exc)

    def load_config(self) -> None:
        if self._loaded:
            self._reload_authority()
            try:
                self.tls.prepare_session()  # the new workers' shared TLS session keys
            except (ssl.SSLError, OSError, ValueError) as exc:
                log.error("reloading the TLS certificate failed, keeping the old one: %s", exc)
        else:
            self.tls.prepare_session()  # before any worker forks: they share ticket keys
        self._loaded = True
        cfg = self.authority.config
        host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
        settings: dict[str, Any] = {
            "bind": [f"{host}:{cfg.port}"],
            "workers": cfg.workers,
            # Our asyncio front (api/worker.py): handshakes and request reading never hold
            # the threads that sign, so slow or stalled clients cannot starve issuance.
            "worker_class": "api.worker.FrontWorker",
            # App threads per worker, for the routes that do not sign and for signing
            # requests that would block the loop (api/inline.py): 4 keep a worker's
            # requests in flight while one waits on a commit, an HSM or PostgreSQL.
            "threads": 4,
            "certfile": str(self.tls.path),
            "keyfile": str(self.tls.path),
            "ssl_context": self.tls.gunicorn_hook,
            "pre_fork": self._pre_fork,
            "post_fork": self._post_fork,
            "post_worker_init": self._post_worker_init,
            "child_exit": self._child_exit,
            "control_socket_disable": True,
            "keepalive": 5,
            "timeout": 60,
            "graceful_timeout": 10,
            "proc_name": "step-ca",
            # gunicorn's own lines in our format and level; requests are logged by the app
            "logger_class": GunicornLogger,
        }
        if self.pidfile:
            settings["pidfile"] = self.pidfile
        for key, value in settings.items():
            if key in self.cfg.settings:
                self.cfg.set(key, value)

    def tls_session_context(self) -> ssl.SSLContext:
        """For the worker (api/worker.py): the context its TLS handshakes start on."""
        return self.tls.session_context()

    def inline_routes(self) -> InlineRoutes:
        """For the worker: the requests its event loop may run itself (api/inline.py)."""
        return InlineRoutes(self.authority)

    def _serving(self) -> str:
        metrics = f", metrics on http://{self.metrics.address}/metrics" if self.metrics else ""
        return f"serving on https://{self.authority.config.address}{metrics}"

    def _pre_fork(self, _server: Any, _worker: Any) -> None:
        """Close the master's own database connections before each fork. A child must not
        inherit an open SQLite handle: when it is finalised there, closing its file drops the
        POSIX locks of that child's own connections (SQLite's rule: never carry a connection
        across fork), which showed up as 'disk I/O error' just after a reload."""
        self.authority.repository.engine.dispose()

    def _post_fork(self, _server: Any, _worker: Any) -> None:
        self.authority.after_fork()
        if self.metrics is not None:
            self.metrics.after_fork()
            core_metrics.start_at_zero(p.name for p in self.authority.registry)

    def _post_worker_init(self, _worker: Any) -> None:
        """The worker has loaded the app and its listening socket is open: connections from
        now on are served, so systemd may start what depends on the CA."""
        self.notifier.ready(self.status)

    def _child_exit(self, _server: Any, worker: Any) -> None:
        if self.metrics is not None:
            self.metrics.worker_exited(worker.pid)

    def load(self) -> Any:
        return create_app(self.authority, metrics=self.metrics is not None)

    def run(self) -> None:
        """gunicorn's master, with the metrics listener (bound before anything forks: a bad
        address is a ListenError) and the systemd notifier around it."""
        self.notifier = Notifier.from_environment()
        address = self.authority.config.metrics_address
        if address:
            host, port = split_address(address) or ("", 0)  # the schema checked it
            try:
                self.metrics = MetricsListener(host, port, lambda: self.authority)
            except OSError as exc:
                raise listen_error(host, port, exc, "metrics") from None
        else:
            keep_in_memory()
        self.status = self._serving()
        self.notifier.status(f"starting {self.cfg.workers} workers")
        try:
            if self.metrics is not None:
                self.metrics.start()
            _Arbiter(self).run()
        except RuntimeError as exc:  # as gunicorn's own run(): its start-up errors
            raise SystemExit(f"Error: {exc}") from None
        finally:
            if self.metrics is not None:
                self.metrics.close()  # in the master only (workers unwind through here too)


class GunicornLogger(glogging.Logger):  # type: ignore[misc]
    """gunicorn's logger, minus its own handlers and format: its error log goes to the root
    logger (our handler, our level, so `--quiet` silences its INFO lines too) and its access
    log is off (the API's middleware logs each request once, with more fields)."""

    def setup(self, cfg: Any) -> None:
        self.cfg = cfg
        self._access_log_enabled = False
        for log in (self.error_log, self.access_log):
            for handler in list(log.handlers):
                log.removeHandler(handler)
        self.error_log.setLevel(logging.NOTSET)  # the root's level: configure() decides
        self.error_log.propagate = True
        self.access_log.propagate = False
        self.access_log.disabled = True

    @property
    def access_log_enabled(self) -> bool:
        return False

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        """Requests are logged by the falcon middleware, not here."""
