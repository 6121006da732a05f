"""The client certificate of the TLS connection, as the appliance's worker exposes it."""

from __future__ import annotations

import falcon
from cryptography import x509

PEER_CERTIFICATE = "stepstone.peer_certificate"
"""WSGI environ key: the DER of the client certificate the TLS handshake verified, or None."""


def peer_certificate(req: falcon.Request) -> x509.Certificate | None:
    """The verified client certificate, or None.

    The handshake already checked the chain against the roots and intermediates
    (CERT_OPTIONAL); the authority still checks its own signature on it.
    """
    der = req.env.get(PEER_CERTIFICATE)
    if not isinstance(der, bytes) or not der:
        return None
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError:
        return None
