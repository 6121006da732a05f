"""ACME records in the CA's database (tables in appliance.db.models, migration 0006).

Every state change is one short transaction, so appliances sharing a database see the same
accounts, orders and nonces; a nonce is single-use because using it deletes its row.

While a challenge is `processing`, its `validated` column holds when the validation started
(it becomes the validation time once valid): a challenge whose worker died is released after
STUCK_AFTER and validated again. Stale nonces and orders are purged now and then, on the way
of a nonce's use, by whichever appliance draws the lot.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    MetaData,
    String,
    Table,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from appliance.db.models import (
    acme_accounts,
    acme_authzs,
    acme_certs,
    acme_challenges,
    acme_nonces,
    acme_orders,
)
from provisioners.acme import authz_challenges

NONCE_LIFETIME = timedelta(hours=1)
ORDER_LIFETIME = timedelta(hours=24)
#: An order that expired this long ago without a certificate is deleted, with its
#: authorizations and challenges (until then the client sees it `invalid`).
STALE_ORDER_AFTER = timedelta(hours=24)
#: A validation takes at most ~35 s (validation.py): one processing longer than this lost its
#: worker.
STUCK_AFTER = timedelta(minutes=2)
#: One use of a nonce in PURGE_ONE_IN purges; each purge deletes at most PURGE_BATCH orders.
PURGE_ONE_IN = 64
PURGE_BATCH = 500
Row = dict[str, Any]

#: device-attest-01 (migration 0008): the key a valid attestation vouched for, per
#: authorization; finalize issues for that key only.
acme_attestations = Table(
    "acme_attestations",
    MetaData(),
    Column("authz_id", String(64), primary_key=True),
    Column("format", String(16), nullable=False),
    Column("fingerprint", String(64), nullable=False, comment="SHA-256 of the key's SPKI, hex"),
    Column("identifier", String(1024), nullable=False, comment="the attested serial"),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


def new_id() -> str:
    """A random, URL-safe id for a record (as step-ca's 32-character ids)."""
    return secrets.token_urlsafe(24)


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def aware(value: datetime) -> datetime:
    """SQLite gives naive datetimes back: they are UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Tables:
    """Tables of one database, each method one transaction (ACME's here, EAB keys in
    appliance.acme.eab)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def _one(self, conn: Connection, query: Any) -> Row | None:
        row = conn.execute(query).mappings().first()
        return dict(row) if row is not None else None


class Store(Tables):
    """The ACME tables of one database."""

    # --- nonces ---------------------------------------------------------------------------

    def new_nonce(self) -> str:
        nonce = secrets.token_urlsafe(24)
        with self._tx() as conn:
            conn.execute(insert(acme_nonces).values(nonce=nonce, issued_at=now()))
        if secrets.randbelow(PURGE_ONE_IN) == 0:  # nonces asked for and never used age out too
            self.purge()
        return nonce

    def use_nonce(self, nonce: str) -> bool:
        """Consume a nonce: True once for a nonce this CA issued within the hour (on any
        appliance of the database), False ever after. Stale records are purged on the way."""
        cutoff = now() - NONCE_LIFETIME
        with self._tx() as conn:
            used = conn.execute(
                delete(acme_nonces).where(
                    acme_nonces.c.nonce == nonce, acme_nonces.c.issued_at > cutoff
                )
            ).rowcount
        if secrets.randbelow(PURGE_ONE_IN) == 0:
            self.purge()
        return used == 1

    def purge(self) -> int:
        """Delete stale nonces, and orders that expired STALE_ORDER_AFTER ago without a
        certificate along with their authorizations and challenges (at most PURGE_BATCH
        orders at a time); the number of orders deleted. Safe to run on several appliances
        at once: deleting a row twice deletes it once."""
        with self._tx() as conn:
            conn.execute(
                delete(acme_nonces).where(acme_nonces.c.issued_at <= now() - NONCE_LIFETIME)
            )
            stale = conn.execute(
                select(acme_orders.c.id, acme_orders.c.authz_ids)
                .where(
                    acme_orders.c.expires <= now() - STALE_ORDER_AFTER,
                    acme_orders.c.status != "valid",
                )
                .limit(PURGE_BATCH)
            ).all()
            if not stale:
                return 0
            authz_ids = [a for _, ids in stale for a in json.loads(ids)]
            conn.execute(delete(acme_challenges).where(acme_challenges.c.authz_id.in_(authz_ids)))
            conn.execute(
                delete(acme_attestations).where(acme_attestations.c.authz_id.in_(authz_ids))
            )
            conn.execute(delete(acme_authzs).where(acme_authzs.c.id.in_(authz_ids)))
            conn.execute(delete(acme_orders).where(acme_orders.c.id.in_([o for o, _ in stale])))
        return len(stale)

    # --- accounts -------------------------------------------------------------------------

    def account(self, account_id: str) -> Row | None:
        with self._tx() as conn:
            return self._one(conn, select(acme_accounts).where(acme_accounts.c.id == account_id))

    def account_by_thumbprint(self, thumbprint: str) -> Row | None:
        with self._tx() as conn:
            return self._one(
                conn, select(acme_accounts).where(acme_accounts.c.thumbprint == thumbprint)
            )

    def create_account(
        self, provisioner: str, thumbprint: str, jwk: dict[str, Any], contact: list[str]
    ) -> tuple[Row, bool]:
        """The account of this key, and whether it is new (a concurrent creation of the same
        key, here or on another appliance, returns the one that won)."""
        row = {
            "id": new_id(),
            "provisioner": provisioner,
            "thumbprint": thumbprint,
            "jwk": json.dumps(jwk, sort_keys=True),
            "status": "valid",
            "contact": json.dumps(contact),
            "created_at": now(),
        }
        try:
            with self._tx() as conn:
                conn.execute(insert(acme_accounts).values(row))
        except IntegrityError:
            existing = self.account_by_thumbprint(thumbprint)
            if existing is None:
                raise
            return existing, False
        return row, True

    def update_account(self, account_id: str, **values: Any) -> None:
        with self._tx() as conn:
            conn.execute(
                update(acme_accounts).where(acme_accounts.c.id == account_id).values(values)
            )

    # --- orders, authorizations, challenges ----------------------------------------------

    def create_order(
        self,
        account_id: str,
        provisioner: str,
        identifiers: list[dict[str, str]],
        challenges: list[str],
        window: tuple[datetime | None, datetime | None],
    ) -> Row:
        """An order with one pending authorization per identifier, each with one challenge
        of every offered type (all sharing the authorization's token, as step-ca)."""
        created, expires = now(), now() + ORDER_LIFETIME
        authz_ids: list[str] = []
        with self._tx() as conn:
            for ident in identifiers:
                authz_id = new_id()
                authz_ids.append(authz_id)
                wildcard = ident["value"].startswith("*.")
                conn.execute(
                    insert(acme_authzs).values(
                        id=authz_id,
                        account_id=account_id,
                        kind=ident["type"],
                        value=ident["value"].removeprefix("*."),
                        wildcard=wildcard,
                        status="pending",
                        expires=expires,
                    )
                )
                token = secrets.token_urlsafe(32)
                for kind in authz_challenges(challenges, ident["type"], ident["value"]):
                    conn.execute(
                        insert(acme_challenges).values(
                            id=new_id(), authz_id=authz_id, kind=kind, token=token, status="pending"
                        )
                    )
            row = {
                "id": new_id(),
                "account_id": account_id,
                "provisioner": provisioner,
                "status": "pending",
                "identifiers": json.dumps(identifiers),
                "authz_ids": json.dumps(authz_ids),
                "not_before": window[0],
                "not_after": window[1],
                "expires": expires,
                "serial": None,
                "error": None,
                "created_at": created,
            }
            conn.execute(insert(acme_orders).values(row))
        return row

    def order(self, order_id: str) -> Row | None:
        with self._tx() as conn:
            return self._one(conn, select(acme_orders).where(acme_orders.c.id == order_id))

    def orders_of(self, account_id: str) -> list[str]:
        with self._tx() as conn:
            rows = conn.execute(
                select(acme_orders.c.id)
                .where(acme_orders.c.account_id == account_id)
                .order_by(acme_orders.c.created_at, acme_orders.c.id)
            )
            return [str(r[0]) for r in rows]

    def set_order(self, order_id: str, expect: str, **values: Any) -> bool:
        """Move an order out of status `expect` (compare-and-set: one finalize wins)."""
        with self._tx() as conn:
            changed = conn.execute(
                update(acme_orders)
                .where(acme_orders.c.id == order_id, acme_orders.c.status == expect)
                .values(values)
            ).rowcount
        return changed == 1

    def authz(self, authz_id: str) -> Row | None:
        with self._tx() as conn:
            return self._one(conn, select(acme_authzs).where(acme_authzs.c.id == authz_id))

    def authzs(self, authz_ids: list[str]) -> list[Row]:
        with self._tx() as conn:
            rows = conn.execute(select(acme_authzs).where(acme_authzs.c.id.in_(authz_ids)))
            by_id = {r["id"]: dict(r) for r in rows.mappings()}
        return [by_id[i] for i in authz_ids if i in by_id]

    def challenges(self, authz_id: str) -> list[Row]:
        with self._tx() as conn:
            rows = conn.execute(
                select(acme_challenges)
                .where(acme_challenges.c.authz_id == authz_id)
                .order_by(acme_challenges.c.kind)
            )
            return [dict(r) for r in rows.mappings()]

    def challenge(self, authz_id: str, challenge_id: str) -> Row | None:
        with self._tx() as conn:
            return self._one(
                conn,
                select(acme_challenges).where(
                    acme_challenges.c.id == challenge_id, acme_challenges.c.authz_id == authz_id
                ),
            )

    def start_challenge(self, challenge_id: str) -> bool:
        """pending -> processing (since now); False when another request already started it."""
        with self._tx() as conn:
            return (
                conn.execute(
                    update(acme_challenges)
                    .where(
                        acme_challenges.c.id == challenge_id,
                        acme_challenges.c.status == "pending",
                    )
                    .values(status="processing", validated=now())
                ).rowcount
                == 1
            )

    def mark_started(self, challenge_id: str) -> None:
        """A validation thread took up the challenge: `validated` (its start while processing)
        is now, so time spent queued behind other validations does not count as stuck."""
        with self._tx() as conn:
            conn.execute(
                update(acme_challenges)
                .where(
                    acme_challenges.c.id == challenge_id,
                    acme_challenges.c.status == "processing",
                )
                .values(validated=now())
            )

    def release_stuck(self, challenge: Row) -> bool:
        """processing -> pending for a challenge processing longer than STUCK_AFTER (its
        worker died), so that it can be started again; False for any other challenge, or
        when another request released it first."""
        cutoff = now() - STUCK_AFTER
        since = challenge["validated"]
        if challenge["status"] != "processing" or (since is not None and aware(since) > cutoff):
            return False
        column = acme_challenges.c.validated
        with self._tx() as conn:
            released = conn.execute(
                update(acme_challenges)
                .where(
                    acme_challenges.c.id == challenge["id"],
                    acme_challenges.c.status == "processing",
                    or_(column.is_(None), column <= cutoff),
                )
                .values(status="pending", validated=None)
            ).rowcount
        return released == 1

    def finish_challenge(
        self, challenge: Row, error: dict[str, Any] | None, attested: Row | None = None
    ) -> None:
        """The outcome of a validation: the challenge, its authorization and, once every
        authorization of an order is valid (or one is invalid), the order. `attested`
        (format, fingerprint, identifier) is what a valid device-attest-01 vouched for."""
        status = "invalid" if error else "valid"
        with self._tx() as conn:
            finished = conn.execute(
                update(acme_challenges)
                .where(
                    acme_challenges.c.id == challenge["id"],
                    acme_challenges.c.status == "processing",
                )
                .values(
                    status=status,
                    validated=None if error else now(),
                    error=json.dumps(error) if error else None,
                )
            ).rowcount
            if not finished:  # released as stuck, and finished by its second validation
                return
            if attested is not None and not error:
                conn.execute(
                    insert(acme_attestations).values(
                        authz_id=challenge["authz_id"], created_at=now(), **attested
                    )
                )
            conn.execute(
                update(acme_authzs)
                .where(acme_authzs.c.id == challenge["authz_id"], acme_authzs.c.status == "pending")
                .values(status=status)
            )
            orders = conn.execute(
                select(acme_orders.c.id, acme_orders.c.authz_ids).where(
                    acme_orders.c.status == "pending",
                    acme_orders.c.authz_ids.contains(challenge["authz_id"], autoescape=True),
                )
            ).all()
            for order_id, authz_ids in orders:
                ids = json.loads(authz_ids)
                states = {
                    r[0]
                    for r in conn.execute(
                        select(acme_authzs.c.status).where(acme_authzs.c.id.in_(ids))
                    )
                }
                new = "invalid" if "invalid" in states else "ready" if states == {"valid"} else None
                if new:
                    conn.execute(
                        update(acme_orders)
                        .where(acme_orders.c.id == order_id, acme_orders.c.status == "pending")
                        .values(status=new)
                    )

    def attested_fingerprint(self, authz_ids: list[str]) -> str | None:
        """The fingerprint of the key a device-attest-01 of these authorizations vouched for
        (an order has at most one permanent identifier), or None."""
        with self._tx() as conn:
            row = conn.execute(
                select(acme_attestations.c.fingerprint).where(
                    acme_attestations.c.authz_id.in_(authz_ids)
                )
            ).first()
        return str(row[0]) if row else None

    # --- certificates ---------------------------------------------------------------------

    def record_certificate(self, serial: int, account_id: str, order_id: str) -> None:
        with self._tx() as conn:
            conn.execute(
                insert(acme_certs).values(
                    serial=str(serial), account_id=account_id, order_id=order_id
                )
            )
            conn.execute(
                update(acme_orders)
                .where(acme_orders.c.id == order_id)
                .values(status="valid", serial=str(serial))
            )

    def certificate_account(self, serial: int) -> str | None:
        with self._tx() as conn:
            row = conn.execute(
                select(acme_certs.c.account_id).where(acme_certs.c.serial == str(serial))
            ).first()
        return str(row[0]) if row else None
