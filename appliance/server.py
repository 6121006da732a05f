"""Run the appliance: gunicorn with TLS on the configured address, serving the falcon app."""

from __future__ import annotations

import logging
from typing import Any

from gunicorn.app.base import BaseApplication

from api.app import create_app
from appliance.authority import Authority
from appliance.tls import ServerTLS

log = logging.getLogger(__name__)


class ApplianceServer(BaseApplication):  # type: ignore[misc]
    """gunicorn, configured in code: gthread workers, our TLS context hook, no control socket."""

    def __init__(self, authority: Authority, tls: ServerTLS, pidfile: str | None = None) -> None:
        self.authority = authority
        self.tls = tls
        self.pidfile = pidfile
        super().__init__()

    def load_config(self) -> None:
        cfg = self.authority.config
        host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
        settings: dict[str, Any] = {
            "bind": [f"{host}:{cfg.port}"],
            "workers": cfg.workers,
            "worker_class": "gthread",
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
            "errorlog": "-",
            "loglevel": "info",
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
