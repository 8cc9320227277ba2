from __future__ import annotations

import pytest
from sqlalchemy import select

from inboxlab.errors import ConflictError, InvalidInputError, NotFoundError
from serving.keys import InvalidKeyError, KeyRing, MissingScopeError
from serving.store import DecisionStore
from serving.store.schema import api_keys


@pytest.fixture
def keys(store: DecisionStore) -> KeyRing:
    return KeyRing(store.engine)


def test_created_key_verifies_with_its_scopes(keys: KeyRing) -> None:
    created = keys.create("renderer", scopes=["decide", "outcomes"])
    assert created.plaintext.startswith("ilk_")
    key = keys.verify(created.plaintext, "outcomes")
    assert (key.name, key.scopes) == ("renderer", frozenset({"decide", "outcomes"}))


def test_only_a_salted_hash_is_stored(keys: KeyRing, store: DecisionStore) -> None:
    first = keys.create("one", scopes=["decide"])
    second = keys.create("two", scopes=["decide"])
    with store.engine.connect() as conn:
        rows = conn.execute(select(api_keys)).mappings().all()
    stored = " ".join(str(value) for row in rows for value in row.values())
    for created in (first, second):
        assert created.plaintext.split("_", 2)[2] not in stored
    assert len({row["salt"] for row in rows}) == 2


def test_key_without_the_scope_is_forbidden(keys: KeyRing) -> None:
    created = keys.create("renderer", scopes=["decide"])
    with pytest.raises(MissingScopeError, match=r"'admin'.*it has: decide"):
        keys.verify(created.plaintext, "admin")


@pytest.mark.parametrize(
    "presented",
    ["", "Bearer", "ilk_short_x", "ilk_0123456789ab_" + "A" * 43, "not-a-key"],
)
def test_malformed_or_unknown_key_is_invalid(keys: KeyRing, presented: str) -> None:
    keys.create("renderer", scopes=["decide"])
    with pytest.raises(InvalidKeyError):
        keys.verify(presented, "decide")


def test_wrong_secret_for_a_known_id_is_invalid(keys: KeyRing) -> None:
    created = keys.create("renderer", scopes=["decide"])
    tampered = created.plaintext[:-1] + ("A" if created.plaintext[-1] != "A" else "B")
    with pytest.raises(InvalidKeyError, match="not valid"):
        keys.verify(tampered, "decide")


def test_revoked_key_is_invalid_and_its_name_reusable(keys: KeyRing) -> None:
    old = keys.create("renderer", scopes=["decide"])
    assert keys.revoke("renderer") == 1
    with pytest.raises(InvalidKeyError, match="revoked"):
        keys.verify(old.plaintext, "decide")
    new = keys.create("renderer", scopes=["decide"])
    assert keys.verify(new.plaintext, "decide").key_id == new.key.key_id
    listed = keys.list_keys()
    assert [(k.name, k.active) for k in listed] == [("renderer", False), ("renderer", True)]
    assert [k.key_id for k in keys.list_keys(include_revoked=False)] == [new.key.key_id]


def test_duplicate_active_name_is_a_conflict(keys: KeyRing) -> None:
    keys.create("renderer", scopes=["decide"])
    with pytest.raises(ConflictError, match="renderer"):
        keys.create("renderer", scopes=["admin"])


def test_revoking_an_unknown_name_is_not_found(keys: KeyRing) -> None:
    with pytest.raises(NotFoundError, match="ghost"):
        keys.revoke("ghost")


@pytest.mark.parametrize(
    ("name", "scopes", "field"),
    [
        ("renderer", [], "scopes"),
        ("renderer", ["decide", "root"], "scopes"),
        ("", ["decide"], "name"),
        ("has space", ["decide"], "name"),
        ("x" * 129, ["decide"], "name"),
    ],
)
def test_invalid_key_requests_name_the_field(
    keys: KeyRing, name: str, scopes: list[str], field: str
) -> None:
    with pytest.raises(InvalidInputError) as info:
        keys.create(name, scopes=scopes)
    assert info.value.field == field
