"""Formatting of X.509 certificates and CSRs the way `step certificate inspect` prints them.

Three renderings, each following the Go code step links (read, not copied):

* text and ``--short``: smallstep/certinfo (``CertificateText``, ``CertificateShortText``,
  ``CertificateRequestText``, ``CertificateRequestShortText``), which reads certificates parsed
  by Go's ``crypto/x509``.
* ``--format json``: the JSON of smallstep/zcrypto's ``x509.Certificate`` (zlint's schema:
  ``version``, ``serial_number``, ``signature_algorithm``, ``issuer``, ``issuer_dn``,
  ``validity{start,end,length}``, ``subject``, ``subject_dn``, ``subject_key_info``,
  ``extensions``, ``unknown_extensions``, ``signature``, the fingerprints,
  ``validation_level``, ``names``, ``redacted``); for a CSR, Go's default encoding of
  zcrypto's ``CertificateRequest`` struct.
* ``--format pem``.

Certificates are decoded with a small strict DER reader of our own so that every raw detail
certinfo prints (attribute order, raw extension bytes, unknown algorithms) is available; the
`cryptography` package is only used for public keys and signature checks. The step
provisioner extension is decoded by :mod:`provisioners.extension`.

Known gaps against real step (deliberate, documented):

* JSON ``names``: zcrypto builds it through a Go map, so step prints it in random order; we
  keep first-seen order. Whether a name is included follows govalidator's ``IsURL`` as
  closely as a Python regular expression allows.
* JSON ``validation_level``: only the CA/Browser Forum policy OIDs and zcrypto's subject
  heuristics are known; zcrypto's per-vendor EV/OV/DV policy tables are not reproduced.
* CSR JSON prints an ECDSA key's ``Curve`` as ``{}`` (what Go >= 1.20 marshals).
* Go's exact wording of low-level parse errors is not reproduced; any certificate Go would
  refuse is refused, with step's one-line message at the command level.

Layout of the package (each module one job; this ``__init__`` re-exports the public API):

* :mod:`.der` — the DER reader; :mod:`.names`, :mod:`.algorithms`, :mod:`.keys`,
  :mod:`.general_names`, :mod:`.extensions` — the X.509 pieces; :mod:`.model` — certificates
  and CSRs; :mod:`.pem` — PEM blocks and bundles.
* :mod:`.text`, :mod:`.short`, :mod:`.jsonfmt` — the certificate renderings; :mod:`.csr` — the
  CSR renderings; :mod:`.gofmt` and :mod:`.govalidator` — Go helpers they share.
"""

from __future__ import annotations

from cli.certinfo.algorithms import (
    AlgorithmIdentifier,
    SignatureScheme,
    algorithm_display_name,
    parse_algorithm,
    signature_scheme,
)
from cli.certinfo.csr import (
    certificate_request_json,
    certificate_request_short_text,
    certificate_request_text,
)
from cli.certinfo.der import (
    CertParseError,
    Element,
    children,
    decode_bit_string,
    decode_boolean,
    decode_integer,
    decode_oid,
    decode_string,
    decode_time,
    parse_one,
    read_element,
)
from cli.certinfo.extensions import (
    OID_STEP_PROVISIONER,
    SCT,
    AuthorityInfoAccess,
    Extension,
    NameConstraints,
    PolicyInformation,
    parse_authority_info_access,
    parse_authority_key_id,
    parse_basic_constraints,
    parse_crl_distribution_points,
    parse_extension,
    parse_key_usage,
    parse_name_constraints,
    parse_octet_string,
    parse_oid_sequence,
    parse_policies,
    parse_sct_list,
)
from cli.certinfo.general_names import (
    EDIPartyName,
    GeneralNames,
    OtherName,
    ip_net_string,
    ip_string,
    parse_general_names,
)
from cli.certinfo.gofmt import go_rfc3339, go_runes, go_validity_time
from cli.certinfo.jsonfmt import certificate_json, certificates_json, go_json, name_dn, name_json
from cli.certinfo.keys import PublicKey, PublicKeyInfo, parse_public_key, verify_signature
from cli.certinfo.model import (
    Certificate,
    CertificateRequest,
    parse_certificate,
    parse_certificate_request,
)
from cli.certinfo.names import Attribute, Name, common_name, flat, parse_name
from cli.certinfo.pem import (
    PEMBlock,
    parse_certificate_bundle,
    parse_certificate_request_data,
    pem_blocks,
    pem_encode,
)
from cli.certinfo.short import abbreviated, certificate_short_text, certificate_type
from cli.certinfo.text import certificate_text

__all__ = [
    "OID_STEP_PROVISIONER",
    "SCT",
    "AlgorithmIdentifier",
    "Attribute",
    "AuthorityInfoAccess",
    "CertParseError",
    "Certificate",
    "CertificateRequest",
    "EDIPartyName",
    "Element",
    "Extension",
    "GeneralNames",
    "Name",
    "NameConstraints",
    "OtherName",
    "PEMBlock",
    "PolicyInformation",
    "PublicKey",
    "PublicKeyInfo",
    "SignatureScheme",
    "abbreviated",
    "algorithm_display_name",
    "certificate_json",
    "certificate_request_json",
    "certificate_request_short_text",
    "certificate_request_text",
    "certificate_short_text",
    "certificate_text",
    "certificate_type",
    "certificates_json",
    "children",
    "common_name",
    "decode_bit_string",
    "decode_boolean",
    "decode_integer",
    "decode_oid",
    "decode_string",
    "decode_time",
    "flat",
    "go_json",
    "go_rfc3339",
    "go_runes",
    "go_validity_time",
    "ip_net_string",
    "ip_string",
    "name_dn",
    "name_json",
    "parse_algorithm",
    "parse_authority_info_access",
    "parse_authority_key_id",
    "parse_basic_constraints",
    "parse_certificate",
    "parse_certificate_bundle",
    "parse_certificate_request",
    "parse_certificate_request_data",
    "parse_crl_distribution_points",
    "parse_extension",
    "parse_general_names",
    "parse_key_usage",
    "parse_name",
    "parse_name_constraints",
    "parse_octet_string",
    "parse_oid_sequence",
    "parse_one",
    "parse_policies",
    "parse_public_key",
    "parse_sct_list",
    "pem_blocks",
    "pem_encode",
    "read_element",
    "signature_scheme",
    "verify_signature",
]
