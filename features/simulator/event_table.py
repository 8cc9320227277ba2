"""Turn simulated event columns into an Arrow table with exactly ``EVENT_SCHEMA``.

Strings are never built one Python object per event: ids are written straight into Arrow
buffers and repeated labels (recipient, kind, campaign, variant) are ``take``-n from small
dictionaries, which keeps a 10-million-event history to seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from features.events.schema import EVENT_SCHEMA
from features.simulator._arrays import BoolArray, IntArray
from features.simulator.world import KINDS, EventParts

__all__ = ["build_event_table", "sequential_ids"]

# Arrow string arrays address their bytes with int32 offsets, so ids are built in chunks; a
# million rows also bounds the digit temporaries to ~80 MB.
_CHUNK_ROWS = 1_000_000


def sequential_ids(prefix: str, first: int, count: int, digits: int = 10) -> pa.ChunkedArray:
    """``count`` strings ``prefix`` + zero-padded ``first``, ``first + 1``, ...

    Examples
    --------
    >>> sequential_ids("e-", 8, 3, digits=3).to_pylist()
    ['e-008', 'e-009', 'e-010']
    """
    head = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    width = head.shape[0] + digits
    powers = 10 ** np.arange(digits - 1, -1, -1, dtype=np.int64)
    chunks = []
    for lo in range(first, first + count, _CHUNK_ROWS):
        numbers = np.arange(lo, min(lo + _CHUNK_ROWS, first + count), dtype=np.int64)
        body = (numbers[:, None] // powers) % 10 + ord("0")
        rows = np.empty((numbers.shape[0], width), dtype=np.uint8)
        rows[:, : head.shape[0]] = head
        rows[:, head.shape[0] :] = body
        offsets = np.arange(numbers.shape[0] + 1, dtype=np.int32) * width
        chunks.append(
            pa.StringArray.from_buffers(
                numbers.shape[0], pa.py_buffer(offsets), pa.py_buffer(rows.tobytes())
            )
        )
    return pa.chunked_array(chunks, type=pa.string())


def _labels(values: Sequence[str], codes: npt.NDArray[np.integer[Any]]) -> pa.Array:
    # Negative codes mean null (e.g. no variant).
    return pa.array(list(values), type=pa.string()).take(pa.array(codes, mask=codes < 0))


def build_event_table(
    parts: EventParts,
    recipient_ids: Sequence[str],
    campaign_ids: Sequence[str],
    variant_ids: Sequence[str],
    *,
    id_prefix: str,
    terminal_at_us: IntArray,
    end_us: int | None = None,
    first_id: int = 0,
) -> pa.Table:
    """Concatenate ``parts``, drop what cannot be observed, sort by time and label.

    Dropped: anything a recipient would do after their unsubscribe, complaint or hard bounce
    (late opens of older emails included: the list no longer tracks them), and events at or
    after ``end_us`` (the log is a snapshot taken then).
    """
    if len(parts) == 0:
        return EVENT_SCHEMA.empty_table()
    recipient = np.concatenate(parts.recipient)
    time = np.concatenate(parts.time)
    keep: BoolArray = time <= terminal_at_us[recipient]
    if end_us is not None:
        keep &= time < end_us
    # A stable sort keeps each send's events in generation order when instants tie.
    order = np.flatnonzero(keep)
    order = order[np.argsort(time[order], kind="stable")]
    n = order.shape[0]
    recipient = recipient[order]
    time = time[order]
    # Codes keep their compact dtypes: Arrow's ``take`` accepts any integer indices.
    kind = np.concatenate(parts.kind)[order]
    campaign = np.concatenate(parts.campaign)[order]
    variant = np.concatenate(parts.variant)[order]
    value = np.concatenate(parts.value)[order]
    flag = np.concatenate(parts.machine_flag)[order]
    columns = [
        sequential_ids(id_prefix, first_id, n),
        pa.array(list(recipient_ids), type=pa.string()).take(pa.array(recipient)),
        _labels([str(k) for k in KINDS], kind),
        pa.array(time, type=pa.timestamp("us", tz="UTC")),
        _labels(campaign_ids, campaign),
        _labels(variant_ids, variant),
        pa.nulls(n, type=pa.string()),
        pa.array(value, mask=np.isnan(value), type=pa.float64()),
        pa.array(flag == 1, mask=flag < 0, type=pa.bool_()),
    ]
    return pa.Table.from_arrays(columns, schema=EVENT_SCHEMA)
