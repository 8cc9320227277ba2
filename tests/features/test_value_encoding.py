"""Bulk encoding of feature columns against Feast's own conversion, value by value."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from feast.infra.online_stores.helpers import extract_text_and_num
from feast.type_map import python_values_to_proto_values
from feast.value_type import ValueType

from features.value_encoding import encode_column

DOUBLES = [
    0.0,
    -0.0,
    1.0,
    -1.5,
    0.1,
    1e-300,
    5e-324,  # the smallest subnormal
    1.7976931348623157e308,
    math.inf,
    -math.inf,
    math.nan,
    None,
    123456789.123456789,
    1e16,
    1e-5,
]
INTS = [0, 1, -1, 127, 128, 300, -(2**63), 2**63 - 1, 2**31, -12345, 1_000_000]
STRINGS = ["UTC", "", "Europe/Berlin", "ünïcödé ✓", None, "UTC", "a" * 200, None]


def feast_form(column: pa.Array, value_type: ValueType) -> tuple[list[bytes], list[str | None]]:
    """What Feast's materialization makes of ``column``: serialized values and texts."""
    protos = python_values_to_proto_values(column.to_numpy(zero_copy_only=False), value_type)
    texts = [extract_text_and_num(proto, False)[0] for proto in protos]
    return [proto.SerializeToString() for proto in protos], texts


@pytest.mark.parametrize(
    ("column", "value_type"),
    [
        (pa.array(DOUBLES, pa.float64()), ValueType.DOUBLE),
        (pa.array([d for d in DOUBLES if d is not None], pa.float64()), ValueType.DOUBLE),
        (pa.array(INTS, pa.int64()), ValueType.INT64),
        (pa.array([*INTS[:6], None, 7], pa.int64()), ValueType.INT64),  # arrives as floats
        (pa.array([1, 2, None], pa.int32()), ValueType.INT64),
        (pa.array([3, -4, 5], pa.int16()), ValueType.INT64),
        (pa.array([2.7, -2.7, None, 1e15], pa.float64()), ValueType.INT64),  # int() truncates
        (pa.array([None, None], pa.int64()), ValueType.INT64),
        (pa.array(STRINGS, pa.string()), ValueType.STRING),
        (pa.array(STRINGS, pa.large_string()), ValueType.STRING),
        (pa.chunked_array([STRINGS[:3], STRINGS[3:]], pa.string()), ValueType.STRING),
        (pa.chunked_array([DOUBLES[:5], DOUBLES[5:]], pa.float64()), ValueType.DOUBLE),
    ],
    ids=lambda v: v.name if isinstance(v, ValueType) else str(v.type),
)
def test_columns_encode_as_feast_converts_them(
    column: pa.Array | pa.ChunkedArray, value_type: ValueType
) -> None:
    assert encode_column(column, value_type.name) == feast_form(column, value_type)


def test_random_doubles_encode_as_feast_converts_them() -> None:
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2**63, 5000, dtype=np.int64) * rng.choice([-1, 1], 5000)
    values = bits.view(np.float64)  # every exponent, subnormals, NaNs with payloads
    column = pa.array(values)
    assert encode_column(column, "DOUBLE") == feast_form(column, ValueType.DOUBLE)


@pytest.mark.parametrize(
    ("column", "value_type"),
    [
        (pa.array([1.5, 2.5], pa.float32()), "DOUBLE"),  # Feast refuses a float32 sample
        (pa.array([1, 2], pa.int64()), "DOUBLE"),
        (pa.array([1e30, None]), "INT64"),  # beyond int64: Feast's error, not a wrapped value
        (pa.array([math.inf, 1.0]), "INT64"),
        (pa.array([True, False]), "INT64"),
        (pa.array(["1", "2"]), "INT64"),
        (pa.array([1, 2]), "STRING"),
        (pa.array([1.0]), "BOOL"),
        (pa.array(["a", "b"]).dictionary_encode(), "STRING"),
    ],
    ids=str,
)
def test_other_forms_are_left_to_feast(column: pa.Array, value_type: str) -> None:
    assert encode_column(column, value_type) is None
