"""API keys with scopes, stored as salted hashes only.

A key looks like ``ilk_<key_id>_<secret>``. ``key_id`` (public, 12 hex characters) finds the
row; ``secret`` (32 random bytes, URL-safe) is checked against ``sha256(salt + secret)`` with a
constant-time comparison. The plaintext is shown once, at creation, and never stored.

A single salted SHA-256, not a slow password hash, is deliberate: the secret carries 256 bits
of randomness, so guessing it is hopeless however fast the hash, whereas scrypt or argon2 would
add tens of milliseconds to every request on the render path.

Examples
--------
>>> import tempfile
>>> from serving.store import DecisionStore
>>> store = DecisionStore(f"sqlite:///{tempfile.mkdtemp()}/d.db")
>>> store.create_schema()
>>> keys = KeyRing(store.engine)
>>> created = keys.create("renderer", scopes=["decide"])
>>> keys.verify(created.plaintext, "decide").name
'renderer'
>>> store.close()
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, get_args

from sqlalchemy import Engine, select, update

from inboxlab.errors import ConflictError, InboxlabError, InvalidInputError, NotFoundError
from serving.store.schema import api_keys
from serving.store.stats import utc

__all__ = [
    "SCOPES",
    "ApiKey",
    "CreatedKey",
    "InvalidKeyError",
    "KeyRing",
    "MissingScopeError",
    "Scope",
]

Scope = Literal["decide", "outcomes", "admin"]
SCOPES: frozenset[str] = frozenset(get_args(Scope))

_PREFIX = "ilk"
_KEY_RE = re.compile(rf"^{_PREFIX}_([0-9a-f]{{12}})_([A-Za-z0-9_-]{{20,100}})$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class InvalidKeyError(InboxlabError):
    """The presented key is malformed, unknown or revoked (HTTP 401)."""


class MissingScopeError(InboxlabError):
    """The key is valid but lacks the scope the operation needs (HTTP 403)."""

    def __init__(self, name: str, scope: str, scopes: Iterable[str]) -> None:
        have = ", ".join(sorted(scopes)) or "none"
        super().__init__(f"API key {name!r} lacks scope {scope!r} (it has: {have})")
        self.scope = scope


@dataclass(frozen=True, slots=True)
class ApiKey:
    """What is known about a key without its secret."""

    key_id: str
    name: str
    scopes: frozenset[str]
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        """False once revoked."""
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A new key and its plaintext, which cannot be recovered later."""

    key: ApiKey
    plaintext: str


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


def parse_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """Validate scope names, e.g. from ``--scopes decide,outcomes``.

    >>> sorted(parse_scopes(["decide", " admin "]))
    ['admin', 'decide']
    """
    parsed = frozenset(s.strip() for s in scopes if s.strip())
    unknown = parsed - SCOPES
    if unknown or not parsed:
        raise InvalidInputError(
            f"scopes must be a non-empty subset of {sorted(SCOPES)}, got {sorted(parsed)}",
            field="scopes",
        )
    return parsed


class KeyRing:
    """Create, list, revoke and verify API keys in the decision store's database.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        The decision store's engine (``DecisionStore.engine``); the schema must exist.
    """

    def __init__(self, engine: Engine, *, cache_seconds: float = 30.0) -> None:
        self._engine = engine
        # Verified keys are remembered briefly so a request costs no database read. A revoked
        # key stops working here at once and on other replicas within ``cache_seconds``.
        self._cache_seconds = cache_seconds
        self._verified: dict[str, tuple[float, ApiKey]] = {}

    def create(self, name: str, *, scopes: Iterable[str]) -> CreatedKey:
        """A new key named ``name``; its plaintext is returned here and never again."""
        if not _NAME_RE.match(name):
            raise InvalidInputError(
                f"key name must be 1-128 letters, digits, '.', '_' or '-', got {name!r}",
                field="name",
            )
        granted = parse_scopes(scopes)
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_hex(16)
        now = datetime.now(UTC)
        with self._engine.begin() as conn:
            taken = conn.execute(
                select(api_keys.c.key_id).where(
                    api_keys.c.name == name, api_keys.c.revoked_at.is_(None)
                )
            ).first()
            if taken is not None:
                raise ConflictError(f"an active API key named {name!r} exists; revoke it first")
            conn.execute(
                api_keys.insert().values(
                    key_id=key_id,
                    name=name,
                    scopes=sorted(granted),
                    salt=salt,
                    key_hash=_digest(salt, secret),
                    created_at=now,
                    revoked_at=None,
                )
            )
        key = ApiKey(key_id, name, granted, now, None)
        return CreatedKey(key=key, plaintext=f"{_PREFIX}_{key_id}_{secret}")

    def list_keys(self, *, include_revoked: bool = True) -> list[ApiKey]:
        """Every key (without secrets), oldest first."""
        query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.name)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at.is_(None))
        with self._engine.connect() as conn:
            return [
                ApiKey(
                    key_id=row["key_id"],
                    name=row["name"],
                    scopes=frozenset(row["scopes"]),
                    created_at=utc(row["created_at"]),
                    revoked_at=utc(row["revoked_at"]) if row["revoked_at"] else None,
                )
                for row in conn.execute(query).mappings()
            ]

    def revoke(self, name: str) -> int:
        """Revoke every active key named ``name``; returns how many were revoked."""
        with self._engine.begin() as conn:
            count = conn.execute(
                update(api_keys)
                .where(api_keys.c.name == name, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            ).rowcount
        self._verified.clear()
        if count == 0:
            raise NotFoundError(f"no active API key named {name!r}")
        return count

    def verify(self, plaintext: str, scope: str | None = None) -> ApiKey:
        """The key behind ``plaintext``, checked to be active and (if given) to hold ``scope``.

        Raises
        ------
        InvalidKeyError
            Malformed, unknown or revoked key.
        MissingScopeError
            A valid key without ``scope``.
        """
        fingerprint = hashlib.sha256(plaintext.encode()).hexdigest()
        cached = self._verified.get(fingerprint)
        if cached is not None and time.monotonic() - cached[0] < self._cache_seconds:
            key = cached[1]
        else:
            key = self._verify_stored(plaintext)
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[fingerprint] = (time.monotonic(), key)
        if scope is not None and scope not in key.scopes:
            raise MissingScopeError(key.name, scope, key.scopes)
        return key

    def _verify_stored(self, plaintext: str) -> ApiKey:
        match = _KEY_RE.match(plaintext)
        if match is None:
            raise InvalidKeyError("API key is malformed (expected 'ilk_<id>_<secret>')")
        key_id, secret = match.groups()
        with self._engine.connect() as conn:
            row = (
                conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).mappings().first()
            )
        # Compare even for an unknown id, so timing does not reveal which ids exist.
        stored = row["key_hash"] if row is not None else "0" * 64
        salt = row["salt"] if row is not None else "00" * 16
        if not hmac.compare_digest(_digest(salt, secret), stored) or row is None:
            raise InvalidKeyError("API key is not valid")
        if row["revoked_at"] is not None:
            raise InvalidKeyError(f"API key {row['name']!r} has been revoked")
        return ApiKey(key_id, row["name"], frozenset(row["scopes"]), utc(row["created_at"]), None)
