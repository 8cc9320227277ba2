from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from features.simulator import SimulationConfig
from inboxlab.errors import InvalidInputError

BASE: dict[str, Any] = {"recipients": 10, "days": 7, "seed": 1}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("recipients", 0),
        ("recipients", -5),
        ("recipients", 2.5),
        ("recipients", True),
        ("days", 0),
        ("seed", -1),
        ("start", "2026-01-01"),
        ("start", datetime(2026, 1, 1, tzinfo=UTC)),
        ("timezones", ()),
        ("timezones", (("Mars/Olympus_Mons", 1.0),)),
        ("timezones", (("Europe/London", 0.0),)),
        ("timezones", (("Europe/London", 1.0), ("Europe/London", 1.0))),
        ("segments", 0),
        ("mpp_share", 1.5),
        ("mpp_share", float("nan")),
        ("machine_open_flag_rate", -0.1),
        ("engagement_logit_sd", -1.0),
        ("fatigue_half_life_days", 0.0),
        ("campaigns_per_week", 0),
        ("variants_per_campaign", 0),
        ("audience_share", 2.0),
        ("randomized_hour_share", -0.5),
        ("fixed_send_hour", 24),
        ("fixed_hour_basis", "gmt"),
        ("favourite_click_lift", 0.5),
        ("favourite_click_lift", 20.0),
        ("soft_bounce_rate", "often"),
    ],
)
def test_invalid_config_value_raises_error_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(InvalidInputError, match=f"SimulationConfig.{field}") as info:
        SimulationConfig(**{**BASE, field: value})
    assert info.value.field == field


def test_config_round_trips_through_dict() -> None:
    cfg = SimulationConfig(**BASE, start=date(2025, 3, 3), campaigns_per_week=4.0)
    assert SimulationConfig.from_dict(cfg.to_dict()) == cfg


def test_config_from_dict_refuses_unknown_fields() -> None:
    with pytest.raises(InvalidInputError, match="colour") as info:
        SimulationConfig.from_dict({**BASE, "colour": "blue"})
    assert info.value.field == "colour"


def test_config_end_is_start_plus_days() -> None:
    assert SimulationConfig(**BASE, start=date(2026, 1, 30)).end == date(2026, 2, 6)
