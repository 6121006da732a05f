"""The revocation checks of `step certificate verify`: ``--verify-crl`` and ``--verify-ocsp``.

One endpoint at a time: download and authenticate its answer (a CRL signed by and naming the
issuer; an OCSP response signed by the issuer or a responder it authorised, echoing our
nonce), then decide. :class:`EndpointError` says whether the endpoint's answer was
trustworthy (`received`, which decides) or the endpoint is to be skipped.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, SignatureAlgorithmOID

from cli.certinfo import CertParseError, go_rfc3339
from cli.tlsfetch import tls_client_context
from cli.verify_go_chain import KEY_USAGE_CRL_SIGN, go_cannot_sign, go_quote, go_time_problem
from cli.verify_inputs import NETWORK_TIMEOUT, Cert

#: Largest CRL and OCSP response read.
CRL_SIZE_LIMIT = 32 * 1024 * 1024
OCSP_SIZE_LIMIT = 1024 * 1024
#: Clock skew tolerated on OCSP thisUpdate/nextUpdate and on a CRL's thisUpdate.
CLOCK_SKEW = timedelta(minutes=5)

_OCSP_STATUS_TEXT = {
    ocsp.OCSPResponseStatus.MALFORMED_REQUEST: "malformed",
    ocsp.OCSPResponseStatus.INTERNAL_ERROR: "internal error",
    ocsp.OCSPResponseStatus.TRY_LATER: "try later",
    ocsp.OCSPResponseStatus.SIG_REQUIRED: "signature required",
    ocsp.OCSPResponseStatus.UNAUTHORIZED: "unauthorized",
}


class EndpointError(Exception):
    """One endpoint failed; `received` when its answer is trustworthy and decides."""

    def __init__(self, message: str, *, received: bool = False) -> None:
        super().__init__(message)
        self.received = received


class _TooLarge(Exception):
    pass


def http_client(roots: str | None) -> httpx.Client:
    """No proxies, no redirects, TLS verified against --roots (or the system store)."""
    return httpx.Client(
        verify=tls_client_context(roots),
        timeout=NETWORK_TIMEOUT,
        follow_redirects=False,
        trust_env=False,
    )


def _read_limited(response: httpx.Response, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _scheme_problem(url: str) -> str | None:
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        return None
    return f"unsupported protocol scheme {go_quote(scheme)}"


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "i/o timeout"
    return str(exc) or type(exc).__name__


def _public_key_verifies(
    key: object,
    signature: bytes,
    data: bytes,
    hash_algorithm: hashes.HashAlgorithm | None,
    algorithm_oid: x509.ObjectIdentifier,
) -> bool:
    try:
        if isinstance(key, rsa.RSAPublicKey) and hash_algorithm is not None:
            pad: padding.AsymmetricPadding = padding.PKCS1v15()
            if algorithm_oid == SignatureAlgorithmOID.RSASSA_PSS:
                pad = padding.PSS(padding.MGF1(hash_algorithm), padding.PSS.AUTO)
            key.verify(signature, data, pad, hash_algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and hash_algorithm is not None:
            key.verify(signature, data, ec.ECDSA(hash_algorithm))
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


# CRL -----------------------------------------------------------------------------------------


def _load_crl(body: bytes) -> x509.CertificateRevocationList:
    try:
        return x509.load_der_x509_crl(body)
    except ValueError as exc:
        if b"-----BEGIN X509 CRL-----" in body:
            try:
                return x509.load_pem_x509_crl(body)
            except ValueError:
                pass
        raise EndpointError(f"error parsing crl: {exc}") from None


def _crl_signature_problem(crl: x509.CertificateRevocationList, issuer: Cert) -> str | None:
    """RevocationList.CheckSignatureFrom, plus the CRL must name the issuer."""
    problem = go_cannot_sign(issuer.info, KEY_USAGE_CRL_SIGN)
    if problem:
        return problem
    if crl.issuer != issuer.x509.subject:
        return "the CRL issuer is not the certificate's issuer"
    key = issuer.x509.public_key()
    if not isinstance(
        key,
        rsa.RSAPublicKey
        | ec.EllipticCurvePublicKey
        | ed25519.Ed25519PublicKey
        | ed448.Ed448PublicKey,
    ):
        return "x509: cannot verify signature: algorithm unimplemented"
    try:
        valid = crl.is_signature_valid(key)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        valid = False
    if valid:
        return None
    if isinstance(key, rsa.RSAPublicKey):
        return "crypto/rsa: verification error"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "x509: ECDSA verification failure"
    return "x509: Ed25519 verification failure"


def check_crl(endpoint: str, leaf: Cert, issuer: Cert, client: httpx.Client, now: datetime) -> None:
    """Raise EndpointError unless the CRL at `endpoint` shows `leaf` as not revoked."""
    problem = _scheme_problem(endpoint)
    if problem:
        raise EndpointError(f"error downloading crl: Get {go_quote(endpoint)}: {problem}")
    try:
        with client.stream("GET", endpoint) as response:
            if not 200 <= response.status_code < 300:
                raise EndpointError(f"error downloading crl: status code {response.status_code}")
            body = _read_limited(response, CRL_SIZE_LIMIT)
    except _TooLarge:
        raise EndpointError("error downloading crl: the CRL is too large") from None
    except httpx.HTTPError as exc:
        raise EndpointError(
            f"error downloading crl: Get {go_quote(endpoint)}: {_describe(exc)}"
        ) from None
    crl = _load_crl(body)
    problem = _crl_signature_problem(crl, issuer)
    if problem:
        raise EndpointError(f"error validating the CRL against the CA issuer: {problem}")
    if crl.get_revoked_certificate_by_serial_number(leaf.info.serial) is not None:
        raise EndpointError(f"certificate marked as revoked in CRL {endpoint}", received=True)
    if crl.last_update_utc > now + CLOCK_SKEW:
        raise EndpointError(
            f"error validating the CRL: CRL {endpoint} is not valid before "
            f"{go_rfc3339(crl.last_update_utc)}"
        )
    next_update = crl.next_update_utc
    if next_update is not None and next_update < now:
        raise EndpointError(
            f"error validating the CRL: CRL {endpoint} expired at {go_rfc3339(next_update)}"
        )


# OCSP ----------------------------------------------------------------------------------------


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    context = hashes.Hash(algorithm)
    context.update(data)
    return context.finalize()


def _key_hash(cert: Cert) -> bytes:
    """SHA-1 of the subjectPublicKey bits (OCSP ResponderID byKey)."""
    return hashlib.sha1(cert.info.public_key.key_bytes, usedforsecurity=False).digest()


class _BadResponse(Exception):
    pass


def _is_responder(cert: Cert, response: ocsp.OCSPResponse) -> bool:
    if response.responder_key_hash is not None:
        return response.responder_key_hash == _key_hash(cert)
    return response.responder_name == cert.x509.subject


def _ocsp_signer(response: ocsp.OCSPResponse, issuer: Cert, now: datetime) -> Cert:
    """The issuer itself, or a delegated responder certificate the issuer authorised."""
    if _is_responder(issuer, response):
        return issuer
    for der in (c.public_bytes(serialization.Encoding.DER) for c in response.certificates):
        try:
            candidate = Cert.from_der(der)
        except CertParseError:
            continue
        if not _is_responder(candidate, response):
            continue
        if candidate.info.issuer_raw != issuer.info.subject_raw or not _public_key_verifies(
            issuer.x509.public_key(),
            candidate.x509.signature,
            candidate.x509.tbs_certificate_bytes,
            candidate.x509.signature_hash_algorithm,
            candidate.x509.signature_algorithm_oid,
        ):
            raise _BadResponse("the responder certificate is not signed by the issuing CA")
        if ExtendedKeyUsageOID.OCSP_SIGNING.dotted_string not in candidate.info.ext_key_usage:
            raise _BadResponse("the responder certificate is not authorized to sign OCSP responses")
        if go_time_problem(candidate, now):
            raise _BadResponse("the responder certificate has expired or is not yet valid")
        return candidate
    raise _BadResponse("the response is not signed by the issuing CA or a responder it authorized")


def _ocsp_answer(
    response: ocsp.OCSPResponse, leaf: Cert, issuer: Cert, nonce: bytes, now: datetime
) -> ocsp.OCSPSingleResponse:
    """The single response for `leaf`, once the response is known to be trustworthy."""
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        status = _OCSP_STATUS_TEXT.get(response.response_status, "unknown response status")
        raise _BadResponse(f"ocsp: error from server: {status}")
    signer = _ocsp_signer(response, issuer, now)
    if not _public_key_verifies(
        signer.x509.public_key(),
        response.signature,
        response.tbs_response_bytes,
        response.signature_hash_algorithm,
        response.signature_algorithm_oid,
    ):
        raise _BadResponse("bad OCSP signature")
    try:
        echoed: bytes | None = response.extensions.get_extension_for_class(
            x509.OCSPNonce
        ).value.nonce
    except x509.ExtensionNotFound:
        echoed = None
    if echoed is not None and echoed != nonce:
        raise _BadResponse("the response nonce does not match the request")
    for single in response.responses:
        algorithm = single.hash_algorithm
        if (
            single.serial_number == leaf.info.serial
            and single.issuer_name_hash == _digest(algorithm, issuer.info.subject_raw)
            and single.issuer_key_hash == _digest(algorithm, issuer.info.public_key.key_bytes)
        ):
            break
    else:
        raise _BadResponse("the response does not cover the certificate")
    if single.this_update_utc > now + CLOCK_SKEW:
        raise _BadResponse(f"the response is not valid before {go_rfc3339(single.this_update_utc)}")
    next_update = single.next_update_utc
    if next_update is not None and next_update < now - CLOCK_SKEW:
        raise _BadResponse(f"the response expired at {go_rfc3339(next_update)}")
    return single


def check_ocsp(
    endpoint: str, leaf: Cert, issuer: Cert, client: httpx.Client, now: datetime
) -> None:
    """Raise EndpointError unless the OCSP responder at `endpoint` says "good"."""
    nonce = secrets.token_bytes(16)
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(leaf.x509, issuer.x509, hashes.SHA1())
        .add_extension(x509.OCSPNonce(nonce), critical=False)
        .build()
    )
    contacting = f"error contacting OCSP server: {endpoint}"
    if _scheme_problem(endpoint):
        raise EndpointError(contacting)
    headers = {"Content-Type": "application/ocsp-request", "Accept": "application/ocsp-response"}
    payload = request.public_bytes(serialization.Encoding.DER)
    try:
        with client.stream("POST", endpoint, content=payload, headers=headers) as response:
            status = response.status_code
            try:
                body = _read_limited(response, OCSP_SIZE_LIMIT)
            except (httpx.HTTPError, _TooLarge):
                raise EndpointError(
                    f"error reading response from OCSP server: {endpoint}"
                ) from None
    except httpx.HTTPError:
        raise EndpointError(contacting) from None
    parsing = f"error parsing response from OCSP server: {endpoint}"
    try:
        if status != 200:
            raise _BadResponse(f"HTTP status {status}")
        try:
            parsed = ocsp.load_der_ocsp_response(body)
        except ValueError:
            raise _BadResponse("malformed OCSP response") from None
        try:
            answer = _ocsp_answer(parsed, leaf, issuer, nonce, now)
        except ValueError as exc:
            raise _BadResponse(f"malformed OCSP response: {exc}") from None
    except _BadResponse as exc:
        raise EndpointError(f"{parsing}: {exc}") from None
    if answer.certificate_status == ocsp.OCSPCertStatus.REVOKED:
        raise EndpointError(
            f"certificate has been revoked according to OCSP {endpoint}", received=True
        )
    if answer.certificate_status != ocsp.OCSPCertStatus.GOOD:
        raise EndpointError(
            f"certificate status is unknown according to OCSP {endpoint}", received=True
        )
