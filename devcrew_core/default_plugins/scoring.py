"""The built-in ``default`` agent scorer.

effective score = 0.5 * capability fit + 0.3 * free capacity + 0.2 * priority weight / 100

* capability fit = 0.8 + 0.2 * (required capabilities / agent capabilities): every
  eligible agent has all required capabilities; specialists score a little higher.
* free capacity = 1 - current_load / max_concurrent_tasks.
"""

from __future__ import annotations

from collections.abc import Iterator

from devcrew_core.engine.matching import capability_fit
from devcrew_core.hookspecs import hookimpl
from devcrew_core.models import TaskRequest
from devcrew_core.plugin_types import Scorer
from devcrew_core.stores.records import AgentRecord


def default_score(request: TaskRequest, agent: AgentRecord) -> float:
    """Blend capability fit, free capacity and priority weight (see module docstring)."""
    free = 1.0 - agent.current_load / agent.max_concurrent_tasks
    return (
        0.5 * capability_fit(request.required_capabilities, agent)
        + 0.3 * max(free, 0.0)
        + 0.2 * agent.priority_weight / 100
    )


@hookimpl
def devcrew_scorers() -> Iterator[Scorer]:
    """The default scorer."""
    yield Scorer(
        name="default",
        score=default_score,
        description="0.5 x capability fit + 0.3 x free capacity + 0.2 x priority weight",
    )
