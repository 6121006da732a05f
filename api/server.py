"""Run the appliance: gunicorn with TLS on the configured address, serving the falcon app.

`kill -HUP <master>` reloads ca.json: the master builds a new authority (keeping the old one
if the new configuration is bad), then gunicorn starts fresh workers from it and lets the old
workers finish their in-flight requests.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from pathlib import Path
from typing import Any

from gunicorn import glogging
from gunicorn.app.base import BaseApplication

from api.app import create_app
from api.connection import Limits
from api.tls import ServerTLS
from appliance.authority import Authority
from appliance.config import CAConfig

log = logging.getLogger("stepstone.server")


class ListenError(Exception):
    """The configured address cannot be bound; the message is one line for the operator."""


def check_listen(host: str, port: int) -> None:
    """Bind the address once, as gunicorn will, so a port in use is one clear line before
    gunicorn's arbiter starts (it would log a burst of retries and errors instead)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except socket.gaierror as exc:
        reason = (exc.strerror or "unknown host").lower()
        raise ListenError(f"cannot listen on {shown}: {reason}") from None
    except OSError as exc:
        reason = os.strerror(exc.errno or errno.EINVAL).lower()
        raise ListenError(f"cannot listen on {shown}: {reason}") from None


class ApplianceServer(BaseApplication):  # type: ignore[misc]
    """gunicorn, configured in code: gthread workers, our TLS context hook, no control socket."""

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
        self.limits = Limits.from_config(authority.config.raw.get("serverLimits"))
        super().__init__()

    def _reload_authority(self) -> None:
        """SIGHUP: a new authority from ca.json; on any error keep serving the old one."""
        old = self.authority
        try:
            config = CAConfig.load(self.config_path)
            # The schema was brought up to date at start-up; only a new database needs it.
            new = Authority.open(
                config, password=self._password, migrate_schema=config.db != old.config.db
            )
        except Exception as exc:  # a bad edit must not take the CA down
            log.error(
                "reloading %s failed, keeping the running configuration: %s", self.config_path, exc
            )
            return
        new.start_time = old.start_time  # tokens made before the reload stay valid
        self.authority = new
        self.limits = Limits.from_config(new.config.raw.get("serverLimits"))
        self.tls.authority = new
        old.repository.engine.dispose()
        log.info("configuration reloaded from %s", self.config_path)
        if new.intermediates != old.intermediates:  # a rotated intermediate: new TLS chain
            try:
                new.issuer_signer.run_safely(self.tls.issue)
            except Exception as exc:  # keep the old TLS certificate; it is still valid
                log.error("re-issuing the TLS certificate after the reload failed: %s", exc)

    def load_config(self) -> None:
        if self._loaded:
            self._reload_authority()
        self._loaded = True
        cfg = self.authority.config
        host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
        settings: dict[str, Any] = {
            "bind": [f"{host}:{cfg.port}"],
            "workers": cfg.workers,
            # Our asyncio front (api/worker.py): handshakes and request reading never hold
            # the threads that sign, so slow or stalled clients cannot starve issuance.
            "worker_class": "api.worker.FrontWorker",
            "threads": 4,
            "certfile": str(self.tls.path),
            "keyfile": str(self.tls.path),
            "ssl_context": self.tls.gunicorn_hook,
            "post_fork": self._post_fork,
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

    def _post_fork(self, _server: Any, _worker: Any) -> None:
        self.authority.after_fork()

    def load(self) -> Any:
        return create_app(self.authority)


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
