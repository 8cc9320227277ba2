"""Columns of feature values serialized as Feast ``Value`` protobufs in bulk, with NumPy.

Feast's materialization builds one ``Value`` message per feature value and serializes it, about
a microsecond of Python per value before the online store writes anything. The serialized
form of a scalar is one protobuf field (see :mod:`features.packed_values`), so a whole column
can be encoded at once:

* ``DOUBLE``: the tag ``0x29`` and the 8 little-endian bytes of each value, built as one array;
* ``INT64`` and ``STRING``: each *distinct* value is serialized once by protobuf itself and
  shared by every row that holds it (counts, hours and time zones repeat across recipients).

Each column is taken exactly as Feast takes it (``to_numpy(zero_copy_only=False)``), so the
values are those Feast would write: a null or NaN is an empty ``Value`` (no bytes, no text),
an integer column with nulls arrives as floats and is truncated by ``int``. Beside each value
comes the text Feast's SQLite store writes in ``value_text`` (``str`` of the value, ``None``
for a null). A column of any other form returns ``None``, and the caller lets Feast convert it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from features.value_proto import value_message

__all__ = ["EncodedColumn", "encode_column"]

#: The serialized values of a column and their ``value_text``, one of each per row.
EncodedColumn = tuple[list[bytes], list[str | None]]

_DOUBLE_TAG = 0x29  # field 5 (double_val), wire type 1 (64-bit)
_INT64_MAX = 2.0**63  # floats at or beyond it do not fit an int64_val


def encode_column(column: pa.Array | pa.ChunkedArray, value_type: str) -> EncodedColumn | None:
    """Serialize ``column`` as Feast would for a feature of ``value_type``.

    Parameters
    ----------
    column
        The feature's column of the table being materialized.
    value_type
        The name of the feature's Feast ``ValueType``: ``"DOUBLE"``, ``"INT64"`` or
        ``"STRING"``.

    Returns
    -------
    The serialized values and their texts, or ``None`` for a type or form not encoded here.

    >>> values, texts = encode_column(pa.array([1.5, None]), "DOUBLE")
    >>> values[0] == value_message()(double_val=1.5).SerializeToString(), values[1], texts
    (True, b'', ['1.5', None])
    """
    if value_type == "STRING":
        return _strings(column)
    values = column.to_numpy(zero_copy_only=False)
    if value_type == "DOUBLE" and values.dtype == np.float64:
        return _doubles(values)
    if value_type == "INT64":
        return _int64s(values)
    return None


def _doubles(values: np.ndarray[Any, Any]) -> EncodedColumn:
    null = np.isnan(values)
    n = len(values)
    fields = np.empty((n, 9), np.uint8)
    fields[:, 0] = _DOUBLE_TAG
    fields[:, 1:] = values.astype("<f8").view(np.uint8).reshape(n, 8)
    raw = fields.tobytes()
    encoded = [raw[at : at + 9] for at in range(0, 9 * n, 9)]
    texts: list[str | None] = list(map(str, values.tolist()))
    for i in np.flatnonzero(null).tolist():
        encoded[i], texts[i] = b"", None
    return encoded, texts


def _int64s(values: np.ndarray[Any, Any]) -> EncodedColumn | None:
    if values.dtype.kind == "f":  # an integer column with nulls: NaN marks them
        null = np.isnan(values)
        kept = values[~null]
        if not np.isfinite(kept).all() or (np.abs(kept) >= _INT64_MAX).any():
            return None  # Feast's int() would fail or wrap: let it say so
        ints = np.where(null, 0, values).astype(np.int64)  # truncated toward zero, as int()
    elif values.dtype.kind == "i":
        null = None
        ints = values.astype(np.int64)
    else:
        return None
    distinct, inverse = np.unique(ints, return_inverse=True)
    value = value_message()
    forms = [value(int64_val=v).SerializeToString() for v in distinct.tolist()]
    words: list[str | None] = list(map(str, distinct.tolist()))
    at = inverse.ravel().tolist()
    encoded = list(map(forms.__getitem__, at))
    texts = list(map(words.__getitem__, at))
    if null is not None:
        for i in np.flatnonzero(null).tolist():
            encoded[i], texts[i] = b"", None
    return encoded, texts


def _strings(column: pa.Array | pa.ChunkedArray) -> EncodedColumn | None:
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return None
    coded = column.dictionary_encode()
    if isinstance(coded, pa.ChunkedArray):
        coded = coded.combine_chunks() if coded.num_chunks != 1 else coded.chunk(0)
    value = value_message()
    words = coded.dictionary.to_pylist()
    forms: list[bytes] = [value(string_val=w).SerializeToString() for w in words] + [b""]
    texts: list[str | None] = [*words, None]
    # A null's index points past the dictionary: the empty value and no text.
    at = coded.indices.fill_null(len(words)).to_numpy(zero_copy_only=False).tolist()
    return list(map(forms.__getitem__, at)), list(map(texts.__getitem__, at))
