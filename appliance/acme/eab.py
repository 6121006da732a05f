"""ACME External Account Binding (RFC 8555 §7.3.4): the keys `step ca acme eab` manages, kept
in the CA's database (migration 0007) so every appliance sharing it sees the same keys, and
the check of a new-account request's binding.

A key binds at most one account: the binding is a conditional UPDATE (`account_id IS NULL`)
in the transaction that creates the account, so two appliances racing for one key cannot both
win, and a failed account creation leaves the key unbound.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    and_,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from appliance.acme import jws as acme_jws
from appliance.acme.problems import ACMEProblem, malformed, unauthorized
from appliance.acme.store import Row, Tables, new_id, now
from appliance.db.models import acme_accounts

#: The MAC algorithms of a binding. The MAC is checked here rather than by jwcrypto, which
#: refuses HS384/HS512 with keys shorter than the hash (RFC 7518 §3.2), as step's 32-byte
#: keys are; go-jose (step-ca) accepts them.
HMAC_ALGORITHMS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
MAX_REFERENCE = 256
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

acme_eab_keys = Table(
    "acme_eab_keys",
    MetaData(),
    Column("id", String(64), primary_key=True),
    Column("provisioner", String(255), nullable=False, index=True),
    Column("reference", String(256), nullable=True, comment="NULL when none"),
    Column("hmac_key", String(128), nullable=False, comment="base64url, no padding"),
    Column("account_id", String(64), nullable=True, comment="set once, when bound"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("bound_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("provisioner", "reference", name="uq_acme_eab_keys_reference"),
)


class DuplicateReference(ValueError):
    """The provisioner already has a key with this reference."""


class KeyAlreadyBound(ValueError):
    """The key was bound to an account (here or on another appliance) meanwhile."""


class EABStore(Tables):
    """The EAB keys of one database."""

    def create(self, provisioner: str, reference: str = "") -> Row:
        """A new key with a random 32-byte HMAC key; DuplicateReference if `reference` is
        taken on this provisioner."""
        if len(reference) > MAX_REFERENCE:
            raise ValueError(
                f"reference length {len(reference)} exceeds the maximum ({MAX_REFERENCE})"
            )
        row: Row = {
            "id": new_id(),
            "provisioner": provisioner,
            "reference": reference or None,
            "hmac_key": acme_jws.b64encode(secrets.token_bytes(32)),
            "account_id": None,
            "created_at": now(),
            "bound_at": None,
        }
        try:
            with self._tx() as conn:
                conn.execute(insert(acme_eab_keys).values(row))
        except IntegrityError:
            raise DuplicateReference(
                f"an ACME EAB key for provisioner '{provisioner}' with reference "
                f"'{reference}' already exists"
            ) from None
        return row

    def get(self, key_id: str) -> Row | None:
        with self._tx() as conn:
            found = (
                conn.execute(select(acme_eab_keys).where(acme_eab_keys.c.id == key_id))
                .mappings()
                .first()
            )
        return dict(found) if found is not None else None

    def page(
        self,
        provisioner: str,
        reference: str | None = None,
        cursor: str = "",
        limit: int = DEFAULT_LIMIT,
    ) -> tuple[list[Row], str]:
        """One page of the provisioner's keys in id order, and the cursor of the next page
        ("" when this is the last)."""
        limit = max(1, min(limit or DEFAULT_LIMIT, MAX_LIMIT))
        query = select(acme_eab_keys).where(acme_eab_keys.c.provisioner == provisioner)
        if reference:
            query = query.where(acme_eab_keys.c.reference == reference)
        if cursor:
            query = query.where(acme_eab_keys.c.id > cursor)
        query = query.order_by(acme_eab_keys.c.id).limit(limit + 1)
        with self._tx() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        if len(rows) > limit:
            return rows[:limit], str(rows[limit - 1]["id"])
        return rows, ""

    def remove(self, provisioner: str, key_id: str) -> bool:
        """Delete a key (bound or not: the account it bound stays); False if none."""
        with self._tx() as conn:
            gone = conn.execute(
                delete(acme_eab_keys).where(
                    acme_eab_keys.c.id == key_id, acme_eab_keys.c.provisioner == provisioner
                )
            ).rowcount
        return bool(gone == 1)

    def create_bound_account(
        self, key_id: str, provisioner: str, thumbprint: str, public: dict[str, Any],
        contact: list[str],
    ) -> tuple[Row, bool]:  # fmt: skip
        """Create the account of `thumbprint` and bind the key to it, in one transaction.

        KeyAlreadyBound if the key was bound (or removed) meanwhile: nothing is written. When
        the same key (thumbprint) created its account concurrently, that account is returned
        (not created) and the EAB key stays unbound."""
        row: Row = {
            "id": new_id(),
            "provisioner": provisioner,
            "thumbprint": thumbprint,
            "jwk": json.dumps(public, sort_keys=True),
            "status": "valid",
            "contact": json.dumps(contact),
            "created_at": now(),
        }
        try:
            with self._tx() as conn:
                bound = conn.execute(
                    update(acme_eab_keys)
                    .where(
                        and_(
                            acme_eab_keys.c.id == key_id,
                            acme_eab_keys.c.provisioner == provisioner,
                            acme_eab_keys.c.account_id.is_(None),
                        )
                    )
                    .values(account_id=row["id"], bound_at=row["created_at"])
                ).rowcount
                if bound != 1:
                    raise KeyAlreadyBound(key_id)
                conn.execute(insert(acme_accounts).values(row))
        except IntegrityError:
            with self._tx() as conn:
                existing = (
                    conn.execute(
                        select(acme_accounts).where(acme_accounts.c.thumbprint == thumbprint)
                    )
                    .mappings()
                    .first()
                )
            if existing is None:
                raise
            return dict(existing), False
        return row, True


def check_binding(store: EABStore, provisioner: str, binding: Any, outer: acme_jws.Request) -> str:
    """The id of the unbound EAB key that signed `binding` (the externalAccountBinding of a
    new-account request signed by `outer`), as step-ca checks it: a flattened JWS, HS256/384/
    512, `kid` a key of this provisioner, `url` the outer one, no nonce, payload the outer
    JWS's jwk, the MAC valid under the key."""
    if not isinstance(binding, dict):
        raise malformed("externalAccountBinding must be a JWS object")
    try:
        header = json.loads(acme_jws.b64decode(str(binding.get("protected", ""))))
    except (TypeError, ValueError):
        raise malformed("error parsing externalAccountBinding jws") from None
    if not isinstance(header, dict):
        raise malformed("error parsing externalAccountBinding jws")
    if header.get("alg") not in HMAC_ALGORITHMS:
        raise malformed(f"externalAccountBinding: unsupported algorithm {header.get('alg')!r}")
    if "nonce" in header:
        raise malformed("externalAccountBinding: nonce must not be present")
    key_id = header.get("kid")
    if not isinstance(key_id, str) or not key_id:
        raise malformed("externalAccountBinding: the kid header is missing")
    if header.get("url") != outer.url:
        raise unauthorized("externalAccountBinding: the url header is not the request's url")
    key = store.get(key_id)
    if key is None or key["provisioner"] != provisioner:
        raise unauthorized(f"external account binding key with id '{key_id}' not found")
    signing_input = f"{binding.get('protected')}.{binding.get('payload')}".encode()
    digest = hmac.new(
        acme_jws.b64decode(key["hmac_key"]), signing_input, HMAC_ALGORITHMS[header["alg"]]
    ).digest()
    try:
        signature = acme_jws.b64decode(str(binding.get("signature", "")))
    except (ValueError, ACMEProblem):
        signature = b""
    if not hmac.compare_digest(digest, signature):
        raise unauthorized("error verifying externalAccountBinding signature")
    # Only a holder of the key learns that it is spent, and to which account.
    if key["account_id"]:
        raise unauthorized(
            f"external account binding key with id '{key_id}' was already bound to account "
            f"'{key['account_id']}'"
        )
    try:
        payload = json.loads(acme_jws.b64decode(str(binding.get("payload", ""))))
        bound = acme_jws.thumbprint(acme_jws.load_key(payload))
    except (ValueError, TypeError, ACMEProblem):
        raise malformed("externalAccountBinding: the payload is not a public JWK") from None
    assert outer.jwk is not None
    if bound != acme_jws.thumbprint(acme_jws.load_key(outer.jwk)):
        raise unauthorized("keys in jws and eab payload do not match")
    return key_id
