"""The bulk decoder gives exactly what protobuf gives, or leaves the entity to protobuf."""

from __future__ import annotations

import math
import random
import struct
from typing import Any

import pytest
from feast.protos.feast.types.Value_pb2 import DoubleList, Null, Value

from features.online import decode_value
from features.packed_values import NULL_VALUE, decode_packed

EDGE_VALUES = [
    Value(double_val=0.0),
    Value(double_val=-0.0),
    Value(double_val=math.nan),
    Value(double_val=math.inf),
    Value(double_val=-math.inf),
    Value(double_val=5e-324),
    Value(double_val=-1.5e308),
    Value(double_val=0.1),
    Value(float_val=0.1),
    Value(float_val=math.nan),
    Value(float_val=-math.inf),
    Value(float_val=3.4e38),
    Value(int64_val=0),
    Value(int64_val=127),
    Value(int64_val=128),
    Value(int64_val=999),
    Value(int64_val=-1),
    Value(int64_val=2**63 - 1),
    Value(int64_val=-(2**63)),
    Value(int32_val=0),
    Value(int32_val=-1),
    Value(int32_val=2**31 - 1),
    Value(int32_val=-(2**31)),
    Value(bool_val=True),
    Value(bool_val=False),
    Value(string_val=""),
    Value(string_val="UTC"),
    Value(string_val="America/Argentina/ComodRivadavia"),
    Value(string_val="é😀 zone"),
    Value(string_val="a\x00b"),
    Value(string_val="x" * 300),  # a two-byte length
    Value(null_val=Null.NULL),
    Value(),  # nothing set: what Feast writes for a missing value
]


def _random_value(rng: random.Random) -> Value:
    kind = rng.randrange(7)
    if kind == 0:
        return Value(double_val=struct.unpack("<d", rng.randbytes(8))[0])  # any bit pattern
    if kind == 1:
        return Value(float_val=struct.unpack("<f", rng.randbytes(4))[0])
    if kind == 2:
        return Value(int64_val=rng.randrange(-(2**63), 2**63))
    if kind == 3:
        return Value(int32_val=rng.randrange(-(2**31), 2**31))
    if kind == 4:
        return Value(int64_val=rng.randrange(-3, 300))
    if kind == 5:
        return Value(
            string_val="".join(chr(rng.randrange(1, 0x2FFF)) for _ in range(rng.randrange(9)))
        )
    return rng.choice(EDGE_VALUES)


def _pack(values: list[Value]) -> bytes:
    """As the stores pack an entity: an empty serialization stands as ``NULL_VALUE``."""
    return b"".join(value.SerializeToString() or NULL_VALUE for value in values)


def _same(got: Any, expected: Any) -> bool:
    """Equal, of the same type, and for floats to the bit (NaN payloads and -0.0 included)."""
    if type(got) is not type(expected):
        return False
    if isinstance(expected, float):
        return struct.pack("<d", got) == struct.pack("<d", expected)
    return bool(got == expected)


def _check_against_protobuf(entities: list[list[Value]]) -> None:
    n_fields = len(entities[0])
    defaults = [object() for _ in range(n_fields)]  # told apart from any decoded value
    values, ok = decode_packed([_pack(entity) for entity in entities], defaults)
    assert values.shape == (n_fields, len(entities))
    assert ok.all()
    for j, entity in enumerate(entities):
        for k, value in enumerate(entity):
            expected = decode_value(Value, value.SerializeToString())
            got = values[k, j]
            assert got is defaults[k] if expected is None else _same(got, expected), (value, got)


def test_every_edge_value_decodes_as_protobuf_decodes_it() -> None:
    _check_against_protobuf([[value] for value in EDGE_VALUES])
    _check_against_protobuf([EDGE_VALUES, EDGE_VALUES[::-1]])


@pytest.mark.parametrize("seed", range(5))
def test_random_entities_decode_as_protobuf_decodes_them(seed: int) -> None:
    rng = random.Random(seed)
    n_fields = rng.randrange(1, 40)
    entities = [[_random_value(rng) for _ in range(n_fields)] for _ in range(rng.randrange(1, 300))]
    _check_against_protobuf(entities)


def test_nulls_and_missing_values_get_the_defaults_of_their_fields() -> None:
    packed = [_pack([Value(), Value(int64_val=4)]), _pack([Value(double_val=2.5), Value()])]
    packed.append(NULL_VALUE * 2)  # a key the store does not hold: every field absent
    values, ok = decode_packed(packed, defaults=[-1.0, 999])
    assert values.tolist() == [[-1.0, 2.5, -1.0], [4, 999, 999]]
    assert ok.tolist() == [True, True, True]


@pytest.mark.parametrize(
    "blob",
    [
        Value(bytes_val=b"\x00").SerializeToString(),
        Value(unix_timestamp_val=3).SerializeToString(),
        Value(double_list_val=DoubleList(val=[1.0])).SerializeToString(),
        Value(int64_val=1).SerializeToString() * 2,  # one field twice: protobuf keeps the last
        Value(double_val=1.0).SerializeToString()[:-1],  # cut short
        Value(int64_val=-1).SerializeToString()[:-1],  # a varint that never ends
        b"\x12\x02\xff\xfe",  # a string that is not UTF-8: protobuf refuses it
        b"\x98\x01\x01",  # null_val with a value Null does not define
        b"\x18" + b"\xff" * 11,  # a varint longer than ten bytes
        b"",  # nothing: a value missing from the packing
        b"\xff",
    ],
)
def test_forms_not_decoded_leave_their_entity_to_protobuf(blob: bytes) -> None:
    good = Value(string_val="UTC").SerializeToString()
    values, ok = decode_packed([good + blob, good + good, blob + good], defaults=["", ""])
    assert ok.tolist() == [False, True, False]
    assert values[:, 1].tolist() == ["UTC", "UTC"]


def test_no_entities_and_no_fields() -> None:
    values, ok = decode_packed([], defaults=[0, 0.0])
    assert values.shape == (2, 0)
    assert ok.shape == (0,)
    values, ok = decode_packed([b"", b"\x20\x01"], defaults=[])
    assert ok.tolist() == [True, False]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


@pytest.mark.parametrize(
    "blob",
    [
        b"\x18" + _varint(2**32 + 5),  # int32 wider than 32 bits: protobuf keeps the low 32
        b"\x18" + _varint(2**63 + 2**31),
        b"\x38\x02",  # bool from a varint other than 0 or 1
        b"\x38" + _varint(2**40),
        b"\x20" + b"\x80" * 9 + b"\x7f",  # ten-byte varint: bits past the 64th dropped
    ],
)
def test_non_canonical_varints_decode_as_protobuf_decodes_them(blob: bytes) -> None:
    values, ok = decode_packed([blob], defaults=[None])
    assert ok.tolist() == [True]
    assert _same(values[0, 0], decode_value(Value, blob))
