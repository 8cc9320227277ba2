"""Many serialized Feast ``Value`` protobufs decoded at once, with NumPy.

A cold read of an audience meets hundreds of thousands of values; parsing each with
``Value.FromString`` costs about a microsecond of Python per value, more than the online store
takes to find it. The online stores can instead hand over, per entity, the serialized values
of its features concatenated in a known order (SQLite with ``group_concat``, Redis with a Lua
script), and :func:`decode_packed` splits and decodes all of them together.

Feast writes every scalar as a ``Value`` with exactly one field set, so each serialized value
is one protobuf field: a tag byte, then its payload. The forms decoded here are those of the
scalar types a feature view holds:

=========  ====  ==================================================
field      tag   payload
=========  ====  ==================================================
string     0x12  varint byte length, UTF-8 bytes
int32      0x18  varint (negative: 10 bytes, sign-extended to 64 bits)
int64      0x20  varint (negative: 10 bytes, two's complement)
double     0x29  8 bytes, little-endian IEEE 754
float      0x35  4 bytes, little-endian IEEE 754
bool       0x38  varint
null       0x98  ``01 00`` (field 19, ``Null.NULL``): :data:`NULL_VALUE`
=========  ====  ==================================================

A value with nothing set serializes to no bytes at all and would vanish from a
concatenation, so the stores write :data:`NULL_VALUE` in its place (both read as null). Any
other form (bytes, lists, timestamps, unknown fields, a value split over several fields) marks
its entity as not decoded, and the caller reads that entity the slow way, through protobuf; so
the result is always what ``Value.FromString`` gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["NULL_VALUE", "PackedValues", "decode_packed"]

#: ``Value(null_val=NULL)`` serialized: stands for a null or absent value in a packed entity.
NULL_VALUE = b"\x98\x01\x00"

_STRING, _INT32, _INT64, _DOUBLE, _FLOAT, _BOOL, _NULL = 0x12, 0x18, 0x20, 0x29, 0x35, 0x38, 0x98

# Size of a field from its tag byte, before any varint: 0 marks a form not decoded here.
_SIZE = np.zeros(256, np.int64)
_SIZE[[_DOUBLE, _FLOAT, _NULL]] = (9, 5, 3)
_SIZE[[_STRING, _INT32, _INT64, _BOOL]] = 1
# Tags followed by a varint: the value itself, or for a string its byte length.
_VARINT = np.zeros(256, np.bool_)
_VARINT[[_STRING, _INT32, _INT64, _BOOL]] = True

_MAX_VARINT = 10  # bytes of the longest varint (a 64-bit value)
_PAD = b"\x00" * 16  # lets every varint or fixed read past the last value stay in the buffer
_SHIFTS = (7 * np.arange(_MAX_VARINT)).astype(np.uint64)

Positions = npt.NDArray[np.int64]


def _varints(
    buf: npt.NDArray[np.uint8], at: Positions, where: npt.NDArray[np.bool_] | None = None
) -> tuple[npt.NDArray[np.uint64], Positions, npt.NDArray[np.bool_]]:
    """The varints starting at ``at``: their values, their lengths in bytes, and whether valid.

    One pass per byte of the longest, so small values (one byte) cost one pass. Bits past the
    64th are dropped, as protobuf drops them. With ``where``, only those positions are read
    as varints: the others get a length of one byte and arbitrary values.
    """
    byte = buf[at]
    values = (byte & 0x7F).astype(np.uint64)
    lengths = np.ones(len(at), np.int64)
    more = byte >= 0x80  # the continuation bit: another byte follows
    if where is not None:
        more &= where
    for i in range(1, _MAX_VARINT):
        if not more.any():
            break
        byte = buf[at + i]
        values |= ((byte & 0x7F).astype(np.uint64) << _SHIFTS[i]) * more
        lengths += more
        more &= byte >= 0x80
    return values, lengths, ~more


class PackedValues:
    """The split of packed entities into fields: where each starts and ends, and its tag.

    ``starts``, ``ends`` and ``tags`` are ``(n_fields, n_entities)`` arrays into ``buf``;
    ``ok`` marks the entities whose bytes are exactly ``n_fields`` values of the decoded
    forms.
    """

    def __init__(self, packed: Sequence[bytes], n_fields: int) -> None:
        joined = b"".join(packed)
        self.joined = joined
        self.buf = np.frombuffer(joined + _PAD, np.uint8)
        sizes = np.fromiter(map(len, packed), np.int64, len(packed))
        ends = np.cumsum(sizes)
        pos = ends - sizes
        shape = (n_fields, len(packed))
        self.starts = np.empty(shape, np.int64)
        self.ends = np.empty(shape, np.int64)
        self.tags = np.empty(shape, np.uint8)
        bad = np.zeros(len(packed), np.bool_)
        limit = len(joined)
        for k in range(n_fields):
            # Every entity steps over its k-th value together: one pass per field, not per value.
            pos, bad = self._step(k, pos, bad, limit)
        bad |= pos != ends
        # A null is exactly NULL_VALUE: anything else after its tag is another form.
        nulls = self.tags == _NULL
        if nulls.any():
            at = self.starts[nulls]
            wrong = (self.buf[at + 1] != 1) | (self.buf[at + 2] != 0)
            flags = np.zeros(shape, np.bool_)
            flags[nulls] = wrong
            bad |= flags.any(axis=0)
        self.ok = ~bad

    def _step(
        self, k: int, pos: Positions, bad: npt.NDArray[np.bool_], limit: int
    ) -> tuple[Positions, npt.NDArray[np.bool_]]:
        """Record the field at each of ``pos`` as field ``k``; the positions after it."""
        tags = self.buf[pos]
        size = _SIZE[tags]
        bad = bad | (size == 0)
        varint = _VARINT[tags]
        if varint.any():
            # Read at every position, kept where a varint is: fewer steps than picking them.
            values, lengths, valid = _varints(self.buf, pos + 1, varint)
            strings = tags == _STRING
            if strings.any():
                # A string's payload follows its length; clip a corrupt length to the buffer.
                lengths += np.where(strings, np.minimum(values, limit), 0).astype(np.int64)
            size += lengths * varint
            bad |= ~valid
        self.starts[k] = pos
        self.tags[k] = tags
        end = np.minimum(pos + size, limit)
        self.ends[k] = end
        return end, bad

    def decode(self, defaults: Sequence[Any]) -> npt.NDArray[np.object_]:
        """The decoded values, ``(n_fields, n_entities)``: nulls replaced by ``defaults[k]``.

        Columns of entities not ``ok`` hold arbitrary values.
        """
        tags, starts, buf = self.tags, self.starts, self.buf
        out = np.empty(tags.shape, np.object_)
        for k, default in enumerate(defaults):
            out[k] = default
        for tag, width, dtype in ((_DOUBLE, 8, "<f8"), (_FLOAT, 4, "<f4")):
            where = tags == tag
            if where.any():
                raw = buf[(starts[where] + 1)[:, None] + np.arange(width)]
                # A float widens exactly to a double, as protobuf's Python float does.
                out[where] = raw.view(dtype).ravel().astype(np.float64)
        for tag in (_INT64, _INT32, _BOOL):
            where = tags == tag
            if where.any():
                values, _, _ = _varints(buf, starts[where] + 1)
                if tag == _INT64:
                    out[where] = values.view(np.int64)
                elif tag == _INT32:  # protobuf keeps the low 32 bits
                    out[where] = values.astype(np.uint32).view(np.int32).astype(np.int64)
                else:
                    out[where] = values != 0
        # Strings only of the entities split well: the others' bytes may be anything.
        where = (tags == _STRING) & self.ok
        if where.any():
            out[where] = self._strings(where)
        return out

    def _strings(self, where: npt.NDArray[np.bool_]) -> list[str]:
        """The strings of the fields ``where``: their bytes after the length, as UTF-8.

        An entity with invalid UTF-8 is no longer ``ok``: protobuf refuses to parse it, and
        the caller's slow read then raises protobuf's own error.
        """
        starts = self.starts[where]
        _, lengths, _ = _varints(self.buf, starts + 1)
        joined, memo = self.joined, dict[bytes, str]()
        out = []
        bounds = zip((starts + 1 + lengths).tolist(), self.ends[where].tolist(), strict=True)
        for i, (start, end) in enumerate(bounds):
            raw = joined[start:end]
            value = memo.get(raw)
            if value is None:
                try:
                    value = memo[raw] = raw.decode()
                except UnicodeDecodeError:
                    self.ok[np.nonzero(where)[1][i]] = False
                    value = ""
            out.append(value)
        return out


def decode_packed(
    packed: Sequence[bytes], defaults: Sequence[Any]
) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.bool_]]:
    """Decode entities of ``len(defaults)`` concatenated serialized values each.

    Returns the values, ``(n_fields, n_entities)``, with a null replaced by its field's
    default, and a mask of the entities decoded; the others (a form not decoded here, or not
    exactly ``n_fields`` values) must be read through protobuf.

    >>> from feast.protos.feast.types.Value_pb2 import Value
    >>> entity = Value(int64_val=-3).SerializeToString() + NULL_VALUE
    >>> entity += Value(string_val="UTC").SerializeToString()
    >>> values, ok = decode_packed([entity, b"junk"], defaults=[0, 0.5, ""])
    >>> values[:, 0].tolist(), ok.tolist()
    ([-3, 0.5, 'UTC'], [True, False])
    """
    split = PackedValues(packed, len(defaults))
    return split.decode(defaults), split.ok
