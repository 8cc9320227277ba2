"""A simulated email world with ground truth, for testing and evaluating inboxlab's decisions.

:func:`simulate` produces a realistic event history (``EVENT_SCHEMA``) and the
:class:`GroundTruth` behind it; :class:`EmailEnvironment` continues that world in closed loop
and knows the true probabilities of every outcome.

Conventions of the simulated event log (it has no column for them):

- A *hard bounce* is a ``bounce`` after which the recipient has no further event at all; a
  *soft bounce* is a ``bounce`` usually followed by a retried ``send`` of the same campaign
  1-6 hours later (then ``deliver``), and by later campaigns. The truth's ``status`` column
  says which recipients ended hard-bounced.
- Machine opens (MPP recipients, every delivered email, 1-8 minutes after delivery) carry
  ``is_machine_open=True`` for a share ``machine_open_flag_rate`` of them and null otherwise;
  human opens are null too, as the sending platform cannot tell.
- Nothing follows an ``unsubscribe`` or ``complaint`` for that recipient; late opens of older
  emails are no longer tracked. Events after the end of the window are not in the log.
- ``campaign_id`` and ``variant_id`` are always filled, ``decision_id`` is null, ``value`` is
  set on ``convert`` only.

Examples
--------
>>> from features.simulator import SimulationConfig, simulate
>>> sim = simulate(SimulationConfig(recipients=100, days=7, seed=1))
>>> {"send", "deliver", "open", "click"} <= set(sim.events.column("kind").to_pylist())
True
"""

from __future__ import annotations

from features.simulator.config import DEFAULT_TIMEZONES, SimulationConfig
from features.simulator.environment import EmailEnvironment, SendOutcome
from features.simulator.history import ProgressCallback, SimulationResult, simulate
from features.simulator.population import CHRONOTYPES
from features.simulator.truth import GroundTruth

__all__ = [
    "CHRONOTYPES",
    "DEFAULT_TIMEZONES",
    "EmailEnvironment",
    "GroundTruth",
    "ProgressCallback",
    "SendOutcome",
    "SimulationConfig",
    "SimulationResult",
    "simulate",
]
