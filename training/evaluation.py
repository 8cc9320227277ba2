"""Model quality measured against the simulator's ground truth, not only against outcomes.

A simulated history goes through the whole pipeline (event log → feature build → training
sets → LightGBM), then the trained models are judged on *new* sends into the same world, sent
through :class:`~features.simulator.EmailEnvironment`, which knows the true probability of
every outcome. The holdout is prospective: the day after the history ends, with features as of
that day, so nothing it is judged on existed when the models were trained.

Engagement
    The AUC of the model's click probabilities divided by the AUC of the true ones on the same
    sends, and the calibration error. Both are given twice: against the sampled clicks (what a
    data scientist sees on a real holdout) and against the true probabilities themselves
    (the *expected* AUC, counting each send as a click with weight ``p`` and as a non-click
    with weight ``1 - p``), which removes the sampling noise of a few thousand clicks.
Send time
    For held-out recipients (kept out of the send-time training set), the true open rate when
    each is mailed at the model's best local hour of a day, against mailing everyone at the
    most common historical hour and against each recipient's true best hour (the oracle);
    ``lift_share`` is the share of the oracle's lift over the fixed hour that the model gets.
    Each policy chooses an hour per recipient on each of the seven days after the history, as
    a sender mailing every day would: the hour curves, and what the model reads of them,
    differ between weekdays and weekends, so one day says little about the others. The week's
    share and each day's are reported, with the first day's alone as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.metrics import roc_auc_score

from features.engineering import build_features
from features.events import EventLog
from features.events.importer import import_tables
from features.events.recipients import write_recipients
from features.retrieval import training_frame
from features.simulator import EmailEnvironment, GroundTruth, SimulationConfig, simulate
from inboxlab.settings import Settings
from training.ceiling import EngagementCeiling, engagement_ceiling
from training.dataset import build_training_set, model_frame, service_features
from training.estimator import positive_proba
from training.fit import FitResult, fit_and_evaluate
from training.labels import complete, labelled_sends
from training.metrics import expected_auc, expected_calibration_error
from training.specs import ModelKind, spec_for

__all__ = [
    "EngagementQuality",
    "EngagementReport",
    "QualityReport",
    "SendTimeDay",
    "SendTimeQuality",
    "SendTimeReport",
    "engagement_quality",
    "evaluate_against_truth",
    "evaluate_engagement_against_truth",
    "evaluate_send_time_against_truth",
    "expected_auc",
    "fixed_hour_policy",
    "prepare_world",
    "ranking_model",
    "send_time_quality",
]

Progress = Callable[[str], None]
_HOLDOUT_CAMPAIGN = "quality-holdout"


@dataclass(frozen=True, slots=True)
class EngagementQuality:
    """Engagement model vs the true click probabilities on prospective sends."""

    sends: int
    clicks: int
    auc_ratio: float  # model AUC / true-probability AUC, on the sampled clicks
    expected_auc_ratio: float  # the same on expected AUCs (no sampling noise)
    auc_model: float
    auc_truth: float
    ece: float  # against the sampled clicks
    ece_vs_truth: float  # against the true probabilities
    #: What reference predictors reach on the same sends (see :mod:`training.ceiling`).
    ceiling: EngagementCeiling | None = None


@dataclass(frozen=True, slots=True)
class SendTimeDay:
    """One day's true open rates of held-out recipients under three send-hour policies."""

    day: date
    weekday: str  # the day's name, "Monday" to "Sunday"
    open_rate_fixed: float
    open_rate_model: float
    open_rate_oracle: float
    lift_share: float  # (model - fixed) / (oracle - fixed)
    best_hour_agreement: float  # share of recipients whose model hour is the oracle hour


@dataclass(frozen=True, slots=True)
class SendTimeQuality:
    """True open rates of held-out recipients under three send-hour policies.

    Each policy picks one hour per recipient per judged day. The unprefixed rates, share and
    agreement are those of the first day after the history alone; the ``week_`` ones are
    the means over every judged day (seven by default), and ``days`` holds each day's.
    """

    recipients: int
    fixed_hour: int
    fixed_basis: str  # "utc" or "local": the clock the history was scheduled on
    open_rate_fixed: float  # the first day's
    open_rate_model: float
    open_rate_oracle: float
    lift_share: float  # (model - fixed) / (oracle - fixed), the first day's
    best_hour_agreement: float  # share of recipients whose model hour is the oracle hour
    week_open_rate_fixed: float  # mean over the judged days
    week_open_rate_model: float
    week_open_rate_oracle: float
    week_lift_share: float  # (model - fixed) / (oracle - fixed) over every judged day
    week_best_hour_agreement: float  # share of recipient-days
    days: tuple[SendTimeDay, ...]


@dataclass(frozen=True, slots=True)
class QualityReport:
    """Everything :func:`evaluate_against_truth` measured."""

    config: SimulationConfig
    engagement: EngagementQuality
    send_time: SendTimeQuality
    engagement_holdout_auc: float  # the model's own time-split holdout, for reference
    send_time_holdout_auc: float
    rows_engagement: int
    rows_send_time: int
    seconds: dict[str, float]


def prepare_world(
    settings: Settings, config: SimulationConfig, progress: Progress | None = None
) -> GroundTruth:
    """Simulate ``config`` into the event log and recipient directory; build the features."""
    step = progress or (lambda _msg: None)
    step(f"simulating {config.recipients:,} recipients × {config.days} days")
    sim = simulate(config)
    step(f"importing {sim.events.num_rows:,} events")
    import_tables([("simulation", sim.events)], EventLog(settings.events_dir))
    write_recipients(settings.recipients_path, sim.truth.recipient_directory())
    step("building features")
    build_features(settings)
    return sim.truth


def _local_clock(sent_at: pd.Series, timezones: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Local hour and weekday (Monday = 0) of each send, as :mod:`training.labels` derives."""
    hour = np.empty(len(sent_at), dtype=np.int64)
    weekday = np.empty(len(sent_at), dtype=np.int64)
    if sent_at.dt.tz is None:  # the feature join hands times back as naive UTC
        sent_at = sent_at.dt.tz_localize("UTC")
    zones = pd.Series(np.asarray(timezones, dtype=object))
    for zone, rows in zones.groupby(zones).indices.items():
        local = sent_at.iloc[rows].dt.tz_convert(str(zone))
        hour[rows] = local.dt.hour.to_numpy()
        weekday[rows] = local.dt.weekday.to_numpy()
    return hour, weekday


def _stored_frame(settings: Settings, kind: ModelKind, sends: pd.DataFrame) -> pd.DataFrame:
    """The stored features of ``kind``'s service as of each send, joined to ``sends``."""
    stored = service_features(spec_for(kind).feature_service)
    # copy(): the joined frame comes back in one block per filled column; inserting more
    # columns into a frame of a hundred blocks is what pandas warns about.
    return training_frame(settings, sends, features=stored).copy()


def _inputs(
    kind: ModelKind, result: FitResult, frame: pd.DataFrame, timezones: Sequence[str]
) -> pd.DataFrame:
    """Model input from stored features (``frame``) and the local clock of each ``sent_at``."""
    frame["local_hour"], frame["local_weekday"] = _local_clock(frame["sent_at"], timezones)
    x = model_frame(spec_for(kind), frame)[list(result.features)].copy()
    x[list(result.numeric)] = x[list(result.numeric)].astype("float64")
    for c in result.categorical:
        # As training.fit feeds categoricals: strings, with missing values spelled out.
        x[c] = x[c].astype("string").fillna("missing").astype(object)
    return x


def _model_input(
    settings: Settings,
    kind: ModelKind,
    result: FitResult,
    sends: pd.DataFrame,
    timezones: Sequence[str],
) -> pd.DataFrame:
    """Model input for new sends: stored features as of each send plus the request context."""
    return _inputs(kind, result, _stored_frame(settings, kind, sends), timezones)


def _timezones(truth: GroundTruth, recipient_ids: Sequence[str]) -> list[str]:
    table = truth.recipients_table()
    zone = dict(
        zip(
            table.column("recipient_id").to_pylist(),
            table.column("timezone").to_pylist(),
            strict=True,
        )
    )
    return [zone[r] for r in recipient_ids]


def _mailable(truth: GroundTruth, recipient_ids: Sequence[str]) -> list[str]:
    env = EmailEnvironment(truth, np.random.default_rng(0))
    keep = env.is_mailable(list(recipient_ids))
    return [r for r, ok in zip(recipient_ids, keep.tolist(), strict=True) if ok]


def engagement_quality(
    settings: Settings,
    truth: GroundTruth,
    result: FitResult,
    *,
    day: date,
    seed: int = 0,
    history: pd.DataFrame | None = None,
) -> EngagementQuality:
    """Send every mailable recipient one email on ``day`` at a random time and variant.

    The true click probability of each email is read from the environment before it is sent
    (what the world knew at send time), then the clicks are sampled by sending it. With the
    labelled sends the model learnt from (``history``), the report also gives what the
    Bayes reference predictors of :func:`training.ceiling.engagement_ceiling` reach.
    """
    rng = np.random.default_rng(seed)
    ids = _mailable(truth, truth.population.recipient_ids)
    variants = rng.choice(np.asarray(truth.config.variant_ids), size=len(ids)).tolist()
    start = pd.Timestamp(day, tz="UTC")
    sent_at = start + pd.to_timedelta(rng.integers(0, 86_400, len(ids)), unit="s")
    when = sent_at.tz_convert("UTC").tz_localize(None).to_numpy().astype("datetime64[us]")
    env = EmailEnvironment(truth, rng)
    p_true = env.expected_click_rate(ids, variants, when)
    outcome = env.send(ids, variants, when, campaign_id=_HOLDOUT_CAMPAIGN)
    y = outcome.clicked.astype(int)
    sends = pd.DataFrame({"recipient_id": ids, "sent_at": sent_at, "variant_id": variants})
    x = _model_input(settings, ModelKind.ENGAGEMENT, result, sends, _timezones(truth, ids))
    p_model = positive_proba(result.model, x)
    auc_model = float(roc_auc_score(y, p_model))
    auc_truth = float(roc_auc_score(y, p_true))
    return EngagementQuality(
        sends=len(ids),
        clicks=int(y.sum()),
        auc_ratio=auc_model / auc_truth,
        expected_auc_ratio=expected_auc(p_true, p_model) / expected_auc(p_true, p_true),
        auc_model=auc_model,
        auc_truth=auc_truth,
        ece=expected_calibration_error(y, p_model),
        ece_vs_truth=expected_calibration_error(p_true, p_model),
        ceiling=None
        if history is None
        else engagement_ceiling(truth, history, sends, p_true, p_model),
    )


def fixed_hour_policy(sends: pd.DataFrame) -> tuple[int, str]:
    """The hour most historical sends went out at, on the clock they were scheduled by.

    ``sends`` has ``sent_at`` (UTC) and ``local_hour``. Campaigns scheduled at a fixed UTC hour
    pile up on one UTC hour, those scheduled in local time on one local hour; the clock on
    which the mode holds the larger share of sends is the one the sender used.
    """
    utc = sends["sent_at"].dt.hour.value_counts(normalize=True)
    local = sends["local_hour"].value_counts(normalize=True)
    if utc.iloc[0] >= local.iloc[0]:
        return int(utc.index[0]), "utc"
    return int(local.index[0]), "local"


def _local_times(day: date, hour: int, timezones: Sequence[str]) -> pd.Series:
    """``hour``:30 local time on ``day`` in each zone, as UTC timestamps."""
    naive = pd.Timestamp(datetime(day.year, day.month, day.day, hour, 30))
    per_zone = {
        z: naive.tz_localize(z, ambiguous=True, nonexistent="shift_forward").tz_convert("UTC")
        for z in set(timezones)
    }
    return pd.Series([per_zone[z] for z in timezones], dtype="datetime64[us, UTC]")


def ranking_model(model: Any) -> Any:
    """The fitted pipeline inside a calibrated model, for ranking one recipient's hours.

    Isotonic calibration maps scores to a step function, so many of one recipient's 24 hours
    tie and an argmax would pick the first of them; calibration is monotone, so the pipeline
    it wraps ranks the hours the same way without the ties.
    """
    if isinstance(model, CalibratedClassifierCV):
        frozen = model.calibrated_classifiers_[0].estimator
        return getattr(frozen, "estimator", frozen)
    return model


def _fixed_local_hours(day: date, fixed: tuple[int, str], timezones: Sequence[str]) -> np.ndarray:
    """The local hour on ``day`` of the fixed-hour policy in each zone."""
    hour, basis = fixed
    if basis == "utc":
        at = pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=hour, minutes=30)
        local, _ = _local_clock(pd.Series([at] * len(timezones)), timezones)
        return local
    return np.full(len(timezones), hour)


def _share(fixed: float, model: float, oracle: float) -> float:
    """The share of the oracle's lift over the fixed hour that the model gets."""
    gap = oracle - fixed
    return (model - fixed) / gap if gap > 0 else float("nan")


def _day_quality(
    day: date, true: np.ndarray, scores: np.ndarray, fixed_local: np.ndarray
) -> SendTimeDay:
    """Policies of one day from the true open rates and model scores (hours × recipients)."""
    cols = np.arange(true.shape[1])
    model_hour = np.argmax(scores, axis=0)
    oracle_hour = np.argmax(true, axis=0)
    rate_fixed = float(true[fixed_local, cols].mean())
    rate_model = float(true[model_hour, cols].mean())
    rate_oracle = float(true[oracle_hour, cols].mean())
    return SendTimeDay(
        day=day,
        weekday=day.strftime("%A"),
        open_rate_fixed=rate_fixed,
        open_rate_model=rate_model,
        open_rate_oracle=rate_oracle,
        lift_share=_share(rate_fixed, rate_model, rate_oracle),
        best_hour_agreement=float(np.mean(model_hour == oracle_hour)),
    )


def send_time_quality(
    settings: Settings,
    truth: GroundTruth,
    result: FitResult,
    recipient_ids: Sequence[str],
    *,
    day: date,
    fixed: tuple[int, str],
    days: int = 7,
) -> SendTimeQuality:
    """Score the 24 local hours of ``days`` days from ``day`` per recipient; compare policies.

    The stored features are read once, as of each hour of ``day``: the world has no events
    after the history, and the views' two-day TTL would leave the later days with none. Each
    day's hours are then scored with that day's local hour and weekday.
    """
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    ids = _mailable(truth, recipient_ids)
    zones = _timezones(truth, ids)
    n = len(ids)

    def candidates(on: date) -> pd.Series:
        return pd.concat([_local_times(on, h, zones) for h in range(24)], ignore_index=True)

    first = candidates(day)
    stored = _stored_frame(
        settings, ModelKind.SEND_TIME, pd.DataFrame({"recipient_id": ids * 24, "sent_at": first})
    )
    model = ranking_model(result.model)
    env = EmailEnvironment(truth, np.random.default_rng(0))
    judged: list[SendTimeDay] = []
    for k in range(days):
        on = day + timedelta(days=k)
        when = (first if k == 0 else candidates(on)).dt.tz_localize(None).to_numpy()
        when = when.astype("datetime64[us]")
        x = _inputs(ModelKind.SEND_TIME, result, stored.assign(sent_at=when), zones * 24)
        scores = positive_proba(model, x).reshape(24, n)
        hours = when.reshape(24, n)
        true = np.stack([env.expected_open_rate(ids, hours[h]) for h in range(24)])
        judged.append(_day_quality(on, true, scores, _fixed_local_hours(on, fixed, zones)))
    week = {
        name: float(np.mean([getattr(d, name) for d in judged]))
        for name in ("open_rate_fixed", "open_rate_model", "open_rate_oracle")
    }
    head = judged[0]
    return SendTimeQuality(
        recipients=n,
        fixed_hour=fixed[0],
        fixed_basis=fixed[1],
        open_rate_fixed=head.open_rate_fixed,
        open_rate_model=head.open_rate_model,
        open_rate_oracle=head.open_rate_oracle,
        lift_share=head.lift_share,
        best_hour_agreement=head.best_hour_agreement,
        week_open_rate_fixed=week["open_rate_fixed"],
        week_open_rate_model=week["open_rate_model"],
        week_open_rate_oracle=week["open_rate_oracle"],
        week_lift_share=_share(
            week["open_rate_fixed"], week["open_rate_model"], week["open_rate_oracle"]
        ),
        week_best_hour_agreement=float(np.mean([d.best_hour_agreement for d in judged])),
        days=tuple(judged),
    )


def evaluate_against_truth(
    settings: Settings,
    config: SimulationConfig,
    *,
    holdout_share: float = 0.2,
    seed: int = 0,
    params: dict[str, object] | None = None,
    progress: Progress | None = None,
    truth: GroundTruth | None = None,
) -> QualityReport:
    """Simulate, build features, train engagement and send-time, judge both against truth.

    ``settings`` must point at an empty data directory: the simulated history is written to
    its event log. A random ``holdout_share`` of recipients is kept out of the send-time
    training set and used for the send-time comparison. With ``truth``, the world of
    ``settings`` is taken as already prepared (simulated, imported, features built) by
    :func:`prepare_world` for ``config``.
    """
    clock = _Clock()
    if truth is None:
        truth = prepare_world(settings, config, progress)
        clock.lap("simulate + import + features")
    eng = evaluate_engagement_against_truth(
        settings, config, seed=seed, params=params, progress=progress, truth=truth
    )
    st = evaluate_send_time_against_truth(
        settings,
        config,
        holdout_share=holdout_share,
        seed=seed,
        params=params,
        progress=progress,
        truth=truth,
    )
    return QualityReport(
        config=config,
        engagement=eng.engagement,
        send_time=st.send_time,
        engagement_holdout_auc=eng.engagement_holdout_auc,
        send_time_holdout_auc=st.send_time_holdout_auc,
        rows_engagement=eng.rows_engagement,
        rows_send_time=st.rows_send_time,
        seconds={**clock.laps, **eng.seconds, **st.seconds},
    )


@dataclass(frozen=True, slots=True)
class EngagementReport:
    """What :func:`evaluate_engagement_against_truth` measured."""

    config: SimulationConfig
    engagement: EngagementQuality
    engagement_holdout_auc: float
    rows_engagement: int
    seconds: dict[str, float]


def evaluate_engagement_against_truth(
    settings: Settings,
    config: SimulationConfig,
    *,
    seed: int = 0,
    params: dict[str, object] | None = None,
    progress: Progress | None = None,
    truth: GroundTruth | None = None,
) -> EngagementReport:
    """The engagement half of :func:`evaluate_against_truth`, without the send-time model.

    With ``truth``, the world is taken as already prepared in ``settings`` (same config);
    otherwise it is simulated and its features built first.
    """
    step = progress or (lambda _msg: None)
    clock = _Clock()
    if truth is None:
        truth = prepare_world(settings, config, progress)
        clock.lap("simulate + import + features")
    step("training the engagement model")
    data = build_training_set(settings, spec_for(ModelKind.ENGAGEMENT), progress=progress)
    fit = fit_and_evaluate(
        data.frame, "clicked", data.numeric, data.categorical, params=params, seed=seed
    )
    clock.lap("engagement training set + fit")
    step(f"sending the holdout day {config.end} into the simulated world")
    # The reference predictors learn from every send whose open label is complete: the
    # features of the holdout day include the opens of the last days' sends too.
    history = complete(
        labelled_sends(EventLog(settings.events_dir), settings.recipients_path),
        "opened",
        data.log_end,
    )
    engagement = engagement_quality(
        settings, truth, fit, day=config.end, seed=seed, history=history
    )
    clock.lap("engagement vs truth")
    return EngagementReport(
        config=config,
        engagement=engagement,
        engagement_holdout_auc=fit.metrics["roc_auc"],
        rows_engagement=len(data.frame),
        seconds=clock.laps,
    )


@dataclass(frozen=True, slots=True)
class SendTimeReport:
    """What :func:`evaluate_send_time_against_truth` measured."""

    config: SimulationConfig
    send_time: SendTimeQuality
    send_time_holdout_auc: float
    rows_send_time: int
    seconds: dict[str, float]


def evaluate_send_time_against_truth(
    settings: Settings,
    config: SimulationConfig,
    *,
    holdout_share: float = 0.2,
    seed: int = 0,
    params: dict[str, object] | None = None,
    progress: Progress | None = None,
    truth: GroundTruth | None = None,
) -> SendTimeReport:
    """The send-time half of :func:`evaluate_against_truth`, without the engagement model.

    With ``truth``, the world is taken as already prepared in ``settings`` (same config);
    otherwise it is simulated and its features built first. The held-out recipients are drawn
    exactly as :func:`evaluate_against_truth` draws them.
    """
    step = progress or (lambda _msg: None)
    clock = _Clock()
    if truth is None:
        truth = prepare_world(settings, config, progress)
        clock.lap("simulate + import + features")
    day = config.end
    rng = np.random.default_rng(seed)
    all_ids = list(truth.population.recipient_ids)
    held = set(rng.choice(all_ids, size=int(holdout_share * len(all_ids)), replace=False).tolist())
    step("training the send-time model without the held-out recipients")
    st_data = build_training_set(settings, spec_for(ModelKind.SEND_TIME), progress=progress)
    st_frame = st_data.frame[~st_data.frame["recipient_id"].isin(held)]
    st = fit_and_evaluate(
        st_frame,
        "opened",
        st_data.numeric,
        st_data.categorical,
        params={**spec_for(ModelKind.SEND_TIME).lgbm_params, **(params or {})},
        seed=seed,
    )
    clock.lap("send-time training set + fit")
    step(f"scoring 24 hours × 7 days for {len(held):,} held-out recipients")
    fixed = fixed_hour_policy(st_data.frame)
    send_time = send_time_quality(settings, truth, st, sorted(held), day=day, fixed=fixed)
    clock.lap("send-time vs truth")
    return SendTimeReport(
        config=config,
        send_time=send_time,
        send_time_holdout_auc=st.metrics["roc_auc"],
        rows_send_time=len(st_frame),
        seconds=clock.laps,
    )


class _Clock:
    """Wall-clock seconds per named stage."""

    def __init__(self) -> None:
        import time

        self._now = time.perf_counter
        self._last = self._now()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = self._now()
        self.laps[name] = now - self._last
        self._last = now
