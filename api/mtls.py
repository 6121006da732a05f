"""The client certificate of the TLS connection, as gunicorn exposes it."""

from __future__ import annotations

import falcon
from cryptography import x509


def peer_certificate(req: falcon.Request) -> x509.Certificate | None:
    """The verified client certificate, or None (gunicorn puts the SSL socket in the environ).

    The handshake already checked the chain against the roots and intermediates
    (CERT_OPTIONAL); the authority still checks its own signature on it.
    """
    sock = req.env.get("gunicorn.socket")
    getpeercert = getattr(sock, "getpeercert", None)
    if getpeercert is None:
        return None
    try:
        der = getpeercert(binary_form=True)
    except (ValueError, OSError):
        return None
    if not der:
        return None
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError:
        return None
