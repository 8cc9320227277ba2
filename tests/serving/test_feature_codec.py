from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, insert, select

from inboxlab.errors import ConflictError, StoreError
from serving.store import DecisionStore
from serving.store.bulk import insert_decisions
from serving.store.feature_codec import (
    LAYOUT_PREFIX,
    decode_features,
    encode_features,
    layout_of,
)
from serving.store.schema import decisions, feature_layouts
from serving.store.units import experiment_units
from tests.serving.conftest import T0, decision
from tests.serving.test_batch_store import columns_of

ROW: dict[str, Any] = {
    "sends_7d": 2,
    "open_rate_30d": 0.1 + 0.2,
    "timezone": "Asia/Kolkata",
    "has_bounced": False,
    "days_since_open": None,
}


def stored_text(store: DecisionStore, decision_id: str) -> str:
    with store.engine.connect() as conn:
        value = conn.execute(
            select(decisions.c.features).where(decisions.c.decision_id == decision_id)
        ).scalar_one()
    return json.dumps(value)


def layout_count(store: DecisionStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(feature_layouts)).scalar_one())


def test_a_layout_id_is_a_digest_of_the_ordered_names() -> None:
    same = layout_of(list(ROW))
    assert layout_of(tuple(ROW)) is same  # made once per process
    assert same.layout_id.startswith(LAYOUT_PREFIX) and len(same.layout_id) == 19
    assert layout_of(reversed(list(ROW))).layout_id != same.layout_id
    # a digest, not a counter: another process derives the same id
    digest = hashlib.sha256(json.dumps(list(ROW)).encode()).hexdigest()
    assert same.layout_id == "fl:" + digest[:16]


def test_encoded_values_decode_to_the_row() -> None:
    text, layout = encode_features({**ROW, "rate": np.float32(0.25), "n": np.int64(4)})
    assert layout is not None
    value = json.loads(text)
    assert value[0] == layout.layout_id and "timezone" not in text
    got = decode_features(value, {layout.layout_id: list(layout.names)})
    assert got == {**ROW, "rate": 0.25, "n": 4}
    assert type(got["n"]) is int and type(got["has_bounced"]) is bool
    assert encode_features({}) == ("{}", None)


def test_bad_stored_values_are_a_store_error() -> None:
    layout = layout_of(["a", "b"])
    names = {layout.layout_id: ["a", "b"]}
    with pytest.raises(StoreError, match="unknown layout"):
        decode_features([layout_of(["z"]).layout_id, 1], names)
    with pytest.raises(StoreError, match="1 values for the 2 names"):
        decode_features([layout.layout_id, 1], names)
    with pytest.raises(StoreError, match="neither an object nor a layout row"):
        decode_features([1, 2], names)
    assert decode_features({"a": 1}, {}) == {"a": 1}  # a row stored as an object


def test_both_write_paths_store_names_once(store: DecisionStore) -> None:
    store.record_decision(decision("d-one"), features=ROW)
    store.record_decisions([(decision("d-many"), ROW), (decision("d-empty"), {})])
    insert_decisions(store.engine, columns_of([decision("d-bulk")], ROW), Counter())
    for decision_id in ("d-one", "d-many", "d-bulk"):
        assert store.decision_features(decision_id) == ROW
        text = stored_text(store, decision_id)
        assert "timezone" not in text and "Asia/Kolkata" in text
        assert len(text) < len(json.dumps(ROW))
    assert store.decision_features("d-empty") == {}
    assert layout_count(store) == 1


def test_rows_stored_as_objects_still_read_back(store: DecisionStore) -> None:
    store.record_decision(decision("d-new"), features=ROW)
    old = decision("d-old").model_dump(mode="json", exclude={"decided_at", "send_at"})
    row = {**old, "decided_at": T0, "send_at": None, "features": ROW}
    with store.engine.begin() as conn:
        conn.execute(insert(decisions), [row])
    assert store.decision_features("d-old") == ROW
    units = experiment_units(store.engine, "exp-1", with_features=True)
    assert set(units["decision_id"]) == {"d-new", "d-old"}
    for _, unit in units.iterrows():
        assert unit["f_timezone"] == "Asia/Kolkata" and unit["f_sends_7d"] == 2


def test_a_refused_insert_stores_no_layout(store: DecisionStore) -> None:
    store.record_decision(decision("d-1"), features={"x": 1})
    other = {"y": 2, "z": 3}
    with pytest.raises(ConflictError):
        store.record_decisions([(decision("d-2"), other), (decision("d-1"), other)])
    with pytest.raises(ConflictError):
        insert_decisions(store.engine, columns_of([decision("d-1")], other), Counter())
    assert layout_count(store) == 1 and store.decision_features("d-2") is None


def test_units_with_features_decode_every_layout(store: DecisionStore) -> None:
    later = decision("d-2", decided_at=T0 + timedelta(hours=1))
    store.record_decisions([(decision("d-1"), {"a": 1, "b": 2}), (later, {"b": 3, "c": 4})])
    units = experiment_units(store.engine, "exp-1", with_features=True)
    rows = {r["decision_id"]: r for r in units.to_dict("records")}
    assert (rows["d-1"]["f_a"], rows["d-1"]["f_b"]) == (1, 2)
    assert (rows["d-2"]["f_b"], rows["d-2"]["f_c"]) == (3, 4)
    assert np.isnan(rows["d-1"]["f_c"]) and np.isnan(rows["d-2"]["f_a"])
