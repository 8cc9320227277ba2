from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from features.simulator import EmailEnvironment, SimulationConfig, simulate
from inboxlab.errors import InvalidInputError
from inboxlab.settings import get_settings
from serving.app import create_app
from serving.loop import ClosedLoop, LoopConfig, LoopResult, historical_send_hour
from serving.scoring.models import ModelSet

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

EXPERIMENT = {
    "id": "loop-bandit",
    "type": "bandit",
    "arms": [{"id": "v0", "control": True}, {"id": "v1"}, {"id": "v2"}],
    "primary_metric": "click",
    "bandit": {"weight_floor": 0.01},
}


@dataclass(frozen=True)
class Run:
    result: LoopResult
    seen: list[int]


def _world() -> EmailEnvironment:
    # One content segment: every recipient's best variant is v0, which a bandit without
    # context can find; a strong lift and engaged recipients let 300-email campaigns show it.
    config = SimulationConfig(
        recipients=2_000,
        days=14,
        seed=11,
        segments=1,
        favourite_click_lift=3.0,
        engagement_logit_mean=0.0,
    )
    return EmailEnvironment(simulate(config).truth, rng=np.random.default_rng(2))


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    # Module scope: the loop takes ~30 s, and every test below reads the same run.
    tmp = tmp_path_factory.mktemp("loop")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INBOXLAB_DATA_DIR", str(tmp / "data"))
        patch.setenv("INBOXLAB_ENVIRONMENT", "test")
        patch.setenv("INBOXLAB_MLFLOW__TRACKING_URI", f"sqlite:///{tmp / 'mlflow.db'}")
        get_settings.cache_clear()
        settings = get_settings()
        get_settings.cache_clear()
    settings = settings.model_copy(
        update={
            "decisions": settings.decisions.model_copy(update={"allocation_refresh_seconds": 1e-6})
        }
    )
    app = create_app(
        settings, features=None, models=ModelSet(settings), rng=np.random.default_rng(1)
    )
    with TestClient(app) as c:
        ring = c.app_state["resources"].keys
        key = ring.create("loop", scopes=("decide", "outcomes", "admin")).plaintext
        c.headers["Authorization"] = f"Bearer {key}"
        assert c.post("/v1/experiments", json=EXPERIMENT).status_code == 201
        yield c


@pytest.fixture(scope="module")
def run(client: TestClient) -> Run:
    loop = ClosedLoop(
        client,
        _world(),
        LoopConfig("loop-bandit", campaigns=8, audience=300),
        rng=np.random.default_rng(3),
    )
    seen: list[int] = []
    result = loop.run(lambda _row, summary: seen.append(summary.campaigns))
    return Run(result, seen)


def test_bandit_regret_is_far_below_the_uniform_split(run: Run) -> None:
    summary = run.result.summary
    assert summary.best_arm == "v0"
    assert summary.regret_uniform > 0
    assert summary.regret_reduction >= 0.3
    assert run.result.rows[-1].allocation["v0"] > 0.8


def test_loop_numbers_add_up(run: Run) -> None:
    result = run.result
    assert run.seen == list(range(1, 9))
    assert [r.campaign_id for r in result.rows] == [f"loop-{k:03d}" for k in range(8)]
    for row in result.rows:
        assert math.isclose(sum(row.allocation.values()), 1.0)
        assert row.regret >= 0
        assert row.regret_uniform >= 0
        assert row.sent + row.suppressed + row.holdout == row.audience
        assert row.mailable <= row.sent
        assert 0 <= row.open_rate_fixed <= row.open_rate_oracle <= 1
        assert 0 <= row.open_rate_policy <= row.open_rate_oracle
        assert all(0 < p < 1 for p in row.posterior_mean.values())
    assert sum(result.rows[-1].trials.values()) == sum(r.sent for r in result.rows)
    # The loop's copy of the attribution rule agrees with what the API credited.
    assert sum(result.rewards.values()) == result.outcomes_counted > 0
    assert result.outcomes_posted >= result.outcomes_counted


def test_bandit_stops_sending_the_clearly_worse_arms_after_the_first_campaign(run: Run) -> None:
    first, later = run.result.rows[0], run.result.rows[1:]
    assert max(first.allocation.values()) < 0.5  # no evidence yet: an even split
    assert all(r.regret < 0.3 * r.regret_uniform for r in later)


def test_most_common_fixed_hour_of_the_history_is_the_baseline() -> None:
    truth = simulate(SimulationConfig(recipients=200, days=14, seed=4)).truth
    assert historical_send_hour(truth) == (15, "utc")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"campaigns": 0}, "campaigns"),
        ({"audience": 0}, "audience"),
        ({"interval_hours": 0.0}, "interval_hours"),
        ({"window_hours": 0}, "window_hours"),
    ],
)
def test_invalid_loop_config_names_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInputError, match=field):
        LoopConfig("x", **changes)  # type: ignore[arg-type]


def test_audience_larger_than_the_world_is_refused(client: TestClient) -> None:
    with pytest.raises(InvalidInputError, match="audience"):
        ClosedLoop(
            client, _world(), LoopConfig("loop-bandit", audience=5_000), rng=np.random.default_rng()
        )
