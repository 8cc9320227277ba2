"""As-of matching: both methods agree with a slow obvious loop; Parquet reads keep rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.asof import NULL_TIME, DayFiles, KeyEncoder, as_of, match_rows


def slow_match(
    send_code: np.ndarray, send_ns: np.ndarray, row_code: np.ndarray, row_ns: np.ndarray, ttl: int
) -> list[int | None]:
    """Time of the newest row of the send's code strictly before it, if within ``ttl``."""
    out: list[int | None] = []
    for code, at in zip(send_code.tolist(), send_ns.tolist(), strict=True):
        times = [
            t
            for c, t in zip(row_code.tolist(), row_ns.tolist(), strict=True)
            if c == code and c >= 0 and t != NULL_TIME and t < at
        ]
        best = max(times) if times and at != NULL_TIME and code >= 0 else None
        out.append(best if best is not None and best >= at - ttl else None)
    return out


@pytest.mark.parametrize("use_grid", [True, False])
@pytest.mark.parametrize("seed", range(6))
def test_both_methods_match_a_slow_loop(use_grid: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    size, n_rows, n_sends = 7, 60, 200
    step = int(rng.integers(1, 4))  # few or many distinct times
    row_code = rng.integers(-1, size, n_rows)
    row_ns = rng.integers(0, 40 // step, n_rows) * step * 10
    # Distinct (code, time) pairs, as in the feature tables: ties would have no single answer.
    _, first = np.unique(row_code * 10_000 + row_ns, return_index=True)
    row_code, row_ns = row_code[first], row_ns[first]
    row_ns[:2] = NULL_TIME
    row_id = rng.permutation(len(row_code)) + 100
    send_code = rng.integers(-1, size, n_sends)
    send_ns = rng.integers(-20, 450, n_sends)
    send_ns[::9] = row_ns[rng.integers(2, len(row_ns), len(send_ns[::9]))]  # exactly at a row
    send_ns[5] = NULL_TIME
    ttl = int(rng.choice([15, 60, 1_000]))
    got = match_rows(
        send_code, send_ns, row_code, row_ns, row_id, ttl_ns=ttl, size=size, use_grid=use_grid
    )
    expected = slow_match(send_code, send_ns, row_code, row_ns, ttl)
    assert [None if t == NULL_TIME else t for t in got.times.tolist()] == expected
    for i, t in enumerate(expected):
        if t is None:
            assert got.rows[i] == -1
        else:
            (where,) = np.flatnonzero((row_code == send_code[i]) & (row_ns == t))
            assert got.rows[i] == row_id[where]


def test_no_rows_or_no_usable_sends_match_nothing() -> None:
    empty = np.empty(0, dtype=np.int64)
    got = match_rows(np.array([0, 1]), np.array([5, 6]), empty, empty, empty, ttl_ns=9, size=2)
    assert got.rows.tolist() == [-1, -1]
    assert got.times.tolist() == [NULL_TIME, NULL_TIME]


def test_two_column_keys_are_encoded_as_pairs() -> None:
    enc = KeyEncoder([pa.array(["a", "a", "b", None]), pa.array(["x", "y", "x", "x"])])
    assert enc.size == 3
    codes = enc.encode([pa.array(["a", "b", "b", "a", None]), pa.array(["y", "x", "y", "x", "x"])])
    assert codes.tolist() == [enc.codes[1], enc.codes[2], -1, enc.codes[0], -1]


def _write(path: Path, ids: list[str], times: list[int], values: list[float], groups: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table(
        {
            "recipient_id": ids,
            "event_timestamp": pa.array(times, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "x": values,
            "n": pa.array([None if v < 0.1 else int(v * 100) for v in values], pa.int64()),
        }
    )
    pq.write_table(table, path, row_group_size=max(1, len(ids) // groups))


def test_day_files_gather_the_matched_rows_across_row_groups(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    day = 86_400_000_000
    ids = [f"r{i}" for i in range(50)]
    for d in range(4):
        order = rng.permutation(50)[:40]
        _write(
            tmp_path / f"date={d}" / "part-0.parquet",
            [ids[i] for i in order],
            [d * day] * 40,
            (rng.random(40)).tolist(),
            groups=d + 1,
        )
    files = sorted(tmp_path.glob("date=*/*.parquet"))
    full = pa.concat_tables(pq.read_table(f) for f in files)
    send_ids = pa.chunked_array([pa.array([f"r{i}" for i in rng.integers(0, 52, 300)])])
    sent_ns = (rng.integers(0, 5 * day, 300) * 1000).astype(np.int64)  # µs to ns
    sent_ns[:20] = np.arange(20) % 4 * day * 1000  # exactly at a snapshot
    days = DayFiles(files, ["recipient_id"])
    match = as_of(days, [send_ids], sent_ns, ttl_ns=2 * day * 1000)
    got = days.gather(match.rows, ["x", "n"])
    assert days.total == full.num_rows
    assert 100 < int((match.rows >= 0).sum()) < 300
    for i in range(300):
        row = int(match.rows[i])
        if row < 0:
            assert not got["x"][i].is_valid
            continue
        assert got["x"][i].as_py() == full.column("x")[row].as_py()
        assert got["n"][i].as_py() == full.column("n")[row].as_py()
        assert full.column("recipient_id")[row].as_py() == send_ids[i].as_py()
        stamp = full.column("event_timestamp")[row].value * 1000
        assert stamp < sent_ns[i] and stamp == match.times[i]
