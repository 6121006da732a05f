"""`step certificate lint`: RFC 5280 and CA/Browser Forum checks with pkilint.

step lints with zlint and always exits 0 with JSON; Stepstone lints with pkilint (the
library the issue names), prints a human report by default (`--json` for machines), and
exits 1 when a finding is an error, so that scripts can gate on it. Warnings and notices
alone exit 0.

The certificate's kind picks the validator set, as pkilint's own `--detect` does: a
self-issued certificate is linted as a root CA, another CA certificate as an intermediate
(TLS, cross or non-TLS, by its EKUs and name constraints), anything else as a subscriber
(DV/OV/IV/EV by its policy OIDs) or an OCSP responder. `--rfc5280` skips the CA/B Forum
TLS Baseline Requirements, which internal PKIs (step's own certificates included) do not
follow: they have no certificate policies, CRL distribution points or country.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import Any

import typer

from cli.certificate_io import load_target
from cli.common import CLIError

__all__ = ["Finding", "LintReport", "lint_certificate", "lint_command"]

_SEVERITIES = ("FATAL", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG")
_SHOWN = {"FATAL", "ERROR", "WARNING", "NOTICE"}
_FAILING = {"FATAL", "ERROR"}


@dataclass(frozen=True)
class Finding:
    severity: str
    code: str
    message: str | None
    validator: str
    path: str


@dataclass(frozen=True)
class LintReport:
    kind: str  # root, intermediate, subscriber, ocsp-responder
    certificate_type: str  # pkilint's CA/B type, e.g. DV-FINAL-CERTIFICATE ("" with --rfc5280)
    standards: tuple[str, ...]
    findings: tuple[Finding, ...]

    def count(self, *severities: str) -> int:
        return sum(1 for f in self.findings if f.severity in severities)

    @property
    def failed(self) -> bool:
        return self.count(*_FAILING) > 0


def _kind(cert_type: Any) -> str:
    from pkilint.cabf.serverauth import serverauth_constants  # type: ignore[import-untyped]

    types = serverauth_constants.CertificateType
    if cert_type == types.ROOT_CA:
        return "root"
    if cert_type == types.OCSP_RESPONDER:
        return "ocsp-responder"
    if cert_type in serverauth_constants.SUBSCRIBER_CERTIFICATE_TYPES:
        return "subscriber"
    return "intermediate"


def _pkix_validator() -> Any:
    from pkilint.pkix import certificate, extension, name  # type: ignore[import-untyped]

    return certificate.create_pkix_certificate_validator_container(
        certificate.create_decoding_validators(
            name.ATTRIBUTE_TYPE_MAPPINGS, extension.EXTENSION_MAPPINGS
        ),
        [
            certificate.create_issuer_validator_container([]),
            certificate.create_validity_validator_container(),
            certificate.create_subject_validator_container([]),
            certificate.create_extensions_validator_container([]),
            certificate.create_spki_validator_container([]),
        ],
    )


def _findings(results: Any) -> tuple[Finding, ...]:
    out: list[Finding] = []
    for result in results:
        for description in result.finding_descriptions:
            out.append(
                Finding(
                    severity=description.finding.severity.name,
                    code=description.finding.code,
                    message=description.message,
                    validator=str(result.validator),
                    path=str(result.node.path),
                )
            )
    out.sort(key=lambda f: (_SEVERITIES.index(f.severity), f.code))
    return tuple(out)


def lint_certificate(der: bytes, source: str, rfc5280_only: bool = False) -> LintReport:
    """Lint one DER certificate; a certificate pkilint cannot decode is a CLIError.

    pkilint is imported here, not at start-up (it takes most of a second), with warnings
    silenced: it names cryptography's deprecated DSA type, which is no fault of ours.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pkilint import finding_filter, loader  # type: ignore[import-untyped]
        from pkilint.cabf import serverauth  # type: ignore[import-untyped]
        from pkilint.cabf.serverauth import serverauth_constants
        from pkilint.pkix import certificate

        try:
            doc = loader.RFC5280CertificateDocumentLoader().load_der_document(der, source)
        except (ValueError, TypeError) as exc:
            raise CLIError(f"error linting {source}: {exc}") from None
        cert_type = serverauth.determine_certificate_type(doc)
        if rfc5280_only:
            results = _pkix_validator().validate(doc.root)
            return LintReport(_kind(cert_type), "", ("RFC 5280",), _findings(results))
        validator = certificate.create_pkix_certificate_validator_container(
            serverauth.create_decoding_validators(),
            serverauth.create_validators(cert_type),
        )
        results = validator.validate(doc.root)
        results, _ = finding_filter.filter_results(
            serverauth.create_serverauth_finding_filters(cert_type), results
        )
    standards = ("RFC 5280", f"CA/B Forum TLS BR {serverauth_constants.BR_VERSION}")
    return LintReport(_kind(cert_type), cert_type.to_option_str, standards, _findings(results))


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def render_text(report: LintReport, source: str) -> str:
    what = report.kind + (f" ({report.certificate_type})" if report.certificate_type else "")
    lines = [f"{source}: {what} certificate, checked against {' and '.join(report.standards)}"]
    shown = [f for f in report.findings if f.severity in _SHOWN]
    for f in shown:
        message = f": {f.message}" if f.message else ""
        lines.append(f"  {f.severity:<7} {f.code}{message}")
    summary = ", ".join(
        [
            _plural(report.count(*_FAILING), "error"),
            _plural(report.count("WARNING"), "warning"),
            _plural(report.count("NOTICE"), "notice"),
        ]
    )
    lines.append(summary if shown else f"no findings ({summary})")
    return "\n".join(lines) + "\n"


def render_json(report: LintReport, source: str) -> str:
    document = {
        "file": source,
        "kind": report.kind,
        "type": report.certificate_type or None,
        "standards": list(report.standards),
        "errors": report.count(*_FAILING),
        "warnings": report.count("WARNING"),
        "findings": [
            {
                "severity": f.severity.lower(),
                "code": f.code,
                "message": f.message,
                "validator": f.validator,
                "path": f.path,
            }
            for f in report.findings
        ],
    }
    return json.dumps(document, indent=2) + "\n"


def lint_command(
    crt_file: str = typer.Argument(
        ...,
        metavar="CRT_FILE",
        help="The certificate (PEM or DER), or an https://host[:port] URL whose presented "
        "certificate is linted.",
        show_default=False,
    ),
    rfc5280: bool = typer.Option(
        False,
        "--rfc5280",
        help="Only check RFC 5280; skip the CA/Browser Forum TLS Baseline Requirements, "
        "which internal PKIs do not follow.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the findings as JSON."),
    roots: str | None = typer.Option(
        None, "--roots", metavar="FILE", help="Root certificate(s) to verify a remote server."
    ),
    servername: str | None = typer.Option(
        None, "--servername", help="TLS Server Name Indication to send to a remote server."
    ),
    insecure: bool = typer.Option(
        False, "--insecure", help="Do not verify the remote server's certificate chain."
    ),
) -> None:
    """Check a certificate against RFC 5280 and the CA/Browser Forum Baseline Requirements.

    The checks are pkilint's, chosen for the kind of certificate: a self-issued CA is
    linted as a root, another CA as an intermediate, anything else as a subscriber (TLS
    leaf) certificate. Errors, warnings and notices are printed, most severe first. The
    exit status is 1 when there is an error (a violated MUST), 0 otherwise.

    The Baseline Requirements are for publicly trusted TLS certificates: certificates of an
    internal PKI, step's own included, break several of them (no certificate policies, CRL
    distribution points or country). --rfc5280 limits the checks to RFC 5280.

    Examples:

      $ step certificate lint ./certificate.crt

      $ step certificate lint ./root_ca.crt --rfc5280

      $ step certificate lint ./certificate.crt --json | jq '.findings[].code'

      $ step certificate lint https://ca.internal:9000 --roots ./root_ca.crt
    """
    certs, request = load_target(crt_file, servername, roots, insecure)
    if request is not None or not certs:
        raise CLIError(f"{crt_file} is a certificate request: lint works on certificates")
    report = lint_certificate(certs[0].raw, crt_file, rfc5280)
    typer.echo((render_json if as_json else render_text)(report, crt_file), nl=False)
    if report.failed:
        raise typer.Exit(1)
