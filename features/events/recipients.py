"""The recipient directory: what the sender knows about each recipient besides events.

Today that is the IANA time zone (needed for local send hours and local-time features) and
when the recipient joined (tenure). Stored as one Parquet file, replaced atomically.
"""

from __future__ import annotations

from pathlib import Path
from zoneinfo import available_timezones

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from inboxlab.errors import InvalidInputError

__all__ = ["RECIPIENT_SCHEMA", "read_recipients", "write_recipients"]

RECIPIENT_SCHEMA = pa.schema(
    [
        pa.field("recipient_id", pa.string(), nullable=False),
        pa.field("timezone", pa.string(), nullable=False),
        pa.field("created_at", pa.timestamp("us", tz="UTC")),
    ]
)


def write_recipients(path: Path, table: pa.Table) -> None:
    """Merge ``table`` into the directory at ``path`` (new rows win), atomically."""
    table = table.select(RECIPIENT_SCHEMA.names).cast(RECIPIENT_SCHEMA)
    zones = set(pc.unique(table.column("timezone")).to_pylist())
    unknown = sorted(zones - available_timezones())
    if unknown:
        raise InvalidInputError(
            f"unknown time zone(s) {unknown[:5]}; use IANA names such as Europe/Berlin",
            field="timezone",
        )
    if path.exists():
        old = read_recipients(path)
        keep = pc.invert(pc.is_in(old.column("recipient_id"), table.column("recipient_id")))
        table = pa.concat_tables([old.filter(keep), table])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(path)


def read_recipients(path: Path) -> pa.Table:
    """The directory, or an empty table when none has been written."""
    if not path.exists():
        return RECIPIENT_SCHEMA.empty_table()
    return pq.read_table(path, schema=RECIPIENT_SCHEMA)
