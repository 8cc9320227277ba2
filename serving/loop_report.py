"""What a closed-loop run measured: one frozen row per campaign, and the running totals.

Regret is measured in *expected* clicks, from the simulator's true probabilities, so that it
carries no sampling noise: for every email that went out,

    regret = E[click | the recipient's best variant] - E[click | the variant the policy chose]

at the send time the policy chose. The uniform split's regret is the same sum with the chosen
variant replaced by an even mixture of all arms (a counterfactual, same recipients and send
times). Regret is also reported against the single best arm of the whole run (the classic
bandit definition), because a policy that cannot tell recipients apart can only reach that.

Examples
--------
>>> from datetime import UTC, datetime
>>> row = CampaignRow(
...     campaign_id="c1", started_at=datetime(2026, 1, 1, tzinfo=UTC), audience=3, sent=2,
...     suppressed=1, holdout=0, mailable=2, arm_sends={"a": 2, "b": 0},
...     trials={"a": 2, "b": 0}, successes={"a": 1, "b": 0}, clicks=1,
...     expected_clicks_policy=0.3, expected_clicks_oracle=0.4,
...     expected_clicks_by_arm={"a": 0.3, "b": 0.1},
...     open_rate_policy=0.2, open_rate_fixed=0.1, open_rate_oracle=0.3,
... )
>>> row.allocation, round(row.regret, 2), round(row.regret_uniform, 2)
({'a': 1.0, 'b': 0.0}, 0.1, 0.2)
>>> summary = summarize([row])
>>> round(summary.regret_reduction, 2), round(summary.oracle_lift_fraction, 2)
(0.5, 0.5)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

__all__ = ["CampaignRow", "LoopSummary", "summarize"]


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else float("nan")


@dataclass(frozen=True, slots=True)
class CampaignRow:
    """One campaign of the loop, as decided by the API and played out by the environment.

    Counts are of recipients; ``expected_*`` are sums of true click probabilities over the
    emails that went out (``sent`` decisions to recipients who could still be mailed); open
    rates are means of true human-open probabilities over the same emails.
    """

    campaign_id: str
    started_at: datetime
    audience: int
    sent: int
    suppressed: int
    holdout: int
    #: Sent decisions whose recipient could still be mailed (the rest bounced off the world).
    mailable: int
    #: Send decisions per arm in this campaign.
    arm_sends: Mapping[str, int]
    #: Cumulative trials and rewarded outcomes per arm, as posted to the API so far.
    trials: Mapping[str, int]
    successes: Mapping[str, int]
    #: Sampled clicks of this campaign (all of them, attributed or not).
    clicks: int
    expected_clicks_policy: float
    expected_clicks_oracle: float
    #: Expected clicks had every email of this campaign carried that arm.
    expected_clicks_by_arm: Mapping[str, float]
    open_rate_policy: float
    open_rate_fixed: float
    open_rate_oracle: float

    @property
    def allocation(self) -> dict[str, float]:
        """Share of this campaign's send decisions per arm (sums to 1 when anything was sent)."""
        total = sum(self.arm_sends.values())
        return {arm: (n / total if total else 0.0) for arm, n in self.arm_sends.items()}

    @property
    def posterior_mean(self) -> dict[str, float]:
        """Mean of each arm's Beta(1 + successes, 1 + failures) posterior of the reward."""
        return {
            arm: (1.0 + self.successes.get(arm, 0)) / (2.0 + n) for arm, n in self.trials.items()
        }

    @property
    def expected_clicks_uniform(self) -> float:
        """Expected clicks of an even split over the arms (same recipients and times)."""
        values = list(self.expected_clicks_by_arm.values())
        return sum(values) / len(values) if values else 0.0

    @property
    def regret(self) -> float:
        """Expected clicks lost against each recipient's best variant."""
        return self.expected_clicks_oracle - self.expected_clicks_policy

    @property
    def regret_uniform(self) -> float:
        """The same loss for the uniform split."""
        return self.expected_clicks_oracle - self.expected_clicks_uniform


@dataclass(frozen=True, slots=True)
class LoopSummary:
    """Running totals over the campaigns so far.

    ``regret_reduction`` is ``1 - policy regret / uniform regret`` against the per-recipient
    oracle; ``regret_reduction_vs_best_arm`` the same against the run's single best arm.
    ``oracle_lift_fraction`` is the share of the open-rate lift from the fixed hour to the
    oracle hour that the API's send times achieved.
    """

    campaigns: int
    sent: int
    best_arm: str | None
    regret: float
    regret_uniform: float
    regret_vs_best_arm: float
    regret_uniform_vs_best_arm: float
    open_rate_policy: float
    open_rate_fixed: float
    open_rate_oracle: float

    @property
    def regret_reduction(self) -> float:
        """``1 - regret / regret_uniform`` (NaN before any uniform regret)."""
        return 1.0 - _ratio(self.regret, self.regret_uniform)

    @property
    def regret_reduction_vs_best_arm(self) -> float:
        """``1 - regret_vs_best_arm / regret_uniform_vs_best_arm``."""
        return 1.0 - _ratio(self.regret_vs_best_arm, self.regret_uniform_vs_best_arm)

    @property
    def oracle_lift_fraction(self) -> float:
        """``(policy - fixed) / (oracle - fixed)`` of the open rates."""
        return _ratio(
            self.open_rate_policy - self.open_rate_fixed,
            self.open_rate_oracle - self.open_rate_fixed,
        )


def summarize(rows: Sequence[CampaignRow]) -> LoopSummary:
    """Cumulative regret and open rates over ``rows`` (open rates weighted by emails)."""
    arm_totals: dict[str, float] = {}
    for row in rows:
        for arm, value in row.expected_clicks_by_arm.items():
            arm_totals[arm] = arm_totals.get(arm, 0.0) + value
    best_arm = max(arm_totals, key=arm_totals.__getitem__) if arm_totals else None
    best_total = arm_totals[best_arm] if best_arm is not None else 0.0
    policy = sum(r.expected_clicks_policy for r in rows)
    uniform = sum(r.expected_clicks_uniform for r in rows)
    emails = sum(r.mailable for r in rows)

    def mean_open(attr: str) -> float:
        return _ratio(sum(getattr(r, attr) * r.mailable for r in rows), float(emails))

    return LoopSummary(
        campaigns=len(rows),
        sent=emails,
        best_arm=best_arm,
        regret=sum(r.regret for r in rows),
        regret_uniform=sum(r.regret_uniform for r in rows),
        regret_vs_best_arm=best_total - policy,
        regret_uniform_vs_best_arm=best_total - uniform,
        open_rate_policy=mean_open("open_rate_policy"),
        open_rate_fixed=mean_open("open_rate_fixed"),
        open_rate_oracle=mean_open("open_rate_oracle"),
    )
