from __future__ import annotations

import time
import uuid

import pytest

from serving.ids import new_decision_id, new_decision_ids


def _millis(decision_id: str) -> int:
    return int(decision_id[:12], 16)


@pytest.mark.parametrize("make", [lambda: new_decision_id(), lambda: new_decision_ids(1)[0]])
def test_ids_are_rfc_9562_version_7_with_the_current_millisecond(make: object) -> None:
    before = time.time_ns() // 1_000_000
    decision_id = make()  # type: ignore[operator]
    after = time.time_ns() // 1_000_000
    parsed = uuid.UUID(hex=decision_id)
    assert parsed.hex == decision_id and len(decision_id) == 32
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert before <= _millis(decision_id) <= after


def test_ids_made_later_sort_later_and_never_repeat() -> None:
    first = [new_decision_id() for _ in range(1_000)] + new_decision_ids(1_000)
    time.sleep(0.002)
    later = [new_decision_id() for _ in range(1_000)] + new_decision_ids(1_000)
    assert max(first) < min(later)
    assert len(set(first + later)) == 4_000


def test_the_random_bits_are_random() -> None:
    # 74 random bits per id: over 4,000 ids every one of them takes both values.
    ids = [uuid.UUID(hex=i).int for i in new_decision_ids(2_000)]
    ids += [uuid.UUID(hex=new_decision_id()).int for _ in range(2_000)]
    random_bits = [b for b in range(62)] + [b for b in range(64, 76)]
    for bit in random_bits:
        ones = sum((i >> bit) & 1 for i in ids)
        assert 1_700 < ones < 2_300, bit
