"""What an ACME request does, once its JWS is checked: accounts, orders, validation,
issuance and revocation, with the certificate going through the authority's issuance path
(recorded in x509_certs and the audit log like any other)."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from cryptography import x509
from sqlalchemy.exc import IntegrityError

from appliance import csr_checks
from appliance.acme import attestation, eab, jws, revocation, validation
from appliance.acme.problems import ACMEProblem, malformed, not_found, unauthorized
from appliance.acme.requests import MAX_IDENTIFIERS, contact_urls, csr_names, is_ip
from appliance.acme.store import Row, Store, aware
from appliance.authority import Authority
from appliance.db.audit import AuditEvent
from appliance.metrics import CERTIFICATES_ISSUED
from appliance.profiles import LeafRequest, build_leaf, subject_name
from appliance.validity import Window, check_window, requested_window
from pki.errors import CAError
from pki.policy import PolicyError
from pki.sans import SubjectAltNames
from provisioners.acme import DEVICE_ATTEST, PERMANENT_IDENTIFIER, ACMEProvisioner


@dataclass(frozen=True)
class Account:
    """The account a request is signed by."""

    row: Row
    key: Any  # jwcrypto JWK

    @property
    def id(self) -> str:
        return str(self.row["id"])


class KeyInUse(ACMEProblem):
    """key-change to a key another account holds: 409 with that account's URL as Location
    (RFC 8555 §7.3.5)."""

    def __init__(self, account_id: str) -> None:
        super().__init__("malformed", "the new key is already an account's key", 409)
        self.account_id = account_id


class ACME:
    """One provisioner's ACME service."""

    def __init__(self, authority: Authority, provisioner: ACMEProvisioner, store: Store) -> None:
        self.authority = authority
        self.prov = provisioner
        self.store = store

    # --- accounts -------------------------------------------------------------------------

    def account_for(self, request: jws.Request, account_url_prefix: str) -> Account:
        """The account of a `kid` request, its signature verified (not for `jwk` requests)."""
        kid = request.kid
        if kid is None:
            raise malformed("this request must be signed with an account (kid)")
        if not kid.startswith(account_url_prefix):
            raise ACMEProblem("accountDoesNotExist", "account not found")
        row = self.store.account(kid.removeprefix(account_url_prefix))
        if row is None or row["provisioner"] != self.prov.name:
            raise ACMEProblem("accountDoesNotExist", "account not found")
        key = jws.load_key(json.loads(row["jwk"]))
        jws.verify(request, key)
        if row["status"] != "valid":
            raise unauthorized(f"account is {row['status']}")
        return Account(row, key)

    def new_account(self, request: jws.Request) -> tuple[Row, bool]:
        """The account of the request's `jwk` (created unless it exists or the client only
        asks for an existing one)."""
        value = request.jwk
        if value is None:
            raise malformed("new-account must be signed with a jwk")
        key = jws.load_key(value)
        jws.verify(request, key)
        payload = request.json_payload()
        thumb = jws.thumbprint(key)
        existing = self.store.account_by_thumbprint(thumb)
        if existing is not None:
            if existing["provisioner"] != self.prov.name:  # one account per key, CA-wide
                raise unauthorized(
                    f"this key is the key of an account on provisioner "
                    f"'{existing['provisioner']}': use another key here"
                )
            if existing["status"] != "valid":
                raise unauthorized(f"account is {existing['status']}")
            return existing, False
        if payload.get("onlyReturnExisting") is True:
            raise ACMEProblem("accountDoesNotExist", "account does not exist")
        contact = contact_urls(payload.get("contact"))
        public = json.loads(key.export_public())
        if not self.prov.acme.requireEAB:  # as step-ca: a binding is ignored unless required
            return self.store.create_account(self.prov.name, thumb, public, contact)
        binding = payload.get("externalAccountBinding")
        if binding is None:
            raise ACMEProblem(
                "externalAccountRequired", "no external account binding provided", 401
            )
        keys = eab.EABStore(self.store.engine)
        key_id = eab.check_binding(keys, self.prov.name, binding, request)
        try:
            return keys.create_bound_account(key_id, self.prov.name, thumb, public, contact)
        except eab.KeyAlreadyBound:
            raise unauthorized(
                f"external account binding key with id '{key_id}' was already bound"
            ) from None

    def update_account(self, account: Account, payload: dict[str, Any]) -> Row:
        values: dict[str, Any] = {}
        if "contact" in payload:
            values["contact"] = json.dumps(contact_urls(payload["contact"]))
        if payload.get("status") == "deactivated":
            values["status"] = "deactivated"
        elif "status" in payload and payload["status"] != account.row["status"]:
            raise malformed(f"cannot change the account status to {payload['status']!r}")
        if values:
            self.store.update_account(account.id, **values)
        row = self.store.account(account.id)
        assert row is not None
        return row

    def key_change(self, request: jws.Request, account_prefix: str) -> Row:
        """Roll the account's key (RFC 8555 §7.3.5): the outer JWS by the old key, the inner
        (its payload) by the new one, naming the account and the old key."""
        account = self.account_for(request, account_prefix)
        inner = jws.parse(request.payload, inner=True)
        if inner.url != request.url:
            raise malformed("the inner JWS's url is not the outer one's")
        assert inner.jwk is not None
        new_key = jws.load_key(inner.jwk)
        jws.verify(inner, new_key)
        payload = inner.json_payload()
        old = payload.get("oldKey")
        if payload.get("account") != request.kid or not isinstance(old, dict):
            raise malformed("the inner payload must name this account and its old key")
        if jws.thumbprint(jws.load_key(old)) != account.row["thumbprint"]:
            raise unauthorized("oldKey is not the account's key")
        thumb = jws.thumbprint(new_key)
        holder = self.store.account_by_thumbprint(thumb)
        if holder is not None:
            raise KeyInUse(str(holder["id"]))
        public = json.loads(new_key.export_public())
        try:
            self.store.update_account(
                account.id, thumbprint=thumb, jwk=json.dumps(public, sort_keys=True)
            )
        except IntegrityError:  # another account took the key meanwhile
            holder = self.store.account_by_thumbprint(thumb)
            raise KeyInUse(str(holder["id"]) if holder else "") from None
        row = self.store.account(account.id)
        assert row is not None
        return row

    # --- orders ---------------------------------------------------------------------------

    def new_order(self, account: Account, payload: dict[str, Any]) -> Row:
        idents = payload.get("identifiers")
        if not isinstance(idents, list) or not idents:
            raise malformed("the order has no identifiers")
        if len(idents) > MAX_IDENTIFIERS:
            raise malformed(f"an order may hold at most {MAX_IDENTIFIERS} identifiers")
        clean: list[dict[str, str]] = []
        for ident in idents:
            if not isinstance(ident, dict) or not all(
                isinstance(ident.get(k), str) for k in ("type", "value")
            ):
                raise malformed("an identifier needs a type and a value")
            kind, value = ident["type"], ident["value"].lower()
            if kind == "ip":
                value = str(ipaddress.ip_address(value)) if is_ip(value) else value
            problem = self.prov.identifier_problem(kind, value, self.authority.config.policy)
            if problem:
                raise ACMEProblem(
                    "rejectedIdentifier" if kind in ("dns", "ip") else "unsupportedIdentifier",
                    problem,
                )
            if {"type": kind, "value": value} not in clean:
                clean.append({"type": kind, "value": value})
        challenges = self.prov.challenges
        if not challenges:
            raise ACMEProblem(
                "serverInternal", "this provisioner offers no challenge this CA can validate", 500
            )
        window = self._window(payload)
        return self.store.create_order(account.id, self.prov.name, clean, challenges, window)

    def _window(self, payload: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
        bounds: list[datetime | None] = []
        for key in ("notBefore", "notAfter"):
            text = payload.get(key)
            if text in (None, ""):
                bounds.append(None)
                continue
            try:
                bounds.append(aware(datetime.fromisoformat(str(text).replace("Z", "+00:00"))))
            except ValueError:
                raise malformed(f"{key} is not an RFC 3339 time") from None
        return bounds[0], bounds[1]

    def order(self, account: Account, order_id: str) -> Row:
        row = self.store.order(order_id)
        if row is None or row["account_id"] != account.id:
            raise not_found("order")
        if row["status"] in ("pending", "ready") and aware(row["expires"]) < datetime.now(UTC):
            self.store.set_order(order_id, row["status"], status="invalid")
            row["status"] = "invalid"
        return row

    def authz(self, account: Account, authz_id: str) -> tuple[Row, list[Row]]:
        """The authorization and its challenges; a challenge left processing by a worker that
        died (store.STUCK_AFTER) is started again, as if the client had just asked."""
        row = self.store.authz(authz_id)
        if row is None or row["account_id"] != account.id:
            raise not_found("authorization")
        challenges = self.store.challenges(authz_id)
        if row["status"] == "pending":
            stuck = [c for c in challenges if self.store.release_stuck(c)]
            for challenge in stuck:
                self.start_challenge(account, authz_id, challenge["id"])
            if stuck:
                challenges = self.store.challenges(authz_id)
        return row, challenges

    # --- challenges -----------------------------------------------------------------------

    def start_challenge(
        self,
        account: Account,
        authz_id: str,
        challenge_id: str,
        payload: dict[str, Any] | None = None,
    ) -> Row:
        """Queue the validation (once); the challenge as it is now. device-attest-01 is
        checked at once, with the request's `payload` (none: the challenge is only read)."""
        authz, _ = self.authz(account, authz_id)
        challenge = self.store.challenge(authz_id, challenge_id)
        if challenge is None:
            raise not_found("challenge")
        attest = challenge["kind"] == DEVICE_ATTEST
        if attest and payload is None:
            return challenge
        if authz["status"] == "pending" and self.store.start_challenge(challenge_id):
            challenge["status"] = "processing"
            expected = f"{challenge['token']}.{jws.thumbprint(account.key)}"
            if attest:
                assert payload is not None
                self._attest(authz, challenge, expected, payload)
                return self.store.challenge(authz_id, challenge_id) or challenge
            validation.submit(partial(self._validate, authz, challenge, expected))
        return challenge

    def _attest(self, authz: Row, challenge: Row, expected: str, payload: dict[str, Any]) -> None:
        """device-attest-01, on the request (as step-ca): the attested key is kept for
        finalize."""
        try:
            attested = attestation.verify_payload(payload, authz["value"], expected, self.prov)
        except attestation.AttestationError as exc:
            self.store.finish_challenge(challenge, exc.problem)
        else:
            self.store.finish_challenge(challenge, None, attested)

    def _validate(self, authz: Row, challenge: Row, expected: str) -> None:
        """On the validation pool: check the challenge (authz value: a wildcard's base name)."""
        self.store.mark_started(str(challenge["id"]))
        error = validation.validate(
            challenge["kind"], authz["kind"], authz["value"], challenge["token"], expected,
            self.prov,
        )  # fmt: skip
        self.store.finish_challenge(challenge, error)

    # --- finalize and revoke --------------------------------------------------------------

    def finalize(self, account: Account, order_id: str, payload: dict[str, Any]) -> Row:
        order = self.order(account, order_id)
        if order["status"] != "ready":
            raise ACMEProblem("orderNotReady", f"order is {order['status']}, not ready", 403)
        csr_b64 = payload.get("csr")
        if not isinstance(csr_b64, str):
            raise malformed("finalize needs a csr")
        try:
            csr = x509.load_der_x509_csr(jws.b64decode(csr_b64))
        except ValueError:
            raise ACMEProblem("badCSR", "the csr cannot be parsed") from None
        if not csr.is_signature_valid:
            raise ACMEProblem("badCSR", "the csr signature is invalid")
        try:
            csr_checks.check_key(csr)
        except CAError as exc:
            raise ACMEProblem("badCSR", str(exc)) from None
        idents = json.loads(order["identifiers"])
        names = [i["value"] for i in idents]
        permanent = next((i["value"] for i in idents if i["type"] == PERMANENT_IDENTIFIER), None)
        if permanent is not None:  # device-attest-01: only for the attested key
            attested = self.store.attested_fingerprint(json.loads(order["authz_ids"]))
            common_name = attestation.attested_common_name(csr, permanent, attested, order_id)
        else:
            common_name = csr_names(csr, names)
        if not common_name and self.prov.acme.forceCN and permanent is None:
            common_name = names[0]
        if not self.store.set_order(order_id, "ready", status="processing"):
            raise ACMEProblem("orderNotReady", "the order is being finalized", 403)
        try:
            cert = self._issue(account, order, csr, common_name, names, permanent)
        except BaseException:
            self.store.set_order(order_id, "processing", status="ready")
            raise
        self.store.record_certificate(cert.serial_number, account.id, order_id)
        return self.order(account, order_id)

    def _issue(
        self,
        account: Account,
        order: Row,
        csr: x509.CertificateSigningRequest,
        common_name: str,
        names: list[str],
        permanent: str | None = None,
    ) -> x509.Certificate:
        """The leaf of an order; with a `permanent` identifier, step-ca's attested leaf."""
        authority, claims = self.authority, self.prov.claims
        now = datetime.now(UTC)
        window = requested_window(None, None, now, claims, authority.config.backdate)
        if order["not_before"] or order["not_after"]:
            nb = aware(order["not_before"]) if order["not_before"] else window.not_before
            na = aware(order["not_after"]) if order["not_after"] else nb + claims.default_tls
            window = Window(nb, na)
        try:
            check_window(window, now, claims, authority.config.backdate)
        except CAError as exc:
            raise ACMEProblem("malformed", str(exc)) from None
        extension = None if claims.disable_smallstep_extensions else self.prov.extension(account.id)
        sans = SubjectAltNames() if permanent is not None else SubjectAltNames.split(names)
        for rules in (self.prov.policy, authority.config.policy):  # again: a reload may have
            if rules is not None:  # changed them since new-order (step-ca checks both times)
                try:
                    rules.check_x509(common_name, sans)
                except PolicyError as exc:
                    raise ACMEProblem(
                        "rejectedIdentifier", f"not authorized: {exc.message}"
                    ) from None
        request = LeafRequest(
            subject=subject_name(common_name, authority.config.template),
            sans=sans,
            public_key=csr.public_key(),
            not_before=window.not_before,
            not_after=window.not_after,
            extension=extension,
            revocation=authority.revocation_pointers,
            other_names=(
                (attestation.permanent_identifier_san(permanent),) if permanent is not None else ()
            ),
            client_auth_only=permanent is not None,  # step-ca's attested leaf
        )
        build = partial(build_leaf, request, authority.intermediates[0])
        cert = authority.repository.issue(
            None,
            self.prov.name,
            lambda: authority.issuer_signer.sign_with(build),
            AuditEvent(
                "certificate.sign",
                f"{self.prov.name}:{common_name or names[0]}",
                details={"provisioner": self.prov.name, "acme_account": account.id},
            ),
        )
        CERTIFICATES_ISSUED.labels(self.prov.name).inc()
        return cert

    def revoke(self, request: jws.Request, account_prefix: str) -> None:
        """revoke-cert (appliance.acme.revocation)."""
        revocation.revoke(self, request, account_prefix)
