"""The decision store: decisions, outcomes, bandit arm statistics, erasure and its audit log.

One class, :class:`DecisionStore`, over SQLAlchemy Core. The same code runs on SQLite (WAL) and
on PostgreSQL; every write is one transaction, so an acknowledged call is durable. (The API
queues decisions for group commit, :mod:`serving.store.writer`, and documents that window;
outcomes are written synchronously.) On SQLite, the two statements of the render path — the
recipient state read and the decision insert — run on the DB-API connection with the text
encodings SQLAlchemy uses, since its per-statement overhead exceeded the statements' cost.

Arm statistics are plain counts per (experiment, variant, segment, day of the decision):

* a *trial* is a stored decision with ``action == "send"``, an experiment and a variant;
* a *success* is the first outcome of the experiment's reward kind for that decision, from
  the same recipient, within the attribution window (machine opens never count).

They are updated incrementally and can always be rebuilt from the decision and outcome tables
(:meth:`DecisionStore.recompute_arm_statistics`).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import (
    BindParameter,
    Engine,
    String,
    and_,
    bindparam,
    cast,
    delete,
    func,
    literal,
    null,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from inboxlab.errors import ConflictError
from inboxlab.records import Action, DecisionRecord, EventKind, EventRecord
from serving.eligibility import RecipientState
from serving.store.engine import (
    ThreadConnections,
    create_store_engine,
    json_compact,
    sqlite_text_time,
)
from serving.store.feature_codec import (
    Layout,
    add_layouts,
    add_layouts_sqlite,
    decode_features,
    distinct_layouts,
    feature_values,
    stored_layouts,
)
from serving.store.schema import arm_stats, audit_log, decisions, metadata, outcomes
from serving.store.stats import (
    DEFAULT_REWARD,
    ArmStat,
    RewardRule,
    StatKey,
    add_counts,
    counts_as_trial,
    insert_for,
    rewards,
    stat_key,
    utc,
)

__all__ = [
    "ArmStat",
    "AuditEntry",
    "DecisionStore",
    "ErasureReport",
    "OutcomeSummary",
    "RewardRule",
]

_ENGAGEMENT = (EventKind.OPEN.value, EventKind.CLICK.value, EventKind.CONVERT.value)
_DECISION_BY_ID = select(decisions).where(decisions.c.decision_id == bindparam("decision_id"))
# Built once: SQLAlchemy then reuses their compiled form (building them per call cost more
# than running them).
_IDS: BindParameter[str] = bindparam("ids", expanding=True)
_CONSENT_KINDS = ["unsubscribe", "complaint", "bounce", "deliver"]
# One statement for the whole recipient state, tagged by part: "c" latest consent event per
# kind, "s" recent sends decided here, "o" recent sends made elsewhere and engagements. Every
# part reads by the recipient_id index.
#: The consent part of :data:`_RECIPIENT_STATE`: the latest outcome of each consent kind.
_CONSENT_STATE = (
    select(
        literal("c").label("part"),
        outcomes.c.recipient_id,
        outcomes.c.kind,
        func.max(outcomes.c.occurred_at).label("at"),
        cast(null(), String).label("decision_id"),
    )
    .where(outcomes.c.recipient_id.in_(_IDS), outcomes.c.kind.in_(_CONSENT_KINDS))
    .group_by(outcomes.c.recipient_id, outcomes.c.kind)
)
_RECIPIENT_STATE = union_all(
    _CONSENT_STATE,
    select(
        literal("s"),
        decisions.c.recipient_id,
        cast(null(), String),
        func.coalesce(decisions.c.send_at, decisions.c.decided_at),
        decisions.c.decision_id,
    ).where(
        decisions.c.recipient_id.in_(_IDS),
        decisions.c.action == Action.SEND.value,
        decisions.c.decided_at >= bindparam("since"),
    ),
    select(
        literal("o"),
        outcomes.c.recipient_id,
        outcomes.c.kind,
        outcomes.c.occurred_at,
        outcomes.c.decision_id,
    ).where(
        outcomes.c.recipient_id.in_(_IDS),
        outcomes.c.occurred_at >= bindparam("since"),
        or_(outcomes.c.kind == EventKind.SEND.value, outcomes.c.dedup_kind.in_(_ENGAGEMENT)),
    ),
)


#: Recipients per query (three placeholders each; SQLite allows 32,766 in one statement).
_SQLITE_CHUNK = 5_000


_DECISION_COLUMNS = tuple(c.name for c in decisions.columns)
_SQLITE_INSERT_DECISION = (
    f"INSERT INTO decisions ({', '.join(_DECISION_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(_DECISION_COLUMNS))})"
)
_SQLITE_ADD_TRIALS = (
    "INSERT INTO arm_stats (experiment_id, variant_id, segment, day, successes, trials) "
    "VALUES (?, ?, ?, ?, 0, ?) ON CONFLICT (experiment_id, variant_id, segment, day) "
    "DO UPDATE SET trials = arm_stats.trials + excluded.trials"
)


#: The decision table's columns in the order :func:`_sqlite_decision_row` fills them (the
#: table's order; a test holds them equal).
_SQLITE_ROW_ORDER = (
    "decision_id",
    "recipient_id",
    "campaign_id",
    "experiment_id",
    "decided_at",
    "action",
    "reasons",
    "variant_id",
    "variant_propensity",
    "send_at",
    "send_time_propensity",
    "scores",
    "model_versions",
    "features",
    "segment",
    "policy",
)


def _sqlite_decision_row(
    record: DecisionRecord, features: Mapping[str, Any] | None
) -> tuple[tuple[Any, ...], Layout | None]:
    """:func:`_decision_row` straight to the values SQLAlchemy's SQLite types store (JSON
    text, naive UTC time text), in the table's column order. The render path's writer thread
    holds the GIL while it builds rows, so every microsecond here is taken from the event
    loop under load."""
    stored, layout = feature_values(features or {})
    send_at = record.send_at
    row = (
        record.decision_id,
        record.recipient_id,
        record.campaign_id,
        record.experiment_id,
        sqlite_text_time(record.decided_at),
        record.action.value,
        json_compact(list(record.reasons)),
        record.variant_id,
        record.variant_propensity,
        None if send_at is None else sqlite_text_time(send_at),
        record.send_time_propensity,
        json_compact(record.scores),
        json_compact(record.model_versions),
        json_compact(stored),
        record.segment,
        record.policy,
    )
    return row, layout


def _trial_key(record: DecisionRecord) -> StatKey | None:
    """The arm statistics a decision adds a trial to (:func:`stat_key`), or None."""
    fields = {
        "action": record.action.value,
        "experiment_id": record.experiment_id,
        "variant_id": record.variant_id,
        "segment": record.segment,
        "decided_at": record.decided_at,
    }
    return stat_key(fields) if counts_as_trial(fields) else None


def _decision_row(
    record: DecisionRecord, features: Mapping[str, Any] | None
) -> tuple[dict[str, Any], Layout | None]:
    """A decision's row for the Core layer, and the feature layout its features name."""
    stored, layout = feature_values(features or {})
    row = {
        **record.model_dump(mode="json", exclude={"decided_at", "send_at", "reasons"}),
        "decided_at": record.decided_at,
        "send_at": record.send_at,
        "reasons": list(record.reasons),
        "features": stored,
    }
    return row, layout


def core_insert_decisions(
    engine: Engine,
    rows: list[dict[str, Any]],
    trials: Counter[StatKey],
    layouts: Iterable[Layout | None] = (),
) -> None:
    """Decision rows, the feature layouts they name and their arms' trial counts in one
    transaction through the Core layer (any database). Raises
    :class:`~inboxlab.errors.ConflictError`, with nothing written, when a decision id is
    already stored."""
    try:
        with engine.begin() as conn:
            add_layouts(conn, layouts)
            conn.execute(decisions.insert(), rows)
            for key, n in sorted(trials.items()):
                add_counts(conn, key, trials=n)
    except IntegrityError as exc:
        raise ConflictError("a decision_id of the batch is already stored") from exc


def sqlite_insert_decisions(
    raw: Any,
    rows: list[tuple[Any, ...]],
    trials: Counter[StatKey],
    layouts: Iterable[Layout | None] = (),
) -> None:
    """Decision rows (in the table's column order, SQLite encodings), the feature layouts
    they name and their arms' trial counts, in one transaction on the DB-API connection
    ``raw`` (pooled or autocommit).

    Raises :class:`~inboxlab.errors.ConflictError`, with nothing written, when a decision
    id is already stored.
    """
    counts = [(*key[:3], key[3].isoformat(), n) for key, n in sorted(trials.items())]
    cursor = raw.cursor()
    try:
        cursor.execute("BEGIN")  # explicit: an autocommit connection would not open one
        add_layouts_sqlite(cursor, layouts)
        cursor.executemany(_SQLITE_INSERT_DECISION, rows)
        cursor.executemany(_SQLITE_ADD_TRIALS, counts)
        raw.commit()
    except sqlite3.IntegrityError as exc:
        raw.rollback()
        raise ConflictError("a decision_id of the batch is already stored") from exc
    except BaseException:
        raw.rollback()
        raise
    finally:
        cursor.close()


@lru_cache(maxsize=16)
def _sqlite_consent_sql(n: int) -> str:
    """:data:`_CONSENT_STATE` for ``n`` recipients, as SQLite text with ``?`` placeholders."""
    ids = ",".join("?" * n)
    consent = ",".join(f"'{k}'" for k in _CONSENT_KINDS)
    return (
        f"SELECT 'c', recipient_id, kind, max(occurred_at), NULL FROM outcomes "
        f"WHERE recipient_id IN ({ids}) AND kind IN ({consent}) GROUP BY recipient_id, kind"
    )


@lru_cache(maxsize=16)
def _sqlite_recipient_sql(n: int) -> str:
    """:data:`_RECIPIENT_STATE` for ``n`` recipients, as SQLite text with ``?`` placeholders."""
    ids = ",".join("?" * n)
    engagement = ",".join(f"'{k}'" for k in _ENGAGEMENT)
    return (
        f"{_sqlite_consent_sql(n)} "
        f"UNION ALL SELECT 's', recipient_id, NULL, coalesce(send_at, decided_at), decision_id "
        f"FROM decisions WHERE recipient_id IN ({ids}) AND action = '{Action.SEND.value}' "
        f"AND decided_at >= ? "
        f"UNION ALL SELECT 'o', recipient_id, kind, occurred_at, decision_id FROM outcomes "
        f"WHERE recipient_id IN ({ids}) AND occurred_at >= ? "
        f"AND (kind = '{EventKind.SEND.value}' OR dedup_kind IN ({engagement}))"
    )


@cache
def _insert_outcome(dialect: str) -> Any:
    # RETURNING, not rowcount: drivers disagree on rowcount when nothing is inserted, while an
    # empty RETURNING is unambiguous on both databases. Built once, executed with parameters.
    return insert_for(dialect, outcomes).on_conflict_do_nothing().returning(outcomes.c.outcome_id)


@dataclass(frozen=True, slots=True)
class OutcomeSummary:
    """What one call to :meth:`DecisionStore.record_outcomes` did."""

    stored: int
    duplicates: int
    counted: int


@dataclass(frozen=True, slots=True)
class ErasureReport:
    """How much of one recipient was erased, and the audit row that records it."""

    recipient_id: str
    decisions: int
    outcomes: int
    audit_id: int


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audited administrative action."""

    audit_id: int
    occurred_at: datetime
    actor: str
    action: str
    subject: str
    details: dict[str, Any]


class DecisionStore:
    """Decisions, outcomes and bandit statistics in one SQL database.

    Parameters
    ----------
    url : str
        SQLAlchemy URL, e.g. ``sqlite:///data/decisions.db`` or
        ``postgresql+psycopg://user@host/db``.
    schema : str, optional
        PostgreSQL schema holding the tables (created by :meth:`create_schema`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = tempfile.mkdtemp()
    >>> store = DecisionStore(f"sqlite:///{folder}/decisions.db")
    >>> store.create_schema()
    >>> store.ping()
    True
    >>> store.close()
    """

    def __init__(self, url: str, *, schema: str | None = None) -> None:
        self.url = url
        self.schema = schema
        self.engine: Engine = create_store_engine(url, schema=schema)
        self._connections = ThreadConnections(url)
        # Feature layouts this store has committed (never deleted, but by drop_schema): a
        # group commit need not offer them again, which cost it a statement each time.
        self._stored_layouts: set[str] = set()

    @property
    def interruptible(self) -> bool:
        """Whether :meth:`recipient_states` stops at a deadline set with
        :func:`inboxlab.sqlite_deadline.statement_deadline`: on a SQLite file."""
        return self._connections.interruptible

    def create_schema(self) -> None:
        """Create the schema (if named) and every missing table."""
        with self.engine.begin() as conn:
            if self.schema is not None:
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
            metadata.create_all(conn)

    def drop_schema(self) -> None:
        """Drop every table, and the schema when one is named."""
        self._stored_layouts.clear()
        with self.engine.begin() as conn:
            metadata.drop_all(conn)
            if self.schema is not None:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))

    def close(self) -> None:
        """Release pooled connections and the render path's read connections."""
        self._connections.close()
        self.engine.dispose()

    @classmethod
    @contextmanager
    def opened(cls, url: str) -> Iterator[DecisionStore]:
        """The store at ``url`` with its schema created, closed on exit (for commands)."""
        store = cls(url)
        try:
            store.create_schema()
            yield store
        finally:
            store.close()

    def ping(self) -> bool:
        """Whether the store answers a trivial query."""
        try:
            with self.engine.connect() as conn:
                conn.execute(select(func.count()).select_from(arm_stats).limit(1))
        except SQLAlchemyError:
            return False
        return True

    # -- decisions ---------------------------------------------------------------------------

    def record_decision(
        self, record: DecisionRecord, *, features: Mapping[str, Any] | None = None
    ) -> None:
        """Store a decision; a sent bandit decision adds one trial to its arm."""
        row, layout = _decision_row(record, features)
        try:
            with self.engine.begin() as conn:
                add_layouts(conn, [layout])
                conn.execute(decisions.insert(), row)
                if counts_as_trial(row):
                    add_counts(conn, stat_key(row), trials=1)
        except IntegrityError as exc:
            raise ConflictError(f"decision_id {record.decision_id!r} is already stored") from exc

    def record_decisions(
        self, records: Iterable[tuple[DecisionRecord, Mapping[str, Any] | None]]
    ) -> int:
        """Store many decisions (with their features) in one transaction; returns the count.

        One multi-row insert and one counter update per arm and day, instead of a transaction
        per decision: the batch endpoint's write cost per decision drops several-fold.
        """
        records = list(records)
        if not records:
            return 0
        if self.engine.dialect.name == "sqlite":
            self._insert_sqlite(records)
            return len(records)
        made = [_decision_row(record, features) for record, features in records]
        rows = [row for row, _ in made]
        layouts = self._new_layouts(layout for _, layout in made)
        trials = Counter(stat_key(row) for row in rows if counts_as_trial(row))
        core_insert_decisions(self.engine, rows, trials, layouts)
        self._stored_layouts.update(x.layout_id for x in layouts)
        return len(rows)

    def _new_layouts(self, layouts: Iterable[Layout | None]) -> tuple[Layout, ...]:
        """The distinct ``layouts`` not known to be stored; record them once committed."""
        return tuple(
            x for x in distinct_layouts(layouts) if x.layout_id not in self._stored_layouts
        )

    def _insert_sqlite(
        self, records: list[tuple[DecisionRecord, Mapping[str, Any] | None]]
    ) -> None:
        """:meth:`record_decisions` on the DB-API connection, stored as SQLAlchemy stores it.

        Timestamps as SQLAlchemy's SQLite text, JSON columns as JSON text: the rows
        read back through the Core layer exactly as if it had written them, for a fraction
        of its per-row cost.
        """
        made = [_sqlite_decision_row(record, features) for record, features in records]
        rows = [row for row, _ in made]
        layouts = self._new_layouts(layout for _, layout in made)
        keys = (_trial_key(record) for record, _ in records)
        trials = Counter(key for key in keys if key is not None)
        with self._connections.connection(self.engine) as raw:
            sqlite_insert_decisions(raw, rows, trials, layouts)
        self._stored_layouts.update(x.layout_id for x in layouts)

    def get_decision(self, decision_id: str) -> DecisionRecord | None:
        """The stored decision, or None."""
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(decisions).where(decisions.c.decision_id == decision_id))
                .mappings()
                .first()
            )
        if row is None:
            return None
        data = {k: v for k, v in row.items() if k != "features"}
        data["decided_at"] = utc(row["decided_at"])
        data["send_at"] = utc(row["send_at"]) if row["send_at"] is not None else None
        data["reasons"] = tuple(row["reasons"])
        return DecisionRecord.model_validate(data)

    def decision_features(self, decision_id: str) -> dict[str, Any] | None:
        """The features a decision used, or None when the decision is unknown."""
        with self.engine.connect() as conn:
            value = conn.execute(
                select(decisions.c.features).where(decisions.c.decision_id == decision_id)
            ).scalar_one_or_none()
            if value is None:
                return None
            return decode_features(value, stored_layouts(conn, [value]))

    # -- outcomes ----------------------------------------------------------------------------

    def record_outcomes(
        self,
        events: Iterable[EventRecord],
        *,
        rules: Mapping[str, RewardRule] | None = None,
        default_rule: RewardRule = DEFAULT_REWARD,
        received_at: datetime | None = None,
    ) -> OutcomeSummary:
        """Store outcomes idempotently and credit rewards to arm statistics, in one transaction.

        An outcome whose ``event_id``, or whose (``decision_id``, kind), is already stored is a
        duplicate and changes nothing. ``rules`` maps experiment ids to their reward rule.
        """
        rules = rules or {}
        received = received_at or datetime.now(UTC)
        stored = duplicates = counted = 0
        with self.engine.begin() as conn:
            for event in events:
                machine = event.kind == EventKind.OPEN and bool(event.is_machine_open)
                dedup_kind = "open:machine" if machine else event.kind.value
                decision = None
                if event.decision_id is not None:
                    decision = (
                        conn.execute(_DECISION_BY_ID, {"decision_id": event.decision_id})
                        .mappings()
                        .first()
                    )
                rewarded = decision is not None and rewards(
                    decision,
                    event,
                    rules.get(decision["experiment_id"], default_rule),
                    dedup_kind,
                )
                params = {
                    **event.model_dump(exclude={"kind"}),
                    "kind": event.kind.value,
                    "dedup_kind": dedup_kind,
                    "received_at": received,
                    "counted": rewarded,
                }
                if conn.execute(_insert_outcome(conn.dialect.name), params).first() is None:
                    duplicates += 1
                    continue
                stored += 1
                if rewarded and decision is not None:
                    add_counts(conn, stat_key(decision), successes=1)
                    counted += 1
        return OutcomeSummary(stored=stored, duplicates=duplicates, counted=counted)

    # -- bandit statistics -------------------------------------------------------------------

    def arm_statistics(self, experiment_id: str) -> list[ArmStat]:
        """The stored counts of an experiment, one row per variant, segment and day."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(arm_stats)
                .where(arm_stats.c.experiment_id == experiment_id, arm_stats.c.trials > 0)
                .order_by(arm_stats.c.variant_id, arm_stats.c.segment, arm_stats.c.day)
            ).mappings()
            return [ArmStat(**row) for row in rows]

    def recompute_arm_statistics(
        self,
        experiment_id: str,
        rule: RewardRule = DEFAULT_REWARD,
    ) -> list[ArmStat]:
        """The counts of an experiment rebuilt from the decision and outcome tables."""
        trials: Counter[StatKey] = Counter()
        successes: Counter[StatKey] = Counter()
        with self.engine.connect() as conn:
            rows = (
                conn.execute(select(decisions).where(decisions.c.experiment_id == experiment_id))
                .mappings()
                .all()
            )
            by_id = {row["decision_id"]: row for row in rows if counts_as_trial(row)}
            for row in by_id.values():
                trials[stat_key(row)] += 1
            rewarded: set[str] = set()
            events = conn.execute(
                select(outcomes)
                .where(outcomes.c.decision_id.in_(list(by_id)))
                .order_by(outcomes.c.outcome_id)
            ).mappings()
            for out in events:
                decision = by_id[out["decision_id"]]
                event = EventRecord(
                    recipient_id=out["recipient_id"],
                    kind=EventKind(out["kind"]),
                    occurred_at=utc(out["occurred_at"]),
                    is_machine_open=out["is_machine_open"],
                )
                if out["decision_id"] not in rewarded and rewards(
                    decision, event, rule, out["dedup_kind"]
                ):
                    rewarded.add(out["decision_id"])
                    successes[stat_key(decision)] += 1
        return [
            ArmStat(*key, successes=successes[key], trials=n) for key, n in sorted(trials.items())
        ]

    # -- recipients --------------------------------------------------------------------------

    def recipient_state(
        self, recipient_id: str, *, now: datetime, lookback: timedelta = timedelta(days=30)
    ) -> RecipientState:
        """Consent flags (all history) and recent sends and human engagements of a recipient.

        Event records carry no bounce type, so a bounce is taken as hard while no delivery
        has followed it: a soft bounce is followed by a delivery (a retry or a later email).
        """
        return self.recipient_states([recipient_id], now=now, lookback=lookback)[recipient_id]

    def recipient_states(
        self,
        recipient_ids: Iterable[str],
        *,
        now: datetime,
        lookback: timedelta = timedelta(days=30),
        pending: Mapping[str, Mapping[str, datetime]] | None = None,
        history: bool = True,
    ) -> dict[str, RecipientState]:
        """:meth:`recipient_state` of many recipients in one query, whatever their number.

        ``pending`` maps recipients to ``{decision_id: send time}`` of sends decided but not
        yet committed (see :class:`~serving.store.writer.DecisionWriter`); they count as
        sends, once each even if committed meanwhile. ``history=False`` reads the consent
        flags only and leaves the send and engagement times empty: for callers without a
        frequency cap or fatigue rule, which never look at them.
        """
        ids = list(dict.fromkeys(recipient_ids))
        since = now - lookback
        latest: dict[str, dict[str, datetime]] = {rid: {} for rid in ids}
        sends: dict[str, dict[str | None, datetime]] = {rid: {} for rid in ids}
        engaged: dict[str, list[datetime]] = {rid: [] for rid in ids}
        other: dict[str, list[datetime]] = {rid: [] for rid in ids}
        for part, rid, kind, at, decision_id in self._recipient_rows(ids, since, history):
            if part == "c" and kind is not None:
                latest[rid][kind] = at
            elif part == "s":
                sends[rid][decision_id] = at
            elif kind == EventKind.SEND.value:
                # Sends made without asking for a decision arrive only as "send" outcomes.
                if decision_id is None:
                    other[rid].append(at)
            else:
                engaged[rid].append(at)
        for rid, queued in (pending or {}).items():
            if rid in sends:
                sends[rid].update((d, at) for d, at in queued.items() if at >= since)
        out: dict[str, RecipientState] = {}
        for rid in ids:
            last = latest[rid]
            out[rid] = RecipientState(
                unsubscribed="unsubscribe" in last,
                complained="complaint" in last,
                hard_bounced="bounce" in last
                and ("deliver" not in last or last["bounce"] > last["deliver"]),
                send_times=tuple(sorted([*sends[rid].values(), *other[rid]])),
                engagement_times=tuple(sorted(engaged[rid])),
            )
        return out

    def _recipient_rows(
        self, ids: list[str], since: datetime, history: bool = True
    ) -> list[tuple[str, str, str | None, datetime, str | None]]:
        """Rows of :data:`_RECIPIENT_STATE` (part, recipient, kind, UTC time, decision id);
        of its consent part only without ``history``."""
        if not ids:
            return []
        if self.engine.dialect.name != "sqlite":
            statement = _RECIPIENT_STATE if history else _CONSENT_STATE
            with self.engine.connect() as conn:
                rows = conn.execute(statement, {"ids": ids, "since": since}).all()
            return [(p, rid, kind, utc(at), d) for p, rid, kind, at, d in rows]
        # SQLite on the render path: the same statement on the DB-API connection, with
        # SQLAlchemy's text encoding of timestamps. Compiling and executing through the Core
        # layer cost several times the query itself.
        bound = sqlite_text_time(since)
        out: list[tuple[str, str, str | None, datetime, str | None]] = []
        with self._connections.connection(self.engine) as raw:
            for start in range(0, len(ids), _SQLITE_CHUNK):
                chunk = ids[start : start + _SQLITE_CHUNK]
                if history:
                    sql, args = (
                        _sqlite_recipient_sql(len(chunk)),
                        [*chunk, *chunk, bound, *chunk, bound],
                    )
                else:
                    sql, args = _sqlite_consent_sql(len(chunk)), chunk
                out.extend(
                    (p, rid, kind, datetime.fromisoformat(t).replace(tzinfo=UTC), d)
                    for p, rid, kind, t, d in raw.execute(sql, args).fetchall()
                )
        return out

    def erase_recipient(self, recipient_id: str, *, actor: str) -> ErasureReport:
        """Delete a person's decisions and outcomes, take back their counts, and audit it."""
        with self.engine.begin() as conn:
            own = (
                conn.execute(select(decisions).where(decisions.c.recipient_id == recipient_id))
                .mappings()
                .all()
            )
            taken: Counter[tuple[StatKey, str]] = Counter()
            for row in own:
                if counts_as_trial(row):
                    taken[(stat_key(row), "trials")] += 1
            credited = conn.execute(
                select(decisions)
                .join(outcomes, outcomes.c.decision_id == decisions.c.decision_id)
                .where(decisions.c.recipient_id == recipient_id, outcomes.c.counted)
            ).mappings()
            for row in credited:
                taken[(stat_key(row), "successes")] += 1
            for (key, column), n in taken.items():
                conn.execute(
                    update(arm_stats)
                    .where(
                        arm_stats.c.experiment_id == key[0],
                        arm_stats.c.variant_id == key[1],
                        arm_stats.c.segment == key[2],
                        arm_stats.c.day == key[3],
                    )
                    .values({column: arm_stats.c[column] - n})
                )
            own_ids = [row["decision_id"] for row in own]
            removed_outcomes = conn.execute(
                delete(outcomes).where(
                    or_(
                        outcomes.c.recipient_id == recipient_id,
                        and_(
                            outcomes.c.decision_id.is_not(None),
                            outcomes.c.decision_id.in_(own_ids),
                        ),
                    )
                )
            ).rowcount
            removed_decisions = conn.execute(
                delete(decisions).where(decisions.c.recipient_id == recipient_id)
            ).rowcount
            details = {"decisions": removed_decisions, "outcomes": removed_outcomes}
            audit_id = conn.execute(
                audit_log.insert().values(
                    occurred_at=datetime.now(UTC),
                    actor=actor,
                    action="erase_recipient",
                    subject=recipient_id,
                    details=details,
                )
            ).inserted_primary_key
        assert audit_id is not None
        return ErasureReport(recipient_id, removed_decisions, removed_outcomes, int(audit_id[0]))

    def audit_entries(self, *, limit: int = 100) -> list[AuditEntry]:
        """The most recent audited actions, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(audit_log).order_by(audit_log.c.audit_id.desc()).limit(limit)
            ).mappings()
            return [AuditEntry(**{**row, "occurred_at": utc(row["occurred_at"])}) for row in rows]
